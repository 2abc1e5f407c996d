//! Start-up failures with the real binary: an invalid setting or an unusable data directory
//! stops claimd with a non-zero exit and one line on stderr that names the problem — never a
//! panic, never a server that half-starts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::helpers::{
    claimd_command, copy_dir, run_to_exit, workdir, ClaimdProcess, Exit, PASSWORD,
};

const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Asserts a failed start: non-zero exit, no panic, exactly one non-empty stderr line, and
/// that line mentions one of `mentions` (case-insensitive). Returns the line.
fn assert_startup_failure(exit: &Exit, mentions: &[&str]) -> String {
    let status = exit
        .status
        .unwrap_or_else(|| panic!("claimd still running after {EXIT_TIMEOUT:?}: {exit:?}"));
    assert!(!status.success(), "claimd exited successfully: {exit:?}");
    assert!(
        status.code().is_some(),
        "claimd died from a signal: {exit:?}"
    );
    for output in [&exit.stderr, &exit.stdout] {
        assert!(!output.contains("panicked"), "claimd panicked: {exit:?}");
        assert!(
            !output.contains("RUST_BACKTRACE"),
            "claimd panicked: {exit:?}"
        );
    }
    assert!(
        !exit.stdout.contains("listening on"),
        "claimd started listening despite the error: {exit:?}"
    );
    let lines: Vec<&str> = exit
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line on stderr, got:\n{}",
        exit.stderr
    );
    let line = lines[0].to_lowercase();
    assert!(
        mentions.iter().any(|m| line.contains(&m.to_lowercase())),
        "stderr line should mention one of {mentions:?}: {line}"
    );
    line
}

fn run_with_env(pairs: &[(&str, &str)]) -> Exit {
    let (dir, data) = workdir();
    let mut cmd = claimd_command(dir.path());
    cmd.env("CLAIMD__STORAGE__PATH", &data);
    for (key, value) in pairs {
        cmd.env(key, value);
    }
    run_to_exit(cmd, EXIT_TIMEOUT)
}

fn run_on_data_dir(workdir: &Path, data: &Path) -> Exit {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data);
    run_to_exit(cmd, EXIT_TIMEOUT)
}

/// A SHA-256 over every file under `dir` (its path, length and bytes, in path order) and
/// the names of its directories: equal only if nothing was added, removed or changed.
fn fingerprint(dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut entries = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            let relative = entry.path().strip_prefix(dir).unwrap().to_owned();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
                entries.push((relative, None));
            } else {
                entries.push((relative, Some(std::fs::read(entry.path()).unwrap())));
            }
        }
    }
    entries.sort();
    let mut hasher = Sha256::new();
    for (path, bytes) in entries {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update([0]);
        if let Some(bytes) = bytes {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(&bytes);
        }
    }
    format!("{:x}", hasher.finalize())
}

/// Starts claimd on `data`, which it must refuse, and asserts the directory (and its
/// parent, where a scratch copy is made) is byte for byte as it was. Returns the exit.
fn refused_and_left_alone(workdir: &Path, data: &Path) -> Exit {
    let parent = data.parent().unwrap();
    let before = (fingerprint(data), fingerprint(parent));
    let exit = run_on_data_dir(workdir, data);
    assert!(
        exit.status.is_some_and(|status| !status.success()),
        "claimd was expected to refuse the store: {exit:?}"
    );
    assert_eq!(
        fingerprint(data),
        before.0,
        "the refused store's files changed"
    );
    assert_eq!(
        fingerprint(parent),
        before.1,
        "something was left beside the refused store"
    );
    exit
}

#[test]
fn unknown_algorithm_stops_startup() {
    let exit = run_with_env(&[("CLAIMD__TOKENS__ALGORITHM", "foo")]);

    assert_startup_failure(&exit, &["algorithm"]);
}

#[test]
fn alg_none_is_not_a_configurable_algorithm() {
    let exit = run_with_env(&[("CLAIMD__TOKENS__ALGORITHM", "none")]);

    assert_startup_failure(&exit, &["algorithm"]);
}

#[test]
fn unparsable_duration_stops_startup() {
    let exit = run_with_env(&[("CLAIMD__TOKENS__ACCESS_TTL", "abc")]);

    assert_startup_failure(&exit, &["access_ttl"]);
}

#[test]
fn unparsable_bind_address_stops_startup() {
    let exit = run_with_env(&[("CLAIMD__SERVER__BIND", "not-an-address")]);

    assert_startup_failure(&exit, &["bind", "address"]);
}

