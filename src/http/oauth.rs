//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009): form-encoded,
//! for other services. Introspection takes a service credential (HTTP Basic) or an admin's
//! Bearer token; revocation takes a service credential or none at all: whoever holds a
//! token may revoke it, since holding it is the proof.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::body::read_body;
use super::error::ApiError;
use super::extract::{basic_credentials, BearerToken, ClientCredentials};
use super::{resource, AppState};
use crate::auth::{AuthError, TokenHint};
use crate::secret::SecretString;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/oauth/introspect").route(web::post().to(introspect)))
        .service(resource("/oauth/revoke").route(web::post().to(revoke)));
}

#[derive(Deserialize)]
struct TokenForm {
    token: String,
    token_type_hint: Option<String>,
}

/// Who is asking, with what it showed (the change feed asks again with it while its
/// stream is open).
pub(super) enum Client {
    Service(ClientCredentials),
    Admin {
        token: SecretString,
        /// The admin token's `exp`.
        exp: u64,
    },
    Anonymous,
}

impl Client {
    pub(super) fn is_trusted(&self) -> bool {
        matches!(self, Client::Service(_) | Client::Admin { .. })
    }
}

/// Reads `Authorization`: Basic (a service), Bearer (must be an admin), or nothing. Any
/// other scheme, or Basic without valid credentials, is `invalid_client` (RFC 6749 §5.2).
pub(super) async fn client(req: &HttpRequest, state: &AppState) -> Result<Client, ApiError> {
    if let Some(credentials) = basic_credentials(req)? {
        state
            .auth
            .introspection
            .authenticate_service(
                &credentials.client_id,
                credentials.client_secret.expose_secret(),
            )
            .await?;
        return Ok(Client::Service(credentials));
    }
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(Client::Anonymous);
    };
    let text = value.to_str().map_err(|_| AuthError::InvalidClient)?;
    let scheme = text.split(' ').next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::InvalidClient.into());
    }
    let bearer = BearerToken::from_request_optional(req)?.ok_or(AuthError::InvalidClient)?;
    let caller = state.auth.admin.require_admin(bearer.expose()).await?;
    Ok(Client::Admin {
        token: bearer.expose().into(),
        exp: caller.claims.exp,
    })
}

/// Whether the request presents client credentials (anything but a Bearer token).
fn presents_client_credentials(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|value| {
            let text = value.to_str().unwrap_or_default();
            let scheme = text.split(' ').next().unwrap_or_default();
            !scheme.eq_ignore_ascii_case("bearer")
        })
}

async fn read_form(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<TokenForm, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !declared.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::unsupported_media_type_form());
    }
    let body = read_body(payload, state.auth.settings().server.max_body_bytes).await?;
    serde_urlencoded::from_bytes(&body)
        .map_err(|err| ApiError::invalid_request(format!("invalid form body: {err}")))
}

fn no_store(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok().json(body)
}

/// RFC 7662 introspection; errors as the token endpoint's (`application/json`, §5.2).
async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    answer_introspection(&req, &state, payload)
        .await
        .map_err(ApiError::at_token_endpoint)
}

async fn answer_introspection(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if !client(req, state).await?.is_trusted() {
        return Err(AuthError::InvalidClient.into());
    }
    let form = read_form(req, state, payload).await?;
    let hint = TokenHint::parse(form.token_type_hint.as_deref());
    Ok(no_store(
        state
            .auth
            .introspection
            .introspect(&form.token, hint)
            .await?,
    ))
}

/// RFC 7009 revocation; errors as the token endpoint's (`application/json`, §5.2).
async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    answer_revocation(&req, &state, payload)
        .await
        .map_err(ApiError::at_token_endpoint)
}

async fn answer_revocation(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Holding the token is proof enough to revoke it (RFC 7009 §2.1 for public clients);
    // a service that does present credentials must present valid ones.
    if presents_client_credentials(req) {
        client(req, state).await?;
    }
    let form = read_form(req, state, payload).await?;
    let hint = TokenHint::parse(form.token_type_hint.as_deref());
    state
        .auth
        .introspection
        .revoke_token(&form.token, hint)
        .await?;
    Ok(HttpResponse::Ok().finish())
}
