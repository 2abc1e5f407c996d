//! `POST /auth/refresh-token`, the token endpoint: claimd's own JSON shape and RFC 6749's
//! form-encoded one.
//!
//! - **Form** (`application/x-www-form-urlencoded`, what standard OAuth clients send):
//!   `grant_type=refresh_token&refresh_token=…` (§6) or `grant_type=client_credentials`
//!   (§4.4) with the service's credentials as `client_secret_basic` or
//!   `client_secret_post` (§2.3.1, one method only). No scopes exist: a `scope` is
//!   `invalid_scope`. A parameter given twice is `invalid_request` (§3.2).
//! - **JSON** `{"refresh_token": "…"}`: a rotated pair, as before.
//! - **No body** (or `{}`): the refresh token from the cookie in cookie mode
//!   (`refresh_cookie`), else a new access token for the session of the Bearer access
//!   token (valid or stale).
//!
//! A refresh token goes back the way it came: from the cookie into the cookie, from a body
//! into the body, so a standard client against a cookie-mode server still gets the rotated
//! token it must present next. Every error carries §5.2's `error` as well as the problem's
//! `code` ([`ApiError::at_token_endpoint`]); `invalid_client` is a 401 with
//! `WWW-Authenticate: Basic`.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError as _};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::body::{parse_json, read_body, require_json_content_type};
use super::error::ApiError;
use super::extract::{basic_credentials, BearerToken, ClientCredentials};
use super::{refresh_cookie, resource, AppState};
use crate::auth::{AuthError, ClientTokenResponse, TokenResponse};
use crate::config::Settings;
use crate::secret::SecretString;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/refresh-token").route(web::post().to(token_endpoint)));
}

/// A token answer: never cached (RFC 6749 §5.1). With `to_cookie`, the refresh token (if
/// any) travels in the refresh cookie instead of the body.
pub(crate) fn token_answer(
    settings: &Settings,
    mut tokens: TokenResponse,
    to_cookie: bool,
) -> HttpResponse {
    // Safe at any level: the tokens are secrets, their Debug is redacted.
    tracing::trace!(answer = ?tokens, "token answer");
    let mut response = HttpResponse::Ok();
    // RFC 6749 §5.1: no-store (the middleware's default) and, for HTTP/1.0 caches, this.
    response.insert_header((header::PRAGMA, "no-cache"));
    if to_cookie {
        refresh_cookie::move_refresh_token_to_cookie(settings, &mut response, &mut tokens);
    }
    response.json(tokens)
}

/// The answer to a request that starts a session (login, a password reset, a magic link):
/// the refresh token in the cookie when `tokens.refresh_cookie` is on, else in the body.
pub(crate) fn new_session_answer(settings: &Settings, tokens: TokenResponse) -> HttpResponse {
    token_answer(settings, tokens, refresh_cookie::enabled(settings))
}

fn client_token_answer(tokens: &ClientTokenResponse) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::PRAGMA, "no-cache"))
        .json(tokens)
}

async fn token_endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    answer(&req, &state, payload)
        .await
        .map_err(ApiError::at_token_endpoint)
}

