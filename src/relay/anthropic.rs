//! Anthropic (channel type 14): the relay glue around the pure translators in
//! [`crate::adaptors::anthropic`]: OpenAI chat -> `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version`, answers and stream events back to OpenAI's format. Pure: no I/O.

use serde_json::Value;

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::anthropic::{self as wire, StreamOut};

/// The Anthropic adaptor.
#[derive(Debug)]
pub struct Anthropic;

fn now() -> i64 {
    crate::store::now()
}

impl Adaptor for Anthropic {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        let mut headers = vec![
            ("x-api-key".to_string(), ctx.key.to_string()),
            (
                "anthropic-version".to_string(),
                ctx.anthropic_version
                    .filter(|v| !v.is_empty())
                    .unwrap_or(wire::DEFAULT_VERSION)
                    .to_string(),
            ),
        ];
        if let Some(beta) = ctx.anthropic_beta.filter(|v| !v.is_empty()) {
            headers.push(("anthropic-beta".to_string(), beta.to_string()));
        }
        UpstreamRequest {
            url: format!("{}/v1/messages", base_of(14, ctx.base_url)),
            headers,
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
        if ctx.mode != RelayMode::ChatCompletions {
            return Err("this endpoint is not supported by Anthropic channels".into());
        }
        let mut out = wire::to_messages_request(&body)?;
        out["model"] = Value::String(ctx.model.to_string());
        Ok(out)
    }

    fn convert_response(&self, _ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(body))?;
        Ok(wire::from_messages_response(&v, now()).0)
    }

    fn stream_translator(&self, _ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(AnthropicStream::new()))
    }

    fn map_error(&self, _status: u16, body: &[u8]) -> Value {
        wire::map_error(body)
    }
}

/// Anthropic events -> OpenAI chunks, ending with one usage chunk (also used by Bedrock).
pub(crate) struct AnthropicStream {
    inner: wire::StreamToOpenAi,
    usage_sent: bool,
}

impl AnthropicStream {
    pub(crate) fn new() -> Self {
        AnthropicStream {
            inner: wire::StreamToOpenAi::new(now()),
            usage_sent: false,
        }
    }

    fn usage_chunk(&mut self) -> Vec<Value> {
        if self.usage_sent {
            return vec![];
        }
        self.usage_sent = true;
        vec![self.inner.usage_chunk()]
    }
}

impl StreamTranslator for AnthropicStream {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<Value>, Value> {
        match self.inner.on_event(data) {
            StreamOut::Chunks(c) => Ok(c),
            StreamOut::Done => Ok(self.usage_chunk()),
            StreamOut::Error(e) => Err(e),
        }
    }

    fn finish(&mut self) -> Vec<Value> {
        self.usage_chunk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            channel_type: 14,
            base_url: "",
            key: "sk-ant-x",
            api_version: None,
            user_id: None,
            path: "/v1/chat/completions",
            mode: RelayMode::ChatCompletions,
            model: "claude-3-5-haiku-20241022",
            stream: false,
            prompt_tokens: 0,
            gemini_version: "v1",
            gemini_safety: "BLOCK_NONE",
            anthropic_version: None,
            anthropic_beta: None,
            request: None,
            config: None,
        }
    }

    #[test]
    fn request_headers_and_model() {
        let up = Anthropic.build_request(&ctx());
        assert_eq!(up.url, "https://api.anthropic.com/v1/messages");
        assert!(
            up.headers
                .contains(&("x-api-key".into(), "sk-ant-x".into()))
        );
        assert!(
            up.headers
                .contains(&("anthropic-version".into(), "2023-06-01".into()))
        );
        let body =
            serde_json::json!({"model": "alias", "messages": [{"role": "user", "content": "hi"}]});
        let out = Anthropic.convert_request(&ctx(), body).unwrap();
        assert_eq!(out["model"], "claude-3-5-haiku-20241022");
        let mut c = ctx();
        c.mode = RelayMode::Embeddings;
        assert!(
            Anthropic
                .convert_request(&c, serde_json::json!({}))
                .is_err()
        );
    }
}
