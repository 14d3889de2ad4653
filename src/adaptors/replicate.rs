//! Replicate (channel type 46) <-> OpenAI chat. Pure: the prediction body
//! (`POST {base}/v1/models/{owner}/{name}/predictions`), the prediction's state (`status`,
//! `urls.get`, `urls.stream`), its `output` (an array of strings, joined) and the events of
//! `urls.stream` (`event: output` with raw text, `event: done`, `event: error`). The relay
//! creates the prediction, polls it and opens the stream.

use serde_json::{Value, json};

/// The default base URL.
pub const DEFAULT_BASE: &str = "https://api.replicate.com";

/// `{base}/v1/models/{model}/predictions`; a base given as One API's default
/// (`https://api.replicate.com/v1/models/`) works too.
pub fn url(base: &str, model: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/v1/models").unwrap_or(base);
    let base = base.strip_suffix("/v1").unwrap_or(base);
    format!("{base}/v1/models/{model}/predictions")
}

/// An OpenAI chat request as a prediction body, like One API's: the messages as a `prompt` of
/// `role: content` lines (system messages go to `system_prompt`), `max_tokens` (default 500),
/// `temperature`, `top_p` (default 1), `presence_penalty`, `frequency_penalty` (default 0);
/// `stream: true` when the client streams.
pub fn to_prediction(req: &Value, stream: bool) -> Result<Value, String> {
    let messages = super::messages_of(req)?;
    let mut prompt = String::new();
    let mut system = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let text = m.get("content").map(super::text_of).unwrap_or_default();
        if role == "system" {
            system.push(text);
        } else {
            prompt.push_str(&format!("{role}: {text}\n"));
        }
    }
    let num = |k: &str, d: f64| req.get(k).and_then(Value::as_f64).unwrap_or(d);
    let max_tokens = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_i64)
        .filter(|m| *m > 0)
        .unwrap_or(500);
    let mut input = json!({
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": num("temperature", 1.0),
        "top_p": num("top_p", 1.0),
        "presence_penalty": num("presence_penalty", 0.0),
        "frequency_penalty": num("frequency_penalty", 0.0),
    });
    if !system.is_empty() {
        input["system_prompt"] = json!(system.join("\n"));
    }
    let mut out = json!({"input": input});
    if stream {
        out["stream"] = json!(true);
    }
    Ok(out)
}

/// The aspect ratio (of those image models take) nearest to an OpenAI `size` (`WxH`).
pub fn aspect_ratio(size: &str) -> &'static str {
    const RATIOS: [(&str, f64); 9] = [
        ("1:1", 1.0),
        ("16:9", 16.0 / 9.0),
        ("9:16", 9.0 / 16.0),
        ("3:2", 1.5),
        ("2:3", 2.0 / 3.0),
        ("4:5", 0.8),
        ("5:4", 1.25),
        ("21:9", 21.0 / 9.0),
        ("9:21", 9.0 / 21.0),
    ];
    let want = size
        .split_once('x')
        .and_then(|(w, h)| Some(w.parse::<f64>().ok()? / h.parse::<f64>().ok()?))
        .filter(|r| r.is_finite() && *r > 0.0)
        .unwrap_or(1.0);
    RATIOS
        .iter()
        .min_by(|a, b| {
            (a.1.ln() - want.ln())
                .abs()
                .total_cmp(&(b.1.ln() - want.ln()).abs())
        })
        .map(|r| r.0)
        .unwrap_or("1:1")
}

/// An OpenAI image request as a prediction body for an image model (flux, ...): `prompt`,
/// `aspect_ratio` from `size`, `num_outputs` when `n` > 1.
pub fn to_image_prediction(req: &Value) -> Result<Value, String> {
    let prompt = req
        .get("prompt")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or("prompt is required")?;
    let size = req
        .get("size")
        .and_then(Value::as_str)
        .unwrap_or("1024x1024");
    let mut input = json!({"prompt": prompt, "aspect_ratio": aspect_ratio(size)});
    if let Some(n) = req.get("n").and_then(Value::as_i64).filter(|n| *n > 1) {
        input["num_outputs"] = json!(n);
    }
    Ok(json!({"input": input}))
}

