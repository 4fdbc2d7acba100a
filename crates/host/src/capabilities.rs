//! The host side of the contract's imports: log, cache, queue, email,
//! config and (0.2) flow, for one job's store, for every contract version.
//! Where the versions agree, each version's bindings are a thin
//! conversion (`shared_capabilities!`) over one body on `JobState`.
//!
//! Every call is checked: a plugin can only reach its own cache namespace,
//! its own config and secrets, the queues and job types its grant names
//! (`host::grants`), the senders and recipients its email grant allows,
//! and bounded numbers of follow-ups and emails. A refused call returns an
//! error value to the plugin; nothing here traps.

use crate::mail::{OutgoingEmail, SendError};
use crate::state::JobState;
use jobrunner_job::flow::{FlowFollowUp, FlowFollowUpJob, OnFailure};
use jobrunner_job::{FollowUp, LogLevel, LogSource, MAX_PAYLOAD_BYTES, check_job_type, check_queue_name};
use std::time::Duration;
use wasmtime::Result;

/// The most follow-up jobs one attempt may enqueue.
pub const MAX_FOLLOW_UPS: usize = 1000;

/// The most payload bytes one attempt's follow-ups and flows may hold
/// together: the host keeps them until the attempt ends, and Redis then
/// holds them, so a plugin calling `enqueue` or `enqueue-flow` again and
/// again within its own memory cap cannot pile up more than this.
pub const MAX_FOLLOW_UP_BYTES: usize = 32 << 20;

use jobrunner_job::flow::MAX_FLOW_DEPTH;
/// The most jobs of flows one attempt may enqueue (a campaign's one child
/// per recipient), as many as one flow may hold.
pub use jobrunner_job::flow::MAX_FLOW_JOBS;

/// A follow-up's options, whatever the contract version.
#[derive(Default)]
struct Options {
    delay_ms: Option<u64>,
    priority: Option<u32>,
    job_id: Option<String>,
    max_attempts: Option<u32>,
    group: Option<String>,
}

/// The imports whose shape every version shares: each version's types
/// converted, then one body.
macro_rules! shared_capabilities {
    ($v:ident) => {
        mod $v {
            use crate::contract::$v::jobrunner::plugin::{cache, config, email, log, types};
            use crate::mail::{OutgoingEmail, SendError};
            use crate::state::JobState;
            use jobrunner_job::LogLevel;
            use wasmtime::Result;

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
                    self.write_log(level, message);
                    Ok(())
                }

                async fn progress(&mut self, percent: u8) -> Result<()> {
                    self.report_progress(percent);
                    Ok(())
                }
            }

            impl cache::Host for JobState {
                async fn get(&mut self, key: String) -> Result<Result<Option<Vec<u8>>, String>> {
                    Ok(self.cache_get(key).await)
                }

                async fn set(
                    &mut self,
                    key: String,
                    value: Vec<u8>,
                    ttl_ms: Option<u64>,
                    tags: Vec<String>,
                ) -> Result<Result<(), String>> {
                    Ok(self.cache_set(key, value, ttl_ms, tags).await)
                }

                async fn delete(&mut self, key: String) -> Result<Result<bool, String>> {
                    Ok(self.cache_delete(key).await)
                }

                async fn invalidate_tag(&mut self, tag: String) -> Result<Result<u32, String>> {
                    Ok(self.cache_invalidate_tag(tag).await)
                }
            }

            impl email::Host for JobState {
                async fn send(&mut self, message: email::Message) -> Result<Result<String, email::SendError>> {
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
                    Ok(self.send_email(outgoing).await.map_err(|e| match e {
                        SendError::Invalid(m) => email::SendError::Invalid(m),
                        SendError::Transient(m) => email::SendError::Transient(m),
                    }))
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
        }
    };
}

shared_capabilities!(v0_1);
shared_capabilities!(v0_2);

impl crate::contract::v0_1::jobrunner::plugin::queue::Host for JobState {
    async fn enqueue(
        &mut self,
        queue_name: String,
        job_type: String,
        payload: String,
        options: crate::contract::v0_1::jobrunner::plugin::queue::EnqueueOptions,
    ) -> Result<Result<String, String>> {
        let options = Options {
            delay_ms: options.delay_ms,
            priority: options.priority,
            job_id: options.job_id,
            max_attempts: options.max_attempts,
            group: None,
        };
        Ok(self.buffer_follow_up(queue_name, job_type, payload, options))
    }
}

mod v0_2_only {
    use super::{MAX_FLOW_JOBS, Options};
    use crate::contract::v0_2::jobrunner::plugin::{flow, queue};
    use crate::state::JobState;
    use jobrunner_job::flow::{ChildState, OnFailure};
    use wasmtime::Result;

