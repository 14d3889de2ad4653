//! Xunfei Spark over WebSocket (channel type 18) <-> OpenAI. Pure: the signed `wss://` URL
//! (HMAC-SHA256 over `host`, `date` and the request line, Xunfei's scheme; the date is an
//! argument), the request frame, and the answer frames (`header.code`, `payload.choices.text[]`,
//! `header.status == 2` on the last, `payload.usage.text` on the last) as OpenAI answers and
//! chunks. The relay holds the socket. Key: `APPID|APISecret|APIKey` (One API's format).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::bedrock::hmac;

/// The default base URL.
pub const DEFAULT_BASE: &str = "wss://spark-api.xf-yun.com";

/// The API version of a model (One API's rules): a known name (`Spark-Lite` -> `v1.1`, ...),
/// else what follows the first `-` (`SparkDesk-v3.5` -> `v3.5`), else the channel's
/// `api_version`, else `v1.1`.
pub fn version(model: &str, channel_version: Option<&str>) -> String {
    let known = match model.to_ascii_lowercase().as_str() {
        "spark-lite" => Some("v1.1"),
        "spark-pro" => Some("v3.1"),
        "spark-pro-128k" => Some("v3.1-128K"),
        "spark-max" => Some("v3.5"),
        "spark-max-32k" => Some("v3.5-32K"),
        "spark-4.0-ultra" => Some("v4.0"),
        _ => None,
    };
    if let Some(v) = known {
        return v.into();
    }
    if let Some((_, v)) = model.split_once('-').filter(|(_, v)| !v.is_empty()) {
        return v.into();
    }
    channel_version
        .filter(|v| !v.is_empty())
        .unwrap_or("v1.1")
        .into()
}

/// The `domain` parameter of an API version (Xunfei's table).
pub fn domain(version: &str) -> String {
    match version {
        "v1.1" => "lite".into(),
        "v2.1" => "generalv2".into(),
        "v3.1" => "generalv3".into(),
        "v3.1-128K" => "pro-128k".into(),
        "v3.5" => "generalv3.5".into(),
        "v3.5-32K" => "max-32k".into(),
        "v4.0" => "4.0Ultra".into(),
        v => format!("general{v}"),
    }
}

/// The socket path of an API version.
pub fn path(version: &str) -> String {
    match version {
        "v3.1-128K" => "/chat/pro-128k".into(),
        "v3.5-32K" => "/chat/max-32k".into(),
        v => format!("/{v}/chat"),
    }
}

/// A unix time as RFC 1123 (`Fri, 05 May 2023 10:43:39 GMT`).
pub fn rfc1123(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = crate::relay::bedrock::amz_date(unix);
    let (y, m, day) = (&d[..4], &d[4..6], &d[6..8]);
    let month = MONTHS[m.parse::<usize>().unwrap_or(1).clamp(1, 12) - 1];
    let weekday = DAYS[unix.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{weekday}, {day} {month} {y} {}:{}:{} GMT",
        &d[9..11],
        &d[11..13],
        &d[13..15]
    )
}

/// The base64 HMAC-SHA256 of `host: {host}\ndate: {date}\nGET {path} HTTP/1.1` under the
/// APISecret.
pub fn signature(api_secret: &str, host: &str, date: &str, path: &str) -> String {
    let text = format!("host: {host}\ndate: {date}\nGET {path} HTTP/1.1");
    B64.encode(hmac(api_secret.as_bytes(), text.as_bytes()))
}

/// The signed socket URL: `{base}{path}?authorization=..&date=..&host=..`. `host` is the URL's
/// host with its port when it has one.
pub fn auth_url(
    base: &str,
    path: &str,
    api_key: &str,
    api_secret: &str,
    date: &str,
) -> Result<String, String> {
    let mut u = url::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|e| format!("invalid Xunfei base URL: {e}"))?;
    let host = match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err("invalid Xunfei base URL: no host".into()),
    };
    let sig = signature(api_secret, &host, date, u.path());
    let authorization = format!(
        r#"api_key="{api_key}", algorithm="hmac-sha256", headers="host date request-line", signature="{sig}""#
    );
    u.query_pairs_mut()
        .append_pair("authorization", &B64.encode(authorization))
        .append_pair("date", date)
        .append_pair("host", &host);
    Ok(u.into())
}

