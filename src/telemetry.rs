//! Logging and metrics. `init_tracing` sets up the subscriber (`RUST_LOG` filters, default
//! `info`); [`Metrics`] is the Prometheus registry behind `GET /metrics`. Nothing here sees
//! a token, a password or a key: call sites pass ids and outcomes, and the secrets in the
//! types they may log whole print redacted (`crate::secret`).
//!
//! One dependency would print secrets itself: sled, at debug and trace, logs the records
//! it writes and reads (`linking pid … with Set(key, value)`), and claimd's records hold
//! password hashes, session keys, private keys and the current access token of each
//! session. So sled is capped at `info` whatever `RUST_LOG` asks. actix-web's HTTP/1
//! dispatcher logs timers and flags at trace, never a header (checked by the `log_secrets`
//! test, which runs the binary at `RUST_LOG=trace`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard output, coloured on a terminal: the server.
    Stdout,
    /// libtest's capturing writer: the tests' in-process servers under `TEST_LOG`.
    Test,
}

/// The most a dependency may log, whatever `RUST_LOG` says: see the module doc.
fn dependency_caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("sled", LevelFilter::INFO)
        // tokio-postgres logs every statement's parameters at debug: records holding
        // refresh-token keys, access tokens and private keys.
        .with_target("tokio_postgres", LevelFilter::INFO)
        // lettre is built without its `tracing` feature (it would log what it writes:
        // mail bodies hold live links); capped all the same.
        .with_target("lettre", LevelFilter::INFO)
}

/// Starts the tracing subscriber once, writing to standard output; later calls do nothing.
pub fn init_tracing(default_filter: &str) {
    init_tracing_to(default_filter, LogOutput::Stdout);
}

/// Starts the tracing subscriber once, writing to `output`; later calls do nothing (tests
/// start many apps). `RUST_LOG` filters it (default `default_filter`), under
/// [`dependency_caps`]. `log` records (actix-web's, sled's) are forwarded to it.
pub fn init_tracing_to(default_filter: &str, output: LogOutput) {
    // `RUST_LOG` as `target=level` directives and a default level (`claimd=debug,info`);
    // tracing's `Targets` reads that without a regex engine, which keeps the edge build
    // small. One that does not parse leaves `default_filter` in force.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| text.parse::<Targets>().ok())
        .or_else(|| default_filter.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let format = tracing_subscriber::fmt::layer().with_target(false);
    let format = match output {
        LogOutput::Stdout => format
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
        LogOutput::Test => format.with_ansi(false).with_test_writer().boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(format.with_filter(filter).with_filter(dependency_caps()))
        .try_init();
}

/// Replaces the default panic output (several lines on stderr) with one error log line.
/// A panic caught on purpose (sled's on a damaged store) still becomes a one-line
/// start-up error; one that is not is still logged, never lost.
pub fn log_panics_as_one_line() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%location, "panic: {}", message.split_whitespace().collect::<Vec<_>>().join(" "));
    }));
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimiterLabels {
    limiter: &'static str,
}

/// The `method` label of a request: one of the methods of RFC 9110 §9 and PATCH (RFC 5789),
/// or `OTHER`. A client can send any token as a method; each new label value would be a new
/// series kept forever, so made-up methods share one.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("OTHER")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric claimd exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    tokens_issued: Family<KindLabels, Counter>,
    refreshes: Family<OutcomeLabels, Counter>,
    logins: Family<OutcomeLabels, Counter>,
    rate_limit_evictions: Family<LimiterLabels, Counter>,
    reuse_detections: Counter,
    deny_entries: Gauge,
    evictions: Counter,
    sessions_evicted: Counter,
    /// One sample on sled, none on PostgreSQL (whose database's size is not this
    /// node's to know): a missing series, not a zero that looks real.
    store_bytes: Family<Vec<(String, String)>, Gauge>,
    sessions: Gauge,
    store_writable: Gauge,
    store_write_failures: Counter,
    store_recoveries: Counter,
    store_write_stall: Gauge,
    peer_wait_ms: Counter,
    peer_waits: Counter,
    mail_sent: Counter,
    mail_failed: Family<ReasonLabels, Counter>,
    mail_queue: Gauge,
}