    fn options(o: queue::EnqueueOptions) -> Options {
        Options {
            delay_ms: o.delay_ms,
            priority: o.priority,
            job_id: o.job_id,
            max_attempts: o.max_attempts,
            group: o.group,
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
            Ok(self.buffer_follow_up(queue_name, job_type, payload, self::options(options)))
        }

        async fn enqueue_flow(&mut self, jobs: Vec<queue::FlowJob>) -> Result<Result<String, String>> {
            if jobs.len() > MAX_FLOW_JOBS {
                return Ok(Err(format!("a flow of {} jobs; at most {MAX_FLOW_JOBS}", jobs.len())));
            }
            let jobs = jobs
                .into_iter()
                .map(|j| {
                    let on_failure = match j.on_failure {
                        queue::OnFailure::Fail => OnFailure::Fail,
                        queue::OnFailure::Ignore => OnFailure::Ignore,
                        queue::OnFailure::Continue => OnFailure::Continue,
                    };
                    (j.queue, j.job_type, j.payload, options(j.options), j.parent, on_failure)
                })
                .collect();
            Ok(self.buffer_flow(jobs))
        }
    }

    impl flow::Host for JobState {
        async fn children(&mut self, from: u32, count: u32) -> Result<Result<Option<flow::ChildrenPage>, String>> {
            let page = match self.read_children(from, count).await {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(Ok(None)),
                Err(e) => return Ok(Err(e)),
            };
            let c = &page.counts;
            let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
            Ok(Ok(Some(flow::ChildrenPage {
                counts: crate::contract::v0_2::jobrunner::plugin::types::ChildCounts {
                    total: n(c.total),
                    pending: n(c.pending.max(0) as u64),
                    completed: n(c.completed),
                    failed: n(c.failed),
                    removed: n(c.removed),
                },
                children: page
                    .children
                    .into_iter()
                    .map(|child| flow::Child {
                        number: n(child.number),
                        queue: child.queue,
                        id: child.id,
                        state: match child.state {
                            ChildState::Pending => flow::ChildState::Pending,
                            ChildState::Completed => flow::ChildState::Completed,
                            ChildState::Failed => flow::ChildState::Failed,
                            ChildState::Removed => flow::ChildState::Removed,
                        },
                        output: child.value.map(|v| v.to_string()),
                        error: child.error,
                    })
                    .collect(),
                next: page.next.map(n),
            })))
        }
    }
}

impl JobState {
    fn write_log(&mut self, level: LogLevel, message: String) {
        self.log.lock().unwrap().push(level, LogSource::Plugin, message);
    }

    fn report_progress(&mut self, percent: u8) {
        let percent = percent.min(100);
        self.progress = Some(percent);
        if let Some(tell) = &self.on_progress {
            tell(percent);
        }
    }

