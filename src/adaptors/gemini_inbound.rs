//! The Gemini front door (`POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent`, `:countTokens`, `:embedContent` and `:batchEmbedContents`, beyond
//! One API): a client speaking Gemini's API (the `google-genai`
//! SDKs) is served by any channel. For channels that do not speak Gemini, the request is turned
//! into OpenAI's format and the answer back into Gemini's, chunk by chunk. Pure translation.

use serde_json::{Map, Value, json};

use super::Usage;

/// Translates a `generateContent` request into an OpenAI chat completion request.
pub fn from_generate_request(req: &Value, model: &str, stream: bool) -> Result<Value, String> {
    let contents = req
        .get("contents")
        .and_then(Value::as_array)
        .ok_or("contents: field required")?;
    let mut messages = Vec::new();
    if let Some(sys) = req
        .get("systemInstruction")
        .or_else(|| req.get("system_instruction"))
    {
        let text = texts(sys.get("parts").unwrap_or(&Value::Null)).join("\n");
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    for c in contents {
        let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
        let empty = vec![];
        let parts = c.get("parts").and_then(Value::as_array).unwrap_or(&empty);
        let mut content = Vec::new();
        let mut calls = Vec::new();
        for p in parts {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                content.push(json!({"type": "text", "text": t}));
            } else if let Some(d) = p.get("inlineData").or_else(|| p.get("inline_data")) {
                let mime = d
                    .get("mimeType")
                    .or_else(|| d.get("mime_type"))
                    .and_then(Value::as_str)
                    .unwrap_or("image/png");
                let data = d.get("data").and_then(Value::as_str).unwrap_or("");
                content.push(json!({"type": "image_url",
                    "image_url": {"url": format!("data:{mime};base64,{data}")}}));
            } else if let Some(f) = p.get("fileData").or_else(|| p.get("file_data")) {
                let uri = f
                    .get("fileUri")
                    .or_else(|| f.get("file_uri"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                content.push(json!({"type": "image_url", "image_url": {"url": uri}}));
            } else if let Some(fc) = p.get("functionCall") {
                let name = fc.get("name").and_then(Value::as_str).unwrap_or("");
                calls.push(json!({
                    "id": fc.get("id").and_then(Value::as_str).map(String::from)
                        .unwrap_or_else(|| format!("call_{name}")),
                    "type": "function",
                    "function": {"name": name,
                        "arguments": fc.get("args").map(Value::to_string).unwrap_or_else(|| "{}".into())}
                }));
            } else if let Some(fr) = p.get("functionResponse") {
                let name = fr.get("name").and_then(Value::as_str).unwrap_or("");
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": fr.get("id").and_then(Value::as_str).map(String::from)
                        .unwrap_or_else(|| format!("call_{name}")),
                    "content": fr.get("response").map(Value::to_string).unwrap_or_default(),
                }));
            }
        }
        let all_text = content.iter().all(|p| p["type"] == "text");
        let content = if content.is_empty() {
            Value::Null
        } else if all_text {
            json!(
                content
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<String>()
            )
        } else {
            Value::Array(content)
        };
        if role == "model" {
            let mut m = json!({"role": "assistant", "content": content});
            if !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            messages.push(m);
        } else if !content.is_null() {
            messages.push(json!({"role": "user", "content": content}));
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    let gen_cfg = req
        .get("generationConfig")
        .or_else(|| req.get("generation_config"));
    if let Some(g) = gen_cfg {
        for (from, to) in [
            ("temperature", "temperature"),
            ("topP", "top_p"),
            ("topK", "top_k"),
            ("maxOutputTokens", "max_tokens"),
            ("stopSequences", "stop"),
            ("candidateCount", "n"),
            ("seed", "seed"),
            ("presencePenalty", "presence_penalty"),
            ("frequencyPenalty", "frequency_penalty"),
        ] {
            if let Some(v) = g.get(from).filter(|v| !v.is_null()) {
                out.insert(to.into(), v.clone());
            }
        }
        if g.get("responseMimeType").and_then(Value::as_str) == Some("application/json") {
            let rf = match g.get("responseSchema") {
                Some(s) => json!({"type": "json_schema",
                    "json_schema": {"name": "response", "schema": s}}),
                None => json!({"type": "json_object"}),
            };
            out.insert("response_format".into(), rf);
        }
    }
    let tools: Vec<Value> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            t.get("functionDeclarations")
                .or_else(|| t.get("function_declarations"))
        })
        .filter_map(Value::as_array)
        .flatten()
        .map(|d| {
            json!({"type": "function", "function": {
                "name": d.get("name").cloned().unwrap_or_default(),
                "description": d.get("description").cloned().unwrap_or(json!("")),
                "parameters": d.get("parameters").cloned().unwrap_or(json!({"type": "object"})),
            }})
        })
        .collect();
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(mode) = req
        .pointer("/toolConfig/functionCallingConfig/mode")
        .and_then(Value::as_str)
    {
        let choice = match mode {
            "NONE" => json!("none"),
            "ANY" => json!("required"),
            _ => json!("auto"),
        };
        out.insert("tool_choice".into(), choice);
    }
    if stream {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(out))
}

