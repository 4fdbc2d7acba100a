//! Password hashes for named users: argon2id in the PHC string form
//! (`$argon2id$v=19$m=19456,t=2,p=1$...`) that `runner user hash` prints
//! and `[[http.users]]` holds. The runner never stores a password.

use anyhow::{Result, anyhow};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};

/// Hashes `password` with argon2id and a random salt (the crate's default
/// cost: 19 MiB, two passes, as OWASP recommends).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow!("cannot hash: {e}"))?;
    Ok(hash.to_string())
}

/// Checks that `hash` is an argon2id PHC string, for the config.
pub fn check_hash(hash: &str) -> Result<()> {
    let parsed = PasswordHash::new(hash)
        .map_err(|e| anyhow!("not a PHC hash string ({e}); make one with `runner user hash`"))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(anyhow!("`{}` is not argon2id; make one with `runner user hash`", parsed.algorithm));
    }
    Ok(())
}

/// Whether `password` is the one `hash` was made from.
pub fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_checks_against_its_hash_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        check_hash(&h).unwrap();
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct horsE"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "a salt of its own each time");
        assert!(check_hash("plain-text").is_err());
        let argon2i = h.replacen("argon2id", "argon2i", 1);
        assert!(check_hash(&argon2i).unwrap_err().to_string().contains("not argon2id"));
    }
}
