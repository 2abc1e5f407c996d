//! The black-box API suite: one test binary, one module per area of the contract in
//! `API.md`. Every test starts its own server on `127.0.0.1:0` with a fresh data directory
//! (see `helpers`), so tests share nothing and may run in any order.

mod admin_tenants;
mod admin_users;
mod backup;
mod bad_input;
mod bootstrap;
mod claim_changes;
mod cli;
mod clock;
mod cors;
mod demo;
mod discovery;
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
mod me;
mod nginx;
mod on_stale;
mod openapi;
mod ops;
mod password;
mod persistence;
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
