//! Request extractors: the bearer token (RFC 6750 §2.1), the [`Caller`] or [`Admin`] it
//! proves, a service's HTTP Basic client credentials (RFC 6749 §2.3.1) and the client
//! address used for rate limits of logins and registrations (`X-Forwarded-For` believed
//! only from `server.trusted_proxies`).

use std::future::{ready, Future, Ready};
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::ExposeSecret as _;

use super::error::ApiError;
use super::AppState;
use crate::auth::{AuthError, Authenticated, Freshness};
use crate::secret::SecretString;

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
        let token = claimd_token::bearer_credential(value.as_bytes())
            .map_err(|refusal| ApiError::from(AuthError::from(refusal)))?;
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

/// A caller whose bearer token is verified with current claims ([`Freshness::Current`],
/// with `tokens.on_stale` applied: under `reissue` a stale token is let through and the
/// re-minted one is in [`Authenticated::refreshed`], for the answer's
/// `X-Refreshed-Token`). A route that takes one answers 401 before anything else of the
/// request is read. Routes that accept stale tokens (claim and password changes, refresh)
/// or any token of a session (logout) verify their own.
pub struct Caller(Authenticated);

impl Caller {
    /// Who the caller is, and the re-minted token when its own was stale.
    pub fn authenticated(&self) -> &Authenticated {
        &self.0
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let presented = bearer_and_state(req);
        Box::pin(async move {
            let (token, state) = presented?;
            let caller = state
                .auth
                .verification
                .authenticate(token.expose(), Freshness::Current)
                .await?;
            Ok(Caller(caller))
        })
    }
}

/// A caller holding the admin role: its bearer token verified (current claims, with
/// `tokens.on_stale` applied) and its role checked. An admin route takes one of these
/// first, so a request without the role is answered 401 or 403 before anything else of
/// it is read.
pub struct Admin(Authenticated);

impl Admin {
    /// Who the admin is, and the re-minted token when its own was stale.
    pub fn caller(&self) -> &Authenticated {
        &self.0
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Admin, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let presented = bearer_and_state(req);
        Box::pin(async move {
            let (token, state) = presented?;
            let caller = state.auth.admin.require_admin(token.expose()).await?;
            Ok(Admin(caller))
        })
    }
}

/// What an authenticating extractor starts from: the bearer token (401 `token_missing`
/// without one) and the app state its verdict comes from.
fn bearer_and_state(req: &HttpRequest) -> Result<(BearerToken, web::Data<AppState>), ApiError> {
    let token = BearerToken::from_request_optional(req)?
        .ok_or_else(|| ApiError::from(AuthError::TokenMissing))?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| {
            ApiError::from(AuthError::Internal(
                "the app state is not configured".into(),
            ))
        })?;
    Ok((token, state))
}

/// A client id and secret a service presents. The secret never prints.
#[derive(Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// The client credentials of `Authorization: Basic` (RFC 6749 §2.3.1: id and secret
/// form-urlencoded, then joined by `:` and base64-encoded); `Ok(None)` without an
/// `Authorization` header or with another scheme.
///
/// # Errors
/// `invalid_client` for a Basic header that does not decode.
pub fn basic_credentials(req: &HttpRequest) -> Result<Option<ClientCredentials>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || ApiError::from(AuthError::InvalidClient);
    let text = value.to_str().map_err(|_| invalid())?;
    let (scheme, credentials) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(credentials.trim()).map_err(|_| invalid())?;
    let decoded = zeroize::Zeroizing::new(String::from_utf8(decoded).map_err(|_| invalid())?);
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
    Ok(Some(ClientCredentials {
        client_id: form_decode(id).ok_or_else(invalid)?,
        client_secret: form_decode(secret).ok_or_else(invalid)?.into(),
    }))
}

/// One form-urlencoded value decoded.
fn form_decode(text: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={text}")).ok()?;
    pairs.into_iter().next().map(|(_, value)| value)
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