async fn answer(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let settings = state.auth.settings();
    let body = read_body(payload, settings.server.max_body_bytes).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return without_refresh_token(req, state).await;
    }
    if is_form(req) {
        return form_grant(req, state, &body).await;
    }
    if require_json_content_type(req).is_err() {
        return Err(ApiError::unsupported_media_type_token());
    }
    match parse_json::<RefreshBody>(&body)?.refresh_token {
        Some(refresh) => {
            let tokens = state.auth.sessions.refresh(refresh.expose_secret()).await?;
            Ok(token_answer(settings, tokens, false))
        }
        None => without_refresh_token(req, state).await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    #[serde(default)]
    refresh_token: Option<SecretString>,
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// No refresh token in the body: the cookie's (cookie mode), else the Bearer re-mint.
async fn without_refresh_token(
    req: &HttpRequest,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let settings = state.auth.settings();
    if let Some(refresh) = refresh_cookie::presented(req, settings)? {
        return match state.auth.sessions.refresh(refresh.expose_secret()).await {
            Ok(tokens) => Ok(token_answer(settings, tokens, true)),
            Err(err @ AuthError::InvalidGrant(_)) => {
                // A cookie that will never refresh again is removed with the refusal.
                let mut response = ApiError::from(err).at_token_endpoint().error_response();
                refresh_cookie::clear(settings, &mut response);
                Ok(response)
            }
            Err(err) => Err(err.into()),
        };
    }
    match BearerToken::from_request_optional(req)? {
        Some(token) => {
            let tokens = state.auth.sessions.reissue_access(token.expose()).await?;
            Ok(token_answer(settings, tokens, false))
        }
        None => Err(ApiError::invalid_request(
            "refresh_token is required, or an Authorization: Bearer access token",
        )),
    }
}

/// The parameters of a form request, each at most once.
struct Form(HashMap<String, String>);

impl Form {
    fn parse(body: &[u8]) -> Result<Form, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|err| ApiError::invalid_request(format!("invalid form body: {err}")))?;
        let mut params = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if params.contains_key(&name) {
                return Err(ApiError::invalid_request(format!(
                    "{name}: a parameter may be given once only"
                )));
            }
            params.insert(name, value);
        }
        Ok(Form(params))
    }

    /// A parameter; an empty value is treated as absent (RFC 6749 §3.1).
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    fn take_secret(&mut self, name: &str) -> Option<SecretString> {
        self.0
            .remove(name)
            .filter(|value| !value.is_empty())
            .map(SecretString::from)
    }
}

/// An RFC 6749 request: the grant named by `grant_type`.
async fn form_grant(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let mut form = Form::parse(body)?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| ApiError::invalid_request("grant_type is required"))?
        .to_string();
    if form.get("scope").is_some() {
        return Err(ApiError::invalid_scope());
    }
    let client = client_credentials(req, &mut form)?;
    match grant_type.as_str() {
        "refresh_token" => {
            // Refresh tokens belong to users, not to clients: a public client needs no
            // credentials, but credentials that are presented must be right.
            if let Some(client) = &client {
                state
                    .auth
                    .introspection
                    .authenticate_service(&client.client_id, client.client_secret.expose_secret())
                    .await?;
            }
            let refresh = form
                .take_secret("refresh_token")
                .ok_or_else(|| ApiError::invalid_request("refresh_token is required"))?;
            let tokens = state.auth.sessions.refresh(refresh.expose_secret()).await?;
            Ok(token_answer(state.auth.settings(), tokens, false))
        }
        "client_credentials" => {
            let client = client.ok_or(AuthError::InvalidClient)?;
            let tokens = state
                .auth
                .introspection
                .grant_client_credentials(&client.client_id, client.client_secret.expose_secret())
                .await?;
            Ok(client_token_answer(&tokens))
        }
        other => Err(ApiError::unsupported_grant_type(format!(
            "grant_type {other:?} is not supported: use refresh_token or client_credentials"
        ))),
    }
}

/// The client's credentials, by `client_secret_basic` or `client_secret_post`; a lone
/// `client_id` (a public client naming itself) is no authentication and is ignored.
///
/// # Errors
/// `invalid_request` when both methods are used (RFC 6749 §2.3); `invalid_client` for a
/// Basic header that does not decode.
fn client_credentials(
    req: &HttpRequest,
    form: &mut Form,
) -> Result<Option<ClientCredentials>, ApiError> {
    let basic = basic_credentials(req)?;
    let posted = form.take_secret("client_secret");
    match (basic, posted) {
        (Some(_), Some(_)) => Err(ApiError::invalid_request(
            "use one client authentication method: Basic or client_secret, not both",
        )),
        (Some(basic), None) => Ok(Some(basic)),
        (None, Some(client_secret)) => {
            let client_id = form
                .get("client_id")
                .ok_or_else(|| ApiError::invalid_request("client_secret needs client_id"))?
                .to_string();
            Ok(Some(ClientCredentials {
                client_id,
                client_secret,
            }))
        }
        (None, None) => Ok(None),
    }
}