#[test]
fn listening_on_every_address_without_an_issuer_stops_startup() {
    let exit = run_with_env(&[
        ("CLAIMD__SERVER__BIND", "0.0.0.0:0"),
        ("CLAIMD__TOKENS__ISSUER", ""),
    ]);

    assert_startup_failure(&exit, &["tokens.issuer"]);
}

#[test]
fn star_cors_origin_with_the_refresh_cookie_stops_startup() {
    let exit = run_with_env(&[
        ("CLAIMD__SERVER__CORS_ORIGINS", "*"),
        ("CLAIMD__TOKENS__REFRESH_COOKIE", "true"),
    ]);

    assert_startup_failure(&exit, &["cors_origins"]);
}

#[test]
fn invalid_on_stale_stops_startup() {
    let exit = run_with_env(&[("CLAIMD__TOKENS__ON_STALE", "sometimes")]);

    assert_startup_failure(&exit, &["on_stale"]);
}

/// A word setting with a word it does not take names every word it does.
#[test]
fn an_invalid_choice_lists_the_allowed_values() {
    for (key, value, allowed) in [
        (
            "CLAIMD__TOKENS__ON_STALE",
            "sometimes",
            &["`reject`", "`reissue`"][..],
        ),
        (
            "CLAIMD__AUTH__REGISTRATION",
            "closed",
            &["`open`", "`admin`"][..],
        ),
        (
            "CLAIMD__STORAGE__BACKEND",
            "mysql",
            &["`sled`", "`postgres`"][..],
        ),
    ] {
        let exit = run_with_env(&[(key, value)]);
        let line = assert_startup_failure(&exit, allowed);
        assert!(line.contains(value), "{line}");
    }
}

#[test]
fn missing_config_file_named_on_the_command_line_stops_startup() {
    let (dir, data) = workdir();
    let mut cmd = claimd_command(dir.path());
    cmd.env("CLAIMD__STORAGE__PATH", &data)
        .arg("--config")
        .arg(dir.path().join("does-not-exist.toml"));

    let exit = run_to_exit(cmd, EXIT_TIMEOUT);

    assert_startup_failure(&exit, &["does-not-exist.toml", "config"]);
}

#[test]
fn malformed_config_file_stops_startup() {
    let (dir, data) = workdir();
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, "[tokens\naccess_ttl = ").unwrap();
    let mut cmd = claimd_command(dir.path());
    cmd.env("CLAIMD__STORAGE__PATH", &data)
        .arg("--config")
        .arg(&config);

    let exit = run_to_exit(cmd, EXIT_TIMEOUT);

    assert_startup_failure(&exit, &["broken.toml", "config"]);
}

/// A store with users registered over a while, stopped cleanly: everything is sealed.
///
/// On sled, a copy of one such store built once per run ([`template_with_many_users`]):
/// registering 40 users with pauses between batches takes seconds, and each test damages
/// a copy of its own, never the template. On PostgreSQL the store lives in a schema named
/// after `data`, which a copied directory would not bring along, so it is built in place.
fn store_with_many_users(workdir: &Path, data: &Path) {
    if crate::backend::on_postgres() {
        build_store_with_many_users(workdir, data);
    } else {
        copy_dir(&template_with_many_users(), data);
    }
}

/// The working directory whose `data` is the store [`store_with_many_users`] copies.
static TEMPLATE: OnceLock<TempDir> = OnceLock::new();

/// The template's data directory: built by the first test that asks for it (the others
/// wait for it), stopped cleanly, and never opened again, only copied. A static is never
/// dropped, so the directory is removed when the test binary exits ([`remove_template`]).
fn template_with_many_users() -> PathBuf {
    TEMPLATE
        .get_or_init(|| {
            let (dir, data) = workdir();
            build_store_with_many_users(dir.path(), &data);
            // SAFETY: `remove_template` takes nothing, cannot unwind, and only removes a
            // directory, which is safe to do while the process exits.
            let registered = unsafe { libc::atexit(remove_template) };
            assert_eq!(registered, 0, "register the template's removal at exit");
            dir
        })
        .path()
        .join("data")
}

/// Removes the template's directory; registered with `atexit` once it exists.
extern "C" fn remove_template() {
    if let Some(dir) = TEMPLATE.get() {
        let _ = std::fs::remove_dir_all(dir.path());
    }
}

