//! Start-up and shutdown in order: open the store, load (or create) the signing keys,
//! create the bootstrap admin, bind the listener (port 0 picks a free port, so tests run
//! many servers), start the background tasks; on stop, drain requests, stop the tasks and
//! flush the store.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};
use anyhow::Context as _;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::auth::keys::{import_key, load_or_create_key_ring, AddedKey};
use crate::auth::{Auth, AuthError, NewService, Registration, UserView, ADMIN_ROLE};
use crate::clock::Clock;
use crate::config::{Settings, StorageBackend};
use crate::http::{self, AppState};
use crate::secret::SecretString;
use crate::store::backup::BackupSummary;
use crate::store::Store;
use crate::tasks;
use crate::telemetry::Metrics;

/// Opens the store, loads (or creates) the signing keys and wires the flows to them.
async fn open_flows(
    settings: &Settings,
    metrics: Arc<Metrics>,
    clock: Clock,
) -> anyhow::Result<(Arc<Store>, Auth)> {
    let store = Arc::new(open_store(settings, clock.clone()).await?);
    let alg = settings.tokens.algorithm;
    let ring = load_or_create_key_ring(&store, alg, clock.now())
        .await
        .context("keys")?;
    let auth = Auth::new(Arc::clone(&store), settings.clone(), ring, metrics, clock).await?;
    Ok((store, auth))
}

/// The mail sender the settings call for: `None` with `mail.transport = "none"`.
///
/// # Errors
/// The transport or the templates cannot be set up (`mail.*`, one line each).
#[cfg(feature = "smtp")]
fn mail_sender(
    settings: &Settings,
    auth: &Auth,
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
    clock: &Clock,
) -> anyhow::Result<Option<tasks::mail_sender::Sender>> {
    let Some(key) = auth.email.key() else {
        return Ok(None);
    };
    let transport = crate::mail::transport::MailTransport::from_settings(settings)
        .map_err(|why| anyhow::anyhow!(why))?;
    let templates = crate::mail::message::Templates::load(&settings.mail)?;
    Ok(Some(tasks::mail_sender::Sender {
        store: Arc::clone(store),
        metrics: Arc::clone(metrics),
        transport,
        templates,
        key,
        public_url: settings.mail_public_url().to_string(),
        link_ttl: settings.mail.link_ttl,
        clock: clock.clone(),
        queued: auth.email.queued_signal(),
    }))
}

