//! Google Vertex AI (channel type 42): glue around [`crate::adaptors::vertex`] and the Gemini
//! and Anthropic translators. Gemini models go to Google's publisher, Claude models to
//! Anthropic's (rawPredict). The access token (service-account JWT exchanged at its
//! `token_uri`) is fetched, cached and sent as `Authorization: Bearer` by [`super::exchange`].
//! Pure: no I/O.

use serde_json::Value;

use super::anthropic::Anthropic;
use super::gemini::Gemini;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::{anthropic, gemini, vertex as wire};

/// The Vertex AI adaptor.
#[derive(Debug)]
pub struct Vertex;

impl Adaptor for Vertex {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        // A channel without usable settings fails in the token step with the reason.
        let (region, project) = match wire::Settings::from_channel(ctx.config, ctx.key) {
            Ok(s) => (s.region, s.project),
            Err(_) => ("us-central1".into(), String::new()),
        };
        UpstreamRequest {
            url: wire::url(ctx.base_url, &region, &project, ctx.model, ctx.stream),
            headers: vec![],
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
            return Err("this endpoint is not supported by Vertex AI channels".into());
        }
        if wire::is_claude(ctx.model) {
            Ok(wire::to_raw_predict(anthropic::to_messages_request(&body)?))
        } else {
            gemini::to_generate_request(&body, ctx.gemini_safety)
        }
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        if wire::is_claude(ctx.model) {
            Anthropic.convert_response(ctx, body)
        } else {
            Gemini.convert_response(ctx, body)
        }
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        if wire::is_claude(ctx.model) {
            Anthropic.stream_translator(ctx)
        } else {
            Gemini.stream_translator(ctx)
        }
    }

    fn map_error(&self, _status: u16, body: &[u8]) -> Value {
        // Google's `{"error":{"code","message","status"}}`, also for Claude's endpoints.
        gemini::map_error(body)
    }
}
