//! Typed settings: built-in defaults, then `config.toml` (or `--config PATH`), then
//! `CLAIMD__SECTION__KEY` environment variables. Every key of DESIGN.md's configuration
//! table lives here with its default; [`Settings::load`] rejects an invalid value with one
//! line naming the key, so a bad deployment stops at start-up instead of misbehaving later.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::secret::SecretString;

/// Everything claimd can be told. Fields are public so tests and embedders can adjust a
/// [`Settings::default`] directly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub tokens: TokenSettings,
    pub auth: AuthSettings,
    pub claims: ClaimsSettings,
    pub bootstrap: BootstrapSettings,
    pub eviction: EvictionSettings,
    pub keys: KeySettings,
    pub demo: DemoSettings,
    pub events: EventsSettings,
    pub mail: MailSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address; port 0 picks any free port (the chosen one is logged).
    pub bind: String,
    /// actix-web workers; `None` means one per core.
    pub workers: Option<usize>,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Longest a request body may take to arrive once its headers are in (408 past it).
    #[serde(deserialize_with = "duration")]
    pub body_timeout: Duration,
    /// Browser origins (`scheme://host[:port]`, exactly) whose pages may call the API:
    /// they get CORS answers. `"*"` lets any page call it, and is refused together with
    /// `tokens.refresh_cookie`.
    pub cors_origins: Vec<String>,
    /// Origins that may also reach `/admin/*` and `/metrics` from a browser; those stay
    /// same-origin unless listed here.
    pub cors_admin_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".to_string(),
            workers: None,
            max_body_bytes: 16 * 1024,
            trusted_proxies: Vec::new(),
            body_timeout: Duration::from_secs(10),
            cors_origins: Vec::new(),
            cors_admin_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Which store runs: the embedded sled directory (default), or a PostgreSQL database
    /// several claimd nodes share.
    pub backend: StorageBackend,
    /// The sled directory, created on first start (by the server only). A relative path
    /// from a config file is resolved against that file's directory by [`Settings::load`];
    /// the default and an environment value are relative to the working directory.
    pub path: PathBuf,
    /// sled page cache in MiB (a target, not a hard bound: see docs/configuration.md).
    pub cache_mb: u64,
    /// `postgres://user:password@host:port/database` for the `postgres` backend. Its
    /// password never reaches a log or an error.
    pub postgres_url: Option<SecretString>,
    /// Connections each node keeps to PostgreSQL for requests (the notification listener
    /// has one more of its own).
    pub postgres_pool: usize,
    /// Open a sled store that has sealed before though its seal file (`claimd.seal`) is
    /// gone, with a warning; refused otherwise, since lost writes could not be detected.
    pub accept_missing_seal: bool,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Sled,
            path: PathBuf::from("./data"),
            cache_mb: 16,
            postgres_url: None,
            postgres_pool: 16,
            accept_missing_seal: false,
        }
    }
}

/// The store backends (`storage.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// One process over an embedded database in `storage.path`.
    Sled,
    /// Any number of nodes over one PostgreSQL database (`storage.postgres_url`).
    Postgres,
}

/// The signing algorithms claimd can mint with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    EdDSA,
    ES256,
    RS256,
    HS256,
}

impl SigningAlgorithm {
    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::HS256 => "HS256",
        }
    }

    /// Parses a JOSE `alg` name, exactly (no case folding: `alg` is case-sensitive).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::EdDSA, Self::ES256, Self::RS256, Self::HS256]
            .into_iter()
            .find(|alg| alg.as_str() == name)
    }
}

impl<'de> Deserialize<'de> for SigningAlgorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        SigningAlgorithm::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown algorithm `{name}`, expected EdDSA, ES256, RS256 or HS256"
            ))
        })
    }
}

/// What verification does with a token whose claim versions are behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStale {
    /// Answer `401 token_stale`; the client refreshes.
    Reject,
    /// Accept it and hand back a re-minted token in `X-Refreshed-Token`.
    Reissue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// The `iss` claim and the public base URL of every advertised endpoint. Empty: derived
    /// from the address claimd listens on (see [`Settings::derive_issuer`]).
    pub issuer: String,
    pub audience: String,
    pub algorithm: SigningAlgorithm,
    #[serde(deserialize_with = "duration")]
    pub access_ttl: Duration,
    #[serde(deserialize_with = "duration")]
    pub refresh_ttl: Duration,
    /// Optional idle limit: a session unused this long can no longer refresh.
    #[serde(deserialize_with = "optional_duration")]
    pub refresh_idle_ttl: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub refresh_reuse_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub leeway: Duration,
    pub on_stale: OnStale,
    /// Entries in the verified-token cache (signature and registered claims only); 0: off.
    pub verified_cache_entries: usize,
    /// Browsers: the refresh token travels in an `HttpOnly` cookie instead of JSON bodies.
    pub refresh_cookie: bool,
    /// Whether that cookie is `Secure` (HTTPS only); off only for plain-HTTP demos.
    pub refresh_cookie_secure: bool,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: "claimd".to_string(),
            algorithm: SigningAlgorithm::EdDSA,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            refresh_idle_ttl: None,
            refresh_reuse_grace: Duration::from_secs(10),
            leeway: Duration::from_secs(30),
            on_stale: OnStale::Reject,
            verified_cache_entries: 10_000,
            refresh_cookie: false,
            refresh_cookie_secure: true,
        }
    }
}

/// Who may create accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Open,
    Admin,
}

/// Reads one of a setting's fixed words; anything else is refused naming every allowed
/// one (serde's own message through `config` named the Rust enum, not the choices).
fn deserialize_choice<'de, D: Deserializer<'de>, T: Copy>(
    deserializer: D,
    choices: &[(&str, T)],
) -> Result<T, D::Error> {
    let text = String::deserialize(deserializer)?;
    choices
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(text.trim()))
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let allowed: Vec<String> = choices
                .iter()
                .map(|(word, _)| format!("`{word}`"))
                .collect();
            serde::de::Error::custom(format!("`{text}` is not one of {}", allowed.join(", ")))
        })
}