/// Builds a store of 40 users at `data`, registered in batches of ten with a pause after
/// each, so that seals pass between them; then stops the server cleanly.
fn build_store_with_many_users(workdir: &Path, data: &Path) {
    let server = ClaimdProcess::start_on(workdir, data);
    let app = server.app();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for n in 0..40 {
            app.register_ok(&format!("user{n}"), PASSWORD).await;
            if n % 10 == 9 {
                // Let a seal or two pass between batches of writes.
                tokio::time::sleep(Duration::from_millis(1_100)).await;
            }
        }
    });
    let (status, _, _) = server.terminate(EXIT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "clean stop");
}

#[test]
fn an_intact_store_starts_and_keeps_every_user() {
    let (dir, data) = workdir();
    store_with_many_users(dir.path(), &data);

    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for n in [0, 19, 39] {
            app.login_ok(&format!("user{n}"), PASSWORD).await;
        }
    });
}

/// Tests of the embedded store's own files (the data directory, its lock, a backup file):
/// nothing to test on PostgreSQL, so `.ci/run`'s PostgreSQL pass skips `::sled_files::`.
mod sled_files {
    use super::*;

    #[test]
    fn data_path_that_is_a_regular_file_stops_startup() {
        let (dir, _) = workdir();
        let file = dir.path().join("data");
        std::fs::write(&file, b"I am a file, not a directory").unwrap();

        let exit = run_on_data_dir(dir.path(), &file);

        assert_startup_failure(&exit, &["storage", &file.display().to_string()]);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"I am a file, not a directory"
        );
    }

    #[test]
    fn data_path_in_a_read_only_directory_stops_startup() {
        let (dir, _) = workdir();
        let read_only = dir.path().join("ro");
        std::fs::create_dir(&read_only).unwrap();
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
        let mut data = read_only.join("data");
        // Root ignores permission bits: fall back to a place no one may create a directory in.
        let probe = read_only.join("probe");
        if std::fs::create_dir(&probe).is_ok() {
            std::fs::remove_dir(&probe).unwrap();
            data = Path::new("/sys/claimd-test-unwritable").join("data");
            eprintln!(
                "running as root: using {} as the unwritable data dir",
                data.display()
            );
        }

        let exit = run_on_data_dir(dir.path(), &data);

        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_startup_failure(&exit, &["storage", &data.display().to_string()]);
    }

    #[test]
    fn corrupt_store_stops_startup() {
        let (dir, data) = workdir();
        {
            let server = ClaimdProcess::start_on(dir.path(), &data);
            let app = server.app();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(app.register_ok("alice", PASSWORD));
            server.kill9();
        }
        let mut corrupted = 0;
        for name in ["conf", "db"] {
            let file = data.join(name);
            if file.is_file() {
                let len = std::fs::metadata(&file).unwrap().len().max(64) as usize;
                let garbage: Vec<u8> = (0..len).map(|i| (i * 7 + 13) as u8 ^ 0xA5).collect();
                std::fs::write(&file, garbage).unwrap();
                corrupted += 1;
            }
        }
        assert!(
            corrupted > 0,
            "expected sled's conf/db files in {}",
            data.display()
        );

        let exit = refused_and_left_alone(dir.path(), &data);

        assert_startup_failure(
            &exit,
            &["storage", "store", "corrupt", &data.display().to_string()],
        );
    }

    /// sled recovers its log up to the first bad checksum and drops the rest silently; claimd
    /// must refuse that rolled-back store rather than serve it.
    #[test]
    fn one_flipped_byte_mid_file_stops_startup() {
        let (dir, data) = workdir();
        store_with_many_users(dir.path(), &data);
        let db = data.join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xFF;
        std::fs::write(&db, bytes).unwrap();

        let exit = refused_and_left_alone(dir.path(), &data);

        assert_startup_failure(&exit, &["damaged", "lost acknowledged writes"]);
        // Refused again on the next try: nothing was accepted in between.
        let again = refused_and_left_alone(dir.path(), &data);
        assert_startup_failure(&again, &["damaged", "lost acknowledged writes"]);
    }

    /// Issue 19: the seal used to move once a second, so damage to the last records before a
    /// kill -9 opened as a store without its last acknowledged registrations. Every commit is
    /// sealed now: a flipped byte in the newest record is refused like any other damage.
    #[test]
    fn a_flipped_byte_in_the_last_records_before_a_kill_stops_startup() {
        let (dir, data) = workdir();
        let server = ClaimdProcess::start_on(dir.path(), &data);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for n in 0..5 {
                server
                    .app()
                    .register_ok(&format!("user{n}"), PASSWORD)
                    .await;
            }
        });
        // No clean stop: the last registration was acknowledged a moment ago.
        server.kill9();
        let db = data.join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let last_written = bytes
            .iter()
            .rposition(|&byte| byte != 0)
            .expect("the log holds records");
        bytes[last_written - 8] ^= 0xFF;
        std::fs::write(&db, bytes).unwrap();

        let exit = refused_and_left_alone(dir.path(), &data);

        assert_startup_failure(&exit, &["damaged", "lost acknowledged writes"]);
    }

    #[test]
    fn a_truncated_store_file_stops_startup() {
        let (dir, data) = workdir();
        store_with_many_users(dir.path(), &data);
        let db = data.join("db");
        let len = std::fs::metadata(&db).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .unwrap()
            .set_len(len / 2)
            .unwrap();

        let exit = refused_and_left_alone(dir.path(), &data);

        assert_startup_failure(&exit, &["damaged", "lost acknowledged writes"]);
    }

    /// Issue 19: with its seal file deleted, a truncated store started with users missing;
    /// a store that has sealed before is now refused without it, the file and the store left
    /// as they were, unless the operator says so (and claimd says it started unchecked).
    #[test]
    fn a_store_without_its_seal_file_stops_startup_unless_accepted() {
        let (dir, data) = workdir();
        store_with_many_users(dir.path(), &data);
        std::fs::remove_file(data.join("claimd.seal")).unwrap();

        let exit = refused_and_left_alone(dir.path(), &data);
        assert_startup_failure(&exit, &["claimd.seal is missing", "accept_missing_seal"]);

        let mut cmd = claimd_command(dir.path());
        cmd.env("CLAIMD__STORAGE__PATH", &data)
            .env("CLAIMD__STORAGE__ACCEPT_MISSING_SEAL", "true");
        let server = ClaimdProcess::start(cmd);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { server.app().login_ok("user7", PASSWORD).await });
        let (status, stdout, stderr) = server.terminate(EXIT_TIMEOUT);
        assert!(status.is_some_and(|s| s.success()), "clean stop\n{stderr}");
        assert!(
            stdout.contains("claimd.seal was missing; opened anyway"),
            "the override is logged: {stdout}"
        );
        // Sealed again: the next start needs no override.
        assert!(data.join("claimd.seal").exists());
        let restarted = ClaimdProcess::start_on(dir.path(), &data);
        rt.block_on(async { restarted.app().login_ok("user7", PASSWORD).await });
    }

    #[test]
    fn a_data_dir_whose_parent_is_missing_stops_startup() {
        let (dir, _) = workdir();
        let data = dir.path().join("no-such-parent").join("data");

        let exit = run_on_data_dir(dir.path(), &data);

        assert_startup_failure(&exit, &["parent directory"]);
        assert!(
            !dir.path().join("no-such-parent").exists(),
            "nothing created"
        );
    }

    #[test]
    fn a_data_dir_in_use_by_another_claimd_stops_startup() {
        let (dir, data) = workdir();
        let _running = ClaimdProcess::start_on(dir.path(), &data);

        let exit = run_on_data_dir(dir.path(), &data);

        assert_startup_failure(&exit, &["in use"]);
    }

    #[test]
    fn a_store_from_a_newer_claimd_stops_startup_and_is_left_alone() {
        let (dir, data) = workdir();
        store_with_many_users(dir.path(), &data);
        {
            // What a later claimd would leave: a schema number this build does not know.
            let db = sled::open(&data).unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert("schema_version", &99u64.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }

        let exit = refused_and_left_alone(dir.path(), &data);

        assert_startup_failure(&exit, &["newer"]);
        let db = sled::open(&data).unwrap();
        let version = db.open_tree("meta").unwrap().get("schema_version").unwrap();
        assert_eq!(
            version.as_deref(),
            Some(&99u64.to_be_bytes()[..]),
            "left as it was"
        );
    }

    #[test]
    fn a_seal_whose_database_files_were_moved_away_stops_startup_and_creates_nothing() {
        let (dir, data) = workdir();
        store_with_many_users(dir.path(), &data);
        for entry in std::fs::read_dir(&data).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "claimd.seal" {
                let path = entry.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(path).unwrap();
                } else {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }

        let exit = refused_and_left_alone(dir.path(), &data);

        assert_startup_failure(&exit, &["removed or moved"]);
    }
}
