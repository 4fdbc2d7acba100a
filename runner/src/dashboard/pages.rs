//! The dashboard's pages. Every listing is paged; nothing scans a queue.

use crate::dashboard::{action_form, layout, when};
use crate::web::ApiState;
use crate::web::error::{ApiError, ApiResult};
use axum::extract::{Path, Query, State as AxState};
use axum::response::{IntoResponse, Redirect, Response};
use jobrunner_bullmq::any_queue::AnyQueue;
use jobrunner_queue::{Queue, State};
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

const PAGE: u64 = 50;

fn queue(state: &ApiState, name: &str) -> ApiResult<AnyQueue> {
    state.queue(name)
}

/// Jobs completed per minute over the last hour, as an SVG bar chart.
fn throughput_chart(per_minute: &[u64]) -> Markup {
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1) as f64;
    html! {
        svg width="360" height="40" viewBox="0 0 360 40" role="img" aria-label="jobs completed per minute, last hour" {
            @for (i, n) in per_minute.iter().enumerate() {
                @let h = (*n as f64 / max * 38.0).max(if *n > 0 { 1.0 } else { 0.0 });
                rect.bar x=(i * 6) y=(40.0 - h) width="5" height=(h) { title { (n) " completed" } }
            }
        }
    }
}

pub async fn overview(AxState(state): AxState<Arc<ApiState>>) -> ApiResult<Response> {
    let mut rows = Vec::new();
    for name in state.queue_names().await? {
        let q = queue(&state, &name)?;
        rows.push((name, q.backend(), q.counts().await?, q.completed_per_minute(60).await?));
    }
    // What Redis would do to the jobs: said first, where an operator looks.
    let durability = jobrunner_queue::durability::read(&state.connection).await.ok();
    let allowed = state.redis_policy.allow_eviction;
    let content = html! {
        @if let Some(d) = &durability {
            @if let Some(risk) = d.eviction_risk() {
                p.bad.banner #redis-risk { (risk) @if allowed { " (running anyway: `[redis] allow_eviction`)" } }
            }
            @if let Some(warning) = d.persistence_warning() { p.bad.banner #redis-persistence { (warning) } }
            @if let Some(note) = d.eviction_note() { p.muted { (note) } }
        }
        h1 { "Queues" }
        @if rows.is_empty() { p.muted { "No queue has been used yet." } }
        div.scroll { table {
            thead { tr {
                th { "Queue" } th.num { "Waiting" } th.num { "Delayed" } th.num { "Active" }
                th.num { "Completed" } th.num { "Failed" } th { "Last hour" } th {}
            } }
            tbody {
                @for (name, backend, c, chart) in &rows {
                    tr {
                        td {
                            a href=(format!("/dashboard/queues/{name}")) { (name) }
                            @if *backend == "bullmq" { " " span.muted title="kept in BullMQ's format" { "BullMQ" } }
                            @if c.paused { " " span.bad { "(paused)" } }
                        }
                        td.num data-count=(format!("{name}:waiting")) { (c.waiting) }
                        td.num data-count=(format!("{name}:delayed")) { (c.delayed) }
                        td.num data-count=(format!("{name}:active")) { (c.active) }
                        td.num data-count=(format!("{name}:completed")) { (c.completed) }
                        td.num data-count=(format!("{name}:failed")) {
                            @if c.failed > 0 { a.bad href=(format!("/dashboard/queues/{name}?state=failed")) { (c.failed) } } @else { "0" }
                        }
                        td { (throughput_chart(chart)) }
                        td {
                            @if c.paused { (action_form(&format!("/dashboard/queues/{name}/do/resume"), "Resume", false)) }
                            @else { (action_form(&format!("/dashboard/queues/{name}/do/pause"), "Pause", false)) }
                        }
                    }
                }
            }
        } }
    };
    Ok(layout("Queues", ("", ""), state.tokens.required(), content).into_response())
}

#[derive(Deserialize)]
pub struct QueueQuery {
    pub state: Option<String>,
    pub cursor: Option<u64>,
    /// Search by job id.
    pub id: Option<String>,
}

pub async fn queue_page(state: &ApiState, name: &str, q: QueueQuery) -> ApiResult<Response> {
    if let Some(id) = q.id.filter(|i| !i.trim().is_empty()) {
        return Ok(Redirect::to(&format!("/dashboard/queues/{name}/jobs/{}", id.trim())).into_response());
    }
    let st = State::parse(q.state.as_deref().unwrap_or("waiting")).ok_or_else(|| ApiError::bad("unknown state"))?;
    let queue = queue(state, name)?;
    let counts = queue.counts().await?;
    let policy = queue.policy().await?;
    let offset = q.cursor.unwrap_or(0);
    let jobs = queue.list(st, offset, PAGE).await?;
    let count_of = |s: State| match s {
        State::Waiting => counts.waiting,
        State::Delayed => counts.delayed,
        State::Active => counts.active,
        State::Completed => counts.completed,
        State::Failed => counts.failed,
        State::WaitingChildren => counts.waiting_children,
    };
    let content = html! {
        h1 { "Queue " (name) @if counts.paused { " " span.bad { "(paused)" } } }
        @if let AnyQueue::Bull(b) = &queue {
            p.muted { "A BullMQ queue: " code { (b.bull_name()) } " under the prefix " code { (b.prefix()) }
                ". Its producers add jobs with BullMQ; the runner's plugins run them." }
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
        form method="get" action=(format!("/dashboard/queues/{name}")) {
            input type="search" name="id" placeholder="Find a job by id";
            " " button type="submit" { "Find" }
        }
        p.tabs {
            @for s in State::ALL {
                a class=(if s == st { "on" } else { "" }) href=(format!("/dashboard/queues/{name}?state={s}")) {
                    (s) " (" span data-count=(format!("{name}:{s}")) { (count_of(s)) } ")"
                }
            }
        }
        table {
            thead { tr { th { "Job" } th { "Type" } th.num { "Attempts" } th { "Created" } th { "Last error" } th {} } }
            tbody {
                @for j in &jobs {
                    tr {
                        td { a href=(format!("/dashboard/queues/{name}/jobs/{}", j.id)) { (j.id) } }
                        td { (j.job_type) }
                        td.num { (j.attempts_made) "/" (j.attempts_allowed()) }
                        td.muted { (when(j.created_at)) }
                        td.bad { (j.errors.last().map(|e| e.error.lines().next().unwrap_or("").to_string()).unwrap_or_default()) }
                        td { (job_actions(name, &j.id, j.state, j.bullmq.is_none())) }
                    }
                }
            }
        }
        @if jobs.is_empty() { p.muted { "No " (st) " jobs." } }
        @if jobs.len() as u64 == PAGE {
            a href=(format!("/dashboard/queues/{name}?state={st}&cursor={}", offset + PAGE)) { "Next page" }
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
    Ok(layout(name, (name, ""), state.tokens.required(), content).into_response())
}

pub async fn queue_view(
    AxState(state): AxState<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Response> {
    queue_page(&state, &name, q).await
}

/// The job's buttons; `is_native`: not a BullMQ-backed queue's (only a
/// native job can be cancelled through the runner).
fn job_actions(queue: &str, id: &str, state: State, is_native: bool) -> Markup {
    let base = format!("/dashboard/queues/{queue}/jobs/{id}");
    html! {
        @if state == State::Failed { (action_form(&format!("{base}/retry"), "Retry", false)) " " }
        @if state == State::Delayed { (action_form(&format!("{base}/promote"), "Run now", false)) " " }
        @if state == State::Active && is_native { (action_form(&format!("{base}/cancel"), "Cancel", true)) " " }
        (action_form(&format!("{base}/remove"), "Remove", true))
    }
}

#[derive(Deserialize)]
pub struct JobQuery {
    /// The first child shown of a flow's parent (from 1).
    pub from: Option<u64>,
}

pub async fn job(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<JobQuery>,
) -> ApiResult<Response> {
    let any = queue(&state, &name)?;
    let j = any.get(&id).await?.ok_or_else(|| ApiError::NotFound(format!("no job `{id}` in queue {name}")))?;
    let from = q.from.unwrap_or(1).max(1);
    // A flow's parent: a page of its children (never all of them).
    let children = match (any.native(), &j.children) {
        (Some(native), Some(_)) => native.children(&id, from, PAGE).await?,
        _ => None,
    };
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
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
        p { (job_actions(&name, &j.id, j.state, j.bullmq.is_none())) }
        @if let Some(page) = &children {
            h2 { "Children" }
            @let c = &page.counts;
            p #children-counts { (c.total) " children: " (c.pending) " pending, " (c.completed) " completed, "
                (c.failed) " failed, " (c.removed) " removed." }
            table #children {
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
            }
            p {
                @if from > 1 { a href=(format!("/dashboard/queues/{name}/jobs/{id}?from={}", from.saturating_sub(PAGE).max(1))) { "Previous children" } " " }
                @if let Some(next) = page.next { a href=(format!("/dashboard/queues/{name}/jobs/{id}?from={next}")) { "Next children" } }
            }
        }
        @if let Some(p) = j.progress {
            div.progress title=(format!("{p}%")) { div style=(format!("width: {p}%")) {} }
        }
        h2 { "Timeline" }
        ul {
            li { "created " (when(j.created_at)) }
            @for e in &j.errors { li.bad { "attempt " (e.attempt) " failed " (when(e.at)) " (" (e.kind) ")" } }
            @if let Some(t) = j.state_since_or_until {
                li { (match j.state { State::Delayed => "runs at ", State::Active => "lease until ", _ => "finished " }) (when(t)) }
            }
        }
        h2 { "Payload" }
        pre { (pretty(&j.payload)) }
        @if let Some(r) = &j.result { h2 { "Result" } pre #result { (pretty(r)) } }
        @if !j.errors.is_empty() {
            h2 { "Errors per attempt" }
            @for e in &j.errors { h3 { "Attempt " (e.attempt) } pre.bad { (e.error) } }
        }
        @if let Some(log) = &j.log { h2 { "Log of the last attempt" } pre { (pretty(log)) } }
        @if let Some(b) = &j.bullmq { h2 { "BullMQ" } pre { (pretty(b)) } }
    };
    Ok(layout(&format!("Job {id}"), (&name, &id), state.tokens.required(), content).into_response())
}

pub async fn plugins(AxState(state): AxState<Arc<ApiState>>) -> impl IntoResponse {
    let statuses = state.registry.as_ref().map(|r| r.statuses()).unwrap_or_default();
    let content = html! {
        h1 { "Plugins" }
        table {
            thead { tr { th { "Plugin" } th { "File" } th { "Job types" } th { "Loaded" } th { "Last error" } } }
            tbody {
                @for p in &statuses {
                    tr {
                        // The operator's name first; what the plugin says it
                        // is, and its file, after.
                        td {
                            strong { (p.name.clone().unwrap_or_default()) }
                            @if let Some(declared) = &p.declared_name {
                                " " span.muted { "declares " (declared) " " (p.version.clone().unwrap_or_default())
                                    @if let Some(c) = p.contract { ", contract " (c) } }
                            }
                        }
                        td.muted { (p.file.display()) }
                        td { (p.job_types.join(", ")) }
                        td.muted { (p.loaded_at_ms.map(when).unwrap_or_else(|| "never".into())) }
                        td.bad { (p.last_error.clone().unwrap_or_default()) }
                    }
                    tr { td colspan="5" {
                        details { summary.muted { "Reload history (" (p.history.len()) ")" }
                            ul { @for h in &p.history { li { (when(h.at_ms)) " " (h.outcome) ": " (h.detail) } } } }
                    } }
                }
            }
        }
    };
    layout("Plugins", ("", ""), state.tokens.required(), content)
}

pub async fn schedules(AxState(state): AxState<Arc<ApiState>>) -> ApiResult<Response> {
    let mut all = Vec::new();
    // Schedules are the native queues' own (BullMQ has its job schedulers).
    for name in Queue::names(&state.connection).await? {
        for s in Queue::new(state.connection.clone(), &name).map_err(ApiError::bad)?.list_schedules().await? {
            all.push((name.clone(), s));
        }
    }
    let content = html! {
        h1 { "Schedules" }
        table {
            thead { tr { th { "Queue" } th { "Schedule" } th { "Type" } th { "When" } th { "Last run" } th { "Next run" } } }
            tbody {
                @for (q, s) in &all {
                    tr {
                        td { (q) } td { (s.schedule.id) } td { (s.schedule.job_type) }
                        td { (match &s.schedule.timing {
                            jobrunner_queue::Timing::Cron { expr, tz } => format!("cron {expr} ({tz})"),
                            jobrunner_queue::Timing::Every { every_ms } => format!("every {}", humantime::format_duration(Duration::from_millis(*every_ms))),
                        }) }
                        td.muted { (s.last_run_ms.map(when).unwrap_or_else(|| "not yet".into())) }
                        td { (when(s.next_run_ms)) }
                    }
                }
            }
        }
        @if all.is_empty() { p.muted { "No schedules." } }
    };
    Ok(layout("Schedules", ("", ""), state.tokens.required(), content).into_response())
}

pub async fn login_form() -> impl IntoResponse {
    layout("Sign in", ("", ""), false, login_markup(None))
}

fn login_markup(error: Option<&str>) -> Markup {
    html! {
        h1 { "Sign in" }
        @if let Some(e) = error { p.bad { (e) } }
        form method="post" action="/dashboard/login" {
            label { "Name " input type="text" name="name" autocomplete="username" autofocus; }
            " "
            label { "Password or token " input type="password" name="token" autocomplete="current-password"; }
            " " button type="submit" { "Sign in" }
        }
        p.muted { "A named user signs in with a name and password; leave the name empty to sign in with an API token." }
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    /// A named user's (`[[http.users]]`); empty or absent: `token` is a token.
    #[serde(default)]
    pub name: String,
    /// The user's password, or a token.
    pub token: String,
}

/// Whether the session cookie must be `Secure`: configured so, or the
/// request came through a proxy that terminated TLS.
fn secure(state: &ApiState, headers: &axum::http::HeaderMap) -> bool {
    state.web.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

pub async fn login(
    AxState(state): AxState<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let name = form.name.trim();
    let who = if name.is_empty() {
        state.tokens.role_of(&form.token).map(|role| crate::web::session::Session { role, user: None })
    } else {
        state
            .tokens
            .user(name, &form.token)
            .await
            .map(|u| crate::web::session::Session { role: u.role, user: Some(u.name) })
    };
    let Some(who) = who else {
        let why = if name.is_empty() { "That token is not valid." } else { "That name and password do not match." };
        return (axum::http::StatusCode::UNAUTHORIZED, layout("Sign in", ("", ""), false, login_markup(Some(why))))
            .into_response();
    };
    if let Some(user) = &who.user {
        tracing::info!(user = %user, role = ?who.role, "signed in to the dashboard");
    }
    match crate::web::session::start(&state.connection, &who, state.web.session_ttl).await {
        Ok(id) => (
            [(
                axum::http::header::SET_COOKIE,
                crate::web::session::cookie(&id, state.web.session_ttl, secure(&state, &headers)),
            )],
            Redirect::to("/dashboard"),
        )
            .into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            layout(
                "Sign in",
                ("", ""),
                false,
                login_markup(Some(&format!("Cannot start a session: Redis said {e:#}"))),
            ),
        )
            .into_response(),
    }
}

/// Signs out: the session ends in Redis (on every runner) and the cookie goes.
pub async fn logout(
    AxState(state): AxState<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<crate::dashboard::actions::ActionForm>,
) -> Result<Response, ApiError> {
    crate::dashboard::actions::check(&form)?;
    if let Some(id) = crate::web::session::from_headers(&headers) {
        crate::web::session::end(&state.connection, &id).await.map_err(ApiError::Internal)?;
    }
    Ok((
        [(axum::http::header::SET_COOKIE, crate::web::session::removal(secure(&state, &headers)))],
        Redirect::to("/dashboard/login"),
    )
        .into_response())
}