impl<'de> Deserialize<'de> for StorageBackend {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_choice(
            deserializer,
            &[("sled", Self::Sled), ("postgres", Self::Postgres)],
        )
    }
}

impl<'de> Deserialize<'de> for OnStale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_choice(
            deserializer,
            &[("reject", Self::Reject), ("reissue", Self::Reissue)],
        )
    }
}

impl<'de> Deserialize<'de> for Registration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_choice(
            deserializer,
            &[("open", Self::Open), ("admin", Self::Admin)],
        )
    }
}

/// A budget of attempts: at most `max` in any `window` (`auth.login_attempts`,
/// `auth.register_limit`, `auth.mail_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginAttempts {
    pub max: u32,
    pub window: Duration,
}

impl<'de> Deserialize<'de> for LoginAttempts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_login_attempts(&text).map_err(serde::de::Error::custom)
    }
}

fn parse_login_attempts(text: &str) -> Result<LoginAttempts, String> {
    let (max, window) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not COUNT/DURATION, e.g. \"10/5m\""))?;
    let max: u32 = max
        .trim()
        .parse()
        .map_err(|_| format!("`{max}` is not a whole number of attempts"))?;
    let window = parse_duration(window.trim())?;
    if max == 0 || window.is_zero() {
        return Err("both the count and the window must be above zero".to_string());
    }
    Ok(LoginAttempts { max, window })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub registration: Registration,
    pub login_attempts: LoginAttempts,
    /// Registrations per client address without an admin's Bearer.
    pub register_limit: LoginAttempts,
    /// Keys (usernames, client addresses) each rate limiter tracks at most; past it the
    /// oldest windows are dropped and counted.
    pub rate_limit_entries: usize,
    /// Live sessions one user may hold; a login past it revokes the least recently used.
    pub max_sessions_per_user: usize,
    /// Password hashes (argon2id, 7 MiB each) run at once; 0: half the cores, at least one.
    pub hash_threads: usize,
    /// Mail requests (verification, password reset, magic link) per client address and,
    /// separately, per account.
    pub mail_limit: LoginAttempts,
    /// Registration needs an email address.
    pub require_email: bool,
    /// A login whose account's address is not verified is refused with 403
    /// `email_unverified`, after the password is checked.
    pub require_verified_email: bool,
}

impl AuthSettings {
    /// The hashing threads to start: `hash_threads`, or half of `cores` (at least one)
    /// when it is 0. Each holds a 7 MiB work area while logins queue, and the other half
    /// of the CPU stays with verification under a login flood.
    pub fn hashing_threads(&self, cores: usize) -> usize {
        match self.hash_threads {
            0 => (cores / 2).max(1),
            chosen => chosen,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            registration: Registration::Open,
            login_attempts: LoginAttempts {
                max: 10,
                window: Duration::from_secs(5 * 60),
            },
            register_limit: LoginAttempts {
                max: 10,
                window: Duration::from_secs(60 * 60),
            },
            rate_limit_entries: 100_000,
            max_sessions_per_user: 100,
            hash_threads: 0,
            mail_limit: LoginAttempts {
                max: 5,
                window: Duration::from_secs(60 * 60),
            },
            require_email: false,
            require_verified_email: false,
        }
    }
}

/// The claim fields `PATCH /me` may ever change (`claims.self_service` picks among them).
/// The address is not among them: it is always the user's own, changed with the current
/// password (`auth::ME_FIELDS`).
pub const SELF_SERVICE_FIELDS: [&str; 3] = ["plan", "roles", "attrs"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimsSettings {
    /// User fields `PATCH /me` may change, each with the values it may take: for `plan`
    /// the plan names, for `roles` the roles a user may give itself, for `attrs` the
    /// attribute names. Empty (the default): users change nothing themselves.
    #[serde(deserialize_with = "self_service_table")]
    pub self_service: BTreeMap<String, Vec<String>>,
}

/// `[claims.self_service]` as a table `field = ["value", ...]`. A value may also be one
/// comma-separated string (how `CLAIMD__CLAIMS__SELF_SERVICE__PLAN=free,pro` arrives). The
/// list form of earlier versions (`self_service = ["plan"]`) opened a field to any value:
/// it is refused with the new form spelled out.
fn self_service_table<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Values {
        List(Vec<String>),
        Text(String),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Table(BTreeMap<String, Values>),
        /// Any other shape (the old list above all): only recognised, to be refused.
        Other(serde::de::IgnoredAny),
    }
    let table = match Form::deserialize(deserializer)? {
        Form::Table(table) => table,
        Form::Other(_) => {
            return Err(serde::de::Error::custom(
                "claims.self_service is now a table of allowed values per field, e.g. \
                 [claims.self_service] plan = [\"free\", \"pro\"]",
            ))
        }
    };
    Ok(table
        .into_iter()
        .map(|(field, values)| {
            let values = match values {
                Values::List(list) => list,
                Values::Text(text) => text
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .collect(),
            };
            (field, values)
        })
        .collect())
}

/// The first admin, created at start-up when both are set. The password is a secret:
/// `Debug` (and so any log of the settings) shows it redacted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapSettings {
    pub admin_username: Option<String>,
    pub admin_password: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvictionSettings {
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
}

impl Default for EvictionSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    #[serde(deserialize_with = "optional_duration")]
    pub rotate_every: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub publish_ahead: Duration,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            rotate_every: None,
            publish_ahead: Duration::from_secs(5 * 60),
        }
    }
}

