//! AIProxy's knowledge-base API (channel type 21, "AIProxyLibrary"), One API's `aiproxy`
//! adaptor: `POST {base}/api/library/ask` with a Bearer key and `{model, query, library_id,
//! stream}` (the last message is the query). The answer carries `documents`, appended as a
//! Markdown list of links (One API's `参考文档` block). AIProxy reports no usage: the relay counts
//! both sides. Pure translation.

use serde_json::{Value, json};

use super::text_of;

/// An OpenAI chat request as a library `ask` request; `library_id` from the channel config.
pub fn to_ask_request(
    req: &Value,
    model: &str,
    library_id: &str,
    stream: bool,
) -> Result<Value, String> {
    let last = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .ok_or("messages must be a non-empty array")?;
    Ok(json!({
        "model": model,
        "query": text_of(last.get("content").unwrap_or(&Value::Null)),
        "library_id": library_id,
        "stream": stream,
    }))
}

/// The documents as One API's Markdown block (empty without documents).
pub fn documents_markdown(documents: &Value) -> String {
    let docs = documents.as_array().map(Vec::as_slice).unwrap_or_default();
    if docs.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n\n参考文档：\n");
    for (i, d) in docs.iter().enumerate() {
        let get = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!("{}. [{}]({})\n", i + 1, get("title"), get("url")));
    }
    out
}

/// An `ask` answer as an OpenAI chat completion, or the error when `success` is false or an
/// `error_code` is set.
pub fn from_ask_response(
    resp: &Value,
    model: &str,
    id: &str,
    created: i64,
) -> Result<Value, Value> {
    let code = resp.get("error_code").and_then(Value::as_i64).unwrap_or(0);
    if code != 0 || resp.get("success") == Some(&Value::Bool(false)) {
        return Err(error_object(resp));
    }
    let answer = resp.get("answer").and_then(Value::as_str).unwrap_or("");
    let content = format!(
        "{answer}{}",
        documents_markdown(resp.get("documents").unwrap_or(&Value::Null))
    );
    Ok(
        json!({"id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}]}),
    )
}

/// Translates a library stream: `content` pieces as they come; the documents (kept from the
/// event that carries them) as a last chunk with `finish_reason: stop`.
#[derive(Debug)]
pub struct AskStream {
    model: String,
    id: String,
    created: i64,
    documents: Value,
    finished: bool,
}

impl AskStream {
    pub fn new(model: &str, id: &str, created: i64) -> Self {
        AskStream {
            model: model.to_string(),
            id: id.to_string(),
            created,
            documents: Value::Null,
            finished: false,
        }
    }

    fn chunk(&self, content: &str, finish: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]})
    }

    /// One `data:` payload.
    pub fn on_event(&mut self, data: &str) -> Result<Vec<Value>, Value> {
        let Ok(ev) = serde_json::from_str::<Value>(data) else {
            return Ok(vec![]);
        };
        if ev.get("error_code").and_then(Value::as_i64).unwrap_or(0) != 0
            || ev.get("success") == Some(&Value::Bool(false))
        {
            return Err(error_object(&ev));
        }
        if ev
            .get("documents")
            .and_then(Value::as_array)
            .is_some_and(|d| !d.is_empty())
        {
            self.documents = ev["documents"].clone();
        }
        match ev.get("content").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Ok(vec![self.chunk(t, Value::Null)]),
            _ => Ok(vec![]),
        }
    }

    /// The stream ended: the documents chunk (once).
    pub fn finish(&mut self) -> Vec<Value> {
        if self.finished {
            return vec![];
        }
        self.finished = true;
        vec![self.chunk(&documents_markdown(&self.documents), json!("stop"))]
    }
}

fn error_object(v: &Value) -> Value {
    let code = v.get("error_code").cloned().unwrap_or(Value::Null);
    let msg = v
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or("AIProxy library error");
    json!({"message": msg, "type": "aiproxy_error", "param": "", "code": code})
}

/// An error body (status not 2xx) as OpenAI's error object.
pub fn map_error(status: u16, body: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("message").is_some() || v.get("error_code").is_some() => error_object(&v),
        _ => crate::relay::openai::openai_error(status, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/aiproxy/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn request_response_stream_and_errors() {
        let req = json!({"messages": [{"role": "user", "content": "a"},
                                      {"role": "user", "content": "How do I reset?"}]});
        let out = to_ask_request(&req, "gpt-3.5-turbo", "lib-1", true).unwrap();
        assert_eq!(
            out,
            json!({"model": "gpt-3.5-turbo", "query": "How do I reset?", "library_id": "lib-1",
                   "stream": true})
        );
        let resp: Value = serde_json::from_str(&fixture("response.json")).unwrap();
        let c = from_ask_response(&resp, "gpt-3.5-turbo", "x", 1).unwrap();
        assert_eq!(
            c["choices"][0]["message"]["content"],
            "Hold the button for 5 seconds.\n\n参考文档：\n1. [Manual](https://example.com/manual)\n"
        );
        let e = from_ask_response(
            &json!({"success": false, "message": "library not found", "error_code": 404}),
            "m",
            "x",
            1,
        )
        .unwrap_err();
        assert_eq!(
            (e["message"].as_str(), e["code"].as_i64()),
            (Some("library not found"), Some(404))
        );

        let mut s = AskStream::new("m", "x", 1);
        let mut text = String::new();
        for line in fixture("stream.sse").lines() {
            if let Some(d) = line.strip_prefix("data:") {
                for c in s.on_event(d).unwrap() {
                    text.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap());
                }
            }
        }
        let end = s.finish();
        assert_eq!(text, "Hold the button.");
        assert_eq!(end[0]["choices"][0]["finish_reason"], "stop");
        assert!(
            end[0]["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .contains("[Manual](https://example.com/manual)")
        );
        assert!(s.finish().is_empty());
    }
}
