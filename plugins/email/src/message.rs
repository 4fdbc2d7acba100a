//! The email payload and its validation into a message the host can send.

use crate::render;
use jobrunner_sdk::email::Message;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::str::FromStr;

/// One address or a list of them, as producers write either.
#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
pub enum Addresses {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Addresses {
    fn into_vec(self) -> Vec<String> {
        match self {
            Addresses::None => vec![],
            Addresses::One(a) => vec![a],
            Addresses::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub to: Addresses,
    #[serde(default)]
    pub cc: Addresses,
    #[serde(default)]
    pub bcc: Addresses,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    /// Required for raw messages; a template brings its own.
    pub subject: Option<String>,
    pub template: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
    pub text: Option<String>,
    pub html: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn check_address(field: &str, address: &str) -> Result<String, String> {
    // "Name <addr@host>" is accepted; the address inside is what is checked.
    let bare = match (address.rfind('<'), address.rfind('>')) {
        (Some(l), Some(r)) if l < r => &address[l + 1..r],
        _ => address,
    };
    email_address::EmailAddress::from_str(bare.trim())
        .map(|_| address.trim().to_string())
        .map_err(|e| format!("invalid `{field}` address `{address}`: {e}"))
}

fn check_all(field: &str, list: Addresses) -> Result<Vec<String>, String> {
    list.into_vec().iter().map(|a| check_address(field, a)).collect()
}

/// Validates the payload and renders it into a message. Every error here is
/// the producer's mistake, so the caller makes it a permanent failure.
pub fn build(p: Payload, brand: Option<&str>) -> Result<Message, String> {
    let to = check_all("to", p.to)?;
    if to.is_empty() {
        return Err("`to` names no recipient".into());
    }
    let cc = check_all("cc", p.cc)?;
    let bcc = check_all("bcc", p.bcc)?;
    let from = p.from.as_deref().map(|a| check_address("from", a)).transpose()?;
    let reply_to = p.reply_to.as_deref().map(|a| check_address("reply_to", a)).transpose()?;

    let (subject, text, html) = match &p.template {
        Some(name) => {
            if p.text.is_some() || p.html.is_some() {
                return Err("give either `template` or `text`/`html`, not both".into());
            }
            let r = render::render(name, &p.data, brand)?;
            (p.subject.unwrap_or(r.subject), Some(r.text), Some(r.html))
        }
        None => {
            let subject = p.subject.ok_or("`subject` is required without a template")?;
            if p.text.is_none() && p.html.is_none() {
                return Err("give `template`, or `text` and/or `html`".into());
            }
            (subject, p.text, p.html)
        }
    };
    Ok(Message { from, to, cc, bcc, reply_to, subject, text, html, headers: p.headers.into_iter().collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(json: serde_json::Value) -> Payload {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn raw_message_with_list_of_recipients() {
        let m = build(
            payload(serde_json::json!({
                "to": ["a@example.com", "Bea <b@example.com>"],
                "subject": "Hi", "text": "hello"
            })),
            None,
        )
        .unwrap();
        assert_eq!(m.to, vec!["a@example.com", "Bea <b@example.com>"]);
        assert_eq!(m.subject, "Hi");
        assert_eq!(m.text.as_deref(), Some("hello"));
        assert!(m.html.is_none());
    }

    #[test]
    fn invalid_address_is_named() {
        let err =
            build(payload(serde_json::json!({"to": "not-an-address", "subject": "x", "text": "y"})), None).unwrap_err();
        assert!(err.contains("invalid `to` address `not-an-address`"), "{err}");
    }

    #[test]
    fn template_renders_all_parts() {
        let m = build(
            payload(serde_json::json!({
                "to": "c@example.com", "template": "verify_email",
                "data": {"name": "Cleo", "verify_url": "https://app.example.com/v?t=1&u=<x>"}
            })),
            Some("Acme"),
        )
        .unwrap();
        assert!(m.subject.contains("Acme"), "{}", m.subject);
        assert!(m.text.unwrap().contains("https://app.example.com/v?t=1&u=<x>"));
        // HTML escapes what the data carries.
        assert!(m.html.unwrap().contains("&lt;x&gt;"));
    }

    #[test]
    fn raw_without_body_or_subject_is_refused() {
        assert!(build(payload(serde_json::json!({"to": "a@example.com", "subject": "x"})), None).is_err());
        assert!(build(payload(serde_json::json!({"to": "a@example.com", "text": "x"})), None).is_err());
        assert!(build(payload(serde_json::json!({"to": [], "subject": "x", "text": "y"})), None).is_err());
    }

    #[test]
    fn unknown_field_is_refused() {
        let r: Result<Payload, _> = serde_json::from_value(serde_json::json!({"to": "a@example.com", "subjet": "x"}));
        assert!(r.unwrap_err().to_string().contains("subjet"));
    }
}
