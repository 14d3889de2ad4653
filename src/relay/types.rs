//! The relay's internal types: relay modes, usage, and what is read from a request body.

use serde_json::Value;

/// What kind of call a `/v1` path is (One API's relay modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    ChatCompletions,
    Completions,
    Embeddings,
    Moderations,
    ImagesGenerations,
    AudioSpeech,
    AudioTranscription,
    AudioTranslation,
}

impl RelayMode {
    /// The model used when the request names none (One API's middleware defaults).
    pub fn default_model(self) -> Option<&'static str> {
        match self {
            RelayMode::Moderations => Some("text-moderation-stable"),
            RelayMode::ImagesGenerations => Some("dall-e-2"),
            RelayMode::AudioTranscription | RelayMode::AudioTranslation => Some("whisper-1"),
            _ => None,
        }
    }

    /// Whether the body is multipart form data rather than JSON.
    pub fn is_multipart(self) -> bool {
        matches!(
            self,
            RelayMode::AudioTranscription | RelayMode::AudioTranslation
        )
    }
}

/// Token usage as OpenAI reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
}

impl Usage {
    /// Reads an OpenAI `usage` object; `None` when absent or all zero.
    pub fn from_json(v: &Value) -> Option<Usage> {
        let u = v.as_object()?;
        let get = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
        let usage = Usage {
            prompt_tokens: get("prompt_tokens"),
            completion_tokens: get("completion_tokens"),
            total_tokens: get("total_tokens"),
        };
        if usage.total_tokens == 0 && usage.prompt_tokens == 0 && usage.completion_tokens == 0 {
            None
        } else {
            Some(usage)
        }
    }

    /// One API's repair: upstream total without a prompt count -> local prompt count and the
    /// rest as completion.
    pub fn repaired(self, local_prompt: i64) -> Usage {
        if self.prompt_tokens == 0 && self.total_tokens > 0 {
            Usage {
                prompt_tokens: local_prompt,
                completion_tokens: (self.total_tokens - local_prompt).max(0),
                total_tokens: self.total_tokens,
            }
        } else {
            self
        }
    }
}

/// What the relay reads from a request body (read once, not re-serialised unless needed).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub model: String,
    pub stream: bool,
    pub max_tokens: Option<i64>,
    /// The client asked for `stream_options.include_usage`.
    pub include_usage: bool,
    /// The parsed JSON body (`None` for multipart).
    pub json: Option<Value>,
}

impl RequestMeta {
    /// Parses a JSON body.
    pub fn from_json(v: Value) -> RequestMeta {
        let model = v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let max_tokens = v
            .get("max_tokens")
            .or_else(|| v.get("max_completion_tokens"))
            .and_then(Value::as_i64);
        // `get` twice rather than `pointer`, which allocates two strings per path segment.
        let include_usage = v
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        RequestMeta {
            model,
            stream,
            max_tokens,
            include_usage,
            json: Some(v),
        }
    }
}

/// Finds a text field of a `multipart/form-data` body (the `model` of audio uploads).
pub fn multipart_field(body: &[u8], content_type: &str, name: &str) -> Option<String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let text = String::from_utf8_lossy(body);
    for part in text.split(delim.as_str()) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let wanted = format!("name=\"{name}\"");
        if head.contains(&wanted) && !head.contains("filename=") {
            return Some(
                value
                    .trim_end_matches("\r\n")
                    .trim_end_matches("--")
                    .trim()
                    .to_string(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_and_usage() {
        let m = RequestMeta::from_json(json!({"model":"gpt-4","stream":true,"max_tokens":7,
            "stream_options":{"include_usage":true}}));
        assert_eq!(m.model, "gpt-4");
        assert!(m.stream && m.include_usage);
        assert_eq!(m.max_tokens, Some(7));
        assert_eq!(
            Usage::from_json(&json!({"prompt_tokens":0,"total_tokens":0})),
            None
        );
        let u = Usage::from_json(&json!({"total_tokens":10}))
            .unwrap()
            .repaired(4);
        assert_eq!((u.prompt_tokens, u.completion_tokens), (4, 6));
    }

    #[test]
    fn multipart_model() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\nabc\r\n--XX\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XX--\r\n";
        assert_eq!(
            multipart_field(body, "multipart/form-data; boundary=XX", "model").as_deref(),
            Some("whisper-1")
        );
    }
}
