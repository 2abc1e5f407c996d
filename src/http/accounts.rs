//! Account and session routes: register, login, refresh, logout, `/me`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::{json_body, parse_json, read_body, require_json_content_type};
use super::error::ApiError;
use super::extract::{BearerToken, ClientAddr};
use super::{resource, with_refreshed_token, AppState};
use crate::auth::{Registration, TokenResponse};
use crate::secret::SecretString;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/register").route(web::post().to(register)))
        .service(resource("/auth/login").route(web::post().to(login)))
        .service(resource("/auth/refresh-token").route(web::post().to(refresh_token)))
        .service(resource("/auth/logout").route(web::post().to(logout)))
        .service(resource("/auth/logout-all").route(web::post().to(logout_all)))
        .service(
            resource("/me")
                .route(web::get().to(me))
                .route(web::patch().to(patch_me)),
        )
        .service(resource("/me/password").route(web::post().to(change_password)));
}

fn limit(state: &AppState) -> usize {
    state.auth.settings().server.max_body_bytes
}

/// A token answer: never cached (RFC 6749 §5.1).
fn token_answer(response: &TokenResponse) -> HttpResponse {
    // Safe at any level: the tokens are secrets, their Debug is redacted.
    tracing::trace!(answer = ?response, "token answer");
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    password: SecretString,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    invitation: Option<SecretString>,
}

/// Who may register, into which tenant and how often is the flow's business
/// ([`crate::auth::Accounts::register_over_api`]); the route passes the Bearer token and the
/// client address along.
async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: ClientAddr,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token = BearerToken::from_request_optional(&req)?;
    let body: RegisterBody = json_body(&req, payload, limit(&state)).await?;
    let registration = Registration {
        username: body.username,
        password: body.password,
        tenant: body.tenant,
        invitation: body.invitation,
        roles: Vec::new(),
    };
    tracing::trace!(?registration, "registration asked");
    let user = state
        .auth
        .accounts
        .register_over_api(
            registration,
            token.as_ref().map(BearerToken::expose),
            client.0,
        )
        .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "user": user })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: SecretString,
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: ClientAddr,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: LoginBody = json_body(&req, payload, limit(&state)).await?;
    let tokens = state
        .auth
        .accounts
        .login(&body.username, body.password, client.0)
        .await?;
    Ok(token_answer(&tokens))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    #[serde(default)]
    refresh_token: Option<SecretString>,
}

/// With a refresh token in the body: a rotated pair. With none, and a Bearer access token
/// (valid or stale): a new access token for the same session.
async fn refresh_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, limit(&state)).await?;
    let refresh = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        require_json_content_type(&req)?;
        parse_json::<RefreshBody>(&body)?.refresh_token
    };
    let tokens = match refresh {
        Some(refresh) => state.auth.sessions.refresh(refresh.expose_secret()).await?,
        None => match BearerToken::from_request_optional(&req)? {
            Some(token) => state.auth.sessions.reissue_access(token.expose()).await?,
            None => {
                return Err(ApiError::invalid_request(
                    "refresh_token is required, or an Authorization: Bearer access token",
                ))
            }
        },
    };
    Ok(token_answer(&tokens))
}

async fn logout(state: web::Data<AppState>, token: BearerToken) -> Result<HttpResponse, ApiError> {
    state.auth.sessions.logout(token.expose()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn logout_all(
    state: web::Data<AppState>,
    token: BearerToken,
) -> Result<HttpResponse, ApiError> {
    state.auth.sessions.logout_all(token.expose()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn me(state: web::Data<AppState>, token: BearerToken) -> Result<HttpResponse, ApiError> {
    let (user, caller) = state.auth.accounts.me(token.expose())?;
    Ok(
        with_refreshed_token(HttpResponse::Ok(), caller.refreshed.as_ref())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "user": user, "claims": *caller.claims })),
    )
}

/// `PATCH /me`: refresh-on-change. The answer carries the new token in the body and in
/// `X-Refreshed-Token`.
async fn patch_me(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: BearerToken,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: Map<String, Value> = json_body(&req, payload, limit(&state)).await?;
    let (user, token) = state.auth.accounts.patch_me(token.expose(), &body).await?;
    tracing::trace!(?token, "claims changed: token answered");
    Ok(
        with_refreshed_token(HttpResponse::Ok(), Some(&token.access_token))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "user": user, "token": token })),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: SecretString,
    new_password: SecretString,
}

async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: BearerToken,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: PasswordBody = json_body(&req, payload, limit(&state)).await?;
    let tokens = state
        .auth
        .accounts
        .change_password(token.expose(), body.current_password, body.new_password)
        .await?;
    Ok(token_answer(&tokens))
}
