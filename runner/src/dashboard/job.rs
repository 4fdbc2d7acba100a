//! A job's page: where it stands and its actions; its timeline, one line
//! per attempt with its start, end, duration, runner and outcome (a final
//! failure says so, not "retry"); its payload and output as collapsible
//! JSON (server-rendered `details`, so it reads without JavaScript) with a
//! copy button; the last attempt's log with its levels; its errors; and
//! the flow around it (its parent, a page of its children).

use crate::dashboard::busy::{duration, progress};
use crate::dashboard::queue::{PAGE, timing};
use crate::dashboard::{action_form, layout, when};
use crate::web::ApiState;
use crate::web::error::{ApiError, ApiResult};
use axum::extract::{Path, Query, State as AxState};
use axum::response::{IntoResponse, Response};
use jobrunner_queue::{JobRecord, State};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// JSON nodes drawn as a tree at most; a larger document is shown raw.
const MAX_TREE_NODES: usize = 2_000;

#[derive(Deserialize)]
pub struct JobQuery {
    /// The first child shown of a flow's parent (from 1).
    pub from: Option<u64>,
}

/// The job's buttons; `is_native`: not a BullMQ-backed queue's (only a
/// native job can be cancelled through the runner).
pub fn actions(queue: &str, id: &str, state: State, is_native: bool) -> Markup {
    let base = format!("/dashboard/queues/{queue}/jobs/{id}");
    html! {
        @if state == State::Failed { (action_form(&format!("{base}/retry"), "Retry", false)) " " }
        @if state == State::Delayed { (action_form(&format!("{base}/promote"), "Run now", false)) " " }
        @if state == State::Active && is_native { (action_form(&format!("{base}/cancel"), "Cancel", true)) " " }
        (action_form(&format!("{base}/remove"), "Remove", true))
    }
}

pub async fn page(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<JobQuery>,
) -> ApiResult<Response> {
    let any = state.queue(&name)?;
    let j = any.get(&id).await?.ok_or_else(|| ApiError::NotFound(format!("no job `{id}` in queue {name}")))?;
    let from = q.from.unwrap_or(1).max(1);
    // A flow's parent: a page of its children (never all of them).
    let children = match (any.native(), &j.children) {
        (Some(native), Some(_)) => native.children(&id, from, PAGE).await?,
        _ => None,
    };
    let content = html! {
        h1 { "Job " (j.id) }
        p { "Queue " a href=(format!("/dashboard/queues/{name}")) { (name) } " · type " (j.job_type)
            " · state " strong #state { (j.state) } " · attempts " (j.attempts_made) "/" (j.attempts_allowed())
            @if j.stalls > 0 { " · stalled " (j.stalls) " times" } }
        @if let Some(d) = &j.dead_letter {
            p.muted { "A dead letter: it failed for good in " a href=(format!("/dashboard/queues/{}", d.queue)) { (d.queue) }
                " as " code { (d.id) } " " (when(d.failed_at)) ". Retry sends it back there." }
        }
        @if let Some(p) = &j.parent {
            p #parent { "A child in a flow: its parent is "
                a href=(format!("/dashboard/queues/{}/jobs/{}", p.queue, p.id)) { (p.queue) " / " (p.id) } "." }
        }
        p { (actions(&name, &j.id, j.state, j.bullmq.is_none())) }
        @if j.progress.is_some() { (progress(j.progress)) }
        h2 { "Timeline" }
        (timeline(&j))
        @if let Some(page) = &children {
            h2 { "Children" }
            @let c = &page.counts;
            p #children-counts { (c.total) " children: " (c.pending) " pending, " (c.completed) " completed, "
                (c.failed) " failed, " (c.removed) " removed." }
            div.scroll { table #children {
                thead { tr { th.num { "#" } th { "Job" } th { "Outcome" } th { "Output or reason" } } }
                tbody {
                    @for child in &page.children {
                        tr {
                            td.num { (child.number) }
                            td { a href=(format!("/dashboard/queues/{}/jobs/{}", child.queue, child.id)) { (child.queue) " / " (child.id) } }
                            td class=(if child.error.is_some() { "bad" } else { "" }) { (format!("{:?}", child.state).to_lowercase()) }
                            td.muted { (child.error.clone().or_else(|| child.value.as_ref().map(|v| v.to_string())).unwrap_or_default()) }
                        }
                    }
                }
            } }
            p {
                @if from > 1 { a href=(format!("/dashboard/queues/{name}/jobs/{id}?from={}", from.saturating_sub(PAGE).max(1))) { "Previous children" } " " }
                @if let Some(next) = page.next { a href=(format!("/dashboard/queues/{name}/jobs/{id}?from={next}")) { "Next children" } }
            }
        }
        h2 { "Payload" }
        (json_view(&j.payload, "payload"))
        @if let Some(r) = &j.result { h2 { "Result" } div #result { (json_view(r, "result")) } }
        @if let Some(log) = &j.log { h2 { "Log of the last attempt" } (log_view(log, j.run.as_ref().map(|r| r.started))) }
        @if !j.errors.is_empty() {
            h2 { "Errors per attempt" }
            @for e in &j.errors { h3 { "Attempt " (e.attempt) } pre.bad { (e.error) } }
        }
        @if let Some(b) = &j.bullmq { h2 { "BullMQ" } (json_view(b, "bullmq")) }
    };
    Ok(layout(&format!("Job {id}"), (&name, &id), state.tokens.required(), content).into_response())
}

