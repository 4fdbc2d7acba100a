//! A queue's page: its jobs in one state, a page at a time, with when each
//! started and finished, how long it ran, its progress and its last error;
//! found by id, or filtered by type and by a payload field (a bounded scan:
//! `jobrunner_bullmq::search`, whose cost the page states); several
//! selected and retried, promoted or removed together (`bulk`); and the
//! queue's own actions and policy.

use crate::dashboard::busy::{duration, progress};
use crate::dashboard::{action_form, csrf_token, layout, when};
use crate::web::ApiState;
use crate::web::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::response::{IntoResponse, Redirect, Response};
use jobrunner_bullmq::any_queue::AnyQueue;
use jobrunner_bullmq::search::Filter;
use jobrunner_queue::{JobRecord, State};
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;

/// Jobs per page.
pub const PAGE: u64 = 50;
/// Jobs a filtered page reads at most before it stops and offers to go on.
pub const SCAN_BUDGET: u64 = 2_000;
/// Jobs one bulk action takes at most (a page's worth, with room).
pub const MAX_BULK: usize = 200;

#[derive(Deserialize, Default)]
pub struct QueueQuery {
    pub state: Option<String>,
    pub cursor: Option<u64>,
    /// Go to a job by id.
    pub id: Option<String>,
    /// Only jobs of this type.
    #[serde(rename = "type")]
    pub job_type: Option<String>,
    /// Only jobs whose payload has `field` = `value`.
    pub field: Option<String>,
    pub value: Option<String>,
    /// What the last bulk action did, for the notice.
    pub done: Option<u64>,
    pub refused: Option<u64>,
    pub action: Option<String>,
    pub why: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

impl QueueQuery {
    fn filter(&self) -> Filter {
        Filter {
            job_type: nonempty(&self.job_type),
            field: nonempty(&self.field).map(|f| (f, self.value.clone().unwrap_or_default())),
        }
    }

