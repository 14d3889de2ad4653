//! Provider wire formats. Each adaptor is pure translation (JSON in, JSON out, one stream event
//! at a time) between OpenAI's format and the provider's; sending, retries and billing stay in
//! the relay.

pub mod aiproxy;
pub mod anthropic;
pub mod anthropic_inbound;
pub mod baidu;
pub mod bedrock;
pub mod coze;
pub mod deepl;
pub mod gemini;
pub mod gemini_inbound;
pub mod image_fetch;
pub mod palm;
pub mod replicate;
pub mod tencent;
pub mod vertex;
pub mod xunfei;
pub mod zhipu;

/// The `messages` of an OpenAI chat request; `Err` is the client's error (400).
pub fn messages_of(req: &serde_json::Value) -> Result<&Vec<serde_json::Value>, String> {
    req.get("messages")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| "messages must be an array".to_string())
}

/// An OAuth token endpoint's answer (Baidu's, Google's): `Ok((access_token, expires_in))`, else
/// the OpenAI error for its `{"error", "error_description"}`, naming `provider`.
pub fn parse_oauth_token(body: &[u8], provider: &str) -> Result<(String, u64), serde_json::Value> {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match v.get("access_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Ok((
            t.to_string(),
            v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600),
        )),
        _ => {
            let code = v.get("error").and_then(Value::as_str).unwrap_or("no_token");
            let desc = v
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("the token endpoint returned no access token");
            Err(serde_json::json!({
                "message": format!("{provider} access token: {code}: {desc}"),
                "type": "authentication_error", "param": "", "code": code}))
        }
    }
}

/// The text of an OpenAI message content (a string, or its text parts joined by newlines).
pub fn text_of(content: &serde_json::Value) -> String {
    use serde_json::Value;
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Token usage as billed: prompt includes cached input (read and creation), which providers
/// report apart and which are kept for pricing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_creation_tokens: i64,
}

impl Usage {
    /// OpenAI's `usage` object.
    pub fn to_openai(&self) -> serde_json::Value {
        let mut u = serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        });
        if self.cache_read_tokens > 0 {
            u["prompt_tokens_details"] =
                serde_json::json!({"cached_tokens": self.cache_read_tokens});
        }
        u
    }
}
