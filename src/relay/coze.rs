//! Coze (channel type 34): glue around [`crate::adaptors::coze`]: `POST {base}/open_api/v2/chat`
//! (One API's; Coze reports no usage there, so the relay counts prompt and completion), or
//! Coze's v3 API, `POST {base}/v3/chat`, when the channel's `config.api_version` is `"v3"`
//! (usage from `conversation.chat.completed`). Bearer key, the bot from the model name
//! (`bot-<id>`), the user from `config.user_id`. Pure: no I/O.

use serde_json::Value;

use super::openai::base_of;
use super::sse::SseDecoder;
use super::types::RelayMode;
use super::{Adaptor, Ctx, HoldUsage, StreamTranslator, UpstreamRequest};
use crate::adaptors::coze as wire;

/// The Coze adaptor.
#[derive(Debug)]
pub struct Coze;

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// Whether the channel uses Coze's v3 API (`config.api_version` = `"v3"`).
fn v3(ctx: &Ctx) -> bool {
    ctx.api_version
        .is_some_and(|v| v.eq_ignore_ascii_case("v3"))
}

impl Adaptor for Coze {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        let path = if v3(ctx) {
            "/v3/chat"
        } else {
            "/open_api/v2/chat"
        };
        UpstreamRequest {
            url: format!("{}{path}", base_of(34, ctx.base_url)),
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
        let user = ctx.user_id.unwrap_or("");
        if v3(ctx) {
            return wire::to_v3_request(&body, ctx.model, user);
        }
        wire::to_chat_request(&body, ctx.model, user, ctx.stream)
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        if v3(ctx) {
            // Always streamed upstream: gather the events. A JSON body is an error answer.
            if let Ok(v) = serde_json::from_slice::<Value>(body) {
                return Err(wire::map_error(200, v.to_string().as_bytes()));
            }
            let mut d = SseDecoder::default();
            let mut events = d.feed(body);
            events.extend(d.finish());
            return wire::from_v3_events(&events, ctx.model, &completion_id(), crate::store::now());
        }
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(502, body))?;
        wire::from_chat_response(&v, ctx.model, &completion_id(), crate::store::now())
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        if v3(ctx) {
            let inner = V3(wire::V3Stream::new(
                ctx.model,
                &completion_id(),
                crate::store::now(),
            ));
            return Some(Box::new(HoldUsage::new(inner, ctx.model)));
        }
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

struct V3(wire::V3Stream);

impl StreamTranslator for V3 {
    fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<Value>, Value> {
        self.0.on_event(event, data)
    }

    fn finish(&mut self) -> Vec<Value> {
        vec![]
    }
}
