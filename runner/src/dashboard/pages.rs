//! The dashboard's smaller pages: schedules, and signing in and out.

use crate::dashboard::{layout, when};
use crate::web::ApiState;
use crate::web::error::{ApiError, ApiResult};
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Redirect, Response};
use jobrunner_queue::Queue;
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

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