/// What the store reports at scrape time.
pub struct StoreGauges {
    pub deny_entries: i64,
    /// Session records held.
    pub sessions: i64,
    /// The store's size on this machine's disk; `None` on PostgreSQL.
    pub bytes: Option<u64>,
    pub health: crate::store::HealthCounts,
    /// Time write answers have waited for other nodes in all, and how many waited.
    pub peer_wait: (std::time::Duration, u64),
    /// How long writes have been stuck on the disk, once past readiness's bound.
    pub writes_stalled: Option<std::time::Duration>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let tokens_issued = Family::<KindLabels, Counter>::default();
        let refreshes = Family::<OutcomeLabels, Counter>::default();
        let logins = Family::<OutcomeLabels, Counter>::default();
        let rate_limit_evictions = Family::<LimiterLabels, Counter>::default();
        let reuse_detections = Counter::default();
        let deny_entries = Gauge::default();
        let evictions = Counter::default();
        let sessions_evicted = Counter::default();
        let store_bytes = Family::<Vec<(String, String)>, Gauge>::default();
        let sessions = Gauge::default();
        let store_writable = Gauge::default();
        let store_write_failures = Counter::default();
        let store_recoveries = Counter::default();
        // Whole units, not floats: integer series only, one encoder fewer in the binary.
        let store_write_stall = Gauge::default();
        let peer_wait_ms = Counter::default();
        let peer_waits = Counter::default();
        registry.register(
            "claimd_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "claimd_http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "claimd_tokens_issued",
            "Tokens minted, by kind (access, refresh)",
            tokens_issued.clone(),
        );
        registry.register(
            "claimd_refreshes",
            "Refresh-token presentations by outcome (rotated, race, reuse, forged, refused)",
            refreshes.clone(),
        );
        registry.register("claimd_logins", "Login attempts by outcome", logins.clone());
        registry.register(
            "claimd_rate_limit_evictions",
            "Open rate-limit windows dropped to keep a limiter under auth.rate_limit_entries",
            rate_limit_evictions.clone(),
        );
        registry.register(
            "claimd_reuse_detections",
            "Refresh-token reuse detections (each revoked a session)",
            reuse_detections.clone(),
        );
        registry.register(
            "claimd_deny_entries",
            "Entries on the deny list now",
            deny_entries.clone(),
        );
        registry.register(
            "claimd_evictions",
            "Expired deny-list entries removed",
            evictions.clone(),
        );
        registry.register(
            "claimd_sessions_evicted",
            "Expired sessions removed",
            sessions_evicted.clone(),
        );
        registry.register(
            "claimd_store_bytes",
            "Size of the sled store on disk",
            store_bytes.clone(),
        );
        registry.register(
            "claimd_sessions",
            "Session records held: live ones, and revoked ones some token of which may still verify",
            sessions.clone(),
        );
        registry.register(
            "claimd_store_writable",
            "1 while the store makes writes durable, 0 during a write-failure episode",
            store_writable.clone(),
        );
        registry.register(
            "claimd_store_write_failures",
            "Writes and flushes that failed (disk full, I/O error, read-only file system)",
            store_write_failures.clone(),
        );
        registry.register(
            "claimd_store_recoveries",
            "Write-failure episodes ended by reopening the store in place",
            store_recoveries.clone(),
        );
        registry.register(
            "claimd_store_write_stall_seconds",
            "Seconds writes have waited on the disk with none finishing, once past readiness's bound (5 s); 0 otherwise",
            store_write_stall.clone(),
        );
        registry.register(
            "claimd_peer_wait_milliseconds",
            "Time write answers spent waiting for other PostgreSQL nodes to apply them (0 on sled)",
            peer_wait_ms.clone(),
        );
        registry.register(
            "claimd_peer_waits",
            "Write answers that waited for other PostgreSQL nodes to apply them",
            peer_waits.clone(),
        );
        let mail_sent = Counter::default();
        let mail_failed = Family::<ReasonLabels, Counter>::default();
        let mail_queue = Gauge::default();
        registry.register(
            "claimd_mail_sent",
            "Mails handed to the mail server or written to the outbox",
            mail_sent.clone(),
        );
        registry.register(
            "claimd_mail_failed",
            "Failed delivery attempts by reason (connect, tls, timeout, transient, permanent, \
             outbox, compose)",
            mail_failed.clone(),
        );
        registry.register(
            "claimd_mail_queue",
            "Mails waiting to be sent, as of the sender's last pass",
            mail_queue.clone(),
        );
        Metrics {
            registry,
            mail_sent,
            mail_failed,
            mail_queue,
            requests,
            latency,
            tokens_issued,
            refreshes,
            logins,
            rate_limit_evictions,
            reuse_detections,
            deny_entries,
            evictions,
            sessions_evicted,
            store_bytes,
            sessions,
            store_writable,
            store_write_failures,
            store_recoveries,
            store_write_stall,
            peer_wait_ms,
            peer_waits,
        }
    }

    /// Counts one answered request. Every label is bounded: `route` is a registered
    /// pattern or `unmatched` (never the raw path), `method` one of ten values
    /// ([`method_label`]), `status` a three-digit code.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method_label(method),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// Counts a minted token.
    pub fn tokens_issued(&self, kind: &'static str) {
        self.tokens_issued.get_or_create(&KindLabels { kind }).inc();
    }

    /// Counts a refresh-token presentation.
    pub fn refresh(&self, outcome: &'static str) {
        self.refreshes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a login attempt.
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The counter of windows a rate limiter (`login`, `register`) dropped to stay under
    /// its cap.
    pub fn rate_limit_evictions(&self, limiter: &'static str) -> Counter {
        self.rate_limit_evictions
            .get_or_create(&LimiterLabels { limiter })
            .clone()
    }

    /// Counts a detected refresh-token reuse.
    pub fn reuse_detected(&self) {
        self.reuse_detections.inc();
    }

    /// Counts a mail sent.
    pub fn mail_sent(&self) {
        self.mail_sent.inc();
    }

    /// Counts a failed delivery attempt.
    pub fn mail_failed(&self, reason: &'static str) {
        self.mail_failed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Notes how many mails wait to be sent.
    pub fn mail_queue(&self, depth: u64) {
        self.mail_queue
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Counts an eviction pass.
    pub fn evicted(&self, deny_entries: u64, sessions: u64) {
        self.evictions.inc_by(deny_entries);
        self.sessions_evicted.inc_by(sessions);
    }

    /// Renders the Prometheus text format, with gauges read at scrape time.
    pub fn render(&self, store: &StoreGauges) -> String {
        self.deny_entries.set(store.deny_entries);
        self.sessions.set(store.sessions);
        match store.bytes {
            Some(bytes) => {
                self.store_bytes
                    .get_or_create(&Vec::new())
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
            None => self.store_bytes.clear(),
        }
        self.store_writable.set(i64::from(store.health.writable));
        // The store counts; these counters catch up with it (both only grow).
        let behind = |counter: &Counter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        behind(&self.store_write_failures, store.health.write_failures);
        behind(&self.store_recoveries, store.health.recoveries);
        behind(&self.peer_waits, store.peer_wait.1);
        behind(
            &self.peer_wait_ms,
            u64::try_from(store.peer_wait.0.as_millis()).unwrap_or(u64::MAX),
        );
        self.store_write_stall
            .set(store.writes_stalled.map_or(0, |stalled| {
                i64::try_from(stalled.as_secs()).unwrap_or(i64::MAX)
            }));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
