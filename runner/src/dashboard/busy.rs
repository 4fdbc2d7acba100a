//! The Busy page: who is running what. Every runner connected to this
//! Redis (host, pid, version, when it started, its slots in use per queue,
//! its last heartbeat) and every job running now (queue, type, the
//! plugin version serving its type, attempt, running for, progress), with
//! Cancel for a native queue's job.
//!
//! The jobs are read from each queue's active list when the page loads, at
//! most `MAX_JOBS` a queue. Runners report at each heartbeat
//! (`jobrunner_queue::runners`, every 5 s) their slots in use and their
//! running jobs with their start, so a job's "running for" is known once
//! a heartbeat has seen it (a job younger than the last heartbeat shows
//! "just started").

use crate::dashboard::{action_form_back, layout, when};
use crate::web::ApiState;
use crate::web::error::ApiResult;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use jobrunner_queue::State;
use jobrunner_queue::runners::{self, RunnerInfo};
use maud::{Markup, html};
use std::collections::HashMap;
use std::sync::Arc;

/// Running jobs listed per queue; the queue's page lists the rest.
pub const MAX_JOBS: u64 = 200;

/// A duration in milliseconds, short.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// The versions of the plugin serving `job_type`, as the runners say.
fn plugin_of(runners: &[RunnerInfo], job_type: &str) -> String {
    let mut seen: Vec<String> = runners
        .iter()
        .flat_map(|r| &r.plugins)
        .filter(|p| p.job_types.iter().any(|t| t == job_type))
        .map(|p| if p.version.is_empty() { p.name.clone() } else { format!("{} {}", p.name, p.version) })
        .collect();
    seen.sort();
    seen.dedup();
    if seen.is_empty() { "none loaded".into() } else { seen.join(", ") }
}

/// A progress bar, or a dash when the job reported none.
pub fn progress(p: Option<u8>) -> Markup {
    html! {
        @if let Some(p) = p {
            div.progress title=(format!("{p}%")) role="progressbar" aria-valuenow=(p) aria-valuemin="0" aria-valuemax="100" {
                div style=(format!("width: {p}%")) {}
            }
        } @else { span.muted { "—" } }
    }
}

pub async fn page(AxState(state): AxState<Arc<ApiState>>) -> ApiResult<Response> {
    let runners = runners::list(&state.connection).await?;
    let now = jobrunner_queue::stats::now_ms();
    let mut running = Vec::new();
    for name in state.queue_names().await? {
        let q = state.queue(&name)?;
        let native = q.native().is_some();
        for job in q.list(State::Active, 0, MAX_JOBS).await? {
            running.push((name.clone(), native, job));
        }
    }
    // When each started, and where, as the runners' heartbeats say.
    let mut seen: HashMap<(&str, &str), (u64, &str)> = HashMap::new();
    for r in &runners {
        for j in &r.running {
            seen.insert((j.queue.as_str(), j.id.as_str()), (j.started_at_ms, r.hostname.as_str()));
        }
    }
    let started = |queue: &str, id: &str| seen.get(&(queue, id)).copied();
    // The longest-running first: what is stuck shows at the top.
    running.sort_by_key(|(q, _, j)| started(q, &j.id).map_or(u64::MAX, |(s, _)| s));
    let content = html! {
        h1 { "Busy" }
        h2 { "Runners" }
        @if runners.is_empty() { p.muted #no-runners { "No runner has sent a heartbeat in the last minute." } }
        @else {
            div.scroll { table #runners {
                thead { tr {
                    th { "Runner" } th { "Version" } th { "Started" } th { "Slots in use" } th { "Last heartbeat" }
                } }
                tbody { @for r in &runners { tr {
                    td { (r.hostname) span.muted { " pid " (r.pid) } }
                    td { (r.version) }
                    td { (when(r.started_at_ms)) }
                    td {
                        @if r.slots.is_empty() { span.muted { (r.queues.join(", ")) } }
                        @for (q, s) in &r.slots {
                            div { a href=(format!("/dashboard/queues/{q}")) { (q) } ": " (s.running) " / " (s.concurrency) }
                        }
                    }
                    td { (duration(now.saturating_sub(r.last_seen_ms))) " ago" }
                } } }
            } }
        }
        h2 { "Running jobs" }
        @if running.is_empty() { p.muted #no-running { "No job is running." } }
        @else {
            div.scroll { table #running {
                thead { tr {
                    th { "Job" } th { "Queue" } th { "Type" } th { "Plugin" } th.num { "Attempt" }
                    th { "Runner" } th.num { "Running for" } th { "Progress" } th {}
                } }
                tbody { @for (queue, native, j) in &running { tr {
                    td { a href=(format!("/dashboard/queues/{queue}/jobs/{}", j.id)) { (j.id) } }
                    td { a href=(format!("/dashboard/queues/{queue}")) { (queue) } }
                    td { (j.job_type) }
                    td { (plugin_of(&runners, &j.job_type)) }
                    td.num { (j.attempts_made.max(1)) " of " (j.attempts_allowed()) }
                    @match started(queue, &j.id) {
                        Some((since, host)) => { td { (host) } td.num { (duration(now.saturating_sub(since))) } }
                        None => { td.muted { "—" } td.num.muted { "just started" } }
                    }
                    td { (progress(j.progress)) }
                    td { @if *native {
                        (action_form_back(&format!("/dashboard/queues/{queue}/jobs/{}/cancel", j.id), "Cancel", true, "/dashboard/busy"))
                    } }
                } } }
            } }
        }
        p.muted { "Runners' slots are as of their last heartbeat (every "
            (runners::HEARTBEAT.as_secs()) " s); jobs are read when the page loads, at most " (MAX_JOBS) " a queue." }
    };
    Ok(layout("Busy", ("", ""), state.tokens.required(), content).into_response())
}
