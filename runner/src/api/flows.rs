//! Flow routes: add a flow (a JSON tree of jobs whose parents wait for
//! their children), read a parent's children a page at a time, and remove
//! a flow with every job below its root. Flows are the native queues'; a
//! BullMQ-backed queue's flows are added with BullMQ's own `FlowProducer`.

use crate::web::ApiState;
use crate::web::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use jobrunner_queue::{AddedFlow, ChildrenPage, FlowJob};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// A BullMQ-backed queue named anywhere in the flow, if any.
fn bullmq_queue<'a>(state: &ApiState, job: &'a FlowJob) -> Option<&'a str> {
    if state.bull.contains_key(&job.queue) {
        return Some(&job.queue);
    }
    job.children.iter().find_map(|c| bullmq_queue(state, c))
}

pub async fn add(
    AxState(state): AxState<Arc<ApiState>>,
    ApiJson(flow): ApiJson<FlowJob>,
) -> ApiResult<(StatusCode, Json<AddedFlow>)> {
    if let Some(name) = bullmq_queue(&state, &flow) {
        return Err(ApiError::bad(format!(
            "queue {name} is BullMQ-backed: add flows to it with BullMQ's FlowProducer, which the runner's worker serves"
        )));
    }
    let added = jobrunner_queue::add_flow(&state.connection, flow).await.map_err(ApiError::from_input)?;
    let status = match (&added.unfinished, added.created) {
        // Added, but some jobs below the root wait for a runner to create them.
        (Some(_), _) => StatusCode::ACCEPTED,
        (None, true) => StatusCode::CREATED,
        (None, false) => StatusCode::OK,
    };
    Ok((status, Json(added)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildrenQuery {
    /// The first child's number (from 1).
    #[serde(default = "first")]
    pub from: u64,
    #[serde(default = "page")]
    pub limit: u64,
}

fn first() -> u64 {
    1
}

fn page() -> u64 {
    100
}

pub async fn children(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ChildrenQuery>,
) -> ApiResult<Json<ChildrenPage>> {
    let any = state.queue(&name)?;
    let native = any.native().ok_or_else(|| {
        ApiError::bad(format!(
            "queue {name} is BullMQ-backed: read a parent's children with BullMQ's getChildrenValues"
        ))
    })?;
    if q.from == 0 || q.limit == 0 || q.limit > 1000 {
        return Err(ApiError::bad("from starts at 1, and limit is 1 to 1000"));
    }
    match native.children(&id, q.from, q.limit).await.map_err(ApiError::from_input)? {
        Some(page) => Ok(Json(page)),
        None => Err(ApiError::NotFound(format!("no parent of a flow `{id}` in queue {name}"))),
    }
}

pub async fn remove(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let any = state.queue(&name)?;
    if any.native().is_none() {
        return Err(ApiError::bad(format!("queue {name} is BullMQ-backed: remove its flows with BullMQ")));
    }
    match jobrunner_queue::remove_flow(&state.connection, &name, &id).await.map_err(ApiError::from_input)? {
        0 => Err(ApiError::NotFound(format!("no job `{id}` in queue {name}"))),
        n => Ok(Json(json!({"id": id, "removed": n}))),
    }
}
