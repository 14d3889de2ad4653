//! Tencent Hunyuan (channel type 23): glue around [`crate::adaptors::tencent`]: `POST {base}/`
//! with TC3-HMAC-SHA256 signing from a key `APPID|SECRET_ID|SECRET_KEY`. Chat (`ChatCompletions`)
//! and embeddings (`GetEmbedding`). Signing reads the clock; otherwise pure.

use serde_json::Value;

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::tencent as wire;

/// The Tencent Hunyuan adaptor.
#[derive(Debug)]
pub struct Tencent;

impl Adaptor for Tencent {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        UpstreamRequest {
            url: format!("{}/", base_of(23, ctx.base_url)),
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
            RelayMode::ChatCompletions => wire::to_chat_request(&body, ctx.model, ctx.stream),
            RelayMode::Embeddings => wire::to_embedding_request(&body),
            _ => Err("this endpoint is not supported by Tencent channels".into()),
        }
    }

    fn sign(&self, ctx: &Ctx, url: &str, body: &[u8]) -> Vec<(String, String)> {
        let Ok(u) = url::Url::parse(url) else {
            return vec![];
        };
        let host = match u.port() {
            Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
            None => u.host_str().unwrap_or_default().to_string(),
        };
        let mut parts = ctx.key.split('|');
        let (_app_id, id, secret) = (parts.next(), parts.next(), parts.next());
        let now = crate::store::now();
        let date = super::bedrock::amz_date(now);
        let date = format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..8]);
        wire::sign(
            id.unwrap_or_default(),
            secret.unwrap_or_default(),
            &host,
            action(ctx.mode),
            body,
            now,
            &date,
        )
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(502, body))?;
        match ctx.mode {
            RelayMode::Embeddings => wire::from_embedding_response(&v, ctx.model),
            _ => wire::from_chat_response(&v, ctx.model),
        }
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

/// The `X-TC-Action` for a relay mode.
fn action(mode: RelayMode) -> &'static str {
    match mode {
        RelayMode::Embeddings => "GetEmbedding",
        _ => "ChatCompletions",
    }
}

/// Hunyuan events -> OpenAI chunks; the cumulative usage each event carries is held back and
/// sent once, in a usage-only chunk at the end (as OpenAI does).
struct Stream {
    model: String,
    usage: Option<Value>,
}

impl StreamTranslator for Stream {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<Value>, Value> {
        let mut chunks = wire::stream_event(data, &self.model)?;
        for c in &mut chunks {
            if let Some(u) = c.as_object_mut().and_then(|o| o.remove("usage")) {
                self.usage = Some(u);
            }
        }
        Ok(chunks)
    }

    fn finish(&mut self) -> Vec<Value> {
        match self.usage.take() {
            Some(u) => vec![serde_json::json!({
                "object": "chat.completion.chunk", "model": self.model, "choices": [], "usage": u,
            })],
            None => vec![],
        }
    }
}
