//! Server-sent events, passed through line by line as they arrive.
//!
//! [`SseProcessor`] splits upstream bytes into lines (events split across chunks and CRLF are
//! handled), forwards each complete line unchanged, and meters on the side: the text of
//! `choices[].delta.content` and the last `usage` seen (providers that repeat a cumulative usage
//! in every chunk are billed once, from the last one). It drops the usage-only chunk the relay
//! asked for when the client did not, and appends `data: [DONE]` if the upstream never sent it.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;

use super::types::Usage;

/// Meters and filters an OpenAI-format SSE stream.
#[derive(Debug, Default)]
pub struct SseProcessor {
    buf: BytesMut,
    /// Drop the chunk that only carries usage (the client did not ask for it).
    strip_usage_chunk: bool,
    skip_blank: bool,
    /// Completion text seen so far.
    pub text: String,
    /// The last usage seen.
    pub usage: Option<Usage>,
    /// Whether `data: [DONE]` went through.
    pub saw_done: bool,
    /// Whether any event went through.
    pub saw_data: bool,
}

impl SseProcessor {
    pub fn new(strip_usage_chunk: bool) -> Self {
        SseProcessor {
            strip_usage_chunk,
            ..Default::default()
        }
    }

    /// Feeds upstream bytes; returns the bytes to send to the client now (complete lines).
    ///
    /// Lines are read in place from `chunk`; only a line cut across two chunks is copied (into
    /// `buf`). The output, never longer than the input, is allocated once, and only when a line
    /// ends here: growing it line by line, and splitting each line off `buf`, cost allocations
    /// per event.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let Some(end) = chunk.iter().rposition(|b| *b == b'\n') else {
            self.buf.extend_from_slice(chunk);
            return Bytes::new();
        };
        let (complete, tail) = chunk.split_at(end + 1);
        let mut out = BytesMut::with_capacity(self.buf.len() + complete.len());
        let mut lines = complete.split_inclusive(|b| *b == b'\n');
        if !self.buf.is_empty() {
            // The line cut across chunks, completed; `buf` keeps its capacity.
            let mut line = std::mem::take(&mut self.buf);
            line.extend_from_slice(lines.next().unwrap_or_default());
            self.line(&line, &mut out);
            line.clear();
            self.buf = line;
        }
        for line in lines {
            self.line(line, &mut out);
        }
        self.buf.extend_from_slice(tail);
        out.freeze()
    }

    /// Ends the stream: flushes a trailing partial line and appends `[DONE]` if missing.
    pub fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if !self.buf.is_empty() {
            let mut rest = self.buf.split();
            rest.extend_from_slice(b"\n");
            self.line(&rest, &mut out);
            out.extend_from_slice(b"\n");
        }
        if !self.saw_done {
            out.extend_from_slice(b"data: [DONE]\n\n");
            self.saw_done = true;
        }
        out.freeze()
    }

    fn line(&mut self, raw: &[u8], out: &mut BytesMut) {
        let trimmed = trim_eol(raw);
        if trimmed.is_empty() {
            if self.skip_blank {
                self.skip_blank = false;
                return;
            }
            out.extend_from_slice(raw);
            return;
        }
        self.skip_blank = false;
        let Some(data) = trimmed.strip_prefix(b"data:") else {
            out.extend_from_slice(raw);
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            self.saw_done = true;
            out.extend_from_slice(raw);
            return;
        }
        self.saw_data = true;
        if let Some(strip) = self.meter(data)
            && strip
        {
            self.skip_blank = true;
            return;
        }
        out.extend_from_slice(raw);
    }
}

/// The parts of a chunk that are metered, borrowed from the line where possible: parsing into a
/// `Value` allocated a map per chunk, which showed on the streaming hot path.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChunkChoice<'a>>>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<ChunkDelta<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChunkDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

impl SseProcessor {
    /// Meters one `data:` payload; `Some(true)` when it is the usage-only chunk to drop, `None`
    /// when it is not JSON.
    fn meter(&mut self, data: &[u8]) -> Option<bool> {
        let (no_choices, usage) = match serde_json::from_slice::<Chunk>(data) {
            Ok(c) => {
                for choice in c.choices.iter().flatten() {
                    if let Some(t) = choice.delta.as_ref().and_then(|d| d.content.as_deref()) {
                        self.text.push_str(t);
                    }
                    if let Some(t) = &choice.text {
                        self.text.push_str(t);
                    }
                }
                (c.choices.is_none_or(|c| c.is_empty()), c.usage)
            }
            // Unusual shapes (content as an array, choices not a list...): the general path.
            Err(_) => {
                let v = serde_json::from_slice::<Value>(data).ok()?;
                let choices = v.get("choices").and_then(Value::as_array);
                for c in choices.into_iter().flatten() {
                    if let Some(t) = c.pointer("/delta/content").and_then(Value::as_str) {
                        self.text.push_str(t);
                    }
                    if let Some(t) = c.get("text").and_then(Value::as_str) {
                        self.text.push_str(t);
                    }
                }
                let no_choices = choices.is_none_or(|c| c.is_empty());
                (no_choices, v.get("usage").cloned())
            }
        };
        let usage = usage.filter(|u| !u.is_null());
        if let Some(u) = usage.as_ref().and_then(Usage::from_json) {
            self.usage = Some(u);
        }
        Some(self.strip_usage_chunk && no_choices && usage.is_some())
    }
}

