//! One integration binary (z2p style): a module per area, a shared `helpers`.

mod helpers;
mod mock_upstream;
mod relay_helpers;

mod billing;
mod billing_doc;
mod channel_test_adaptors;
mod channels;
mod email;
mod foundation;
mod hot_path;
mod import;
mod jobs;
mod logs;
mod logs_rollup;
mod management_relay;
mod metrics;
mod openapi;
mod options;
mod rate_limits;
mod redemptions;
mod relay_anthropic;
mod relay_azure;
mod relay_gemini;
mod relay_gemini_front;
mod relay_gemini_front_more;
mod relay_io_vendors;
mod relay_messages;
mod relay_more_vendors;
mod relay_openai;
mod relay_proxy;
mod relay_stream;
mod relay_vendors;
mod shared_cache;
mod tokens;
mod users;
