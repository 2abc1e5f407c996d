//! `TEST_LOG`: whether the servers' logs are shown, and the tracing subscriber that shows
//! the in-process servers' logs through libtest's capture. A child process's lines are
//! echoed by `child_output`.

use claimd::telemetry::LogOutput;

/// Whether `TEST_LOG` asks for the servers' logs.
pub fn test_log() -> bool {
    std::env::var_os("TEST_LOG").is_some_and(|value| !value.is_empty() && value != "0")
}

/// With `TEST_LOG` set, installs (once for this test binary) a tracing subscriber that
/// writes the in-process servers' logs through libtest's writer: shown with a failing
/// test's output, or live with `--nocapture`. `RUST_LOG` filters it (default `info`), with
/// the server's own caps on dependencies.
/// Without `TEST_LOG` nothing is installed and the servers log nowhere.
pub fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if !test_log() {
        return;
    }
    ONCE.call_once(|| claimd::telemetry::init_tracing_to("info", LogOutput::Test));
}
