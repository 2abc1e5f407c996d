//! [`VerifierConfig`]: where claimd is, how the service proves who it is, and how much
//! staleness it accepts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

/// What [`crate::Verifier::verify`] does once claimd has not been heard from for longer
/// than `max_staleness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Refuse every token with [`crate::VerifyError::Unavailable`] (503).
    #[default]
    FailClosed,
    /// Check the header, signature and times locally, then ask claimd's
    /// `POST /oauth/introspect` for the rest (one request per verification).
    Introspect,
}

/// How to reach claimd and what to accept.
#[derive(Clone)]
pub struct VerifierConfig {
    /// claimd's base URL, e.g. `http://claimd.internal:8080`.
    pub base_url: String,
    /// A service credential (`POST /admin/services`): reads the feed, introspects.
    pub client_id: String,
    pub client_secret: String,
    /// The `aud` tokens must carry: claimd's `tokens.audience` (default `claimd`).
    pub audience: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`: claimd's `tokens.leeway` (default
    /// 30 s). The discovery document does not publish it.
    pub leeway: Duration,
    /// The longest access-token life claimd issues: claimd's `tokens.access_ttl`
    /// (default 15 min). Longer lives are refused, and a version change is held this
    /// long (plus leeway) after it happened; by then every token it concerned has
    /// expired. Replaced by the life claimd announces (`Claimd-Token-Lifetime`) each time
    /// the feed opens.
    pub token_lifetime: Duration,
    /// How long without an event or heartbeat before what is held is no longer trusted
    /// (default 5 s; claimd's heartbeat is 1 s by default).
    pub max_staleness: Duration,
    pub fallback: Fallback,
    /// Tokens whose header, signature and registered claims are remembered after one
    /// check, until their `exp` (claimd's `tokens.verified_cache_entries`, default
    /// 10,000; 0 turns it off). The deny list and versions are checked on every call.
    pub verified_cache_entries: usize,
    /// How long [`crate::Verifier::start`] waits for discovery, the JWKS and the snapshot.
    pub start_timeout: Duration,
    /// Where time is read; tests move it.
    pub clock: Arc<dyn Clock>,
}

impl VerifierConfig {
    /// claimd's defaults for everything but where it is and the credential.
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> VerifierConfig {
        VerifierConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            audience: "claimd".to_string(),
            leeway: Duration::from_secs(30),
            token_lifetime: Duration::from_secs(15 * 60),
            max_staleness: Duration::from_secs(5),
            fallback: Fallback::FailClosed,
            verified_cache_entries: 10_000,
            start_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }
}

impl fmt::Debug for VerifierConfig {
    // The secret never prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("token_lifetime", &self.token_lifetime)
            .field("max_staleness", &self.max_staleness)
            .field("fallback", &self.fallback)
            .field("verified_cache_entries", &self.verified_cache_entries)
            .finish_non_exhaustive()
    }
}
