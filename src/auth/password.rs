//! Password hashing: argon2id for every new hash; bcrypt hashes (imported from One API) are
//! verified and reported as needing an upgrade, which login performs. Hashing runs on the
//! blocking pool because it is deliberately slow.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Outcome of checking a password against a stored hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but the hash is of an older scheme and should be replaced.
    YesRehash,
}

/// Hashes a password with argon2id and a random salt.
pub async fn hash(password: &str) -> anyhow::Result<String> {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || hash_blocking(&pw)).await?
}

pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

/// Checks a password against an argon2 or bcrypt hash.
pub async fn verify(password: &str, stored: &str) -> Verified {
    let pw = password.to_string();
    let stored = stored.to_string();
    tokio::task::spawn_blocking(move || verify_blocking(&pw, &stored))
        .await
        .unwrap_or(Verified::No)
}

pub fn verify_blocking(password: &str, stored: &str) -> Verified {
    if stored.starts_with("$2") {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verified::YesRehash,
            _ => Verified::No,
        };
    }
    match PasswordHash::new(stored) {
        Ok(h)
            if Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok() =>
        {
            Verified::Yes
        }
        _ => Verified::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash_blocking("123456").unwrap();
        assert!(h.starts_with("$argon2"));
        assert_eq!(verify_blocking("123456", &h), Verified::Yes);
        assert_eq!(verify_blocking("1234567", &h), Verified::No);
    }

    #[test]
    fn bcrypt_is_accepted_and_flagged() {
        let h = bcrypt::hash("12345678", 4).unwrap();
        assert_eq!(verify_blocking("12345678", &h), Verified::YesRehash);
        assert_eq!(verify_blocking("nope", &h), Verified::No);
        assert_eq!(verify_blocking("x", "garbage"), Verified::No);
    }
}