/// The demo page at `/demo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSettings {
    /// Serve the demo page (off by default: it is for trying claimd out, not production).
    /// The page signs its admin panel in without a password, so it is refused unless
    /// `server.bind` is a loopback address; it also opens `plan` to self-service
    /// ([`DEMO_PLANS`]) when `claims.self_service` names no plans.
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSettings {
    /// How often `GET /events` sends a heartbeat when nothing else happens: a verifier
    /// that hears nothing for its `max_staleness` stops trusting what it holds, so this
    /// must stay well below that (the verifier's default is 5 s).
    #[serde(deserialize_with = "duration")]
    pub heartbeat: Duration,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// Where mail goes (`mail.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTransportKind {
    /// No mail: the mail endpoints answer 501 `mail_disabled`.
    None,
    /// To a mail server (`mail.smtp_url`).
    Smtp,
    /// RFC 5322 `.eml` files in a directory (`mail.outbox_dir`), for demos and development.
    Outbox,
}

impl<'de> Deserialize<'de> for MailTransportKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_choice(
            deserializer,
            &[
                ("none", Self::None),
                ("smtp", Self::Smtp),
                ("outbox", Self::Outbox),
            ],
        )
    }
}

/// How the connection to the mail server is secured, from `mail.smtp_url`'s scheme and
/// query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (implicit TLS, RFC 8314; port 465 by default).
    ImplicitTls,
    /// `smtp://...?tls=required`: plain, then `STARTTLS`, and no mail without it (port 25 by
    /// default, 587 for submission).
    StartTls,
    /// `smtp://` to a loopback host only: no TLS (a relay on the same machine).
    Plain,
}

/// `mail.smtp_url`, checked: where the mail server is and how to reach it safely. It never
/// holds credentials (they come from `CLAIMD_SMTP_USERNAME` / `CLAIMD_SMTP_PASSWORD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// A host name or IP address (without IPv6 brackets): what TLS checks the certificate
    /// against.
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
}

impl SmtpUrl {
    /// Reads `smtp://host[:port][?tls=required]` or `smtps://host[:port]`. Plain `smtp://`
    /// is taken only for a loopback host (127.0.0.0/8, ::1, `localhost`): anywhere else
    /// the mail, its link and the credentials would cross a network in clear.
    ///
    /// # Errors
    /// What is wrong, without repeating the URL (it might carry a password).
    pub fn parse(text: &str) -> Result<SmtpUrl, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("expected smtp://host:port or smtps://host:port")?;
        let implicit = match scheme.to_ascii_lowercase().as_str() {
            "smtps" => true,
            "smtp" => false,
            _ => return Err("the scheme must be smtp:// or smtps://".to_string()),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        if rest.contains('#') || query.is_some_and(|query| query.contains('#')) {
            return Err("the URL must not carry a fragment".to_string());
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err("the URL must not carry a path".to_string());
        }
        if authority.contains('@') {
            return Err(
                "the URL must not carry a user name or password: set them in the \
                 environment as CLAIMD_SMTP_USERNAME and CLAIMD_SMTP_PASSWORD"
                    .to_string(),
            );
        }
        let tls_required = match query {
            None | Some("") => false,
            Some("tls=required") if !implicit => true,
            Some("tls=required") => {
                return Err(
                    "?tls=required is for smtp:// (STARTTLS); smtps:// is TLS from the start"
                        .to_string(),
                )
            }
            Some(_) => return Err("the only query the URL may carry is ?tls=required".to_string()),
        };
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            Some(port) => port,
            None if implicit => 465,
            None => 25,
        };
        let security = if implicit {
            SmtpSecurity::ImplicitTls
        } else if tls_required {
            SmtpSecurity::StartTls
        } else if is_loopback_host(&host) {
            SmtpSecurity::Plain
        } else {
            return Err(format!(
                "plain smtp:// is only allowed to a loopback host, not `{host}`: use \
                 smtps://{host}:465 (TLS) or smtp://{host}:587?tls=required (STARTTLS)"
            ));
        };
        Ok(SmtpUrl {
            host,
            port,
            security,
        })
    }
}

impl<'de> Deserialize<'de> for SmtpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SmtpUrl::parse(text.trim()).map_err(serde::de::Error::custom)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (v6, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address must be closed with `]`")?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the host in brackets is not an IPv6 address".to_string());
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("expected :port after the `]`")?,
            ),
        };
        (v6.to_string(), port)
    } else {
        match authority.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err("write an IPv6 address in brackets, as [::1]:25".to_string())
            }
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("the URL names no host".to_string());
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return Err("the host may only hold letters, digits, dots and hyphens".to_string());
    }
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err(format!("`{port}` is not a port number")),
        },
    };
    Ok((host, port))
}

/// 127.0.0.0/8, ::1 and `localhost`: a mail server on this machine.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The mail server's login, from the environment only (`CLAIMD_SMTP_USERNAME`,
/// `CLAIMD_SMTP_PASSWORD`): never in a file, and never printed (the password is a
/// [`SecretString`]).
#[derive(Debug, Clone)]
pub struct SmtpCredentials {
    pub username: String,
    pub password: SecretString,
}

/// The variable the mail server's user name is read from.
pub const SMTP_USERNAME_VAR: &str = "CLAIMD_SMTP_USERNAME";
/// The variable the mail server's password is read from.
pub const SMTP_PASSWORD_VAR: &str = "CLAIMD_SMTP_PASSWORD";

