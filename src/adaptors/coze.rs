//! Coze (channel type 34), One API's mapping onto the v2 chat API: the model `bot-<id>` is the
//! bot, `POST {base}/open_api/v2/chat` with `Authorization: Bearer`, the last message as
//! `query` and the earlier ones as `chat_history`; answers are the `answer` messages. Coze reports
//! no token usage, so the relay counts both sides.
//!
//! Coze's v3 chat API (beyond One API; a channel with `config.api_version` = `"v3"`):
//! `POST {base}/v3/chat` with `bot_id`, `user_id` and the conversation as
//! `additional_messages`; always streamed upstream (a v3 answer without streaming must be
//! polled), a non-stream request gets the events gathered into one answer. The
//! `conversation.chat.completed` event carries the usage. Pure translation.

use serde_json::{Value, json};

/// An OpenAI chat request as a Coze v2 chat request; `user` is the channel's `config.user_id`.
pub fn to_chat_request(
    req: &Value,
    model: &str,
    user: &str,
    stream: bool,
) -> Result<Value, String> {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("messages must be a non-empty array")?;
    let (last, history) = messages.split_last().ok_or("messages must not be empty")?;
    let history: Vec<Value> = history
        .iter()
        .map(|m| {
            json!({
                "role": m.get("role").and_then(Value::as_str).unwrap_or("user"),
                "content": super::text_of(m.get("content").unwrap_or(&Value::Null)),
                "content_type": "text",
            })
        })
        .collect();
    Ok(json!({
        "bot_id": model.strip_prefix("bot-").unwrap_or(model),
        "user": if user.is_empty() { "tollgate" } else { user },
        "query": super::text_of(last.get("content").unwrap_or(&Value::Null)),
        "chat_history": history,
        "stream": stream,
    }))
}

/// A Coze v2 answer as an OpenAI chat completion (no usage: the relay counts).
pub fn from_chat_response(
    resp: &Value,
    model: &str,
    id: &str,
    created: i64,
) -> Result<Value, Value> {
    if resp.get("code").and_then(Value::as_i64).unwrap_or(0) != 0 {
        return Err(map_error(200, resp.to_string().as_bytes()));
    }
    let text: String = resp
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("type").and_then(Value::as_str) == Some("answer"))
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .collect();
    Ok(json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }))
}

/// One Coze stream event as OpenAI chunks.
pub fn stream_event(data: &str, model: &str, id: &str, created: i64) -> Result<Vec<Value>, Value> {
    let Ok(ev) = serde_json::from_str::<Value>(data) else {
        return Ok(vec![]);
    };
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    match ev.get("event").and_then(Value::as_str) {
        Some("message")
            if ev.pointer("/message/type").and_then(Value::as_str) == Some("answer") =>
        {
            let t = ev
                .pointer("/message/content")
                .and_then(Value::as_str)
                .unwrap_or("");
            Ok(vec![chunk(json!({"content": t}), Value::Null)])
        }
        Some("done") => Ok(vec![chunk(json!({}), json!("stop"))]),
        Some("error") => Err(map_error(200, data.as_bytes())),
        _ => Ok(vec![]),
    }
}

/// An OpenAI chat request as a Coze v3 chat request (always `stream: true`; system messages are
/// sent as user messages, v3 knows only `user` and `assistant`).
pub fn to_v3_request(req: &Value, model: &str, user: &str) -> Result<Value, String> {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("messages must be a non-empty array")?;
    let additional: Vec<Value> = messages
        .iter()
        .map(|m| {
            let role = match m.get("role").and_then(Value::as_str) {
                Some("assistant") => "assistant",
                _ => "user",
            };
            json!({"role": role, "content": super::text_of(m.get("content").unwrap_or(&Value::Null)),
                   "content_type": "text"})
        })
        .collect();
    Ok(json!({
        "bot_id": model.strip_prefix("bot-").unwrap_or(model),
        "user_id": if user.is_empty() { "tollgate" } else { user },
        "additional_messages": additional,
        "stream": true,
        "auto_save_history": false,
    }))
}

fn v3_usage(u: &Value) -> Value {
    let get = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
    json!({"prompt_tokens": get("input_count"), "completion_tokens": get("output_count"),
           "total_tokens": get("token_count")})
}

/// Translates v3 stream events into OpenAI chunks: answer deltas as they come, and a stop chunk
/// with the usage at `conversation.chat.completed`.
#[derive(Debug)]
pub struct V3Stream {
    model: String,
    id: String,
    created: i64,
}

