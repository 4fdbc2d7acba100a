//! Authentication: every route but `/health` (and the dashboard's sign-in
//! page and assets) needs a token when one is configured: a bearer token,
//! Basic auth with the token as password, or the dashboard's session cookie.
//! A read-only token may only read. Without a token the runner listens on
//! loopback only (see `api::bind`).
//!
//! Tokens are compared through their SHA-256 digests, so the comparison
//! takes the same time whatever prefix of the token a caller guessed.

use crate::api::error::ApiError;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Tokens {
    admin: Option<[u8; 32]>,
    read_only: Option<[u8; 32]>,
    admin_session: Option<String>,
    read_only_session: Option<String>,
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Full,
    ReadOnly,
    None,
}

/// The dashboard's session cookie for a token: derived, so the cookie is
/// not the token itself.
fn session(token: &str) -> String {
    hex::encode(Sha256::new().chain_update(b"jobrunner-session:").chain_update(token.as_bytes()).finalize())
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Tokens {
    pub fn new(admin: Option<&str>, read_only: Option<&str>) -> Tokens {
        Tokens {
            admin: admin.map(digest),
            read_only: read_only.map(digest),
            admin_session: admin.map(session),
            read_only_session: read_only.map(session),
        }
    }

    /// The session cookie for a valid token (the dashboard's login), or none.
    pub fn session_for(&self, token: &str) -> Option<String> {
        let d = Some(digest(token.trim()));
        (d == self.admin || d == self.read_only).then(|| session(token.trim()))
    }

    fn access(&self, request: &Request) -> Access {
        let headers = request.headers();
        let bearer_or_basic =
            headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
                if let Some(t) = v.strip_prefix("Bearer ") {
                    return Some(t.trim().to_string());
                }
                // Basic auth, for the dashboard: any user, the token as password.
                let decoded = base64::engine::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    v.strip_prefix("Basic ")?.trim(),
                )
                .ok()?;
                let text = String::from_utf8(decoded).ok()?;
                Some(text.split_once(':')?.1.to_string())
            });
        if let Some(t) = bearer_or_basic {
            let d = Some(digest(&t));
            return if d == self.admin {
                Access::Full
            } else if d == self.read_only {
                Access::ReadOnly
            } else {
                Access::None
            };
        }
        let cookie = headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("jr_session=").map(str::to_string));
        match cookie {
            Some(c) if Some(&c) == self.admin_session.as_ref() => Access::Full,
            Some(c) if Some(&c) == self.read_only_session.as_ref() => Access::ReadOnly,
            _ => Access::None,
        }
    }

    pub fn required(&self) -> bool {
        self.admin.is_some() || self.read_only.is_some()
    }
}

pub async fn require(State(tokens): State<Arc<Tokens>>, request: Request, next: Next) -> Result<Response, ApiError> {
    let path = request.uri().path();
    let open = path == "/health" || path == "/dashboard/login" || path.starts_with("/dashboard/assets/");
    if !tokens.required() || open {
        return Ok(next.run(request).await);
    }
    match tokens.access(&request) {
        Access::Full => Ok(next.run(request).await),
        Access::ReadOnly if matches!(*request.method(), Method::GET | Method::HEAD) => Ok(next.run(request).await),
        Access::ReadOnly => Err(ApiError::Forbidden("this token may only read".into())),
        // A person opening the dashboard gets the sign-in page, not JSON.
        Access::None if path.starts_with("/dashboard") && request.method() == Method::GET => {
            Ok(axum::response::Redirect::to("/dashboard/login").into_response())
        }
        Access::None => Err(ApiError::Unauthorized),
    }
}
