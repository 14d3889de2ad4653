//! The pass-through adaptor for every channel type whose upstream speaks OpenAI's API: default
//! base URLs, path rules (One API §4.5) and vendor headers. Pure: no I/O.

use serde_json::Value;

use super::{Adaptor, Ctx, UpstreamRequest};

/// The OpenAI-compatible adaptor.
#[derive(Debug)]
pub struct OpenAi;

/// The default base URL of a channel type (the catalog's; empty when it must be set).
pub fn default_base_url(channel_type: i64) -> &'static str {
    crate::channel::catalog::get(channel_type)
        .map(|t| t.base_url)
        .unwrap_or("")
}

/// The base URL a channel uses: its own, else its type's default; no trailing `/`.
pub fn base_of(channel_type: i64, base_url: &str) -> &str {
    let base = if base_url.trim().is_empty() {
        default_base_url(channel_type)
    } else {
        base_url.trim()
    };
    base.trim_end_matches('/')
}

/// The upstream URL for a client path (`/v1/...`, query included) on an OpenAI-format channel.
/// `user_id` is the channel's `config.user_id` (Cloudflare's account id).
pub fn request_url(channel_type: i64, base_url: &str, path: &str, user_id: Option<&str>) -> String {
    let base = base_of(channel_type, base_url);
    let without_v1 = path.strip_prefix("/v1").unwrap_or(path);
    match channel_type {
        // OpenAI-compatible and Gemini's OpenAI endpoint: base + path minus /v1.
        50 | 51 => format!("{base}{without_v1}"),
        // Novita's base already ends in /v3/openai.
        41 => format!("{base}{without_v1}"),
        // Doubao: /api/v3/...
        40 => format!("{base}/api/v3{without_v1}"),
        // Baidu Qianfan v2: /v2/...
        47 => format!("{base}/v2{without_v1}"),
        // Ali (DashScope) and Ali Bailian: the OpenAI-compatible mode, /compatible-mode/v1/...
        17 | 49 => format!("{base}/compatible-mode{path}"),
        // Zhipu: the v4 API is OpenAI's format (glm-*, embeddings, cogview images).
        16 => format!("{base}/api/paas/v4{without_v1}"),
        // Cohere: its OpenAI compatibility API.
        35 => format!("{base}/compatibility{path}"),
        // Minimax: its own chat path.
        27 if path.starts_with("/v1/chat/completions") => {
            format!("{base}/v1/text/chatcompletion_v2")
        }
        // Cloudflare Workers AI: per-account path (an AI Gateway base already names the account).
        37 if base.starts_with("https://gateway.ai.cloudflare.com") => format!("{base}{path}"),
        37 => format!(
            "{base}/client/v4/accounts/{}/ai{path}",
            user_id.unwrap_or_default()
        ),
        _ if base.starts_with("https://gateway.ai.cloudflare.com") => {
            format!("{base}{without_v1}")
        }
        _ => format!("{base}{path}"),
    }
}

/// The `usage` of an OpenAI answer, read without building the rest of the body (the other
/// fields are skipped, not allocated): billing a passed-through answer needs nothing else.
/// `None` when the body is not JSON or reports no usage.
pub fn usage_of(body: &[u8]) -> Option<super::types::Usage> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        usage: Option<Value>,
    }
    let usage = serde_json::from_slice::<Answer>(body).ok()?.usage?;
    super::types::Usage::from_json(&usage)
}

/// The generated text of an OpenAI chat or completion response.
pub fn completion_text(body: &Value) -> String {
    let mut out = String::new();
    if let Some(choices) = body.get("choices").and_then(Value::as_array) {
        for c in choices {
            if let Some(t) = c.pointer("/message/content").and_then(Value::as_str) {
                out.push_str(t);
            }
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                out.push_str(t);
            }
        }
    }
    out
}

/// OpenAI's error object from an upstream error body (One API's `RelayErrorHandler`): the
/// upstream's own `error` object when it has a message, else the first message-like field.
pub fn openai_error(status: u16, body: &[u8]) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(v) = &parsed {
        if let Some(e) = v.get("error").filter(|e| e.get("message").is_some()) {
            let mut e = e.clone();
            if e.get("type").is_none() {
                e["type"] = "upstream_error".into();
            }
            return e;
        }
        for p in [
            "/message",
            "/msg",
            "/err",
            "/error_msg",
            "/header/message",
            "/response/error/message",
            "/error",
        ] {
            if let Some(m) = v
                .pointer(p)
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
            {
                return serde_json::json!({
                    "message": m, "type": "upstream_error",
                    "param": status.to_string(), "code": "bad_response_status_code",
                });
            }
        }
    }
    serde_json::json!({
        "message": format!("bad response status code {status}"),
        "type": "upstream_error",
        "param": status.to_string(),
        "code": "bad_response_status_code",
    })
}

impl Adaptor for OpenAi {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        let mut headers = vec![("Authorization".to_string(), format!("Bearer {}", ctx.key))];
        if ctx.channel_type == 20 {
            headers.push((
                "HTTP-Referer".to_string(),
                "https://github.com/songquanpeng/one-api".to_string(),
            ));
            headers.push(("X-Title".to_string(), "One API".to_string()));
        }
        UpstreamRequest {
            url: request_url(ctx.channel_type, ctx.base_url, ctx.path, ctx.user_id),
            headers,
        }
    }

    fn supports_include_usage(&self, channel_type: i64) -> bool {
        channel_type == 1
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        openai_error(status, body)
    }
}

