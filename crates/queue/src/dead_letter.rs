//! Dead letters: a queue whose policy names a `dead_letter` queue sends it
//! every job whose attempts ran out, with its errors, where it stays failed
//! and untrimmed until someone handles it: retried back into the queue it
//! failed in (`Queue::retry` on the dead letter), or removed.
//!
//! The two queues may live in different Redis Cluster slots, so no one
//! script can move a job between them. The move is in three steps, each a
//! script, safe to repeat from any step after a crash:
//! 1. the failure itself notes the job in its queue's `dead` set (and
//!    retention leaves it alone while it is there: `prelude.lua`);
//! 2. `dead_letter_in` writes the dead letter into the other queue under
//!    the id `QUEUE:ID`, once (a repeat finds the id and writes nothing; a
//!    letter of an earlier failure, whose retry has not removed it yet, is
//!    replaced: the retry then removes only the letter it read);
//! 3. `dead_letter_out` removes the job from its queue and from `dead`.
//!
//! The runner consuming the queue makes the moves (`daemon/dead_letters.rs`)
//! right after a job fails for good, and sweeps for any left behind.

use crate::queue::{NewJob, Queue, arg, now_ms};
use crate::record::{DeadLetter, JobRecord, Spec, State};
use anyhow::{Context, Result, bail};

/// Moves made per call of `move_dead_letters`; a longer backlog takes
/// several calls.
const BATCH: usize = 100;

/// A dead letter's id in its new queue: `QUEUE:ID`, so that letters from
/// two queues never meet; an id too long for that keeps its queue's name
/// and a digest of the id (the letter's record keeps the id itself).
fn letter_id(queue: &str, id: &str) -> String {
    let joined = format!("{queue}:{id}");
    if jobrunner_job::check_job_id(&joined).is_ok() {
        return joined;
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    format!("{queue}:{:016x}", h.finish())
}

impl Queue {
    /// Moves up to `BATCH` of this queue's jobs that failed for good to
    /// `to`, its dead-letter queue; returns how many moved. A job removed
    /// or retried meanwhile is left alone.
    pub async fn move_dead_letters(&self, to: &Queue) -> Result<usize> {
        if to.name() == self.name() {
            bail!("queue {} cannot be its own dead-letter queue", self.name());
        }
        let pending: Vec<String> = self
            .inner
            .conn
            .query(redis::cmd("ZRANGE").arg(self.inner.keys.get("dead")).arg(0).arg(BATCH as i64 - 1))
            .await
            .context("read the jobs bound for the dead-letter queue")?;
        let mut moved = 0;
        for id in pending {
            let Some(record) = self.get(&id).await? else {
                // Gone (removed by hand): nothing left to move.
                self.admin::<String>("dead_letter_out", &[arg(&id), arg(to.name())]).await?;
                continue;
            };
            if record.state != State::Failed {
                continue;
            }
            let spec = Spec {
                job_type: record.job_type.clone(),
                payload: serde_json::value::RawValue::from_string(record.payload.to_string())?,
                opts: record.options.clone(),
                created_at: record.created_at,
                dead_letter: Some(DeadLetter {
                    queue: self.name().to_string(),
                    id: id.clone(),
                    failed_at: record.state_since_or_until.unwrap_or_else(now_ms),
                }),
                parent: None,
            };
            let reason = record.errors.last().map(|e| e.error.clone()).unwrap_or_default();
            let extra = [
                arg(letter_id(self.name(), &id)),
                serde_json::to_vec(&spec)?,
                serde_json::to_vec(&record.errors)?,
                arg(record.attempts_made),
                arg(reason),
                arg(self.name()),
            ];
            to.register().await?;
            to.admin::<String>("dead_letter_in", &extra).await?;
            if self.admin::<String>("dead_letter_out", &[arg(&id), arg(to.name())]).await? == "moved" {
                moved += 1;
                tracing::info!(queue = self.name(), id = %id, to = to.name(), "failed for good: moved to the dead-letter queue");
            }
        }
        Ok(moved)
    }

    /// Removes the dead letter `id` if it is still that of the failure at
    /// `failed_at`: `removed`, `newer` (a later failure's letter took its
    /// place, and stays) or `missing`.
    pub async fn remove_dead_letter(&self, id: &str, failed_at: u64) -> Result<String> {
        self.admin("dead_letter_remove", &[arg(id), arg(failed_at)]).await
    }

    /// How many of this queue's failed jobs wait to move to its
    /// dead-letter queue.
    pub async fn dead_letters_pending(&self) -> Result<u64> {
        Ok(self.inner.conn.query(redis::cmd("ZCARD").arg(self.inner.keys.get("dead"))).await?)
    }

    /// A dead letter back into the queue it failed in, under its id there
    /// and with its attempts afresh; then gone from here. `retried`, or
    /// `missing`. Safe to repeat: a job already back keeps its place.
    pub(crate) async fn retry_dead_letter(&self, id: &str) -> Result<String> {
        let Some(JobRecord { job_type, payload, options, dead_letter: Some(from), .. }) = self.get(id).await? else {
            return Ok("missing".into());
        };
        let origin = Queue::new(self.inner.conn.clone(), &from.queue)?;
        let back = origin
            .enqueue(NewJob { id: Some(from.id.clone()), job_type, payload: payload.to_string(), options })
            .await
            .with_context(|| format!("retry dead letter {id} into queue {}", from.queue))?;
        if !back.created {
            tracing::warn!(queue = self.name(), id, origin = %from.queue, state = %back.state, "a job with the dead letter's id was already in its queue; left as it is");
        }
        // Only this letter: the job sent back may already have failed for
        // good again and its new letter taken this one's place (a quick
        // handler with no backoff), which must stay.
        if self.remove_dead_letter(id, from.failed_at).await? == "newer" {
            tracing::info!(
                queue = self.name(),
                id,
                "the retried job failed for good again before its old letter was removed; the new letter stays"
            );
        }
        Ok("retried".into())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn letter_ids_name_their_queue_and_fit() {
        assert_eq!(super::letter_id("emails", "job-1"), "emails:job-1");
        let long = "x".repeat(256);
        let id = super::letter_id("emails", &long);
        assert!(id.starts_with("emails:") && jobrunner_job::check_job_id(&id).is_ok(), "{id}");
        assert_eq!(id, super::letter_id("emails", &long), "the same every time");
    }
}