/// Mail (issue 21): where it goes, who it is from, how long its links live, and what it
/// says. Off by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `none` (default), `smtp` or `outbox`.
    pub transport: MailTransportKind,
    /// The mail server, for `transport = "smtp"` ([`SmtpUrl::parse`]).
    pub smtp_url: Option<SmtpUrl>,
    /// The server's login, read by [`Settings::load`] from `CLAIMD_SMTP_USERNAME` and
    /// `CLAIMD_SMTP_PASSWORD`; no key in a file or in `CLAIMD__MAIL__*` sets it.
    #[serde(skip)]
    pub smtp_credentials: Option<SmtpCredentials>,
    /// The `From:` mailbox, `Name <address>` or a bare address.
    pub from: String,
    /// An optional `Reply-To:` mailbox.
    pub reply_to: Option<String>,
    /// The base URL links point at (`{public_url}/account/{purpose}#token=...`); unset:
    /// `tokens.issuer` ([`Settings::mail_public_url`]).
    pub public_url: Option<String>,
    /// How long a mailed link can be used.
    #[serde(deserialize_with = "duration")]
    pub link_ttl: Duration,
    /// Where `transport = "outbox"` writes; unset: `outbox` in `storage.path`
    /// ([`Settings::mail_outbox_dir`]).
    pub outbox_dir: Option<PathBuf>,
    /// The product the mails name (`{product}` in the templates).
    pub product_name: String,
    /// A directory of template overrides: `<purpose>.subject`, `<purpose>.txt`,
    /// `<purpose>.html` (purpose `verify-email`, `reset-password`, `magic`); each file
    /// present replaces that part of the built-in mail, read once at start-up.
    pub templates_dir: Option<PathBuf>,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            transport: MailTransportKind::None,
            smtp_url: None,
            smtp_credentials: None,
            from: "claimd <no-reply@localhost>".to_string(),
            reply_to: None,
            public_url: None,
            link_ttl: Duration::from_secs(30 * 60),
            outbox_dir: None,
            product_name: "claimd".to_string(),
            templates_dir: None,
        }
    }
}

/// Shortest and longest `mail.link_ttl`.
pub const MAIL_LINK_TTL: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(7 * 86_400);

impl MailSettings {
    /// Reads the mail server's login from `CLAIMD_SMTP_USERNAME` and `CLAIMD_SMTP_PASSWORD`
    /// (both or neither; an empty value counts as unset).
    ///
    /// # Errors
    /// Only one of the two is set, or one is not UTF-8.
    pub fn credentials_from_env() -> Result<Option<SmtpCredentials>, ConfigError> {
        let read = |name: &str| match std::env::var(name) {
            Ok(value) if value.is_empty() => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(ConfigError(format!("{name}: must be UTF-8")))
            }
        };
        match (read(SMTP_USERNAME_VAR)?, read(SMTP_PASSWORD_VAR)?) {
            (None, None) => Ok(None),
            (Some(username), Some(password)) => Ok(Some(SmtpCredentials {
                username,
                password: SecretString::from(password),
            })),
            (Some(_), None) | (None, Some(_)) => Err(ConfigError(format!(
                "{SMTP_USERNAME_VAR}, {SMTP_PASSWORD_VAR}: set both or neither"
            ))),
        }
    }
}

/// The plans the demo lets a user pick when `claims.self_service` names none.
pub const DEMO_PLANS: [&str; 2] = ["free", "pro"];

