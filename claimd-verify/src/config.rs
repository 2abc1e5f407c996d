//! [`VerifierConfig`]: where claimd is, how the service proves who it is, and how much
//! staleness it accepts; built by [`VerifierConfigBuilder`], so a setting added later is
//! not a breaking change.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::clock::{Clock, SystemClock};

/// What [`crate::Verifier::verify`] does once claimd has not been heard from for longer
/// than `max_staleness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fallback {
    /// Refuse every token with [`crate::VerifyError::Unavailable`] (503).
    #[default]
    FailClosed,
    /// Check the header, signature and times locally, then ask claimd's
    /// `POST /oauth/introspect` for the rest (one request per verification).
    Introspect,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL does not parse, or is not an `http` or `https` URL.
    #[error("claimd's base URL: {0}")]
    BaseUrl(String),
    /// An `https` base URL, but this build has no TLS (the `rustls` feature) and no HTTP
    /// client of the caller's was given.
    #[error("an https base URL needs the `rustls` feature or an HTTP client of your own")]
    NoTls,
}

/// How to reach claimd and what to accept. Read it through its getters; build it with
/// [`VerifierConfig::builder`].
#[derive(Clone)]
pub struct VerifierConfig {
    pub(crate) base_url: Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) audience: String,
    pub(crate) leeway: Duration,
    pub(crate) token_lifetime: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) fallback: Fallback,
    pub(crate) verified_cache_entries: usize,
    pub(crate) start_timeout: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) http: Option<reqwest::Client>,
}

impl VerifierConfig {
    /// claimd's defaults for everything but where it is (its base URL, e.g.
    /// `http://claimd.internal:8080`, or a path under which a proxy serves it) and the
    /// service credential (`POST /admin/services`) the feed and introspection take.
    pub fn builder(
        base_url: impl AsRef<str>,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> VerifierConfigBuilder {
        VerifierConfigBuilder {
            base_url: base_url.as_ref().to_string(),
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
            http: None,
        }
    }

    /// claimd's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The service credential's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The `aud` tokens must carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The clock skew allowed on `exp`, `nbf` and `iat`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The longest access-token life accepted before claimd announces its own.
    pub fn token_lifetime(&self) -> Duration {
        self.token_lifetime
    }

    /// How long without an event or heartbeat before what is held is no longer trusted.
    pub fn max_staleness(&self) -> Duration {
        self.max_staleness
    }

    /// What happens once claimd has not been heard from for `max_staleness`.
    pub fn fallback(&self) -> Fallback {
        self.fallback
    }

    /// The verified-token cache's size.
    pub fn verified_cache_entries(&self) -> usize {
        self.verified_cache_entries
    }

    /// How long [`crate::Verifier::start`] waits.
    pub fn start_timeout(&self) -> Duration {
        self.start_timeout
    }

    /// `path` (absolute, e.g. `/events`) under the base URL, its own path kept.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.as_str().trim_end_matches('/'))
    }

    /// The credential's secret, for the one request header that carries it.
    pub(crate) fn client_secret(&self) -> &str {
        self.client_secret.expose_secret()
    }
}

