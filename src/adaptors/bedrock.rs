//! AWS Bedrock Claude (channel type 33): Anthropic's Messages body with
//! `anthropic_version: bedrock-2023-05-31` (no `model`, no `stream`), sent to
//! `bedrock-runtime.{region}.amazonaws.com/model/{model id}/invoke` (or
//! `invoke-with-response-stream`, whose answer is AWS's binary event stream carrying Anthropic's
//! events base64-encoded) and signed with SigV4. Pure: signing takes the time as an argument.

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bedrock's model id for One API's Claude names (others are used as given, so a channel can
/// map to any Bedrock id with its model mapping).
pub fn model_id(model: &str) -> &str {
    match model {
        "claude-instant-1.2" => "anthropic.claude-instant-v1",
        "claude-2.0" => "anthropic.claude-v2",
        "claude-2.1" => "anthropic.claude-v2:1",
        "claude-3-haiku-20240307" => "anthropic.claude-3-haiku-20240307-v1:0",
        "claude-3-sonnet-20240229" => "anthropic.claude-3-sonnet-20240229-v1:0",
        "claude-3-opus-20240229" => "anthropic.claude-3-opus-20240229-v1:0",
        "claude-3-5-sonnet-20240620" => "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "claude-3-5-sonnet-20241022" => "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "claude-3-5-haiku-20241022" => "anthropic.claude-3-5-haiku-20241022-v1:0",
        "claude-3-7-sonnet-20250219" => "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "llama3-8b-8192" => "meta.llama3-8b-instruct-v1:0",
        "llama3-70b-8192" => "meta.llama3-70b-instruct-v1:0",
        other => other,
    }
}

/// Whether a model is one of Meta's Llama models (Bedrock's Llama body), not Claude.
pub fn is_llama(model: &str) -> bool {
    let id = model_id(model);
    id.starts_with("meta.llama") || id.contains(".meta.llama")
}

/// The Llama 3 chat template (Meta's: each message `<|start_header_id|>{role}<|end_header_id|>`,
/// a blank line, the text and `<|eot_id|>`, ending with the assistant's header).
pub fn llama3_prompt(messages: &[Value]) -> String {
    let mut p = String::from("<|begin_of_text|>");
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let text = super::text_of(m.get("content").unwrap_or(&Value::Null));
        p.push_str(&format!(
            "<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"
        ));
    }
    p.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
    p
}

/// An OpenAI chat request as Bedrock's Llama body (`max_gen_len` 2048 by default, as One API).
pub fn to_llama_body(req: &Value) -> Result<Value, String> {
    let messages = super::messages_of(req)?;
    let mut body = serde_json::json!({
        "prompt": llama3_prompt(messages),
        "max_gen_len": req
            .get("max_tokens")
            .or_else(|| req.get("max_completion_tokens"))
            .and_then(Value::as_i64)
            .filter(|n| *n > 0)
            .unwrap_or(2048),
    });
    for k in ["temperature", "top_p"] {
        if let Some(v) = req.get(k).filter(|v| v.is_number()) {
            body[k] = v.clone();
        }
    }
    Ok(body)
}

fn llama_usage(prompt: i64, completion: i64) -> Value {
    serde_json::json!({"prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion})
}

/// A Llama answer (`generation`, token counts, `stop_reason`) as an OpenAI chat completion.
pub fn from_llama_response(resp: &Value, model: &str, id: &str, created: i64) -> Value {
    let n = |k: &str| resp.get(k).and_then(Value::as_i64).unwrap_or(0);
    serde_json::json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": resp.get("generation").and_then(Value::as_str).unwrap_or("")},
            "finish_reason": resp.get("stop_reason").and_then(Value::as_str).unwrap_or("stop")}],
        "usage": llama_usage(n("prompt_token_count"), n("generation_token_count")),
    })
}

/// One Llama stream chunk (the JSON inside an event-stream `chunk`) as an OpenAI chunk. The
/// prompt count comes on the first chunk, the completion count grows; the last chunk (with a
/// `stop_reason`) carries the usage (Bedrock's `amazon-bedrock-invocationMetrics` when present).
pub fn llama_stream_chunk(
    chunk: &Value,
    prompt_tokens: &mut i64,
    model: &str,
    id: &str,
    created: i64,
) -> Value {
    if let Some(p) = chunk.get("prompt_token_count").and_then(Value::as_i64) {
        *prompt_tokens = p;
    }
    let stop = chunk
        .get("stop_reason")
        .and_then(Value::as_str)
        .filter(|s| *s != "null");
    let mut out = serde_json::json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": {"role": "assistant",
            "content": chunk.get("generation").and_then(Value::as_str).unwrap_or("")},
            "finish_reason": stop}],
    });
    if stop.is_some() {
        let metrics = chunk.get("amazon-bedrock-invocationMetrics");
        let m = |k: &str| metrics.and_then(|m| m.get(k)).and_then(Value::as_i64);
        let prompt = m("inputTokenCount").unwrap_or(*prompt_tokens);
        let completion = m("outputTokenCount").unwrap_or_else(|| {
            chunk
                .get("generation_token_count")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        });
        out["usage"] = llama_usage(prompt, completion);
    }
    out
}

