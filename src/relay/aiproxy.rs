//! AIProxy's knowledge base (channel type 21, AIProxyLibrary): glue around
//! [`crate::adaptors::aiproxy`]: `POST {base}/api/library/ask`, Bearer key, the library from the
//! channel's `config.library_id` (else the legacy `other` column). AIProxy reports no usage: the
//! relay counts prompt and completion. Pure: no I/O.

use serde_json::Value;

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::aiproxy as wire;

/// The AIProxyLibrary adaptor.
#[derive(Debug)]
pub struct AiProxyLibrary;

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// The library id: `config.library_id`, else the legacy `other` column.
fn library_id<'a>(ctx: &Ctx<'a>) -> &'a str {
    ctx.config
        .and_then(|c| c.get("library_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or(ctx.api_version)
        .unwrap_or("")
}

impl Adaptor for AiProxyLibrary {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        UpstreamRequest {
            url: format!("{}/api/library/ask", base_of(21, ctx.base_url)),
            headers: vec![("Authorization".to_string(), format!("Bearer {}", ctx.key))],
        }
    }

    fn supports_include_usage(&self, _channel_type: i64) -> bool {
        false
    }

    fn is_openai(&self) -> bool {
        false
    }

    fn convert_request(&self, ctx: &Ctx, body: Value) -> Result<Value, String> {
        if ctx.mode != RelayMode::ChatCompletions {
            return Err("this endpoint is not supported by AIProxyLibrary channels".into());
        }
        wire::to_ask_request(&body, ctx.model, library_id(ctx), ctx.stream)
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(502, body))?;
        wire::from_ask_response(&v, ctx.model, &completion_id(), crate::store::now())
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(Stream(wire::AskStream::new(
            ctx.model,
            &completion_id(),
            crate::store::now(),
        ))))
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        wire::map_error(status, body)
    }
}

struct Stream(wire::AskStream);

impl StreamTranslator for Stream {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<Value>, Value> {
        self.0.on_event(data)
    }

    fn finish(&mut self) -> Vec<Value> {
        self.0.finish()
    }
}
