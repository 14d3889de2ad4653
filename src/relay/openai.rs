//! The pass-through adaptor for every channel type whose upstream speaks OpenAI's API: default
//! base URLs, path rules (One API §4.5) and vendor headers. Pure: no I/O.

use serde_json::Value;

use super::types::Usage;
use super::{Adaptor, UpstreamRequest};

/// The OpenAI-compatible adaptor.
#[derive(Debug)]
pub struct OpenAi;

/// One API's default base URL for an OpenAI-compatible channel type.
pub fn default_base_url(channel_type: i64) -> &'static str {
    match channel_type {
        1 => "https://api.openai.com",
        2 => "https://oa.api2d.net",
        4 => "https://api.closeai-proxy.xyz",
        5 => "https://api.openai-sb.com",
        6 => "https://api.openaimax.com",
        7 => "https://api.ohmygpt.com",
        9 => "https://api.caipacity.com",
        10 => "https://api.aiproxy.io",
        12 => "https://api.api2gpt.com",
        13 => "https://api.aigc2d.com",
        19 => "https://ai.360.cn",
        20 => "https://openrouter.ai/api",
        22 => "https://fastgpt.run/api/openapi",
        25 => "https://api.moonshot.cn",
        26 => "https://api.baichuan-ai.com",
        27 => "https://api.minimax.chat",
        28 => "https://api.mistral.ai",
        29 => "https://api.groq.com/openai",
        30 => "http://localhost:11434",
        31 => "https://api.lingyiwanwu.com",
        32 => "https://api.stepfun.com",
        36 => "https://api.deepseek.com",
        39 => "https://api.together.xyz",
        40 => "https://ark.cn-beijing.volces.com",
        41 => "https://api.novita.ai/v3/openai",
        44 => "https://api.siliconflow.cn",
        45 => "https://api.x.ai",
        47 => "https://qianfan.baidubce.com",
        48 => "https://spark-api-open.xf-yun.com",
        49 => "https://dashscope.aliyuncs.com",
        51 => "https://generativelanguage.googleapis.com/v1beta/openai/",
        _ => "",
    }
}

/// The upstream URL for a client path (`/v1/...`, query included) on a channel.
pub fn request_url(channel_type: i64, base_url: &str, path: &str) -> String {
    let base = if base_url.is_empty() {
        default_base_url(channel_type)
    } else {
        base_url
    };
    let base = base.trim_end_matches('/');
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
        // Ali Bailian: /compatible-mode/v1/...
        49 => format!("{base}/compatible-mode{path}"),
        // Minimax: its own chat path.
        27 if path.starts_with("/v1/chat/completions") => {
            format!("{base}/v1/text/chatcompletion_v2")
        }
        _ if base.starts_with("https://gateway.ai.cloudflare.com") => {
            format!("{base}{without_v1}")
        }
        _ => format!("{base}{path}"),
    }
}

impl Adaptor for OpenAi {
    fn build_request(
        &self,
        channel_type: i64,
        base_url: &str,
        key: &str,
        path: &str,
    ) -> UpstreamRequest {
        let mut headers = vec![("Authorization".to_string(), format!("Bearer {key}"))];
        if channel_type == 20 {
            headers.push((
                "HTTP-Referer".to_string(),
                "https://github.com/songquanpeng/one-api".to_string(),
            ));
            headers.push(("X-Title".to_string(), "One API".to_string()));
        }
        UpstreamRequest {
            url: request_url(channel_type, base_url, path),
            headers,
        }
    }

    fn supports_include_usage(&self, channel_type: i64) -> bool {
        channel_type == 1
    }

    fn parse_usage(&self, body: &Value) -> Option<Usage> {
        body.get("usage").and_then(Usage::from_json)
    }

    fn completion_text(&self, body: &Value) -> String {
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

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_one_api() {
        let p = "/v1/chat/completions";
        assert_eq!(
            request_url(1, "", p),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            request_url(8, "http://x:1/", p),
            "http://x:1/v1/chat/completions"
        );
        assert_eq!(
            request_url(50, "http://x/api", p),
            "http://x/api/chat/completions"
        );
        assert_eq!(
            request_url(29, "", p),
            "https://api.groq.com/openai/v1/chat/completions"
        );
        assert_eq!(
            request_url(40, "", p),
            "https://ark.cn-beijing.volces.com/api/v3/chat/completions"
        );
        assert_eq!(
            request_url(41, "", p),
            "https://api.novita.ai/v3/openai/chat/completions"
        );
        assert_eq!(
            request_url(47, "", p),
            "https://qianfan.baidubce.com/v2/chat/completions"
        );
        assert_eq!(
            request_url(49, "", "/v1/embeddings"),
            "https://dashscope.aliyuncs.com/compatible-mode/v1/embeddings"
        );
        assert_eq!(
            request_url(30, "", p),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(
            request_url(20, "", p),
            "https://openrouter.ai/api/v1/chat/completions"
        );
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
