//! Google Gemini (channel type 24): the relay glue around the pure translators in
//! [`crate::adaptors::gemini`]: OpenAI chat -> `generateContent` /
//! `streamGenerateContent?alt=sse`, embeddings -> `batchEmbedContents`, key in `x-goog-api-key`,
//! safety settings from `GEMINI_SAFETY_SETTING`. Pure: no I/O.

use serde_json::{Value, json};

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::gemini as wire;

/// The Gemini adaptor.
#[derive(Debug)]
pub struct Gemini;

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

impl Adaptor for Gemini {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        let base = base_of(24, ctx.base_url);
        let version = wire::api_version(ctx.model, ctx.api_version, ctx.gemini_version);
        let url = match ctx.mode {
            RelayMode::Embeddings => wire::embed_url(base, &version, ctx.model),
            _ => wire::url(base, &version, ctx.model, ctx.stream),
        };
        UpstreamRequest {
            url,
            headers: vec![("x-goog-api-key".to_string(), ctx.key.to_string())],
        }
    }

    fn supports_include_usage(&self, _channel_type: i64) -> bool {
        false
    }

    fn is_openai(&self) -> bool {
        false
    }

    fn inline_images(&self) -> bool {
        true
    }

    fn convert_request(&self, ctx: &Ctx, body: Value) -> Result<Value, String> {
        match ctx.mode {
            RelayMode::ChatCompletions => wire::to_generate_request(&body, ctx.gemini_safety),
            RelayMode::Embeddings => wire::to_embed_request(&body, ctx.model),
            _ => Err("this endpoint is not supported by Gemini channels".into()),
        }
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(body))?;
        Ok(match ctx.mode {
            RelayMode::Embeddings => wire::from_embed_response(&v, ctx.model, ctx.prompt_tokens),
            _ => {
                wire::from_generate_response(&v, ctx.model, &completion_id(), crate::store::now()).0
            }
        })
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(Stream {
            inner: wire::StreamToOpenAi::new(ctx.model, &completion_id(), crate::store::now()),
            model: ctx.model.to_string(),
            finished: false,
        }))
    }

    fn map_error(&self, _status: u16, body: &[u8]) -> Value {
        wire::map_error(body)
    }
}

/// Gemini events -> OpenAI chunks; the cumulative `usageMetadata` is sent once, at the end.
struct Stream {
    inner: wire::StreamToOpenAi,
    model: String,
    finished: bool,
}

impl StreamTranslator for Stream {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<Value>, Value> {
        self.inner.on_event(data)
    }

    fn finish(&mut self) -> Vec<Value> {
        if self.finished {
            return vec![];
        }
        self.finished = true;
        let usage = self.inner.usage();
        if usage == crate::adaptors::Usage::default() {
            return vec![];
        }
        vec![json!({
            "id": "", "object": "chat.completion.chunk", "created": crate::store::now(),
            "model": self.model, "choices": [], "usage": usage.to_openai(),
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(mode: RelayMode, stream: bool) -> Ctx<'static> {
        Ctx {
            channel_type: 24,
            base_url: "",
            key: "AIza-x",
            api_version: None,
            user_id: None,
            path: "/v1/chat/completions",
            mode,
            model: "gemini-2.0-flash",
            stream,
            prompt_tokens: 3,
            gemini_version: "v1",
            gemini_safety: "BLOCK_ONLY_HIGH",
            anthropic_version: None,
            anthropic_beta: None,
            request: None,
            config: None,
        }
    }

    #[test]
    fn urls_and_bodies() {
        let g = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash";
        let up = Gemini.build_request(&ctx(RelayMode::ChatCompletions, true));
        assert_eq!(up.url, format!("{g}:streamGenerateContent?alt=sse"));
        assert_eq!(up.headers, vec![("x-goog-api-key".into(), "AIza-x".into())]);
        let up = Gemini.build_request(&ctx(RelayMode::ChatCompletions, false));
        assert_eq!(up.url, format!("{g}:generateContent"));
        let up = Gemini.build_request(&ctx(RelayMode::Embeddings, false));
        assert_eq!(up.url, format!("{g}:batchEmbedContents"));
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let out = Gemini
            .convert_request(&ctx(RelayMode::ChatCompletions, false), body)
            .unwrap();
        assert_eq!(out["safetySettings"][0]["threshold"], "BLOCK_ONLY_HIGH");
        let mut t = Gemini
            .stream_translator(&ctx(RelayMode::ChatCompletions, true))
            .unwrap();
        let c = t
            .on_event("", r#"{"candidates":[{"content":{"parts":[{"text":"A"}]}}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1}}"#)
            .unwrap();
        assert_eq!(c[0]["choices"][0]["delta"]["content"], "A");
        t.on_event("", r#"{"candidates":[{"content":{"parts":[{"text":"B"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2}}"#)
            .unwrap();
        let end = t.finish();
        assert_eq!(end[0]["usage"]["total_tokens"], 6);
        assert!(t.finish().is_empty());
    }
}
