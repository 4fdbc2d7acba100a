//! Who may call the API and the dashboard, and from where.
//!
//! Duties:
//! 1. refuse requests a web page on another origin could make in a
//!    browser's name (`guard`): a state-changing request whose `Origin` is
//!    not the runner's own (or one of `[http] origins`); and, with no token
//!    configured, any request addressed to a name that is not loopback, so
//!    that a DNS-rebinding page cannot drive the runner on 127.0.0.1;
//! 2. with a token or a named user configured, require one on every route
//!    but `/health` (and the sign-in page and assets; `/ready` answers
//!    without one, with its verdict and not its details, for probes that
//!    cannot send one): a bearer token,
//!    Basic auth (a named user and their password, or any name and a
//!    token), or a dashboard session (`session`); a read-only token or a
//!    `read` user may only read; every state-changing request is logged
//!    with who made it (the user's name, or which token);
//! 3. make a state-changing API call carried by the browser's own
//!    credentials (a session cookie or Basic auth) a request no cross-site
//!    form can send: a JSON body or an `X-Requested-With` header, either of
//!    which makes a browser ask first (CORS preflight), which the runner
//!    never grants. The dashboard's forms carry a CSRF token instead.
//!
//! Without a token the runner listens on loopback only (see `api::bind`).
//! Tokens are compared through their SHA-256 digests, in constant time.

use crate::web::ApiState;
use crate::web::error::ApiError;
use crate::web::session::{self, Role};
use crate::web::users::{self, User};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The credentials the runner accepts: its tokens and its named users.
#[derive(Clone, Default)]
pub struct Tokens {
    admin: Option<[u8; 32]>,
    read_only: Option<[u8; 32]>,
    users: Vec<User>,
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Full,
    ReadOnly,
    None,
}

/// How a request said who it is.
enum Credential {
    Bearer(String),
    /// A browser's own: Basic auth (name, password), or the session cookie.
    Basic(String, String),
    Session(String),
    None,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn same(a: &[u8; 32], b: Option<&[u8; 32]>) -> bool {
    b.is_some_and(|b| bool::from(a.ct_eq(b)))
}

impl Tokens {
    pub fn new(admin: Option<&str>, read_only: Option<&str>) -> Tokens {
        Tokens { admin: admin.map(digest), read_only: read_only.map(digest), users: Vec::new() }
    }

    /// These, and the named users `users`.
    pub fn with_users(mut self, users: Vec<User>) -> Tokens {
        self.users = users;
        self
    }

    /// The named user `name`, if `password` is theirs.
    pub async fn user(&self, name: &str, password: &str) -> Option<User> {
        users::sign_in(&self.users, name, password).await
    }

    fn has_user(&self, name: &str) -> bool {
        self.users.iter().any(|u| u.name == name)
    }

    /// The role a token signs in as, if it is one of ours.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let d = digest(token.trim());
        if same(&d, self.admin.as_ref()) {
            Some(Role::Admin)
        } else if same(&d, self.read_only.as_ref()) {
            Some(Role::Read)
        } else {
            None
        }
    }

    pub fn required(&self) -> bool {
        self.admin.is_some() || self.read_only.is_some() || !self.users.is_empty()
    }
}

fn credential(headers: &HeaderMap) -> Credential {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Credential::Bearer(t.trim().to_string());
        }
        // Basic auth: a named user, or any name and a token as password.
        if let Some(b) = v.strip_prefix("Basic ")
            && let Ok(decoded) = base64::engine::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim())
            && let Ok(text) = String::from_utf8(decoded)
            && let Some((name, password)) = text.split_once(':')
        {
            return Credential::Basic(name.to_string(), password.to_string());
        }
        return Credential::None;
    }
    match session::from_headers(headers) {
        Some(id) => Credential::Session(id),
        None => Credential::None,
    }
}

fn access_of(role: Option<Role>) -> Access {
    match role {
        Some(Role::Admin) => Access::Full,
        Some(Role::Read) => Access::ReadOnly,
        None => Access::None,
    }
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The authority (`host:port`) a request was addressed to.
fn host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
}

