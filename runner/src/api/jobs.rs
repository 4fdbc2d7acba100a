//! Queue and job routes: enqueue (one, bulk), queues with counts, jobs by
//! state (paged), one job, and the operations (retry, remove, promote,
//! retry failed, clean, pause, resume); waiting for a job to finish
//! (`?wait=`), and a queue's events as server-sent events.

use crate::web::ApiState;
use crate::web::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use jobrunner_bullmq::any_queue::AnyQueue;
use jobrunner_queue::{Enqueued, JobOptions, JobRecord, NewJob, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The most jobs one bulk request may carry: one enqueue, whole or nothing.
pub const MAX_BULK: usize = jobrunner_queue::MAX_BULK;

fn queue(state: &ApiState, name: &str) -> ApiResult<AnyQueue> {
    state.queue(name)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobBody {
    #[serde(rename = "type")]
    pub job_type: String,
    /// Kept as the text it came in: parsed once (to check it), never rebuilt.
    pub payload: Box<serde_json::value::RawValue>,
    pub id: Option<String>,
    #[serde(default)]
    pub options: JobOptions,
}

impl JobBody {
    fn into_job(self) -> NewJob {
        NewJob { id: self.id, job_type: self.job_type, payload: self.payload.get().to_string(), options: self.options }
    }
}

pub async fn enqueue(
    AxState(state): AxState<Arc<ApiState>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<JobBody>,
) -> ApiResult<(StatusCode, Json<Enqueued>)> {
    let q = queue(&state, &name)?;
    let e = q.enqueue(body.into_job()).await.map_err(ApiError::from_input)?;
    Ok((if e.created { StatusCode::CREATED } else { StatusCode::OK }, Json(e)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    pub jobs: Vec<JobBody>,
}

pub async fn enqueue_bulk(
    AxState(state): AxState<Arc<ApiState>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<BulkBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if body.jobs.len() > MAX_BULK {
        return Err(ApiError::TooLarge(format!("{} jobs; at most {MAX_BULK} per request", body.jobs.len())));
    }
    let q = queue(&state, &name)?;
    let out =
        q.enqueue_bulk(body.jobs.into_iter().map(JobBody::into_job).collect()).await.map_err(ApiError::from_input)?;
    Ok((StatusCode::CREATED, Json(json!({"jobs": out}))))
}

#[derive(Serialize)]
pub struct QueueView {
    pub name: String,
    /// `native`, or `bullmq` for a queue kept in BullMQ's format.
    pub backend: &'static str,
    #[serde(flatten)]
    pub counts: jobrunner_queue::Counts,
    /// Jobs completed in the last minute.
    pub completed_last_minute: u64,
    /// The policy in effect (`[queues.NAME]`), each value with its source:
    /// `default` or `config` (a job's own options override it: the job's
    /// record says which did).
    pub policy: jobrunner_queue::EffectivePolicy,
}

async fn view(state: &ApiState, name: String) -> ApiResult<QueueView> {
    let q = queue(state, &name)?;
    Ok(QueueView {
        backend: q.backend(),
        counts: q.counts().await?,
        completed_last_minute: q.completed_last_minute().await?,
        policy: q.policy().await?,
        name,
    })
}

pub async fn queues(AxState(state): AxState<Arc<ApiState>>) -> ApiResult<Json<Vec<QueueView>>> {
    let mut out = Vec::new();
    for name in state.queue_names().await? {
        out.push(view(&state, name).await?);
    }
    Ok(Json(out))
}

/// One queue: its counts and its policy in effect. 404 for a name no
/// runner consumes or has had a job on, and no config declares.
pub async fn get_queue(AxState(state): AxState<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult<Json<QueueView>> {
    jobrunner_queue::check_queue_name(&name).map_err(ApiError::bad)?;
    if !state.queue_names().await?.contains(&name) && !state.consumed.contains(&name) {
        return Err(ApiError::NotFound(format!(
            "no queue `{name}`: no job was ever enqueued to it and no runner consumes it"
        )));
    }
    Ok(Json(view(&state, name).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub state: Option<String>,
    pub cursor: Option<u64>,
    pub limit: Option<u64>,
}

pub async fn list(
    AxState(state): AxState<Arc<ApiState>>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let wanted = q.state.as_deref().unwrap_or("waiting");
    let st = State::parse(wanted)
        .ok_or_else(|| ApiError::bad(format!("state `{wanted}`: use waiting, delayed, active, completed or failed")))?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad("limit must be from 1 to 1000"));
    }
    let offset = q.cursor.unwrap_or(0);
    let jobs = queue(&state, &name)?.list(st, offset, limit).await?;
    let next = (jobs.len() as u64 == limit).then_some(offset.saturating_add(limit));
    Ok(Json(json!({"jobs": jobs, "next_cursor": next})))
}

/// The longest `?wait=` one request may ask for: past a few minutes a
/// proxy between the producer and the runner is likely to cut the request,
/// so a longer wait is a loop of requests.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// Answer when the job has finished, or after this long (e.g. `30s`)
    /// with where it stands.
    pub wait: Option<String>,
}

pub async fn get(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> ApiResult<Json<JobRecord>> {
    let any = queue(&state, &name)?;
    let record = match q.wait.as_deref() {
        None => any.get(&id).await?,
        Some(text) => {
            let wait = humantime::parse_duration(text)
                .map_err(|e| ApiError::bad(format!("wait: `{text}`: {e} (write e.g. 500ms, 30s, 2m)")))?;
            if wait > MAX_WAIT {
                return Err(ApiError::bad(format!(
                    "wait: {text} is longer than the {} a request may wait; ask again when it answers",
                    humantime::format_duration(MAX_WAIT)
                )));
            }
            let native = any.native().ok_or_else(|| {
                ApiError::bad(format!(
                    "wait: queue {name} is BullMQ-backed; wait with BullMQ's own `job.waitUntilFinished`, or read the job again"
                ))
            })?;
            native.wait(&id, wait).await.map_err(ApiError::from_input)?
        }
    };
    record.map(Json).ok_or_else(|| ApiError::NotFound(format!("no job `{id}` in queue {name}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Start after this event id (as does the `Last-Event-ID` header).
    pub after: Option<String>,
}

/// How long one read of the events waits before the stream sends a
/// keep-alive and reads again.
const EVENTS_BLOCK: Duration = Duration::from_secs(15);

/// `GET /queues/{q}/events`: the queue's events as server-sent events, each
/// with its stream id (a client that reconnects with `Last-Event-ID` misses
/// nothing the capped stream still holds), its name as the event type, and
/// its fields as a JSON object. Each stream holds a Redis connection of its
/// own while it is open.
pub async fn events(
    AxState(state): AxState<Arc<ApiState>>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let any = queue(&state, &name)?;
    let native = any.native().ok_or_else(|| {
        ApiError::bad(format!("queue {name} is BullMQ-backed: its events are BullMQ's own (QueueEvents)"))
    })?;
    let last_event = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let after = q.after.or(last_event);
    let reader = native.events_after(after.as_deref()).await.map_err(ApiError::from_input)?;
    let stream = futures::stream::unfold(reader, |mut reader| async move {
        let batch = match reader.next(EVENTS_BLOCK).await {
            Ok(events) => events.into_iter().map(sse_event).collect(),
            Err(e) => {
                // Redis away: say so, wait a moment, and read on from where it was.
                tracing::warn!(error = %format!("{e:#}"), "events stream: reading the queue's events failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                vec![Event::default().event("error").data(json!({"error": "redis_unavailable"}).to_string())]
            }
        };
        Some((futures::stream::iter(batch.into_iter().map(Ok)), reader))
    })
    .flatten();
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn sse_event(e: jobrunner_queue::Event) -> Event {
    let data: serde_json::Map<String, Value> = e.fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    Event::default().id(e.id).event(e.name).data(Value::Object(data).to_string())
}

/// Maps an operation's answer (the job's state) to a response.
fn op_result(name: &str, id: &str, answer: String, done: &str, verb: &str) -> ApiResult<Json<Value>> {
    match answer.as_str() {
        a if a == done => Ok(Json(json!({"id": id, "state": "waiting"}))),
        "missing" => Err(ApiError::NotFound(format!("no job `{id}` in queue {name}"))),
        other => Err(ApiError::Conflict(format!("job `{id}` is {other}; only a {verb} job can be"))),
    }
}

pub async fn retry(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let s = queue(&state, &name)?.retry(&id).await?;
    op_result(&name, &id, s, "retried", "failed")
}

pub async fn promote(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let s = queue(&state, &name)?.promote(&id).await?;
    op_result(&name, &id, s, "promoted", "delayed")
}

/// `POST .../jobs/{id}/cancel`: asks the runner running the job to stop it
/// (it records the job failed, "cancelled", with no retry). 202: asked.
pub async fn cancel(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let any = queue(&state, &name)?;
    let native = any.native().ok_or_else(|| {
        ApiError::bad(format!("queue {name} is BullMQ-backed: its jobs cannot be cancelled through the runner"))
    })?;
    cancel_answer(&name, &id, native.cancel(&id).await.map_err(ApiError::from_input)?)
}

/// A cancel request's answer as a response (shared with the dashboard).
pub fn cancel_answer(
    name: &str,
    id: &str,
    answer: jobrunner_queue::CancelAnswer,
) -> ApiResult<(StatusCode, Json<Value>)> {
    use jobrunner_queue::CancelAnswer;
    match answer {
        CancelAnswer::Requested { listeners } => {
            Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "cancel": "requested", "runners_told": listeners}))))
        }
        CancelAnswer::NotRunning(state) => Err(ApiError::Conflict(format!(
            "job `{id}` is {}; only a running job can be cancelled (remove a waiting or delayed one)",
            state.as_str()
        ))),
        CancelAnswer::Missing => Err(ApiError::NotFound(format!("no job `{id}` in queue {name}"))),
    }
}

pub async fn remove(
    AxState(state): AxState<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    match queue(&state, &name)?.remove(&id).await?.as_str() {
        "missing" => Err(ApiError::NotFound(format!("no job `{id}` in queue {name}"))),
        "locked" => Err(ApiError::Conflict(format!("job `{id}` is being run by a worker; remove it once it ends"))),
        was => Ok(Json(json!({"id": id, "removed_from": was}))),
    }
}

pub async fn retry_failed(AxState(state): AxState<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"retried": queue(&state, &name)?.retry_all_failed().await?})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanBody {
    pub state: String,
    #[serde(default)]
    pub older_than_ms: u64,
    pub limit: Option<u64>,
}

pub async fn clean(
    AxState(state): AxState<Arc<ApiState>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<CleanBody>,
) -> ApiResult<Json<Value>> {
    let st = match State::parse(&body.state) {
        Some(s @ (State::Completed | State::Failed)) => s,
        _ => return Err(ApiError::bad(format!("state `{}`: clean takes completed or failed", body.state))),
    };
    let removed = queue(&state, &name)?
        .clean(st, Duration::from_millis(body.older_than_ms), body.limit.unwrap_or(u64::MAX))
        .await?;
    Ok(Json(json!({"removed": removed})))
}

pub async fn pause(AxState(state): AxState<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    queue(&state, &name)?.pause().await?;
    Ok(Json(json!({"queue": name, "paused": true})))
}

pub async fn resume(AxState(state): AxState<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    queue(&state, &name)?.resume().await?;
    Ok(Json(json!({"queue": name, "paused": false})))
}
