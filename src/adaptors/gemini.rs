//! Google Gemini (channel type 24) <-> OpenAI. Pure translation of `generateContent`,
//! `streamGenerateContent?alt=sse` (each event a partial response whose `usageMetadata` is
//! cumulative, so only the last counts) and `batchEmbedContents`.

use serde_json::{Map, Value, json};

use super::Usage;

/// Safety categories One API sets, each to `GEMINI_SAFETY_SETTING`.
pub const SAFETY_CATEGORIES: &[&str] = &[
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
];

/// The API version for a model: the channel's `api_version`, else `GEMINI_VERSION` for the
/// legacy 1.0 models (`gemini-pro`, `gemini-1.0-*`: One API's behaviour), else `v1beta`, which
/// every current model needs for system instructions, tools and JSON output.
pub fn api_version(model: &str, channel_version: Option<&str>, default: &str) -> String {
    if let Some(v) = channel_version.filter(|v| !v.is_empty()) {
        return v.to_string();
    }
    let legacy = model == "gemini-pro"
        || model.starts_with("gemini-pro-")
        || model.starts_with("gemini-1.0");
    if legacy && !default.is_empty() {
        return default.to_string();
    }
    "v1beta".into()
}

/// `{base}/{version}/models/{model}:batchEmbedContents`.
pub fn embed_url(base: &str, version: &str, model: &str) -> String {
    let base = base.trim_end_matches('/');
    format!("{base}/{version}/models/{model}:batchEmbedContents")
}

/// `{base}/{version}/models/{model}:{method}` (streams add `?alt=sse`).
pub fn url(base: &str, version: &str, model: &str, stream: bool) -> String {
    let base = base.trim_end_matches('/');
    if stream {
        format!("{base}/{version}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/{version}/models/{model}:generateContent")
    }
}

fn parts_of(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) if s.is_empty() => vec![],
        Value::String(s) => vec![json!({"text": s})],
        Value::Array(items) => items
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Some(json!({"text": p.get("text").cloned().unwrap_or_default()})),
                Some("image_url") => {
                    let url = p
                        .pointer("/image_url/url")
                        .or_else(|| p.get("image_url"))
                        .and_then(Value::as_str)?;
                    if let Some(rest) = url.strip_prefix("data:")
                        && let Some((meta, data)) = rest.split_once(',')
                    {
                        Some(json!({"inline_data": {
                            "mime_type": meta.trim_end_matches(";base64"), "data": data}}))
                    } else {
                        // Gemini fetches URIs itself; Tollgate never fetches user URLs here.
                        Some(json!({"file_data": {"mime_type": "image/*", "file_uri": url}}))
                    }
                }
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// Translates an OpenAI chat completion request into a `generateContent` request.
pub fn to_generate_request(req: &Value, safety: &str) -> Result<Value, String> {
    let messages = super::messages_of(req)?;
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // tool_call_id -> function name, for functionResponse parts.
    let mut call_names: Vec<(String, String)> = Vec::new();
    let push = |contents: &mut Vec<Value>, role: &str, mut parts: Vec<Value>| {
        if parts.is_empty() {
            return;
        }
        if let Some(last) = contents.last_mut()
            && last["role"] == role
            && let Some(p) = last["parts"].as_array_mut()
        {
            p.append(&mut parts);
            return;
        }
        contents.push(json!({"role": role, "parts": parts}));
    };
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = m.get("content").cloned().unwrap_or(Value::Null);
        match role {
            "system" | "developer" => system.extend(parts_of(&content)),
            "assistant" => {
                let mut parts = parts_of(&content);
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let args = call
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("{}");
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        call_names.push((id.to_string(), name.clone()));
                    }
                    parts.push(json!({"functionCall": {
                        "name": name,
                        "args": serde_json::from_str::<Value>(args).unwrap_or_else(|_| json!({})),
                    }}));
                }
                push(&mut contents, "model", parts);
            }
            "tool" | "function" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let name = m
                    .get("name")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .or_else(|| {
                        call_names
                            .iter()
                            .find(|(i, _)| i == id)
                            .map(|(_, n)| n.clone())
                    })
                    .unwrap_or_default();
                let text = match &content {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let response = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({"content": text}));
                push(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            _ => push(&mut contents, "user", parts_of(&content)),
        }
    }
    if contents.is_empty() {
        return Err("messages must contain at least one user or assistant message".into());
    }
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    out.insert(
        "safetySettings".into(),
        Value::Array(
            SAFETY_CATEGORIES
                .iter()
                .map(|c| json!({"category": c, "threshold": safety}))
                .collect(),
        ),
    );
    let mut generation = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("n", "candidateCount"),
        ("seed", "seed"),
    ] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            generation.insert(to.into(), v.clone());
        }
    }
    if let Some(n) = req
        .get("max_tokens")
        .or_else(|| req.get("max_completion_tokens"))
        .filter(|v| v.is_number())
    {
        generation.insert("maxOutputTokens".into(), n.clone());
    }
    match req.get("stop") {
        Some(Value::String(s)) => {
            generation.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            generation.insert("stopSequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    match req.pointer("/response_format/type").and_then(Value::as_str) {
        Some("json_object") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = req.pointer("/response_format/json_schema/schema") {
                generation.insert("responseSchema".into(), schema.clone());
            }
        }
        _ => {}
    }
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let decls: Vec<Value> = tools
            .iter()
            .filter_map(|t| {
                let f = t.get("function")?;
                let mut d = json!({"name": f.get("name")?, "description": f.get("description").cloned().unwrap_or(json!(""))});
                if let Some(p) = f.get("parameters") {
                    d["parameters"] = p.clone();
                }
                Some(d)
            })
            .collect();
        if !decls.is_empty() {
            out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        }
    }
    if let Some(choice) = req.get("tool_choice") {
        let cfg = match choice {
            Value::String(s) if s == "none" => Some(json!({"mode": "NONE"})),
            Value::String(s) if s == "required" => Some(json!({"mode": "ANY"})),
            Value::String(s) if s == "auto" => Some(json!({"mode": "AUTO"})),
            Value::Object(_) => choice
                .pointer("/function/name")
                .map(|n| json!({"mode": "ANY", "allowedFunctionNames": [n]})),
            _ => None,
        };
        if let Some(c) = cfg {
            out.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
        }
    }
    Ok(Value::Object(out))
}

