//! DeepL (channel type 38): the chat model `deepl-<lang>` translates the last message into
//! `<lang>` with `POST {base}/v2/translate` (One API's mapping). Pure translation.

use serde_json::{Value, json};

/// The target language of a `deepl-<lang>` model (`deepl-zh` -> `ZH`, `deepl-en-us` -> `EN-US`).
pub fn target_lang(model: &str) -> String {
    model
        .strip_prefix("deepl-")
        .unwrap_or(model)
        .to_ascii_uppercase()
}

/// The text of the last message.
pub fn last_text(req: &Value) -> String {
    let Some(last) = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
    else {
        return String::new();
    };
    match last.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An OpenAI chat request as a DeepL translate request.
pub fn to_translate_request(req: &Value, model: &str) -> Result<Value, String> {
    let text = last_text(req);
    if text.is_empty() {
        return Err("the last message has no text to translate".into());
    }
    Ok(json!({"text": [text], "target_lang": target_lang(model)}))
}

/// A DeepL answer as an OpenAI chat completion. DeepL bills characters: the usage is the
/// source text's length as prompt tokens and no completion (One API's rule).
pub fn from_translate_response(
    resp: &Value,
    model: &str,
    source_chars: i64,
    id: &str,
    created: i64,
) -> Value {
    let t = resp.pointer("/translations/0").unwrap_or(&Value::Null);
    let text = t.get("text").and_then(Value::as_str).unwrap_or("");
    let mut message = json!({"role": "assistant", "content": text});
    if let Some(lang) = t.get("detected_source_language").and_then(Value::as_str) {
        message["name"] = json!(lang);
    }
    json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": source_chars, "completion_tokens": 0, "total_tokens": source_chars},
    })
}

/// DeepL's error (`{"message": ...}`) as OpenAI's error object.
pub fn map_error(status: u16, body: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = parsed
        .get("message")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| format!("bad response status code {status}"));
    // 403 is DeepL's answer to a wrong key.
    let kind = if status == 403 {
        "authentication_error"
    } else {
        "upstream_error"
    };
    json!({"message": message, "type": kind, "param": "", "code": status.to_string()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translate_round_trip() {
        let req = json!({"model": "deepl-de", "messages": [
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": [{"type": "text", "text": "Hello, world!"}]}]});
        let out = to_translate_request(&req, "deepl-de").unwrap();
        assert_eq!(out, json!({"text": ["Hello, world!"], "target_lang": "DE"}));
        assert_eq!(target_lang("deepl-en-us"), "EN-US");
        assert!(to_translate_request(&json!({"messages": []}), "deepl-zh").is_err());
        let resp: Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/deepl/response.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let c = from_translate_response(&resp, "deepl-de", 13, "x", 1);
        assert_eq!(c["choices"][0]["message"]["content"], "Hallo, Welt!");
        assert_eq!(c["choices"][0]["message"]["name"], "EN");
        assert_eq!(c["usage"]["prompt_tokens"], 13);
        assert_eq!(
            map_error(403, br#"{"message":"Wrong key"}"#)["type"],
            "authentication_error"
        );
    }
}
