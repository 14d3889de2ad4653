//! Zhipu's v3 API for the `chatglm_*` models (channel type 16), One API's `zhipu` adaptor:
//! `POST {base}/api/paas/v3/model-api/{model}/invoke` (or `/sse-invoke` to stream), with a JWT
//! signed from the key `id.secret` in `Authorization`. The answer is `data.choices[].content`
//! with `data.usage`; the stream sends `event: add` with raw text in `data:` and ends with
//! `event: finish` whose `meta:` line carries the usage. (`glm-*` models use the v4 API, which is
//! OpenAI's format.) Pure: the JWT takes the time as an argument.

use base64::Engine;
use serde_json::{Value, json};

use super::bedrock::hmac;
use super::text_of;

/// Whether a model goes to the v3 API (One API's `chatglm_*` names).
pub fn is_v3(model: &str) -> bool {
    model.starts_with("chatglm_")
}

/// The HS256 JWT Zhipu expects (One API's `GetToken`): header `{"alg":"HS256","sign_type":"SIGN"}`,
/// payload `api_key`, `exp` and `timestamp` in milliseconds; valid `ttl_ms`. `None` when the
/// key is not `id.secret`.
pub fn jwt(key: &str, now_ms: i64, ttl_ms: i64) -> Option<String> {
    let (id, secret) = key.trim().split_once('.')?;
    if id.is_empty() || secret.is_empty() || secret.contains('.') {
        return None;
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"alg":"HS256","sign_type":"SIGN"}"#);
    let payload =
        b64.encode(json!({"api_key": id, "exp": now_ms + ttl_ms, "timestamp": now_ms}).to_string());
    let signing_input = format!("{header}.{payload}");
    let sig = b64.encode(hmac(secret.as_bytes(), signing_input.as_bytes()));
    Some(format!("{signing_input}.{sig}"))
}

/// The v3 URL for a model.
pub fn url(base: &str, model: &str, stream: bool) -> String {
    let method = if stream { "sse-invoke" } else { "invoke" };
    format!("{base}/api/paas/v3/model-api/{model}/{method}")
}

/// An OpenAI chat request as a v3 body (`temperature` and `top_p` clamped to [0, 1] as One API).
pub fn to_invoke_request(req: &Value) -> Result<Value, String> {
    let messages = super::messages_of(req)?;
    let prompt: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({"role": m.get("role").and_then(Value::as_str).unwrap_or("user"),
                   "content": text_of(m.get("content").unwrap_or(&Value::Null))})
        })
        .collect();
    let mut out = json!({"prompt": prompt});
    for k in ["temperature", "top_p"] {
        if let Some(v) = req.get(k).and_then(Value::as_f64) {
            out[k] = json!(v.clamp(0.0, 1.0));
        }
    }
    Ok(out)
}

fn usage(u: &Value) -> Value {
    let get = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
    json!({"prompt_tokens": get("prompt_tokens"), "completion_tokens": get("completion_tokens"),
           "total_tokens": get("total_tokens")})
}

/// A v3 answer as an OpenAI chat completion, or the error when `success` is false.
pub fn from_invoke_response(resp: &Value, model: &str, created: i64) -> Result<Value, Value> {
    if resp.get("success") != Some(&Value::Bool(true)) {
        return Err(error_object(resp));
    }
    let data = resp.get("data").unwrap_or(&Value::Null);
    let choices: Vec<Value> = data
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            // v3 answers are JSON strings in quotes; One API trims them.
            let content = c.get("content").and_then(Value::as_str).unwrap_or("");
            json!({"index": i, "message": {"role": c.get("role").and_then(Value::as_str).unwrap_or("assistant"),
                "content": content.trim_matches('"')}, "finish_reason": "stop"})
        })
        .collect();
    Ok(json!({
        "id": data.get("task_id").cloned().unwrap_or(json!("")),
        "object": "chat.completion", "created": created, "model": model,
        "choices": choices, "usage": usage(data.get("usage").unwrap_or(&Value::Null)),
    }))
}

