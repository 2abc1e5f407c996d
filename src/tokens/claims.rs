//! The access-token claim set (API.md "Access token claims") and the refresh-token-free
//! parts of a token response. Serialization order is the wire order.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The claims of every access token claimd mints. Unknown claims are refused on the way
/// in (`deny_unknown_fields` is not set, since RFC 7519 lets issuers add claims, but every
/// claim listed here is required).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// The session (refresh family) the token belongs to.
    pub sid: String,
    /// The tenant id; absent for users without a tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    pub roles: Vec<String>,
    pub plan: String,
    /// Free-form user attributes; omitted when empty.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attrs: Map<String, Value>,
    /// The user's claims version when minted.
    pub uv: u64,
    /// The tenant's version when minted (0 without a tenant).
    pub tv: u64,
}

/// The claims of an access token minted for a service by the `client_credentials` grant
/// (RFC 6749 §4.4), in RFC 9068's shape: `sub` and `client_id` are both the client id. No
/// session, roles, plan or versions: the token stands for the service, not a user, so a
/// user-facing route never takes it (it does not read as [`AccessClaims`]), while
/// introspection and revocation do. Every claim is required, so a user's token never reads
/// as one of these either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientClaims {
    pub iss: String,
    /// The client id, as RFC 9068 §2.2 asks when no user is involved.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// The client the token was granted to.
    pub client_id: String,
}