/// The image URLs (or data URIs) of a finished image prediction.
pub fn image_outputs(pred: &Value) -> Result<Vec<String>, Value> {
    if status(pred) != "succeeded" {
        return Err(failure(pred));
    }
    let out: Vec<String> = match pred.get("output") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => vec![],
    };
    if out.is_empty() {
        return Err(
            json!({"message": "the prediction has no output", "type": "replicate_error",
            "param": "", "code": "bad_response"}),
        );
    }
    Ok(out)
}

/// OpenAI's image answer for items (`{"url"}` or `{"b64_json"}` each).
pub fn image_response(items: Vec<Value>, created: i64) -> Value {
    json!({"created": created, "data": items})
}

/// A prediction's `status` (`starting`, `processing`, `succeeded`, `failed`, `canceled`).
pub fn status(pred: &Value) -> &str {
    pred.get("status").and_then(Value::as_str).unwrap_or("")
}

/// Whether the prediction is over.
pub fn is_done(pred: &Value) -> bool {
    matches!(status(pred), "succeeded" | "failed" | "canceled")
}

/// `urls.get` (to poll) of a prediction.
pub fn get_url(pred: &Value) -> Option<&str> {
    pred.pointer("/urls/get").and_then(Value::as_str)
}

/// `urls.stream` (server-sent events) of a prediction.
pub fn stream_url(pred: &Value) -> Option<&str> {
    pred.pointer("/urls/stream").and_then(Value::as_str)
}

/// The OpenAI error of a failed or canceled prediction.
pub fn failure(pred: &Value) -> Value {
    let msg = match pred.get("error") {
        Some(Value::String(s)) => s.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => format!("prediction {}", status(pred)),
    };
    json!({"message": msg, "type": "replicate_error", "param": "", "code": status(pred)})
}

/// A finished prediction as an OpenAI chat completion: `output` (strings, or one string)
/// joined; usage from `metrics.input_token_count`/`output_token_count` when Replicate reports
/// them (else the relay counts).
pub fn from_prediction(pred: &Value, model: &str, created: i64) -> Result<Value, Value> {
    if status(pred) != "succeeded" {
        return Err(failure(pred));
    }
    let text = match pred.get("output") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    };
    let mut out = json!({
        "id": format!("chatcmpl-{}", pred.get("id").and_then(Value::as_str).unwrap_or("")),
        "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"}],
    });
    let m = |k: &str| {
        pred.pointer(&format!("/metrics/{k}"))
            .and_then(Value::as_i64)
    };
    if let (Some(p), Some(c)) = (m("input_token_count"), m("output_token_count")) {
        out["usage"] = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
    }
    Ok(out)
}

/// One event of `urls.stream` as OpenAI chunks (`done` ends with `finish_reason: stop`).
pub fn stream_event(
    event: &str,
    data: &str,
    model: &str,
    id: &str,
    created: i64,
) -> Result<Vec<Value>, Value> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    match event {
        "output" => Ok(vec![chunk(json!({"content": data}), Value::Null)]),
        "done" => {
            let reason = serde_json::from_str::<Value>(data)
                .ok()
                .and_then(|v| v.get("reason").and_then(Value::as_str).map(String::from));
            match reason.as_deref() {
                Some(r @ ("error" | "canceled")) => {
                    Err(json!({"message": format!("prediction {r}"),
                    "type": "replicate_error", "param": "", "code": "prediction_failed"}))
                }
                _ => Ok(vec![chunk(json!({}), json!("stop"))]),
            }
        }
        "error" => {
            let msg = serde_json::from_str::<Value>(data)
                .ok()
                .and_then(|v| v.get("detail").and_then(Value::as_str).map(String::from))
                .unwrap_or_else(|| data.to_string());
            Err(
                json!({"message": msg, "type": "replicate_error", "param": "", "code": "prediction_failed"}),
            )
        }
        _ => Ok(vec![]),
    }
}

