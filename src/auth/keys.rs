//! Random identifiers, all from the thread-local CSPRNG (`rand::rng()`).

use rand::RngExt;
use rand::distr::Alphanumeric;

fn alnum(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn hex(n: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| HEX[rng.random_range(0..16)] as char)
        .collect()
}

/// A token key: 48 characters of `[0-9A-Za-z]`, shown to users as `sk-<key>`.
pub fn token_key() -> String {
    alnum(48)
}

/// A user's access token for the management API: 32 hex characters.
pub fn access_token() -> String {
    hex(32)
}

/// A redemption code: 32 hex characters, as One API.
pub fn redemption_key() -> String {
    hex(32)
}

/// An invitation code. One API uses 4 characters, which collide; we use 8.
pub fn aff_code() -> String {
    alnum(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let k = token_key();
        assert_eq!(k.len(), 48);
        assert!(k.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(k, token_key());
        assert_eq!(access_token().len(), 32);
        assert!(redemption_key().chars().all(|c| c.is_ascii_hexdigit()));
    }
}