impl fmt::Debug for VerifierConfig {
    // The secret never prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierConfig")
            .field("base_url", &self.base_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("token_lifetime", &self.token_lifetime)
            .field("max_staleness", &self.max_staleness)
            .field("fallback", &self.fallback)
            .field("verified_cache_entries", &self.verified_cache_entries)
            .field("own_http_client", &self.http.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`VerifierConfig`]: each setting has claimd's default until set.
#[must_use]
pub struct VerifierConfigBuilder {
    base_url: String,
    client_id: String,
    client_secret: SecretString,
    audience: String,
    leeway: Duration,
    token_lifetime: Duration,
    max_staleness: Duration,
    fallback: Fallback,
    verified_cache_entries: usize,
    start_timeout: Duration,
    clock: Arc<dyn Clock>,
    http: Option<reqwest::Client>,
}

impl VerifierConfigBuilder {
    /// The `aud` tokens must carry: claimd's `tokens.audience` (default `claimd`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Clock skew allowed on `exp`, `nbf` and `iat`: claimd's `tokens.leeway` (default
    /// 30 s). The discovery document does not publish it.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest access-token life claimd issues: claimd's `tokens.access_ttl`
    /// (default 15 min). Longer lives are refused, and a version change is held this long
    /// (plus leeway) after it happened. Replaced by the life claimd announces
    /// (`Claimd-Token-Lifetime`) each time the feed opens.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// How long without an event or heartbeat before what is held is no longer trusted
    /// (default 5 s; claimd's heartbeat is 1 s by default).
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.max_staleness = max_staleness;
        self
    }

    /// What to do once claimd has not been heard from for `max_staleness` (default
    /// [`Fallback::FailClosed`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Tokens whose header, signature and registered claims are remembered after one
    /// check, until their `exp` (claimd's `tokens.verified_cache_entries`, default 10,000;
    /// 0 turns it off). The deny list and versions are checked on every call.
    pub fn verified_cache_entries(mut self, entries: usize) -> Self {
        self.verified_cache_entries = entries;
        self
    }

    /// How long [`crate::Verifier::start`] waits for discovery, the JWKS and the snapshot
    /// (default 10 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Where time is read (default the system's); tests move it.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client every request to claimd goes through, instead of one built here:
    /// for a private CA, a proxy, client certificates, or TLS from a build of reqwest
    /// this crate does not enable. Its own timeouts apply besides this crate's (5 s per
    /// request, `max_staleness` for the feed to answer).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The configuration.
    ///
    /// # Errors
    /// The base URL does not parse or is not `http`/`https`; `https` with neither the
    /// `rustls` feature nor an HTTP client of the caller's.
    pub fn build(self) -> Result<VerifierConfig, ConfigError> {
        let base_url = Url::parse(self.base_url.trim())
            .map_err(|err| ConfigError::BaseUrl(format!("{err}")))?;
        match base_url.scheme() {
            "http" => {}
            "https" if cfg!(feature = "rustls") || self.http.is_some() => {}
            "https" => return Err(ConfigError::NoTls),
            other => {
                return Err(ConfigError::BaseUrl(format!(
                    "`{other}` is not http or https"
                )))
            }
        }
        if base_url.cannot_be_a_base()
            || base_url.query().is_some()
            || base_url.fragment().is_some()
        {
            return Err(ConfigError::BaseUrl(
                "expected scheme, host, port and at most a path".into(),
            ));
        }
        Ok(VerifierConfig {
            base_url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            audience: self.audience,
            leeway: self.leeway,
            token_lifetime: self.token_lifetime,
            max_staleness: self.max_staleness,
            fallback: self.fallback,
            verified_cache_entries: self.verified_cache_entries,
            start_timeout: self.start_timeout,
            clock: self.clock,
            http: self.http,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(base_url: &str) -> Result<VerifierConfig, ConfigError> {
        VerifierConfig::builder(base_url, "svc", "the secret").build()
    }

    #[test]
    fn the_base_url_keeps_its_path_and_paths_go_under_it() {
        let config = built("http://127.0.0.1:8080").unwrap();
        assert_eq!(config.url("/events"), "http://127.0.0.1:8080/events");
        let config = built("http://proxy.internal/claimd/").unwrap();
        assert_eq!(config.url("/events"), "http://proxy.internal/claimd/events");
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused() {
        for bad in [
            "",
            "127.0.0.1:8080",
            "ftp://x",
            "mailto:a@b",
            "http://x/?q=1",
        ] {
            assert!(matches!(built(bad), Err(ConfigError::BaseUrl(_))), "{bad}");
        }
    }

    #[test]
    fn https_needs_tls_of_one_kind_or_another() {
        let https = built("https://claimd.example");
        if cfg!(feature = "rustls") {
            assert!(https.is_ok());
        } else {
            assert_eq!(https.err(), Some(ConfigError::NoTls));
        }
        let own = VerifierConfig::builder("https://claimd.example", "svc", "s")
            .http_client(reqwest::Client::new())
            .build();
        assert!(own.is_ok());
    }

    #[test]
    fn the_secret_never_prints() {
        let config = built("http://x").unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("the secret"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
