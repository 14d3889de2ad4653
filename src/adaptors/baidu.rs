//! Baidu ERNIE v1 (channel type 15, 文心千帆 v1) <-> OpenAI. Pure translation of
//! `{base}/rpc/2.0/ai_custom/v1/wenxinworkshop/{chat|embeddings}/{endpoint}` bodies, answers and
//! stream events (`data: {"result", "is_end", "usage"}`). The access token (OAuth client
//! credentials from a key `client_id|client_secret`) is fetched and cached by the relay.
//! Errors come back inside HTTP 200 answers as `error_code`/`error_msg`.

use serde_json::{Value, json};

/// The endpoint of a model (One API's table; other names lowercased), and whether it is an
/// embedding model.
pub fn endpoint(model: &str) -> (&'static str, String) {
    let kind = if model.starts_with("Embedding")
        || model.starts_with("bge-large")
        || model.starts_with("tao-8k")
    {
        "embeddings"
    } else {
        "chat"
    };
    let e = match model {
        "ERNIE-4.0" | "ERNIE-Bot-4" | "ERNIE-4.0-8K" => "completions_pro",
        "ERNIE-Bot" | "ERNIE-3.5-8K" => "completions",
        "ERNIE-Bot-turbo" | "ERNIE-Lite-8K-0922" => "eb-instant",
        "ERNIE-Speed" | "ERNIE-Speed-8K" => "ernie_speed",
        "ERNIE-3.5-8K-0205" => "ernie-3.5-8k-0205",
        "ERNIE-3.5-8K-1222" => "ernie-3.5-8k-1222",
        "ERNIE-Bot-8K" => "ernie_bot_8k",
        "ERNIE-3.5-4K-0205" => "ernie-3.5-4k-0205",
        "ERNIE-Speed-128K" => "ernie-speed-128k",
        "ERNIE-Lite-8K-0308" => "ernie-lite-8k",
        "ERNIE-Tiny-8K" => "ernie-tiny-8k",
        "BLOOMZ-7B" => "bloomz_7b1",
        "Embedding-V1" => "embedding-v1",
        "bge-large-zh" => "bge_large_zh",
        "bge-large-en" => "bge_large_en",
        "tao-8k" => "tao_8k",
        other => return (kind, other.to_lowercase()),
    };
    (kind, e.to_string())
}

/// `{base}/rpc/2.0/ai_custom/v1/wenxinworkshop/{kind}/{endpoint}` (the relay adds
/// `?access_token=`).
pub fn url(base: &str, model: &str) -> String {
    let (kind, e) = endpoint(model);
    format!(
        "{}/rpc/2.0/ai_custom/v1/wenxinworkshop/{kind}/{e}",
        base.trim_end_matches('/')
    )
}

/// `{base}/oauth/2.0/token?grant_type=client_credentials&client_id=..&client_secret=..` for a key
/// `client_id|client_secret`; `None` when the key has another shape.
pub fn token_url(base: &str, key: &str) -> Option<String> {
    let (id, secret) = key.trim().split_once('|')?;
    if id.is_empty() || secret.is_empty() || secret.contains('|') {
        return None;
    }
    let mut u = url::Url::parse(&format!("{}/oauth/2.0/token", base.trim_end_matches('/'))).ok()?;
    u.query_pairs_mut()
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", id)
        .append_pair("client_secret", secret);
    Some(u.into())
}

/// The token endpoint's answer: `Ok((access_token, expires_in))` or the OpenAI error for
/// `{"error", "error_description"}`.
pub fn parse_token(body: &[u8]) -> Result<(String, u64), Value> {
    super::parse_oauth_token(body, "Baidu")
}

/// An OpenAI chat request as an ERNIE chat body: system messages -> `system`, the others as
/// messages; `temperature`, `top_p`, `penalty_score` (given, else a `frequency_penalty` in
/// ERNIE's range 1..=2), `max_tokens` -> `max_output_tokens`, `user` -> `user_id`.
pub fn to_chat_request(req: &Value, stream: bool) -> Result<Value, String> {
    let messages = super::messages_of(req)?;
    let mut system = Vec::new();
    let mut out_messages = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let text = m.get("content").map(super::text_of).unwrap_or_default();
        if role == "system" {
            system.push(text);
        } else {
            out_messages.push(json!({"role": role, "content": text}));
        }
    }
    let mut out = json!({"messages": out_messages});
    if stream {
        out["stream"] = json!(true);
    }
    if !system.is_empty() {
        out["system"] = json!(system.join("\n"));
    }
    for k in ["temperature", "top_p"] {
        if let Some(v) = req.get(k).filter(|v| v.is_number()) {
            out[k] = v.clone();
        }
    }
    let penalty = req
        .get("penalty_score")
        .and_then(Value::as_f64)
        .or_else(|| {
            req.get("frequency_penalty")
                .and_then(Value::as_f64)
                .filter(|p| (1.0..=2.0).contains(p))
        });
    if let Some(p) = penalty {
        out["penalty_score"] = json!(p);
    }
    if let Some(m) = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_i64)
        .filter(|m| *m > 0)
    {
        out["max_output_tokens"] = json!(m);
    }
    if let Some(u) = req
        .get("user")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        out["user_id"] = json!(u);
    }
    Ok(out)
}