fn texts(parts: &Value) -> Vec<String> {
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str).map(String::from))
        .collect()
}

/// OpenAI's finish reason as Gemini's.
pub fn finish_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

/// Billed usage as Gemini's `usageMetadata`.
pub fn usage_metadata(u: &Usage) -> Value {
    let mut m = json!({
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": u.completion_tokens,
        "totalTokenCount": u.prompt_tokens + u.completion_tokens,
    });
    if u.cache_read_tokens > 0 {
        m["cachedContentTokenCount"] = json!(u.cache_read_tokens);
    }
    m
}

fn call_part(name: &Value, arguments: &str) -> Value {
    json!({"functionCall": {"name": name,
        "args": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({}))}})
}

/// Translates an OpenAI chat completion into a `generateContent` response.
pub fn to_generate_response(resp: &Value, model: &str, usage: &Usage) -> Value {
    let choice = resp.pointer("/choices/0").unwrap_or(&Value::Null);
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut parts = Vec::new();
    if let Some(t) = msg.get("content").and_then(Value::as_str)
        && !t.is_empty()
    {
        parts.push(json!({"text": t}));
    }
    for call in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        parts.push(call_part(
            call.pointer("/function/name").unwrap_or(&Value::Null),
            call.pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}"),
        ));
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts},
            "finishReason": finish_reason(finish), "index": 0}],
        "usageMetadata": usage_metadata(usage),
        "modelVersion": model,
    })
}

/// An error in Gemini's shape.
pub fn error_body(status: u16, message: &str) -> Value {
    let s = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status, "message": message, "status": s}})
}

/// Turns OpenAI chunks into `streamGenerateContent?alt=sse` events: text as it comes, tool calls
/// once complete, and `usageMetadata` with the finish reason on the last event.
#[derive(Debug)]
pub struct StreamToGemini {
    model: String,
    /// (name, arguments) per OpenAI tool call index.
    calls: Vec<(Value, String)>,
    finish: Option<String>,
}

impl StreamToGemini {
    pub fn new(model: &str) -> Self {
        StreamToGemini {
            model: model.to_string(),
            calls: Vec::new(),
            finish: None,
        }
    }

    fn event(&self, parts: Vec<Value>, extra: Option<(&str, Value)>) -> Value {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut ev = json!({"modelVersion": self.model});
        if let Some((k, v)) = extra {
            if k == "finishReason" {
                cand[k] = v;
            } else {
                ev[k] = v;
            }
        }
        ev["candidates"] = json!([cand]);
        ev
    }

