//! A queue's events as they happen: `Queue::wait` (a job's record once it
//! has finished, or where it stands when the wait runs out) and
//! `EventReader` (every event after a given one, for a producer that wants
//! each completion).
//!
//! Both read the capped events stream (`docs/queue-protocol.md`) with a
//! blocking `XREAD` on a connection of their own: a blocking read on the
//! shared, multiplexed connection would hold up every other command, and a
//! reader costs Redis nothing while no event comes.

use crate::connection::{BLOCKING_READ_MAX, Blocking};
use crate::queue::Queue;
use crate::record::{JobRecord, State};
use anyhow::{Context, Result, anyhow};
use std::time::{Duration, Instant};

/// The events after which a job's wait ends: it finished, or it is gone.
const ENDS_A_WAIT: [&str; 3] = ["completed", "failed", "removed"];

/// The most events one read returns.
const READ_COUNT: usize = 1000;

/// One event of a queue: its stream id (events are ordered by it; give it
/// back as `after` to read on from there), its name (`added`, `completed`,
/// `failed`, `retrying`, `progress`, ...) and its fields.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    pub id: String,
    pub name: String,
    pub fields: Vec<(String, String)>,
}

impl Event {
    /// The jobs it names: one, each of a batch, or `*` for the queue.
    pub fn job_ids(&self) -> Vec<&str> {
        Queue::event_ids(&self.fields)
    }
}

/// Reads a queue's events in order, on a connection of its own.
pub struct EventReader {
    key: String,
    conn: Blocking,
    after: String,
}

impl EventReader {
    /// The events after the last one read, waiting up to `block` for the
    /// first; none if nothing came by then.
    pub async fn next(&mut self, block: Duration) -> Result<Vec<Event>> {
        // `BLOCK 0` would wait for ever: a millisecond is the least.
        let ms = block.min(BLOCKING_READ_MAX).as_millis().max(1) as u64;
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(READ_COUNT).arg("BLOCK").arg(ms).arg("STREAMS").arg(&self.key).arg(&self.after);
        type Reply = Option<Vec<(String, Vec<(String, Vec<(String, String)>)>)>>;
        let reply: Reply = self.conn.query(&cmd).await.context("read the queue's events")?;
        let mut events = Vec::new();
        for (_, entries) in reply.unwrap_or_default() {
            for (id, fields) in entries {
                let name = fields.first().filter(|(k, _)| k == "event").map(|(_, v)| v.clone()).unwrap_or_default();
                events.push(Event { id, name, fields });
            }
        }
        if let Some(last) = events.last() {
            self.after = last.id.clone();
        }
        Ok(events)
    }

    /// The id of the last event read (or the one it started after).
    pub fn position(&self) -> &str {
        &self.after
    }
}

impl Queue {
    /// A reader of this queue's events after the event `after` (a stream id
    /// from an earlier `Event`), or, with none, after the newest one now.
    pub async fn events_after(&self, after: Option<&str>) -> Result<EventReader> {
        let after = match after {
            Some(id) => {
                anyhow::ensure!(is_stream_id(id), "`{id}` is not an event id (such as 1733420000000-0)");
                id.to_string()
            }
            None => self.latest_event_id().await?.unwrap_or_else(|| "0-0".into()),
        };
        let conn = self.inner.conn.blocking().await?;
        Ok(EventReader { key: self.inner.keys.get("events").to_string(), conn, after })
    }

    /// Waits up to `timeout` for job `id` to finish: its record once it has
    /// completed or failed (for good: a retry goes on waiting), or as it
    /// stands when the time is up; none if there is no such job, or it was
    /// removed while waited for.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Option<JobRecord>> {
        jobrunner_job::check_job_id(id).map_err(|e| anyhow!(e))?;
        let deadline = Instant::now() + timeout;
        // The newest event is taken before the job is read, so whatever
        // finishes it after that read is an event after this one.
        let after = self.latest_event_id().await?.unwrap_or_else(|| "0-0".into());
        match self.get(id).await? {
            Some(r) if !finished(&r) => {}
            done_or_none => return Ok(done_or_none),
        }
        let mut reader = self.events_after(Some(&after)).await?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return self.get(id).await;
            }
            let events = reader.next(left).await?;
            if events.iter().any(|e| ENDS_A_WAIT.contains(&e.name.as_str()) && e.job_ids().contains(&id)) {
                return self.get(id).await;
            }
        }
    }
}

fn finished(record: &JobRecord) -> bool {
    matches!(record.state, State::Completed | State::Failed)
}

/// `MS-SEQ`, as Redis makes stream ids.
fn is_stream_id(id: &str) -> bool {
    let mut parts = id.splitn(2, '-');
    let ms = parts.next().unwrap_or("");
    let seq = parts.next().unwrap_or("0");
    !ms.is_empty()
        && ms.bytes().all(|b| b.is_ascii_digit())
        && !seq.is_empty()
        && seq.bytes().all(|b| b.is_ascii_digit())
}
