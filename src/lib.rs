//! claimd: a self-contained JWT auth server. One binary, actix-web in front, an embedded
//! sled store behind (or PostgreSQL, for several nodes). Tokens carry claims that go stale when a user's state changes;
//! claimd makes that visible (claim versions), answers it without a logout (refresh), and
//! revokes what must not live on (a deny list that expires with its tokens).
//!
//! # Layout
//!
//! - [`clock`]: the time everything reads, the system's or a manual one in tests.
//! - [`config`]: typed settings, defaults and validation.
//! - [`data_dir`]: the data directory's permissions (owner only) and whether it holds a store.
//! - [`domain`]: ids, usernames and passwords, built only through `parse`.
//! - [`store`]: the store the flows hold, over sled (trees, the codec, the group-commit
//!   flusher, eviction) or PostgreSQL (tables, the shared change log, the node's replica).
//!   Only it imports sled and tokio-postgres.
//! - [`mail`]: email addresses, and the single-use links mailed to verify an address, reset a
//!   password or sign in (tokens derived from a server key, never stored).
//! - [`factors`]: second factors' pure parts: TOTP codes (RFC 6238, each accepted once) and
//!   recovery codes (kept as digests).
//! - [`migrate`]: `claimd migrate --from sled --to postgres` (feature `postgres`).
//! - [`tokens`]: claims, keys and the JWKS, minting and verifying, the refresh-token MAC.
//!   Only it imports jsonwebtoken.
//! - [`auth`]: the flows (register, login, refresh, logout, password) and the verdict on a
//!   token, one service per area over a small shared core. No HTTP here.
//! - [`http`]: routes, extractors, bodies, errors → problem+json. Only it imports actix-web.
//! - [`tasks`]: background work (eviction, key rotation and sync, store recovery).
//! - [`secret`]: secrets as types (passwords, tokens, client secrets): never printed.
//! - [`startup`]: [`startup::Application`], which builds all of the above and runs it.
//! - [`telemetry`]: tracing and Prometheus metrics.

pub mod auth;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod domain;
mod embedded;
pub mod factors;
pub mod http;
pub mod mail;
#[cfg(feature = "postgres")]
pub mod migrate;
pub mod secret;
pub mod startup;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod tokens;
