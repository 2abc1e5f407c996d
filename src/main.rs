//! The `claimd` binary: parses the command line, loads settings, runs the server until
//! SIGINT or SIGTERM. Every start-up failure ends in one line on stderr and exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::{BufRead as _, IsTerminal as _};

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;
use zeroize::Zeroizing;

use claimd::config::Settings;
use claimd::secret::SecretString;
use claimd::startup::{Application, Offline};
use claimd::telemetry;

/// A self-contained JWT auth server.
#[derive(Parser)]
#[command(name = "claimd", version, about)]
struct Cli {
    /// Settings file (default: ./config.toml when present).
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (what claimd does with no command).
    Serve,
    /// Manage accounts while the server is stopped.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage service credentials (for introspection and revocation) while the server is stopped.
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Manage signing keys while the server is stopped.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Write a consistent backup of the store to FILE, with the server stopped (while it
    /// runs, an admin takes one with `POST /admin/backup`).
    Backup {
        /// Where to write it (replaced if it exists; written beside it, then renamed).
        file: PathBuf,
    },
    /// Build the store from a backup, in an empty or new `storage.path`.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Move the store at `storage.path` into the empty PostgreSQL database at
    /// `storage.postgres_url`, in one transaction, with every server stopped.
    Migrate {
        /// The backend moved from (only `sled`).
        #[arg(long, value_name = "BACKEND")]
        from: String,
        /// The backend moved to (only `postgres`).
        #[arg(long, value_name = "BACKEND")]
        to: String,
    },
}

#[derive(Subcommand)]
enum ServiceAction {
    /// Create a credential; its secret is printed this once.
    Add {
        /// What the service is called.
        name: String,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Add a new signing key, published `keys.publish_ahead` before it signs.
    Rotate {
        /// Sign with the new key at once.
        #[arg(long)]
        now: bool,
    },
    /// Bring an existing private key (PKCS#8/PKCS#1/SEC1 PEM or a private JWK) into the
    /// ring; it signs from now on.
    Import {
        /// The key file.
        file: PathBuf,
        /// The key id (default: the JWK's `kid`, or a new one).
        #[arg(long)]
        kid: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create an account. The password is read from standard input (its first line), or
    /// asked for without echo on a terminal.
    Add {
        /// The username.
        #[arg(long)]
        username: String,
        /// Give the account the admin role.
        #[arg(long)]
        admin: bool,
    },
}

fn main() -> ExitCode {
    // Everything claimd writes (store files, backups) holds secrets: owner only. Set before
    // any thread starts, so no file is ever created looser.
    // SAFETY: umask only sets this process's file-creation mask; no memory is involved.
    unsafe {
        libc::umask(0o077);
    }
    tune_the_allocator();
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => return fail(&err),
    };
    telemetry::init_tracing("info");
    telemetry::log_panics_as_one_line();
    // Safe to log whole: the bootstrap password is a secret type, its Debug redacted.
    tracing::debug!(?settings, "settings loaded");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the runtime: {err}")),
    };
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve(settings)),
        Command::Restore { file } => restore(&settings, &file),
        Command::Migrate { from, to } => migrate(&runtime, &settings, &from, &to),
        command => runtime.block_on(offline(settings, command)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&format!("{err:#}")),
    }
}

/// Two glibc allocator settings, each measured under the load bench (docs/performance.md):
///
/// - The mmap threshold held at its starting value (128 KiB). Left dynamic, glibc raises
///   it to the size of the largest mapped block freed so far, and from then on an argon2
///   work area is carved from a thread's arena, where its pages stay after it is freed.
///   Held, every block that large is mapped on its own and unmapped when freed, and large
///   zeroed tables (sled's metrics) stay untouched, unresident pages.
/// - One arena. glibc gives busy threads arenas of their own (up to eight per core),
///   each keeping its freed memory; with one (small allocations still go through each
///   thread's cache without a lock) the load bench's peak RSS fell by about 2.5 MiB with
///   no loss of throughput it could tell from noise.
fn tune_the_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets tunables of the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Runs a command-line operation on the store with the server stopped, and closes the
/// store whether or not it succeeded.
async fn offline(settings: Settings, command: Command) -> anyhow::Result<()> {
    // Ask for a password before opening the store, so a slow typist holds no lock.
    let password = match &command {
        Command::User { .. } => read_password()?,
        _ => SecretString::default(),
    };
    let tool = Offline::open(settings).await?;
    let outcome = run_offline(&tool, command, password).await;
    tool.close().await;
    outcome
}