/// Gemini's finish reason as OpenAI's.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => "content_filter",
        _ => "stop",
    }
}

/// `usageMetadata` as billed usage (thinking tokens are output the user pays for).
pub fn usage_of(meta: &Value) -> Usage {
    let get = |k: &str| meta.get(k).and_then(Value::as_i64).unwrap_or(0);
    Usage {
        prompt_tokens: get("promptTokenCount"),
        completion_tokens: get("candidatesTokenCount") + get("thoughtsTokenCount"),
        cache_read_tokens: get("cachedContentTokenCount"),
        cache_creation_tokens: 0,
    }
}

/// The text and tool calls of the first candidate (`call_seq` numbers the generated call ids).
fn candidate_delta(resp: &Value, call_seq: &mut usize) -> (String, Vec<Value>, Option<String>) {
    let cand = resp.pointer("/candidates/0").unwrap_or(&Value::Null);
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in cand
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(fc) = p.get("functionCall") {
            *call_seq += 1;
            calls.push(json!({
                "id": format!("call_{}", *call_seq),
                "type": "function",
                "function": {
                    "name": fc.get("name").cloned().unwrap_or_default(),
                    "arguments": fc.get("args").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                }
            }));
        }
    }
    let finish = cand.get("finishReason").and_then(Value::as_str).map(|r| {
        if calls.is_empty() {
            finish_reason(r).to_string()
        } else {
            "tool_calls".to_string()
        }
    });
    (text, calls, finish)
}

/// Translates a `generateContent` response into an OpenAI chat completion.
pub fn from_generate_response(resp: &Value, model: &str, id: &str, created: i64) -> (Value, Usage) {
    let mut seq = 0;
    let (text, calls, finish) = candidate_delta(resp, &mut seq);
    let usage = usage_of(resp.get("usageMetadata").unwrap_or(&Value::Null));
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let out = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish.unwrap_or_else(|| "stop".into())}],
        "usage": usage.to_openai(),
    });
    (out, usage)
}

/// Turns `streamGenerateContent?alt=sse` events into OpenAI chunks.
#[derive(Debug)]
pub struct StreamToOpenAi {
    id: String,
    model: String,
    created: i64,
    calls: usize,
    usage: Usage,
    started: bool,
}

