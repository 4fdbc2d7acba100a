//! The operator's side of a `Queue`: retry, remove, promote, pause, resume,
//! drain, clean, bounds and rate limits; and the reads (counts, pages of
//! jobs, one job, events, throughput) that the API, the dashboard and the
//! CLI show.

use crate::connection::Connection;
use crate::keys;
use crate::policy::QueuePolicy;
use crate::queue::{Queue, arg, completions};
use crate::record::{Counts, JobRecord, Run, Spec, State};
use crate::scripts::SCRIPTS;
use anyhow::{Context, Result, bail};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl Queue {
    pub(crate) async fn admin<T: redis::FromRedisValue>(&self, op: &str, extra: &[Vec<u8>]) -> Result<T> {
        let mut args = vec![arg(op), arg(&self.inner.keys.wake_channel)];
        args.extend_from_slice(extra);
        self.inner
            .conn
            .invoke(&SCRIPTS.admin, &self.inner.keys.all, &args)
            .await
            .with_context(|| format!("{op} on queue {}", self.inner.name))
    }

    /// Moves a failed job back to waiting with its attempts reset, or a
    /// dead letter back to the queue it failed in. Returns `retried`, or the
    /// job's state if it was not failed (`missing` if there is none).
    pub async fn retry(&self, id: &str) -> Result<String> {
        let answer: String = self.admin("retry", &[arg(id)]).await?;
        if answer == "dead_letter" {
            return self.retry_dead_letter(id).await;
        }
        Ok(answer)
    }

    /// Moves every failed job back to waiting, and every dead letter back
    /// to its own queue; returns how many.
    pub async fn retry_all_failed(&self) -> Result<u64> {
        const PAGE: u64 = 1000;
        let (mut total, mut offset) = (0, 0);
        // Dead letters stay in `failed` until moved below: each call starts
        // past the ones the calls before it passed.
        loop {
            let (n, passed): (u64, u64) = self.admin("retry_failed", &[arg(PAGE), arg(offset)]).await?;
            total += n;
            offset += passed;
            if n + passed < PAGE {
                break;
            }
        }
        // Then the dead letters, each back to its own queue, a page at a
        // time (each page leaves the set as it goes).
        while offset > 0 {
            let page = self.list(State::Failed, 0, PAGE).await?;
            let mut sent = 0;
            for r in page.iter().filter(|r| r.dead_letter.is_some()) {
                if self.retry_dead_letter(&r.id).await? == "retried" {
                    sent += 1;
                }
            }
            total += sent;
            offset = offset.saturating_sub(sent);
            if sent == 0 || (page.len() as u64) < PAGE {
                break;
            }
        }
        Ok(total)
    }

    /// Removes a job in any state; returns the state it was in, or `missing`.
    pub async fn remove(&self, id: &str) -> Result<String> {
        self.admin("remove", &[arg(id)]).await
    }

    /// Runs a delayed job now. Returns `promoted`, or the job's state if it
    /// was not delayed (`missing` if there is none).
    pub async fn promote(&self, id: &str) -> Result<String> {
        self.admin("promote", &[arg(id)]).await
    }

    pub async fn pause(&self) -> Result<()> {
        self.register().await?;
        self.admin::<String>("pause", &[]).await.map(drop)
    }

    pub async fn resume(&self) -> Result<()> {
        self.admin::<String>("resume", &[]).await.map(drop)
    }

    /// Removes every waiting and delayed job; returns how many.
    pub async fn drain(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let n: u64 = self.admin("drain", &[arg(1000)]).await?;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    }

    /// Removes completed or failed jobs that finished at least `age` ago, at
    /// most `limit`; returns how many.
    pub async fn clean(&self, state: State, age: Duration, limit: u64) -> Result<u64> {
        if !matches!(state, State::Completed | State::Failed) {
            bail!("clean takes completed or failed jobs, not {state}");
        }
        let mut total = 0;
        while total < limit {
            let batch = (limit - total).min(1000);
            let n: u64 = self.admin("clean", &[arg(state.as_str()), arg(age.as_millis()), arg(batch)]).await?;
            total += n;
            if n < batch {
                break;
            }
        }
        Ok(total)
    }

    /// At most `max` jobs are waiting, delayed or running at once: an
    /// enqueue that would pass it is refused whole (`QueueFull`), from
    /// producers and plugins alike. 0 removes the bound.
    pub async fn set_max_waiting(&self, max: u64) -> Result<()> {
        self.admin::<String>("max_waiting", &[arg(max)]).await.map(drop)
    }

    /// At most `max` jobs start per `window` (a `max` of 0 removes the limit).
    pub async fn set_rate_limit(&self, max: u64, window: Duration) -> Result<()> {
        if max > 0 && window.is_zero() {
            bail!("a rate limit needs a window longer than zero");
        }
        self.admin::<String>("rate_limit", &[arg(max), arg(window.as_millis().max(1))]).await.map(drop)
    }

    /// At most `max` jobs of one group start per `window` (0: no limit).
    pub async fn set_group_rate_limit(&self, max: u64, window: Duration) -> Result<()> {
        if max > 0 && window.is_zero() {
            bail!("a rate limit needs a window longer than zero");
        }
        self.admin::<String>("group_rate_limit", &[arg(max), arg(window.as_millis().max(1))]).await.map(drop)
    }

    pub async fn counts(&self) -> Result<Counts> {
        let mut pipe = redis::pipe();
        for state in State::ALL {
            pipe.cmd("ZCARD").arg(self.inner.keys.get(state.key_name()));
        }
        pipe.cmd("HGET").arg(self.inner.keys.get("meta")).arg("paused");
        let (w, d, a, c, f, wc, paused): (u64, u64, u64, u64, u64, u64, Option<String>) =
            self.inner.conn.pipeline(&pipe).await.context("counts")?;
        Ok(Counts {
            waiting: w,
            delayed: d,
            active: a,
            completed: c,
            failed: f,
            waiting_children: wc,
            paused: paused.as_deref() == Some("1"),
        })
    }

    /// Jobs in a state, a page at a time: waiting in the order they will
    /// run, delayed soonest first, finished newest first. `offset` is the
    /// cursor; each page costs O(log n + limit), never a scan.
    pub async fn list(&self, state: State, offset: u64, limit: u64) -> Result<Vec<JobRecord>> {
        let limit = limit.clamp(1, 1000);
        // Redis ranges are signed 64-bit; no set is near this long, so a
        // larger offset is simply past the end (an empty page, not an error).
        let offset = offset.min(i64::MAX as u64 / 2);
        let cmd = if matches!(state, State::Completed | State::Failed) { "ZREVRANGE" } else { "ZRANGE" };
        let ids: Vec<String> = self
            .inner
            .conn
            .query(
                redis::cmd(cmd)
                    .arg(self.inner.keys.get(state.key_name()))
                    .arg(offset)
                    .arg(offset.saturating_add(limit - 1)),
            )
            .await
            .context("list")?;
        self.records(&ids).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        Ok(self.records(&[id.to_string()]).await?.pop())
    }

    /// Reads jobs by id, leaving out those that no longer exist.
    async fn records(&self, ids: &[String]) -> Result<Vec<JobRecord>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let args: Vec<Vec<u8>> = ids.iter().map(arg).collect();
        let reply: Vec<String> =
            self.inner.conn.invoke(&SCRIPTS.jobs, &self.inner.keys.all, &args).await.context("read jobs")?;
        let Some((policy, reply)) = reply.split_first() else { bail!("read jobs: an empty reply") };
        let policy: QueuePolicy =
            if policy.is_empty() { QueuePolicy::default() } else { serde_json::from_str(policy)? };
        let mut out = Vec::new();
        for (id, f) in ids.iter().zip(reply.chunks(13)) {
            let (Some(state), Ok(spec)) = (State::parse(&f[0]), serde_json::from_str::<Spec>(&f[1])) else {
                continue;
            };
            let result: Option<serde_json::Value> =
                if f[4].is_empty() { None } else { serde_json::from_str(&f[4]).ok() };
            out.push(JobRecord {
                id: id.clone(),
                queue: self.inner.name.clone(),
                state,
                job_type: spec.job_type,
                payload: serde_json::from_str(spec.payload.get()).unwrap_or_default(),
                effective: Some(
                    policy.effective_for(&spec.opts, Some(&f[10]).filter(|g| !g.is_empty()).map(|g| g.as_str())),
                ),
                options: spec.opts,
                attempts_made: f[2].parse().unwrap_or(0),
                // The `created` hash is only there for jobs enqueued before
                // it stopped being written (docs/queue-protocol.md).
                created_at: f[3].parse().unwrap_or(spec.created_at),
                state_since_or_until: f[9].parse::<f64>().ok().filter(|_| state != State::Waiting).map(|s| s as u64),
                progress: f[7].parse().ok(),
                result,
                errors: if f[5].is_empty() { vec![] } else { serde_json::from_str(&f[5]).unwrap_or_default() },
                log: if f[6].is_empty() { None } else { serde_json::from_str(&f[6]).ok() },
                stalls: f[8].parse().unwrap_or(0),
                dead_letter: spec.dead_letter,
                parent: spec.parent,
                children: if f[11].is_empty() { None } else { serde_json::from_str(&f[11]).ok() },
                // A completed job's run; a job retried since keeps an old
                // one until it completes again, which is not this attempt's.
                run: if state == State::Completed { Run::parse(&f[12]) } else { None },
                bullmq: None,
            });
        }
        Ok(out)
    }

    /// Reads events after `after` (a stream id; "0" for the oldest kept, "$"
    /// is not accepted here), at most `count`.
    pub async fn events(&self, after: &str, count: usize) -> Result<Vec<(String, Vec<(String, String)>)>> {
        let start = if after == "0" { "-".to_string() } else { format!("({after}") };
        let reply: Vec<(String, Vec<(String, String)>)> = self
            .inner
            .conn
            .query(redis::cmd("XRANGE").arg(self.inner.keys.get("events")).arg(start).arg("+").arg("COUNT").arg(count))
            .await
            .context("events")?;
        Ok(reply)
    }

    /// Jobs completed in the last `window`, from the events stream.
    pub async fn completed_in(&self, window: Duration) -> Result<u64> {
        let since = SystemTime::now().duration_since(UNIX_EPOCH)?.saturating_sub(window).as_millis();
        let events: Vec<(String, Vec<(String, String)>)> = self
            .inner
            .conn
            .query(redis::cmd("XRANGE").arg(self.inner.keys.get("events")).arg(format!("{since}-0")).arg("+"))
            .await
            .context("throughput")?;
        Ok(events.iter().map(|(_, f)| completions(f)).sum())
    }

    /// Jobs completed in each of the last `minutes` minutes, oldest first,
    /// from the events stream (which keeps about the last 10,000 events).
    pub async fn completed_per_minute(&self, minutes: u64) -> Result<Vec<u64>> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
        let start = now.saturating_sub(minutes * 60_000);
        let events: Vec<(String, Vec<(String, String)>)> = self
            .inner
            .conn
            .query(redis::cmd("XRANGE").arg(self.inner.keys.get("events")).arg(format!("{start}-0")).arg("+"))
            .await
            .context("throughput")?;
        let mut buckets = vec![0u64; minutes as usize];
        for (id, fields) in events {
            let at: u64 = id.split('-').next().and_then(|t| t.parse().ok()).unwrap_or(0);
            let n = completions(&fields);
            if n > 0 && at >= start {
                // An event of this very millisecond (or a Redis clock a
                // little ahead) belongs to the newest minute.
                let i = (((at - start) / 60_000) as usize).min(buckets.len().saturating_sub(1));
                if let Some(b) = buckets.get_mut(i) {
                    *b += n;
                }
            }
        }
        Ok(buckets)
    }

    /// The id of the newest event, if any.
    pub async fn latest_event_id(&self) -> Result<Option<String>> {
        let last: Vec<(String, Vec<(String, String)>)> = self
            .inner
            .conn
            .query(redis::cmd("XREVRANGE").arg(self.inner.keys.get("events")).arg("+").arg("-").arg("COUNT").arg(1))
            .await?;
        Ok(last.into_iter().next().map(|(id, _)| id))
    }

    /// The ids an event names: its `id`, or for a batch (`completed` and
    /// `added` of several jobs) the space-separated `ids` when it has them.
    pub fn event_ids(fields: &[(String, String)]) -> Vec<&str> {
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match field("ids") {
            Some(ids) => ids.split(' ').collect(),
            None => field("id").into_iter().collect(),
        }
    }

    /// The names of every queue that has been used.
    pub async fn names(conn: &Connection) -> Result<Vec<String>> {
        let mut names: Vec<String> = conn.query(redis::cmd("SMEMBERS").arg(keys::registry(conn.prefix()))).await?;
        names.sort();
        Ok(names)
    }
}
