//! Google Vertex AI (channel type 42). Pure: the service-account JWT (RS256, signed with the
//! account's private key; the time is an argument) that the relay exchanges for an access token
//! at the account's `token_uri`, and the URLs and bodies: Gemini models through
//! `publishers/google/models/{model}:generateContent` (`:streamGenerateContent?alt=sse`) with
//! the Gemini translators, Claude models through `publishers/anthropic/models/{model}:rawPredict`
//! (`:streamRawPredict`) with the Anthropic translators and `anthropic_version:
//! vertex-2023-10-16` in the body (no `model`).
//!
//! Channel config (One API's names): `region`, `vertex_ai_project_id`, `vertex_ai_adc` (the
//! service-account JSON; the channel key is used when it holds that JSON instead).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The OAuth scope requested.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, when the service account names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The `anthropic_version` Vertex wants in Claude bodies.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The parts of a service-account key file that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key: String,
    pub private_key_id: String,
    pub token_uri: String,
    pub project_id: String,
}

impl ServiceAccount {
    /// Reads a service-account JSON (a string or an object).
    pub fn parse(v: &Value) -> Result<ServiceAccount, String> {
        let owned;
        let v = match v {
            Value::String(s) => {
                owned = serde_json::from_str::<Value>(s)
                    .map_err(|e| format!("vertex_ai_adc is not JSON: {e}"))?;
                &owned
            }
            v => v,
        };
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let sa = ServiceAccount {
            client_email: s("client_email"),
            private_key: s("private_key"),
            private_key_id: s("private_key_id"),
            token_uri: Some(s("token_uri"))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.into()),
            project_id: s("project_id"),
        };
        if sa.client_email.is_empty() || sa.private_key.is_empty() {
            return Err("the service account needs client_email and private_key".into());
        }
        Ok(sa)
    }
}

/// Where a Vertex channel sends: region, project and the service account.
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    pub project: String,
    pub account: ServiceAccount,
}

impl Settings {
    /// From the channel config (`region`, `vertex_ai_project_id`, `vertex_ai_adc`) and key (the
    /// service-account JSON when the config has none). Region defaults to `us-central1`, the
    /// project to the account's.
    pub fn from_channel(config: Option<&Value>, key: &str) -> Result<Settings, String> {
        let cfg = |k: &str| {
            config
                .and_then(|c| c.get(k))
                .filter(|v| !v.is_null() && v.as_str() != Some(""))
        };
        let account = match cfg("vertex_ai_adc") {
            Some(adc) => ServiceAccount::parse(adc)?,
            None => ServiceAccount::parse(&Value::String(key.to_string())).map_err(|_| {
                "set the channel's vertex_ai_adc (service-account JSON)".to_string()
            })?,
        };
        let text = |k: &str| cfg(k).and_then(Value::as_str).map(String::from);
        let project = text("vertex_ai_project_id").unwrap_or_else(|| account.project_id.clone());
        if project.is_empty() {
            return Err("set the channel's vertex_ai_project_id".into());
        }
        Ok(Settings {
            region: text("region").unwrap_or_else(|| "us-central1".into()),
            project,
            account,
        })
    }
}

/// Whether a model is served by Anthropic's publisher (rawPredict) rather than Google's.
pub fn is_claude(model: &str) -> bool {
    model.starts_with("claude")
}

/// The endpoint for a model; `base` overrides `https://{region}-aiplatform.googleapis.com`.
pub fn url(base: &str, region: &str, project: &str, model: &str, stream: bool) -> String {
    let base = base.trim().trim_end_matches('/');
    let base = if !base.is_empty() {
        base.to_string()
    } else if region == "global" {
        "https://aiplatform.googleapis.com".to_string()
    } else {
        format!("https://{region}-aiplatform.googleapis.com")
    };
    let (publisher, method) = match (is_claude(model), stream) {
        (true, false) => ("anthropic", "rawPredict"),
        (true, true) => ("anthropic", "streamRawPredict"),
        (false, false) => ("google", "generateContent"),
        (false, true) => ("google", "streamGenerateContent?alt=sse"),
    };
    format!(
        "{base}/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}"
    )
}

/// A Claude request (Anthropic's Messages body) for Vertex: no `model`, `anthropic_version`
/// set.
pub fn to_raw_predict(mut messages_body: Value) -> Value {
    if let Some(o) = messages_body.as_object_mut() {
        o.remove("model");
        o.insert("anthropic_version".into(), json!(ANTHROPIC_VERSION));
    }
    messages_body
}

