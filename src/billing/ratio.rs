//! Model, completion and group ratios: One API's default tables overlaid with the `ModelRatio`,
//! `CompletionRatio` and `GroupRatio` options. A [`Ratios`] is built once per options snapshot,
//! never per request.
//!
//! Units: ratio 1 = $0.002 / 1K tokens = 1 quota per token (500 000 quota = $1).

use std::collections::HashMap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::options::Options;

/// Ratio for $1 per 1K tokens.
pub const USD: f64 = 500.0;
/// Ratio for $1 per 1M tokens.
pub const MILLI_USD: f64 = 0.5;
/// Ratio for ¥1 per 1K tokens.
pub const RMB: f64 = USD / 7.0;

/// One API's fallback model ratio for unknown models.
pub const UNKNOWN_MODEL_RATIO: f64 = 30.0;

/// One API's default model ratios (the main OpenAI, Anthropic, Gemini, DeepSeek and a few other
/// models of `relay/billing/ratio/model.go`). One API has none for Coze bots (`bot-<id>`, named
/// by each deployment), which cost the unknown-model ratio unless `ModelRatio` names them.
pub fn default_model_ratios() -> HashMap<String, f64> {
    let pairs: &[(&str, f64)] = &[
        // OpenAI
        ("gpt-4", 15.0),
        ("gpt-4-0314", 15.0),
        ("gpt-4-0613", 15.0),
        ("gpt-4-32k", 30.0),
        ("gpt-4-32k-0314", 30.0),
        ("gpt-4-32k-0613", 30.0),
        ("gpt-4-1106-preview", 5.0),
        ("gpt-4-0125-preview", 5.0),
        ("gpt-4-turbo-preview", 5.0),
        ("gpt-4-turbo", 5.0),
        ("gpt-4-turbo-2024-04-09", 5.0),
        ("gpt-4-vision-preview", 5.0),
        ("gpt-4o", 2.5),
        ("chatgpt-4o-latest", 2.5),
        ("gpt-4o-2024-05-13", 2.5),
        ("gpt-4o-2024-08-06", 1.25),
        ("gpt-4o-2024-11-20", 1.25),
        ("gpt-4o-mini", 0.075),
        ("gpt-4o-mini-2024-07-18", 0.075),
        ("gpt-3.5-turbo", 0.25),
        ("gpt-3.5-turbo-0301", 0.75),
        ("gpt-3.5-turbo-0613", 0.75),
        ("gpt-3.5-turbo-16k", 1.5),
        ("gpt-3.5-turbo-16k-0613", 1.5),
        ("gpt-3.5-turbo-instruct", 0.75),
        ("gpt-3.5-turbo-1106", 0.5),
        ("gpt-3.5-turbo-0125", 0.25),
        ("o1", 7.5),
        ("o1-2024-12-17", 7.5),
        ("o1-preview", 7.5),
        ("o1-preview-2024-09-12", 7.5),
        ("o1-mini", 1.5),
        ("o1-mini-2024-09-12", 1.5),
        ("o3-mini", 1.5),
        ("o3-mini-2025-01-31", 1.5),
        ("davinci-002", 1.0),
        ("babbage-002", 0.2),
        ("text-ada-001", 0.2),
        ("text-babbage-001", 0.25),
        ("text-curie-001", 1.0),
        ("text-davinci-002", 10.0),
        ("text-davinci-003", 10.0),
        ("text-davinci-edit-001", 10.0),
        ("code-davinci-edit-001", 10.0),
        ("whisper-1", 15.0),
        ("tts-1", 7.5),
        ("tts-1-1106", 7.5),
        ("tts-1-hd", 15.0),
        ("tts-1-hd-1106", 15.0),
        ("davinci", 10.0),
        ("curie", 10.0),
        ("babbage", 10.0),
        ("ada", 10.0),
        ("text-embedding-ada-002", 0.05),
        ("text-embedding-3-small", 0.01),
        ("text-embedding-3-large", 0.065),
        ("text-search-ada-doc-001", 10.0),
        ("text-moderation-stable", 0.1),
        ("text-moderation-latest", 0.1),
        ("omni-moderation-latest", 0.1),
        ("dall-e-2", 0.02 * USD),
        ("dall-e-3", 0.04 * USD),
        // Anthropic
        ("claude-instant-1.2", 0.8 / 1000.0 * USD),
        ("claude-2.0", 8.0 / 1000.0 * USD),
        ("claude-2.1", 8.0 / 1000.0 * USD),
        ("claude-3-haiku-20240307", 0.25 / 1000.0 * USD),
        ("claude-3-5-haiku-20241022", 1.0 / 1000.0 * USD),
        ("claude-3-5-haiku-latest", 1.0 / 1000.0 * USD),
        ("claude-3-sonnet-20240229", 3.0 / 1000.0 * USD),
        ("claude-3-5-sonnet-20240620", 3.0 / 1000.0 * USD),
        ("claude-3-5-sonnet-20241022", 3.0 / 1000.0 * USD),
        ("claude-3-5-sonnet-latest", 3.0 / 1000.0 * USD),
        ("claude-3-7-sonnet-20250219", 3.0 / 1000.0 * USD),
        ("claude-3-7-sonnet-latest", 3.0 / 1000.0 * USD),
        ("claude-3-opus-20240229", 15.0 / 1000.0 * USD),
        ("claude-3-opus", 15.0 / 1000.0 * USD),
        ("claude-3-haiku", 0.25 / 1000.0 * USD),
        // Google
        ("PaLM-2", 1.0),
        ("gemini-pro", 1.0),
        ("gemini-1.0-pro", 1.0),
        ("gemini-1.5-pro", 0.625),
        ("gemini-1.5-pro-001", 0.625),
        ("gemini-1.5-pro-002", 0.625),
        ("gemini-1.5-flash", 0.0375),
        ("gemini-1.5-flash-001", 0.0375),
        ("gemini-1.5-flash-002", 0.0375),
        ("gemini-1.5-flash-8b", 0.01875),
        ("gemini-2.0-flash", 0.05),
        ("gemini-2.0-flash-exp", 0.05),
        ("gemini-2.0-flash-lite", 0.0375),
        ("gemini-2.0-flash-thinking-exp-01-21", 0.05),
        ("gemini-2.0-pro-exp-02-05", 0.625),
        ("text-embedding-004", 0.0),
        ("aqa", 1.0),
        // DeepSeek
        ("deepseek-chat", 0.14 * MILLI_USD),
        ("deepseek-reasoner", 0.55 * MILLI_USD),
        // Others frequently used through OpenAI-compatible channels
        ("glm-4", 0.1 * RMB),
        ("glm-4-flash", 0.0),
        // Zhipu (v4 and the v3 chatglm_* models)
        ("glm-4v", 0.1 * RMB),
        ("glm-3-turbo", 0.005 * RMB),
        ("embedding-2", 0.0005 * RMB),
        ("chatglm_turbo", 0.3572),
        ("chatglm_pro", 0.7143),
        ("chatglm_std", 0.3572),
        ("chatglm_lite", 0.1429),
        ("cogview-3", 0.25 * RMB),
        // Tencent Hunyuan
        ("hunyuan", 7.143),
        ("ChatStd", 0.01 * RMB),
        ("ChatPro", 0.1 * RMB),
        // DeepL (billed by characters)
        ("deepl-zh", 25.0 / 1000.0 * USD),
        ("deepl-en", 25.0 / 1000.0 * USD),
        ("deepl-ja", 25.0 / 1000.0 * USD),
        // AWS Bedrock Llama 3 (channel type 33)
        ("llama3-8b-8192(33)", 0.0003 / 0.002),
        ("llama3-70b-8192(33)", 0.00265 / 0.002),
        ("qwen-turbo", 0.0003 * RMB),
        ("qwen-plus", 0.0008 * RMB),
        ("qwen-max", 0.0024 * RMB),
        ("moonshot-v1-8k", 0.012 * RMB),
        ("moonshot-v1-32k", 0.024 * RMB),
        ("moonshot-v1-128k", 0.06 * RMB),
        ("mistral-large-latest", 8.0 / 1000.0 * USD),
        ("mistral-small-latest", 2.0 / 1000.0 * USD),
        ("open-mistral-7b", 0.25 / 1000.0 * USD),
        ("llama3-8b-8192", 0.05 / 1000.0 * USD),
        ("llama3-70b-8192", 0.59 / 1000.0 * USD),
        ("grok-beta", 5.0 / 1000.0 * USD),
        ("ERNIE-4.0-8K", 0.120 * RMB),
    ];
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// One API's explicit default completion ratios (the rules in [`Ratios::completion_ratio`]
/// cover the rest).
pub fn default_completion_ratios() -> HashMap<String, f64> {
    let pairs: &[(&str, f64)] = &[
        ("llama3-8b-8192(33)", 0.0006 / 0.0003),
        ("llama3-70b-8192(33)", 0.0035 / 0.00265),
        ("whisper-1", 0.0),
        ("deepseek-chat", 0.28 / 0.14),
        ("deepseek-reasoner", 2.19 / 0.55),
    ];
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn parse_map(json: &str, what: &str) -> HashMap<String, f64> {
    if json.trim().is_empty() {
        return HashMap::new();
    }
    match serde_json::from_str::<HashMap<String, f64>>(json) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(option = what, error = %e, "ignoring an invalid ratio option");
            HashMap::new()
        }
    }
}

