//! Zhipu's v3 API for the `chatglm_*` models (channel type 16): glue around
//! [`crate::adaptors::zhipu`]: `{base}/api/paas/v3/model-api/{model}/invoke` (or `sse-invoke`),
//! `Authorization: <JWT>` signed from the key `id.secret`, valid 24 hours (One API's). Other
//! Zhipu models use the v4 API through the OpenAI adaptor (see [`super::adaptor_for_model`]).
//! Signing reads the clock; otherwise pure.

use serde_json::Value;

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, HoldUsage, StreamTranslator, UpstreamRequest};
use crate::adaptors::zhipu as wire;

/// The Zhipu v3 adaptor.
#[derive(Debug)]
pub struct ZhipuV3;

const TOKEN_TTL_MS: i64 = 24 * 3600 * 1000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Adaptor for ZhipuV3 {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        let token = wire::jwt(ctx.key, now_ms(), TOKEN_TTL_MS).unwrap_or_default();
        UpstreamRequest {
            url: wire::url(base_of(16, ctx.base_url), ctx.model, ctx.stream),
            headers: vec![("Authorization".to_string(), token)],
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
            return Err("this endpoint is not supported by Zhipu's chatglm models".into());
        }
        wire::to_invoke_request(&body)
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(502, body))?;
        wire::from_invoke_response(&v, ctx.model, crate::store::now())
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        let inner = Stream {
            model: ctx.model.to_string(),
            created: crate::store::now(),
        };
        Some(Box::new(HoldUsage::new(inner, ctx.model)))
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        wire::map_error(status, body)
    }
}

struct Stream {
    model: String,
    created: i64,
}

impl StreamTranslator for Stream {
    fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<Value>, Value> {
        wire::stream_event(event, data, &self.model, self.created)
    }

    fn finish(&mut self) -> Vec<Value> {
        vec![]
    }
}