/// Opens the backend the settings name.
async fn open_store(settings: &Settings, clock: Clock) -> anyhow::Result<Store> {
    match settings.storage.backend {
        StorageBackend::Sled => {
            crate::data_dir::make_private(&settings.storage.path)?;
            let path = settings.storage.path.clone();
            let cache_mb = settings.storage.cache_mb;
            let missing_seal = if settings.storage.accept_missing_seal {
                crate::store::MissingSeal::Accept
            } else {
                crate::store::MissingSeal::Refuse
            };
            tokio::task::spawn_blocking(move || {
                Store::open_with(&path, cache_mb, clock, missing_seal)
            })
            .await?
            .with_context(|| format!("storage.path {}", settings.storage.path.display()))
        }
        StorageBackend::Postgres => open_postgres(settings, clock).await,
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(settings: &Settings, clock: Clock) -> anyhow::Result<Store> {
    use crate::secret::ExposeSecret as _;
    let url = settings
        .storage
        .postgres_url
        .as_ref()
        .context("storage.postgres_url is not set")?;
    Store::open_postgres(url.expose_secret(), settings.storage.postgres_pool, clock)
        .await
        .context("storage.postgres_url")
}

/// `Settings::validate` refuses the backend first; this is the same answer for a caller
/// that skipped it.
#[cfg(not(feature = "postgres"))]
async fn open_postgres(_settings: &Settings, _clock: Clock) -> anyhow::Result<Store> {
    anyhow::bail!(
        "storage.backend: \"postgres\" needs a claimd built with the cargo feature `postgres`"
    )
}

/// The store and flows opened for a command-line operation while the server is stopped
/// (the store is opened exclusively: with the server running, opening says it is in use).
pub struct Offline {
    store: Arc<Store>,
    auth: Auth,
}

impl Offline {
    /// Opens the store and the flows, without serving.
    ///
    /// # Errors
    /// No store at `storage.path`, the store is in use or unusable, or a stored key does
    /// not load.
    pub async fn open(mut settings: Settings) -> anyhow::Result<Offline> {
        // Only the server creates a store: a command run from the wrong directory, or
        // with a mistyped path, must not make a new empty one and report success.
        let path = &settings.storage.path;
        anyhow::ensure!(
            settings.storage.backend != StorageBackend::Sled || crate::data_dir::holds_store(path),
            "storage.path {}: no claimd store there (start the server once to create one)",
            path.display()
        );
        // The flows are the server's, with its issuer where it can be derived; the tools
        // mint and verify nothing, so one that cannot be derived (0.0.0.0) does not matter.
        if let Ok(bind) = settings.server.bind.parse() {
            settings.derive_issuer(bind).ok();
        }
        let (store, auth) =
            open_flows(&settings, Arc::new(Metrics::new()), Clock::system()).await?;
        Ok(Offline { store, auth })
    }

    /// Creates an account (`claimd user add`), with the `admin` role when asked.
    ///
    /// # Errors
    /// The username or password is refused.
    pub async fn add_user(
        &self,
        username: String,
        password: SecretString,
        admin: bool,
    ) -> anyhow::Result<UserView> {
        let roles = if admin {
            vec![ADMIN_ROLE.to_string()]
        } else {
            Vec::new()
        };
        self.auth
            .accounts
            .register(Registration {
                username,
                password,
                tenant: None,
                invitation: None,
                roles,
                email: None,
            })
            .await
            .map_err(|err| match err {
                AuthError::UsernameTaken => anyhow::anyhow!("that username is taken"),
                AuthError::InvalidRequest(why) => anyhow::anyhow!("{why}"),
                other => anyhow::anyhow!("{other}"),
            })
    }

    /// Creates a service credential (`claimd service add`).
    ///
    /// # Errors
    /// The name is refused.
    pub async fn add_service(&self, name: &str) -> anyhow::Result<NewService> {
        Ok(self.auth.admin.create_service(name).await?)
    }

    /// Adds a signing key (`claimd keys rotate`).
    ///
    /// # Errors
    /// Generation or storage failures.
    pub async fn rotate_key(&self, at_once: bool) -> anyhow::Result<AddedKey> {
        Ok(self.auth.keys.rotate_signing_key(at_once).await?)
    }

    /// Imports a private key (`claimd keys import`).
    ///
    /// # Errors
    /// The key does not parse or is not of the configured algorithm.
    pub async fn import_key(&self, text: &str, kid: Option<String>) -> anyhow::Result<AddedKey> {
        let alg = self.auth.settings().tokens.algorithm;
        let added = import_key(&self.store, alg, text, kid, self.auth.clock().now()).await?;
        self.store.wait_durable().await?;
        Ok(added)
    }

    /// Writes a backup of the store to `file` (`claimd backup`): beside it first, synced,
    /// then renamed over it, so a crash never leaves half a backup under that name.
    ///
    /// # Errors
    /// The file cannot be written, or the store cannot be read.
    pub fn backup(&self, file: &std::path::Path) -> anyhow::Result<BackupSummary> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let partial = file.with_extension("partial");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("{}", partial.display()))?;
        let summary = self.store.export(&mut out)?;
        out.sync_all()
            .with_context(|| format!("{}", partial.display()))?;
        std::fs::rename(&partial, file).with_context(|| format!("{}", file.display()))?;
        Ok(summary)
    }

    /// Flushes and closes the store.
    pub async fn close(self) {
        self.store.leave().await;
        self.store.close();
    }
}

/// Stops a running [`Application`]: long-lived answers end first, then the server drains
/// what is in flight (when `graceful`) and stops.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    stopping: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    /// Stops the server; waits until it has.
    pub async fn stop(&self, graceful: bool) {
        self.stopping.send_replace(true);
        self.server.stop(graceful).await;
    }
}

/// A built server, bound and ready to run.
pub struct Application {
    port: u16,
    /// `http://ADDRESS/demo#key=…` when the demo is on: printed once at start-up.
    demo_url: Option<String>,
    server: Server,
    store: Arc<Store>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    /// Tells long-lived answers (the change feed) that the server is stopping.
    stopping: Arc<watch::Sender<bool>>,
    /// Why the server must stop and exit non-zero (a store that cannot be recovered).
    fatal: mpsc::UnboundedReceiver<String>,
}