/// Splits a provider's SSE bytes into events (`event:` name, joined `data:`), for streams that
/// are translated rather than passed through. Handles CRLF, events split across chunks, comments
/// and `data:` without a space. A non-standard `meta:` field (Zhipu v3) is an event named `meta`.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
    event: String,
    data: Vec<String>,
}

impl SseDecoder {
    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line = self.buf.split_to(pos + 1);
            self.line(trim_eol(&line), &mut out);
        }
        out
    }

    /// The stream ended: a last event without its blank line.
    pub fn finish(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.buf.is_empty() {
            let rest = self.buf.split();
            self.line(trim_eol(&rest), &mut out);
        }
        self.line(b"", &mut out);
        out
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<(String, String)>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                out.push((std::mem::take(&mut self.event), self.data.join("\n")));
                self.data.clear();
            }
            self.event.clear();
            return;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => self.data.push(value.to_string()),
            // Zhipu's v3 stream puts the usage in a `meta:` line: reported as its own event.
            "meta" => out.push(("meta".to_string(), value.to_string())),
            _ => {}
        }
    }
}

fn trim_eol(mut s: &[u8]) -> &[u8] {
    while let Some((last, rest)) = s.split_last() {
        if *last == b'\n' || *last == b'\r' {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn passes_through_split_anywhere() {
        for cut in 0..STREAM.len() {
            let mut p = SseProcessor::new(false);
            let mut out = Vec::new();
            out.extend_from_slice(&p.feed(&STREAM.as_bytes()[..cut]));
            out.extend_from_slice(&p.feed(&STREAM.as_bytes()[cut..]));
            out.extend_from_slice(&p.finish());
            assert_eq!(String::from_utf8(out).unwrap(), STREAM);
            assert_eq!(p.text, "Hello");
            assert_eq!(p.usage.unwrap().total_tokens, 7);
        }
    }

    #[test]
    fn passes_through_one_byte_at_a_time() {
        // Every line spans many chunks, and most chunks hold no line end at all.
        for strip in [false, true] {
            let mut p = SseProcessor::new(strip);
            let mut out = Vec::new();
            for b in STREAM.as_bytes().chunks(1) {
                out.extend_from_slice(&p.feed(b));
            }
            out.extend_from_slice(&p.finish());
            let want = if strip {
                STREAM.replace(
                    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
                    "",
                )
            } else {
                STREAM.to_string()
            };
            assert_eq!(String::from_utf8(out).unwrap(), want);
            assert_eq!(p.text, "Hello");
            assert_eq!(p.usage.unwrap().total_tokens, 7);
        }
    }

    #[test]
    fn meters_escaped_null_and_unusual_chunks() {
        let mut p = SseProcessor::new(true);
        let input = "data: {\"choices\":[{\"delta\":{\"content\":\"a\\n\\u00e9\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":null,\"role\":\"assistant\"}}],\"usage\":null}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":[{\"type\":\"text\"}]},\"text\":\"b\"}]}\n\n\
data: {\"choices\":[{\"index\":0,\"text\":\"c\"}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3,\"total_tokens\":4}}\n\n";
        let out = p.feed(input.as_bytes());
        assert_eq!(p.text, "a\né".to_string() + "bc");
        assert_eq!(p.usage.unwrap().total_tokens, 4);
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            !out.contains("usage\":{"),
            "the usage-only chunk is dropped: {out}"
        );
        assert!(
            out.contains("\"usage\":null"),
            "a null usage is not a usage chunk"
        );
    }

    #[test]
    fn decodes_events_split_anywhere() {
        let raw = "event: message_start\r\ndata: {\"a\":1}\r\n\r\n: ping\n\nevent: x\ndata:{\"b\":2}\n\ndata: tail";
        for cut in 0..raw.len() {
            let mut d = SseDecoder::default();
            let mut ev = d.feed(&raw.as_bytes()[..cut]);
            ev.extend(d.feed(&raw.as_bytes()[cut..]));
            ev.extend(d.finish());
            assert_eq!(
                ev,
                vec![
                    ("message_start".to_string(), "{\"a\":1}".to_string()),
                    ("x".to_string(), "{\"b\":2}".to_string()),
                    (String::new(), "tail".to_string()),
                ]
            );
        }
    }

    #[test]
    fn strips_usage_chunk_and_appends_done() {
        let mut p = SseProcessor::new(true);
        let body = STREAM.replace("data: [DONE]\n\n", "").replace('\n', "\r\n");
        let mut out = p.feed(body.as_bytes()).to_vec();
        out.extend_from_slice(&p.finish());
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains("usage"), "{s}");
        assert!(s.ends_with("data: [DONE]\n\n"));
        assert_eq!(p.usage.unwrap().completion_tokens, 2);
    }
}
