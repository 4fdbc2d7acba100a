//! Authentication: every route but `/health` needs a bearer token when one
//! is configured; a read-only token may only read. Without a token the
//! runner listens on loopback only (see `api::serve`).
//!
//! Tokens are compared through their SHA-256 digests, so the comparison
//! takes the same time whatever prefix of the token a caller guessed.

use crate::api::error::ApiError;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Tokens {
    admin: Option<[u8; 32]>,
    read_only: Option<[u8; 32]>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Tokens {
    pub fn new(admin: Option<&str>, read_only: Option<&str>) -> Tokens {
        Tokens { admin: admin.map(digest), read_only: read_only.map(digest) }
    }

    pub fn required(&self) -> bool {
        self.admin.is_some() || self.read_only.is_some()
    }
}

pub async fn require(State(tokens): State<Arc<Tokens>>, request: Request, next: Next) -> Result<Response, ApiError> {
    if !tokens.required() || request.uri().path() == "/health" {
        return Ok(next.run(request).await);
    }
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| digest(t.trim()));
    let Some(given) = given else { return Err(ApiError::Unauthorized) };
    if tokens.admin == Some(given) {
        return Ok(next.run(request).await);
    }
    if tokens.read_only == Some(given) {
        if matches!(*request.method(), Method::GET | Method::HEAD) {
            return Ok(next.run(request).await);
        }
        return Err(ApiError::Forbidden("this token may only read".into()));
    }
    Err(ApiError::Unauthorized)
}
