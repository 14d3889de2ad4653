//! Replicate (channel type 46): glue around [`crate::adaptors::replicate`]: `POST
//! {base}/v1/models/{owner}/{name}/predictions` with the Bearer key and, for whole answers,
//! `Prefer: wait`. [`super::exchange`] polls the prediction or opens its stream. Chat, and
//! image models (flux, ...) for `/v1/images/generations`. Pure: no I/O.

use serde_json::Value;

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::replicate as wire;

/// The Replicate adaptor.
#[derive(Debug)]
pub struct Replicate;

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

impl Adaptor for Replicate {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        let base = match base_of(46, ctx.base_url) {
            "" => wire::DEFAULT_BASE,
            b => b,
        };
        let mut headers = vec![("Authorization".to_string(), format!("Bearer {}", ctx.key))];
        if !ctx.stream {
            headers.push(("Prefer".to_string(), "wait".to_string()));
        }
        UpstreamRequest {
            url: wire::url(base, ctx.model),
            headers,
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
            RelayMode::ChatCompletions => wire::to_prediction(&body, ctx.stream),
            // The exchange answers in OpenAI's image format (it may fetch the images).
            RelayMode::ImagesGenerations => wire::to_image_prediction(&body),
            _ => Err("this endpoint is not supported by Replicate channels".into()),
        }
    }

    /// `body` is the finished prediction.
    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(502, body))?;
        wire::from_prediction(&v, ctx.model, crate::store::now())
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(Stream {
            model: ctx.model.to_string(),
            id: completion_id(),
            created: crate::store::now(),
            done: false,
        }))
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        wire::map_error(status, body)
    }
}

/// `urls.stream` events -> OpenAI chunks (Replicate reports no usage: the relay counts).
struct Stream {
    model: String,
    id: String,
    created: i64,
    done: bool,
}

impl StreamTranslator for Stream {
    fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<Value>, Value> {
        if self.done {
            return Ok(vec![]);
        }
        if event == "done" {
            self.done = true;
        }
        wire::stream_event(event, data, &self.model, &self.id, self.created)
    }

    fn finish(&mut self) -> Vec<Value> {
        vec![]
    }
}