/// A setting that cannot be used, with the key it came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Loads defaults, then `file` (or `./config.toml` when present), then the environment.
    ///
    /// # Errors
    /// A missing explicit file, a syntax error, an unknown key or an invalid value, each as
    /// one line that names the key.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError(format!(
                        "--config {}: no such file",
                        path.display()
                    )));
                }
                builder = builder.add_source(config::File::from(path).required(true));
            }
            None => {
                builder = builder.add_source(config::File::with_name("config.toml").required(false))
            }
        }
        builder = builder.add_source(
            config::Environment::with_prefix("CLAIMD")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.trusted_proxies")
                .with_list_parse_key("server.cors_origins")
                .with_list_parse_key("server.cors_admin_origins"),
        );
        let mut settings: Settings = builder
            .build()
            .and_then(|raw| raw.try_deserialize())
            .map_err(|err| ConfigError(one_line(&err.to_string())))?;
        if let Some(path) = file {
            settings.storage.path = path_from_file(path, "storage.path", settings.storage.path)?;
            if let Some(outbox) = settings.mail.outbox_dir.take() {
                settings.mail.outbox_dir = Some(path_from_file(path, "mail.outbox_dir", outbox)?);
            }
            if let Some(templates) = settings.mail.templates_dir.take() {
                settings.mail.templates_dir =
                    Some(path_from_file(path, "mail.templates_dir", templates)?);
            }
        }
        settings.mail.smtp_credentials = MailSettings::credentials_from_env()?;
        settings.apply_demo_defaults();
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    ///
    /// # Errors
    /// The first key whose value is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return fail("server.bind", "expected an address like 127.0.0.1:8080");
        }
        if self.server.workers == Some(0) {
            return fail("server.workers", "must be at least 1");
        }
        if self.server.max_body_bytes < 256 {
            return fail("server.max_body_bytes", "must be at least 256");
        }
        if self.storage.cache_mb == 0 {
            return fail("storage.cache_mb", "must be at least 1");
        }
        if self.storage.backend == StorageBackend::Postgres && !cfg!(feature = "postgres") {
            return fail(
                "storage.backend",
                "\"postgres\" needs a claimd built with the cargo feature `postgres` (on by \
                 default; this binary was built without it, e.g. --no-default-features)",
            );
        }
        if self.storage.backend == StorageBackend::Postgres && self.storage.postgres_url.is_none() {
            return fail(
                "storage.postgres_url",
                "must be set with storage.backend = \"postgres\" (or CLAIMD__STORAGE__POSTGRES_URL)",
            );
        }
        if self.storage.postgres_pool == 0 {
            return fail("storage.postgres_pool", "must be at least 1");
        }
        if self.server.body_timeout < Duration::from_millis(100) {
            return fail("server.body_timeout", "must be at least 100ms");
        }
        if self.auth.rate_limit_entries < 16 {
            return fail("auth.rate_limit_entries", "must be at least 16");
        }
        if let Some(field) = self
            .claims
            .self_service
            .keys()
            .find(|field| !SELF_SERVICE_FIELDS.contains(&field.as_str()))
        {
            return fail(
                "claims.self_service",
                &format!("`{field}` is not a user field; expected plan, roles or attrs"),
            );
        }
        if self.auth.max_sessions_per_user == 0 {
            return fail("auth.max_sessions_per_user", "must be at least 1");
        }
        if !self.tokens.issuer.is_empty() {
            if let Err(why) = check_base_url(&self.tokens.issuer) {
                return fail("tokens.issuer", &why);
            }
        }
        for (key, origins) in [
            ("server.cors_origins", &self.server.cors_origins),
            ("server.cors_admin_origins", &self.server.cors_admin_origins),
        ] {
            for origin in origins {
                if origin == "*" {
                    if self.tokens.refresh_cookie {
                        return fail(
                            key,
                            "\"*\" cannot be used with tokens.refresh_cookie: a request that \
                             carries a cookie must come from an origin named here",
                        );
                    }
                    continue;
                }
                if let Err(why) = check_origin(origin) {
                    return fail(key, &format!("`{origin}`: {why}"));
                }
            }
        }
        if self.tokens.audience.is_empty() {
            return fail("tokens.audience", "must not be empty");
        }
        if self.tokens.access_ttl < Duration::from_secs(1) {
            return fail("tokens.access_ttl", "must be at least 1s");
        }
        if self.tokens.refresh_ttl < self.tokens.access_ttl {
            return fail(
                "tokens.refresh_ttl",
                "must not be shorter than tokens.access_ttl",
            );
        }
        if self.tokens.leeway > Duration::from_secs(crate::store::MAX_LEEWAY_SECONDS) {
            return fail("tokens.leeway", "must be at most 5m");
        }
        if self.eviction.interval < Duration::from_millis(100) {
            return fail("eviction.interval", "must be at least 100ms");
        }
        if self.events.heartbeat < Duration::from_millis(100)
            || self.events.heartbeat > Duration::from_secs(60)
        {
            return fail("events.heartbeat", "must be between 100ms and 60s");
        }
        if self.demo.enabled
            && !self
                .server
                .bind
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|addr| addr.ip().is_loopback())
        {
            return fail(
                "demo.enabled",
                "the demo page signs visitors in as an admin, so server.bind must be a \
                 loopback address (127.0.0.1 or [::1])",
            );
        }
        if self.bootstrap.admin_username.is_some() != self.bootstrap.admin_password.is_some() {
            return fail(
                "bootstrap.admin_password",
                "admin_username and admin_password go together",
            );
        }
        self.validate_mail()
    }

    fn validate_mail(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        let mail = &self.mail;
        if !cfg!(feature = "smtp") {
            // lettre writes the outbox's mails too, so without it only "none" is left.
            match mail.transport {
                MailTransportKind::None => {}
                MailTransportKind::Smtp => {
                    return fail(
                        "mail.transport",
                        "this build has no SMTP: built without the `smtp` feature (on by \
                         default; this binary was built without it, e.g. --no-default-features)",
                    )
                }
                MailTransportKind::Outbox => {
                    return fail(
                        "mail.transport",
                        "this build has no mail, not even the outbox: built without the `smtp` \
                         feature (on by default; this binary was built without it, e.g. \
                         --no-default-features)",
                    )
                }
            }
        }
        if mail.transport == MailTransportKind::Smtp && mail.smtp_url.is_none() {
            return fail(
                "mail.smtp_url",
                "must be set with mail.transport = \"smtp\" (or CLAIMD__MAIL__SMTP_URL)",
            );
        }
        if !MAIL_LINK_TTL.contains(&mail.link_ttl) {
            return fail("mail.link_ttl", "must be between 1m and 7d");
        }
        if let Some(url) = &mail.public_url {
            if let Err(why) = check_base_url(url) {
                return fail("mail.public_url", &why);
            }
        }
        if let Err(why) = check_product_name(&mail.product_name) {
            return fail("mail.product_name", why);
        }
        #[cfg(feature = "smtp")]
        {
            if let Err(why) = crate::mail::message::parse_mailbox(&mail.from) {
                return fail("mail.from", &why);
            }
            if let Some(reply_to) = &mail.reply_to {
                if let Err(why) = crate::mail::message::parse_mailbox(reply_to) {
                    return fail("mail.reply_to", &why);
                }
            }
        }
        Ok(())
    }
}

impl Settings {
    /// With `demo.enabled`, lets users choose their plan among [`DEMO_PLANS`] unless
    /// `claims.self_service` already names plans: the demo's "upgrade plan" is a `PATCH
    /// /me`, and one setting must be enough to see it.
    pub fn apply_demo_defaults(&mut self) {
        if self.demo.enabled && !self.claims.self_service.contains_key("plan") {
            self.claims.self_service.insert(
                "plan".to_string(),
                DEMO_PLANS.iter().map(|plan| (*plan).to_string()).collect(),
            );
        }
    }

    /// Fills an empty `tokens.issuer` from the address claimd listens on:
    /// `http://127.0.0.1:8080` for the default bind, the real port when it bound port 0.
    /// Behind a proxy, or listening on every address, the public URL cannot be guessed and
    /// must be set.
    ///
    /// # Errors
    /// `tokens.issuer` is empty and `listening` is an unspecified address (0.0.0.0, ::).
    pub fn derive_issuer(&mut self, listening: std::net::SocketAddr) -> Result<(), ConfigError> {
        if !self.tokens.issuer.is_empty() {
            return Ok(());
        }
        if listening.ip().is_unspecified() {
            return Err(ConfigError(format!(
                "tokens.issuer: must be set when server.bind ({listening}) listens on every \
                 address: name the URL clients reach claimd at, e.g. https://auth.example.com"
            )));
        }
        self.tokens.issuer = format!("http://{listening}");
        Ok(())
    }

    /// The base URL mailed links point at: `mail.public_url`, or `tokens.issuer` when unset
    /// (so call it after [`Settings::derive_issuer`]), without trailing slashes.
    pub fn mail_public_url(&self) -> &str {
        self.mail
            .public_url
            .as_deref()
            .unwrap_or(&self.tokens.issuer)
            .trim_end_matches('/')
    }