    async fn cache_get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        let ns = &self.plugin.grants.cache_namespace;
        self.plugin.services.cache.get(ns, &key).await.map_err(|e| format!("{e:#}"))
    }

    async fn cache_set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        tags: Vec<String>,
    ) -> Result<(), String> {
        let ns = &self.plugin.grants.cache_namespace;
        let ttl = ttl_ms.map(Duration::from_millis);
        let budget = &self.plugin.grants.cache_budget;
        self.plugin.services.cache.set(ns, &key, value, ttl, &tags, budget).await.map_err(|e| format!("{e:#}"))
    }

    async fn cache_delete(&mut self, key: String) -> Result<bool, String> {
        let ns = &self.plugin.grants.cache_namespace;
        self.plugin.services.cache.delete(ns, &key).await.map_err(|e| format!("{e:#}"))
    }

    async fn cache_invalidate_tag(&mut self, tag: String) -> Result<u32, String> {
        let ns = &self.plugin.grants.cache_namespace;
        self.plugin.services.cache.invalidate_tag(ns, &tag).await.map_err(|e| format!("{e:#}"))
    }

    /// A follow-up job checked against the grants and limits: the job, or
    /// why not (logged when a grant refuses it). `pending` is the payload
    /// bytes of jobs checked but not yet kept (the rest of a flow).
    fn check_follow_up(
        &mut self,
        queue_name: String,
        job_type: String,
        payload: String,
        options: Options,
        pending: usize,
    ) -> Result<FollowUp, String> {
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
        if self.follow_up_bytes + pending + payload.len() > MAX_FOLLOW_UP_BYTES {
            return Err(format!(
                "this attempt's follow-ups and flows would hold more than {} MiB of payloads",
                MAX_FOLLOW_UP_BYTES >> 20
            ));
        }
        let payload: serde_json::Value =
            serde_json::from_str(&payload).map_err(|e| format!("payload is not valid JSON: {e}"))?;
        if options.max_attempts == Some(0) {
            return Err("max-attempts must be at least 1".into());
        }
        if let Some(group) = &options.group
            && (group.is_empty() || group.len() > 256)
        {
            return Err("a group is 1 to 256 bytes".into());
        }
        let explicit_id = options.job_id.is_some();
        let id = match options.job_id {
            Some(id) => {
                jobrunner_job::check_job_id(&id)?;
                id
            }
            None => ulid::Ulid::new().to_string(),
        };
        Ok(FollowUp {
            id,
            queue: queue_name,
            job_type,
            payload,
            delay_ms: options.delay_ms,
            priority: options.priority,
            max_attempts: options.max_attempts,
            group: options.group,
            explicit_id,
        })
    }

    fn buffer_follow_up(
        &mut self,
        queue_name: String,
        job_type: String,
        payload: String,
        options: Options,
    ) -> Result<String, String> {
        if self.follow_ups.len() >= MAX_FOLLOW_UPS {
            return Err(format!("at most {MAX_FOLLOW_UPS} follow-up jobs per attempt"));
        }
        let bytes = payload.len();
        let job = self.check_follow_up(queue_name, job_type, payload, options, 0)?;
        let id = job.id.clone();
        self.follow_ups.push(job);
        self.follow_up_bytes += bytes;
        Ok(id)
    }

    /// A flow (`queue.enqueue-flow`), each job checked as a follow-up is,
    /// and the tree as a flow must be: one root first, each other job's
    /// parent before it. Answers the root's id.
    #[allow(clippy::type_complexity)]
    fn buffer_flow(
        &mut self,
        jobs: Vec<(String, String, String, Options, Option<u32>, OnFailure)>,
    ) -> Result<String, String> {
        let queued: usize = self.flows.iter().map(|f| f.jobs.len()).sum();
        if queued + jobs.len() > MAX_FLOW_JOBS {
            return Err(format!("at most {MAX_FLOW_JOBS} jobs of flows per attempt"));
        }
        if jobs.is_empty() {
            return Err("a flow needs at least its root".into());
        }
        let mut checked = Vec::with_capacity(jobs.len());
        let mut depth = Vec::with_capacity(jobs.len());
        // The flow's payload bytes so far: kept only if the whole flow is.
        let mut bytes = 0;
        for (i, (queue, job_type, payload, options, parent, on_failure)) in jobs.into_iter().enumerate() {
            let parent = match (i, parent) {
                (0, None) => None,
                (0, Some(_)) => return Err("job 0 is the flow's root: it has no parent".into()),
                (_, None) => return Err(format!("job {i} has no parent: only the first job is the root")),
                (_, Some(p)) if p as usize >= i => {
                    return Err(format!("job {i} names job {p} as its parent, which does not come before it"));
                }
                (_, Some(p)) => Some(p as usize),
            };
            let d = parent.map_or(0, |p| depth[p] + 1);
            if d > MAX_FLOW_DEPTH {
                return Err(format!("job {i} is deeper than {MAX_FLOW_DEPTH} levels"));
            }
            depth.push(d);
            let len = payload.len();
            let job =
                self.check_follow_up(queue, job_type, payload, options, bytes).map_err(|e| format!("job {i}: {e}"))?;
            bytes += len;
            checked.push(FlowFollowUpJob { job, parent, on_failure });
        }
        let root = checked[0].job.id.clone();
        self.flows.push(FlowFollowUp { jobs: checked });
        self.follow_up_bytes += bytes;
        Ok(root)
    }

    async fn send_email(&mut self, outgoing: OutgoingEmail) -> Result<String, SendError> {
        let rules = &self.plugin.rules;
        if self.emails.len() >= rules.max_emails {
            return Err(SendError::Invalid(format!("at most {} emails per attempt (max_emails)", rules.max_emails)));
        }
        let refusal = outgoing.from.as_deref().and_then(|f| rules.refuses_sender(f)).or_else(|| {
            outgoing.to.iter().chain(&outgoing.cc).chain(&outgoing.bcc).find_map(|r| rules.refuses_recipient(r))
        });
        if let Some(refusal) = refusal {
            self.log.lock().unwrap().push(LogLevel::Warn, LogSource::Host, format!("email refused: {refusal}"));
            return Err(SendError::Invalid(refusal));
        }
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
                Ok(id)
            }
            Err(e) => {
                if let SendError::Transient(m) = &e {
                    self.log.lock().unwrap().push(LogLevel::Warn, LogSource::Host, format!("email not delivered: {m}"));
                }
                Err(e)
            }
        }
    }

    /// The current job's children, if it is a flow's parent and the runner
    /// can read them (`Services::flows`).
    async fn read_children(
        &mut self,
        from: u32,
        count: u32,
    ) -> Result<Option<jobrunner_job::flow::ChildrenPage>, String> {
        if from == 0 || count == 0 || count > 1000 {
            return Err("from starts at 1, and count is 1 to 1000".into());
        }
        let Some(reader) = self.plugin.services.flows.clone() else {
            return Err("this runner reads no flows (`runner exec` runs one job, outside any queue)".into());
        };
        let Some(job) = self.job.clone() else { return Ok(None) };
        reader.children(&job.queue, &job.id, u64::from(from), u64::from(count)).await.map_err(|e| format!("{e:#}"))
    }
}
