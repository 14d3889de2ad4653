//! The one guarded fetcher for images that users name by URL and that a provider needs inline
//! (Gemini, Ollama, ...). One API fetched them with a bare client, letting any user make the
//! server request internal addresses (weakness #4). Here:
//! - only `http` and `https`;
//! - the host is resolved first and every address is checked: loopback, private, link-local
//!   (cloud metadata at 169.254.169.254 included), CGNAT, multicast, unspecified, documentation
//!   and IPv6 unique-local or mapped private addresses are refused;
//! - the connection is pinned to the checked address, so DNS cannot change between check and use;
//! - redirects are followed by hand (at most 3), each hop checked again;
//! - the body must be an image, at most `max_bytes`, within `timeout`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;

/// Limits for one fetch.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    pub timeout: Duration,
    pub max_bytes: usize,
    pub proxy: Option<String>,
    /// Tests only: allow loopback/private targets (a local mock server).
    pub allow_private: bool,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            timeout: Duration::from_secs(30),
            max_bytes: 20 * 1024 * 1024,
            proxy: None,
            allow_private: false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("image URL is not a valid http(s) URL")]
    BadUrl,
    #[error("image URL points to a private or reserved address")]
    Forbidden,
    #[error("image host could not be resolved")]
    Unresolvable,
    #[error("image fetch failed: {0}")]
    Failed(String),
    #[error("image is larger than {0} bytes")]
    TooLarge(usize),
    #[error("URL did not return an image")]
    NotAnImage,
    #[error("too many redirects")]
    TooManyRedirects,
}

/// Whether an address may be fetched from the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b)) // NAT64 can reach private v4
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240) // reserved
}

async fn checked_addr(url: &url::Url, policy: &FetchPolicy) -> Result<SocketAddr, FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::BadUrl);
    }
    let host = url.host_str().ok_or(FetchError::BadUrl)?;
    let port = url.port_or_known_default().ok_or(FetchError::BadUrl)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| FetchError::Unresolvable)?
        .collect();
    let first = *addrs.first().ok_or(FetchError::Unresolvable)?;
    // Every address must be public: a name that also resolves to 10.0.0.1 is refused.
    if !policy.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(FetchError::Forbidden);
    }
    Ok(first)
}

