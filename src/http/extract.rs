//! Request extractors: the bearer token (RFC 6750 §2.1) and the client address used for
//! rate limits of logins and registrations (`X-Forwarded-For` believed only from
//! `server.trusted_proxies`).

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::ExposeSecret as _;

use super::error::ApiError;
use super::AppState;
use crate::auth::AuthError;
use crate::secret::SecretString;
use crate::tokens::access::MAX_ACCESS_TOKEN_BYTES;

/// The access token from `Authorization: Bearer <token>`, shape-checked only. A secret:
/// it never prints.
#[derive(Debug)]
pub struct BearerToken(SecretString);

impl BearerToken {
    /// The token's text, for verification.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The token as a secret, for a caller that keeps it.
    pub fn into_secret(self) -> SecretString {
        self.0
    }

    /// Reads the header: `Ok(None)` when absent.
    ///
    /// # Errors
    /// `token_invalid` for a header that is not a well-formed bearer credential.
    pub fn from_request_optional(req: &HttpRequest) -> Result<Option<BearerToken>, ApiError> {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let invalid = |why| ApiError::from(AuthError::TokenInvalid(why));
        if value.len() > MAX_ACCESS_TOKEN_BYTES + 16 {
            return Err(invalid("token too large"));
        }
        let text = value
            .to_str()
            .map_err(|_| invalid("malformed authorization header"))?;
        let (scheme, token) = text
            .split_once(' ')
            .ok_or_else(|| invalid("expected a Bearer token"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(invalid("expected a Bearer token"));
        }
        // `to_str` above already refused anything but visible ASCII; whatever else is
        // wrong with the token, verification says so (a per-byte check here showed up in
        // the /verify profile).
        let token = token.trim();
        if token.is_empty() || token.contains(' ') {
            return Err(invalid("malformed bearer token"));
        }
        Ok(Some(BearerToken(token.into())))
    }
}

impl FromRequest for BearerToken {
    type Error = ApiError;
    type Future = Ready<Result<BearerToken, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            BearerToken::from_request_optional(req)
                .and_then(|token| token.ok_or_else(|| ApiError::from(AuthError::TokenMissing))),
        )
    }
}

/// The address a login or registration attempt is charged to.
pub struct ClientAddr(pub IpAddr);

impl FromRequest for ClientAddr {
    type Error = ApiError;
    type Future = Ready<Result<ClientAddr, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map(|state| state.auth.settings().server.trusted_proxies.clone())
            .unwrap_or_default();
        ready(Ok(ClientAddr(client_address(peer, req, &trusted))))
    }
}

/// The rightmost `X-Forwarded-For` hop that is not a trusted proxy, when the peer itself
/// is trusted; otherwise the peer. Hops left of an untrusted one could be forged.
fn client_address(peer: IpAddr, req: &HttpRequest, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(peer)
}
