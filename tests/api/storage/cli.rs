//! `claimd user add --admin`: the first admin from the command line, with the password read
//! from the first line of stdin (never a terminal here). It writes to the store directly, so it
//! must refuse — with one clear line — a data directory a running server holds, a username
//! already taken and a password that breaks the rules.
//!
//! Every command that opens the store offline refuses to create one (only the server does);
//! a relative `storage.path` in a config file means beside that file; and the data directory
//! the server creates is its owner's alone.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_problem, claimd_command, init_store, json_response, run_to_exit_with_stdin, workdir,
    ClaimdProcess, Exit, PASSWORD,
};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN_PASSWORD: &str = "an operator's passphrase";

/// `claimd user add --admin --username NAME` on `data` (through `CLAIMD__STORAGE__PATH`).
fn user_add_command(workdir: &Path, data: &Path, username: &str) -> Command {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .args(["user", "add", "--admin", "--username", username]);
    cmd
}

fn user_add(workdir: &Path, data: &Path, username: &str, stdin: &str) -> Exit {
    run_to_exit_with_stdin(
        user_add_command(workdir, data, username),
        stdin,
        EXIT_TIMEOUT,
    )
}

fn assert_success(exit: &Exit) {
    let status = exit
        .status
        .unwrap_or_else(|| panic!("still running after {EXIT_TIMEOUT:?}: {exit:?}"));
    assert!(status.success(), "user add failed: {exit:?}");
}

/// Non-zero exit, not from a signal, no panic; returns stderr in lower case.
fn assert_failed(exit: &Exit) -> String {
    let status = exit
        .status
        .unwrap_or_else(|| panic!("still running after {EXIT_TIMEOUT:?}: {exit:?}"));
    assert!(!status.success(), "user add succeeded: {exit:?}");
    assert!(status.code().is_some(), "died from a signal: {exit:?}");
    assert!(
        !exit.stderr.contains("panicked") && !exit.stdout.contains("panicked"),
        "panicked: {exit:?}"
    );
    exit.stderr.to_lowercase()
}

/// [`assert_failed`] with exactly one non-empty line on stderr; returns it.
fn assert_one_line_failure(exit: &Exit) -> String {
    assert_failed(exit);
    let lines: Vec<&str> = exit
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {exit:?}");
    lines[0].to_lowercase()
}

#[tokio::test]
async fn user_add_admin_creates_an_admin_who_can_log_in() {
    let (dir, data) = workdir();
    init_store(&data);

    let exit = user_add(dir.path(), &data, "root", &format!("{ADMIN_PASSWORD}\n"));

    assert_success(&exit);
    assert!(
        exit.stdout.contains("root"),
        "stdout mentions the user: {exit:?}"
    );
    assert!(
        !exit.stdout.contains(ADMIN_PASSWORD) && !exit.stderr.contains(ADMIN_PASSWORD),
        "the password is never echoed: {exit:?}"
    );
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    let login = app.login_ok("root", ADMIN_PASSWORD).await;
    assert_eq!(login.claims()["roles"], json!(["admin"]));
    json_response(app.admin_list_users(&login.access_token, "").await, 200).await;
}