/// Fetches an image and returns `(mime type, bytes)`.
pub async fn fetch(url: &str, policy: &FetchPolicy) -> Result<(String, Vec<u8>), FetchError> {
    crate::startup::install_crypto_provider();
    let mut url = url::Url::parse(url).map_err(|_| FetchError::BadUrl)?;
    for _ in 0..=3 {
        let addr = checked_addr(&url, policy).await?;
        let host = url.host_str().ok_or(FetchError::BadUrl)?.to_string();
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout);
        b = match &policy.proxy {
            Some(p) => {
                b.proxy(reqwest::Proxy::all(p).map_err(|e| FetchError::Failed(e.to_string()))?)
            }
            None => b.no_proxy().resolve(&host, addr),
        };
        let client = b.build().map_err(|e| FetchError::Failed(e.to_string()))?;
        let res = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| FetchError::Failed(e.without_url().to_string()))?;
        if res.status().is_redirection() {
            let next = res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(FetchError::Failed("redirect without location".into()))?;
            url = url.join(next).map_err(|_| FetchError::BadUrl)?;
            continue;
        }
        if !res.status().is_success() {
            return Err(FetchError::Failed(format!(
                "status {}",
                res.status().as_u16()
            )));
        }
        if res
            .content_length()
            .is_some_and(|n| n > policy.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(policy.max_bytes));
        }
        let mime = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !mime.starts_with("image/") {
            return Err(FetchError::NotAnImage);
        }
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FetchError::Failed(e.without_url().to_string()))?;
            if body.len() + chunk.len() > policy.max_bytes {
                return Err(FetchError::TooLarge(policy.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        return Ok((mime, body));
    }
    Err(FetchError::TooManyRedirects)
}

/// Fetches an image and returns it as a `data:` URI.
pub async fn fetch_data_uri(url: &str, policy: &FetchPolicy) -> Result<String, FetchError> {
    let (mime, bytes) = fetch(url, policy).await?;
    Ok(format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Replaces every `http(s)` `image_url` in an OpenAI chat request by a `data:` URI, for
/// providers that only accept inline images. Fails on the first image that cannot be fetched.
pub async fn inline_images(
    req: &mut serde_json::Value,
    policy: &FetchPolicy,
) -> Result<usize, FetchError> {
    let mut done = 0;
    let Some(messages) = req.get_mut("messages").and_then(|m| m.as_array_mut()) else {
        return Ok(0);
    };
    for m in messages {
        let Some(parts) = m.get_mut("content").and_then(|c| c.as_array_mut()) else {
            continue;
        };
        for p in parts {
            if p.get("type").and_then(|t| t.as_str()) != Some("image_url") {
                continue;
            }
            let url = p
                .pointer("/image_url/url")
                .and_then(|u| u.as_str())
                .unwrap_or("")
                .to_string();
            if url.starts_with("http://") || url.starts_with("https://") {
                let data = fetch_data_uri(&url, policy).await?;
                p["image_url"]["url"] = serde_json::Value::String(data);
                done += 1;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "198.18.0.1",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad} must be refused");
        }
        for good in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "151.101.1.69"] {
            assert!(is_public(good.parse().unwrap()), "{good} must be allowed");
        }
    }

    #[tokio::test]
    async fn refuses_bad_schemes_and_internal_targets() {
        let p = FetchPolicy::default();
        assert_eq!(
            fetch("file:///etc/passwd", &p).await,
            Err(FetchError::BadUrl)
        );
        assert_eq!(fetch("gopher://x", &p).await, Err(FetchError::BadUrl));
        assert_eq!(fetch("not a url", &p).await, Err(FetchError::BadUrl));
        assert_eq!(
            fetch("http://127.0.0.1:9/x.png", &p).await,
            Err(FetchError::Forbidden)
        );
        assert_eq!(
            fetch("http://localhost/x.png", &p).await,
            Err(FetchError::Forbidden)
        );
        assert_eq!(
            fetch("http://169.254.169.254/latest/meta-data", &p).await,
            Err(FetchError::Forbidden)
        );
        assert_eq!(
            fetch("http://[::1]/x.png", &p).await,
            Err(FetchError::Forbidden)
        );
    }

    #[tokio::test]
    async fn fetches_within_limits_from_an_allowed_server() {
        use wiremock::matchers::path;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let png = vec![0x89u8, b'P', b'N', b'G', 1, 2, 3];
        Mock::given(path("/a.png"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(png.clone(), "image/png"))
            .mount(&server)
            .await;
        Mock::given(path("/big.png"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(vec![0u8; 2048], "image/png"))
            .mount(&server)
            .await;
        Mock::given(path("/page"))
            .respond_with(ResponseTemplate::new(200).set_body_raw("<html>", "text/html"))
            .mount(&server)
            .await;
        Mock::given(path("/hop"))
            .respond_with(ResponseTemplate::new(302).insert_header("location", "/a.png"))
            .mount(&server)
            .await;
        Mock::given(path("/loop"))
            .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
            .mount(&server)
            .await;
        let p = FetchPolicy {
            max_bytes: 1024,
            allow_private: true,
            ..Default::default()
        };
        let base = server.uri();
        let (mime, body) = fetch(&format!("{base}/a.png"), &p).await.unwrap();
        assert_eq!((mime.as_str(), body), ("image/png", png));
        assert_eq!(
            fetch(&format!("{base}/big.png"), &p).await,
            Err(FetchError::TooLarge(1024))
        );
        assert_eq!(
            fetch(&format!("{base}/page"), &p).await,
            Err(FetchError::NotAnImage)
        );
        assert!(
            fetch_data_uri(&format!("{base}/hop"), &p)
                .await
                .unwrap()
                .starts_with("data:image/png;base64,iVBOR")
        );
        assert_eq!(
            fetch(&format!("{base}/loop"), &p).await,
            Err(FetchError::TooManyRedirects)
        );

        let mut req = serde_json::json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": format!("{base}/a.png")}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        ]}]});
        assert_eq!(inline_images(&mut req, &p).await, Ok(1));
        assert!(
            req["messages"][0]["content"][1]["image_url"]["url"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png")
        );
        // The same request without the test escape hatch is refused: the server is on loopback.
        let mut req2 = serde_json::json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": format!("{base}/a.png")}}]}]});
        assert_eq!(
            inline_images(&mut req2, &FetchPolicy::default()).await,
            Err(FetchError::Forbidden)
        );
    }
}
