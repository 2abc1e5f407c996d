//! The mail routes (API.md "Mail"): asking for a verification, a password reset or a magic
//! link, redeeming one, and an admin's "send a password reset". What each does is
//! `auth::Email`'s; these read the bodies and shape the answers. A request by address
//! answers 202 with the same body whether or not an account has the address.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::body::json_body;
use super::error::ApiError;
use super::extract::{Admin, BearerToken, ClientAddr};
use super::token_endpoint::token_answer;
use super::{path_ids, refresh_cookie, resource, with_refreshed_token, AppState};
use crate::secret::{ExposeSecret as _, SecretString};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/email/verification").route(web::post().to(request_verification)))
        .service(resource("/auth/email/verify").route(web::post().to(verify_email)))
        .service(resource("/auth/password/forgot").route(web::post().to(forgot_password)))
        .service(resource("/auth/password/reset").route(web::post().to(reset_password)))
        .service(resource("/auth/magic-link").route(web::post().to(request_magic_link)))
        .service(resource("/auth/magic-link/redeem").route(web::post().to(redeem_magic_link)))
        .service(
            resource("/admin/users/{id}/password-reset")
                .route(web::post().to(admin_password_reset)),
        );
}

fn limit(state: &AppState) -> usize {
    state.auth.settings().server.max_body_bytes
}

/// The 202 answer to a request by address: the same whether an account has it or not.
fn mailed_if_known() -> HttpResponse {
    HttpResponse::Accepted().json(json!({
        "message": "if an account has this address, a link is on its way to it"
    }))
}

/// The 202 answer to a request for an account's own address.
fn mailed() -> HttpResponse {
    HttpResponse::Accepted().json(json!({
        "message": "a link is on its way to the account's address"
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressBody {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    token: SecretString,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: SecretString,
    new_password: SecretString,
}

async fn request_verification(
    state: web::Data<AppState>,
    token: BearerToken,
    client: ClientAddr,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .email
        .request_verification(token.expose(), client.0)
        .await?;
    Ok(mailed())
}

async fn verify_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: LinkBody = json_body(&req, payload, limit(&state)).await?;
    let user = state
        .auth
        .email
        .verify_email(body.token.expose_secret())
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "user": user })))
}

async fn forgot_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: ClientAddr,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: AddressBody = json_body(&req, payload, limit(&state)).await?;
    state
        .auth
        .email
        .request_password_reset(&body.email, client.0)
        .await?;
    Ok(mailed_if_known())
}

async fn reset_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: ResetBody = json_body(&req, payload, limit(&state)).await?;
    let tokens = state
        .auth
        .email
        .reset_password(body.token.expose_secret(), body.new_password)
        .await?;
    let settings = state.auth.settings();
    Ok(token_answer(
        settings,
        tokens,
        refresh_cookie::enabled(settings),
    ))
}

async fn request_magic_link(
    req: HttpRequest,
    state: web::Data<AppState>,
    client: ClientAddr,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: AddressBody = json_body(&req, payload, limit(&state)).await?;
    state
        .auth
        .email
        .request_magic_link(&body.email, client.0)
        .await?;
    Ok(mailed_if_known())
}

async fn redeem_magic_link(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: LinkBody = json_body(&req, payload, limit(&state)).await?;
    let tokens = state
        .auth
        .email
        .redeem_magic_link(body.token.expose_secret())
        .await?;
    let settings = state.auth.settings();
    Ok(token_answer(
        settings,
        tokens,
        refresh_cookie::enabled(settings),
    ))
}

async fn admin_password_reset(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    state
        .auth
        .email
        .send_password_reset(path_ids::user(&id)?)
        .await?;
    Ok(
        with_refreshed_token(HttpResponse::Accepted(), caller.refreshed.as_ref()).json(json!({
            "message": "a password reset link is on its way to the user's address"
        })),
    )
}
