//! The black-box API suite: one test binary, one module per area of the contract in
//! `API.md`. Every test starts its own server on `127.0.0.1:0` with a fresh data directory
//! (see `helpers`), so tests share nothing and may run in any order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    reason = "a test stops at the first surprise, and waits and measures in real time"
)]

mod admin_tenants;
mod admin_users;
mod backend;
mod backup;
mod bad_input;
mod bootstrap;
mod claim_changes;
mod cli;
mod clock;
mod cors;
mod demo;
mod discovery;
mod disk_stall;
mod events;
mod eviction;
mod forward_auth;
mod helpers;
mod interrupted_revocation;
mod introspection;
mod invitations;
mod js_client;
mod key_import;
mod key_rotation;
mod log_secrets;
mod login;
mod logout;
mod loop_disk;
mod me;
mod migrate;
mod multi_node;
mod nginx;
mod on_stale;
mod openapi;
mod openid_client;
mod ops;
mod password;
mod persistence;
mod power_loss;
mod rate_limit;
mod refresh;
mod refresh_cookie;
mod register;
mod request_bodies;
mod revocation;
mod services;
mod session_churn;
mod startup_errors;
mod storage_faults;
mod token_endpoint;
mod tokens;
mod upgrade;
mod verified_cache;
mod verifier;
