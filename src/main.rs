//! The `claimd` binary: parses the command line, loads settings, runs the server until
//! SIGINT or SIGTERM. Every start-up failure ends in one line on stderr and exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::{BufRead as _, IsTerminal as _};

use clap::{Parser, Subcommand};

use claimd::config::Settings;
use claimd::startup::Application;
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
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => return fail(&err),
    };
    telemetry::init_tracing("info");
    telemetry::log_panics_as_one_line();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the runtime: {err}")),
    };
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve(settings)),
        Command::User {
            action: UserAction::Add { username, admin },
        } => read_password().and_then(|password| {
            let user = runtime.block_on(claimd::startup::add_user(
                settings, username, password, admin,
            ))?;
            println!(
                "created user {} (id {}){}",
                user.username,
                user.id,
                if admin { " with the admin role" } else { "" }
            );
            Ok(())
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&format!("{err:#}")),
    }
}

/// The new account's password: asked twice without echo on a terminal, otherwise the
/// first line of standard input.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("password: ")?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(password == again, "the passwords differ");
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
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
