//! A compact built-in table of One API's channel types: name, default base URL, whether the
//! upstream speaks OpenAI's protocol, and the main models of each (for `/api/models` and
//! `/api/channel/models`).

/// One channel type.
#[derive(Debug, Clone, Copy)]
pub struct ChannelType {
    pub id: i64,
    pub name: &'static str,
    pub base_url: &'static str,
    /// Speaks OpenAI's `/v1/chat/completions` at `base_url` (models can be fetched from it).
    pub openai_compatible: bool,
    pub models: &'static [&'static str],
}

const OPENAI_MODELS: &[&str] = &[
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-0125",
    "gpt-4",
    "gpt-4-turbo",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o1",
    "o1-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "dall-e-3",
    "whisper-1",
    "tts-1",
    "text-moderation-latest",
];

const fn t(
    id: i64,
    name: &'static str,
    base_url: &'static str,
    openai_compatible: bool,
    models: &'static [&'static str],
) -> ChannelType {
    ChannelType {
        id,
        name,
        base_url,
        openai_compatible,
        models,
    }
}

/// The known types, by id.
pub const TYPES: &[ChannelType] = &[
    t(1, "OpenAI", "https://api.openai.com", true, OPENAI_MODELS),
    t(2, "API2D", "https://oa.api2d.net", true, OPENAI_MODELS),
    t(3, "Azure", "", false, OPENAI_MODELS),
    t(
        4,
        "CloseAI",
        "https://api.closeai-proxy.xyz",
        true,
        OPENAI_MODELS,
    ),
    t(
        5,
        "OpenAI-SB",
        "https://api.openai-sb.com",
        true,
        OPENAI_MODELS,
    ),
    t(
        6,
        "OpenAIMax",
        "https://api.openaimax.com",
        true,
        OPENAI_MODELS,
    ),
    t(7, "OhMyGPT", "https://api.ohmygpt.com", true, OPENAI_MODELS),
    t(8, "Custom", "", true, &[]),
    t(9, "AI.LS", "https://api.caipacity.com", true, OPENAI_MODELS),
    t(10, "AIProxy", "https://api.aiproxy.io", true, OPENAI_MODELS),
    t(
        11,
        "PaLM",
        "https://generativelanguage.googleapis.com",
        false,
        &["PaLM-2"],
    ),
    t(
        12,
        "API2GPT",
        "https://api.api2gpt.com",
        true,
        OPENAI_MODELS,
    ),
    t(13, "AIGC2D", "https://api.aigc2d.com", true, OPENAI_MODELS),
    t(
        14,
        "Anthropic",
        "https://api.anthropic.com",
        false,
        &[
            "claude-instant-1.2",
            "claude-2.1",
            "claude-3-haiku-20240307",
            "claude-3-5-haiku-20241022",
            "claude-3-sonnet-20240229",
            "claude-3-opus-20240229",
            "claude-3-5-sonnet-20240620",
            "claude-3-5-sonnet-20241022",
            "claude-3-7-sonnet-20250219",
        ],
    ),
    t(
        15,
        "Baidu",
        "https://aip.baidubce.com",
        false,
        &[
            "ERNIE-4.0-8K",
            "ERNIE-3.5-8K",
            "ERNIE-3.5-8K-0205",
            "ERNIE-3.5-8K-1222",
            "ERNIE-Bot-8K",
            "ERNIE-3.5-4K-0205",
            "ERNIE-Speed-8K",
            "ERNIE-Speed-128K",
            "ERNIE-Lite-8K-0922",
            "ERNIE-Lite-8K-0308",
            "ERNIE-Tiny-8K",
            "BLOOMZ-7B",
            "Embedding-V1",
            "bge-large-zh",
            "bge-large-en",
            "tao-8k",
        ],
    ),
    t(
        16,
        "Zhipu",
        "https://open.bigmodel.cn",
        false,
        &[
            "glm-4",
            "glm-4v",
            "glm-4-flash",
            "glm-3-turbo",
            "embedding-2",
            "cogview-3",
            "chatglm_turbo",
            "chatglm_pro",
            "chatglm_std",
            "chatglm_lite",
        ],
    ),
    t(
        17,
        "Ali",
        "https://dashscope.aliyuncs.com",
        false,
        &["qwen-turbo", "qwen-plus", "qwen-max", "text-embedding-v1"],
    ),
    t(
        18,
        "Xunfei",
        "wss://spark-api.xf-yun.com",
        false,
        &[
            "Spark-Lite",
            "Spark-Pro",
            "Spark-Pro-128K",
            "Spark-Max",
            "Spark-Max-32K",
            "Spark-4.0-Ultra",
            "SparkDesk-v3.5",
            "SparkDesk-v4.0",
        ],
    ),
    t(
        19,
        "360",
        "https://ai.360.cn",
        true,
        &["360GPT_S2_V9", "embedding-bert-512-v1"],
    ),
    t(20, "OpenRouter", "https://openrouter.ai/api", true, &[]),
    t(21, "AIProxyLibrary", "https://api.aiproxy.io", false, &[]),
    t(22, "FastGPT", "https://fastgpt.run/api/openapi", true, &[]),
    t(
        23,
        "Tencent",
        "https://hunyuan.tencentcloudapi.com",
        false,
        &[
            "hunyuan-lite",
            "hunyuan-standard",
            "hunyuan-pro",
            "hunyuan-embedding",
        ],
    ),
    t(
        24,
        "Gemini",
        "https://generativelanguage.googleapis.com",
        false,
        &[
            "gemini-pro",
            "gemini-1.5-flash",
            "gemini-1.5-pro",
            "gemini-2.0-flash",
            "gemini-2.0-flash-lite",
            "text-embedding-004",
        ],
    ),
    t(
        25,
        "Moonshot",
        "https://api.moonshot.cn",
        true,
        &["moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k"],
    ),
    t(
        26,
        "Baichuan",
        "https://api.baichuan-ai.com",
        true,
        &[
            "Baichuan2-Turbo",
            "Baichuan2-Turbo-192k",
            "Baichuan-Text-Embedding",
        ],
    ),
    t(
        27,
        "Minimax",
        "https://api.minimax.chat",
        false,
        &["abab6.5-chat", "abab6.5s-chat", "abab5.5-chat"],
    ),
    t(
        28,
        "Mistral",
        "https://api.mistral.ai",
        true,
        &[
            "open-mistral-7b",
            "open-mixtral-8x7b",
            "mistral-small-latest",
            "mistral-medium-latest",
            "mistral-large-latest",
            "mistral-embed",
        ],
    ),
    t(
        29,
        "Groq",
        "https://api.groq.com/openai",
        true,
        &[
            "llama3-8b-8192",
            "llama3-70b-8192",
            "mixtral-8x7b-32768",
            "gemma-7b-it",
        ],
    ),
    t(30, "Ollama", "http://localhost:11434", false, &[]),
    t(
        31,
        "LingYiWanWu",
        "https://api.lingyiwanwu.com",
        true,
        &["yi-34b-chat-0205", "yi-34b-chat-200k", "yi-vl-plus"],
    ),
    t(
        32,
        "StepFun",
        "https://api.stepfun.com",
        true,
        &["step-1-8k", "step-1-32k", "step-1-128k"],
    ),
    t(
        33,
        "AwsClaude",
        "",
        false,
        &[
            "claude-3-haiku-20240307",
            "claude-3-5-sonnet-20241022",
            "llama3-8b-8192",
            "llama3-70b-8192",
        ],
    ),
    t(34, "Coze", "https://api.coze.com", false, &[]),
    t(
        35,
        "Cohere",
        "https://api.cohere.ai",
        false,
        &["command", "command-light", "command-r", "command-r-plus"],
    ),
    t(
        36,
        "DeepSeek",
        "https://api.deepseek.com",
        true,
        &["deepseek-chat", "deepseek-reasoner"],
    ),
    t(37, "Cloudflare", "https://api.cloudflare.com", false, &[]),
    t(
        38,
        "DeepL",
        "https://api-free.deepl.com",
        false,
        &["deepl-zh", "deepl-en", "deepl-ja"],
    ),
    t(39, "TogetherAI", "https://api.together.xyz", true, &[]),
    t(
        40,
        "Doubao",
        "https://ark.cn-beijing.volces.com",
        false,
        &[],
    ),
    t(41, "Novita", "https://api.novita.ai/v3/openai", false, &[]),
    t(
        42,
        "VertexAI",
        "",
        false,
        &[
            "gemini-1.5-pro",
            "gemini-1.5-flash",
            "gemini-2.0-flash",
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "claude-3-5-haiku@20241022",
            "claude-3-5-sonnet-v2@20241022",
            "claude-3-7-sonnet@20250219",
        ],
    ),
    t(43, "Proxy", "", false, &[]),
    t(44, "SiliconFlow", "https://api.siliconflow.cn", true, &[]),
    t(
        45,
        "XAI",
        "https://api.x.ai",
        true,
        &["grok-beta", "grok-2", "grok-3"],
    ),
    t(
        46,
        "Replicate",
        "https://api.replicate.com",
        false,
        &[
            "meta/meta-llama-3-8b-instruct",
            "meta/meta-llama-3-70b-instruct",
            "meta/meta-llama-3.1-405b-instruct",
            "mistralai/mixtral-8x7b-instruct-v0.1",
        ],
    ),
    t(47, "BaiduV2", "https://qianfan.baidubce.com", false, &[]),
    t(
        48,
        "XunfeiV2",
        "https://spark-api-open.xf-yun.com",
        true,
        &[],
    ),
    t(
        49,
        "AliBailian",
        "https://dashscope.aliyuncs.com",
        false,
        &[],
    ),
    t(50, "OpenAICompatible", "", false, &[]),
    t(
        51,
        "GeminiOpenAICompatible",
        "https://generativelanguage.googleapis.com/v1beta/openai/",
        false,
        &[],
    ),
];

/// The type with this id.
pub fn get(id: i64) -> Option<&'static ChannelType> {
    TYPES.iter().find(|t| t.id == id)
}

/// Every known model, with the name of the first type that offers it (de-duplicated).
pub fn all_models() -> Vec<(&'static str, &'static str)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for t in TYPES {
        for m in t.models {
            if seen.insert(*m) {
                out.push((*m, t.name));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_main_types_present() {
        let mut ids: Vec<i64> = TYPES.iter().map(|t| t.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), TYPES.len());
        assert_eq!(get(14).map(|t| t.name), Some("Anthropic"));
        assert_eq!(get(36).map(|t| t.name), Some("DeepSeek"));
        assert!(get(0).is_none() && get(999).is_none());
        assert!(all_models().iter().any(|(m, _)| *m == "gpt-4o"));
    }
}
