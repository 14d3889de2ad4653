//! One integration binary (z2p style): a module per area, a shared `helpers`.

mod helpers;

mod foundation;
mod import;
mod metrics;