/// An OpenAI embeddings request as an ERNIE one (`input` is always an array of strings).
pub fn to_embed_request(req: &Value) -> Result<Value, String> {
    let input = match req.get("input") {
        Some(Value::String(s)) => vec![json!(s)],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.clone(),
        _ => return Err("input must be a string or an array of strings".into()),
    };
    Ok(json!({"input": input}))
}

/// `error_code`/`error_msg` as OpenAI's error object (`None` when the body is no error).
pub fn error_of(v: &Value) -> Option<Value> {
    let code = v.get("error_code").filter(|c| !c.is_null())?;
    let msg = v
        .get("error_msg")
        .and_then(Value::as_str)
        .unwrap_or("Baidu error");
    let code_num = code.as_i64().unwrap_or(0);
    // 14, 15: the credentials themselves are refused (auto-disable may act). 110/111 (access
    // token invalid or expired) are not: the relay drops the cached token and fetches another.
    let kind = match code_num {
        14 | 15 => "authentication_error",
        _ => "baidu_error",
    };
    let code = code
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| code.to_string());
    Some(json!({"message": msg, "type": kind, "param": "", "code": code}))
}

/// Whether an error object says the access token is invalid or expired (drop it from the cache).
pub fn is_token_error(e: &Value) -> bool {
    matches!(e.get("code").and_then(Value::as_str), Some("110" | "111"))
}

fn usage(u: Option<&Value>) -> Value {
    let get = |k: &str| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let (p, t) = (get("prompt_tokens"), get("total_tokens"));
    let c = match get("completion_tokens") {
        0 => (t - p).max(0),
        c => c,
    };
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": t.max(p + c)})
}

/// An ERNIE chat answer as an OpenAI chat completion, or the OpenAI error inside it.
pub fn from_chat_response(v: &Value, model: &str) -> Result<Value, Value> {
    if let Some(e) = error_of(v) {
        return Err(e);
    }
    Ok(json!({
        "id": v.get("id").cloned().unwrap_or_default(),
        "object": "chat.completion",
        "created": v.get("created").cloned().unwrap_or_default(),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": v.get("result").cloned().unwrap_or(json!(""))}, "finish_reason": "stop"}],
        "usage": usage(v.get("usage")),
    }))
}

/// An ERNIE embeddings answer as OpenAI's.
pub fn from_embed_response(v: &Value, model: &str) -> Result<Value, Value> {
    if let Some(e) = error_of(v) {
        return Err(e);
    }
    let data: Vec<Value> = v
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, d)| {
            json!({"object": "embedding", "index": d.get("index").and_then(Value::as_i64).unwrap_or(i as i64),
                "embedding": d.get("embedding").cloned().unwrap_or(json!([]))})
        })
        .collect();
    let u = usage(v.get("usage"));
    Ok(json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": u["prompt_tokens"], "total_tokens": u["total_tokens"]}}))
}

/// One stream event as an OpenAI chunk; the event's usage (cumulative) comes back apart so the
/// relay bills it once.
pub fn stream_event(data: &str, model: &str) -> Result<(Vec<Value>, Option<Value>), Value> {
    let Ok(ev) = serde_json::from_str::<Value>(data) else {
        return Ok((vec![], None));
    };
    if let Some(e) = error_of(&ev) {
        return Err(e);
    }
    let end = ev.get("is_end").and_then(Value::as_bool).unwrap_or(false);
    let chunk = json!({
        "id": ev.get("id").cloned().unwrap_or_default(),
        "object": "chat.completion.chunk",
        "created": ev.get("created").cloned().unwrap_or_default(),
        "model": model,
        "choices": [{"index": 0, "delta": {"content": ev.get("result").cloned().unwrap_or(json!(""))},
            "finish_reason": if end { json!("stop") } else { Value::Null }}],
    });
    let u = ev
        .get("usage")
        .filter(|u| u.get("total_tokens").and_then(Value::as_i64).unwrap_or(0) > 0)
        .map(|u| usage(Some(u)));
    Ok((vec![chunk], u))
}

