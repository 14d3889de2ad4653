//! Tollgate: a multi-tenant LLM API distribution platform, a drop-in for One API.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod channel;
pub mod config;
pub mod error;
pub mod mail;
pub mod options;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;

/// The version reported by `--version` and `/api/status`.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));
