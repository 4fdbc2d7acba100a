//! The host side of the contract's imports (0.1): log, cache, queue, email
//! and config, for one job's store.
//!
//! Every call is checked: a plugin can only reach its own cache namespace,
//! its own config and secrets, the queues and job types its grant names
//! (`host::grants`), the senders and recipients its email grant allows,
//! and bounded numbers of follow-ups and emails. A refused call returns an
//! error value to the plugin; nothing here traps.

use crate::contract::v0_1::jobrunner::plugin::{cache, config, email, log, queue, types};
use crate::mail::{OutgoingEmail, SendError};
use crate::state::JobState;
use jobrunner_job::{FollowUp, LogLevel, LogSource, MAX_PAYLOAD_BYTES, check_job_type, check_queue_name};
use std::time::Duration;
use wasmtime::Result;

/// The most follow-up jobs one attempt may enqueue.
pub const MAX_FOLLOW_UPS: usize = 1000;

impl types::Host for JobState {}

impl log::Host for JobState {
    async fn write(&mut self, level: log::Level, message: String) -> Result<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.log.lock().unwrap().push(level, LogSource::Plugin, message);
        Ok(())
    }

    async fn progress(&mut self, percent: u8) -> Result<()> {
        let percent = percent.min(100);
        self.progress = Some(percent);
        if let Some(tell) = &self.on_progress {
            tell(percent);
        }
        Ok(())
    }
}

impl cache::Host for JobState {
    async fn get(&mut self, key: String) -> Result<Result<Option<Vec<u8>>, String>> {
        let ns = &self.plugin.grants.cache_namespace;
        Ok(self.plugin.services.cache.get(ns, &key).await.map_err(|e| format!("{e:#}")))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        tags: Vec<String>,
    ) -> Result<Result<(), String>> {
        let ns = &self.plugin.grants.cache_namespace;
        let ttl = ttl_ms.map(Duration::from_millis);
        let budget = &self.plugin.grants.cache_budget;
        Ok(self.plugin.services.cache.set(ns, &key, value, ttl, &tags, budget).await.map_err(|e| format!("{e:#}")))
    }

    async fn delete(&mut self, key: String) -> Result<Result<bool, String>> {
        let ns = &self.plugin.grants.cache_namespace;
        Ok(self.plugin.services.cache.delete(ns, &key).await.map_err(|e| format!("{e:#}")))
    }

    async fn invalidate_tag(&mut self, tag: String) -> Result<Result<u32, String>> {
        let ns = &self.plugin.grants.cache_namespace;
        Ok(self.plugin.services.cache.invalidate_tag(ns, &tag).await.map_err(|e| format!("{e:#}")))
    }
}

impl queue::Host for JobState {
    async fn enqueue(
        &mut self,
        queue_name: String,
        job_type: String,
        payload: String,
        options: queue::EnqueueOptions,
    ) -> Result<Result<String, String>> {
        Ok(self.buffer_follow_up(queue_name, job_type, payload, options))
    }
}

impl JobState {
    fn buffer_follow_up(
        &mut self,
        queue_name: String,
        job_type: String,
        payload: String,
        options: queue::EnqueueOptions,
    ) -> Result<String, String> {
        if self.follow_ups.len() >= MAX_FOLLOW_UPS {
            return Err(format!("at most {MAX_FOLLOW_UPS} follow-up jobs per attempt"));
        }
        // An empty queue name means the queue of the job being handled.
        let queue_name = if queue_name.is_empty() { self.queue.clone() } else { queue_name };
        check_queue_name(&queue_name)?;
        check_job_type(&job_type)?;
        if let Some(refusal) = self.plugin.rules.refuses_follow_up(&self.queue, &queue_name, &job_type) {
            self.log.lock().unwrap().push(LogLevel::Warn, LogSource::Host, format!("follow-up refused: {refusal}"));
            return Err(refusal);
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(format!("payload of {} bytes is over the {MAX_PAYLOAD_BYTES} byte limit", payload.len()));
        }
        let payload: serde_json::Value =
            serde_json::from_str(&payload).map_err(|e| format!("payload is not valid JSON: {e}"))?;
        if options.max_attempts == Some(0) {
            return Err("max-attempts must be at least 1".into());
        }
        let explicit_id = options.job_id.is_some();
        let id = match options.job_id {
            Some(id) => {
                jobrunner_job::check_job_id(&id)?;
                id
            }
            None => ulid::Ulid::new().to_string(),
        };
        self.follow_ups.push(FollowUp {
            id: id.clone(),
            queue: queue_name,
            job_type,
            payload,
            delay_ms: options.delay_ms,
            priority: options.priority,
            max_attempts: options.max_attempts,
            explicit_id,
        });
        Ok(id)
    }
}

impl email::Host for JobState {
    async fn send(&mut self, message: email::Message) -> Result<Result<String, email::SendError>> {
        let rules = &self.plugin.rules;
        if self.emails.len() >= rules.max_emails {
            return Ok(Err(email::SendError::Invalid(format!(
                "at most {} emails per attempt (max_emails)",
                rules.max_emails
            ))));
        }
        let refusal = message.from.as_deref().and_then(|f| rules.refuses_sender(f)).or_else(|| {
            message.to.iter().chain(&message.cc).chain(&message.bcc).find_map(|r| rules.refuses_recipient(r))
        });
        if let Some(refusal) = refusal {
            self.log.lock().unwrap().push(LogLevel::Warn, LogSource::Host, format!("email refused: {refusal}"));
            return Ok(Err(email::SendError::Invalid(refusal)));
        }
        let outgoing = OutgoingEmail {
            from: message.from,
            to: message.to,
            cc: message.cc,
            bcc: message.bcc,
            reply_to: message.reply_to,
            subject: message.subject,
            text: message.text,
            html: message.html,
            headers: message.headers,
        };
        let plugin = self.plugin.clone();
        match plugin.services.mailer.send(outgoing, plugin.grants.sender.as_deref()).await {
            Ok(sent) => {
                self.log.lock().unwrap().push(
                    LogLevel::Info,
                    LogSource::Host,
                    format!("email {} to {} delivered to {}", sent.message_id, sent.to.join(", "), sent.delivered_to),
                );
                let id = sent.message_id.clone();
                self.emails.push(sent);
                Ok(Ok(id))
            }
            Err(SendError::Invalid(m)) => Ok(Err(email::SendError::Invalid(m))),
            Err(SendError::Transient(m)) => {
                self.log.lock().unwrap().push(LogLevel::Warn, LogSource::Host, format!("email not delivered: {m}"));
                Ok(Err(email::SendError::Transient(m)))
            }
        }
    }
}

impl config::Host for JobState {
    async fn get(&mut self, key: String) -> Result<Option<String>> {
        Ok(self.plugin.grants.config.get(&key).cloned())
    }

    async fn secret(&mut self, key: String) -> Result<Option<String>> {
        Ok(self.plugin.grants.secrets.get(&key).cloned())
    }
}