/// The ratio tables in effect for one options snapshot.
#[derive(Debug, Clone)]
pub struct Ratios {
    model: Table,
    completion: Table,
    group: FxHashMap<String, f64>,
}

/// A ratio table keyed by `name` or `name(channel type)`. Fx-hashed: looked up several times per
/// relay request, with keys the operator chose (SipHash's resistance to chosen keys buys nothing
/// here).
#[derive(Debug, Clone)]
struct Table {
    ratios: FxHashMap<String, f64>,
    /// The names that have a `name(type)` entry: only those pay for building the typed key on
    /// every relay request.
    typed: FxHashSet<String>,
}

impl Table {
    fn new(ratios: HashMap<String, f64>) -> Self {
        let typed = ratios
            .keys()
            .filter_map(|k| {
                let (name, rest) = k.strip_suffix(')')?.rsplit_once('(')?;
                rest.parse::<i64>().ok().map(|_| name.to_string())
            })
            .collect();
        Table {
            ratios: ratios.into_iter().collect(),
            typed,
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.ratios.contains_key(name)
    }

    /// `name(channel_type)` before `name`.
    fn get(&self, name: &str, channel_type: i64) -> Option<f64> {
        if self.typed.contains(name)
            && let Some(r) = self.ratios.get(&format!("{name}({channel_type})"))
        {
            return Some(*r);
        }
        self.ratios.get(name).copied()
    }
}

impl Ratios {
    /// Defaults overlaid with the options' `ModelRatio`, `CompletionRatio` and `GroupRatio`.
    pub fn from_options(opts: &Options) -> Self {
        let mut model = default_model_ratios();
        model.extend(parse_map(opts.get("ModelRatio"), "ModelRatio"));
        let mut completion = default_completion_ratios();
        completion.extend(parse_map(opts.get("CompletionRatio"), "CompletionRatio"));
        let group = parse_map(opts.get("GroupRatio"), "GroupRatio");
        Ratios {
            model: Table::new(model),
            completion: Table::new(completion),
            group: group.into_iter().collect(),
        }
    }

