//! Schedules, plugins, runners, health, readiness, metrics and the OpenAPI
//! document.

use crate::web::ApiState;
use crate::web::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use jobrunner_queue::{Queue, Schedule, ScheduleSource};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The API's OpenAPI document; `tests` keep it true to the router.
pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Whether this runner can take jobs: Redis answers and is safe to keep
/// jobs in, and every plugin file has loaded or been refused. Asked
/// without credentials while they are required (a Kubernetes probe), it
/// says only that, by its status and `{"ready": …}`.
pub async fn ready(
    State(state): State<Arc<ApiState>>,
    anonymous: Option<axum::Extension<crate::web::auth::AnonymousProbe>>,
) -> impl IntoResponse {
    let redis = state.connection.ping().await;
    let plugins = state.registry.as_ref().is_none_or(|r| r.all_loaded());
    // The plugin files still loading (compiling, mostly) at start, by name.
    let loading: Vec<String> = state
        .registry
        .as_ref()
        .map(|r| r.loading().iter().filter_map(|f| f.file_name()).map(|n| n.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let mut queues = serde_json::Map::new();
    if redis && anonymous.is_none() {
        for name in &state.consumed {
            if let Ok(q) = state.queue(name)
                && let Ok(c) = q.counts().await
            {
                queues.insert(name.clone(), serde_json::to_value(c).unwrap_or_default());
            }
        }
    }
    // A Redis that may evict jobs is not ready to hold them, unless the
    // operator said otherwise (`[redis] allow_eviction`).
    let durability = if redis { jobrunner_queue::durability::read(&state.connection).await.ok() } else { None };
    let risk = durability.as_ref().and_then(|d| d.eviction_risk());
    let safe = risk.is_none() || state.redis_policy.allow_eviction;
    let warnings: Vec<String> = durability
        .iter()
        .flat_map(|d| [d.eviction_risk(), d.eviction_note(), d.persistence_warning()])
        .flatten()
        .collect();
    let ready = redis && plugins && safe;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if anonymous.is_some() {
        return (status, Json(json!({ "ready": ready })));
    }
    (
        status,
        Json(json!({
            "ready": ready,
            "redis": redis,
            "redis_durability": durability.map(|d| json!({
                "embedded": state.redis_policy.embedded,
                "maxmemory_policy": d.maxmemory_policy,
                "maxmemory": d.maxmemory,
                "aof": d.aof,
                "rdb": d.rdb,
                "may_evict_jobs": risk.is_some(),
                "eviction_allowed": state.redis_policy.allow_eviction,
                "warnings": warnings,
            })),
            "plugins_loaded": plugins,
            "plugins_loading": loading,
            "queues": queues
        })),
    )
}

pub async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    // Queue depths are read at scrape time, native and BullMQ-backed alike;
    // a queue Redis cannot answer for keeps its last values.
    if let Ok(names) = state.queue_names().await {
        for name in names {
            let Ok(q) = state.queue(&name) else { continue };
            let Ok(c) = q.counts().await else { continue };
            let set = |st: &str, n: u64| {
                state.metrics.queue_jobs.with_label_values(&[name.as_str(), q.backend(), st]).set(n as i64)
            };
            set("waiting", c.waiting);
            set("delayed", c.delayed);
            set("active", c.active);
            set("completed", c.completed);
            set("failed", c.failed);
            set("waiting_children", c.waiting_children);
            state.metrics.queue_paused.with_label_values(&[name.as_str(), q.backend()]).set(i64::from(c.paused));
            // The job next in line: its age is how far behind the runners
            // are, the signal an autoscaler scales on beside the count.
            let latency = q.latency(&c).await.ok().map(|d| d.as_secs_f64());
            if let Some(seconds) = latency {
                state.metrics.queue_latency.with_label_values(&[name.as_str(), q.backend()]).set(seconds);
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn plugins(State(state): State<Arc<ApiState>>) -> Json<Value> {
    Json(json!(state.registry.as_ref().map(|r| r.statuses()).unwrap_or_default()))
}

pub async fn runners(State(state): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(jobrunner_queue::runners::list(&state.connection).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueParam {
    pub queue: Option<String>,
}

fn schedule_queue(state: &ApiState, q: &QueueParam) -> ApiResult<Queue> {
    let name = q.queue.as_deref().unwrap_or("default");
    if state.bull.contains_key(name) {
        return Err(ApiError::bad(format!(
            "queue {name} is kept in BullMQ's format: schedule its jobs with BullMQ's job schedulers (upsertJobScheduler)"
        )));
    }
    Queue::new(state.connection.clone(), name).map_err(ApiError::bad)
}

pub async fn list_schedules(State(state): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for name in Queue::names(&state.connection).await? {
        for s in Queue::new(state.connection.clone(), &name).map_err(ApiError::bad)?.list_schedules().await? {
            out.push(json!({"queue": name, "schedule": s}));
        }
    }
    Ok(Json(json!(out)))
}

pub async fn get_schedule(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<QueueParam>,
) -> ApiResult<Json<Value>> {
    let queue = schedule_queue(&state, &q)?;
    let found = queue.list_schedules().await?.into_iter().find(|s| s.schedule.id == id);
    found
        .map(|s| Json(json!({"queue": queue.name(), "schedule": s})))
        .ok_or_else(|| ApiError::NotFound(format!("no schedule `{id}` in queue {}", queue.name())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    #[serde(rename = "type")]
    pub job_type: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default)]
    pub options: jobrunner_queue::JobOptions,
    pub timing: jobrunner_queue::Timing,
}

pub async fn put_schedule(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<QueueParam>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> ApiResult<Json<Value>> {
    let queue = schedule_queue(&state, &q)?;
    queue.check_not_from_config(&id).await.map_err(config_schedule)?;
    let schedule = Schedule {
        id,
        job_type: body.job_type,
        payload: body.payload,
        options: body.options,
        timing: body.timing,
        source: ScheduleSource::Api,
    };
    let info = queue.upsert_schedule(&schedule).await.map_err(ApiError::from_input)?;
    Ok(Json(json!({"queue": queue.name(), "schedule": info})))
}

pub async fn delete_schedule(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<QueueParam>,
) -> ApiResult<Json<Value>> {
    let queue = schedule_queue(&state, &q)?;
    queue.check_not_from_config(&id).await.map_err(config_schedule)?;
    if queue.remove_schedule(&id).await? {
        Ok(Json(json!({"removed": id})))
    } else {
        Err(ApiError::NotFound(format!("no schedule `{id}` in queue {}", queue.name())))
    }
}

/// A schedule the file made is a 409; Redis failing, a 500.
fn config_schedule(e: anyhow::Error) -> ApiError {
    if jobrunner_bullmq::is_redis_error(&e) { ApiError::Internal(e) } else { ApiError::Conflict(format!("{e:#}")) }
}