/// One v3 stream event (`add`, `finish`, `error`, `interrupted`; `meta` is the `meta:` line) as
/// OpenAI chunks; the usage rides on the finish chunk.
pub fn stream_event(
    event: &str,
    data: &str,
    model: &str,
    created: i64,
) -> Result<Vec<Value>, Value> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "", "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    match event {
        "add" | "" => Ok(vec![chunk(json!({"content": data}), Value::Null)]),
        "meta" => {
            let meta: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            let mut c = chunk(json!({}), json!("stop"));
            c["id"] = meta.get("task_id").cloned().unwrap_or(json!(""));
            if let Some(u) = meta.get("usage") {
                c["usage"] = usage(u);
            }
            Ok(vec![c])
        }
        "error" | "interrupted" => {
            let msg = if data.is_empty() {
                "zhipu stream error"
            } else {
                data
            };
            Err(json!({"message": msg, "type": "zhipu_error", "param": "", "code": event}))
        }
        // `finish` carries the last text (usually empty); its usage came in `meta`.
        _ if data.is_empty() => Ok(vec![]),
        _ => Ok(vec![chunk(json!({"content": data}), Value::Null)]),
    }
}

fn error_object(v: &Value) -> Value {
    json!({"message": v.get("msg").and_then(Value::as_str).unwrap_or("zhipu error"),
           "type": "zhipu_error", "param": "", "code": v.get("code").cloned().unwrap_or(Value::Null)})
}

/// An error body (status not 2xx) as OpenAI's error object.
pub fn map_error(status: u16, body: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("msg").is_some() => error_object(&v),
        _ => crate::relay::openai::openai_error(status, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/zhipu/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn jwt_is_hs256_over_one_apis_claims() {
        let t = jwt("myid.mysecret", 1_700_000_000_000, 86_400_000).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "sign_type": "SIGN"}));
        let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            json!({"api_key": "myid", "exp": 1_700_086_400_000i64, "timestamp": 1_700_000_000_000i64})
        );
        let sig = hmac(b"mysecret", format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(b64.decode(parts[2]).unwrap(), sig);
        assert!(jwt("no-dot", 0, 1).is_none());
    }

    #[test]
    fn request_response_stream_and_errors() {
        assert!(is_v3("chatglm_turbo") && !is_v3("glm-4"));
        assert_eq!(
            url("https://open.bigmodel.cn", "chatglm_std", true),
            "https://open.bigmodel.cn/api/paas/v3/model-api/chatglm_std/sse-invoke"
        );
        let req = json!({"messages": [{"role": "user", "content": "你好"}], "temperature": 1.5});
        let out = to_invoke_request(&req).unwrap();
        assert_eq!(
            out,
            json!({"prompt": [{"role": "user", "content": "你好"}], "temperature": 1.0})
        );

        let resp: Value = serde_json::from_str(&fixture("response.json")).unwrap();
        let c = from_invoke_response(&resp, "chatglm_turbo", 1).unwrap();
        assert_eq!(
            c["choices"][0]["message"]["content"],
            "你好！有什么可以帮你？"
        );
        assert_eq!(c["usage"]["total_tokens"], 14);
        let e = from_invoke_response(
            &json!({"code": 1002, "msg": "Authorization Token非法", "success": false}),
            "m",
            1,
        )
        .unwrap_err();
        assert_eq!(e["code"], 1002);

        let mut d = crate::relay::sse::SseDecoder::default();
        let mut events = d.feed(fixture("stream.sse").as_bytes());
        events.extend(d.finish());
        let mut text = String::new();
        let mut usage = Value::Null;
        for (ev, data) in events {
            for c in stream_event(&ev, &data, "chatglm_turbo", 1).unwrap() {
                if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
                    text.push_str(t);
                }
                if c.get("usage").is_some() {
                    usage = c["usage"].clone();
                }
            }
        }
        assert_eq!(text, "你好！有什么可以帮你？");
        assert_eq!(usage["completion_tokens"], 8);
        assert!(stream_event("error", "bad", "m", 1).is_err());
    }
}