/// One line per event of the job's life: created; each attempt that
/// failed, with its start and runner when known, labelled as retried or
/// as the end; the attempt that completed it; or where it stands now.
fn timeline(j: &JobRecord) -> Markup {
    let (started, finished, took) = timing(j);
    html! {
        div.scroll { table #timeline {
            thead { tr { th { "Attempt" } th { "Started" } th { "Ended" } th.num { "Duration" } th { "Runner" } th { "Outcome" } } }
            tbody {
                tr { td.muted { "–" } td { (when(j.created_at)) } td.muted { "–" } td.num.muted { "–" } td.muted { "–" } td { "created" } }
                @for (i, e) in j.errors.iter().enumerate() {
                    // An attempt that ended the job (its last allowed, or a
                    // permanent failure); one that did not is the last one
                    // now only if the job failed for good since.
                    @let ended = e.kind == "permanent" || e.kind == "failed" || e.attempt >= j.attempts_allowed();
                    @let last = i + 1 == j.errors.len();
                    tr.bad {
                        td { (e.attempt) }
                        td { (e.started.map(when).unwrap_or_else(|| "–".into())) }
                        td { (when(e.at)) }
                        td.num { (e.started.map(|s| duration(e.at.saturating_sub(s))).unwrap_or_else(|| "–".into())) }
                        td { (e.runner.clone().unwrap_or_else(|| "–".into())) }
                        td {
                            @if ended && last && j.state == State::Failed { strong { "failed for good" } }
                            @else if ended { "failed for good, then retried by hand" }
                            @else { "failed, retried" }
                            " (" (e.kind) ")"
                        }
                    }
                }
                @if j.state == State::Completed {
                    tr.ok {
                        td { (j.attempts_made) }
                        td { (started.map(when).unwrap_or_else(|| "–".into())) }
                        td { (finished.map(when).unwrap_or_else(|| "–".into())) }
                        td.num { (took.map(duration).unwrap_or_else(|| "–".into())) }
                        td { (j.run.as_ref().map(|r| r.runner.clone()).filter(|r| !r.is_empty()).unwrap_or_else(|| "–".into())) }
                        td { strong { "completed" } }
                    }
                }
                @if let Some(t) = j.state_since_or_until {
                    @match j.state {
                        State::Delayed => tr { td { (j.attempts_made + 1) } td { "runs at " (when(t)) } td {} td {} td {} td { "delayed" } },
                        State::Active => tr { td { (j.attempts_made) } td.muted { "running" } td { "lease until " (when(t)) } td {} td {} td { "active" } },
                        _ => {}
                    }
                }
            }
        } }
    }
}

/// A JSON document as a collapsible tree (objects and arrays as
/// `details`, the first two levels open), with its raw text to copy.
pub fn json_view(v: &Value, id: &str) -> Markup {
    let raw = serde_json::to_string_pretty(v).unwrap_or_default();
    let mut budget = MAX_TREE_NODES;
    let tree = tree(v, 0, &mut budget);
    html! {
        div.json {
            button.copy type="button" data-copy=(format!("{id}-raw")) { "Copy" }
            @if budget > 0 && matches!(v, Value::Object(_) | Value::Array(_)) {
                div.tree { (tree) }
                details { summary.muted { "Raw" } pre #(format!("{id}-raw")) { (raw) } }
            } @else {
                pre #(format!("{id}-raw")) { (raw) }
            }
        }
    }
}

fn tree(v: &Value, depth: usize, budget: &mut usize) -> Markup {
    *budget = budget.saturating_sub(1);
    let open = depth < 2;
    match v {
        Value::Object(map) if !map.is_empty() => html! {
            details open[open] {
                summary { "{" span.muted { " " (map.len()) " key" @if map.len() != 1 { "s" } " " } "}" }
                ul { @for (k, child) in map { li { span.key { (k) } ": " (tree(child, depth + 1, budget)) } } }
            }
        },
        Value::Array(items) if !items.is_empty() => html! {
            details open[open] {
                summary { "[" span.muted { " " (items.len()) " item" @if items.len() != 1 { "s" } " " } "]" }
                ol start="0" { @for child in items { li { (tree(child, depth + 1, budget)) } } }
            }
        },
        Value::String(s) => html! { span.string { "\"" (s) "\"" } },
        other => html! { span.scalar { (other.to_string()) } },
    }
}

/// The log: the runner's lines with their time into the attempt, level and
/// source; a BullMQ job's plain lines as they are.
fn log_view(log: &Value, started: Option<u64>) -> Markup {
    let lines = log.as_array().cloned().unwrap_or_default();
    html! {
        @if lines.is_empty() { p.muted { "No log lines." } }
        @else {
            div.scroll { table.log #log {
                tbody { @for line in &lines {
                    @if let Some(text) = line.as_str() {
                        tr { td colspan="4" { code { (text) } } }
                    } @else {
                        @let level = line["level"].as_str().unwrap_or("info");
                        @let at = line["at_ms"].as_u64().unwrap_or(0);
                        tr class=(format!("level-{level}")) {
                            td.num.muted title=(started.map(|s| when(s + at)).unwrap_or_default()) { "+" (duration(at)) }
                            td { span class=(format!("badge {level}")) { (level) } }
                            td.muted { (line["source"].as_str().unwrap_or("")) }
                            td { code { (line["message"].as_str().map(str::to_string).unwrap_or_else(|| line["message"].to_string())) } }
                        }
                    }
                } }
            } }
        }
    }
}