async fn run_offline(
    tool: &Offline,
    command: Command,
    password: SecretString,
) -> anyhow::Result<()> {
    match command {
        Command::Serve | Command::Restore { .. } | Command::Migrate { .. } => Ok(()),
        Command::Backup { file } => {
            let summary = tool.backup(&file)?;
            println!(
                "backup written to {}: {} trees, {} records, {} bytes",
                file.display(),
                summary.trees,
                summary.records,
                summary.bytes
            );
            Ok(())
        }
        Command::User {
            action: UserAction::Add { username, admin },
        } => {
            let user = tool.add_user(username, password, admin).await?;
            let role = if admin { " with the admin role" } else { "" };
            println!("created user {} (id {}){role}", user.username, user.id);
            Ok(())
        }
        Command::Service {
            action: ServiceAction::Add { name },
        } => {
            let created = tool.add_service(&name).await?;
            println!("client_id: {}", created.client_id);
            // The one place a client secret is printed: shown this once, on purpose.
            println!("client_secret: {}", created.client_secret.expose_secret());
            println!("(the secret is shown this once)");
            Ok(())
        }
        Command::Keys { action } => {
            let added = match action {
                KeysAction::Rotate { now } => tool.rotate_key(now).await?,
                KeysAction::Import { file, kid } => {
                    let text = Zeroizing::new(
                        std::fs::read_to_string(&file)
                            .map_err(|err| anyhow::anyhow!("{}: {err}", file.display()))?,
                    );
                    tool.import_key(&text, kid).await?
                }
            };
            println!(
                "key {} ({}) signs from unix time {}",
                added.kid, added.alg, added.signs_from
            );
            Ok(())
        }
    }
}

/// `claimd restore FILE`: builds the store at `storage.path` from a backup.
fn restore(settings: &Settings, file: &std::path::Path) -> anyhow::Result<()> {
    let backup =
        std::fs::File::open(file).map_err(|err| anyhow::anyhow!("{}: {err}", file.display()))?;
    let path = &settings.storage.path;
    let summary = claimd::store::backup::restore(path, backup)
        .map_err(|err| anyhow::anyhow!("restore into {}: {err}", path.display()))?;
    println!(
        "restored {} into {}: {} trees, {} records",
        file.display(),
        path.display(),
        summary.trees,
        summary.records
    );
    Ok(())
}

/// The new account's password: asked twice without echo on a terminal, otherwise the
/// first line of standard input. Every buffer that held it is zeroed when dropped.
fn read_password() -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let password = Zeroizing::new(rpassword::prompt_password("password: ")?);
        let again = Zeroizing::new(rpassword::prompt_password("again: ")?);
        anyhow::ensure!(password == again, "the passwords differ");
        return Ok(SecretString::from(password.as_str()));
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(SecretString::from(password))
}

fn fail(message: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("claimd: {message}");
    ExitCode::FAILURE
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let host = settings
        .server
        .bind
        .rsplit_once(':')
        .map_or("127.0.0.1", |(host, _)| host)
        .to_string();
    let app = Application::build(settings).await?;
    println!("claimd listening on http://{host}:{}", app.port());
    if let Some(url) = app.demo_url() {
        // On the terminal only, never through tracing: the key in it signs the demo's admin
        // panel in, and it changes at every start.
        println!("demo: open {url} in a browser on this machine");
    }
    tracing::info!(
        port = app.port(),
        "listening on http://{host}:{}",
        app.port()
    );
    let handle = app.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining requests");
        handle.stop(true).await;
    });
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `claimd migrate`: only in a build with the PostgreSQL backend.
#[cfg(feature = "postgres")]
fn migrate(
    runtime: &tokio::runtime::Runtime,
    settings: &Settings,
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    runtime
        .block_on(claimd::migrate::run(settings, from, to))
        .map(|moved| println!("moved to PostgreSQL: {moved}"))
}

#[cfg(not(feature = "postgres"))]
fn migrate(
    _runtime: &tokio::runtime::Runtime,
    _settings: &Settings,
    _from: &str,
    _to: &str,
) -> anyhow::Result<()> {
    anyhow::bail!("claimd migrate needs a claimd built with the cargo feature `postgres`")
}
