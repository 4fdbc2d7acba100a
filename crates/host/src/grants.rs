//! The grants a plugin's follow-ups and email are checked against, as the
//! operator wrote them in `[plugins.NAME]`, parsed once per plugin version.
//!
//! - Follow-ups: a plugin may enqueue its own job types into the queue of
//!   the job it handles, and whatever `may_enqueue` adds (`QUEUE:TYPE`,
//!   either side `*`). So a plugin without HTTP cannot get HTTP by
//!   enqueueing a job of the webhook plugin's type, unless the operator
//!   said it may.
//! - Email: the From address is the operator's: `sender`, or one of
//!   `senders` (`name@example.com`, or `*@example.com` for a domain); a
//!   plugin granted neither may not choose one. `recipient_domains`, when
//!   set, bounds where mail goes (a domain and its subdomains);
//!   `max_emails` how many messages one attempt sends.

use anyhow::{Result, bail};

/// One `may_enqueue` entry; None stands for `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueGrant {
    queue: Option<String>,
    job_type: Option<String>,
}

impl EnqueueGrant {
    pub fn parse(text: &str) -> Result<EnqueueGrant> {
        let Some((queue, job_type)) = text.trim().split_once(':') else {
            bail!("`{text}`: write QUEUE:TYPE (either may be `*`)");
        };
        let side = |s: &str| -> Result<Option<String>> {
            match s.trim() {
                "*" => Ok(None),
                "" => bail!("`{text}`: an empty side (use `*` for any)"),
                name => Ok(Some(name.to_string())),
            }
        };
        Ok(EnqueueGrant { queue: side(queue)?, job_type: side(job_type)? })
    }

    fn allows(&self, queue: &str, job_type: &str) -> bool {
        self.queue.as_deref().is_none_or(|q| q == queue) && self.job_type.as_deref().is_none_or(|t| t == job_type)
    }
}

/// What one plugin version may enqueue and mail, resolved.
#[derive(Debug, Clone, Default)]
pub struct PluginGrants {
    /// Its own job types (from `describe`).
    pub own_types: Vec<String>,
    pub may_enqueue: Vec<EnqueueGrant>,
    /// Lowercased addresses, or `*@domain`.
    pub senders: Vec<String>,
    /// Lowercased domains.
    pub recipient_domains: Vec<String>,
    pub max_emails: usize,
}

impl PluginGrants {
    /// Why a follow-up to `queue` of `job_type` is refused, if it is;
    /// `current` is the queue of the job being handled.
    pub fn refuses_follow_up(&self, current: &str, queue: &str, job_type: &str) -> Option<String> {
        let own = queue == current && self.own_types.iter().any(|t| t == job_type);
        if own || self.may_enqueue.iter().any(|g| g.allows(queue, job_type)) {
            return None;
        }
        Some(format!(
            "this plugin may not enqueue `{job_type}` jobs to queue `{queue}`: add `\"{queue}:{job_type}\"` to its `may_enqueue` grant"
        ))
    }

    /// Why a message from `from` (a plugin's own choice) is refused.
    pub fn refuses_sender(&self, from: &str) -> Option<String> {
        // An address that does not parse is the mailer's to refuse, saying why.
        let address = crate::mail::address_of(from)?;
        if self.senders.is_empty() {
            return Some(format!(
                "this plugin may not choose its From address (`{address}`): leave `from` out to send as the operator's `sender`, or list it in the plugin's `senders`"
            ));
        }
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let ok = self.senders.iter().any(|s| *s == address || s.strip_prefix("*@").is_some_and(|d| d == domain));
        (!ok).then(|| format!("this plugin may not send as `{address}`: its `senders` are {}", self.senders.join(", ")))
    }

    /// Why a recipient is refused, if `recipient_domains` leaves it out.
    pub fn refuses_recipient(&self, to: &str) -> Option<String> {
        if self.recipient_domains.is_empty() {
            return None;
        }
        let address = crate::mail::address_of(to)?;
        let domain = address.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
        let ok = self.recipient_domains.iter().any(|d| domain == *d || domain.ends_with(&format!(".{d}")));
        (!ok).then(|| {
            format!(
                "this plugin may not mail `{address}`: its `recipient_domains` are {}",
                self.recipient_domains.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(may: &[&str]) -> PluginGrants {
        PluginGrants {
            own_types: vec!["reminder".into()],
            may_enqueue: may.iter().map(|g| EnqueueGrant::parse(g).unwrap()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn follow_ups_stay_within_the_grant() {
        let g = grants(&[]);
        assert!(g.refuses_follow_up("default", "default", "reminder").is_none(), "its own type in its own queue");
        assert!(g.refuses_follow_up("default", "other", "reminder").is_some());
        let refusal = g.refuses_follow_up("default", "default", "webhook").unwrap();
        assert!(refusal.contains("\"default:webhook\""), "{refusal}");
        let g = grants(&["emails:email", "*:audit"]);
        assert!(g.refuses_follow_up("default", "emails", "email").is_none());
        assert!(g.refuses_follow_up("default", "emails", "webhook").is_some());
        assert!(g.refuses_follow_up("default", "anywhere", "audit").is_none());
    }

    #[test]
    fn bad_grants_say_why() {
        assert!(EnqueueGrant::parse("emails").unwrap_err().to_string().contains("QUEUE:TYPE"));
        assert!(EnqueueGrant::parse("emails:").unwrap_err().to_string().contains("empty side"));
    }

    #[test]
    fn senders_and_recipients() {
        let g = PluginGrants {
            senders: vec!["jobs@acme.test".into(), "*@mail.acme.test".into()],
            recipient_domains: vec!["acme.test".into()],
            ..Default::default()
        };
        assert!(g.refuses_sender("Jobs <JOBS@acme.test>").is_none());
        assert!(g.refuses_sender("x@mail.acme.test").is_none());
        assert!(g.refuses_sender("ceo@acme.test").unwrap().contains("may not send as `ceo@acme.test`"));
        assert!(g.refuses_recipient("Ana <ana@acme.test>").is_none());
        assert!(g.refuses_recipient("bo@eu.acme.test").is_none());
        assert!(g.refuses_recipient("eve@evil.test").unwrap().contains("`eve@evil.test`"));
        assert!(g.refuses_recipient("eve@notacme.test").is_some());
        let none = PluginGrants::default();
        assert!(none.refuses_sender("a@b.test").unwrap().contains("may not choose its From"));
        assert!(none.refuses_recipient("a@b.test").is_none());
    }
}
