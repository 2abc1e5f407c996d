//! Verify claimd's access tokens inside your own service, with no call to claimd per
//! request, and still refuse a revoked or stale token within a bounded time.
//!
//! [`Verifier::start`] reads claimd's discovery document and JWKS, takes the change
//! feed's snapshot (`GET /events`), then follows the feed in a background task. Each
//! [`Verifier::verify`] runs the checks claimd's own verification runs, in the same order
//! (DESIGN.md "Verification order"): header, signature and registered claims
//! (`token_invalid`, `token_expired`), the deny list (`token_revoked`), the user
//! (deleted, disabled, issued before `not_before`: `token_revoked`), then the claim
//! versions (`token_stale`). Error codes are claimd's strings ([`VerifyError::code`]).
//!
//! What it holds is only what can still matter to a live token: deny entries until their
//! `exp` plus leeway, version changes for the longest token life after they happened.
//!
//! When nothing (no event, no heartbeat) has been heard from claimd for longer than
//! `max_staleness`, it fails closed ([`VerifyError::Unavailable`]), or, with
//! [`Fallback::Introspect`], asks claimd's `POST /oauth/introspect` instead.
//!
//! With the default `actix` feature, [`VerifiedToken`] is an actix-web extractor that
//! answers as claimd does: the same 401 problem+json and `WWW-Authenticate` challenge.
//! With the `rustls` feature it reaches claimd over HTTPS (Mozilla's roots); any other
//! TLS, proxy or trust store comes with an HTTP client of your own
//! ([`VerifierConfigBuilder::http_client`]).
//!
//! The checks themselves are the `claimd-token` crate's, the same code claimd runs.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use claimd_verify::{Verifier, VerifierConfig};
//! let config = VerifierConfig::builder("http://127.0.0.1:8080", "svc_client_id", "the client secret")
//!     .max_staleness(Duration::from_secs(5))
//!     .build()?;
//! let verifier = Verifier::start(config).await?;
//! match verifier.verify("eyJ...").await {
//!     Ok(claims) => println!("hello {}", claims.sub),
//!     Err(err) => println!("refused: {}", err.code()),
//! }
//! # Ok(()) }
//! ```

mod clock;
mod config;
mod error;
#[cfg(feature = "actix")]
mod extract;
mod feed;
mod keys;
mod state;
mod verifier;

/// The claims of a verified claimd access token (API.md "Access token claims"):
/// claimd-token's, as claimd itself reads them. `#[non_exhaustive]`: claimd may add claims.
pub use claimd_token::AccessClaims as VerifiedClaims;
pub use clock::{Clock, SystemClock};
pub use config::{ConfigError, Fallback, VerifierConfig, VerifierConfigBuilder};
pub use error::{StartError, VerifyError};
#[cfg(feature = "actix")]
pub use extract::{Rejection, VerifiedToken};
pub use state::{FeedState, Followup};
pub use verifier::Verifier;

// The crates whose types are in this one's API, so a caller names the same versions.
pub use {reqwest, secrecy, url};
