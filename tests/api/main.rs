//! One integration binary (z2p style): a module per area, a shared `helpers`.

mod helpers;
mod mock_upstream;
mod relay_helpers;

mod billing;
mod foundation;
mod import;
mod metrics;
mod relay_openai;
mod relay_stream;
