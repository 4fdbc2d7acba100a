//! Recurring schedules: a job enqueued on a cron expression (in a time
//! zone) or at a fixed interval, stored in Redis with the queue.
//!
//! Each tick fires exactly once however many runners are up: firing is a
//! compare-and-set on the schedule's next-run time (`lua/schedule.lua`), and
//! the tick's job id names the tick, so even a retried call cannot enqueue
//! it twice. A runner that was down when ticks were due fires the latest
//! due one once, then continues from now (missed ticks are not replayed).

use crate::{JobOptions, Queue, Spec, scripts::SCRIPTS};
use anyhow::{Context, Result, anyhow, bail};
use chrono::TimeZone;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Ticks closer together than this are a mistake (and a load on Redis).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Timing {
    /// A cron expression of 5 fields (minute hour day month weekday) or 6
    /// (with seconds first), in an IANA time zone such as `Europe/Paris`.
    Cron { expr: String, tz: String },
    /// Every so many milliseconds.
    Every { every_ms: u64 },
}

/// Who made a schedule: the API or the CLI, or the operator's config file
/// (`[[schedules]]`), which the runner keeps it in step with at each start
/// and reload, and which the API and the CLI therefore leave to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleSource {
    #[default]
    Api,
    Config,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub id: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub payload: serde_json::Value,
    #[serde(default)]
    pub options: JobOptions,
    pub timing: Timing,
    #[serde(default)]
    pub source: ScheduleSource,
}

/// A schedule with its next run.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleInfo {
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Milliseconds since the epoch.
    pub next_run_ms: u64,
    /// When its last tick was due, if it has fired.
    pub last_run_ms: Option<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Timing {
    fn cron(&self) -> Result<Option<(cron::Schedule, chrono_tz::Tz)>> {
        match self {
            Timing::Every { .. } => Ok(None),
            Timing::Cron { expr, tz } => {
                let fields = expr.split_whitespace().count();
                let full = match fields {
                    5 => format!("0 {expr}"),
                    6 | 7 => expr.clone(),
                    _ => bail!("cron expression `{expr}` has {fields} fields; give 5 (or 6 with seconds)"),
                };
                let schedule = cron::Schedule::from_str(&full).map_err(|e| anyhow!("cron expression `{expr}`: {e}"))?;
                let tz = chrono_tz::Tz::from_str(tz).map_err(|_| anyhow!("unknown time zone `{tz}`"))?;
                Ok(Some((schedule, tz)))
            }
        }
    }

    pub fn validate(&self) -> Result<()> {
        if let Timing::Every { every_ms } = self
            && Duration::from_millis(*every_ms) < MIN_INTERVAL
        {
            bail!("an interval must be at least {MIN_INTERVAL:?}");
        }
        self.cron().map(drop)
    }

    /// The first run strictly after `after_ms`.
    pub fn next_after(&self, after_ms: u64) -> Result<u64> {
        match self {
            Timing::Every { every_ms } => Ok(after_ms + every_ms),
            Timing::Cron { expr, .. } => {
                let (schedule, tz) = self.cron()?.expect("a cron timing");
                let after = tz
                    .timestamp_millis_opt(after_ms as i64)
                    .single()
                    .ok_or_else(|| anyhow!("time {after_ms} is out of range"))?;
                let next = schedule.after(&after).next().ok_or_else(|| anyhow!("`{expr}` never fires again"))?;
                Ok(next.timestamp_millis() as u64)
            }
        }
    }
}

impl Queue {
    /// Creates or replaces a schedule; its next run is computed from now.
    pub async fn upsert_schedule(&self, schedule: &Schedule) -> Result<ScheduleInfo> {
        jobrunner_job::check_job_id(&schedule.id).map_err(|e| anyhow!(e)).context("schedule id")?;
        jobrunner_job::check_job_type(&schedule.job_type).map_err(|e| anyhow!(e))?;
        schedule.options.validate().map_err(|e| anyhow!(e))?;
        schedule.timing.validate()?;
        let next = schedule.timing.next_after(now_ms())?;
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(crate::keys::registry(self.inner.conn.prefix())).arg(self.name()).ignore();
        pipe.cmd("HSET")
            .arg(self.inner.keys.get("schedules"))
            .arg(&schedule.id)
            .arg(serde_json::to_string(schedule)?)
            .ignore();
        pipe.cmd("ZADD").arg(self.inner.keys.get("schedule_next")).arg(next).arg(&schedule.id).ignore();
        let () = self.inner.conn.pipeline(&pipe).await.context("upsert schedule")?;
        let last: Option<u64> = self
            .inner
            .conn
            .query(redis::cmd("HGET").arg(self.inner.keys.get("meta")).arg(format!("last_run:{}", schedule.id)))
            .await?;
        Ok(ScheduleInfo { schedule: schedule.clone(), next_run_ms: next, last_run_ms: last })
    }

