//! The Anthropic front door (`POST /v1/messages`, beyond One API): a client speaking Anthropic's
//! Messages API (Claude Code, the `anthropic` SDKs) is served by any channel. For channels that do
//! not speak Anthropic, the request is turned into OpenAI's format and the answer back into
//! Anthropic's, events included. Pure translation; the relay does the I/O.

use serde_json::{Map, Value, json};

use super::Usage;

fn blocks_of(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(a) => a.clone(),
        _ => vec![],
    }
}

fn text_of_blocks(content: &Value) -> String {
    blocks_of(content)
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Translates an Anthropic Messages request into an OpenAI chat completion request.
pub fn from_messages_request(req: &Value) -> Result<Value, String> {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: field required")?;
    let mut out_msgs = Vec::new();
    if let Some(system) = req.get("system") {
        let text = text_of_blocks(system);
        if !text.is_empty() {
            out_msgs.push(json!({"role": "system", "content": text}));
        }
    }
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = m.get("content").cloned().unwrap_or(Value::Null);
        let mut parts = Vec::new();
        let mut tool_calls = Vec::new();
        let mut tool_results = Vec::new();
        for b in blocks_of(&content) {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(json!({"type": "text", "text": b.get("text").cloned().unwrap_or_default()})),
                Some("image") => {
                    let src = b.get("source").unwrap_or(&Value::Null);
                    let url = match src.get("type").and_then(Value::as_str) {
                        Some("base64") => format!(
                            "data:{};base64,{}",
                            src.get("media_type").and_then(Value::as_str).unwrap_or("image/png"),
                            src.get("data").and_then(Value::as_str).unwrap_or("")
                        ),
                        _ => src
                            .get("url")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    };
                    parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
                }
                Some("tool_use") => tool_calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or_default(),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or_default(),
                        "arguments": b.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                    }
                })),
                Some("tool_result") => tool_results.push(json!({
                    "role": "tool",
                    "tool_call_id": b.get("tool_use_id").cloned().unwrap_or_default(),
                    "content": text_of_blocks(b.get("content").unwrap_or(&Value::Null)),
                })),
                _ => {}
            }
        }
        out_msgs.extend(tool_results);
        let all_text = parts.iter().all(|p| p["type"] == "text");
        let content = if parts.is_empty() {
            Value::Null
        } else if all_text {
            json!(
                parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("")
            )
        } else {
            Value::Array(parts)
        };
        if role == "assistant" {
            let mut msg = json!({"role": "assistant", "content": content});
            if !tool_calls.is_empty() {
                msg["tool_calls"] = Value::Array(tool_calls);
            }
            out_msgs.push(msg);
        } else if !content.is_null() {
            out_msgs.push(json!({"role": "user", "content": content}));
        }
    }
    let mut out = Map::new();
    out.insert(
        "model".into(),
        req.get("model").cloned().unwrap_or_default(),
    );
    out.insert("messages".into(), Value::Array(out_msgs));
    if let Some(n) = req.get("max_tokens") {
        out.insert("max_tokens".into(), n.clone());
    }
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = req.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = req.get("stop_sequences").filter(|s| s.is_array()) {
        out.insert("stop".into(), stop.clone());
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .filter(|t| t.get("input_schema").is_some())
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.get("name").cloned().unwrap_or_default(),
                    "description": t.get("description").cloned().unwrap_or(json!("")),
                    "parameters": t.get("input_schema").cloned().unwrap_or(json!({"type": "object"})),
                }})
            })
            .collect();
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = req.get("tool_choice") {
        let mapped = match choice.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({"type": "function", "function": {"name": choice.get("name").cloned().unwrap_or_default()}})
            }
            _ => Value::Null,
        };
        if !mapped.is_null() {
            out.insert("tool_choice".into(), mapped);
        }
    }
    if let Some(u) = req.pointer("/metadata/user_id") {
        out.insert("user".into(), u.clone());
    }
    Ok(Value::Object(out))
}

/// OpenAI's finish reason as Anthropic's stop reason.
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

