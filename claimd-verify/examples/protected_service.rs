//! A service protected by claimd's tokens, verified locally: `GET /hello` answers 200
//! `{"sub","roles","plan","tenant"}` for a token claimd would accept, claimd's own 401
//! problem otherwise, and 503 `verifier_unavailable` once claimd has not been heard from
//! for longer than `--max-staleness`. It never calls claimd per request.
//!
//! The service credential's secret comes from the environment variable
//! `CLAIMD_VERIFY_CLIENT_SECRET`, never from the command line: any user of the machine can
//! read another process's arguments (`ps`), not its environment.
//!
//! ```sh
//! CLAIMD_VERIFY_CLIENT_SECRET=SECRET cargo run -p claimd-verify --example protected_service -- \
//!     --claimd http://127.0.0.1:8080 --client-id ID --bind 127.0.0.1:3000
//! ```

use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use claimd_verify::{Fallback, VerifiedToken, Verifier, VerifierConfig};
use clap::Parser;
use serde_json::json;

/// Where the service credential's secret is read from.
const SECRET_VARIABLE: &str = "CLAIMD_VERIFY_CLIENT_SECRET";

#[derive(Parser)]
#[command(about = "A service that verifies claimd's access tokens locally")]
struct Args {
    /// claimd's base URL.
    #[arg(long)]
    claimd: String,
    /// A service credential's client id (`POST /admin/services`); its secret is read from
    /// the environment variable CLAIMD_VERIFY_CLIENT_SECRET.
    #[arg(long)]
    client_id: String,
    /// Where to listen (port 0 picks one; the line `listening on …` says which).
    #[arg(long, default_value = "127.0.0.1:3000")]
    bind: String,
    /// How long without news from claimd before refusing every token.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    max_staleness: Duration,
    /// Ask claimd's introspection instead of refusing once past `--max-staleness`.
    #[arg(long)]
    introspect_fallback: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let number: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        _ => Err(format!("not a duration (use ms or s): {text}")),
    }
}

async fn hello(token: VerifiedToken) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "sub": token.sub,
        "roles": token.roles,
        "plan": token.plan,
        "tenant": token.tid,
    }))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let client_secret = std::env::var(SECRET_VARIABLE).map_err(|_| {
        format!(
            "set {SECRET_VARIABLE} to the service credential's secret \
             (it is not taken on the command line, where `ps` would show it)"
        )
    })?;
    let fallback = if args.introspect_fallback {
        Fallback::Introspect
    } else {
        Fallback::FailClosed
    };
    let config = VerifierConfig::builder(&args.claimd, args.client_id, client_secret)
        .max_staleness(args.max_staleness)
        .fallback(fallback)
        .build()?;
    let verifier = web::Data::new(Verifier::start(config).await?);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .route("/hello", web::get().to(hello))
    })
    .workers(2)
    .bind(&args.bind)?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    server.run().await?;
    Ok(())
}
