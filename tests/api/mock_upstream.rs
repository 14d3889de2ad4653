//! A tiny scripted HTTP/1.1 upstream on a `TcpListener`, for what wiremock cannot do: a slow
//! first byte, chunk timing, dropping the connection mid-stream. Each connection serves one
//! request (`Connection: close`).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// Body parts, each sent after its delay (chunked encoding).
    pub parts: Vec<(Duration, Vec<u8>)>,
    /// Close the connection without the final chunk (a mid-stream drop).
    pub drop_at_end: bool,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json".into(),
            parts: vec![(Duration::ZERO, body.to_string().into_bytes())],
            drop_at_end: false,
        }
    }

    pub fn sse(events: &[String]) -> Reply {
        Reply {
            status: 200,
            content_type: "text/event-stream".into(),
            parts: events
                .iter()
                .map(|e| (Duration::from_millis(5), e.clone().into_bytes()))
                .collect(),
            drop_at_end: false,
        }
    }
}

type Script = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// A running mock upstream.
#[derive(Clone)]
pub struct MockUpstream {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Replies written to the end (a cancelled stream does not count).
    pub completed: Arc<std::sync::atomic::AtomicUsize>,
}

impl MockUpstream {
    pub async fn start(
        script: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let rec = received.clone();
        let completed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let done = completed.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let script = script.clone();
                let rec = rec.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    if let Ok(true) = serve(sock, script, rec).await {
                        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        MockUpstream {
            url,
            received,
            completed,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    script: Script,
    rec: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<bool> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut it = first.split(' ');
    let method = it.next().unwrap_or("").to_string();
    let path = it.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    let received = Received {
        method,
        path,
        headers,
        body,
    };
    rec.lock().unwrap().push(received.clone());
    let reply = script(&received);
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        reply.status, reply.content_type
    );
    sock.write_all(head.as_bytes()).await?;
    sock.flush().await?;
    for (delay, part) in &reply.parts {
        tokio::time::sleep(*delay).await;
        sock.write_all(format!("{:x}\r\n", part.len()).as_bytes())
            .await?;
        sock.write_all(part).await?;
        sock.write_all(b"\r\n").await?;
        sock.flush().await?;
    }
    if reply.drop_at_end {
        return Ok(false);
    }
    sock.write_all(b"0\r\n\r\n").await?;
    sock.flush().await?;
    Ok(true)
}

/// OpenAI chat completion JSON with a usage.
pub fn chat_completion(content: &str, prompt: i64, completion: i64) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-3.5-turbo",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion},
    })
}

/// OpenAI SSE events for `pieces`, optionally with a usage-only chunk, and `[DONE]`.
pub fn chat_stream(pieces: &[&str], usage: Option<(i64, i64)>, done: bool) -> Vec<String> {
    let mut v: Vec<String> = pieces
        .iter()
        .map(|p| {
            format!(
                "data: {}\n\n",
                serde_json::json!({"id":"c","object":"chat.completion.chunk","created":1,
                    "model":"gpt-3.5-turbo","choices":[{"index":0,"delta":{"content":p},
                    "finish_reason":null}]})
            )
        })
        .collect();
    if let Some((p, c)) = usage {
        v.push(format!(
            "data: {}\n\n",
            serde_json::json!({"id":"c","object":"chat.completion.chunk","created":1,
                "model":"gpt-3.5-turbo","choices":[],
                "usage":{"prompt_tokens":p,"completion_tokens":c,"total_tokens":p+c}})
        ));
    }
    if done {
        v.push("data: [DONE]\n\n".into());
    }
    v
}
