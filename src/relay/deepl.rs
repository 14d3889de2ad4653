//! DeepL (channel type 38): glue around [`crate::adaptors::deepl`]: `POST {base}/v2/translate`
//! with `Authorization: DeepL-Auth-Key`. Chat only, not streamed. Pure: no I/O.

use serde_json::Value;

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, UpstreamRequest};
use crate::adaptors::deepl as wire;

/// The DeepL adaptor.
#[derive(Debug)]
pub struct DeepL;

impl Adaptor for DeepL {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        UpstreamRequest {
            url: format!("{}/v2/translate", base_of(38, ctx.base_url)),
            headers: vec![(
                "Authorization".to_string(),
                format!("DeepL-Auth-Key {}", ctx.key),
            )],
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
            return Err("this endpoint is not supported by DeepL channels".into());
        }
        if ctx.stream {
            return Err("stream is not supported by DeepL channels".into());
        }
        wire::to_translate_request(&body, ctx.model)
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(502, body))?;
        let chars = ctx
            .request
            .map(|r| wire::last_text(r).chars().count() as i64)
            .unwrap_or(0);
        Ok(wire::from_translate_response(
            &v,
            ctx.model,
            chars,
            &format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            crate::store::now(),
        ))
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        wire::map_error(status, body)
    }
}
