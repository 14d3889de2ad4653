//! Google PaLM (channel type 11), One API's `palm` adaptor: `POST
//! {base}/v1beta2/models/{model}:generateMessage` with `x-goog-api-key`. The system message
//! becomes `prompt.context`, the others `prompt.messages` (`author` "0" for the user, "1" for
//! the model, as One API); the answer is `candidates[].content`. PaLM reports no usage and does
//! not stream: the relay counts both sides and a stream request gets the whole answer as one
//! chunk (One API does the same). Pure translation.

use serde_json::{Map, Value, json};

use super::text_of;

/// PaLM's model id for a requested model: One API's `PaLM-2` is `chat-bison-001`; others as
/// given.
pub fn model_id(model: &str) -> &str {
    match model {
        "PaLM-2" => "chat-bison-001",
        other => other,
    }
}

/// An OpenAI chat request as a `generateMessage` body.
pub fn to_message_request(req: &Value) -> Result<Value, String> {
    let messages = super::messages_of(req)?;
    let mut context = Vec::new();
    let mut out = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let text = text_of(m.get("content").unwrap_or(&Value::Null));
        match role {
            "system" => context.push(text),
            "user" => out.push(json!({"author": "0", "content": text})),
            _ => out.push(json!({"author": "1", "content": text})),
        }
    }
    let mut prompt = Map::new();
    if !context.is_empty() {
        prompt.insert("context".into(), json!(context.join("\n")));
    }
    prompt.insert("messages".into(), Value::Array(out));
    let mut body = json!({ "prompt": prompt });
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("n", "candidateCount"),
    ] {
        if let Some(v) = req.get(from).filter(|v| v.is_number()) {
            body[to] = v.clone();
        }
    }
    Ok(body)
}

/// A `generateMessage` answer as an OpenAI chat completion (no usage: the relay counts), or the
/// OpenAI error when PaLM answered with an error or no candidate (a filtered prompt).
pub fn from_message_response(
    resp: &Value,
    model: &str,
    id: &str,
    created: i64,
) -> Result<Value, Value> {
    if let Some(e) = resp.get("error") {
        return Err(error_object(e));
    }
    let candidates = resp
        .get("candidates")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            let reason = resp
                .pointer("/filters/0/reason")
                .and_then(Value::as_str)
                .unwrap_or("no candidates");
            json!({"message": format!("PaLM returned no answer: {reason}"),
                   "type": "upstream_error", "param": "", "code": "no_candidates"})
        })?;
    let choices: Vec<Value> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"index": i, "message": {"role": "assistant",
                "content": c.get("content").and_then(Value::as_str).unwrap_or("")},
                "finish_reason": "stop"})
        })
        .collect();
    Ok(
        json!({"id": id, "object": "chat.completion", "created": created, "model": model,
              "choices": choices}),
    )
}

/// The whole answer of a stream request as OpenAI chunks: the first candidate, then stop.
pub fn stream_chunks(
    resp: &Value,
    model: &str,
    id: &str,
    created: i64,
) -> Result<Vec<Value>, Value> {
    let full = from_message_response(resp, model, id, created)?;
    let text = full
        .pointer("/choices/0/message/content")
        .cloned()
        .unwrap_or(json!(""));
    Ok(vec![
        json!({"id": id, "object": "chat.completion.chunk", "created": created,
        "model": model, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
        "finish_reason": "stop"}]}),
    ])
}

fn error_object(e: &Value) -> Value {
    let status = e
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("upstream_error");
    json!({"message": e.get("message").cloned().unwrap_or(json!("upstream error")),
           "type": status.to_lowercase(), "param": "", "code": status})
}

/// PaLM's error (`{"error":{"code","message","status"}}`, Google's shape) as OpenAI's object.
pub fn map_error(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match v.get("error").filter(|e| e.is_object()) {
        Some(e) => error_object(e),
        None => json!({"message": format!("bad response status code {status}"),
            "type": "upstream_error", "param": "", "code": status.to_string()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/palm/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn request_response_stream_and_errors() {
        let req = json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "Name a color"}]}],
            "temperature": 0.2, "n": 1});
        let out = to_message_request(&req).unwrap();
        assert_eq!(out["prompt"]["context"], "Be brief.");
        assert_eq!(
            out["prompt"]["messages"],
            json!([{"author": "0", "content": "Hi"}, {"author": "1", "content": "Hello"},
                   {"author": "0", "content": "Name a color"}])
        );
        assert_eq!(
            (out["temperature"].as_f64(), out["candidateCount"].as_i64()),
            (Some(0.2), Some(1))
        );
        assert_eq!(model_id("PaLM-2"), "chat-bison-001");

        let resp: Value = serde_json::from_str(&fixture("response.json")).unwrap();
        let c = from_message_response(&resp, "PaLM-2", "x", 1).unwrap();
        assert_eq!(c["choices"][0]["message"]["content"], "Blue.");
        assert!(c.get("usage").is_none());
        let chunks = stream_chunks(&resp, "PaLM-2", "x", 1).unwrap();
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "Blue.");
        assert_eq!(chunks[0]["choices"][0]["finish_reason"], "stop");

        let filtered = json!({"filters": [{"reason": "OTHER"}], "messages": []});
        let e = from_message_response(&filtered, "m", "x", 1).unwrap_err();
        assert!(e["message"].as_str().unwrap().contains("OTHER"));
        let e = map_error(400, fixture("error.json").as_bytes());
        assert_eq!(e["code"], "INVALID_ARGUMENT");
        assert!(e["message"].as_str().unwrap().contains("API key not valid"));
    }
}