/// `APPID|APISecret|APIKey`.
pub fn split_key(key: &str) -> Option<(&str, &str, &str)> {
    let mut p = key.trim().split('|');
    match (p.next(), p.next(), p.next(), p.next()) {
        (Some(a), Some(s), Some(k), None) if !a.is_empty() && !s.is_empty() && !k.is_empty() => {
            Some((a, s, k))
        }
        _ => None,
    }
}

/// An OpenAI chat request as Spark's request frame.
pub fn to_frame(req: &Value, app_id: &str, domain: &str) -> Result<Value, String> {
    let messages = super::messages_of(req)?;
    let text: Vec<Value> = messages
        .iter()
        .map(|m| {
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            json!({"role": m.get("role").and_then(Value::as_str).unwrap_or("user"), "content": content})
        })
        .collect();
    let mut chat = json!({"domain": domain});
    if let Some(t) = req.get("temperature").filter(|v| v.is_number()) {
        chat["temperature"] = t.clone();
    }
    if let Some(k) = req.get("top_k").and_then(Value::as_i64) {
        chat["top_k"] = json!(k);
    }
    if let Some(m) = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_i64)
        .filter(|m| *m > 0)
    {
        chat["max_tokens"] = json!(m);
    }
    let mut header = json!({"app_id": app_id});
    if let Some(u) = req
        .get("user")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        header["uid"] = json!(u.chars().take(32).collect::<String>());
    }
    let mut payload = json!({"message": {"text": text}});
    // Function calling: the tools' functions (`name`, `description`, `parameters`).
    let functions: Vec<Value> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("function").cloned())
        .collect();
    if !functions.is_empty() {
        payload["functions"] = json!({"text": functions});
    }
    Ok(json!({"header": header, "parameter": {"chat": chat}, "payload": payload}))
}

/// The HTTP status for a Spark error code (for retry and auto-disable).
pub fn error_status(code: i64) -> u16 {
    match code {
        // Authorisation: the app has no rights to this service.
        11200 => 403,
        // Daily quota, QPS, concurrency.
        10007 | 11201..=11203 => 429,
        // Bad parameters, content moderation, too long.
        10003..=10005 | 10013 | 10014 | 10019 | 10160..=10163 | 10907 => 400,
        _ => 500,
    }
}

/// A frame's error, when `header.code` is not 0: its HTTP status and OpenAI error object.
pub fn frame_error(frame: &Value) -> Option<(u16, Value)> {
    let code = frame.pointer("/header/code").and_then(Value::as_i64)?;
    if code == 0 {
        return None;
    }
    let status = error_status(code);
    let msg = frame
        .pointer("/header/message")
        .and_then(Value::as_str)
        .unwrap_or("Xunfei error");
    let kind = if status == 403 {
        "permission_error"
    } else {
        "xunfei_error"
    };
    Some((
        status,
        json!({"message": msg, "type": kind, "param": "", "code": code.to_string()}),
    ))
}

/// Whether a frame is the last of the answer.
pub fn is_last(frame: &Value) -> bool {
    frame.pointer("/header/status").and_then(Value::as_i64) == Some(2)
        || frame
            .pointer("/payload/choices/status")
            .and_then(Value::as_i64)
            == Some(2)
}

fn text_of(frame: &Value) -> String {
    frame
        .pointer("/payload/choices/text")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("content").and_then(Value::as_str))
        .collect()
}

/// A frame's `function_call` as OpenAI `tool_calls` (the id from the session id).
fn tool_calls_of(frame: &Value) -> Option<Value> {
    let call = frame
        .pointer("/payload/choices/text")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|t| t.get("function_call").filter(|c| c.is_object()))?;
    let arguments = match call.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => "{}".into(),
    };
    let sid = frame
        .pointer("/header/sid")
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(
        json!([{"index": 0, "id": format!("call_{sid}"), "type": "function",
        "function": {"name": call.get("name").cloned().unwrap_or_default(), "arguments": arguments}}]),
    )
}