    /// This page's query again, for links that keep the filter.
    fn link(&self, name: &str, st: State, cursor: Option<u64>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("state", st.as_str());
        if let Some(t) = nonempty(&self.job_type) {
            q.append_pair("type", &t);
        }
        if let Some(f) = nonempty(&self.field) {
            q.append_pair("field", &f);
            q.append_pair("value", self.value.as_deref().unwrap_or(""));
        }
        if let Some(c) = cursor.filter(|c| *c > 0) {
            q.append_pair("cursor", &c.to_string());
        }
        format!("/dashboard/queues/{name}?{}", q.finish())
    }
}

pub async fn page(
    AxState(state): AxState<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Response> {
    if let Some(id) = nonempty(&q.id) {
        return Ok(Redirect::to(&format!("/dashboard/queues/{name}/jobs/{id}")).into_response());
    }
    let st = State::parse(q.state.as_deref().unwrap_or("waiting")).ok_or_else(|| {
        ApiError::bad("state must be waiting, delayed, active, completed, failed or waiting_children")
    })?;
    let queue = state.queue(&name)?;
    let counts = queue.counts().await?;
    let policy = queue.policy().await?;
    let offset = q.cursor.unwrap_or(0);
    let filter = q.filter();
    let (jobs, scanned, next) = if filter.is_empty() {
        let jobs = queue.list(st, offset, PAGE).await?;
        let next = (jobs.len() as u64 == PAGE).then_some(offset.saturating_add(PAGE));
        (jobs, None, next)
    } else {
        let found = queue.search(st, offset, PAGE, &filter, SCAN_BUDGET).await?;
        (found.jobs, Some(found.scanned), found.next)
    };
    let here = q.link(&name, st, Some(offset));
    let known_types = types(&state);
    let content = html! {
        h1 { "Queue " (name) @if counts.paused { " " span.bad { "(paused)" } } }
        @if let AnyQueue::Bull(b) = &queue {
            p.muted { "A BullMQ queue: " code { (b.bull_name()) } " under the prefix " code { (b.prefix()) }
                ". Its producers add jobs with BullMQ; the runner's plugins run them." }
        }
        @if let Some(done) = q.done {
            p.notice #bulk-notice {
                (q.action.as_deref().unwrap_or("done")) ": " (done) " job" @if done != 1 { "s" }
                @if let Some(r) = q.refused.filter(|r| *r > 0) { "; " (r) " not (" (q.why.as_deref().unwrap_or("not in a state for it")) ")" }
                "."
            }
        }
        p {
            @if counts.paused { (action_form(&format!("/dashboard/queues/{name}/do/resume"), "Resume", false)) }
            @else { (action_form(&format!("/dashboard/queues/{name}/do/pause"), "Pause", false)) }
            " "
            @if counts.failed > 0 { (action_form(&format!("/dashboard/queues/{name}/do/retry-failed"), "Retry all failed", false)) " " }
            (action_form(&format!("/dashboard/queues/{name}/do/clean-completed"), "Clean completed", true))
            " "
            (action_form(&format!("/dashboard/queues/{name}/do/clean-failed"), "Clean failed", true))
        }
        form.find method="get" action=(format!("/dashboard/queues/{name}")) {
            input type="search" name="id" placeholder="Job id" aria-label="Find a job by id";
            " " button type="submit" { "Find" }
        }
        form.find #filter method="get" action=(format!("/dashboard/queues/{name}")) {
            input type="hidden" name="state" value=(st.as_str());
            label { "Type " input type="text" name="type" list="job-types" value=(q.job_type.clone().unwrap_or_default()) size="14"; }
            datalist #job-types { @for t in &known_types { option value=(t) {} } }
            " "
            label { "Payload field " input type="text" name="field" placeholder="user.id" value=(q.field.clone().unwrap_or_default()) size="12"; }
            " = "
            input type="text" name="value" aria-label="value" value=(q.value.clone().unwrap_or_default()) size="12";
            " " button type="submit" { "Filter" }
            @if !filter.is_empty() { " " a href=(format!("/dashboard/queues/{name}?state={st}")) { "Clear" } }
        }
        p.tabs {
            @for s in State::ALL {
                a class=(if s == st { "on" } else { "" }) href=(q.link(&name, s, None)) {
                    (s) " (" span data-count=(format!("{name}:{s}")) { (count_of(&counts, s)) } ")"
                }
            }
        }
        @if let Some(n) = scanned {
            p.muted #scan { "Filtered by reading " (n) " " (st) " jobs from position " (offset.saturating_add(1))
                " (at most " (SCAN_BUDGET) " a page: no index by type or payload exists, so a filter reads the jobs in order)." }
        }
        form #bulk method="post" action=(format!("/dashboard/queues/{name}/bulk")) {
            input type="hidden" name="csrf" value=(csrf_token());
            input type="hidden" name="back" value=(here);
            "Selected: "
            // Retry takes failed jobs (a completed one is not run again).
            @if st == State::Failed { button type="submit" name="action" value="retry" { "Retry" } " " }
            @if st == State::Delayed { button type="submit" name="action" value="promote" { "Run now" } " " }
            button.danger type="submit" name="action" value="remove" { "Remove" }
        }
        div.scroll { table #jobs {
            thead { tr {
                th { input type="checkbox" #select-all aria-label="Select every job on this page" title="Select all"; }
                th { "Job" } th { "Type" } th.num { "Attempts" } th { "Created" } th { "Started" } th { "Finished" }
                th.num { "Duration" } th { "Progress" } th { "Last error" } th {}
            } }
            tbody {
                @for j in &jobs { (row(&name, j)) }
            }
        } }
        @if jobs.is_empty() {
            p.muted { "No " (st) " jobs" @if !filter.is_empty() { " match in the jobs read" } "." }
        }
        p {
            @if offset > 0 && filter.is_empty() {
                a href=(q.link(&name, st, Some(offset.saturating_sub(PAGE)))) { "Previous page" } " "
            }
            @if let Some(n) = next { a #next href=(q.link(&name, st, Some(n))) { "Next page" } }
        }
        details #policy {
            summary { "Policy" }
            p.muted { "What a job gets where its producer sets nothing: " code { "[queues." (name) "]" }
                " in the runners' config, else the default." }
            table {
                thead { tr { th { "Key" } th { "Value" } th { "From" } } }
                tbody {
                    @for (key, value, source) in policy.describe() {
                        tr { td { code { (key) } } td { (value) } td.muted { (source) } }
                    }
                }
            }
        }
    };
    Ok(layout(&name, (&name, ""), state.tokens.required(), content).into_response())
}

fn count_of(c: &jobrunner_queue::Counts, s: State) -> u64 {
    match s {
        State::Waiting => c.waiting,
        State::Delayed => c.delayed,
        State::Active => c.active,
        State::Completed => c.completed,
        State::Failed => c.failed,
        State::WaitingChildren => c.waiting_children,
    }
}

/// The job types the runners' plugins serve, for the type filter's list.
fn types(state: &ApiState) -> Vec<String> {
    let mut t: Vec<String> = state
        .registry
        .as_ref()
        .map(|r| r.statuses())
        .unwrap_or_default()
        .into_iter()
        .flat_map(|p| p.job_types)
        .collect();
    t.sort();
    t.dedup();
    t
}

