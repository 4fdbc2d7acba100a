//! Email delivery for plugins.
//!
//! Duties:
//! 1. turn a plugin's message into a real MIME message (lettre), refusing
//!    what is wrong with it (bad addresses, no body, headers a plugin may not
//!    set) as `SendError::Invalid`, which the plugin treats as permanent;
//! 2. deliver it: by SMTP when the operator configured a server (TLS and
//!    credentials supported), else, for development, as an `.eml` file in
//!    the outbox folder. Delivery failures are `SendError::Transient`,
//!    except an SMTP server's permanent (5xx) refusal.

mod outbox;
mod smtp;

use anyhow::Result;
use jobrunner_job::SentEmail;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
pub use smtp::{SmtpOptions, SmtpTls};

/// Headers a plugin may not set itself: the builder owns them, and letting
/// a plugin set them would let it forge routing or break the MIME structure.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "message-id",
    "date",
    "sender",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "return-path",
];

/// A message as a plugin hands it over.
#[derive(Debug, Clone, Default)]
pub struct OutgoingEmail {
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error("delivery failed: {0}")]
    Transient(String),
}

enum Transport {
    Outbox(outbox::Outbox),
    Smtp(smtp::Smtp),
}

pub struct Mailer {
    transport: Transport,
}

/// The sender of outbox mail that names none, when the operator set no
/// default: the outbox reaches no mailbox (it writes files), so `runner
/// exec` and a first `runner serve` send their samples without a config.
/// With SMTP, a missing sender is the config's error, found at start.
pub const OUTBOX_SENDER: &str = "jobrunner@localhost";

impl Mailer {
    /// Delivers through an SMTP server (its pool connects on first use).
    pub fn smtp(options: &SmtpOptions) -> Result<Mailer> {
        Ok(Mailer { transport: Transport::Smtp(smtp::Smtp::new(options)?) })
    }

    pub fn outbox(dir: std::path::PathBuf) -> Mailer {
        Mailer { transport: Transport::Outbox(outbox::Outbox::new(dir)) }
    }

    /// Where messages go, for logs and reports.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Outbox(o) => format!("outbox {}", o.dir().display()),
            Transport::Smtp(s) => s.describe(),
        }
    }

    /// Builds and delivers `email`; `default_from` applies when it names no sender.
    pub async fn send(&self, email: OutgoingEmail, default_from: Option<&str>) -> Result<SentEmail, SendError> {
        let message_id = format!("<{}@jobrunner>", ulid::Ulid::new());
        let default_from = match (&self.transport, default_from) {
            (Transport::Outbox(_), None) if email.from.is_none() => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    tracing::warn!(
                        sender = OUTBOX_SENDER,
                        "no sender is configured: outbox mail that names none is sent as {OUTBOX_SENDER} (set [mail] sender)"
                    )
                });
                Some(OUTBOX_SENDER)
            }
            (_, given) => given,
        };
        let (message, from) = build(&email, default_from, &message_id)?;
        let delivered_to = match &self.transport {
            Transport::Outbox(o) => o.deliver(&message).await?,
            Transport::Smtp(s) => s.deliver(&message).await?,
        };
        Ok(SentEmail { message_id, from, to: email.to.clone(), subject: email.subject.clone(), delivered_to })
    }
}

/// The bare address of `Name <address>` (or of an address), lowercased;
/// None if it is not one (the mailer then refuses it, saying why).
pub fn address_of(text: &str) -> Option<String> {
    text.parse::<Mailbox>().ok().map(|m| m.email.to_string().to_ascii_lowercase())
}

fn mailbox(field: &str, address: &str) -> Result<Mailbox, SendError> {
    address.parse::<Mailbox>().map_err(|e| SendError::Invalid(format!("`{field}` address `{address}`: {e}")))
}

/// Builds the MIME message; every error is the message's own fault.
fn build(email: &OutgoingEmail, default_from: Option<&str>, message_id: &str) -> Result<(Message, String), SendError> {
    let from = email.from.as_deref().or(default_from).ok_or_else(|| {
        SendError::Invalid("no sender: give `from`, or set `sender` for the plugin in the runner's config".into())
    })?;
    if email.to.is_empty() && email.cc.is_empty() && email.bcc.is_empty() {
        return Err(SendError::Invalid("no recipient".into()));
    }
    if email.subject.contains(['\r', '\n']) {
        return Err(SendError::Invalid("the subject contains a line break".into()));
    }
    let mut builder = Message::builder()
        .from(mailbox("from", from)?)
        .subject(email.subject.clone())
        .message_id(Some(message_id.to_string()));
    for a in &email.to {
        builder = builder.to(mailbox("to", a)?);
    }
    for a in &email.cc {
        builder = builder.cc(mailbox("cc", a)?);
    }
    for a in &email.bcc {
        builder = builder.bcc(mailbox("bcc", a)?);
    }
    if let Some(a) = &email.reply_to {
        builder = builder.reply_to(mailbox("reply_to", a)?);
    }
    for (name, value) in &email.headers {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(SendError::Invalid(format!("header `{name}` is set by the runner, not by plugins")));
        }
        if value.contains(['\r', '\n']) {
            return Err(SendError::Invalid(format!("header `{name}` contains a line break")));
        }
        let header = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| SendError::Invalid(format!("`{name}` is not a valid header name")))?;
        builder = builder.raw_header(HeaderValue::new(header, value.clone()));
    }
    let message = match (&email.text, &email.html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(text.clone(), html.clone())),
        (Some(text), None) => {
            builder.singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text.clone()))
        }
        (None, Some(html)) => builder.singlepart(SinglePart::html(html.clone())),
        (None, None) => return Err(SendError::Invalid("no body: give text, html or both".into())),
    }
    .map_err(|e| SendError::Invalid(e.to_string()))?;
    Ok((message, from.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            to: vec!["Ana <ana@example.com>".into()],
            subject: "Hi".into(),
            text: Some("hello".into()),
            html: Some("<p>hello</p>".into()),
            headers: vec![("X-Campaign".into(), "spring".into())],
            ..Default::default()
        }
    }

    #[test]
    fn builds_a_multipart_message() {
        let (m, from) = build(&email(), Some("jobs@example.com"), "<1@jobrunner>").unwrap();
        assert_eq!(from, "jobs@example.com");
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("X-Campaign: spring"));
        assert!(text.contains("Message-ID: <1@jobrunner>"));
    }

    #[test]
    fn refuses_what_a_plugin_may_not_do() {
        let no_sender = build(&email(), None, "<1@j>").unwrap_err();
        assert!(matches!(no_sender, SendError::Invalid(m) if m.contains("no sender")));
        let mut e = email();
        e.to = vec!["not an address".into()];
        assert!(matches!(build(&e, Some("a@b.c"), "<1@j>"), Err(SendError::Invalid(m)) if m.contains("`to`")));
        let mut e = email();
        e.headers = vec![("Bcc".into(), "x@y.z".into())];
        assert!(matches!(build(&e, Some("a@b.c"), "<1@j>"), Err(SendError::Invalid(m)) if m.contains("Bcc")));
        let mut e = email();
        e.subject = "a\r\nBcc: x@y.z".into();
        assert!(build(&e, Some("a@b.c"), "<1@j>").is_err());
        let mut e = email();
        e.text = None;
        e.html = None;
        assert!(build(&e, Some("a@b.c"), "<1@j>").is_err());
    }
}