fn anthropic_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens - u.cache_read_tokens - u.cache_creation_tokens,
        "output_tokens": u.completion_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation_input_tokens": u.cache_creation_tokens,
    })
}

/// Translates an OpenAI chat completion into an Anthropic Messages response.
pub fn to_messages_response(resp: &Value, usage: &Usage) -> Value {
    let choice = resp.pointer("/choices/0").unwrap_or(&Value::Null);
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if let Some(t) = msg.get("content").and_then(Value::as_str)
        && !t.is_empty()
    {
        content.push(json!({"type": "text", "text": t}));
    }
    for call in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let args = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("{}");
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or_default(),
            "name": call.pointer("/function/name").cloned().unwrap_or_default(),
            "input": serde_json::from_str::<Value>(args).unwrap_or_else(|_| json!({})),
        }));
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    json!({
        "id": resp.get("id").cloned().unwrap_or_default(),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model").cloned().unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": anthropic_usage(usage),
    })
}

/// An error in Anthropic's shape (`{"type":"error","error":{"type","message"}}`).
pub fn error_body(status: u16, message: &str) -> Value {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Block {
    None,
    Text(usize),
    Tool(usize),
}

/// Turns OpenAI `chat.completion.chunk`s into Anthropic's event sequence: `message_start`,
/// `content_block_start/delta/stop` for text and tool calls, `message_delta`, `message_stop`.
#[derive(Debug)]
pub struct StreamToAnthropic {
    model: String,
    started: bool,
    block: Block,
    next_index: usize,
    /// OpenAI tool call index -> Anthropic block index.
    tools: Vec<(i64, usize)>,
    finish: Option<String>,
    usage: Usage,
}

impl StreamToAnthropic {
    pub fn new(model: &str) -> Self {
        StreamToAnthropic {
            model: model.to_string(),
            started: false,
            block: Block::None,
            next_index: 0,
            tools: Vec::new(),
            finish: None,
            usage: Usage::default(),
        }
    }

    fn close_block(&mut self, out: &mut Vec<(&'static str, Value)>) {
        let index = match self.block {
            Block::None => return,
            Block::Text(i) | Block::Tool(i) => i,
        };
        out.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        self.block = Block::None;
    }

    /// Handles one OpenAI chunk; returns `(event name, data)` pairs to send.
    pub fn on_chunk(&mut self, chunk: &Value) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            let id = chunk
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("msg_tollgate");
            out.push((
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": id, "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}
                }}),
            ));
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            let get = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
            self.usage.prompt_tokens = get("prompt_tokens");
            self.usage.completion_tokens = get("completion_tokens");
            self.usage.cache_read_tokens = u
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Value::as_i64)
                .unwrap_or(0);
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return out;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = delta.get("content").and_then(Value::as_str)
            && !text.is_empty()
        {
            let index = match self.block {
                Block::Text(i) => i,
                _ => {
                    self.close_block(&mut out);
                    let i = self.next_index;
                    self.next_index += 1;
                    self.block = Block::Text(i);
                    out.push((
                        "content_block_start",
                        json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
                    ));
                    i
                }
            };
            out.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let oi = call.get("index").and_then(Value::as_i64).unwrap_or(0);
            let index = match self.tools.iter().find(|(o, _)| *o == oi) {
                Some(&(_, i)) => i,
                None => {
                    self.close_block(&mut out);
                    let i = self.next_index;
                    self.next_index += 1;
                    self.tools.push((oi, i));
                    self.block = Block::Tool(i);
                    out.push((
                        "content_block_start",
                        json!({"type": "content_block_start", "index": i, "content_block": {
                            "type": "tool_use",
                            "id": call.get("id").cloned().unwrap_or_default(),
                            "name": call.pointer("/function/name").cloned().unwrap_or_default(),
                            "input": {}
                        }}),
                    ));
                    i
                }
            };
            if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str)
                && !args.is_empty()
            {
                out.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
                ));
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        out
    }

    /// Closes the message once the upstream stream ended; `usage` is the billed usage.
    pub fn finish(&mut self, usage: &Usage) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        if !self.started {
            out.extend(self.on_chunk(&json!({})));
        }
        self.close_block(&mut out);
        let stop = stop_reason(self.finish.as_deref().unwrap_or("stop"));
        out.push((
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                   "usage": anthropic_usage(usage)}),
        ));
        out.push(("message_stop", json!({"type": "message_stop"})));
        out
    }

    /// Usage reported by the upstream stream so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }
}

