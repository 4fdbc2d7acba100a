//! The production transport: SMTP through lettre's pooled async client,
//! with STARTTLS, implicit TLS or (for a loopback relay) plain text.

use super::SendError;
use crate::config::{SmtpSection, SmtpTls, resolve_secret};
use anyhow::{Context, Result};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    url: String,
}

impl Smtp {
    pub fn new(section: &SmtpSection) -> Result<Smtp> {
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
            let password = section.password.as_deref().map(resolve_secret).transpose()?.unwrap_or_default();
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
