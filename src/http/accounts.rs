//! Account and session routes: register, login, logout, `/me`. The token endpoint,
//! `/auth/refresh-token`, is `token_endpoint.rs`; in cookie mode login and a password
//! change put the refresh token in the cookie and logout clears it (`refresh_cookie.rs`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError as _};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::json;

use super::body::{json_body, parse_json, read_body, require_json_content_type};
use super::change_bodies;
use super::error::ApiError;
use super::extract::{BearerToken, Caller, ClientAddr};
use super::token_endpoint::new_session_answer;
use super::{refresh_cookie, resource, with_refreshed_token, AppState};
use crate::auth::{AuthError, Registration, SessionProof};
#[cfg(feature = "smtp")]
use crate::config::MailTransportKind;
use crate::secret::SecretString;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/register").route(web::post().to(register)))
        .service(resource("/auth/login").route(web::post().to(login)))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    password: SecretString,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    invitation: Option<SecretString>,
    #[serde(default)]
    email: Option<String>,
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
        email: body.email,
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
    let tokens = match state
        .auth
        .accounts
        .login(&body.username, body.password, client.0)
        .await
    {
        Err(AuthError::EmailUnverified { user }) => {
            // The password matched: the account's owner is here, so a new link goes out.
            #[cfg(feature = "smtp")]
            state.auth.email.remind_to_verify(user, client.0).await;
            return Err(AuthError::EmailUnverified { user }.into());
        }
        outcome => outcome?,
    };
    Ok(new_session_answer(state.auth.settings(), tokens))
}

/// 204 once the caller proved which session it holds: with `Authorization: Bearer` (an
/// access token of the session, even an expired one), a JSON body `{"refresh_token"}`, or
/// the refresh cookie (consulted only without a body token). The Bearer token is tried
/// first; the first proof that holds ends the session(s), and when none does the answer is
/// the first refusal. In cookie mode the answer clears the cookie unless the session may
/// live on (see below).
async fn end_sessions(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
    everywhere: bool,
) -> HttpResponse {
    let outcome = async {
        let settings = state.auth.settings();
        let access = BearerToken::from_request_optional(req)?;
        let body = read_body(payload, settings.server.max_body_bytes).await?;
        let in_body = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            require_json_content_type(req)?;
            parse_json::<LogoutBody>(&body)?.refresh_token
        };
        let end = |proof| async move {
            let sessions = &state.auth.sessions;
            if everywhere {
                sessions.logout_all(proof).await
            } else {
                sessions.logout(proof).await
            }
        };
        let mut first_refusal = None;
        if let Some(token) = &access {
            match end(SessionProof::AccessToken(token.expose())).await {
                Ok(()) => return Ok(()),
                Err(err @ AuthError::Store(_)) => return Err(err.into()),
                Err(err) => first_refusal = Some(err),
            }
        }
        // The cookie is asked for (behind its CSRF checks) only when the body and the
        // Bearer token proved nothing: a good Bearer token is never refused for a cookie.
        let refresh = match in_body {
            Some(refresh) => Some(refresh),
            None => refresh_cookie::presented(req, settings)?,
        };
        if let Some(refresh) = &refresh {
            match end(SessionProof::RefreshToken(refresh.expose_secret())).await {
                Ok(()) => return Ok(()),
                Err(err @ AuthError::Store(_)) => return Err(err.into()),
                Err(err) => {
                    first_refusal.get_or_insert(err);
                }
            }
        }
        Err::<(), ApiError>(first_refusal.unwrap_or(AuthError::TokenMissing).into())
    }
    .await;
    let mut response = match outcome {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(err) => err.error_response(),
    };
    // Kept when the session may live on and the cookie is what can still end it: a
    // storage fault (retry) or a CSRF refusal (a foreign page must not log anyone out).
    let status = response.status();
    if !(status.is_server_error() || status == StatusCode::FORBIDDEN) {
        refresh_cookie::clear(state.auth.settings(), &mut response);
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogoutBody {
    #[serde(default)]
    refresh_token: Option<SecretString>,
}

async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    end_sessions(&req, &state, payload, false).await
}

async fn logout_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    end_sessions(&req, &state, payload, true).await
}

async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let caller = caller.authenticated();
    let user = state.auth.accounts.me(caller).await?;
    Ok(
        with_refreshed_token(HttpResponse::Ok(), caller.refreshed.as_ref())
            .json(json!({ "user": user, "claims": *caller.claims })),
    )
}

/// `PATCH /me`: refresh-on-change. The answer carries the new token in the body and in
/// `X-Refreshed-Token`. A new address comes with `current_password`, and (mail on) a
/// verification mail goes to it.
async fn patch_me(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: BearerToken,
    client: ClientAddr,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body: serde_json::Map<String, serde_json::Value> =
        json_body(&req, payload, limit(&state)).await?;
    let current_password = match body.remove("current_password") {
        None => None,
        Some(serde_json::Value::String(text)) => Some(SecretString::from(text)),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "current_password: expected a string",
            ))
        }
    };
    let new_address = matches!(body.get("email"), Some(serde_json::Value::String(_)));
    let patch = change_bodies::user_patch(body);
    let (user, token) = state
        .auth
        .accounts
        .patch_me(token.expose(), patch, current_password)
        .await?;
    tracing::trace!(?token, "claims changed: token answered");
    // Setting the address it already had leaves it verified: nothing to mail then.
    if new_address && !user.email_verified {
        mail_verification(&state, &token.access_token, client).await;
    }
    Ok(
        with_refreshed_token(HttpResponse::Ok(), Some(&token.access_token))
            .json(json!({ "user": user, "token": token })),
    )
}

/// A verification mail to the address the caller just set, when mail is on. The change
/// stands whatever becomes of the mail (a spent budget, say): the user can ask again with
/// `POST /auth/email/verification`.
#[cfg(feature = "smtp")]
async fn mail_verification(state: &AppState, access_token: &SecretString, client: ClientAddr) {
    if state.auth.settings().mail.transport == MailTransportKind::None {
        return;
    }
    let mailed = state
        .auth
        .email
        .request_verification(access_token.expose_secret(), client.0)
        .await;
    if let Err(err) = mailed {
        tracing::debug!(error = %err, "no verification mailed to the new address");
    }
}

/// Without the `smtp` feature there is no mail.
#[cfg(not(feature = "smtp"))]
async fn mail_verification(_state: &AppState, _access_token: &SecretString, _client: ClientAddr) {}

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
    Ok(new_session_answer(state.auth.settings(), tokens))
}
