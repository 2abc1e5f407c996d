//! `GET /verify`: forward-auth for reverse proxies (nginx `auth_request`, Traefik
//! ForwardAuth, Caddy `forward_auth`). The token comes from `Authorization: Bearer` or the
//! `access_token` cookie; a 200 carries the identity in `X-Auth-*` headers taken only from
//! the verified token and the store, never echoed from the request.

use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::ExposeSecret as _;

use super::error::ApiError;
use super::extract::BearerToken;
use super::{resource, with_refreshed_token, AppState};
use crate::auth::{AuthError, Freshness};
use crate::secret::SecretString;

/// The cookie a browser-facing deployment may carry the access token in.
pub const ACCESS_TOKEN_COOKIE: &str = "access_token";

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    // Any method: proxies forward the original request's method to the auth subrequest.
    cfg.service(resource("/verify").route(web::route().to(verify)));
}

fn presented_token(req: &HttpRequest) -> Result<SecretString, ApiError> {
    if let Some(bearer) = BearerToken::from_request_optional(req)? {
        return Ok(bearer.into_secret());
    }
    match req.cookie(ACCESS_TOKEN_COOKIE) {
        Some(cookie) if !cookie.value().is_empty() => Ok(cookie.value().into()),
        _ => Err(AuthError::TokenMissing.into()),
    }
}

async fn verify(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let token = presented_token(&req)?;
    let caller = state
        .auth
        .verification
        .authenticate(token.expose_secret(), Freshness::Current)
        .await?;
    let claims = &caller.claims;
    let mut response = with_refreshed_token(HttpResponse::Ok(), caller.refreshed.as_ref());
    response
        .insert_header(("x-auth-user", claims.sub.as_str()))
        .insert_header(("x-auth-username", percent_encode(&caller.stamp.username)))
        .insert_header(("x-auth-roles", claims.roles.join(",")))
        .insert_header(("x-auth-plan", claims.plan.as_str()));
    if let Some(tenant) = &claims.tid {
        response.insert_header(("x-auth-tenant", tenant.as_str()));
    }
    Ok(response.finish())
}

/// Everything but RFC 3986's unreserved characters (`ALPHA / DIGIT / "-" / "." / "_" / "~"`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes UTF-8 (RFC 3986): everything but the unreserved characters.
pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn encodes_all_but_unreserved() {
        assert_eq!(percent_encode("alice"), "alice");
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(percent_encode("x\r\ny"), "x%0D%0Ay");
        assert_eq!(percent_encode("a-b.c_d~e"), "a-b.c_d~e");
    }
}