    /// Removes a schedule; false when there was none.
    pub async fn remove_schedule(&self, id: &str) -> Result<bool> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(self.inner.keys.get("schedule_next")).arg(id).ignore();
        pipe.cmd("HDEL").arg(self.inner.keys.get("meta")).arg(format!("last_run:{id}")).ignore();
        pipe.cmd("HDEL").arg(self.inner.keys.get("schedules")).arg(id);
        let (removed,): (i64,) = self.inner.conn.pipeline(&pipe).await.context("remove schedule")?;
        Ok(removed == 1)
    }

    /// Who made schedule `id`, if there is one.
    pub async fn schedule_source(&self, id: &str) -> Result<Option<ScheduleSource>> {
        let json: Option<String> = self
            .inner
            .conn
            .query(redis::cmd("HGET").arg(self.inner.keys.get("schedules")).arg(id))
            .await
            .context("read schedule")?;
        json.map(|j| serde_json::from_str::<Schedule>(&j).map(|s| s.source))
            .transpose()
            .with_context(|| format!("schedule {id} is unreadable"))
    }

    /// Refuses to change schedule `id` when the config file made it: the
    /// runner would put it back at its next reload (for the API and CLI).
    pub async fn check_not_from_config(&self, id: &str) -> Result<()> {
        if self.schedule_source(id).await? == Some(ScheduleSource::Config) {
            bail!(
                "schedule `{id}` of queue {} comes from the config file ([[schedules]]); change it there",
                self.name()
            );
        }
        Ok(())
    }

    pub async fn list_schedules(&self) -> Result<Vec<ScheduleInfo>> {
        let all: Vec<(String, String)> = self
            .inner
            .conn
            .query(redis::cmd("HGETALL").arg(self.inner.keys.get("schedules")))
            .await
            .context("list schedules")?;
        let mut out = Vec::new();
        for (id, json) in all {
            let schedule: Schedule =
                serde_json::from_str(&json).with_context(|| format!("schedule {id} is unreadable"))?;
            let next: Option<f64> =
                self.inner.conn.query(redis::cmd("ZSCORE").arg(self.inner.keys.get("schedule_next")).arg(&id)).await?;
            let last: Option<u64> = self
                .inner
                .conn
                .query(redis::cmd("HGET").arg(self.inner.keys.get("meta")).arg(format!("last_run:{id}")))
                .await?;
            out.push(ScheduleInfo { schedule, next_run_ms: next.unwrap_or(0.0) as u64, last_run_ms: last });
        }
        out.sort_by(|a, b| a.schedule.id.cmp(&b.schedule.id));
        Ok(out)
    }

    /// Fires every due tick (each exactly once across all runners) and says
    /// when the next one is due. Returns (ticks this call fired, next due).
    pub async fn fire_due_schedules(&self) -> Result<(usize, Option<Duration>)> {
        let now = now_ms();
        let due: Vec<(String, f64)> = self
            .inner
            .conn
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.inner.keys.get("schedule_next"))
                    .arg("-inf")
                    .arg(now)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(100),
            )
            .await
            .context("due schedules")?;
        let mut fired = 0;
        for (sid, due_ms) in due {
            let due_ms = due_ms as u64;
            let json: Option<String> =
                self.inner.conn.query(redis::cmd("HGET").arg(self.inner.keys.get("schedules")).arg(&sid)).await?;
            let Some(json) = json else { continue };
            let schedule: Schedule = match serde_json::from_str(&json) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(queue = self.name(), schedule = %sid, error = %e, "unreadable schedule skipped");
                    continue;
                }
            };
            let next = schedule.timing.next_after(due_ms.max(now))?;
            let spec = Spec {
                job_type: schedule.job_type.clone(),
                payload: serde_json::value::RawValue::from_string(schedule.payload.to_string())?,
                opts: schedule.options.clone(),
                created_at: now,
                dead_letter: None,
                parent: None,
            };
            let job_id = format!("sched:{sid}:{due_ms}");
            let args: Vec<Vec<u8>> = [
                self.inner.keys.wake_channel.clone(),
                sid.clone(),
                due_ms.to_string(),
                next.to_string(),
                job_id,
                serde_json::to_string(&spec)?,
                schedule.options.priority.map(|p| p.to_string()).unwrap_or_default(),
                schedule.options.group.clone().unwrap_or_default(),
            ]
            .into_iter()
            .map(String::into_bytes)
            .collect();
            let won: i64 = self
                .inner
                .conn
                .invoke(&SCRIPTS.schedule, &self.inner.keys.all, &args)
                .await
                .context("fire schedule")?;
            fired += won as usize;
        }
        let first: Vec<(String, f64)> = self
            .inner
            .conn
            .query(redis::cmd("ZRANGE").arg(self.inner.keys.get("schedule_next")).arg(0).arg(0).arg("WITHSCORES"))
            .await?;
        let next_due = first.first().map(|(_, at)| Duration::from_millis((*at as u64).saturating_sub(now_ms())));
        Ok((fired, next_due))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_in_a_time_zone() {
        let t = Timing::Cron { expr: "30 9 * * *".into(), tz: "Europe/Paris".into() };
        t.validate().unwrap();
        // 2026-01-15 00:00 UTC; 09:30 in Paris (UTC+1 in winter) is 08:30 UTC.
        let after = chrono::Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap().timestamp_millis() as u64;
        let next = t.next_after(after).unwrap();
        let expect = chrono::Utc.with_ymd_and_hms(2026, 1, 15, 8, 30, 0).unwrap().timestamp_millis() as u64;
        assert_eq!(next, expect);
    }

    #[test]
    fn bad_timings_are_named() {
        assert!(
            Timing::Cron { expr: "* *".into(), tz: "UTC".into() }
                .validate()
                .unwrap_err()
                .to_string()
                .contains("2 fields")
        );
        assert!(
            Timing::Cron { expr: "0 9 * * *".into(), tz: "Mars/Olympus".into() }
                .validate()
                .unwrap_err()
                .to_string()
                .contains("time zone")
        );
        assert!(Timing::Every { every_ms: 10 }.validate().is_err());
        assert_eq!(Timing::Every { every_ms: 5000 }.next_after(1000).unwrap(), 6000);
    }
}