impl StreamToOpenAi {
    pub fn new(model: &str, id: &str, created: i64) -> Self {
        StreamToOpenAi {
            id: id.into(),
            model: model.into(),
            created,
            calls: 0,
            usage: Usage::default(),
            started: false,
        }
    }

    /// Usage of the last event that carried it (Gemini repeats the running total).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Handles one event's data; returns chunks, or an OpenAI error object.
    pub fn on_event(&mut self, data: &str) -> Result<Vec<Value>, Value> {
        let Ok(ev) = serde_json::from_str::<Value>(data) else {
            return Ok(vec![]);
        };
        if ev.get("error").is_some() {
            return Err(map_error(data.as_bytes()));
        }
        if let Some(meta) = ev.get("usageMetadata") {
            self.usage = usage_of(meta);
        }
        let (text, calls, finish) = candidate_delta(&ev, &mut self.calls);
        let mut delta = Map::new();
        if !self.started {
            self.started = true;
            delta.insert("role".into(), json!("assistant"));
        }
        if !text.is_empty() || delta.contains_key("role") {
            delta.insert("content".into(), json!(text));
        }
        if !calls.is_empty() {
            // Call indices run on across events: the first call of this event follows the ones
            // sent before.
            let first = self.calls - calls.len();
            let calls: Vec<Value> = calls
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    c["index"] = json!(first + i);
                    c
                })
                .collect();
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        if delta.is_empty() && finish.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": Value::Object(delta), "finish_reason": finish}],
        })])
    }
}

/// An OpenAI embeddings request as `batchEmbedContents`.
pub fn to_embed_request(req: &Value, model: &str) -> Result<Value, String> {
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or("input must be strings"))
            .collect::<Result<_, _>>()?,
        _ => return Err("input is required".into()),
    };
    let dims = req.get("dimensions").cloned();
    Ok(json!({"requests": inputs.iter().map(|t| {
        let mut r = json!({"model": format!("models/{model}"), "content": {"parts": [{"text": t}]}});
        if let Some(d) = &dims {
            r["outputDimensionality"] = d.clone();
        }
        r
    }).collect::<Vec<_>>()}))
}

/// A `batchEmbedContents` answer as OpenAI's embeddings list (Gemini reports no usage, so the
/// relay counts the input tokens).
pub fn from_embed_response(resp: &Value, model: &str, prompt_tokens: i64) -> Value {
    let data: Vec<Value> = resp
        .get("embeddings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": e.get("values").cloned().unwrap_or(json!([]))}))
        .collect();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})
}