fn usage_of(frame: &Value) -> Option<Value> {
    let u = frame.pointer("/payload/usage/text")?;
    let get = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
    Some(json!({"prompt_tokens": get("prompt_tokens"),
        "completion_tokens": get("completion_tokens"), "total_tokens": get("total_tokens")}))
}

/// One frame as OpenAI chunks; its usage (on the last frame) comes back apart, to be sent once.
pub fn frame_to_chunk(
    frame: &Value,
    model: &str,
    id: &str,
    created: i64,
) -> Result<(Vec<Value>, Option<Value>), Value> {
    if let Some((_, e)) = frame_error(frame) {
        return Err(e);
    }
    let calls = tool_calls_of(frame);
    let finish = match (is_last(frame), calls.is_some()) {
        (_, true) => json!("tool_calls"),
        (true, false) => json!("stop"),
        _ => Value::Null,
    };
    let mut delta = json!({"role": "assistant", "content": text_of(frame)});
    if let Some(c) = calls {
        delta["tool_calls"] = c;
    }
    let chunk = json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Ok((vec![chunk], usage_of(frame)))
}

/// All the frames of an answer (in order) as an OpenAI chat completion.
pub fn from_frames(frames: &[Value], model: &str, id: &str, created: i64) -> Result<Value, Value> {
    let mut text = String::new();
    let mut usage = None;
    let mut calls = None;
    for f in frames {
        if let Some((_, e)) = frame_error(f) {
            return Err(e);
        }
        text.push_str(&text_of(f));
        usage = usage_of(f).or(usage);
        calls = tool_calls_of(f).or(calls);
    }
    let mut message = json!({"role": "assistant", "content": text});
    let finish = match calls {
        Some(mut c) => {
            if let Some(o) = c[0].as_object_mut() {
                o.remove("index");
            }
            message["tool_calls"] = c;
            "tool_calls"
        }
        None => "stop",
    };
    let mut out = json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    });
    if let Some(u) = usage {
        out["usage"] = u;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<Value> {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/xunfei/frames.jsonl",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
    }

    #[test]
    fn versions_and_domains() {
        assert_eq!(version("Spark-Lite", None), "v1.1");
        assert_eq!(version("spark-max-32k", Some("v4.0")), "v3.5-32K");
        assert_eq!(version("SparkDesk-v3.5", None), "v3.5");
        assert_eq!(version("SparkDesk", Some("v4.0")), "v4.0");
        assert_eq!(version("SparkDesk", None), "v1.1");
        assert_eq!(domain("v3.5"), "generalv3.5");
        assert_eq!(domain("v4.0"), "4.0Ultra");
        assert_eq!(domain("v1.1"), "lite");
        assert_eq!(path("v3.5"), "/v3.5/chat");
        assert_eq!(path("v3.1-128K"), "/chat/pro-128k");
    }

    #[test]
    fn signature_matches_xunfeis_example() {
        // Xunfei's documented example (its inputs and signature), also what
        // `printf 'host: ...\ndate: ...\nGET /v1.1/chat HTTP/1.1' |
        //  openssl dgst -sha256 -hmac MjlmNzkzNmZkMDQ2OTc0ZDdmNGE2ZTZi -binary | base64` gives.
        assert_eq!(rfc1123(1_683_283_419), "Fri, 05 May 2023 10:43:39 GMT");
        assert_eq!(rfc1123(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        let date = "Fri, 05 May 2023 10:43:39 GMT";
        assert_eq!(
            signature(
                "MjlmNzkzNmZkMDQ2OTc0ZDdmNGE2ZTZi",
                "spark-api.xf-yun.com",
                date,
                "/v1.1/chat"
            ),
            "z5gHdu3pxVV4ADMyk467wOWDQ9q6BQzR3nfMTjc/DaQ="
        );
        let u = auth_url(
            DEFAULT_BASE,
            "/v1.1/chat",
            "addd2272b6d8b7c8abdd79531420ca3b",
            "MjlmNzkzNmZkMDQ2OTc0ZDdmNGE2ZTZi",
            date,
        )
        .unwrap();
        let parsed = url::Url::parse(&u).unwrap();
        assert_eq!(parsed.path(), "/v1.1/chat");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["host"], "spark-api.xf-yun.com");
        assert_eq!(q["date"], date);
        let auth = String::from_utf8(B64.decode(&q["authorization"]).unwrap()).unwrap();
        assert_eq!(
            auth,
            r#"api_key="addd2272b6d8b7c8abdd79531420ca3b", algorithm="hmac-sha256", headers="host date request-line", signature="z5gHdu3pxVV4ADMyk467wOWDQ9q6BQzR3nfMTjc/DaQ=""#
        );
        let local = auth_url("ws://127.0.0.1:9", "/v3.5/chat", "k", "s", date).unwrap();
        assert!(local.ends_with("&host=127.0.0.1%3A9"), "{local}");
        assert_eq!(split_key("app|sec|key"), Some(("app", "sec", "key")));
        assert_eq!(split_key("app|sec"), None);
    }

    #[test]
    fn frames_translate() {
        let req = json!({"messages": [{"role": "system", "content": "s"},
            {"role": "user", "content": "你好"}], "temperature": 0.5, "max_tokens": 100,
            "top_k": 4});
        let f = to_frame(&req, "app1", "generalv3.5").unwrap();
        assert_eq!(
            f,
            json!({"header": {"app_id": "app1"}, "parameter": {"chat": {"domain": "generalv3.5",
                "temperature": 0.5, "top_k": 4, "max_tokens": 100}},
                "payload": {"message": {"text": [{"role": "system", "content": "s"},
                    {"role": "user", "content": "你好"}]}}})
        );
        let fs = frames();
        let out = from_frames(&fs, "Spark-Max", "id", 1).unwrap();
        assert_eq!(
            out["choices"][0]["message"]["content"],
            "你好！我是讯飞星火。"
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12})
        );
        let mut text = String::new();
        let mut usage = None;
        for f in &fs {
            let (c, u) = frame_to_chunk(f, "Spark-Max", "id", 1).unwrap();
            text.push_str(c[0]["choices"][0]["delta"]["content"].as_str().unwrap());
            usage = u.or(usage);
        }
        assert_eq!(text, "你好！我是讯飞星火。");
        assert!(is_last(fs.last().unwrap()) && !is_last(&fs[0]));
        assert_eq!(usage.unwrap()["total_tokens"], 12);
        // Function calling both ways.
        let tools = json!({"messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "d", "parameters": {"type": "object"}}}]});
        let f = to_frame(&tools, "a", "generalv3.5").unwrap();
        assert_eq!(
            f["payload"]["functions"],
            json!({"text": [{"name": "get_weather", "description": "d",
                "parameters": {"type": "object"}}]})
        );
        let call = json!({"header": {"code": 0, "sid": "s1", "status": 2},
            "payload": {"choices": {"status": 2, "seq": 0, "text": [{"content": "", "role": "assistant",
                "index": 0, "function_call": {"name": "get_weather",
                    "arguments": "{\"city\":\"Hefei\"}"}}]}}});
        let out = from_frames(std::slice::from_ref(&call), "m", "i", 1).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"],
            json!([{"id": "call_s1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Hefei\"}"}}])
        );
        let (c, _) = frame_to_chunk(&call, "m", "i", 1).unwrap();
        assert_eq!(c[0]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        assert_eq!(c[0]["choices"][0]["finish_reason"], "tool_calls");
        let err = json!({"header": {"code": 11200, "message": "AppIdNoAuthError", "sid": "x", "status": 2}});
        let (status, e) = frame_error(&err).unwrap();
        assert_eq!((status, e["code"].as_str()), (403, Some("11200")));
        assert!(from_frames(&[err], "m", "i", 1).is_err());
        assert_eq!(error_status(11202), 429);
        assert_eq!(error_status(10013), 400);
    }
}