    /// The directory `transport = "outbox"` writes into: `mail.outbox_dir`, or `outbox` in
    /// `storage.path` when unset.
    pub fn mail_outbox_dir(&self) -> PathBuf {
        self.mail
            .outbox_dir
            .clone()
            .unwrap_or_else(|| self.storage.path.join("outbox"))
    }

    /// The origin (`scheme://host[:port]`) of `tokens.issuer`: the server's own origin, for
    /// telling same-origin browser requests from cross-origin ones.
    pub fn own_origin(&self) -> &str {
        let issuer = self.tokens.issuer.as_str();
        let after_scheme = issuer.find("://").map_or(0, |at| at + 3);
        match issuer[after_scheme..].find('/') {
            Some(slash) => &issuer[..after_scheme + slash],
            None => issuer,
        }
    }
}

/// An absolute `http(s)` URL without query or fragment.
fn check_base_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("expected an http:// or https:// URL")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the URL names no host".to_string());
    }
    if rest.contains(['?', '#', ' ']) {
        return Err("the URL must not carry a query, fragment or space".to_string());
    }
    Ok(())
}

/// Longest `mail.product_name`, in characters.
const MAX_PRODUCT_NAME_CHARS: usize = 100;

/// A name for a subject line and a greeting: one line of visible text.
fn check_product_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        return Err("must not be empty");
    }
    if name.chars().count() > MAX_PRODUCT_NAME_CHARS {
        return Err("must be at most 100 characters");
    }
    if name.chars().any(crate::domain::is_invisible_or_control) {
        return Err("must not contain line breaks, control or invisible characters");
    }
    Ok(())
}

/// A browser origin as browsers send it: `scheme://host[:port]`, nothing after.
fn check_origin(origin: &str) -> Result<(), String> {
    check_base_url(origin)?;
    let host = origin.split_once("://").map_or("", |(_, host)| host);
    if host.contains('/') {
        return Err("an origin has no path, not even a trailing `/`".to_string());
    }
    if origin.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("browsers send origins in lower case".to_string());
    }
    Ok(())
}