/// The JSON payload inside a `chunk` message (`{"bytes": "<base64>"}`).
pub fn chunk_json(payload: &str) -> Option<Value> {
    serde_json::from_str(&chunk_event(payload)?).ok()
}

/// An Anthropic Messages request as Bedrock's body.
pub fn to_invoke_body(mut messages_request: Value) -> Value {
    if let Some(o) = messages_request.as_object_mut() {
        o.remove("model");
        o.remove("stream");
        o.insert(
            "anthropic_version".into(),
            Value::String("bedrock-2023-05-31".into()),
        );
    }
    messages_request
}

/// RFC 3986 encoding of one path segment (unreserved characters kept).
pub fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// HMAC-SHA256 (RFC 2104), shared by the request signers.
pub fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// What a SigV4 signature covers.
#[derive(Debug)]
pub struct SignInput<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub host: &'a str,
    /// The path as sent (segments encoded once).
    pub path: &'a str,
    pub body: &'a [u8],
    /// `YYYYMMDDTHHMMSSZ`
    pub amz_date: &'a str,
}

/// SigV4 headers (`x-amz-date`, `x-amz-content-sha256`, `authorization`) for a POST with
/// `content-type: application/json`. Non-S3 services sign the path encoded a second time.
pub fn sign(i: &SignInput) -> Vec<(String, String)> {
    let payload_hash = hex::encode(Sha256::digest(i.body));
    let canonical_path: String = i
        .path
        .split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/");
    let signed = "content-type;host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "POST\n{canonical_path}\n\ncontent-type:application/json\nhost:{}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{}\n\n{signed}\n{payload_hash}",
        i.host, i.amz_date
    );
    let date = &i.amz_date[..8.min(i.amz_date.len())];
    let scope = format!("{date}/{}/{}/aws4_request", i.region, i.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        i.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{}", i.secret_key).as_bytes(), date.as_bytes());
    let k = hmac(&k, i.region.as_bytes());
    let k = hmac(&k, i.service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    let signature = hex::encode(hmac(&k, to_sign.as_bytes()));
    vec![
        ("x-amz-date".into(), i.amz_date.to_string()),
        ("x-amz-content-sha256".into(), payload_hash),
        (
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                i.access_key
            ),
        ),
    ]
}

/// Splits AWS's binary event stream (`application/vnd.amazon.eventstream`) into messages:
/// `(event type or exception type, payload)`. CRCs are not checked (TLS protects the bytes).
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: Vec<u8>,
}

impl EventStreamDecoder {
    /// Feeds bytes; returns complete messages.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 12 {
                break;
            }
            let total =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            let headers_len =
                u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            if total < 16 + headers_len {
                // Corrupt framing: drop what we have rather than loop.
                self.buf.clear();
                break;
            }
            if self.buf.len() < total {
                break;
            }
            let frame: Vec<u8> = self.buf.drain(..total).collect();
            let headers = parse_headers(&frame[12..12 + headers_len]);
            let payload = String::from_utf8_lossy(&frame[12 + headers_len..total - 4]).into_owned();
            let get = |k: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let kind = if get(":message-type") == "exception" {
                format!("exception:{}", get(":exception-type"))
            } else {
                get(":event-type")
            };
            out.push((kind, payload));
        }
        out
    }
}

fn parse_headers(mut b: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some((&n, rest)) = b.split_first() {
        let n = n as usize;
        if rest.len() < n + 1 {
            break;
        }
        let name = String::from_utf8_lossy(&rest[..n]).into_owned();
        let kind = rest[n];
        let rest = &rest[n + 1..];
        // Only string values (type 7) matter here; skip the others by their sizes.
        let (value, used) = match kind {
            7 | 6 if rest.len() >= 2 => {
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                if rest.len() < 2 + len {
                    break;
                }
                (
                    String::from_utf8_lossy(&rest[2..2 + len]).into_owned(),
                    2 + len,
                )
            }
            0 | 1 => (String::new(), 0),
            2 => (String::new(), 1),
            3 => (String::new(), 2),
            4 => (String::new(), 4),
            5 | 8 => (String::new(), 8),
            9 => (String::new(), 16),
            _ => break,
        };
        if rest.len() < used {
            break;
        }
        out.push((name, value));
        b = &rest[used..];
    }
    out
}

