//! The dashboard: server-rendered pages at `/dashboard`, with every asset
//! embedded in the binary and a little JavaScript for live updates over
//! server-sent events.
//!
//! Layout: `overview` (totals, live and history charts, the queues),
//! `charts` (its SVG drawings), `queue` (a queue's jobs: columns,
//! filters, bulk actions), `job` (one job: timeline, JSON, log), `pages`
//! (schedules, login), `plugins` (each plugin's figures per version, grants and history),
//! `busy` (the runners and the jobs running now), `redis` (the server
//! behind the queues), `actions` (retry, remove, promote, cancel, pause,
//! resume, retry failed, clean), `live` (the event stream).
//!
//! Security: the API's authentication applies (a session from the sign-in
//! form, kept in Redis and ended by signing out, or Basic auth with the
//! token as password); every action is a POST form carrying a CSRF token
//! that only pages of this runner know, and from this runner's origin.

pub mod actions;
pub mod busy;
pub mod charts;
pub mod job;
pub mod live;
pub mod overview;
pub mod pages;
pub mod plugins;
pub mod queue;
pub mod redis;

use crate::web::ApiState;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

/// The secret behind CSRF tokens: random per process, so a token is only
/// known to pages this runner rendered.
fn csrf_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(rand::random)
}

/// The CSRF token every action form carries.
pub fn csrf_token() -> String {
    hex::encode(Sha256::new().chain_update(csrf_secret()).chain_update(b"dashboard-csrf").finalize())
}

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/queues/{queue}", get(queue::page))
        .route("/queues/{queue}/bulk", post(queue::bulk))
        .route("/queues/{queue}/jobs/{id}", get(job::page))
        .route("/queues/{queue}/jobs/{id}/{action}", post(actions::job_action))
        .route("/queues/{queue}/do/{action}", post(actions::queue_action))
        .route("/busy", get(busy::page))
        .route("/redis", get(redis::page))
        .route("/plugins", get(plugins::page))
        .route("/schedules", get(pages::schedules))
        .route("/live", get(live::stream))
        .route(
            "/assets/app.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], include_str!("assets/app.css")) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], include_str!("assets/app.js")) }),
        )
}

/// The frame of every page; `sign_out` shows the sign-out button (pages
/// behind a token; not the sign-in page itself).
pub fn layout(title: &str, body_data: (&str, &str), sign_out: bool, content: Markup) -> impl IntoResponse {
    maud::html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · jobrunner" }
                link rel="stylesheet" href="/dashboard/assets/app.css";
            }
            body data-queue=(body_data.0) data-job=(body_data.1) {
                header {
                    span.brand { "jobrunner" }
                    a href="/dashboard" { "Overview" }
                    a href="/dashboard/busy" { "Busy" }
                    a href="/dashboard/plugins" { "Plugins" }
                    a href="/dashboard/schedules" { "Schedules" }
                    a href="/dashboard/redis" { "Redis" }
                    @if sign_out { (action_form("/dashboard/logout", "Sign out", false)) }
                }
                main { (content) }
                script src="/dashboard/assets/app.js" {}
            }
        }
    }
}

/// A POST form with one button and the CSRF token.
pub fn action_form(action: &str, label: &str, danger: bool) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf_token());
            @if danger { button.danger type="submit" { (label) } } @else { button type="submit" { (label) } }
        }
    }
}

/// As `action_form`, coming back to `back` (a dashboard page) afterwards.
pub fn action_form_back(action: &str, label: &str, danger: bool, back: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf_token());
            input type="hidden" name="back" value=(back);
            @if danger { button.danger type="submit" { (label) } } @else { button type="submit" { (label) } }
        }
    }
}

/// Milliseconds since the epoch, as a UTC time a person reads.
pub fn when(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}
