//! Named users of the API and the dashboard (`[[http.users]]`), besides the
//! tokens: a name, a role, and the argon2id hash of a password
//! (`passwords`). A password is checked on a blocking thread: argon2
//! costs tens of milliseconds by design, which would stall the other
//! requests on a runtime thread.

use crate::config::{UserRole, UserSection, resolve_secret};
use crate::web::session::Role;
use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The PHC string of the password's argon2id hash.
    pub hash: String,
}

/// The config's users, their hashes resolved (`env:NAME`).
pub fn from_config(sections: &[UserSection]) -> Result<Vec<User>> {
    sections
        .iter()
        .map(|u| {
            let role = match u.role {
                UserRole::Admin => Role::Admin,
                UserRole::Read => Role::Read,
            };
            let hash =
                resolve_secret(&u.password_hash).with_context(|| format!("http.users.{}.password_hash", u.name))?;
            Ok(User { name: u.name.clone(), role, hash })
        })
        .collect()
}

/// The user `name`, if `password` is theirs; checked off the runtime's threads.
///
/// At most `CHECKS_AT_ONCE` checks run at a time, the others waiting their
/// turn: each takes 19 MiB and a core for tens of milliseconds, so a flood
/// of sign-ins with wrong passwords could otherwise fill the blocking
/// pool's 512 threads and take gigabytes.
pub async fn sign_in(users: &[User], name: &str, password: &str) -> Option<User> {
    static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CHECKS_AT_ONCE);
    let user = users.iter().find(|u| u.name == name)?.clone();
    let password = password.to_string();
    let hash = user.hash.clone();
    let _turn = CHECKS.acquire().await.ok()?;
    let ok = tokio::task::spawn_blocking(move || crate::passwords::verify(&hash, &password)).await.unwrap_or(false);
    ok.then_some(user)
}

/// Password checks run at once: as many as the machines this runs on have
/// cores, about.
const CHECKS_AT_ONCE: usize = 4;
