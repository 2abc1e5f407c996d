//! The `claimd` binary: parses the command line, loads settings, runs the server until
//! SIGINT or SIGTERM. Every start-up failure ends in one line on stderr and exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use claimd::config::Settings;
use claimd::startup::Application;
use claimd::telemetry;

/// A self-contained JWT auth server.
#[derive(Parser)]
#[command(name = "claimd", version, about)]
struct Cli {
    /// Settings file (default: ./config.toml when present).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
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
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&format!("{err:#}")),
    }
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
