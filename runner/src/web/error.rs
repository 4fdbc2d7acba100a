//! The API's one error type. A user's bad input keeps its status and says
//! what is wrong, as `{"error": ..., "detail": ...}`; an internal error is
//! logged and answered with a generic message, never with internals.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    TooLarge(String),
    /// The queue is at its `max_waiting`: try again later.
    QueueFull(String),
    Unavailable(String),
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn bad(detail: impl std::fmt::Display) -> Self {
        ApiError::BadRequest(detail.to_string())
    }

    /// For operations whose every error is the caller's (a bad name, option,
    /// payload or schedule) unless Redis itself failed.
    pub fn from_input(e: anyhow::Error) -> Self {
        if let Some(full) = e.downcast_ref::<jobrunner_queue::QueueFull>() {
            return ApiError::QueueFull(full.to_string());
        }
        if jobrunner_bullmq::is_redis_error(&e) {
            ApiError::Internal(e)
        } else {
            ApiError::BadRequest(format!("{e:#}"))
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(r.body_text()),
            _ => ApiError::BadRequest(r.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, detail) = match self {
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad_request", d),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send `Authorization: Bearer <token>` with a valid token".to_string(),
            ),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "not_found", d),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "conflict", d),
            ApiError::TooLarge(d) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", d),
            ApiError::QueueFull(d) => (StatusCode::TOO_MANY_REQUESTS, "queue_full", d),
            ApiError::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", d),
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "API request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "the runner could not do that; see its log".to_string())
            }
        };
        (status, Json(json!({"error": error, "detail": detail}))).into_response()
    }
}

/// `Json` whose rejections are `ApiError`s, so a malformed body gets the
/// API's JSON error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query` with the API's error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

pub type ApiResult<T> = Result<T, ApiError>;
