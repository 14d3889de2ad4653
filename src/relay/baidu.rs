//! Baidu ERNIE v1 (channel type 15): glue around [`crate::adaptors::baidu`]. The access token
//! for the key `client_id|client_secret` is fetched, cached and added as `?access_token=` by
//! [`super::exchange`]; this part is pure, except that an answer saying the token is invalid or
//! expired drops it from that cache.

use serde_json::{Value, json};

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::baidu as wire;

/// The Baidu v1 adaptor.
#[derive(Debug)]
pub struct Baidu;

impl Adaptor for Baidu {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        UpstreamRequest {
            url: wire::url(base_of(15, ctx.base_url), ctx.model),
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
        match ctx.mode {
            RelayMode::ChatCompletions => wire::to_chat_request(&body, ctx.stream),
            RelayMode::Embeddings => wire::to_embed_request(&body),
            _ => Err("this endpoint is not supported by Baidu channels".into()),
        }
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(502, body))?;
        let out = match ctx.mode {
            RelayMode::Embeddings => wire::from_embed_response(&v, ctx.model),
            _ => wire::from_chat_response(&v, ctx.model),
        };
        if let Err(e) = &out
            && wire::is_token_error(e)
        {
            super::exchange::forget_baidu_token(ctx);
        }
        out
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(Stream {
            model: ctx.model.to_string(),
            usage: None,
        }))
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        wire::map_error(status, body)
    }
}

/// ERNIE events -> OpenAI chunks; the cumulative usage is sent once, at the end.
struct Stream {
    model: String,
    usage: Option<Value>,
}

impl StreamTranslator for Stream {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<Value>, Value> {
        let (chunks, usage) = wire::stream_event(data, &self.model)?;
        if usage.is_some() {
            self.usage = usage;
        }
        Ok(chunks)
    }

    fn finish(&mut self) -> Vec<Value> {
        match self.usage.take() {
            Some(u) => vec![json!({
                "object": "chat.completion.chunk", "model": self.model, "choices": [], "usage": u,
            })],
            None => vec![],
        }
    }
}