/// `localhost`, or a loopback address, with or without a port.
fn is_loopback_name(authority: &str) -> bool {
    let name = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Duty 1: the cross-origin and rebinding checks.
fn guard(state: &ApiState, request: &Request) -> Result<(), ApiError> {
    let host = host(request);
    if !state.tokens.required()
        && let Some(h) = &host
        && !is_loopback_name(h)
    {
        return Err(ApiError::Forbidden(format!(
            "a request addressed to `{h}`: with no API token the runner answers only to loopback names (127.0.0.1, [::1], localhost), which keeps DNS-rebinding pages out; set a token to serve other names"
        )));
    }
    if !changes_state(request.method()) {
        return Ok(());
    }
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin.split_once("://").map(|(_, a)| a.trim_end_matches('/'));
        let forwarded = headers.get("x-forwarded-host").and_then(|v| v.to_str().ok());
        let ours = authority.is_some_and(|a| Some(a) == host.as_deref() || Some(a) == forwarded)
            || state.web.origins.iter().any(|o| o.trim_end_matches('/') == origin);
        if !ours {
            return Err(ApiError::Forbidden(format!(
                "a state-changing request from the page at `{origin}`, another origin than this runner's: refused (add it to `[http] origins` if it is this runner's public address)"
            )));
        }
    } else if headers.get("sec-fetch-site").is_some_and(|v| v == "cross-site" || v == "same-site") {
        return Err(ApiError::Forbidden("a state-changing request from another site: refused".into()));
    }
    Ok(())
}

/// Duty 3: a request no cross-site form can send.
fn non_simple(headers: &HeaderMap) -> bool {
    headers.contains_key("x-requested-with")
        || headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

pub async fn require(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Result<Response, ApiError> {
    guard(&state, &request)?;
    let path = request.uri().path();
    let open = path == "/health" || path == "/dashboard/login" || path.starts_with("/dashboard/assets/");
    let probe = path == "/ready" && request.method() == Method::GET;
    if !state.tokens.required() || open {
        return Ok(next.run(request).await);
    }
    // Who it is, for the log: a user's name, or which token.
    let token_name = |role: Option<Role>| match role {
        Some(Role::Admin) => "the admin token".to_string(),
        _ => "the read-only token".to_string(),
    };
    let (access, by_browser, who) = match credential(request.headers()) {
        Credential::Bearer(t) => {
            let role = state.tokens.role_of(&t);
            (access_of(role), false, token_name(role))
        }
        Credential::Basic(name, password) if state.tokens.has_user(&name) => {
            let user = state.tokens.user(&name, &password).await;
            (access_of(user.as_ref().map(|u| u.role)), true, name)
        }
        Credential::Basic(_, t) => {
            let role = state.tokens.role_of(&t);
            (access_of(role), true, token_name(role))
        }
        Credential::Session(id) => {
            let found = session::find(&state.connection, &id)
                .await
                .map_err(|e| ApiError::Unavailable(format!("cannot check the session (Redis): {e:#}")))?;
            let role = found.as_ref().map(|s| s.role);
            let who = found.and_then(|s| s.user).unwrap_or_else(|| token_name(role));
            (access_of(role), true, who)
        }
        Credential::None => (Access::None, false, String::new()),
    };
    if access != Access::None && changes_state(request.method()) {
        tracing::info!(user = %who, method = %request.method(), path, "request");
    }
    if by_browser
        && access != Access::None
        && changes_state(request.method())
        && path.starts_with("/api/")
        && !non_simple(request.headers())
    {
        return Err(ApiError::Forbidden(
            "a state-changing API call with the browser's credentials must send a JSON body or an `X-Requested-With` header (cross-site forms can do neither)".into(),
        ));
    }
    match access {
        Access::Full => Ok(next.run(request).await),
        Access::ReadOnly if !changes_state(request.method()) => Ok(next.run(request).await),
        // Signing out is reading's due too.
        Access::ReadOnly if path == "/dashboard/logout" => Ok(next.run(request).await),
        Access::ReadOnly => Err(ApiError::Forbidden(format!("{who} may only read"))),
        // A person opening the dashboard gets the sign-in page, not JSON.
        Access::None if path.starts_with("/dashboard") && request.method() == Method::GET => {
            Ok(axum::response::Redirect::to("/dashboard/login").into_response())
        }
        // A probe (Kubernetes', a load balancer's) sends no credentials:
        // it gets the verdict, not the details.
        Access::None if probe => {
            let mut request = request;
            request.extensions_mut().insert(AnonymousProbe);
            Ok(next.run(request).await)
        }
        Access::None => Err(ApiError::Unauthorized),
    }
}

/// Marks a request to `/ready` made without credentials while they are
/// required: it is answered with `{"ready": …}` and the status alone.
#[derive(Clone, Copy)]
pub struct AnonymousProbe;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for ok in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:9", "127.1.2.3"] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for bad in ["evil.example:8080", "10.0.0.1", "[fe80::1]:8080", "localhost.evil.example", "2130706433"] {
            assert!(!is_loopback_name(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_sign_in_as_their_role() {
        let t = Tokens::new(Some("admin-token"), Some("read-token"));
        assert_eq!(t.role_of("admin-token"), Some(Role::Admin));
        assert_eq!(t.role_of(" read-token "), Some(Role::Read));
        assert_eq!(t.role_of("admin-tokem"), None);
        assert_eq!(Tokens::new(None, None).role_of(""), None);
    }
}
