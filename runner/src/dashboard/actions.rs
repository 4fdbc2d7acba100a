//! The dashboard's actions: POST forms, each checked for the CSRF token,
//! then redirected back (303) to the page they came from.

use crate::web::ApiState;
use crate::web::error::{ApiError, ApiResult};
use axum::Form;
use axum::extract::{Path, State as AxState};
use axum::response::Redirect;
use jobrunner_bullmq::any_queue::AnyQueue;
use jobrunner_queue::State;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize)]
pub struct ActionForm {
    pub csrf: String,
    /// The dashboard page to return to (the job's page otherwise).
    #[serde(default)]
    pub back: Option<String>,
}

pub(crate) fn check(form: &ActionForm) -> ApiResult<()> {
    use subtle::ConstantTimeEq;
    if !bool::from(form.csrf.as_bytes().ct_eq(super::csrf_token().as_bytes())) {
        return Err(ApiError::Forbidden("missing or stale CSRF token: reload the page and try again".into()));
    }
    Ok(())
}

/// A page to return to after an action: only a page of the dashboard,
/// never a redirect off this server.
pub(crate) fn safe_back(back: Option<&str>) -> Option<String> {
    back.filter(|b| b.starts_with("/dashboard/") && !b.contains("//") && !b.contains('\\')).map(str::to_string)
}

fn queue(state: &ApiState, name: &str) -> ApiResult<AnyQueue> {
    state.queue(name)
}

pub async fn job_action(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id, action)): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> ApiResult<Redirect> {
    check(&form)?;
    let q = queue(&state, &name)?;
    let back = safe_back(form.back.as_deref()).unwrap_or_else(|| format!("/dashboard/queues/{name}/jobs/{id}"));
    match action.as_str() {
        "retry" => {
            q.retry(&id).await?;
        }
        "promote" => {
            q.promote(&id).await?;
        }
        "cancel" => {
            let native =
                q.native().ok_or_else(|| ApiError::bad("a BullMQ-backed queue's jobs cannot be cancelled here"))?;
            let answer = native.cancel(&id).await.map_err(ApiError::from_input)?;
            drop(crate::api::jobs::cancel_answer(&name, &id, answer)?);
        }
        "remove" => {
            q.remove(&id).await?;
            return Ok(Redirect::to(&format!("/dashboard/queues/{name}")));
        }
        other => return Err(ApiError::NotFound(format!("no action `{other}`"))),
    }
    Ok(Redirect::to(&back))
}

pub async fn queue_action(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> ApiResult<Redirect> {
    check(&form)?;
    let q = queue(&state, &name)?;
    match action.as_str() {
        "pause" => q.pause().await?,
        "resume" => q.resume().await?,
        "retry-failed" => drop(q.retry_all_failed().await?),
        // From the dashboard, clean keeps the last hour.
        "clean-completed" => drop(q.clean(State::Completed, Duration::from_secs(3600), u64::MAX).await?),
        "clean-failed" => drop(q.clean(State::Failed, Duration::from_secs(3600), u64::MAX).await?),
        other => return Err(ApiError::NotFound(format!("no action `{other}`"))),
    }
    Ok(Redirect::to(&format!("/dashboard/queues/{name}")))
}
