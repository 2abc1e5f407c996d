//! [`Verifier`]: starts from claimd's discovery document, JWKS and change-feed snapshot,
//! keeps them current in a background task, and answers tokens locally.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use tokio::task::JoinHandle;

use claimd_token::{Expiry, Refusal, TokenRules, VerifiedTokenCache};

use crate::config::{Fallback, VerifierConfig};
use crate::error::{StartError, VerifyError};
use crate::feed::{self, EventReader, OpenError};
use crate::keys::KeySet;
use crate::state::FeedState;
use crate::VerifiedClaims;

/// An unknown `kid` refetches the JWKS at most this often (a forged `kid` must not turn
/// every request into a request to claimd).
const UNKNOWN_KID_REFETCH_EVERY: Duration = Duration::from_secs(2);
/// How long one request to claimd (discovery, JWKS, snapshot, introspection) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Verifies claimd's access tokens locally. Cheap to clone; the background task that
/// follows claimd's change feed stops when the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
    _task: Arc<TaskGuard>,
}

/// What the verifier and its background task share.
pub(crate) struct Inner {
    pub(crate) config: VerifierConfig,
    pub(crate) http: reqwest::Client,
    /// The `iss` tokens must carry, from the discovery document.
    issuer: String,
    /// Steps 1–2 (claimd-token's, as claimd runs them), for this issuer and the token
    /// life claimd last announced.
    rules: RwLock<Arc<TokenRules>>,
    /// Where the JWKS is, on `base_url` (claimd may be reached by another address than
    /// its issuer).
    jwks_url: String,
    keys: RwLock<Arc<KeySet>>,
    /// Tokens that passed steps 1–2, until their `exp` (claimd's own cache).
    verified: VerifiedTokenCache,
    pub(crate) state: RwLock<FeedState>,
    /// The longest access-token life claimd accepts (seconds, before leeway): from the
    /// `Claimd-Token-Lifetime` header of each stream claimd opens, else `token_lifetime`.
    pub(crate) token_lifetime: AtomicU64,
    /// When the JWKS was last fetched; held across a fetch so fetches do not pile up.
    keys_fetched: tokio::sync::Mutex<Instant>,
}

/// Aborts the background task when dropped.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Verifier {
    /// Reads claimd's discovery document and JWKS, takes the change feed's snapshot, and
    /// starts following the feed. Returns once the snapshot is applied, so the first
    /// verification already knows every revocation that can matter.
    ///
    /// # Errors
    /// claimd unreachable, the credential refused, or no snapshot within
    /// `config.start_timeout`.
    pub async fn start(config: VerifierConfig) -> Result<Verifier, StartError> {
        let limit = config.start_timeout;
        tokio::time::timeout(limit, Self::start_unbounded(config))
            .await
            .map_err(|_| StartError::Timeout)?
    }

    async fn start_unbounded(config: VerifierConfig) -> Result<Verifier, StartError> {
        let http = match &config.http {
            Some(own) => own.clone(),
            None => reqwest::Client::builder()
                .connect_timeout(REQUEST_TIMEOUT)
                .build()
                .map_err(|error| StartError::Http {
                    what: "building the HTTP client",
                    error,
                })?,
        };
        let discovery: Discovery = http
            .get(config.url("/.well-known/openid-configuration"))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| StartError::Http {
                what: "GET /.well-known/openid-configuration",
                error,
            })?
            .json()
            .await
            .map_err(|error| StartError::Http {
                what: "reading the discovery document",
                error,
            })?;
        let jwks_url = config.url(jwks_path(&discovery.issuer, &discovery.jwks_uri));
        let rules = TokenRules::new(
            &discovery.issuer,
            &config.audience,
            config.leeway.as_secs(),
            config.token_lifetime.as_secs(),
        );
        let inner = Arc::new(Inner {
            http,
            rules: RwLock::new(Arc::new(rules)),
            issuer: discovery.issuer,
            jwks_url,
            keys: RwLock::new(Arc::new(KeySet::default())),
            verified: VerifiedTokenCache::new(
                config.verified_cache_entries,
                config.leeway.as_secs(),
            ),
            state: RwLock::new(FeedState::default()),
            token_lifetime: AtomicU64::new(config.token_lifetime.as_secs()),
            keys_fetched: tokio::sync::Mutex::new(config.clock.now()),
            config,
        });
        inner
            .refetch_keys()
            .await
            .map_err(|err| StartError::Claimd(format!("JWKS: {err}")))?;
        let mut reader = match feed::open(&inner, None).await {
            Ok(reader) => reader,
            Err(OpenError::Gone) => return Err(StartError::Claimd("GET /events: 410".into())),
            Err(OpenError::Failed(err)) => return Err(StartError::Claimd(err)),
        };
        first_snapshot(&inner, &mut reader).await?;
        let task = tokio::spawn(feed::follow(Arc::clone(&inner), Some(reader)));
        Ok(Verifier {
            inner,
            _task: Arc::new(TaskGuard(task)),
        })
    }

    /// Checks `token` as claimd would, in claimd's order: header, signature and times;
    /// the deny list; the user; the claim versions.
    ///
    /// # Errors
    /// The refusal, with claimd's code ([`VerifyError::code`]); `Unavailable` when claimd
    /// has not been heard from for longer than `max_staleness` (and, with
    /// [`Fallback::Introspect`], introspection failed too).
    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims, VerifyError> {
        let inner = &self.inner;
        let claims = match inner.check_token(token)? {
            Err(Refusal::UnknownKey) => {
                inner.refetch_keys_for_unknown_kid().await;
                inner.check_token(token)??
            }
            Err(refusal) => return Err(refusal.into()),
            Ok(claims) => claims,
        };
        let fresh = {
            let state = inner.read_state()?;
            // A revocation or change already known stands however old the news is.
            state.check(&claims)?;
            state.is_fresh(inner.config.clock.now(), inner.config.max_staleness)
        };
        if fresh {
            return Ok(claims);
        }
        match inner.config.fallback {
            Fallback::FailClosed => Err(VerifyError::Unavailable(
                "claimd has not been heard from within max_staleness".into(),
            )),
            Fallback::Introspect => inner.introspect(token, claims).await,
        }
    }

    /// Whether claimd was heard from within `max_staleness` (for a readiness probe).
    pub fn is_fresh(&self) -> bool {
        self.inner.read_state().is_ok_and(|state| {
            state.is_fresh(
                self.inner.config.clock.now(),
                self.inner.config.max_staleness,
            )
        })
    }

    /// The id of the last change-feed event applied.
    pub fn through(&self) -> u64 {
        self.inner
            .read_state()
            .map(|state| state.through)
            .unwrap_or_default()
    }

    /// How many deny entries and version changes are held.
    pub fn held_entries(&self) -> usize {
        self.inner
            .read_state()
            .map(|state| state.len())
            .unwrap_or_default()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }
}

