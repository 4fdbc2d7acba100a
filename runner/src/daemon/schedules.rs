//! `[[schedules]]`: the config's recurring jobs, kept in step with the file.
//!
//! At start and at each reload of the config:
//! 1. a schedule in the file and not in Redis is added;
//! 2. one whose definition changed is replaced (its next run computed
//!    anew); one unchanged is left as it is, so a restart never moves a
//!    tick that is due;
//! 3. a schedule the file made earlier (`source = config`) and no longer
//!    has is removed;
//! 4. schedules made through the API or the CLI (`source = api`) are left
//!    alone, unless the file names one: then the file's replaces it, and
//!    the runner says so.
//!
//! Every runner does this with the file it has; with the same file they
//! all write the same thing, so it does not matter which comes first.

use crate::config::Config;
use anyhow::{Context, Result};
use jobrunner_queue::{Connection, Queue, Schedule, ScheduleSource};
use std::collections::{BTreeMap, BTreeSet};

/// What a reconciliation changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reconciled {
    pub added: usize,
    pub replaced: usize,
    pub removed: usize,
}

pub(crate) async fn reconcile(conn: &Connection, config: &Config) -> Result<Reconciled> {
    let mut wanted: BTreeMap<String, Vec<Schedule>> = BTreeMap::new();
    for section in &config.schedules {
        let (queue, schedule) = section.to_schedule()?;
        wanted.entry(queue).or_default().push(schedule);
    }
    let mut names: BTreeSet<String> = Queue::names(conn).await.context("list the queues")?.into_iter().collect();
    names.extend(wanted.keys().cloned());
    let mut done = Reconciled::default();
    for name in names {
        // BullMQ-backed queues have no native schedules (the config refuses
        // `[[schedules]]` on them).
        if config.queues.get(&name).is_some_and(|q| q.bullmq.is_some()) {
            continue;
        }
        let queue = Queue::new(conn.clone(), &name)?;
        let stored = queue.list_schedules().await.with_context(|| format!("queue {name}: list its schedules"))?;
        let want = wanted.remove(&name).unwrap_or_default();
        for old in stored.iter().filter(|s| s.schedule.source == ScheduleSource::Config) {
            if !want.iter().any(|s| s.id == old.schedule.id) {
                queue.remove_schedule(&old.schedule.id).await?;
                tracing::info!(queue = %name, schedule = %old.schedule.id, "schedule removed: the config no longer has it");
                done.removed += 1;
            }
        }
        for schedule in want {
            match stored.iter().find(|s| s.schedule.id == schedule.id) {
                Some(old) if old.schedule == schedule => {}
                Some(old) => {
                    if old.schedule.source == ScheduleSource::Api {
                        tracing::warn!(queue = %name, schedule = %schedule.id, "a schedule made through the API or CLI has the id of one in the config: the config's replaces it");
                    }
                    queue.upsert_schedule(&schedule).await.with_context(|| format!("schedule {}", schedule.id))?;
                    tracing::info!(queue = %name, schedule = %schedule.id, "schedule changed in the config: replaced");
                    done.replaced += 1;
                }
                None => {
                    queue.upsert_schedule(&schedule).await.with_context(|| format!("schedule {}", schedule.id))?;
                    tracing::info!(queue = %name, schedule = %schedule.id, "schedule added from the config");
                    done.added += 1;
                }
            }
        }
    }
    Ok(done)
}
