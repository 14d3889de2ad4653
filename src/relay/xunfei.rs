//! Xunfei Spark over WebSocket (channel type 18): glue around [`crate::adaptors::xunfei`]. The
//! signed socket URL is built here (the signature reads the clock) from the key
//! `APPID|APISecret|APIKey` and the version (from the model name or the channel's
//! `api_version`); [`super::exchange`] holds the socket and hands over the frames.

use serde_json::{Value, json};

use super::openai::openai_error;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::xunfei as wire;

/// The Xunfei (WebSocket) adaptor.
#[derive(Debug)]
pub struct Xunfei;

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

impl Adaptor for Xunfei {
    /// The signed `wss://` URL (empty when the key or base URL is unusable; the exchange says
    /// why).
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        let base = match ctx.base_url.trim() {
            "" => wire::DEFAULT_BASE,
            b => b,
        };
        let version = wire::version(ctx.model, ctx.api_version);
        let url = wire::split_key(ctx.key)
            .and_then(|(_, secret, key)| {
                let date = wire::rfc1123(crate::store::now());
                wire::auth_url(base, &wire::path(&version), key, secret, &date).ok()
            })
            .unwrap_or_default();
        UpstreamRequest {
            url,
            headers: vec![],
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
            return Err("this endpoint is not supported by Xunfei channels".into());
        }
        let app_id = wire::split_key(ctx.key).map(|k| k.0).unwrap_or_default();
        let domain = wire::domain(&wire::version(ctx.model, ctx.api_version));
        wire::to_frame(&body, app_id, &domain)
    }

    /// `body` is the JSON array of the answer's frames.
    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let frames: Vec<Value> =
            serde_json::from_slice(body).map_err(|_| openai_error(502, body))?;
        wire::from_frames(&frames, ctx.model, &completion_id(), crate::store::now())
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(Stream {
            model: ctx.model.to_string(),
            id: completion_id(),
            created: crate::store::now(),
            usage: None,
        }))
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match wire::frame_error(&v) {
            Some((_, e)) => e,
            None => openai_error(status, body),
        }
    }
}

/// Frames (as SSE `data:`) -> OpenAI chunks; the usage of the last frame is sent once, at the
/// end.
struct Stream {
    model: String,
    id: String,
    created: i64,
    usage: Option<Value>,
}

impl StreamTranslator for Stream {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<Value>, Value> {
        let Ok(frame) = serde_json::from_str::<Value>(data) else {
            return Ok(vec![]);
        };
        let (chunks, usage) = wire::frame_to_chunk(&frame, &self.model, &self.id, self.created)?;
        if usage.is_some() {
            self.usage = usage;
        }
        Ok(chunks)
    }

    fn finish(&mut self) -> Vec<Value> {
        match self.usage.take() {
            Some(u) => vec![json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": u,
            })],
            None => vec![],
        }
    }
}
