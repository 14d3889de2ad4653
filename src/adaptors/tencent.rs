//! Tencent Hunyuan (channel type 23), API version 2023-09-01: `POST {base}/` with
//! `X-TC-Action: ChatCompletions`, signed with TC3-HMAC-SHA256 from a key
//! `APPID|SECRET_ID|SECRET_KEY` (One API's format). Errors come back with HTTP 200 inside
//! `Response.Error`. Pure: signing takes the time as an argument.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::bedrock::hmac;

/// The API version sent in `X-TC-Version`.
pub const VERSION: &str = "2023-09-01";

/// An OpenAI chat request as a Hunyuan `ChatCompletions` body.
pub fn to_chat_request(req: &Value, model: &str, stream: bool) -> Result<Value, String> {
    let messages = super::messages_of(req)?;
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            json!({"Role": m.get("role").and_then(Value::as_str).unwrap_or("user"), "Content": content})
        })
        .collect();
    let mut out = json!({"Model": model, "Messages": messages, "Stream": stream});
    for (from, to) in [("temperature", "Temperature"), ("top_p", "TopP")] {
        if let Some(v) = req.get(from).filter(|v| v.is_number()) {
            out[to] = v.clone();
        }
    }
    Ok(out)
}

fn usage(u: &Value) -> Value {
    let get = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
    json!({"prompt_tokens": get("PromptTokens"), "completion_tokens": get("CompletionTokens"),
           "total_tokens": get("TotalTokens")})
}

/// A Hunyuan answer as an OpenAI chat completion, or the OpenAI error for `Response.Error`.
pub fn from_chat_response(resp: &Value, model: &str) -> Result<Value, Value> {
    let r = resp.get("Response").unwrap_or(resp);
    if let Some(e) = r.get("Error") {
        return Err(error_object(e));
    }
    let choices: Vec<Value> = r
        .get("Choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            json!({"index": i, "message": {"role": "assistant",
                "content": c.pointer("/Message/Content").cloned().unwrap_or(json!(""))},
                "finish_reason": c.get("FinishReason").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("stop")})
        })
        .collect();
    Ok(json!({
        "id": r.get("Id").cloned().unwrap_or_default(),
        "object": "chat.completion",
        "created": r.get("Created").cloned().unwrap_or_default(),
        "model": model,
        "choices": choices,
        "usage": usage(r.get("Usage").unwrap_or(&Value::Null)),
    }))
}

/// An OpenAI embeddings request as a Hunyuan `GetEmbedding` body (`InputList`, as One API).
pub fn to_embedding_request(req: &Value) -> Result<Value, String> {
    let inputs: Vec<Value> = match req.get("input") {
        Some(Value::String(s)) => vec![json!(s)],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.clone(),
        _ => return Err("input must be a string or an array of strings".into()),
    };
    Ok(json!({ "InputList": inputs }))
}

/// A `GetEmbedding` answer as OpenAI's embeddings list, or the OpenAI error for
/// `Response.Error`.
pub fn from_embedding_response(resp: &Value, model: &str) -> Result<Value, Value> {
    let r = resp.get("Response").unwrap_or(resp);
    if let Some(e) = r.get("Error") {
        return Err(error_object(e));
    }
    let data: Vec<Value> = r
        .get("Data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, d)| {
            json!({"object": "embedding",
                   "index": d.get("Index").and_then(Value::as_i64).unwrap_or(i as i64),
                   "embedding": d.get("Embedding").cloned().unwrap_or(json!([]))})
        })
        .collect();
    let u = r.get("Usage").unwrap_or(&Value::Null);
    let get = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
    Ok(json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": get("PromptTokens"), "completion_tokens": 0,
                  "total_tokens": get("TotalTokens")}}))
}

/// One stream event as OpenAI chunks (each carries the cumulative usage, so the relay bills
/// the last).
pub fn stream_event(data: &str, model: &str) -> Result<Vec<Value>, Value> {
    let Ok(ev) = serde_json::from_str::<Value>(data) else {
        return Ok(vec![]);
    };
    if let Some(e) = ev.get("Error").or_else(|| ev.pointer("/Response/Error")) {
        return Err(error_object(e));
    }
    let c = ev.pointer("/Choices/0").unwrap_or(&Value::Null);
    let finish = c
        .get("FinishReason")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let mut chunk = json!({
        "id": ev.get("Id").cloned().unwrap_or_default(),
        "object": "chat.completion.chunk",
        "created": ev.get("Created").cloned().unwrap_or_default(),
        "model": model,
        "choices": [{"index": 0, "delta": {"content": c.pointer("/Delta/Content").cloned().unwrap_or(json!(""))},
            "finish_reason": finish}],
    });
    if let Some(u) = ev.get("Usage") {
        chunk["usage"] = usage(u);
    }
    Ok(vec![chunk])
}