/// Reads the stream until its opening `snapshot` is applied.
async fn first_snapshot(inner: &Inner, reader: &mut EventReader) -> Result<(), StartError> {
    loop {
        let Some(event) = reader.next(inner.config.start_timeout).await else {
            return Err(StartError::Claimd(
                "GET /events ended before its snapshot".into(),
            ));
        };
        if feed::apply(inner, &event)
            .await
            .map_err(StartError::Claimd)?
        {
            return Ok(());
        }
    }
}

/// Where the JWKS is under claimd's base URL: `jwks_uri` past the issuer (claimd names it
/// `{issuer}/.well-known/jwks.json`, and the issuer may carry the path a proxy serves
/// claimd under, which the base URL already holds); else the URL's whole path.
fn jwks_path<'u>(issuer: &str, jwks_uri: &'u str) -> &'u str {
    jwks_uri
        .strip_prefix(issuer.trim_end_matches('/'))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or_else(|| path_of(jwks_uri))
}

/// The path (and query) of an absolute URL; the text itself when it has no scheme.
fn path_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |start| &rest[start..]),
        None => url,
    }
}

impl Inner {
    /// Steps 1–2, through the verified-token cache: the verdict on the token, or
    /// `Unavailable` when the verifier itself cannot judge (a fault here is never the
    /// token's: a 401 would make its holder throw it away).
    fn check_token(&self, token: &str) -> Result<Result<VerifiedClaims, Refusal>, VerifyError> {
        let now = self.config.clock.unix();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(Ok(VerifiedClaims::clone(&claims)));
        }
        let poisoned = || VerifyError::Unavailable("a verifier lock is poisoned".into());
        let keys = self
            .keys
            .read()
            .map(|keys| Arc::clone(&keys))
            .map_err(|_| poisoned())?;
        let rules = self
            .rules
            .read()
            .map(|rules| Arc::clone(&rules))
            .map_err(|_| poisoned())?;
        let verdict = rules.check::<VerifiedClaims>(&*keys, token, now, Expiry::Enforced);
        if let Ok(claims) = &verdict {
            self.verified.insert(token, Arc::new(claims.clone()), now);
        }
        Ok(verdict)
    }

    /// Takes the longest token life claimd announced (seconds, before leeway).
    pub(crate) fn learn_token_lifetime(&self, seconds: u64) {
        self.token_lifetime.store(seconds, Ordering::Relaxed);
        let rules = TokenRules::new(
            &self.issuer,
            &self.config.audience,
            self.config.leeway.as_secs(),
            seconds,
        );
        match self.rules.write() {
            Ok(mut held) => *held = Arc::new(rules),
            Err(_) => {
                tracing::error!("a verifier lock is poisoned: the announced life is not taken")
            }
        }
    }

    fn read_state(&self) -> Result<std::sync::RwLockReadGuard<'_, FeedState>, VerifyError> {
        self.state
            .read()
            .map_err(|_| VerifyError::Unavailable("state lock poisoned".into()))
    }

    /// Fetches the JWKS and replaces the key set.
    pub(crate) async fn refetch_keys(&self) -> Result<(), String> {
        let mut fetched = self.keys_fetched.lock().await;
        let jwks: Value = self
            .http
            .get(&self.jwks_url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| err.to_string())?
            .json()
            .await
            .map_err(|err| err.to_string())?;
        let keys = KeySet::from_jwks(&jwks);
        tracing::debug!(keys = keys.len(), "JWKS fetched");
        *self.keys.write().map_err(|_| "key lock poisoned")? = Arc::new(keys);
        // A key that left the set verifies nothing more, cached or not.
        self.verified.clear();
        *fetched = self.config.clock.now();
        Ok(())
    }

    /// A token names a key not held: fetch the JWKS again, unless it was fetched within
    /// [`UNKNOWN_KID_REFETCH_EVERY`].
    async fn refetch_keys_for_unknown_kid(&self) {
        let last = *self.keys_fetched.lock().await;
        if self.config.clock.now().saturating_duration_since(last) < UNKNOWN_KID_REFETCH_EVERY {
            return;
        }
        if let Err(err) = self.refetch_keys().await {
            tracing::warn!(error = %err, "unknown kid: the JWKS could not be fetched");
        }
    }

    /// Asks claimd's `POST /oauth/introspect` about a token that passed steps 1–2.
    async fn introspect(
        &self,
        token: &str,
        claims: VerifiedClaims,
    ) -> Result<VerifiedClaims, VerifyError> {
        let unavailable =
            |why: &str| VerifyError::Unavailable(format!("claimd's introspection {why}"));
        let answer: Value = self
            .http
            .post(self.config.url("/oauth/introspect"))
            .basic_auth(&self.config.client_id, Some(self.config.client_secret()))
            .form(&[("token", token)])
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|_| unavailable("did not answer"))?
            .json()
            .await
            .map_err(|_| unavailable("answered something else than JSON"))?;
        match answer.get("active").and_then(Value::as_bool) {
            Some(true) => Ok(claims),
            // RFC 7662 says no more than inactive; the signature and times passed, so it
            // is revoked or stale.
            Some(false) => Err(VerifyError::Revoked),
            None => Err(unavailable("answered without `active`")),
        }
    }

    /// Drops what can no longer matter.
    pub(crate) fn prune(&self) {
        if let Ok(mut state) = self.state.write() {
            state.prune(
                self.config.clock.unix(),
                self.config.leeway.as_secs(),
                self.token_lifetime.load(Ordering::Relaxed),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{jwks_path, path_of, Verifier};

    /// A web framework on a multi-threaded runtime needs `verify`'s future to be `Send`.
    #[allow(dead_code)]
    fn verify_is_send(verifier: &Verifier) {
        fn send<T: Send>(_: T) {}
        send(verifier.verify("token"));
        if let Ok(config) = crate::VerifierConfig::builder("http://x", "id", "secret").build() {
            send(Verifier::start(config));
        }
    }

    #[test]
    fn the_jwks_path_is_taken_from_its_uri() {
        assert_eq!(
            path_of("http://127.0.0.1:8080/.well-known/jwks.json"),
            "/.well-known/jwks.json"
        );
        assert_eq!(path_of("https://id.example"), "/");
        assert_eq!(path_of("/.well-known/jwks.json"), "/.well-known/jwks.json");
    }

    #[test]
    fn the_jwks_path_is_taken_past_an_issuer_with_a_path() {
        assert_eq!(
            jwks_path("https://x/claimd", "https://x/claimd/.well-known/jwks.json"),
            "/.well-known/jwks.json"
        );
        assert_eq!(
            jwks_path(
                "https://x/claimd/",
                "https://x/claimd/.well-known/jwks.json"
            ),
            "/.well-known/jwks.json"
        );
        assert_eq!(
            jwks_path(
                "http://127.0.0.1:8080",
                "http://10.0.0.1:8080/.well-known/jwks.json"
            ),
            "/.well-known/jwks.json"
        );
        assert_eq!(
            jwks_path("https://x/claim", "https://x/claimd/.well-known/jwks.json"),
            "/claimd/.well-known/jwks.json"
        );
    }
}