/// Gemini's error (`{"error":{"code","message","status"}}`) as OpenAI's error object.
pub fn map_error(body: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let status = parsed
        .pointer("/error/status")
        .and_then(Value::as_str)
        .unwrap_or("upstream_error");
    let message = parsed
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect());
    // "API key not valid" is what auto-disable looks for.
    json!({"message": message, "type": status.to_lowercase(), "param": "", "code": status})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_translation() {
        let req = json!({
            "model": "gemini-2.0-flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "call_a", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
                {"role": "tool", "tool_call_id": "call_a", "content": "{\"answer\":42}"}
            ],
            "temperature": 0.5, "top_p": 0.9, "max_tokens": 100, "stop": ["END"],
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "tool_choice": "auto"
        });
        let out = to_generate_request(&req, "BLOCK_NONE").unwrap();
        assert_eq!(out["systemInstruction"]["parts"][0]["text"], "Be brief.");
        let contents = out["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 3);
        assert_eq!(contents[0]["role"], "user");
        assert_eq!(
            contents[0]["parts"][1]["inline_data"]["mime_type"],
            "image/png"
        );
        assert_eq!(contents[1]["role"], "model");
        assert_eq!(contents[1]["parts"][0]["functionCall"]["args"]["q"], "x");
        assert_eq!(
            contents[2]["parts"][0]["functionResponse"]["name"],
            "lookup"
        );
        assert_eq!(
            contents[2]["parts"][0]["functionResponse"]["response"]["answer"],
            42
        );
        let g = &out["generationConfig"];
        assert_eq!(
            (g["temperature"].as_f64(), g["topP"].as_f64()),
            (Some(0.5), Some(0.9))
        );
        assert_eq!(g["maxOutputTokens"], 100);
        assert_eq!(g["stopSequences"], json!(["END"]));
        assert_eq!(g["responseMimeType"], "application/json");
        assert_eq!(
            out["safetySettings"].as_array().unwrap().len(),
            SAFETY_CATEGORIES.len()
        );
        assert_eq!(out["safetySettings"][0]["threshold"], "BLOCK_NONE");
        assert_eq!(out["tools"][0]["functionDeclarations"][0]["name"], "lookup");
        assert_eq!(out["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
        assert!(to_generate_request(&json!({"messages": []}), "BLOCK_NONE").is_err());
    }

    #[test]
    fn versions_and_urls() {
        assert_eq!(api_version("gemini-1.5-pro", None, "v1"), "v1beta");
        assert_eq!(api_version("gemini-pro", None, "v1"), "v1");
        assert_eq!(api_version("gemini-pro", Some("v1beta"), "v1"), "v1beta");
        assert_eq!(api_version("gemini-2.5-flash", None, "v1"), "v1beta");
        assert_eq!(api_version("gemma-3-27b-it", None, "v1"), "v1beta");
        assert_eq!(api_version("gemini-2.5-pro", Some("v1"), "v1"), "v1");
        assert_eq!(
            embed_url("https://g.example/", "v1beta", "text-embedding-004"),
            "https://g.example/v1beta/models/text-embedding-004:batchEmbedContents"
        );
        assert_eq!(
            url(
                "https://generativelanguage.googleapis.com/",
                "v1beta",
                "gemini-2.0-flash",
                true
            ),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn response_translation() {
        let resp = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking...", "thought": true},
                {"text": "The answer"}, {"text": " is 42."},
                {"functionCall": {"name": "lookup", "args": {"q": "y"}}}
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 3, "totalTokenCount": 18}
        });
        let (out, usage) = from_generate_response(&resp, "gemini-2.0-flash", "chatcmpl-x", 1);
        assert_eq!(out["choices"][0]["message"]["content"], "The answer is 42.");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"q\":\"y\"}"
        );
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (10, 8));
        let (out, _) = from_generate_response(
            &json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "MAX_TOKENS"}]}),
            "m",
            "i",
            1,
        );
        assert_eq!(out["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn stream_bills_the_last_cumulative_usage() {
        let events = [
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1,"totalTokenCount":5}}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"lo"}]}}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"totalTokenCount":6}}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"!"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":3,"totalTokenCount":7}}"#,
        ];
        let mut t = StreamToOpenAi::new("gemini-2.0-flash", "chatcmpl-s", 1);
        let mut chunks = Vec::new();
        for e in events {
            chunks.extend(t.on_event(e).unwrap());
        }
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello!");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        // Billed once, from the last event: not 1 + 2 + 3.
        assert_eq!(
            t.usage(),
            Usage {
                prompt_tokens: 4,
                completion_tokens: 3,
                ..Default::default()
            }
        );
        let two = t
            .on_event(r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"a","args":{}}},{"functionCall":{"name":"b","args":{}}}]}}]}"#)
            .unwrap();
        let calls = &two[0]["choices"][0]["delta"]["tool_calls"];
        assert_eq!(
            (calls[0]["index"].as_u64(), calls[1]["index"].as_u64()),
            (Some(0), Some(1))
        );
        assert_eq!(calls[1]["function"]["name"], "b");
        let err = t.on_event(r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#);
        assert_eq!(err.unwrap_err()["code"], "RESOURCE_EXHAUSTED");
    }

    #[test]
    fn embeddings_and_errors() {
        let req = to_embed_request(
            &json!({"input": ["a", "b"], "dimensions": 8}),
            "text-embedding-004",
        )
        .unwrap();
        assert_eq!(req["requests"][1]["content"]["parts"][0]["text"], "b");
        assert_eq!(req["requests"][0]["model"], "models/text-embedding-004");
        assert_eq!(req["requests"][0]["outputDimensionality"], 8);
        assert!(to_embed_request(&json!({"input": [1]}), "m").is_err());
        let out = from_embed_response(
            &json!({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3]}]}),
            "text-embedding-004",
            2,
        );
        assert_eq!(out["data"][1]["index"], 1);
        assert_eq!(out["data"][0]["embedding"], json!([0.1, 0.2]));
        let e = map_error(br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#);
        assert!(e["message"].as_str().unwrap().contains("API key not valid"));
        assert_eq!(e["code"], "INVALID_ARGUMENT");
    }
}
