//! The black-box API suite: one test binary, its modules grouped by area of the contract in
//! `API.md`, each area's `mod.rs` saying what it covers: `tokens` (access tokens, keys,
//! refresh and the end of sessions), `accounts` (users, tenants, invitations, services),
//! `http` (the HTTP surface across endpoints), `storage` (the store under the real binary),
//! `nodes` (several nodes, the change feed, claimd-verify), `mail` (what claimd sends over
//! SMTP) and `clients` (clients written elsewhere). Every test starts its own server on
//! `127.0.0.1:0` with a fresh data directory (see `helpers`), so tests may run in any order
//! and in parallel; `backend` says which store backend this run's servers use.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    reason = "a test stops at the first surprise, and waits and measures in real time"
)]

mod accounts;
mod backend;
mod clients;
mod helpers;
mod http;
mod mail;
mod nodes;
mod storage;
mod tokens;
