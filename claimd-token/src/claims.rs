//! The claim sets claimd signs (API.md "Access token claims"). Serialization order is the
//! wire order. Both are `#[non_exhaustive]`: a claim claimd adds later is not a breaking
//! change for code that reads them. Build one from [`Default`] and set its fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The claims of every access token claimd mints for a user. Every claim listed is
/// required on the way in; claims not listed are ignored (RFC 7519 lets issuers add some).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// The user's address (OpenID Connect's `email`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether that address was proved by a mailed link; present exactly when `email` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

impl AccessClaims {
    /// Whether the token grants `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}

/// The claims of an access token minted for a service by the `client_credentials` grant
/// (RFC 6749 §4.4), in RFC 9068's shape: `sub` and `client_id` are both the client id. No
/// session, roles, plan or versions: the token stands for the service, not a user, so it
/// never reads as [`AccessClaims`], and a user's token never reads as one of these (every
/// claim is required).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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

/// The times every claim set carries, checked against the caller's clock.
pub trait TokenTimes {
    /// `exp`, Unix seconds.
    fn expires(&self) -> u64;
    /// `iat`, Unix seconds.
    fn issued(&self) -> u64;
}

impl TokenTimes for AccessClaims {
    fn expires(&self) -> u64 {
        self.exp
    }
    fn issued(&self) -> u64 {
        self.iat
    }
}

impl TokenTimes for ClientClaims {
    fn expires(&self) -> u64 {
        self.exp
    }
    fn issued(&self) -> u64 {
        self.iat
    }
}
