//! The production transport: SMTP through lettre's pooled async client,
//! with STARTTLS, implicit TLS or (for a loopback relay) plain text.

use super::SendError;
use anyhow::{Context, Result};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How a connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, serde::Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on loopback or a trusted network.
    None,
    /// STARTTLS on the submission port (587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// The SMTP server to deliver through, its password already resolved.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    pub host: String,
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub timeout: std::time::Duration,
}

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    url: String,
}

impl Smtp {
    pub fn new(section: &SmtpOptions) -> Result<Smtp> {
        let (builder, default_port, scheme) = match section.tls {
            SmtpTls::None => (AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&section.host), 25, "smtp"),
            SmtpTls::Starttls => (
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&section.host)
                    .with_context(|| format!("mail.smtp.host `{}`", section.host))?,
                587,
                "smtp+starttls",
            ),
            SmtpTls::Tls => (
                AsyncSmtpTransport::<Tokio1Executor>::relay(&section.host)
                    .with_context(|| format!("mail.smtp.host `{}`", section.host))?,
                465,
                "smtps",
            ),
        };
        let port = section.port.unwrap_or(default_port);
        let mut builder = builder.port(port).timeout(Some(section.timeout));
        if let Some(user) = &section.username {
            let password = section.password.clone().unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Smtp { transport: builder.build(), url: format!("{scheme}://{}:{port}", section.host) })
    }

    pub fn describe(&self) -> String {
        self.url.clone()
    }

    pub async fn deliver(&self, message: &Message) -> Result<String, SendError> {
        match self.transport.send(message.clone()).await {
            Ok(_) => Ok(self.url.clone()),
            // A 5xx answer (unknown mailbox, refused sender) will not change on retry.
            Err(e) if e.is_permanent() => Err(SendError::Invalid(format!("{} refused the message: {e}", self.url))),
            Err(e) => Err(SendError::Transient(format!("{}: {e}", self.url))),
        }
    }
}
