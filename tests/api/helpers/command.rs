//! The real binary's command line, before it is started as a [`ClaimdProcess`] or run to
//! its exit.
//!
//! [`ClaimdProcess`]: super::ClaimdProcess

use std::path::Path;
use std::process::{Command, Stdio};

use super::TEST_ISSUER;

/// A `claimd` command running in `workdir` (so no stray `config.toml` is read), with any
/// inherited `CLAIMD__*` variables removed and port 0.
pub fn claimd_command(workdir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claimd"));
    cmd.current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("CLAIMD__") {
            cmd.env_remove(key);
        }
    }
    cmd.env("CLAIMD__SERVER__BIND", "127.0.0.1:0");
    // Port 0 gives every restart a new port: one fixed issuer keeps a store's tokens valid
    // across restarts (an unset issuer is derived from the port: discovery's tests).
    cmd.env("CLAIMD__TOKENS__ISSUER", TEST_ISSUER);
    // Tests register many users from 127.0.0.1; the registration limit has its own tests.
    cmd.env("CLAIMD__AUTH__REGISTER_LIMIT", "100000/1s");
    if crate::backend::on_postgres() {
        // The store of this working directory, whichever restart of it this is.
        cmd.env("CLAIMD__STORAGE__BACKEND", "postgres")
            .env(
                "CLAIMD__STORAGE__POSTGRES_URL",
                crate::backend::postgres_url_for(&workdir.join("data")),
            )
            .env("CLAIMD__STORAGE__POSTGRES_POOL", "4");
    }
    cmd
}
