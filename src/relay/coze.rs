//! Coze (channel type 34): glue around [`crate::adaptors::coze`]: `POST {base}/open_api/v2/chat`,
//! Bearer key, the bot from the model name (`bot-<id>`), the user from `config.user_id`. Coze
//! reports no usage: the relay counts prompt and completion. Pure: no I/O.

use serde_json::Value;

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::coze as wire;

/// The Coze adaptor.
#[derive(Debug)]
pub struct Coze;

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

impl Adaptor for Coze {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        UpstreamRequest {
            url: format!("{}/open_api/v2/chat", base_of(34, ctx.base_url)),
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
            return Err("this endpoint is not supported by Coze channels".into());
        }
        wire::to_chat_request(&body, ctx.model, ctx.user_id.unwrap_or(""), ctx.stream)
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(502, body))?;
        wire::from_chat_response(&v, ctx.model, &completion_id(), crate::store::now())
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(Stream {
            model: ctx.model.to_string(),
            id: completion_id(),
            created: crate::store::now(),
        }))
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        wire::map_error(status, body)
    }
}

struct Stream {
    model: String,
    id: String,
    created: i64,
}

impl StreamTranslator for Stream {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<Value>, Value> {
        wire::stream_event(data, &self.model, &self.id, self.created)
    }

    fn finish(&mut self) -> Vec<Value> {
        vec![]
    }
}