/// When a job's last attempt started, when it finished, and how long it
/// ran (as far as the queue knows them: a completed job's run, a failed
/// attempt's error entry).
pub fn timing(j: &JobRecord) -> (Option<u64>, Option<u64>, Option<u64>) {
    let finished = matches!(j.state, State::Completed | State::Failed).then_some(j.state_since_or_until).flatten();
    let started = match j.state {
        State::Completed => j.run.as_ref().map(|r| r.started),
        State::Failed => j.errors.last().and_then(|e| e.started),
        _ => None,
    };
    let took = match (started, finished) {
        (Some(s), Some(f)) => Some(f.saturating_sub(s)),
        _ => None,
    };
    (started, finished, took)
}

fn row(name: &str, j: &JobRecord) -> Markup {
    let (started, finished, took) = timing(j);
    let dash = || html! { span.muted { "–" } };
    html! {
        tr {
            td { input type="checkbox" name="ids" value=(j.id) form="bulk" aria-label=(format!("Select job {}", j.id)); }
            td { a href=(format!("/dashboard/queues/{name}/jobs/{}", j.id)) { (j.id) } }
            td { (j.job_type) }
            td.num { (j.attempts_made) "/" (j.attempts_allowed()) }
            td.muted.when { (when(j.created_at)) }
            td.muted.when { @if let Some(s) = started { (when(s)) } @else { (dash()) } }
            td.muted.when {
                @if let Some(f) = finished { (when(f)) }
                @else if j.state == State::Delayed { @if let Some(t) = j.state_since_or_until { "runs " (when(t)) } }
                @else { (dash()) }
            }
            td.num { @if let Some(t) = took { (duration(t)) } @else { (dash()) } }
            td { (progress(j.progress)) }
            // A completed job's errors are of attempts before the one that
            // completed it: its page has them.
            td.bad.error { @if j.state != State::Completed {
                (j.errors.last().map(|e| e.error.lines().next().unwrap_or("").to_string()).unwrap_or_default())
            } }
            td.actions { (crate::dashboard::job::actions(name, &j.id, j.state, j.bullmq.is_none())) }
        }
    }
}

/// Retry, promote or remove the selected jobs (`ids`, repeated), then back
/// to the page with what was done. Each job is its own operation: one in
/// another state by now is counted as refused, the others still done.
pub async fn bulk(
    AxState(state): AxState<Arc<ApiState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Redirect> {
    let (mut csrf, mut back, mut action, mut ids) = (String::new(), None, None, Vec::new());
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "back" => back = Some(v.into_owned()),
            "action" => action = Some(v.into_owned()),
            "ids" => ids.push(v.into_owned()),
            _ => {}
        }
    }
    crate::dashboard::actions::check(&crate::dashboard::actions::ActionForm { csrf, back: None })?;
    let action = action.ok_or_else(|| ApiError::bad("no action: choose retry, promote or remove"))?;
    if ids.is_empty() {
        return Err(ApiError::bad("no job selected"));
    }
    if ids.len() > MAX_BULK {
        return Err(ApiError::bad(format!("{} jobs selected; at most {MAX_BULK} at once", ids.len())));
    }
    let q = state.queue(&name)?;
    let (mut done, mut refused, mut why) = (0u64, 0u64, None);
    for id in &ids {
        let (answer, ok) = match action.as_str() {
            "retry" => q.retry(id).await.map(|a| (a.clone(), a == "retried"))?,
            "promote" => q.promote(id).await.map(|a| (a.clone(), a == "promoted"))?,
            "remove" => q.remove(id).await.map(|a| (a.clone(), a != "missing" && a != "locked"))?,
            other => return Err(ApiError::bad(format!("no bulk action `{other}`: retry, promote or remove"))),
        };
        if ok {
            done += 1;
        } else {
            refused += 1;
            why.get_or_insert_with(|| format!("{id}: {answer}"));
        }
    }
    tracing::info!(queue = %name, action = %action, done, refused, "bulk action from the dashboard");
    let back =
        crate::dashboard::actions::safe_back(back.as_deref()).unwrap_or_else(|| format!("/dashboard/queues/{name}"));
    let mut notice = url::form_urlencoded::Serializer::new(String::new());
    notice
        .append_pair("action", &action)
        .append_pair("done", &done.to_string())
        .append_pair("refused", &refused.to_string());
    if let Some(w) = why {
        notice.append_pair("why", &w);
    }
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{sep}{}", notice.finish())))
}
