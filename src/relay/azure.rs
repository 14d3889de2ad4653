//! Azure OpenAI (channel type 3): OpenAI's format at Azure's deployment URLs, key in `api-key`.
//! Pure: no I/O.

use serde_json::Value;

use super::openai::{base_of, openai_error};
use super::{Adaptor, Ctx, UpstreamRequest};

/// `api-version` used when the channel sets none (Azure's current GA version).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// The Azure adaptor.
#[derive(Debug)]
pub struct Azure;

/// `{base}/openai/deployments/{model without dots}/{path after /v1/}?api-version={version}`
/// (One API: deployment names cannot contain `.`, so `gpt-3.5-turbo` is `gpt-35-turbo`).
/// A Cloudflare AI Gateway base already names the resource, so `/openai/deployments` is dropped.
pub fn request_url(base_url: &str, path: &str, model: &str, api_version: Option<&str>) -> String {
    let base = base_of(3, base_url);
    let path = path.split('?').next().unwrap_or(path);
    let rest = path
        .strip_prefix("/v1/")
        .unwrap_or(path.trim_start_matches('/'));
    let deployment = model.replace('.', "");
    let version = api_version
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_API_VERSION);
    let prefix = if base.starts_with("https://gateway.ai.cloudflare.com") {
        ""
    } else {
        "/openai/deployments"
    };
    format!("{base}{prefix}/{deployment}/{rest}?api-version={version}")
}

impl Adaptor for Azure {
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest {
        UpstreamRequest {
            url: request_url(ctx.base_url, ctx.path, ctx.model, ctx.api_version),
            headers: vec![("api-key".to_string(), ctx.key.to_string())],
        }
    }

    fn supports_include_usage(&self, _channel_type: i64) -> bool {
        false
    }

    fn map_error(&self, status: u16, body: &[u8]) -> Value {
        openai_error(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_urls() {
        assert_eq!(
            request_url(
                "https://r.openai.azure.com/",
                "/v1/chat/completions",
                "gpt-3.5-turbo",
                Some("2024-02-01")
            ),
            "https://r.openai.azure.com/openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-02-01"
        );
        assert_eq!(
            request_url(
                "https://r.openai.azure.com",
                "/v1/embeddings?x=1",
                "text-embedding-3-small",
                None
            ),
            format!(
                "https://r.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings?api-version={DEFAULT_API_VERSION}"
            )
        );
        assert_eq!(
            request_url(
                "https://gateway.ai.cloudflare.com/v1/acc/gw/azure-openai/res",
                "/v1/chat/completions",
                "gpt-4o",
                Some("2024-06-01")
            ),
            "https://gateway.ai.cloudflare.com/v1/acc/gw/azure-openai/res/gpt-4o/chat/completions?api-version=2024-06-01"
        );
    }
}
