//! Token counting with tiktoken-rs, following One API's rules (`relay/adaptor/openai/token.go`):
//! per chat message +3 tokens, +1 for a `name`, plus the text of its content and role, and +3 at
//! the end to prime the reply. gpt-4o / o-series use `o200k_base`, everything else `cl100k_base`.
//!
//! The BPE tables are process-wide singletons in a compact form ([`bpe`]); [`warm_up`] builds
//! them at start so the first request does not pay for it. Large inputs should be counted on
//! `spawn_blocking` (see [`count_messages_async`]).

mod bpe;

use std::sync::LazyLock;

use bpe::Encoding;
use serde_json::Value;
use tiktoken_rs as tiktoken;

const CL100K_SPECIALS: &[&str] = &[
    tiktoken::ENDOFTEXT,
    tiktoken::FIM_PREFIX,
    tiktoken::FIM_MIDDLE,
    tiktoken::FIM_SUFFIX,
    tiktoken::ENDOFPROMPT,
];
const O200K_SPECIALS: &[&str] = &[tiktoken::ENDOFTEXT, tiktoken::ENDOFPROMPT];

// Built from tiktoken-rs's constructors (not its singletons) so that its large tables are freed.
static CL100K: LazyLock<Encoding> = LazyLock::new(|| {
    let bpe = tiktoken::cl100k_base().expect("tiktoken-rs ships cl100k_base");
    Encoding::from_tiktoken(&bpe, 100_257, bpe::CL100K_PATTERN, CL100K_SPECIALS)
});
static O200K: LazyLock<Encoding> = LazyLock::new(|| {
    let bpe = tiktoken::o200k_base().expect("tiktoken-rs ships o200k_base");
    Encoding::from_tiktoken(&bpe, 199_999, &bpe::o200k_pattern(), O200K_SPECIALS)
});

/// Inputs above this many bytes are counted on the blocking pool.
pub const BLOCKING_THRESHOLD: usize = 32 * 1024;

/// Builds the encoders now (they are lazily built otherwise, which takes hundreds of ms).
pub fn warm_up() {
    LazyLock::force(&CL100K_ROLES);
    LazyLock::force(&O200K_ROLES);
    // glibc keeps the tens of MB that tiktoken-rs's tables just freed in its heap; hand them
    // back to the system (idle RSS 76 -> 35 MB).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn encoder(model: &str) -> &'static Encoding {
    // Case-insensitive prefixes, without a lowercased copy per call (this runs per message).
    let starts = |p: &str| {
        model
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    };
    if [
        "gpt-4o",
        "chatgpt-4o",
        "gpt-4.1",
        "gpt-4.5",
        "gpt-5",
        "o1",
        "o3",
        "o4",
    ]
    .into_iter()
    .any(starts)
    {
        &O200K
    } else {
        &CL100K
    }
}

/// Texts at least this long have their counts remembered ([`COUNTS`]).
const REMEMBERED_FROM: usize = 512;

/// Counts of long texts counted lately, by encoding, length and a hash of the text keyed per
/// process: a chat client sends the whole conversation again with every request (and the same
/// system prompt with every conversation), so all but its newest messages were counted before,
/// and counting is proportional to the text's length. 65,536 entries of under 100 bytes.
static COUNTS: LazyLock<moka::sync::Cache<(bool, usize, u64), i64>> =
    LazyLock::new(|| moka::sync::Cache::new(65_536));
static COUNTS_HASH: LazyLock<std::hash::RandomState> = LazyLock::new(Default::default);

/// Tokens in a text for `model`.
pub fn count_text(model: &str, text: &str) -> i64 {
    if text.is_empty() {
        return 0;
    }
    let enc = encoder(model);
    if text.len() < REMEMBERED_FROM {
        return enc.count(text) as i64;
    }
    let key = (
        std::ptr::eq(enc, &*O200K),
        text.len(),
        std::hash::BuildHasher::hash_one(&*COUNTS_HASH, text),
    );
    COUNTS.get_with(key, || enc.count(text) as i64)
}

/// The roles chat messages use, counted once per encoding by [`count_role`].
const ROLES: [&str; 6] = [
    "system",
    "user",
    "assistant",
    "tool",
    "function",
    "developer",
];
static CL100K_ROLES: LazyLock<[i64; 6]> = LazyLock::new(|| ROLES.map(|r| CL100K.count(r) as i64));
static O200K_ROLES: LazyLock<[i64; 6]> = LazyLock::new(|| ROLES.map(|r| O200K.count(r) as i64));

/// Tokens in a message's role, as [`count_text`] counts them. Every message has one and there
/// are only a few: running the pre-tokenizer's pattern over a word costs more than the rest of
/// counting a short message (2% of a relayed request's instructions).
fn count_role(model: &str, role: &str) -> i64 {
    let Some(i) = ROLES.iter().position(|r| *r == role) else {
        return count_text(model, role);
    };
    if std::ptr::eq(encoder(model), &*O200K) {
        O200K_ROLES[i]
    } else {
        CL100K_ROLES[i]
    }
}

