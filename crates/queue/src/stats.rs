//! Counts of jobs finished for good, for the dashboard's totals and its
//! history charts: read from the queue's `stats` hash, which `complete` and
//! a final failure write (`lua/prelude.lua`, `count_finished`): totals for
//! all time, and per minute and per hour in ring slots stamped with the
//! minute or hour they count, so the hash is bounded and a slot left from
//! an earlier lap reads as zero.

use crate::queue::Queue;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Minutes kept per minute, and hours per hour (7 days).
pub const MINUTES: u64 = 60;
pub const HOURS: u64 = 168;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

/// Jobs completed and failed (for good: a retried attempt is not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Finished {
    pub completed: u64,
    pub failed: u64,
}

impl Finished {
    pub fn add(&mut self, other: Finished) {
        self.completed += other.completed;
        self.failed += other.failed;
    }
}

/// One bar of a history chart: the jobs finished in the minute or hour
/// starting at `at_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Point {
    pub at_ms: u64,
    #[serde(flatten)]
    pub finished: Finished,
}

/// A queue's (or several queues', `merge`d) finished jobs: totals and the
/// last hour per minute and last week per hour, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct History {
    /// Since the queue was first used (or, for a BullMQ queue, since its
    /// metrics began).
    pub total: Finished,
    /// `MINUTES` points, the last one the minute under way.
    pub minutes: Vec<Point>,
    /// `HOURS` points, the last one the hour under way.
    pub hours: Vec<Point>,
}

impl History {
    /// An empty history whose points end at `now_ms`'s minute and hour.
    pub fn empty(now_ms: u64) -> History {
        let points = |span: u64, n: u64| {
            let current = now_ms / span;
            (0..n)
                .map(|i| Point { at_ms: (current + 1 + i).saturating_sub(n) * span, finished: Finished::default() })
                .collect::<Vec<_>>()
        };
        History { total: Finished::default(), minutes: points(MINUTE_MS, MINUTES), hours: points(HOUR_MS, HOURS) }
    }

    /// Reads a `stats` hash's fields (see `docs/queue-protocol.md`) as of
    /// `now_ms`: a slot counts only if stamped with the minute (hour) it
    /// stands for now.
    pub fn from_fields(fields: &HashMap<String, u64>, now_ms: u64) -> History {
        let mut h = History::empty(now_ms);
        let get = |name: &str| fields.get(name).copied().unwrap_or(0);
        h.total = Finished { completed: get("c"), failed: get("f") };
        let fill = |points: &mut [Point], span: u64, ring: u64, tag: char| {
            for p in points {
                let n = p.at_ms / span;
                let slot = format!("{tag}{}", n % ring);
                if fields.get(&slot) == Some(&n) {
                    p.finished = Finished { completed: get(&format!("{slot}c")), failed: get(&format!("{slot}f")) };
                }
            }
        };
        fill(&mut h.minutes, MINUTE_MS, MINUTES, 'm');
        fill(&mut h.hours, HOUR_MS, HOURS, 'h');
        h
    }

    /// Adds another history of the same moment (another queue's).
    pub fn merge(&mut self, other: &History) {
        self.total.add(other.total);
        for (a, b) in self.minutes.iter_mut().zip(&other.minutes) {
            a.finished.add(b.finished);
        }
        for (a, b) in self.hours.iter_mut().zip(&other.hours) {
            a.finished.add(b.finished);
        }
    }

    /// Jobs finished in the last 60 minutes (the minute under way included).
    pub fn last_hour(&self) -> Finished {
        let mut sum = Finished::default();
        self.minutes.iter().for_each(|p| sum.add(p.finished));
        sum
    }

    /// Jobs finished since midnight UTC.
    pub fn today(&self) -> Finished {
        let now = self.hours.last().map(|p| p.at_ms).unwrap_or(0);
        let midnight = now - now % (24 * HOUR_MS);
        let mut sum = Finished::default();
        self.hours.iter().filter(|p| p.at_ms >= midnight).for_each(|p| sum.add(p.finished));
        sum
    }

    /// The last `n` hours (at most `HOURS`), oldest first.
    pub fn last_hours(&self, n: usize) -> &[Point] {
        &self.hours[self.hours.len().saturating_sub(n)..]
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Queue {
    /// The queue's finished jobs, as of now: one `HGETALL` of a hash of at
    /// most 687 small fields.
    pub async fn history(&self) -> Result<History> {
        let fields: HashMap<String, u64> = self
            .inner
            .conn
            .query(redis::cmd("HGETALL").arg(self.inner.keys.get("stats")))
            .await
            .context("read the queue's finished counts")?;
        Ok(History::from_fields(&fields, now_ms()))
    }

    /// Jobs finished for good since the queue was first used: two fields,
    /// for the live chart's rate each second.
    pub async fn finished_total(&self) -> Result<Finished> {
        let (c, f): (Option<u64>, Option<u64>) = self
            .inner
            .conn
            .query(redis::cmd("HMGET").arg(self.inner.keys.get("stats")).arg("c").arg("f"))
            .await
            .context("read the queue's finished totals")?;
        Ok(Finished { completed: c.unwrap_or(0), failed: f.unwrap_or(0) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_current_slots_and_ignores_stale_laps() {
        let now = 1_000 * HOUR_MS + 30 * MINUTE_MS + 5_000;
        let minute = now / MINUTE_MS;
        let hour = now / HOUR_MS;
        let mut f = HashMap::new();
        f.insert("c".to_string(), 100);
        f.insert("f".to_string(), 7);
        // The minute under way, and one a lap (an hour) old in another slot.
        f.insert(format!("m{}", minute % 60), minute);
        f.insert(format!("m{}c", minute % 60), 5);
        f.insert(format!("m{}f", minute % 60), 1);
        let stale = minute - 61;
        f.insert(format!("m{}", stale % 60), stale);
        f.insert(format!("m{}c", stale % 60), 50);
        // The hour under way and the one before (both today: 30 min past
        // the 1,000th hour is 16:30 UTC).
        f.insert(format!("h{}", hour % 168), hour);
        f.insert(format!("h{}c", hour % 168), 9);
        f.insert(format!("h{}", (hour - 1) % 168), hour - 1);
        f.insert(format!("h{}f", (hour - 1) % 168), 2);
        let h = History::from_fields(&f, now);
        assert_eq!(h.total, Finished { completed: 100, failed: 7 });
        assert_eq!(h.minutes.len(), 60);
        assert_eq!(h.hours.len(), 168);
        assert_eq!(h.minutes.last().unwrap().at_ms, minute * MINUTE_MS);
        assert_eq!(h.last_hour(), Finished { completed: 5, failed: 1 });
        assert_eq!(h.today(), Finished { completed: 9, failed: 2 });
        assert_eq!(h.last_hours(24).len(), 24);
        let mut both = h.clone();
        both.merge(&h);
        assert_eq!(both.last_hour(), Finished { completed: 10, failed: 2 });
        assert_eq!(both.total.completed, 200);
    }
}
