//! Authentication: password hashing, key generation, and the typed extractors that guard the
//! management API (`UserSession`, `AdminSession`, `RootSession`).

pub mod keys;
pub mod password;
pub mod session;

pub use session::{AdminSession, RootSession, UserSession};