/// The Anthropic event inside a `chunk` payload (`{"bytes": "<base64>"}`).
pub fn chunk_event(payload: &str) -> Option<String> {
    let v: Value = serde_json::from_str(payload).ok()?;
    let b = base64::engine::general_purpose::STANDARD
        .decode(v.get("bytes")?.as_str()?)
        .ok()?;
    String::from_utf8(b).ok()
}

/// Encodes one event-stream message (tests and mocks).
pub fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (k, v) in headers {
        h.push(k.len() as u8);
        h.extend_from_slice(k.as_bytes());
        h.push(7);
        h.extend_from_slice(&(v.len() as u16).to_be_bytes());
        h.extend_from_slice(v.as_bytes());
    }
    let total = (16 + h.len() + payload.len()) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// A `chunk` message carrying one Anthropic event (tests and mocks).
pub fn encode_chunk(anthropic_event: &str) -> Vec<u8> {
    let b = base64::engine::general_purpose::STANDARD.encode(anthropic_event);
    encode_message(
        &[
            (":event-type", "chunk"),
            (":message-type", "event"),
            (":content-type", "application/json"),
        ],
        serde_json::json!({ "bytes": b }).to_string().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigv4_matches_aws_reference() {
        // AWS's published example key for the signing-key derivation (docs: "Examples of how to
        // derive a signing key for Signature Version 4").
        let k = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20120215");
        let k = hmac(&k, b"us-east-1");
        let k = hmac(&k, b"iam");
        let k = hmac(&k, b"aws4_request");
        assert_eq!(
            hex::encode(k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let h = sign(&SignInput {
            access_key: "AKID",
            secret_key: "SECRET",
            region: "us-east-1",
            service: "bedrock",
            host: "bedrock-runtime.us-east-1.amazonaws.com",
            path: "/model/anthropic.claude-v2%3A1/invoke",
            body: b"{}",
            amz_date: "20240101T000000Z",
        });
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature="
        ));
        assert_eq!(
            uri_encode("anthropic.claude-v2%3A1"),
            "anthropic.claude-v2%253A1"
        );
    }

    #[test]
    fn llama_body_response_and_stream() {
        let req = serde_json::json!({"messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "max_tokens": 64, "temperature": 0.5});
        let b = to_llama_body(&req).unwrap();
        assert_eq!(
            b["prompt"],
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(
            (b["max_gen_len"].as_i64(), b["temperature"].as_f64()),
            (Some(64), Some(0.5))
        );
        assert!(b.get("top_p").is_none());
        assert!(is_llama("llama3-8b-8192") && is_llama("meta.llama3-1-70b-instruct-v1:0"));
        assert!(is_llama("us.meta.llama3-2-3b-instruct-v1:0") && !is_llama("claude-2.1"));
        let fx = |n: &str| {
            std::fs::read_to_string(format!(
                "{}/tests/fixtures/bedrock/{n}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let resp: Value = serde_json::from_str(&fx("llama_response.json")).unwrap();
        let c = from_llama_response(&resp, "llama3-8b-8192", "x", 1);
        assert_eq!(c["choices"][0]["message"]["content"], "Hello there!");
        assert_eq!(c["usage"]["total_tokens"], 24);
        let mut prompt = 0;
        let mut text = String::new();
        let mut usage = Value::Null;
        for line in fx("llama_stream.jsonl").lines() {
            let chunk: Value = serde_json::from_str(line).unwrap();
            let out = llama_stream_chunk(&chunk, &mut prompt, "m", "x", 1);
            text.push_str(out["choices"][0]["delta"]["content"].as_str().unwrap());
            if out.get("usage").is_some() {
                usage = out["usage"].clone();
            }
        }
        assert_eq!(text, "Hello there!");
        assert_eq!(
            usage,
            serde_json::json!({"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24})
        );
    }

    #[test]
    fn body_and_event_stream() {
        let b = to_invoke_body(serde_json::json!({"model": "m", "stream": true, "max_tokens": 5}));
        assert_eq!(
            b,
            serde_json::json!({"max_tokens": 5, "anthropic_version": "bedrock-2023-05-31"})
        );
        assert_eq!(model_id("claude-2.1"), "anthropic.claude-v2:1");
        let mut bytes = encode_chunk(r#"{"type":"message_stop"}"#);
        bytes.extend(encode_message(
            &[
                (":message-type", "exception"),
                (":exception-type", "throttlingException"),
            ],
            br#"{"message":"slow down"}"#,
        ));
        for cut in 0..bytes.len() {
            let mut d = EventStreamDecoder::default();
            let mut got = d.feed(&bytes[..cut]);
            got.extend(d.feed(&bytes[cut..]));
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].0, "chunk");
            assert_eq!(
                chunk_event(&got[0].1).as_deref(),
                Some(r#"{"type":"message_stop"}"#)
            );
            assert_eq!(got[1].0, "exception:throttlingException");
        }
    }
}