fn error_object(e: &Value) -> Value {
    let code = e
        .get("Code")
        .and_then(Value::as_str)
        .unwrap_or("upstream_error");
    let kind = if code.starts_with("AuthFailure") {
        "authentication_error"
    } else {
        "upstream_error"
    };
    json!({"message": e.get("Message").cloned().unwrap_or(json!("upstream error")),
           "type": kind, "param": "", "code": code})
}

/// An error body (HTTP status not 200) as OpenAI's error object.
pub fn map_error(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match v.pointer("/Response/Error") {
        Some(e) => error_object(e),
        None => json!({"message": format!("bad response status code {status}"),
            "type": "upstream_error", "param": "", "code": status.to_string()}),
    }
}

/// TC3-HMAC-SHA256 headers for a POST of `body` (JSON) to `host` at `timestamp`.
pub fn sign(
    secret_id: &str,
    secret_key: &str,
    host: &str,
    action: &str,
    body: &[u8],
    timestamp: i64,
    date: &str,
) -> Vec<(String, String)> {
    let service = "hunyuan";
    let canonical = format!(
        "POST\n/\n\ncontent-type:application/json\nhost:{host}\n\ncontent-type;host\n{}",
        hex::encode(Sha256::digest(body))
    );
    let scope = format!("{date}/{service}/tc3_request");
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k = hmac(&k, service.as_bytes());
    let k = hmac(&k, b"tc3_request");
    let signature = hex::encode(hmac(&k, to_sign.as_bytes()));
    vec![
        ("X-TC-Action".into(), action.into()),
        ("X-TC-Version".into(), VERSION.into()),
        ("X-TC-Timestamp".into(), timestamp.to_string()),
        (
            "Authorization".into(),
            format!(
                "TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, Signature={signature}"
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/tencent/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn translation() {
        let req = json!({"messages": [{"role": "user", "content": "你好"}], "temperature": 0.5});
        let out = to_chat_request(&req, "hunyuan-lite", true).unwrap();
        assert_eq!(
            out["Messages"][0],
            json!({"Role": "user", "Content": "你好"})
        );
        assert_eq!(
            (out["Stream"].as_bool(), out["Temperature"].as_f64()),
            (Some(true), Some(0.5))
        );
        let resp: Value = serde_json::from_str(&fixture("response.json")).unwrap();
        let c = from_chat_response(&resp, "hunyuan-lite").unwrap();
        assert_eq!(c["choices"][0]["message"]["content"], "你好！");
        assert_eq!(c["usage"]["total_tokens"], 7);
        let err: Value = serde_json::from_str(&fixture("error.json")).unwrap();
        let e = from_chat_response(&err, "m").unwrap_err();
        assert_eq!(e["type"], "authentication_error");
        let mut text = String::new();
        let mut last_usage = Value::Null;
        for l in fixture("stream.sse").lines() {
            if let Some(d) = l.strip_prefix("data: ") {
                for c in stream_event(d, "m").unwrap() {
                    text.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap());
                    last_usage = c["usage"].clone();
                }
            }
        }
        assert_eq!(text, "你好！");
        assert_eq!(last_usage["completion_tokens"], 4);
    }

    #[test]
    fn embeddings() {
        let req = json!({"model": "hunyuan-embedding", "input": ["a", "b"]});
        assert_eq!(
            to_embedding_request(&req).unwrap(),
            json!({"InputList": ["a", "b"]})
        );
        assert_eq!(
            to_embedding_request(&json!({"input": "a"})).unwrap(),
            json!({"InputList": ["a"]})
        );
        assert!(to_embedding_request(&json!({"input": [1, 2]})).is_err());
        let resp: Value = serde_json::from_str(&fixture("embedding.json")).unwrap();
        let e = from_embedding_response(&resp, "hunyuan-embedding").unwrap();
        assert_eq!(e["data"][1]["embedding"], json!([0.3, 0.4]));
        assert_eq!(e["data"][1]["index"], 1);
        assert_eq!(e["usage"]["prompt_tokens"], 4);
        let err: Value = serde_json::from_str(&fixture("error.json")).unwrap();
        assert!(from_embedding_response(&err, "m").is_err());
    }

    #[test]
    fn tc3_signature_is_stable() {
        let h = sign(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            "hunyuan.tencentcloudapi.com",
            "ChatCompletions",
            b"{}",
            1_551_113_065,
            "2019-02-25",
        );
        let auth = &h.iter().find(|(k, _)| k == "Authorization").unwrap().1;
        assert!(auth.starts_with("TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/hunyuan/tc3_request, SignedHeaders=content-type;host, Signature="));
        assert_eq!(auth.rsplit('=').next().unwrap().len(), 64);
        assert!(h.contains(&("X-TC-Timestamp".into(), "1551113065".into())));
    }
}
