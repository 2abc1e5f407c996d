//! Access tokens and sessions. What a token must be to verify (`hostile`: forged, tampered
//! and garbage tokens refused), claims that change under a live token (`claim_changes`,
//! `on_stale`, `verified_cache`), signing keys (`key_rotation`, `key_import`, `discovery`),
//! the refresh token in its three forms (`refresh`, `refresh_cookie`, `token_endpoint`),
//! and how sessions end: `logout`, `revocation`, `introspection` of what is still active,
//! `eviction` and `session_churn` of what has ended, and `interrupted_revocation` when the
//! process dies in the middle of one.

mod claim_changes;
mod discovery;
mod eviction;
mod hostile;
mod interrupted_revocation;
mod introspection;
mod key_import;
mod key_rotation;
mod logout;
mod on_stale;
mod refresh;
mod refresh_cookie;
mod revocation;
mod session_churn;
mod token_endpoint;
mod verified_cache;
