//! AWS Bedrock (channel type 33): glue around [`crate::adaptors::bedrock`]: Claude models through
//! the Anthropic translators, Meta's Llama models (`llama3-*`, `meta.llama*` ids) through
//! Bedrock's Llama body. Credentials from the channel config (`ak`, `sk`, `region`, as One
//! API), or a key `AK|SK|REGION`. Signing reads the clock; otherwise pure.

use serde_json::Value;

use super::anthropic::AnthropicStream;
use super::openai::openai_error;
use super::types::RelayMode;
use super::{Adaptor, Ctx, HoldUsage, StreamTranslator, UpstreamRequest};
use crate::adaptors::{anthropic, bedrock as wire};

/// The Bedrock (Claude and Llama) adaptor.
#[derive(Debug)]
pub struct Bedrock;

struct Creds<'a> {
    ak: &'a str,
    sk: &'a str,
    region: &'a str,
}

fn creds<'a>(ctx: &Ctx<'a>) -> Creds<'a> {
    let cfg = |k: &str| {
        ctx.config
            .and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut parts = ctx.key.split('|');
    let (k_ak, k_sk, k_region) = (parts.next(), parts.next(), parts.next());
    Creds {
        ak: cfg("ak").or(k_ak).unwrap_or_default(),
        sk: cfg("sk").or(k_sk).unwrap_or_default(),
        region: cfg("region").or(k_region).unwrap_or("us-east-1"),
    }
}

/// `YYYYMMDDTHHMMSSZ` for a unix time (UTC).
pub fn amz_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

impl Adaptor for Bedrock {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        let c = creds(ctx);
        let base = if ctx.base_url.trim().is_empty() {
            format!("https://bedrock-runtime.{}.amazonaws.com", c.region)
        } else {
            ctx.base_url.trim().trim_end_matches('/').to_string()
        };
        let action = if ctx.stream {
            "invoke-with-response-stream"
        } else {
            "invoke"
        };
        UpstreamRequest {
            url: format!(
                "{base}/model/{}/{action}",
                wire::uri_encode(wire::model_id(ctx.model))
            ),
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

    fn event_stream(&self) -> bool {
        true
    }

    fn convert_request(&self, ctx: &Ctx, body: Value) -> Result<Value, String> {
        if ctx.mode != RelayMode::ChatCompletions {
            return Err("this endpoint is not supported by AWS Bedrock channels".into());
        }
        if wire::is_llama(ctx.model) {
            return wire::to_llama_body(&body);
        }
        Ok(wire::to_invoke_body(anthropic::to_messages_request(&body)?))
    }

    fn sign(&self, ctx: &Ctx, url: &str, body: &[u8]) -> Vec<(String, String)> {
        let Ok(u) = url::Url::parse(url) else {
            return vec![];
        };
        let host = match u.port() {
            Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
            None => u.host_str().unwrap_or_default().to_string(),
        };
        let c = creds(ctx);
        wire::sign(&wire::SignInput {
            access_key: c.ak,
            secret_key: c.sk,
            region: c.region,
            service: "bedrock",
            host: &host,
            path: u.path(),
            body,
            amz_date: &amz_date(crate::store::now()),
        })
    }

    fn convert_response(&self, ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        let v: Value = serde_json::from_slice(body).map_err(|_| openai_error(502, body))?;
        if wire::is_llama(ctx.model) {
            return Ok(wire::from_llama_response(
                &v,
                ctx.model,
                &completion_id(),
                crate::store::now(),
            ));
        }
        Ok(anthropic::from_messages_response(&v, crate::store::now()).0)
    }

    fn stream_translator(&self, ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        if wire::is_llama(ctx.model) {
            let inner = LlamaStream {
                model: ctx.model.to_string(),
                id: completion_id(),
                created: crate::store::now(),
                prompt_tokens: 0,
            };
            return Some(Box::new(HoldUsage::new(inner, ctx.model)));
        }
        Some(Box::new(Stream(AnthropicStream::new())))
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        openai_error(status, body)
    }
}

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

fn exception(kind: &str, payload: &str) -> Option<Value> {
    let exception = kind.strip_prefix("exception:")?;
    let mut e = openai_error(500, payload.as_bytes());
    e["code"] = Value::String(exception.to_string());
    Some(e)
}

/// Event-stream messages -> the Llama chunks inside -> OpenAI chunks (usage on the last).
struct LlamaStream {
    model: String,
    id: String,
    created: i64,
    prompt_tokens: i64,
}

impl StreamTranslator for LlamaStream {
    fn on_event(&mut self, kind: &str, payload: &str) -> Result<Vec<Value>, Value> {
        if let Some(e) = exception(kind, payload) {
            return Err(e);
        }
        Ok(wire::chunk_json(payload)
            .map(|c| {
                wire::llama_stream_chunk(
                    &c,
                    &mut self.prompt_tokens,
                    &self.model,
                    &self.id,
                    self.created,
                )
            })
            .into_iter()
            .collect())
    }

    fn finish(&mut self) -> Vec<Value> {
        vec![]
    }
}

/// Event-stream messages -> the Anthropic events inside -> OpenAI chunks.
struct Stream(AnthropicStream);

impl StreamTranslator for Stream {
    fn on_event(&mut self, kind: &str, payload: &str) -> Result<Vec<Value>, Value> {
        if let Some(e) = exception(kind, payload) {
            return Err(e);
        }
        match wire::chunk_event(payload) {
            Some(ev) => self.0.on_event("", &ev),
            None => Ok(vec![]),
        }
    }

    fn finish(&mut self) -> Vec<Value> {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_709_251_199), "20240229T235959Z");
        assert_eq!(amz_date(1_735_689_600), "20250101T000000Z");
    }
}
