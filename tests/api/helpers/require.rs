//! Tools a test needs beyond the Rust toolchain (nginx, PyJWT, libfaketime, root): without
//! one the test fails, naming it, rather than passing untested.

/// Fails the test, naming what is missing, unless `available`. Tests that need something
/// the Rust toolchain does not bring (nginx, PyJWT, libfaketime, root for a tmpfs) are
/// `#[ignore = "needs …"]`: a plain `cargo test` reports them as ignored, and
/// `cargo test -- --include-ignored` (what `.ci/run` runs, after installing the tools)
/// runs them, where a missing tool is a failure, never a silent pass.
pub fn require(what: &str, available: bool) {
    assert!(
        available,
        "{what} is needed by this test (run by `--include-ignored`) and is not available; \
         `.ci/run` shows how to install it"
    );
}