/// One API's image token formula. `low` detail is exact; `high`/`auto` would need the image
/// size, which we do not fetch (no requests to user-supplied URLs, weakness #4), so those are
/// counted as one 512x512 tile at high detail (170 + 85).
fn image_tokens(model: &str, detail: &str) -> i64 {
    let mini = model.starts_with("gpt-4o-mini");
    match (detail, mini) {
        ("low", false) => 85,
        ("low", true) => 2833,
        (_, false) => 170 + 85,
        (_, true) => 5667 + 2833,
    }
}

/// Prompt tokens of a chat `messages` array, One API's way.
pub fn count_messages(model: &str, messages: &[Value]) -> i64 {
    let (per_message, per_name) = if model == "gpt-3.5-turbo-0301" {
        (4, -1)
    } else {
        (3, 1)
    };
    let mut n = 0;
    for msg in messages {
        n += per_message;
        if let Some(obj) = msg.as_object() {
            for (k, v) in obj {
                match (k.as_str(), v) {
                    ("content", Value::String(s)) => n += count_text(model, s),
                    ("content", Value::Array(parts)) => {
                        for p in parts {
                            match p.get("type").and_then(Value::as_str) {
                                Some("text") => {
                                    n += count_text(
                                        model,
                                        p.get("text").and_then(Value::as_str).unwrap_or(""),
                                    )
                                }
                                Some("image_url") => {
                                    let detail = p
                                        .pointer("/image_url/detail")
                                        .and_then(Value::as_str)
                                        .unwrap_or("");
                                    n += image_tokens(model, detail)
                                }
                                _ => {}
                            }
                        }
                    }
                    ("role", Value::String(s)) => n += count_role(model, s),
                    ("name", Value::String(s)) => n += per_name + count_text(model, s),
                    _ => {}
                }
            }
        }
    }
    n + 3
}

/// Tokens of a completions `prompt` / moderations or embeddings `input` (string or list).
pub fn count_input(model: &str, input: &Value) -> i64 {
    match input {
        Value::String(s) => count_text(model, s),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => count_text(model, s),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// [`count_messages`] on the blocking pool when the input is large.
pub async fn count_messages_async(model: String, messages: Vec<Value>, size_hint: usize) -> i64 {
    if size_hint < BLOCKING_THRESHOLD {
        return count_messages(&model, &messages);
    }
    tokio::task::spawn_blocking(move || count_messages(&model, &messages))
        .await
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::hash::BuildHasher;

    #[test]
    fn remembered_role_counts_are_the_counted_ones() {
        for model in ["gpt-3.5-turbo", "gpt-4o", "o3-mini", "claude-3-haiku"] {
            for role in ROLES.into_iter().chain(["User", "critic", ""]) {
                assert_eq!(
                    count_role(model, role),
                    count_text(model, role),
                    "{model} {role}"
                );
            }
        }
    }

    #[test]
    fn long_texts_are_counted_once_and_remembered() {
        let base = "The quick brown fox jumps over the lazy dog. ".repeat(40);
        for model in ["gpt-4", "gpt-4o"] {
            let enc = encoder(model);
            let o200k = std::ptr::eq(enc, &*O200K);
            // Same length, different text: each has its own count.
            let other = base.replace("fox", "cat");
            for text in [&base, &other] {
                let key = (o200k, text.len(), COUNTS_HASH.hash_one(text.as_str()));
                let counted = enc.count(text) as i64;
                assert_eq!(count_text(model, text), counted, "{model}");
                assert_eq!(COUNTS.get(&key), Some(counted), "{model}: remembered");
                assert_eq!(count_text(model, text), counted, "{model}: from memory");
            }
            // Short texts are counted every time.
            let short = &base[..REMEMBERED_FROM - 1];
            count_text(model, short);
            let key = (o200k, short.len(), COUNTS_HASH.hash_one(short));
            assert_eq!(COUNTS.get(&key), None);
        }
        // The two encodings count the same text apart.
        assert_ne!(
            count_text("gpt-4", &"日本語のテキスト".repeat(40)),
            count_text("gpt-4o", &"日本語のテキスト".repeat(40))
        );
    }

    #[test]
    fn counts_like_one_api() {
        assert_eq!(count_text("gpt-3.5-turbo", "hello world"), 2);
        // 3 + ("user" 1) + ("hi" 1) + 3 = 8
        let m = vec![json!({"role":"user","content":"hi"})];
        assert_eq!(count_messages("gpt-3.5-turbo", &m), 8);
        let m = vec![json!({"role":"user","content":"hi","name":"bob"})];
        assert_eq!(count_messages("gpt-4", &m), 10);
        assert_eq!(count_input("gpt-4", &json!(["a b", "c"])), 3);
        assert_eq!(count_text("gpt-4o", ""), 0);
    }

    #[test]
    fn picks_the_encoding_by_prefix_in_any_case() {
        let o200k: *const Encoding = &*O200K;
        let cl100k: *const Encoding = &*CL100K;
        for m in [
            "gpt-4o-mini",
            "GPT-4O",
            "o3-mini",
            "gpt-5",
            "ChatGPT-4o-latest",
        ] {
            assert!(std::ptr::eq(encoder(m), o200k), "{m}");
        }
        for m in ["gpt-4", "gpt-3.5-turbo", "o", "", "claude-3", "gpt-4-turbo"] {
            assert!(std::ptr::eq(encoder(m), cl100k), "{m}");
        }
    }
}
