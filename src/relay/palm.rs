//! Google PaLM (channel type 11): glue around [`crate::adaptors::palm`]:
//! `POST {base}/v1beta2/models/{model}:generateMessage` with `x-goog-api-key` (One API's header;
//! the key stays out of URLs and logs). PaLM does not stream: a stream request is sent as a
//! normal one and its whole answer comes back as one SSE chunk. Pure: no I/O.

use serde_json::Value;

use super::openai::base_of;
use super::types::RelayMode;
use super::{Adaptor, Ctx, StreamTranslator, UpstreamRequest};
use crate::adaptors::palm as wire;

/// The PaLM adaptor.
#[derive(Debug)]
pub struct Palm;

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

impl Adaptor for Palm {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        UpstreamRequest {
            url: format!(
                "{}/v1beta2/models/{}:generateMessage",
                base_of(11, ctx.base_url),
                wire::model_id(ctx.model)
            ),
            headers: vec![("x-goog-api-key".to_string(), ctx.key.to_string())],
        }
    }

    fn supports_include_usage(&self, _channel_type: i64) -> bool {
        false
    }

    fn is_openai(&self) -> bool {
        false
    }

    fn whole_answer_stream(&self) -> bool {
        true
    }

    fn convert_request(&self, ctx: &Ctx, body: Value) -> Result<Value, String> {
        if ctx.mode != RelayMode::ChatCompletions {
            return Err("this endpoint is not supported by PaLM channels".into());
        }
        wire::to_message_request(&body)
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| wire::map_error(502, body))?;
        wire::from_message_response(&v, ctx.model, &completion_id(), crate::store::now())
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(Whole {
            model: ctx.model.to_string(),
        }))
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        wire::map_error(status, body)
    }
}

/// The whole answer (one "event": the JSON body) as OpenAI chunks.
struct Whole {
    model: String,
}

impl StreamTranslator for Whole {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<Value>, Value> {
        let v: Value =
            serde_json::from_str(data).map_err(|_| wire::map_error(502, data.as_bytes()))?;
        wire::stream_chunks(&v, &self.model, &completion_id(), crate::store::now())
    }

    fn finish(&mut self) -> Vec<Value> {
        vec![]
    }
}
