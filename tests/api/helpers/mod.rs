//! The harness the suite stands on. A test starts a real claimd, in-process
//! ([`spawn_app`] and its variants, on a manual clock with [`spawn_app_on_clock`]) or as a
//! child process of the real binary ([`ClaimdProcess`], for the tests that need a process
//! to kill), and talks to it through a [`TestApp`], which has one method per endpoint. The
//! `assert_*` helpers check the problem+json shape from API.md, so each test states only
//! the status and `code` it expects. The mail tests point claimd at an [`SmtpSink`], a real
//! SMTP server on loopback, and read the [`ReceivedMail`]s it kept.
//!
//! Every network wait is bounded (the HTTP client has a timeout, child processes are polled
//! against a deadline) and every child process is killed when its guard drops.
//!
//! One module per job, each saying what it holds; this one re-exports what tests use, so
//! they import everything from `crate::helpers`.

#![allow(dead_code)]

mod calls;
mod child_output;
mod clock;
mod command;
mod in_process;
mod jwt;
mod metrics;
mod problems;
mod process;
mod refresh_token;
mod require;
mod responses;
mod run_to_exit;
mod settings;
mod smtp;
mod test_app;
mod test_log;
mod token_response;
mod workdir;

pub use calls::{inactive, Caller, Service, PASSWORD, UNKNOWN_ID};
pub use clock::{now_unix, spawn_app_on_clock, spawn_app_with_admin_on_clock};
pub use command::claimd_command;
pub use in_process::{
    spawn_app, spawn_app_on_issuer, spawn_app_with, spawn_app_with_admin, ADMIN, ADMIN_PASSWORD,
};
pub use jwt::{
    b64url, b64url_decode, jwks_kids, jwt_claims, jwt_header, jwt_kid, tamper_signature,
};
pub use metrics::{metric_samples, metric_sum};
pub use problems::{
    assert_invalid_client, assert_problem, assert_problem_any, assert_token_error,
    assert_token_error_any, OAUTH_ENDPOINTS,
};
pub use process::{parse_listening_port, ClaimdProcess};
pub use refresh_token::{forge_mac, refresh_parts};
pub use require::require;
pub use responses::{
    assert_no_secret_fields, assert_no_store, header_str, json_response, refreshed_response,
    REFRESHED_TOKEN,
};
pub use run_to_exit::{run_to_exit, run_to_exit_with_stdin, Exit};
pub use settings::{allow_plans, test_settings, TEST_ISSUER, TEST_PLANS};
pub use smtp::{link_token, ReceivedMail, SmtpSink};
pub use test_app::TestApp;
pub use test_log::{init_test_log, test_log};
pub use token_response::{parse_tokens, token_response, Tokens};
pub use workdir::{copy_dir, init_store, workdir};
