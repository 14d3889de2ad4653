//! Tollgate: a multi-tenant LLM API distribution platform, a drop-in for One API.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod adaptors;
pub mod api;
pub mod auth;
pub mod billing;
pub mod bootstrap;
pub mod cache;
pub mod channel;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod import;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod options;
pub mod relay;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokenizer;
pub mod web;

/// The version reported by `--version` and `/api/status`.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));