/// Replicate's error body (`{"title", "detail", "status"}`) as OpenAI's error object.
pub fn map_error(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match v.get("detail").and_then(Value::as_str) {
        Some(d) => {
            let kind = if status == 401 {
                "authentication_error"
            } else {
                "replicate_error"
            };
            json!({"message": d, "type": kind, "param": "",
                "code": v.get("title").and_then(Value::as_str).unwrap_or("replicate_error")})
        }
        None => crate::relay::openai::openai_error(status, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/replicate/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn urls_and_bodies() {
        let m = "meta/meta-llama-3-8b-instruct";
        let want = format!("https://api.replicate.com/v1/models/{m}/predictions");
        assert_eq!(url("https://api.replicate.com", m), want);
        assert_eq!(url("https://api.replicate.com/v1/models/", m), want);
        let req = json!({"messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Joke?"}], "max_tokens": 64, "temperature": 0.2});
        assert_eq!(
            to_prediction(&req, true).unwrap(),
            json!({"input": {"prompt": "user: Hi\nassistant: Hello\nuser: Joke?\n",
                "system_prompt": "Be brief.", "max_tokens": 64, "temperature": 0.2,
                "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0},
                "stream": true})
        );
        let plain = to_prediction(
            &json!({"messages": [{"role": "user", "content": "x"}]}),
            false,
        )
        .unwrap();
        assert_eq!(plain["input"]["max_tokens"], 500);
        assert!(plain.get("stream").is_none());
    }

    #[test]
    fn images() {
        assert_eq!(aspect_ratio("1024x1024"), "1:1");
        assert_eq!(aspect_ratio("1792x1024"), "16:9");
        assert_eq!(aspect_ratio("1024x1792"), "9:16");
        assert_eq!(aspect_ratio("nonsense"), "1:1");
        assert_eq!(
            to_image_prediction(&json!({"prompt": "a cat", "size": "1536x1024", "n": 2})).unwrap(),
            json!({"input": {"prompt": "a cat", "aspect_ratio": "3:2", "num_outputs": 2}})
        );
        assert!(to_image_prediction(&json!({"prompt": ""})).is_err());
        let done = json!({"status": "succeeded", "output": ["https://replicate.delivery/a.webp"]});
        assert_eq!(
            image_outputs(&done).unwrap(),
            vec!["https://replicate.delivery/a.webp"]
        );
        let one = json!({"status": "succeeded", "output": "https://replicate.delivery/b.png"});
        assert_eq!(image_outputs(&one).unwrap().len(), 1);
        assert!(image_outputs(&json!({"status": "succeeded", "output": null})).is_err());
        assert!(image_outputs(&json!({"status": "failed", "error": "nsfw"})).is_err());
    }

    #[test]
    fn predictions_and_events() {
        let starting: Value = serde_json::from_str(&fixture("starting.json")).unwrap();
        assert!(!is_done(&starting));
        assert!(get_url(&starting).unwrap().ends_with("/v1/predictions/p1"));
        assert!(stream_url(&starting).is_some());
        let done: Value = serde_json::from_str(&fixture("succeeded.json")).unwrap();
        let out = from_prediction(&done, "meta/meta-llama-3-8b-instruct", 1).unwrap();
        assert_eq!(
            out["choices"][0]["message"]["content"],
            "Why did the chicken cross?"
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19})
        );
        let failed: Value = serde_json::from_str(&fixture("failed.json")).unwrap();
        let e = from_prediction(&failed, "m", 1).unwrap_err();
        assert_eq!(e["message"], "CUDA out of memory");
        let mut text = String::new();
        let mut finish = Value::Null;
        let mut ev = String::new();
        for line in fixture("stream.sse").lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                ev = e.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                for c in stream_event(&ev, d, "m", "id", 1).unwrap() {
                    if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
                        text.push_str(t);
                    }
                    finish = c["choices"][0]["finish_reason"].clone();
                }
            }
        }
        assert_eq!(text, "Why did the chicken cross?");
        assert_eq!(finish, "stop");
        assert!(stream_event("error", r#"{"detail":"boom"}"#, "m", "i", 1).is_err());
        let e = map_error(
            401,
            br#"{"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401}"#,
        );
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("authentication_error"), Some("Unauthenticated"))
        );
    }
}