#[tokio::test]
async fn user_add_reads_only_the_first_line_of_stdin() {
    let (dir, data) = workdir();
    init_store(&data);

    let exit = user_add(
        dir.path(),
        &data,
        "root",
        &format!("{ADMIN_PASSWORD}\nsomething else entirely\n"),
    );

    assert_success(&exit);
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    app.login_ok("root", ADMIN_PASSWORD).await;
    assert_problem(
        app.login(
            "root",
            &format!("{ADMIN_PASSWORD}\nsomething else entirely"),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn user_add_honours_a_config_file() {
    let (dir, data) = workdir();
    init_store(&data);
    let config = dir.path().join("claimd-admin.toml");
    std::fs::write(
        &config,
        format!("[storage]\npath = {:?}\n", data.to_str().unwrap()),
    )
    .unwrap();
    let mut cmd = claimd_command(dir.path());
    cmd.arg("--config")
        .arg(&config)
        .args(["user", "add", "--admin", "--username", "root"]);

    let exit = run_to_exit_with_stdin(cmd, &format!("{ADMIN_PASSWORD}\n"), EXIT_TIMEOUT);

    assert_success(&exit);
    assert!(
        data.is_dir(),
        "storage.path from the file was used: {exit:?}"
    );
    let mut serve = claimd_command(dir.path());
    serve.arg("--config").arg(&config);
    let server = ClaimdProcess::start(serve);
    let login = server.app().login_ok("root", ADMIN_PASSWORD).await;
    assert_eq!(login.claims()["roles"], json!(["admin"]));
}

#[tokio::test]
async fn user_add_of_a_taken_username_is_refused() {
    let (dir, data) = workdir();
    init_store(&data);
    assert_success(&user_add(
        dir.path(),
        &data,
        "root",
        &format!("{ADMIN_PASSWORD}\n"),
    ));

    let exit = user_add(dir.path(), &data, "root", &format!("{PASSWORD}\n"));

    let line = assert_failed(&exit);
    assert!(
        line.contains("taken"),
        "stderr says the name is taken: {line}"
    );
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    app.login_ok("root", ADMIN_PASSWORD).await;
    assert_problem(
        app.login("root", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn user_add_of_a_name_taken_by_a_registered_user_is_refused() {
    let (dir, data) = workdir();
    init_store(&data);
    {
        let server = ClaimdProcess::start_on(dir.path(), &data);
        server.app().register_ok("root", PASSWORD).await;
        let (status, _, stderr) = server.terminate(Duration::from_secs(20));
        assert!(status.is_some_and(|s| s.success()), "{stderr}");
    }

    let exit = user_add(dir.path(), &data, "Root", &format!("{ADMIN_PASSWORD}\n"));

    let line = assert_failed(&exit);
    assert!(line.contains("taken"), "{line}");
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let login = server.app().login_ok("root", PASSWORD).await;
    assert_eq!(login.claims()["roles"], json!([]), "not promoted");
}

#[tokio::test]
async fn user_add_with_a_short_password_is_refused() {
    let (dir, data) = workdir();
    init_store(&data);

    let exit = user_add(dir.path(), &data, "root", "short\n");

    assert_failed(&exit);
    let server = ClaimdProcess::start_on(dir.path(), &data);
    // The name is still free.
    server.app().register_ok("root", PASSWORD).await;
}

#[tokio::test]
async fn user_add_with_nothing_on_stdin_is_refused() {
    let (dir, data) = workdir();
    init_store(&data);

    let exit = user_add(dir.path(), &data, "root", "");

    assert_failed(&exit);
    let server = ClaimdProcess::start_on(dir.path(), &data);
    server.app().register_ok("root", PASSWORD).await;
}

/// Runs `claimd ARGS` in `cwd` with `env` and a password on stdin.
fn claimd_in(cwd: &Path, env: &[(&str, &Path)], args: &[&str]) -> Exit {
    let mut cmd = claimd_command(cwd);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.args(args);
    run_to_exit_with_stdin(cmd, &format!("{ADMIN_PASSWORD}\n"), EXIT_TIMEOUT)
}

/// Group and world permission bits of everything under `dir`, with its path.
fn loose_entries(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut loose = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            loose.push((entry.path().display().to_string(), mode));
        }
        if meta.is_dir() {
            loose.extend(loose_entries(&entry.path()));
        }
    }
    loose
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Tests of the embedded store's own files (the data directory, its lock, a backup file):
/// nothing to test on PostgreSQL, so `.ci/run`'s PostgreSQL pass skips `::sled_files::`.
mod sled_files {
    use super::*;

    #[tokio::test]
    async fn user_add_while_the_server_runs_is_refused_as_in_use() {
        let (dir, data) = workdir();
        init_store(&data);
        let server = ClaimdProcess::start_on(dir.path(), &data);

        let exit = user_add(dir.path(), &data, "root", &format!("{ADMIN_PASSWORD}\n"));

        let line = assert_one_line_failure(&exit);
        assert!(
            line.contains("in use"),
            "stderr says the store is in use: {line}"
        );
        // The running server is unharmed and has no such user.
        let app = server.app();
        assert_eq!(app.healthz().await.status(), StatusCode::OK);
        assert_problem(
            app.login("root", ADMIN_PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await;
    }

    #[tokio::test]
    async fn offline_commands_refuse_to_create_a_store() {
        let (dir, data) = workdir();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "not a key").unwrap();
        let backup = dir.path().join("backup.claimd");
        let commands: [&[&str]; 5] = [
            &["user", "add", "--admin", "--username", "root"],
            &["keys", "rotate"],
            &["keys", "import", key.to_str().unwrap()],
            &["service", "add", "billing"],
            &["backup", backup.to_str().unwrap()],
        ];

        for args in commands {
            let exit = claimd_in(dir.path(), &[("CLAIMD__STORAGE__PATH", &data)], args);

            let line = assert_one_line_failure(&exit);
            assert!(
                line.contains(&data.to_str().unwrap().to_lowercase())
                    && line.contains("no claimd store"),
                "{args:?}: names the path: {line}"
            );
            assert!(
                !data.join("db").exists() && !data.join("conf").exists(),
                "{args:?} created a store"
            );
        }
    }

    #[tokio::test]
    async fn a_relative_storage_path_in_a_config_file_is_beside_the_file() {
        let (dir, _) = workdir();
        let etc = dir.path().join("etc");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        let config = etc.join("claimd.toml");
        std::fs::write(&config, "[storage]\npath = \"data\"\n").unwrap();
        let data = etc.join("data");

        // The server, started from another directory, makes its store beside the file.
        let mut serve = claimd_command(&elsewhere);
        serve.arg("--config").arg(&config);
        let server = ClaimdProcess::start(serve);
        // Killed rather than stopped: a SIGTERM that arrives before the handler is installed
        // would end the process with the signal, and a clean stop is not what is tested here.
        server.kill9();
        assert!(
            data.join("db").exists() || data.join("conf").exists(),
            "store beside the file"
        );
        assert!(
            !elsewhere.join("data").exists(),
            "nothing in the working directory"
        );

        // A command run from yet another directory reaches that same store.
        let exit = claimd_in(
            dir.path(),
            &[],
            &[
                "--config",
                config.to_str().unwrap(),
                "user",
                "add",
                "--admin",
                "--username",
                "root",
            ],
        );
        assert_success(&exit);
        assert!(
            !dir.path().join("data").exists(),
            "no new store where the command ran"
        );
        let server = ClaimdProcess::start({
            let mut cmd = claimd_command(&elsewhere);
            cmd.arg("--config").arg(&config);
            cmd
        });
        let login = server.app().login_ok("root", ADMIN_PASSWORD).await;
        assert_eq!(login.claims()["roles"], json!(["admin"]));
    }

    #[tokio::test]
    async fn storage_path_from_the_environment_stays_relative_to_the_working_directory() {
        let (dir, _) = workdir();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let config = etc.join("claimd.toml");
        std::fs::write(&config, "[storage]\npath = \"data\"\n").unwrap();

        let mut serve = claimd_command(dir.path());
        serve
            .arg("--config")
            .arg(&config)
            .env("CLAIMD__STORAGE__PATH", "from-env");
        let server = ClaimdProcess::start(serve);
        drop(server);

        assert!(dir.path().join("from-env").is_dir());
        assert!(!etc.join("data").exists());
    }

    #[tokio::test]
    async fn the_data_dir_is_the_owners_alone() {
        let (dir, data) = workdir();
        let server = ClaimdProcess::start_on(dir.path(), &data);
        let app = server.app();
        app.signed_up("alice").await;

        assert_eq!(mode_of(&data), 0o700, "the data dir is 0700");
        assert_eq!(
            loose_entries(&data),
            Vec::new(),
            "nothing group or world accessible"
        );
        let (status, _, stderr) = server.terminate(EXIT_TIMEOUT);
        assert!(status.is_some_and(|s| s.success()), "{stderr}");
        assert_eq!(loose_entries(&data), Vec::new(), "nor after a clean stop");
    }

    #[tokio::test]
    async fn a_loose_data_dir_is_tightened_at_start() {
        use std::os::unix::fs::PermissionsExt as _;
        let (dir, data) = workdir();
        init_store(&data);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(&data).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }

        let server = ClaimdProcess::start_on(dir.path(), &data);

        assert_eq!(mode_of(&data), 0o700);
        assert_eq!(loose_entries(&data), Vec::new());
        drop(server);
    }
}
