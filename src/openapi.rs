//! The OpenAPI description of `/api` and `/v1`, served at `/api/openapi.json`. It is built with
//! utoipa's builders from one table; a test checks that table against the routes the server
//! really registers (both ways) and that every documented route answers.

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Required,
    ResponseBuilder,
};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Public,
    User,
    Admin,
    Root,
    /// An `sk-` token (`Authorization: Bearer sk-...`).
    Token,
    /// `METRICS_TOKEN` when set.
    Metrics,
}

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub auth: Auth,
    pub summary: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    auth: Auth,
    summary: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        tag,
        auth,
        summary,
    }
}

use Auth::*;

/// Every route Tollgate serves under `/api`, `/v1`, `/dashboard` and `/metrics`.
pub const ROUTES: &[RouteDoc] = &[
    r(
        "get",
        "/api/status",
        "misc",
        Public,
        "Server status and public settings",
    ),
    r(
        "get",
        "/api/notice",
        "misc",
        Public,
        "The operator's notice",
    ),
    r(
        "get",
        "/api/about",
        "misc",
        Public,
        "The about page content",
    ),
    r(
        "get",
        "/api/home_page_content",
        "misc",
        Public,
        "The home page content",
    ),
    r(
        "get",
        "/api/models",
        "channel",
        User,
        "Known models by channel type",
    ),
    r(
        "get",
        "/api/group/",
        "group",
        Admin,
        "Group names (GroupRatio keys)",
    ),
    r("post", "/api/topup", "user", Admin, "Add quota to a user"),
    r(
        "get",
        "/api/reset_password",
        "user",
        Public,
        "Email a password reset link",
    ),
    r(
        "post",
        "/api/user/reset",
        "user",
        Public,
        "Confirm a password reset",
    ),
    r(
        "get",
        "/api/verification",
        "user",
        Public,
        "Email a verification code",
    ),
    r("post", "/api/user/register", "user", Public, "Register"),
    r(
        "post",
        "/api/user/login",
        "user",
        Public,
        "Sign in (sets the session cookie)",
    ),
    r("get", "/api/user/logout", "user", Public, "Sign out"),
    r("get", "/api/user/self", "user", User, "The signed-in user"),
    r(
        "put",
        "/api/user/self",
        "user",
        User,
        "Update username, display name, password",
    ),
    r(
        "delete",
        "/api/user/self",
        "user",
        User,
        "Delete the own account",
    ),
    r(
        "get",
        "/api/user/token",
        "user",
        User,
        "Generate a new access token",
    ),
    r("get", "/api/user/aff", "user", User, "The invitation code"),
    r(
        "get",
        "/api/user/dashboard",
        "user",
        User,
        "Use per day and model",
    ),
    r(
        "get",
        "/api/user/available_models",
        "user",
        User,
        "Models the user's group may use",
    ),
    r("post", "/api/user/topup", "user", User, "Redeem a code"),
    r("get", "/api/user/", "user", Admin, "List users"),
    r("get", "/api/user/search", "user", Admin, "Search users"),
    r(
        "post",
        "/api/user/manage",
        "user",
        Admin,
        "Enable, disable, delete, promote, demote",
    ),
    r("post", "/api/user/", "user", Admin, "Create a user"),
    r("put", "/api/user/", "user", Admin, "Update a user"),
    r("get", "/api/user/{id}", "user", Admin, "Get a user"),
    r("delete", "/api/user/{id}", "user", Admin, "Delete a user"),
    r("get", "/api/option/", "option", Root, "List options"),
    r("put", "/api/option/", "option", Root, "Set one option"),
    r(
        "get",
        "/api/channel/",
        "channel",
        Admin,
        "List channels (keys omitted)",
    ),
    r(
        "get",
        "/api/channel/search",
        "channel",
        Admin,
        "Search channels",
    ),
    r(
        "get",
        "/api/channel/models",
        "channel",
        Admin,
        "The model catalogue (not enveloped)",
    ),
    r(
        "get",
        "/api/channel/test",
        "channel",
        Admin,
        "Test all channels in the background",
    ),
    r(
        "get",
        "/api/channel/test/{id}",
        "channel",
        Admin,
        "Test one channel",
    ),
    r(
        "get",
        "/api/channel/update_balance",
        "channel",
        Admin,
        "Update every channel's balance",
    ),
    r(
        "get",
        "/api/channel/update_balance/{id}",
        "channel",
        Admin,
        "Update one channel's balance",
    ),
    r(
        "get",
        "/api/channel/fetch_models/{id}",
        "channel",
        Admin,
        "Models the upstream lists",
    ),
    r(
        "post",
        "/api/channel/",
        "channel",
        Admin,
        "Create channels (one per key line)",
    ),
    r("put", "/api/channel/", "channel", Admin, "Update a channel"),
    r(
        "delete",
        "/api/channel/disabled",
        "channel",
        Admin,
        "Delete disabled channels",
    ),
    r(
        "get",
        "/api/channel/{id}",
        "channel",
        Admin,
        "Get a channel (key omitted)",
    ),
    r(
        "delete",
        "/api/channel/{id}",
        "channel",
        Admin,
        "Delete a channel",
    ),
    r("get", "/api/token/", "token", User, "List own tokens"),
    r(
        "get",
        "/api/token/search",
        "token",
        User,
        "Search own tokens",
    ),
    r("post", "/api/token/", "token", User, "Create a token"),
    r("put", "/api/token/", "token", User, "Update a token"),
    r("get", "/api/token/{id}", "token", User, "Get an own token"),
    r(
        "delete",
        "/api/token/{id}",
        "token",
        User,
        "Delete an own token",
    ),
    r(
        "get",
        "/api/redemption/",
        "redemption",
        Admin,
        "List redemption codes",
    ),
    r(
        "get",
        "/api/redemption/search",
        "redemption",
        Admin,
        "Search redemption codes",
    ),
    r(
        "post",
        "/api/redemption/",
        "redemption",
        Admin,
        "Create redemption codes",
    ),
    r(
        "put",
        "/api/redemption/",
        "redemption",
        Admin,
        "Update a redemption code",
    ),
    r(
        "get",
        "/api/redemption/{id}",
        "redemption",
        Admin,
        "Get a redemption code",
    ),
    r(
        "delete",
        "/api/redemption/{id}",
        "redemption",
        Admin,
        "Delete a redemption code",
    ),
    r("get", "/api/log/", "log", Admin, "All logs with filters"),
    r(
        "delete",
        "/api/log/",
        "log",
        Admin,
        "Delete logs older than a timestamp",
    ),
    r(
        "get",
        "/api/log/stat",
        "log",
        Admin,
        "Quota sum of consume logs",
    ),
    r("get", "/api/log/self/stat", "log", User, "Own quota sum"),
    r("get", "/api/log/search", "log", Admin, "Search logs"),
    r("get", "/api/log/self", "log", User, "Own logs"),
    r(
        "get",
        "/api/log/self/search",
        "log",
        User,
        "Search own logs",
    ),
    r("get", "/api/openapi.json", "misc", Public, "This document"),
    r(
        "post",
        "/v1/chat/completions",
        "relay",
        Token,
        "Chat completions (streaming included)",
    ),
    r(
        "post",
        "/v1/completions",
        "relay",
        Token,
        "Text completions",
    ),
    r(
        "post",
        "/v1/messages",
        "relay",
        Token,
        "Anthropic Messages API (x-api-key or Bearer), any channel",
    ),
    r(
        "post",
        "/v1/messages/count_tokens",
        "relay",
        Token,
        "Anthropic token count (counted locally, not billed)",
    ),
    r(
        "post",
        "/v1beta/models/{target}",
        "relay",
        Token,
        "Gemini generateContent / streamGenerateContent / countTokens (local, not billed) / embedContent / batchEmbedContents ({model}:{method}), any channel",
    ),
    r("post", "/v1/embeddings", "relay", Token, "Embeddings"),
    r(
        "post",
        "/v1/engines/{model}/embeddings",
        "relay",
        Token,
        "Embeddings (engine path)",
    ),
    r("post", "/v1/moderations", "relay", Token, "Moderations"),
    r(
        "post",
        "/v1/images/generations",
        "relay",
        Token,
        "Image generation",
    ),
    r("post", "/v1/audio/speech", "relay", Token, "Text to speech"),
    r(
        "post",
        "/v1/audio/transcriptions",
        "relay",
        Token,
        "Transcription (multipart)",
    ),
    r(
        "post",
        "/v1/audio/translations",
        "relay",
        Token,
        "Translation (multipart)",
    ),
    r(
        "get",
        "/v1/models",
        "relay",
        Token,
        "Models this token may use",
    ),
    r("get", "/v1/models/{model}", "relay", Token, "One model"),
    r(
        "delete",
        "/v1/models/{model}",
        "relay",
        Token,
        "Not implemented (501), as One API",
    ),
    r(
        "post",
        "/v1/edits",
        "relay",
        Token,
        "Not implemented (501), as One API",
    ),
    r(
        "post",
        "/v1/images/edits",
        "relay",
        Token,
        "Not implemented (501), as One API",
    ),
    r(
        "post",
        "/v1/images/variations",
        "relay",
        Token,
        "Not implemented (501), as One API",
    ),
    r(
        "get",
        "/v1/dashboard/billing/subscription",
        "billing",
        Token,
        "Token balance",
    ),
    r(
        "get",
        "/v1/dashboard/billing/usage",
        "billing",
        Token,
        "Token usage",
    ),
    r(
        "get",
        "/dashboard/billing/subscription",
        "billing",
        Token,
        "Token balance",
    ),
    r(
        "get",
        "/dashboard/billing/usage",
        "billing",
        Token,
        "Token usage",
    ),
    r("get", "/metrics", "metrics", Metrics, "Prometheus metrics"),
];