/// A non-2xx answer (or an error body where a stream was expected) as OpenAI's error object.
pub fn map_error(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    error_of(&v).unwrap_or_else(|| crate::relay::openai::openai_error(status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/baidu/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn endpoints_follow_one_api() {
        assert_eq!(
            url("https://aip.baidubce.com/", "ERNIE-4.0-8K"),
            "https://aip.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions_pro"
        );
        assert_eq!(endpoint("ERNIE-3.5-8K").1, "completions");
        assert_eq!(endpoint("ERNIE-Speed-8K").1, "ernie_speed");
        assert_eq!(endpoint("ERNIE-Lite-8K-0308").1, "ernie-lite-8k");
        assert_eq!(
            endpoint("Embedding-V1"),
            ("embeddings", "embedding-v1".into())
        );
        assert_eq!(
            endpoint("bge-large-zh"),
            ("embeddings", "bge_large_zh".into())
        );
        assert_eq!(
            endpoint("ERNIE-Custom-X"),
            ("chat", "ernie-custom-x".into())
        );
        assert_eq!(
            token_url("https://aip.baidubce.com", "id-1|sec ret").unwrap(),
            "https://aip.baidubce.com/oauth/2.0/token?grant_type=client_credentials&client_id=id-1&client_secret=sec+ret"
        );
        assert!(token_url("x", "no-bar").is_none());
        assert_eq!(
            parse_token(br#"{"access_token":"24.abc","expires_in":2592000}"#).unwrap(),
            ("24.abc".into(), 2_592_000)
        );
        let e =
            parse_token(br#"{"error":"invalid_client","error_description":"unknown client id"}"#)
                .unwrap_err();
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("authentication_error"), Some("invalid_client"))
        );
    }

    #[test]
    fn request_translation() {
        let req = json!({"model": "ERNIE-3.5-8K", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "你好"}]}],
            "temperature": 0.3, "top_p": 0.8, "frequency_penalty": 1.2, "max_tokens": 64,
            "user": "u-1"});
        let out = to_chat_request(&req, true).unwrap();
        assert_eq!(
            out,
            json!({"messages": [{"role": "user", "content": "你好"}], "stream": true,
                "system": "Be brief.", "temperature": 0.3, "top_p": 0.8, "penalty_score": 1.2,
                "max_output_tokens": 64, "user_id": "u-1"})
        );
        let plain = to_chat_request(
            &json!({"messages": [{"role": "user", "content": "x"}], "frequency_penalty": 0.5}),
            false,
        )
        .unwrap();
        assert_eq!(
            plain,
            json!({"messages": [{"role": "user", "content": "x"}]})
        );
        assert_eq!(
            to_embed_request(&json!({"input": "a"})).unwrap(),
            json!({"input": ["a"]})
        );
        assert!(to_embed_request(&json!({"input": [1, 2]})).is_err());
    }

    #[test]
    fn responses_streams_and_errors() {
        let v: Value = serde_json::from_str(&fixture("response.json")).unwrap();
        let c = from_chat_response(&v, "ERNIE-3.5-8K").unwrap();
        assert_eq!(
            c["choices"][0]["message"]["content"],
            "你好！有什么可以帮你的？"
        );
        assert_eq!(
            c["usage"],
            json!({"prompt_tokens": 2, "completion_tokens": 8, "total_tokens": 10})
        );
        let err: Value = serde_json::from_str(&fixture("error.json")).unwrap();
        let e = from_chat_response(&err, "m").unwrap_err();
        assert_eq!(e["code"], "110");
        assert!(is_token_error(&e));
        assert_eq!(
            e["type"], "baidu_error",
            "a stale token must not disable the channel"
        );
        let refused = error_of(&json!({"error_code": 14, "error_msg": "IAM Certification failed"}));
        assert_eq!(refused.unwrap()["type"], "authentication_error");
        assert_eq!(
            map_error(200, fixture("error.json").as_bytes())["code"],
            "110"
        );
        let mut text = String::new();
        let mut last = None;
        let mut finish = Value::Null;
        for l in fixture("stream.sse").lines() {
            if let Some(d) = l.strip_prefix("data: ") {
                let (chunks, u) = stream_event(d, "m").unwrap();
                for c in chunks {
                    text.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap());
                    finish = c["choices"][0]["finish_reason"].clone();
                }
                last = u.or(last);
            }
        }
        assert_eq!(text, "你好！有什么可以帮你的？");
        assert_eq!(finish, "stop");
        assert_eq!(
            last.unwrap(),
            json!({"prompt_tokens": 2, "completion_tokens": 8, "total_tokens": 10})
        );
        let emb: Value = serde_json::from_str(&fixture("embedding.json")).unwrap();
        let o = from_embed_response(&emb, "Embedding-V1").unwrap();
        assert_eq!(o["data"][1]["embedding"], json!([0.3, 0.4]));
        assert_eq!(o["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}));
    }
}