/// The DER inside a PEM block.
pub fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|e| format!("private_key is not PEM: {e}"))
}

/// The signed JWT (RS256) asserting the service account for one hour from `now`, audience the
/// token endpoint.
pub fn jwt_assertion(sa: &ServiceAccount, now: i64) -> Result<String, String> {
    use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if !sa.private_key_id.is_empty() {
        header["kid"] = json!(sa.private_key_id);
    }
    let claims = json!({"iss": sa.client_email, "scope": SCOPE, "aud": sa.token_uri,
        "iat": now, "exp": now + 3600});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let der = pem_der(&sa.private_key)?;
    let key = RsaKeyPair::from_pkcs8(&der)
        .map_err(|e| format!("private_key is not a PKCS#8 RSA key: {e}"))?;
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "cannot sign the JWT".to_string())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// The form body of the token request (`grant_type` jwt-bearer, `assertion`).
pub fn token_request_body(assertion: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .append_pair("assertion", assertion)
        .finish()
}

/// The token endpoint's answer: `Ok((access_token, expires_in))`, or the OpenAI error for
/// `{"error", "error_description"}`.
pub fn parse_token(body: &[u8]) -> Result<(String, u64), Value> {
    super::parse_oauth_token(body, "Vertex AI")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/vertex/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn settings_and_urls() {
        let adc = fixture("service_account.json");
        let cfg = json!({"region": "europe-west1", "vertex_ai_project_id": "proj-9",
            "vertex_ai_adc": adc});
        let s = Settings::from_channel(Some(&cfg), "ignored").unwrap();
        assert_eq!(
            (s.region.as_str(), s.project.as_str()),
            ("europe-west1", "proj-9")
        );
        assert_eq!(
            s.account.client_email,
            "relay@tollgate-test.iam.gserviceaccount.com"
        );
        assert_eq!(s.account.token_uri, "https://oauth2.googleapis.com/token");
        // The key may hold the JSON; the project then comes from it.
        let s = Settings::from_channel(None, &adc).unwrap();
        assert_eq!(
            (s.region.as_str(), s.project.as_str()),
            ("us-central1", "tollgate-test")
        );
        assert!(Settings::from_channel(None, "not json").is_err());
        assert_eq!(
            url("", "us-central1", "p", "gemini-1.5-pro", true),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/gemini-1.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            url("", "global", "p", "claude-3-5-haiku@20241022", false),
            "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/anthropic/models/claude-3-5-haiku@20241022:rawPredict"
        );
        assert_eq!(
            url("http://127.0.0.1:1/", "r", "p", "claude-x", true),
            "http://127.0.0.1:1/v1/projects/p/locations/r/publishers/anthropic/models/claude-x:streamRawPredict"
        );
        let body = to_raw_predict(json!({"model": "claude-x", "messages": [], "max_tokens": 5}));
        assert_eq!(
            body,
            json!({"messages": [], "max_tokens": 5, "anthropic_version": "vertex-2023-10-16"})
        );
    }

    #[test]
    fn jwt_verifies_with_the_public_key() {
        use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
        let sa = ServiceAccount::parse(&Value::String(fixture("service_account.json"))).unwrap();
        let jwt = jwt_assertion(&sa, 1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef"})
        );
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            json!({"iss": "relay@tollgate-test.iam.gserviceaccount.com", "scope": SCOPE,
                "aud": "https://oauth2.googleapis.com/token", "iat": 1_700_000_000i64,
                "exp": 1_700_003_600i64})
        );
        // The public half, committed apart (PKCS#1, from `openssl rsa -RSAPublicKey_out`).
        let public = pem_der(&fixture("public_key.pem")).unwrap();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(signed.as_bytes(), &sig)
            .expect("the signature verifies with the public key");
        // PKCS#1 v1.5 is deterministic: the same input signs the same.
        assert_eq!(jwt_assertion(&sa, 1_700_000_000).unwrap(), jwt);
        let mut tampered = signed.into_bytes();
        tampered[3] ^= 1;
        assert!(
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
                .verify(&tampered, &sig)
                .is_err()
        );
        assert_eq!(
            token_request_body("a.b.c"),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c"
        );
        assert_eq!(
            parse_token(br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#)
                .unwrap(),
            ("ya29.x".into(), 3599)
        );
        let e = parse_token(
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        )
        .unwrap_err();
        assert_eq!(e["type"], "authentication_error");
    }
}