impl V3Stream {
    pub fn new(model: &str, id: &str, created: i64) -> Self {
        V3Stream {
            model: model.to_string(),
            id: id.to_string(),
            created,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    /// One event (`event:` name and `data:`).
    pub fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<Value>, Value> {
        let ev: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        match event {
            "conversation.message.delta"
                if ev.get("type").and_then(Value::as_str) == Some("answer") =>
            {
                let t = ev.get("content").and_then(Value::as_str).unwrap_or("");
                Ok(vec![self.chunk(json!({"content": t}), Value::Null)])
            }
            "conversation.chat.completed" => {
                let mut c = self.chunk(json!({}), json!("stop"));
                if let Some(u) = ev.get("usage") {
                    c["usage"] = v3_usage(u);
                }
                Ok(vec![c])
            }
            "conversation.chat.failed" => Err(map_error(
                200,
                ev.get("last_error").unwrap_or(&ev).to_string().as_bytes(),
            )),
            "error" => Err(map_error(200, data.as_bytes())),
            _ => Ok(vec![]),
        }
    }
}

/// A whole v3 event stream (a non-stream request) as one OpenAI chat completion.
pub fn from_v3_events(
    events: &[(String, String)],
    model: &str,
    id: &str,
    created: i64,
) -> Result<Value, Value> {
    let mut s = V3Stream::new(model, id, created);
    let mut text = String::new();
    let mut usage = None;
    for (name, data) in events {
        for c in s.on_event(name, data)? {
            if let Some(t) = c
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
            {
                text.push_str(t);
            }
            if let Some(u) = c.get("usage") {
                usage = Some(u.clone());
            }
        }
    }
    let mut out = json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    });
    if let Some(u) = usage {
        out["usage"] = u;
    }
    Ok(out)
}

/// Coze's error (`{"code", "msg"}`, or `error_information`) as OpenAI's error object.
pub fn map_error(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let msg = v
        .get("msg")
        .or_else(|| v.pointer("/error_information/err_msg"))
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| format!("bad response status code {status}"));
    let code = v
        .get("code")
        .or_else(|| v.pointer("/error_information/code"))
        .map(Value::to_string)
        .unwrap_or_else(|| status.to_string());
    json!({"message": msg, "type": "upstream_error", "param": "", "code": code})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_request_and_events() {
        let req = json!({"messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Weather?"}]});
        let out = to_v3_request(&req, "bot-7342", "u1").unwrap();
        assert_eq!(out["bot_id"], "7342");
        assert_eq!(out["user_id"], "u1");
        assert_eq!(out["stream"], true);
        assert_eq!(
            out["additional_messages"][1],
            json!({"role": "user", "content": "Weather?", "content_type": "text"})
        );
        let mut d = crate::relay::sse::SseDecoder::default();
        let mut events = d.feed(fixture("v3_stream.sse").as_bytes());
        events.extend(d.finish());
        let c = from_v3_events(&events, "bot-7342", "x", 1).unwrap();
        assert_eq!(
            c["choices"][0]["message"]["content"],
            "The weather is sunny."
        );
        assert_eq!(
            c["usage"],
            json!({"prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36})
        );
        let failed = vec![(
            "conversation.chat.failed".to_string(),
            r#"{"status":"failed","last_error":{"code":4011,"msg":"insufficient balance"}}"#
                .to_string(),
        )];
        let e = from_v3_events(&failed, "m", "x", 1).unwrap_err();
        assert_eq!(e["message"], "insufficient balance");
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/coze/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn request_response_and_stream() {
        let req = json!({"messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "assistant", "content": "Hi"},
            {"role": "user", "content": "Weather?"}]});
        let out = to_chat_request(&req, "bot-7342", "u1", true).unwrap();
        assert_eq!(out["bot_id"], "7342");
        assert_eq!(out["user"], "u1");
        assert_eq!(out["query"], "Weather?");
        assert_eq!(out["chat_history"][1]["role"], "assistant");
        assert_eq!(out["stream"], true);
        assert!(to_chat_request(&json!({"messages": []}), "bot-1", "", false).is_err());

        let resp: Value = serde_json::from_str(&fixture("response.json")).unwrap();
        let c = from_chat_response(&resp, "bot-7342", "x", 1).unwrap();
        assert_eq!(
            c["choices"][0]["message"]["content"],
            "The weather is sunny."
        );
        let err = from_chat_response(&json!({"code": 4000, "msg": "bot not found"}), "m", "x", 1);
        assert_eq!(err.unwrap_err()["message"], "bot not found");

        let mut text = String::new();
        let mut finished = false;
        for line in fixture("stream.sse").lines() {
            if let Some(d) = line.strip_prefix("data:") {
                for c in stream_event(d, "bot-7342", "x", 1).unwrap() {
                    if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
                        text.push_str(t);
                    }
                    finished |= c["choices"][0]["finish_reason"] == "stop";
                }
            }
        }
        assert_eq!(text, "The weather is sunny.");
        assert!(finished);
    }
}