fn method(m: &str) -> HttpMethod {
    match m {
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        "delete" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// Builds the document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let mut op = OperationBuilder::new()
            .tag(route.tag)
            .summary(Some(route.summary))
            .operation_id(Some(format!(
                "{}{}",
                route.method,
                route.path.replace(['/', '{', '}', '.'], "_")
            )))
            .response(
                "200",
                ResponseBuilder::new().description(match route.tag {
                    "relay" | "billing" => "OpenAI-compatible answer",
                    "metrics" => "Prometheus text format",
                    _ => "One API envelope {success, message, data}",
                }),
            );
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True),
                );
            }
        }
        let scheme = match route.auth {
            Public => None,
            User | Admin | Root => Some("session"),
            Token => Some("token"),
            Metrics => Some("metrics"),
        };
        if let Some(s) = scheme {
            op = op.security(SecurityRequirement::new(s, Vec::<String>::new()));
            if matches!(route.auth, User | Admin | Root) {
                op = op.security(SecurityRequirement::new(
                    "access_token",
                    Vec::<String>::new(),
                ));
            }
        }
        paths = paths.path(route.path, PathItem::new(method(route.method), op));
    }
    let components = ComponentsBuilder::new()
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("session"))),
        )
        .security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("Authorization"))),
        )
        .security_scheme(
            "token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .security_scheme(
            "metrics",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Tollgate")
                .version(crate::VERSION)
                .description(Some(
                    "One API compatible LLM gateway: management API (/api) and relay (/v1).",
                )),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// `GET /api/openapi.json`
pub async fn serve() -> actix_web::HttpResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOC.get_or_init(|| document().to_json().unwrap_or_else(|_| "{}".into()));
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}
