//! The app's API as the marketplace plugins (vendor-notification,
//! response-reminder) see it: vendor and client contacts, and whether a
//! vendor has answered a conversation. Answers are cached through the host's
//! cache, so a burst of jobs for one vendor costs one API call.
//!
//! Config: `api_base_url` (required when a lookup misses the cache),
//! `contact_ttl_secs` (default 3600); secret: `api_token` (sent as a bearer token).
//!
//! Errors map onto the contract: a 404 or a malformed answer is permanent
//! (the id is wrong), a transport error or 5xx is retried.

use jobrunner_sdk::http::{HttpError, Request};
use jobrunner_sdk::{Failure, cache};
use serde::{Deserialize, Serialize};

const DEFAULT_CONTACT_TTL_SECS: u64 = 3600;

/// How a vendor or client is reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
    pub webhook_url: Option<String>,
}

/// The cache key the app may also write to, to skip the API.
pub fn vendor_contact_key(vendor_id: &str) -> String {
    format!("vendor:{vendor_id}:contact")
}

pub fn client_contact_key(client_id: &str) -> String {
    format!("client:{client_id}:contact")
}

/// Set by the app (to any value) once the vendor answers the conversation.
pub fn answered_key(conversation_id: &str) -> String {
    format!("conversation:{conversation_id}:answered")
}

pub fn vendor_contact(vendor_id: &str) -> Result<Contact, Failure> {
    contact(&vendor_contact_key(vendor_id), &format!("/vendors/{vendor_id}/contact"), &format!("vendor:{vendor_id}"))
}

pub fn client_contact(client_id: &str) -> Result<Contact, Failure> {
    contact(&client_contact_key(client_id), &format!("/clients/{client_id}/contact"), &format!("client:{client_id}"))
}

fn contact(key: &str, path: &str, tag: &str) -> Result<Contact, Failure> {
    // A malformed entry is ignored and overwritten below.
    if let Some(bytes) = cache::get(key).map_err(Failure::Retry)?
        && let Ok(contact) = serde_json::from_slice::<Contact>(&bytes)
    {
        return Ok(contact);
    }
    let body = get_json(path)?;
    let contact: Contact = serde_json::from_slice(&body)
        .map_err(|e| Failure::Permanent(format!("app API {path} returned an unexpected contact: {e}")))?;
    let ttl_secs =
        jobrunner_sdk::config::get("contact_ttl_secs").and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CONTACT_TTL_SECS);
    let encoded = serde_json::to_vec(&contact).expect("a contact serialises");
    cache::set(key, &encoded, Some(ttl_secs * 1000), &[tag.to_string()]).map_err(Failure::Retry)?;
    Ok(contact)
}

/// Whether the vendor has answered: the app's cache flag first, then the API
/// (`GET /conversations/{id}` answering `{"answered": bool}`) when configured.
pub fn conversation_answered(conversation_id: &str) -> Result<bool, Failure> {
    if cache::get(&answered_key(conversation_id)).map_err(Failure::Retry)?.is_some() {
        return Ok(true);
    }
    if jobrunner_sdk::config::get("api_base_url").is_none() {
        return Ok(false);
    }
    #[derive(Deserialize)]
    struct Conversation {
        answered: bool,
    }
    let path = format!("/conversations/{conversation_id}");
    let body = get_json(&path)?;
    let c: Conversation = serde_json::from_slice(&body)
        .map_err(|e| Failure::Permanent(format!("app API {path} returned an unexpected answer: {e}")))?;
    Ok(c.answered)
}

fn get_json(path: &str) -> Result<Vec<u8>, Failure> {
    let base = jobrunner_sdk::required_config("api_base_url")?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut request = Request::get(&url).header("accept", "application/json");
    if let Some(token) = jobrunner_sdk::config::secret("api_token") {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let response = request.send().map_err(|e| match e {
        HttpError::Denied(_) | HttpError::InvalidUrl(_) | HttpError::TooLarge(_) => Failure::Permanent(e.to_string()),
        _ => Failure::Retry(e.to_string()),
    })?;
    match response.status {
        200..=299 => Ok(response.body),
        404 => Err(Failure::Permanent(format!("app API {path}: not found"))),
        400..=499 if response.status != 408 && response.status != 429 => {
            Err(Failure::Permanent(format!("app API {path} answered {}", response.status)))
        }
        status => Err(Failure::Retry(format!("app API {path} answered {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable() {
        // The app writes these keys itself; changing them breaks apps.
        assert_eq!(vendor_contact_key("v1"), "vendor:v1:contact");
        assert_eq!(answered_key("c9"), "conversation:c9:answered");
    }

    #[test]
    fn contact_accepts_missing_channels() {
        let c: Contact = serde_json::from_str(r#"{"name":"Lumen","email":"l@x.test"}"#).unwrap();
        assert_eq!(c.webhook_url, None);
    }
}
