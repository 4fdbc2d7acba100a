//! The dashboard's sign-in sessions, kept in Redis so that every runner
//! behind a load balancer knows them and a sign-out ends them everywhere.
//!
//! A session id is 256 random bits, given to the browser once, in an
//! HttpOnly cookie; Redis holds only its SHA-256 (`jr:session:<digest>`, under `[redis] prefix`),
//! with what it may do and an expiry (`[http] session_ttl`, 12 hours by
//! default), so a copy of Redis's data signs nobody in.

use anyhow::Result;
use jobrunner_queue::Connection;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The cookie that carries the session id.
pub const COOKIE: &str = "jr_session";

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Read,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Read => "read",
        }
    }
}

/// A session's key under the connection's prefix: `PREFIX:session:HASH`.
fn key(conn: &Connection, id: &str) -> String {
    conn.key(&format!("session:{}", hex::encode(Sha256::digest(id.as_bytes()))))
}

/// Who signed in: a role, and the user's name (none for a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub role: Role,
    pub user: Option<String>,
}

/// Starts a session; returns its id (for the cookie). Redis keeps `ROLE`
/// or `ROLE:USER`.
pub async fn start(conn: &Connection, who: &Session, ttl: Duration) -> Result<String> {
    let id = hex::encode(rand::random::<[u8; 32]>());
    let ms = ttl.as_millis().max(1) as u64;
    let value = match &who.user {
        Some(user) => format!("{}:{user}", who.role.as_str()),
        None => who.role.as_str().to_string(),
    };
    let _: () = conn.query(redis::cmd("SET").arg(key(conn, &id)).arg(value).arg("PX").arg(ms)).await?;
    Ok(id)
}

/// Who a live session is, or None (unknown, expired or ended).
pub async fn find(conn: &Connection, id: &str) -> Result<Option<Session>> {
    // A malformed id is not looked up.
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let value: Option<String> = conn.query(redis::cmd("GET").arg(key(conn, id))).await?;
    let Some(value) = value else { return Ok(None) };
    let (role, user) = match value.split_once(':') {
        Some((role, user)) => (role, Some(user.to_string())),
        None => (value.as_str(), None),
    };
    let role = match role {
        "admin" => Role::Admin,
        "read" => Role::Read,
        _ => return Ok(None),
    };
    Ok(Some(Session { role, user }))
}

/// Ends a session (sign-out).
pub async fn end(conn: &Connection, id: &str) -> Result<()> {
    let _: i64 = conn.query(redis::cmd("DEL").arg(key(conn, id))).await?;
    Ok(())
}

/// The session id in a request's cookies, if any.
pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_string))
}

/// The `Set-Cookie` value for a session: HttpOnly, SameSite=Strict, for
/// its lifetime, and `Secure` when the dashboard is served over TLS.
pub fn cookie(id: &str, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", ttl.as_secs())
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn removal(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}