    /// One OpenAI chunk; returns the Gemini events to send.
    pub fn on_chunk(&mut self, chunk: &Value) -> Vec<Value> {
        let Some(choice) = chunk.pointer("/choices/0") else {
            return vec![];
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let i = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            while self.calls.len() <= i {
                self.calls.push((Value::Null, String::new()));
            }
            if let Some(n) = call.pointer("/function/name").filter(|n| n.is_string()) {
                self.calls[i].0 = n.clone();
            }
            if let Some(a) = call.pointer("/function/arguments").and_then(Value::as_str) {
                self.calls[i].1.push_str(a);
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        match delta.get("content").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => vec![self.event(vec![json!({"text": t})], None)],
            _ => vec![],
        }
    }

    /// The last event: pending tool calls, the finish reason and the billed usage.
    pub fn finish(&mut self, usage: &Usage) -> Vec<Value> {
        let parts: Vec<Value> = self
            .calls
            .iter()
            .map(|(n, a)| call_part(n, if a.is_empty() { "{}" } else { a }))
            .collect();
        let finish = finish_reason(self.finish.as_deref().unwrap_or("stop"));
        let mut ev = self.event(parts, Some(("finishReason", json!(finish))));
        ev["usageMetadata"] = usage_metadata(usage);
        vec![ev]
    }
}

/// The OpenAI chat request whose prompt a `countTokens` body stands for: its `contents` (and
/// `systemInstruction`), or the `generateContentRequest` it wraps.
pub fn from_count_tokens_request(req: &Value, model: &str) -> Result<Value, String> {
    let inner = req.get("generateContentRequest").unwrap_or(req);
    from_generate_request(inner, model, false)
}

/// The text of one `content` (`{"parts": [{"text"}...]}`).
fn content_text(content: Option<&Value>) -> Result<String, String> {
    let parts = content
        .and_then(|c| c.get("parts"))
        .ok_or("content: field required")?;
    Ok(texts(parts).join(""))
}

/// An `embedContent` (`batch` = false) or `batchEmbedContents` request as an OpenAI embeddings
/// request: one input per content, `outputDimensionality` as `dimensions`.
pub fn from_embed_request(req: &Value, model: &str, batch: bool) -> Result<Value, String> {
    let (input, dims) = if batch {
        let requests = req
            .get("requests")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
            .ok_or("requests: field required")?;
        let input = requests
            .iter()
            .map(|r| content_text(r.get("content")).map(Value::String))
            .collect::<Result<Vec<_>, _>>()?;
        let dims = requests[0].get("outputDimensionality").cloned();
        (Value::Array(input), dims)
    } else {
        (
            Value::String(content_text(req.get("content"))?),
            req.get("outputDimensionality").cloned(),
        )
    };
    let mut out = json!({"model": model, "input": input});
    if let Some(d) = dims.filter(|d| d.is_number()) {
        out["dimensions"] = d;
    }
    Ok(out)
}

/// An OpenAI embeddings list as Gemini's `embedContent` (`{"embedding": {"values"}}`) or
/// `batchEmbedContents` (`{"embeddings": [...]}`) answer.
pub fn to_embed_response(resp: &Value, batch: bool) -> Value {
    let values: Vec<Value> = resp
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| json!({"values": d.get("embedding").cloned().unwrap_or(json!([]))}))
        .collect();
    if batch {
        json!({ "embeddings": values })
    } else {
        json!({ "embedding": values.into_iter().next().unwrap_or(json!({"values": []})) })
    }
}