/// Formats one Anthropic SSE event.
pub fn sse_event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptors::anthropic;

    #[test]
    fn request_from_anthropic() {
        let req = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "You are Claude Code."}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Running a tool"},
                    {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"cmd": "ls"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a.txt"}]}
                ]}
            ],
            "stop_sequences": ["###"],
            "stream": true,
            "tools": [{"name": "bash", "description": "Run", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
            "metadata": {"user_id": "u1"}
        });
        let out = from_messages_request(&req).unwrap();
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(
            msgs[0],
            json!({"role": "system", "content": "You are Claude Code."})
        );
        assert_eq!(
            msgs[1]["content"][1]["image_url"]["url"],
            "data:image/jpeg;base64,AAAA"
        );
        assert_eq!(msgs[2]["tool_calls"][0]["function"]["name"], "bash");
        assert_eq!(msgs[2]["content"], "Running a tool");
        assert_eq!(
            msgs[3],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"})
        );
        assert_eq!(out["max_tokens"], 1024);
        assert_eq!(out["stop"], json!(["###"]));
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["tools"][0]["function"]["parameters"]["type"], "object");
        assert_eq!(out["user"], "u1");
        assert!(from_messages_request(&json!({"model": "x"})).is_err());
    }

    #[test]
    fn round_trip_through_both_directions() {
        // Anthropic request -> OpenAI -> Anthropic keeps the conversation.
        let req = json!({"model": "m", "max_tokens": 10, "system": "S",
            "messages": [{"role": "user", "content": "hi"}]});
        let back = anthropic::to_messages_request(&from_messages_request(&req).unwrap()).unwrap();
        assert_eq!(back["system"], "S");
        assert_eq!(back["messages"][0]["content"][0]["text"], "hi");
        assert_eq!(back["max_tokens"], 10);
    }

    #[test]
    fn response_to_anthropic() {
        let resp = json!({"id": "chatcmpl-1", "model": "gpt-4o", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "Hi", "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            "finish_reason": "tool_calls"}]});
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 3,
            ..Default::default()
        };
        let out = to_messages_response(&resp, &usage);
        assert_eq!(out["type"], "message");
        assert_eq!(out["content"][0], json!({"type": "text", "text": "Hi"}));
        assert_eq!(out["content"][1]["input"]["a"], 1);
        assert_eq!(out["stop_reason"], "tool_use");
        assert_eq!(out["usage"]["input_tokens"], 10);
        assert_eq!(out["usage"]["output_tokens"], 3);
        assert_eq!(error_body(429, "slow")["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn stream_to_anthropic_events() {
        let chunks = [
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":"}}]}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "2}"}}]}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}}),
        ];
        let mut t = StreamToAnthropic::new("gpt-4o");
        let mut events = Vec::new();
        for c in &chunks {
            events.extend(t.on_chunk(c));
        }
        let usage = t.usage();
        assert_eq!(usage.prompt_tokens, 7);
        events.extend(t.finish(&usage));
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[5].1["content_block"]["name"], "f");
        assert_eq!(events[5].1["index"], 1);
        assert_eq!(events[9].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[9].1["usage"]["output_tokens"], 5);
        // Feeding our own events to the outbound translator gives the text back.
        let mut back = anthropic::StreamToOpenAi::new(0);
        let text: String = events
            .iter()
            .flat_map(|(_, d)| match back.on_event(&d.to_string()) {
                anthropic::StreamOut::Chunks(c) => c,
                _ => vec![],
            })
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        assert_eq!(text, "Hello");
        assert!(sse_event("ping", &json!({"type": "ping"})).starts_with("event: ping\ndata: "));
    }
}