    /// One API's `GetModelRatio`: `name(type)` before `name`; unknown models cost
    /// [`UNKNOWN_MODEL_RATIO`] (logged).
    pub fn model_ratio(&self, name: &str, channel_type: i64) -> f64 {
        let mut name = name;
        if (name.starts_with("qwen-") || name.starts_with("command-"))
            && let Some(s) = name.strip_suffix("-internet")
        {
            name = s;
        }
        if let Some(r) = self.model.get(name, channel_type) {
            return r;
        }
        tracing::warn!(
            model = name,
            "model ratio not found, using {UNKNOWN_MODEL_RATIO}"
        );
        UNKNOWN_MODEL_RATIO
    }

    /// Whether the model has a configured ratio (used by `/v1/models`).
    pub fn knows(&self, name: &str) -> bool {
        self.model.contains(name)
    }

    /// One API's `GetCompletionRatio`: table first, then its name rules, default 1.
    pub fn completion_ratio(&self, name: &str, channel_type: i64) -> f64 {
        self.completion
            .get(name, channel_type)
            .unwrap_or_else(|| completion_rule(name))
    }

    /// The user group's ratio; unknown groups cost 1.
    pub fn group_ratio(&self, group: &str) -> f64 {
        self.group.get(group).copied().unwrap_or(1.0)
    }
}

/// One API's built-in completion ratio rules by model name.
pub fn completion_rule(name: &str) -> f64 {
    if name.starts_with("gpt-3.5") {
        if name == "gpt-3.5-turbo" || name.ends_with("0125") {
            return 3.0;
        }
        if name.ends_with("1106") {
            return 2.0;
        }
        return 4.0 / 3.0;
    }
    if name.starts_with("gpt-4") {
        if name.starts_with("gpt-4o") {
            if name == "gpt-4o-2024-05-13" {
                return 3.0;
            }
            return 4.0;
        }
        if name.starts_with("gpt-4-turbo") || name.ends_with("preview") {
            return 3.0;
        }
        return 2.0;
    }
    if name.starts_with("o1") || name.starts_with("o3") {
        return 4.0;
    }
    if name == "chatgpt-4o-latest" {
        return 3.0;
    }
    if name.starts_with("claude-3") {
        return 5.0;
    }
    if name.starts_with("claude-") {
        return 3.0;
    }
    if name.starts_with("mistral-") || name.starts_with("gemini-") {
        return 3.0;
    }
    if name.starts_with("deepseek-") {
        return 2.0;
    }
    match name {
        "llama2-70b-4096" => 0.0008 / 0.00064,
        "llama3-8b-8192" => 2.0,
        "llama3-70b-8192" => 0.00079 / 0.00059,
        "command" | "command-light" | "command-nightly" | "command-light-nightly" => 2.0,
        "command-r" => 3.0,
        "command-r-plus" => 5.0,
        "grok-beta" => 3.0,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratios() -> Ratios {
        Ratios::from_options(&Options::with_rows(Vec::new()))
    }

    #[test]
    fn defaults_match_one_api() {
        let r = ratios();
        assert_eq!(r.model_ratio("gpt-4", 1), 15.0);
        assert_eq!(r.model_ratio("gpt-4o-mini", 1), 0.075);
        assert_eq!(r.model_ratio("gpt-3.5-turbo", 1), 0.25);
        assert_eq!(r.model_ratio("claude-3-5-sonnet-20241022", 14), 1.5);
        assert_eq!(r.model_ratio("dall-e-3", 1), 20.0);
        assert_eq!(r.model_ratio("deepseek-chat", 36), 0.07);
        assert_eq!(r.model_ratio("no-such-model", 1), UNKNOWN_MODEL_RATIO);
        assert_eq!(r.model_ratio("deepl-zh", 38), 12.5);
        assert_eq!(r.model_ratio("hunyuan", 23), 7.143);
        assert_eq!(r.model_ratio("chatglm_turbo", 16), 0.3572);
        // Bedrock's Llama 3 has its own price, other channels the Groq one.
        assert!((r.model_ratio("llama3-8b-8192", 33) - 0.15).abs() < 1e-9);
        assert!((r.completion_ratio("llama3-8b-8192", 33) - 2.0).abs() < 1e-9);
        assert_eq!(r.model_ratio("llama3-8b-8192", 29), 0.025);
        assert_eq!(r.group_ratio("vip"), 1.0);
        assert_eq!(r.group_ratio("nobody"), 1.0);
    }

    #[test]
    fn completion_rules() {
        let r = ratios();
        let cases = [
            ("gpt-3.5-turbo", 3.0),
            ("gpt-3.5-turbo-1106", 2.0),
            ("gpt-3.5-turbo-16k", 4.0 / 3.0),
            ("gpt-4o", 4.0),
            ("gpt-4o-2024-05-13", 3.0),
            ("gpt-4-turbo", 3.0),
            ("gpt-4-1106-preview", 3.0),
            ("gpt-4", 2.0),
            ("o1-mini", 4.0),
            ("claude-3-opus", 5.0),
            ("claude-2.1", 3.0),
            ("gemini-1.5-pro", 3.0),
            ("deepseek-chat", 2.0),
            ("whisper-1", 0.0),
            ("something-else", 1.0),
        ];
        for (m, want) in cases {
            assert_eq!(r.completion_ratio(m, 1), want, "{m}");
        }
    }

    #[test]
    fn options_override_defaults() {
        let opts = Options::with_rows(vec![
            (
                "ModelRatio".to_string(),
                r#"{"gpt-4":2,"x(8)":3}"#.to_string(),
            ),
            (
                "CompletionRatio".to_string(),
                r#"{"gpt-4":1.5}"#.to_string(),
            ),
            ("GroupRatio".to_string(), r#"{"vip":0.5}"#.to_string()),
        ]);
        let r = Ratios::from_options(&opts);
        assert_eq!(r.model_ratio("gpt-4", 1), 2.0);
        assert_eq!(r.model_ratio("x", 8), 3.0);
        assert_eq!(r.model_ratio("x", 9), UNKNOWN_MODEL_RATIO);
        assert_eq!(r.model_ratio("x(8)", 1), 3.0);
        assert_eq!(r.completion_ratio("gpt-4", 1), 1.5);
        assert_eq!(r.group_ratio("vip"), 0.5);
        assert_eq!(r.group_ratio("default"), 1.0);
    }
}