/// Formats one Gemini SSE event.
pub fn sse_event(data: &Value) -> String {
    format!("data: {data}\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_from_gemini() {
        let req = json!({
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "What is "}, {"text": "this?"},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}}]},
                {"role": "model", "parts": [{"functionCall": {"name": "look", "args": {"q": 1}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "look", "response": {"a": 2}}}]}
            ],
            "generationConfig": {"temperature": 0.3, "maxOutputTokens": 64, "stopSequences": ["X"],
                "responseMimeType": "application/json"},
            "tools": [{"functionDeclarations": [{"name": "look", "parameters": {"type": "object"}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}
        });
        let out = from_generate_request(&req, "gpt-4o", true).unwrap();
        assert_eq!(out["model"], "gpt-4o");
        let m = out["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(
            m[1]["content"][2]["image_url"]["url"],
            "data:image/jpeg;base64,QUJD"
        );
        assert_eq!(m[2]["tool_calls"][0]["function"]["name"], "look");
        assert_eq!(m[3]["role"], "tool");
        assert_eq!(m[3]["tool_call_id"], m[2]["tool_calls"][0]["id"]);
        assert_eq!(out["max_tokens"], 64);
        assert_eq!(out["stop"], json!(["X"]));
        assert_eq!(out["response_format"]["type"], "json_object");
        assert_eq!(out["tools"][0]["function"]["name"], "look");
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert!(from_generate_request(&json!({}), "m", false).is_err());
    }

    #[test]
    fn count_tokens_and_embeddings() {
        let wrapped =
            json!({"generateContentRequest": {"contents": [{"parts": [{"text": "hi"}]}]}});
        let out = from_count_tokens_request(&wrapped, "m").unwrap();
        assert_eq!(out["messages"][0], json!({"role": "user", "content": "hi"}));
        let plain = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        assert_eq!(
            from_count_tokens_request(&plain, "m").unwrap()["messages"],
            out["messages"]
        );

        let one = json!({"content": {"parts": [{"text": "a"}, {"text": "b"}]},
                         "outputDimensionality": 8});
        assert_eq!(
            from_embed_request(&one, "text-embedding-004", false).unwrap(),
            json!({"model": "text-embedding-004", "input": "ab", "dimensions": 8})
        );
        let many = json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "x"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "y"}]}}]});
        assert_eq!(
            from_embed_request(&many, "e", true).unwrap(),
            json!({"model": "e", "input": ["x", "y"]})
        );
        assert!(from_embed_request(&json!({}), "e", false).is_err());
        assert!(from_embed_request(&json!({"requests": []}), "e", true).is_err());

        let openai = json!({"data": [{"embedding": [0.1]}, {"embedding": [0.2]}]});
        assert_eq!(
            to_embed_response(&openai, true),
            json!({"embeddings": [{"values": [0.1]}, {"values": [0.2]}]})
        );
        assert_eq!(
            to_embed_response(&openai, false),
            json!({"embedding": {"values": [0.1]}})
        );
    }

    #[test]
    fn response_and_stream_to_gemini() {
        let resp = json!({"choices": [{"message": {"role": "assistant", "content": "hi",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
            "finish_reason": "tool_calls"}]});
        let u = Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
            ..Default::default()
        };
        let out = to_generate_response(&resp, "m", &u);
        assert_eq!(out["candidates"][0]["content"]["parts"][0]["text"], "hi");
        assert_eq!(
            out["candidates"][0]["content"]["parts"][1]["functionCall"]["args"]["x"],
            1
        );
        assert_eq!(out["usageMetadata"]["totalTokenCount"], 7);

        let mut s = StreamToGemini::new("m");
        let ev = s.on_chunk(&json!({"choices": [{"delta": {"content": "He"}}]}));
        assert_eq!(ev[0]["candidates"][0]["content"]["parts"][0]["text"], "He");
        assert!(s.on_chunk(&json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{\"a\""}}]}}]})).is_empty());
        s.on_chunk(&json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}, "finish_reason": "length"}]}));
        let end = s.finish(&u);
        assert_eq!(end[0]["candidates"][0]["finishReason"], "MAX_TOKENS");
        assert_eq!(
            end[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]["a"],
            1
        );
        assert_eq!(end[0]["usageMetadata"]["promptTokenCount"], 3);
        assert_eq!(
            error_body(429, "x")["error"]["status"],
            "RESOURCE_EXHAUSTED"
        );
    }
}
