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