/// A relative path (`storage.path`, `mail.outbox_dir`, `mail.templates_dir`) written in a
/// config file means "beside this file", wherever claimd is started from: `claimd --config
/// /etc/claimd/config.toml keys rotate` run from a home directory must reach the same store
/// as the service. A value from the environment (or the built-in default) stays relative to
/// the working directory.
fn path_from_file(file: &Path, key: &str, resolved: PathBuf) -> Result<PathBuf, ConfigError> {
    let env_var = format!("CLAIMD__{}", key.to_ascii_uppercase().replace('.', "__"));
    if resolved.is_absolute() || std::env::var_os(env_var).is_some() {
        return Ok(resolved);
    }
    let from_file = config::Config::builder()
        .add_source(config::File::from(file).required(true))
        .build()
        .map_err(|err| ConfigError(one_line(&err.to_string())))?
        .get_string(key)
        .ok();
    if from_file.is_none() {
        return Ok(resolved);
    }
    let dir = file.parent().unwrap_or_else(|| Path::new(""));
    Ok(dir.join(resolved))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `"15m"`, `"30d"`, `"10s"`, `"250ms"` and combinations like `"1h 30m"`.
///
/// # Errors
/// A description of what is wrong with the text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|err| format!("`{text}` is not a duration ({err})"))
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    match text.as_deref().map(str::trim) {
        None | Some("") | Some("off") => Ok(None),
        Some(text) => parse_duration(text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_issuer_is_derived_from_the_listening_address() {
        let mut settings = Settings::default();
        settings
            .derive_issuer("127.0.0.1:9000".parse().unwrap())
            .unwrap();
        assert_eq!(settings.tokens.issuer, "http://127.0.0.1:9000");
        assert_eq!(settings.own_origin(), "http://127.0.0.1:9000");

        let mut v6 = Settings::default();
        v6.derive_issuer("[::1]:8080".parse().unwrap()).unwrap();
        assert_eq!(v6.tokens.issuer, "http://[::1]:8080");

        let mut everywhere = Settings::default();
        let refused = everywhere
            .derive_issuer("0.0.0.0:8080".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(refused.contains("tokens.issuer: must be set"), "{refused}");

        let mut set = Settings::default();
        set.tokens.issuer = "https://auth.example.com/tenant-a".into();
        set.derive_issuer("0.0.0.0:8080".parse().unwrap()).unwrap();
        assert_eq!(set.tokens.issuer, "https://auth.example.com/tenant-a");
        assert_eq!(set.own_origin(), "https://auth.example.com");
    }

    #[test]
    fn the_demo_is_refused_unless_claimd_listens_on_loopback() {
        for (bind, allowed) in [
            ("127.0.0.1:8080", true),
            ("[::1]:8080", true),
            ("127.0.0.1:0", true),
            ("0.0.0.0:8080", false),
            ("[::]:8080", false),
            ("192.168.1.10:8080", false),
        ] {
            let mut settings = Settings::default();
            settings.server.bind = bind.to_string();
            settings.demo.enabled = true;
            let verdict = settings.validate();
            assert_eq!(verdict.is_ok(), allowed, "{bind}: {verdict:?}");
            if let Err(err) = verdict {
                assert!(err.to_string().contains("demo.enabled"), "{err}");
            }
            settings.demo.enabled = false;
            assert!(settings.validate().is_ok(), "{bind} without the demo");
        }
    }

    #[test]
    fn the_demo_opens_plan_self_service_only_when_none_is_configured() {
        let mut settings = Settings::default();
        settings.apply_demo_defaults();
        assert!(
            settings.claims.self_service.is_empty(),
            "demo off: nothing opened"
        );

        settings.demo.enabled = true;
        settings.apply_demo_defaults();
        assert_eq!(settings.claims.self_service["plan"], DEMO_PLANS);

        let mut chosen = Settings::default();
        chosen.demo.enabled = true;
        chosen
            .claims
            .self_service
            .insert("plan".into(), vec!["basic".into()]);
        chosen.apply_demo_defaults();
        assert_eq!(chosen.claims.self_service["plan"], ["basic"]);
    }

    #[test]
    fn cors_origins_are_exact_origins_and_star_never_goes_with_the_cookie() {
        let with = |origins: &[&str], cookie: bool| {
            let mut settings = Settings::default();
            settings.server.cors_origins = origins.iter().map(|o| (*o).to_string()).collect();
            settings.tokens.refresh_cookie = cookie;
            settings.validate().map_err(|err| err.to_string())
        };
        assert!(with(&["https://app.example.com", "http://localhost:5173"], true).is_ok());
        assert!(with(&["*"], false).is_ok());
        let star = with(&["*"], true).unwrap_err();
        assert!(
            star.contains("server.cors_origins") && star.contains("refresh_cookie"),
            "{star}"
        );
        for bad in [
            "https://app.example.com/",
            "app.example.com",
            "https://App.example.com",
        ] {
            let refused = with(&[bad], false).unwrap_err();
            assert!(refused.contains(bad), "{refused}");
        }
    }

    #[test]
    fn durations_use_human_units() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn login_attempts_parse_count_and_window() {
        assert_eq!(
            parse_login_attempts("10/5m"),
            Ok(LoginAttempts {
                max: 10,
                window: Duration::from_secs(300)
            })
        );
        assert!(parse_login_attempts("10").is_err());
        assert!(parse_login_attempts("0/5m").is_err());
        assert!(parse_login_attempts("x/5m").is_err());
    }

    #[test]
    fn self_service_is_a_table_and_the_old_list_is_refused_with_the_new_form() {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "self_service_table")]
            self_service: BTreeMap<String, Vec<String>>,
        }
        let parsed: Holder =
            serde_json::from_str(r#"{"self_service":{"plan":["free","pro"],"roles":"a, b"}}"#)
                .unwrap();
        assert_eq!(parsed.self_service["plan"], vec!["free", "pro"]);
        assert_eq!(parsed.self_service["roles"], vec!["a", "b"]);
        let old = serde_json::from_str::<Holder>(r#"{"self_service":["plan"]}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(old.contains("plan = [\"free\", \"pro\"]"), "{old}");
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn mail_is_off_by_default_with_documented_defaults() {
        let settings = Settings::default();
        let mail = &settings.mail;
        assert_eq!(mail.transport, MailTransportKind::None);
        assert_eq!(mail.from, "claimd <no-reply@localhost>");
        assert_eq!(mail.product_name, "claimd");
        assert_eq!(mail.link_ttl, Duration::from_secs(30 * 60));
        assert!(mail.smtp_url.is_none() && mail.reply_to.is_none());
        assert!(mail.smtp_credentials.is_none());
        assert_eq!(
            settings.auth.mail_limit,
            LoginAttempts {
                max: 5,
                window: Duration::from_secs(3600)
            }
        );
        assert!(!settings.auth.require_email && !settings.auth.require_verified_email);
    }

    #[test]
    fn the_public_url_defaults_to_the_issuer_without_trailing_slashes() {
        let mut settings = Settings::default();
        settings.tokens.issuer = "https://auth.example.com/".into();
        assert_eq!(settings.mail_public_url(), "https://auth.example.com");
        settings.mail.public_url = Some("https://app.example.com/id//".into());
        assert_eq!(settings.mail_public_url(), "https://app.example.com/id");
        settings.mail.public_url = Some("app.example.com".into());
        let refused = settings.validate().unwrap_err().to_string();
        assert!(refused.contains("mail.public_url"), "{refused}");
    }

    #[test]
    fn the_outbox_defaults_to_the_data_directory() {
        let mut settings = Settings::default();
        settings.storage.path = PathBuf::from("/srv/claimd");
        assert_eq!(settings.mail_outbox_dir(), Path::new("/srv/claimd/outbox"));
        settings.mail.outbox_dir = Some(PathBuf::from("/tmp/mails"));
        assert_eq!(settings.mail_outbox_dir(), Path::new("/tmp/mails"));
    }

    #[test]
    fn smtp_urls_say_how_the_connection_is_secured() {
        let url = |text: &str| SmtpUrl::parse(text);
        let ok = |host: &str, port, security| {
            Ok(SmtpUrl {
                host: host.to_string(),
                port,
                security,
            })
        };
        assert_eq!(
            url("smtps://mail.example.org"),
            ok("mail.example.org", 465, SmtpSecurity::ImplicitTls)
        );
        assert_eq!(
            url("smtps://mail.example.org:2465/"),
            ok("mail.example.org", 2465, SmtpSecurity::ImplicitTls)
        );
        assert_eq!(
            url("smtp://mail.example.org:587?tls=required"),
            ok("mail.example.org", 587, SmtpSecurity::StartTls)
        );
        assert_eq!(
            url("smtp://127.0.0.1:2525"),
            ok("127.0.0.1", 2525, SmtpSecurity::Plain)
        );
        assert_eq!(
            url("smtp://127.9.8.7"),
            ok("127.9.8.7", 25, SmtpSecurity::Plain)
        );
        assert_eq!(
            url("SMTP://LocalHost:25"),
            ok("LocalHost", 25, SmtpSecurity::Plain)
        );
        assert_eq!(url("smtp://[::1]:25"), ok("::1", 25, SmtpSecurity::Plain));
    }

    #[test]
    fn plain_smtp_to_another_host_is_refused_with_the_safe_forms_named() {
        for host in [
            "mail.example.org",
            "10.0.0.5",
            "[2001:db8::1]",
            "localhost.example.org",
        ] {
            let refused = SmtpUrl::parse(&format!("smtp://{host}:25")).unwrap_err();
            assert!(
                refused.contains("smtps://") && refused.contains("?tls=required"),
                "{host}: {refused}"
            );
        }
    }

    #[test]
    fn smtp_urls_never_carry_credentials_and_errors_never_repeat_them() {
        for text in [
            "smtps://alice:hunter2@mail.example.org:465",
            "smtp://alice@127.0.0.1:25",
            "smtps://:hunter2@mail.example.org",
        ] {
            let refused = SmtpUrl::parse(text).unwrap_err();
            assert!(refused.contains("CLAIMD_SMTP_PASSWORD"), "{refused}");
            assert!(
                !refused.contains("hunter2") && !refused.contains("alice"),
                "{refused}"
            );
        }
    }

    #[test]
    fn malformed_smtp_urls_are_refused() {
        for text in [
            "mail.example.org:25",
            "http://mail.example.org",
            "smtps://",
            "smtps://:465",
            "smtps://mail.example.org:0",
            "smtps://mail.example.org:99999",
            "smtps://mail.example.org/path",
            "smtps://mail.example.org?tls=required",
            "smtp://mail.example.org:587?tls=optional",
            "smtp://::1:25",
            "smtp://[::1",
            "smtps://mail example.org",
            "smtps://mail.example.org#x",
        ] {
            assert!(SmtpUrl::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn mail_settings_are_checked_naming_their_key() {
        let check = |change: &dyn Fn(&mut MailSettings)| {
            let mut settings = Settings::default();
            change(&mut settings.mail);
            settings.validate().map_err(|err| err.to_string())
        };
        let smtp_without_url = check(&|mail| mail.transport = MailTransportKind::Smtp);
        if cfg!(feature = "smtp") {
            assert!(smtp_without_url
                .unwrap_err()
                .contains("mail.smtp_url: must be set"));
        }
        for (ttl, allowed) in [
            (59, false),
            (60, true),
            (7 * 86_400, true),
            (7 * 86_400 + 1, false),
        ] {
            let verdict = check(&|mail| mail.link_ttl = Duration::from_secs(ttl));
            assert_eq!(verdict.is_ok(), allowed, "{ttl}: {verdict:?}");
            if let Err(err) = verdict {
                assert!(err.contains("mail.link_ttl"), "{err}");
            }
        }
        for name in ["", "   ", "a\nBcc: x", &"x".repeat(101)] {
            let refused = check(&|mail| mail.product_name = name.to_string()).unwrap_err();
            assert!(refused.contains("mail.product_name"), "{refused}");
        }
        if cfg!(feature = "smtp") {
            let refused = check(&|mail| mail.from = "not a mailbox".into()).unwrap_err();
            assert!(
                refused.starts_with("invalid configuration: mail.from: "),
                "{refused}"
            );
            let refused = check(&|mail| mail.reply_to = Some("a@".into())).unwrap_err();
            assert!(refused.contains("mail.reply_to: "), "{refused}");
            assert!(check(&|mail| mail.reply_to = Some("Help <help@example.org>".into())).is_ok());
        }
    }

    #[test]
    fn a_build_without_smtp_starts_only_without_mail() {
        let with = |transport| {
            let mut settings = Settings::default();
            settings.mail.transport = transport;
            settings.mail.smtp_url = Some(SmtpUrl::parse("smtps://mail.example.org").unwrap());
            settings.validate().map_err(|err| err.to_string())
        };
        assert!(with(MailTransportKind::None).is_ok());
        if cfg!(feature = "smtp") {
            assert!(with(MailTransportKind::Smtp).is_ok());
            assert!(with(MailTransportKind::Outbox).is_ok());
        } else {
            let refused = with(MailTransportKind::Smtp).unwrap_err();
            assert!(
                refused.contains(
                    "mail.transport: this build has no SMTP: built without the `smtp` feature"
                ),
                "{refused}"
            );
            let refused = with(MailTransportKind::Outbox).unwrap_err();
            assert!(
                refused.contains("built without the `smtp` feature"),
                "{refused}"
            );
        }
    }

    #[test]
    fn mail_settings_load_from_a_file_with_paths_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claimd.toml");
        std::fs::write(
            &file,
            r#"
[auth]
mail_limit = "3/10m"
require_email = true

[mail]
transport = "outbox"
smtp_url = "smtps://mail.example.org"
from = "Example <no-reply@example.org>"
link_ttl = "2h"
outbox_dir = "mails"
templates_dir = "/etc/claimd/templates"
product_name = "Example"
"#,
        )
        .unwrap();
        let loaded = Settings::load(Some(&file));
        if !cfg!(feature = "smtp") {
            assert!(loaded.unwrap_err().to_string().contains("mail.transport"));
            return;
        }
        let settings = loaded.unwrap();
        assert_eq!(settings.mail.transport, MailTransportKind::Outbox);
        assert_eq!(settings.mail.link_ttl, Duration::from_secs(7200));
        assert_eq!(settings.mail_outbox_dir(), dir.path().join("mails"));
        assert_eq!(
            settings.mail.templates_dir.as_deref(),
            Some(Path::new("/etc/claimd/templates"))
        );
        assert_eq!(
            settings.mail.smtp_url.as_ref().map(|url| url.security),
            Some(SmtpSecurity::ImplicitTls)
        );
        assert_eq!(settings.auth.mail_limit.max, 3);
        assert!(settings.auth.require_email);

        std::fs::write(&file, "[mail]\nsmtp_url = \"smtp://mail.example.org:25\"\n").unwrap();
        let refused = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(
            refused.contains("mail.smtp_url") && refused.contains("?tls=required"),
            "{refused}"
        );
        assert_eq!(refused.lines().count(), 1, "{refused}");

        std::fs::write(&file, "[mail]\nsmtp_password = \"x\"\n").unwrap();
        assert!(
            Settings::load(Some(&file)).is_err(),
            "no password key in a file"
        );
    }

    #[test]
    fn smtp_credentials_do_not_print() {
        let login = SmtpCredentials {
            username: "claimd".into(),
            password: "hunter2-secret".into(),
        };
        let mut settings = Settings::default();
        settings.mail.smtp_credentials = Some(login);
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