#[cfg(test)]
mod usage_tests {
    use super::usage_of;

    #[test]
    fn usage_is_read_without_the_rest() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"hi \"there\""}}],
            "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        let u = usage_of(body).unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (12, 3, 15)
        );
        assert!(usage_of(br#"{"choices":[],"usage":null}"#).is_none());
        assert!(usage_of(br#"{"choices":[]}"#).is_none());
        assert!(usage_of(b"not json").is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_one_api() {
        let p = "/v1/chat/completions";
        assert_eq!(
            request_url(1, "", p, None),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            request_url(8, "http://x:1/", p, None),
            "http://x:1/v1/chat/completions"
        );
        assert_eq!(
            request_url(50, "http://x/api", p, None),
            "http://x/api/chat/completions"
        );
        assert_eq!(
            request_url(29, "", p, None),
            "https://api.groq.com/openai/v1/chat/completions"
        );
        assert_eq!(
            request_url(40, "", p, None),
            "https://ark.cn-beijing.volces.com/api/v3/chat/completions"
        );
        assert_eq!(
            request_url(41, "", p, None),
            "https://api.novita.ai/v3/openai/chat/completions"
        );
        assert_eq!(
            request_url(47, "", p, None),
            "https://qianfan.baidubce.com/v2/chat/completions"
        );
        assert_eq!(
            request_url(49, "", "/v1/embeddings", None),
            "https://dashscope.aliyuncs.com/compatible-mode/v1/embeddings"
        );
        assert_eq!(
            request_url(30, "", p, None),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(
            request_url(20, "", p, None),
            "https://openrouter.ai/api/v1/chat/completions"
        );
    }

    #[test]
    fn vendor_path_rules() {
        let p = "/v1/chat/completions";
        // Zhipu: the v4 API.
        assert_eq!(
            request_url(16, "", p, None),
            "https://open.bigmodel.cn/api/paas/v4/chat/completions"
        );
        assert_eq!(
            request_url(16, "", "/v1/embeddings", None),
            "https://open.bigmodel.cn/api/paas/v4/embeddings"
        );
        // Ali DashScope: compatible mode, as Bailian.
        assert_eq!(
            request_url(17, "", p, None),
            "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions"
        );
        // Cohere: the compatibility API.
        assert_eq!(
            request_url(35, "", p, None),
            "https://api.cohere.ai/compatibility/v1/chat/completions"
        );
        // Minimax: chat has its own path; other endpoints do not.
        assert_eq!(
            request_url(27, "", p, None),
            "https://api.minimax.chat/v1/text/chatcompletion_v2"
        );
        assert_eq!(
            request_url(27, "", "/v1/embeddings", None),
            "https://api.minimax.chat/v1/embeddings"
        );
        // Cloudflare Workers AI: the account id from the channel config, or an AI Gateway base.
        assert_eq!(
            request_url(37, "", p, Some("acc")),
            "https://api.cloudflare.com/client/v4/accounts/acc/ai/v1/chat/completions"
        );
        assert_eq!(
            request_url(
                37,
                "https://gateway.ai.cloudflare.com/v1/acc/gw/workers-ai",
                p,
                None
            ),
            "https://gateway.ai.cloudflare.com/v1/acc/gw/workers-ai/v1/chat/completions"
        );
        // An OpenAI channel behind an AI Gateway: the gateway base replaces /v1.
        assert_eq!(
            request_url(
                1,
                "https://gateway.ai.cloudflare.com/v1/acc/gw/openai",
                p,
                None
            ),
            "https://gateway.ai.cloudflare.com/v1/acc/gw/openai/chat/completions"
        );
        // Gemini's OpenAI endpoint and DeepSeek, xAI, SiliconFlow, Moonshot: plain.
        assert_eq!(
            request_url(51, "", p, None),
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
        );
        assert_eq!(
            request_url(36, "", p, None),
            "https://api.deepseek.com/v1/chat/completions"
        );
        // A query string is kept.
        assert_eq!(
            request_url(1, "", "/v1/chat/completions?x=1", None),
            "https://api.openai.com/v1/chat/completions?x=1"
        );
    }

    #[test]
    fn openrouter_headers_and_bearer() {
        let ctx = Ctx {
            channel_type: 20,
            base_url: "",
            key: "k",
            api_version: None,
            user_id: None,
            path: "/v1/chat/completions",
            mode: crate::relay::types::RelayMode::ChatCompletions,
            model: "m",
            stream: false,
            prompt_tokens: 0,
            gemini_version: "v1",
            gemini_safety: "BLOCK_NONE",
            anthropic_version: None,
            anthropic_beta: None,
            request: None,
            config: None,
        };
        let up = OpenAi.build_request(&ctx);
        assert!(
            up.headers
                .contains(&("Authorization".into(), "Bearer k".into()))
        );
        assert!(up.headers.iter().any(|(k, _)| k == "HTTP-Referer"));
    }

    #[test]
    fn errors_keep_upstream_object() {
        let e = OpenAi.map_error(401, br#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#);
        assert_eq!(e["code"], "invalid_api_key");
        let e = OpenAi.map_error(500, b"oops");
        assert_eq!(e["message"], "bad response status code 500");
        let e = OpenAi.map_error(502, br#"{"msg":"down"}"#);
        assert_eq!(e["message"], "down");
    }
}
