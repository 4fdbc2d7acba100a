//! The overview page: is the runner keeping up? Jobs completed and failed
//! today, in the last hour and in all; a live chart per second (filled by
//! `app.js` from the live stream); a history chart per minute over the
//! last hour or per hour over a day or a week, from the counts each queue
//! keeps in Redis (`jobrunner_queue::stats`); and per queue, its counts,
//! its last hour, how far behind it is (the age of the job next in line)
//! and whether it is paused.

use crate::dashboard::{action_form, charts, layout};
use crate::web::ApiState;
use crate::web::error::{ApiError, ApiResult};
use axum::extract::{Query, State as AxState};
use axum::response::{IntoResponse, Response};
use jobrunner_queue::stats::{self, Finished, History};
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize)]
pub struct OverviewQuery {
    /// The history chart's span: `hour` (per minute, the default), `day`
    /// or `week` (per hour).
    pub span: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Span {
    Hour,
    Day,
    Week,
}

impl Span {
    const ALL: [(Span, &'static str, &'static str); 3] =
        [(Span::Hour, "hour", "Last hour"), (Span::Day, "day", "24 hours"), (Span::Week, "week", "7 days")];

    fn parse(s: Option<&str>) -> Option<Span> {
        match s.unwrap_or("hour") {
            "hour" => Some(Span::Hour),
            "day" => Some(Span::Day),
            "week" => Some(Span::Week),
            _ => None,
        }
    }

    /// Minutes of a BullMQ queue's metrics to read: a day at least, for
    /// today's totals.
    fn minutes(self) -> u64 {
        match self {
            Span::Week => stats::HOURS * 60,
            _ => 24 * 60,
        }
    }
}

struct Row {
    name: String,
    backend: &'static str,
    counts: jobrunner_queue::Counts,
    history: History,
    latency: Duration,
}

pub async fn page(AxState(state): AxState<Arc<ApiState>>, Query(q): Query<OverviewQuery>) -> ApiResult<Response> {
    let span = Span::parse(q.span.as_deref()).ok_or_else(|| ApiError::bad("span must be `hour`, `day` or `week`"))?;
    let mut rows = Vec::new();
    let mut all = History::empty(stats::now_ms());
    for name in state.queue_names().await? {
        let q = state.queue(&name)?;
        let counts = q.counts().await?;
        let history = q.history(span.minutes()).await?;
        let latency = q.latency(&counts).await?;
        all.merge(&history);
        rows.push(Row { name, backend: q.backend(), counts, history, latency });
    }
    // What Redis would do to the jobs: said first, where an operator looks.
    let durability = jobrunner_queue::durability::read(&state.connection).await.ok();
    let allowed = state.redis_policy.allow_eviction;
    let (points, per) = match span {
        Span::Hour => (&all.minutes[..], "minute"),
        Span::Day => (all.last_hours(24), "hour"),
        Span::Week => (all.last_hours(stats::HOURS as usize), "hour"),
    };
    let content = html! {
        @if let Some(d) = &durability {
            @if let Some(risk) = d.eviction_risk() {
                p.bad.banner #redis-risk { (risk) @if allowed { " (running anyway: `[redis] allow_eviction`)" } }
            }
            @if let Some(warning) = d.persistence_warning() { p.bad.banner #redis-persistence { (warning) } }
            @if let Some(note) = d.eviction_note() { p.muted { (note) } }
        }
        h1 { "Overview" }
        div.totals #totals {
            (total("Today (UTC)", all.today()))
            (total("Last hour", all.last_hour()))
            (total("All time", all.total))
        }
        div.charts {
            section {
                h2 { "Live" }
                (charts::live())
            }
            section {
                h2 { "History" }
                p.tabs {
                    @for (s, key, label) in Span::ALL {
                        a class=(if s == span { "on" } else { "" }) href=(format!("/dashboard?span={key}")) { (label) }
                    }
                }
                (charts::history(points, per, "history"))
            }
        }
        p.muted { "Jobs finished for good: a failed attempt that will be retried is not counted. "
            "BullMQ-backed queues count from BullMQ's metrics." }
        h2 { "Queues" }
        @if rows.is_empty() { p.muted { "No queue has been used yet." } }
        div.scroll { table #queues {
            thead { tr {
                th { "Queue" } th.num { "Waiting" } th.num { "Delayed" } th.num { "Active" }
                th.num { "Completed" } th.num { "Failed" } th.num title="Age of the job next in line" { "Latency" }
                th { "Last hour" } th {}
            } }
            tbody { @for r in &rows { (queue_row(r)) } }
        } }
    };
    Ok(layout("Overview", ("", ""), state.tokens.required(), content).into_response())
}

fn total(label: &str, f: Finished) -> Markup {
    html! {
        div.total {
            div.muted { (label) }
            // `data-total`: the live stream adds each second's jobs.
            div { strong.ok data-total="completed" { (f.completed) } " completed" }
            div { strong class=(if f.failed > 0 { "bad" } else { "" }) data-total="failed" { (f.failed) } " failed" }
        }
    }
}

fn queue_row(r: &Row) -> Markup {
    let (name, c) = (&r.name, &r.counts);
    html! {
        tr {
            td {
                a href=(format!("/dashboard/queues/{name}")) { (name) }
                @if r.backend == "bullmq" { " " span.muted title="kept in BullMQ's format" { "BullMQ" } }
                @if c.paused { " " span.bad { "(paused)" } }
            }
            td.num data-count=(format!("{name}:waiting")) { (c.waiting) }
            td.num data-count=(format!("{name}:delayed")) { (c.delayed) }
            td.num data-count=(format!("{name}:active")) { (c.active) }
            td.num data-count=(format!("{name}:completed")) { (c.completed) }
            td.num data-count=(format!("{name}:failed")) {
                @if c.failed > 0 { a.bad href=(format!("/dashboard/queues/{name}?state=failed")) { (c.failed) } } @else { "0" }
            }
            td.num data-latency=(name) { (latency(r.latency)) }
            td { (charts::sparkline(&r.history.minutes)) }
            td {
                @if c.paused { (action_form(&format!("/dashboard/queues/{name}/do/resume"), "Resume", false)) }
                @else { (action_form(&format!("/dashboard/queues/{name}/do/pause"), "Pause", false)) }
            }
        }
    }
}

/// A latency as a person reads it: "0 s" when nothing waits, else to the
/// second (or the tenth under ten seconds).
pub fn latency(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}
