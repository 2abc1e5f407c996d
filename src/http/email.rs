//! The mail routes (API.md "Mail"): asking for a verification, a password reset or a magic
//! link, redeeming one, and an admin's "send a password reset". What each does is
//! `auth::Email`'s; these read the bodies and shape the answers. A request by address
//! answers 202 with the same body whether or not an account has the address.
//!
//! A build without the cargo feature `smtp` has no mail: the same paths answer 501
//! `mail_disabled`, as `mail.transport = "none"` does.

/// The paths, for both builds.
const PATHS: [&str; 7] = [
    "/auth/email/verification",
    "/auth/email/verify",
    "/auth/password/forgot",
    "/auth/password/reset",
    "/auth/magic-link",
    "/auth/magic-link/redeem",
    "/admin/users/{id}/password-reset",
];

#[cfg(not(feature = "smtp"))]
pub(crate) fn routes(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web;
    for path in PATHS {
        cfg.service(super::resource(path).route(web::post().to(|| async {
            Err::<actix_web::HttpResponse, _>(super::error::ApiError::from(
                crate::auth::AuthError::MailDisabled,
            ))
        })));
    }
}

#[cfg(feature = "smtp")]
pub(crate) use with_mail::routes;

#[cfg(feature = "smtp")]
mod with_mail {
    use super::PATHS;
    use actix_web::{web, HttpRequest, HttpResponse};
    use serde::Deserialize;
    use serde_json::json;

    use crate::http::body::json_body;
    use crate::http::error::ApiError;
    use crate::http::extract::{Admin, BearerToken, ClientAddr};
    use crate::http::token_endpoint::new_session_answer;
    use crate::http::{path_ids, resource, with_refreshed_token, AppState};
    use crate::mail::LinkPurpose;
    use crate::secret::{ExposeSecret as _, SecretString};

    pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
        let [verification, verify, forgot, reset, magic, redeem, admin_reset] = PATHS;
        cfg.service(resource(verification).route(web::post().to(request_verification)))
            .service(resource(verify).route(web::post().to(verify_email)))
            .service(resource(forgot).route(web::post().to(forgot_password)))
            .service(resource(reset).route(web::post().to(reset_password)))
            .service(resource(magic).route(web::post().to(request_magic_link)))
            .service(resource(redeem).route(web::post().to(redeem_magic_link)))
            .service(resource(admin_reset).route(web::post().to(admin_password_reset)));
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
        mail_by_address(req, state, client, payload, LinkPurpose::ResetPassword).await
    }

    /// A mail of `purpose` to the address in the body, if an account has it.
    async fn mail_by_address(
        req: HttpRequest,
        state: web::Data<AppState>,
        client: ClientAddr,
        payload: web::Payload,
        purpose: LinkPurpose,
    ) -> Result<HttpResponse, ApiError> {
        let body: AddressBody = json_body(&req, payload, limit(&state)).await?;
        state
            .auth
            .email
            .request_by_address(&body.email, client.0, purpose)
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
        Ok(new_session_answer(state.auth.settings(), tokens))
    }

    async fn request_magic_link(
        req: HttpRequest,
        state: web::Data<AppState>,
        client: ClientAddr,
        payload: web::Payload,
    ) -> Result<HttpResponse, ApiError> {
        mail_by_address(req, state, client, payload, LinkPurpose::Magic).await
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
        Ok(new_session_answer(state.auth.settings(), tokens))
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
}
