//! Prompt token counting: Tollgate's counter (`tollgate::tokenizer::count_text`) against
//! tiktoken-rs's own encoder on the same texts, in the same run. Each text is new to the
//! counter's memory of long texts (a number in front of it changes), as the newest message of a
//! conversation is. Run it with `cargo bench --bench tokenizer` (docs/benchmarks.md).

use std::time::{Duration, Instant};

/// Counts `text` (made new for each round) until `budget` has passed: ns a round.
fn time(budget: Duration, text: &str, count: impl Fn(&str) -> usize) -> f64 {
    let mut rounds = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        std::hint::black_box(count(&format!("{rounds} {text}")));
        rounds += 1;
    }
    start.elapsed().as_nanos() as f64 / rounds as f64
}

fn main() {
    let english = "The quick brown fox jumps over the lazy dog; it's 2026 and we've   counted \
                   12345 tokens.\n\n"
        .repeat(160);
    let code = "fn main() {\n    let total: u64 = (1..=100).map(|x| x * x).sum();\n    \
                println!(\"{total}\");\n}\n\n"
        .repeat(160);
    let cjk = "日本語のテキストと中文混合，还有emoji 🎉 and ünïcödé text. ".repeat(250);
    let budget = Duration::from_secs(2);
    tollgate::tokenizer::warm_up();
    let (cl100k, o200k) = (
        tiktoken_rs::cl100k_base_singleton(),
        tiktoken_rs::o200k_base_singleton(),
    );
    println!(
        "| text | model | bytes | tokens | Tollgate ns/token | tiktoken-rs ns/token | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, text) in [
        ("English", &english),
        ("code", &code),
        ("CJK and emoji", &cjk),
    ] {
        for model in ["gpt-3.5-turbo", "gpt-4o"] {
            let reference = if model == "gpt-4o" { o200k } else { cl100k };
            let tokens = tollgate::tokenizer::count_text(model, text) as usize;
            assert_eq!(
                tokens,
                reference.encode_ordinary(text).len(),
                "{name} {model}: the counts differ"
            );
            let ours = time(budget, text, |t| {
                tollgate::tokenizer::count_text(model, t) as usize
            }) / tokens as f64;
            let theirs = time(budget, text, |t| reference.encode_ordinary(t).len()) / tokens as f64;
            println!(
                "| {name} | {model} | {} | {tokens} | {ours:.0} | {theirs:.0} | {:.2} |",
                text.len(),
                theirs / ours
            );
        }
    }
}