impl Application {
    /// Opens everything and binds the listener; nothing is served until
    /// [`Application::run_until_stopped`].
    ///
    /// # Errors
    /// Each step's failure, with the setting or path it concerns.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&settings.server.bind)
            .with_context(|| format!("server.bind {}: cannot listen", settings.server.bind))?;
        Application::build_with_listener(settings, listener, Clock::system()).await
    }

    /// As [`Application::build`], on a listener the caller bound (tests bind port 0 first
    /// to know the issuer URL before claimd starts) and reading `clock` (tests move a
    /// manual one instead of waiting for time to pass).
    ///
    /// # Errors
    /// Each step's failure, with the setting or path it concerns.
    pub async fn build_with_listener(
        mut settings: Settings,
        listener: TcpListener,
        clock: Clock,
    ) -> anyhow::Result<Application> {
        settings.derive_issuer(listener.local_addr().context("server.bind")?)?;
        settings.validate()?;
        let metrics = Arc::new(Metrics::new());
        let (store, auth) = open_flows(&settings, Arc::clone(&metrics), clock.clone()).await?;
        let auth = Arc::new(auth);
        auth.accounts.bootstrap_admin().await.context("bootstrap")?;

        let local = listener.local_addr()?;
        let port = local.port();
        let demo_url = auth
            .demo_key
            .as_ref()
            .map(|key| format!("http://{local}/demo#key={}", key.expose()));
        let (stopping, stopping_rx) = watch::channel(false);
        let state = web::Data::new(AppState {
            auth: Arc::clone(&auth),
            metrics: Arc::clone(&metrics),
            stopping: stopping_rx,
        });
        let workers = settings
            .server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
        let server = HttpServer::new(move || http::app(state.clone()))
            .workers(workers)
            .disable_signals()
            .shutdown_timeout(10)
            .listen(listener)
            .context("server.bind")?
            .run();

        #[cfg(feature = "smtp")]
        let mail_sender = mail_sender(&settings, &auth, &store, &metrics, &clock)?;
        // A build without mail refuses any transport but `none`, in one line.
        #[cfg(not(feature = "smtp"))]
        crate::mail::transport::MailTransport::from_settings(&settings)
            .map_err(|why| anyhow::anyhow!(why))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let eviction = tokio::spawn(tasks::eviction::run(
            Arc::clone(&store),
            metrics,
            settings.eviction.interval,
            settings.tokens.leeway,
            clock,
            shutdown_rx.clone(),
        ));
        let (fatal_tx, fatal) = mpsc::unbounded_channel();
        let recovery = tokio::spawn(tasks::recovery::run(
            Arc::clone(&store),
            fatal_tx,
            shutdown_rx.clone(),
        ));
        let key_sync = tokio::spawn(tasks::key_sync::run(
            Arc::clone(&auth),
            store.watch_keys(),
            shutdown_rx.clone(),
        ));
        let mut tasks = vec![eviction, recovery, key_sync];
        #[cfg(feature = "smtp")]
        if let Some(sender) = mail_sender {
            tasks.push(tokio::spawn(tasks::mail_sender::run(
                sender,
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(tasks::rotation::run(auth, shutdown_rx)));
        Ok(Application {
            port,
            demo_url,
            server,
            store,
            tasks,
            shutdown,
            stopping: Arc::new(stopping),
            fatal,
        })
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The demo page's URL with the key its admin panel needs (`demo.enabled`), to print
    /// for the person who started claimd; `None` with the demo off.
    pub fn demo_url(&self) -> Option<&str> {
        self.demo_url.as_deref()
    }

    /// A handle that stops the server (used by the signal handler).
    pub fn handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            stopping: Arc::clone(&self.stopping),
        }
    }

    /// Serves until the server is stopped, then stops the tasks and flushes the store.
    ///
    /// # Errors
    /// The server failed, or the store could not be recovered after a write failure (the
    /// server is stopped first).
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = self.server;
        let (served, fatal) = tokio::select! {
            served = &mut server => (served, None),
            Some(reason) = self.fatal.recv() => {
                self.stopping.send_replace(true);
                handle.stop(false).await;
                (server.await, Some(reason))
            }
        };
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let store = Arc::clone(&self.store);
        store.leave().await;
        tokio::task::spawn_blocking(move || store.close()).await?;
        if let Some(reason) = fatal {
            anyhow::bail!(reason);
        }
        served.context("http server")
    }
}
