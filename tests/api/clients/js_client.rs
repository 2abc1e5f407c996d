//! The JavaScript client (`clients/js`) against a live claimd: this module starts claimd
//! in-process and runs the client's own tests with Node's test runner (`node --test`),
//! handing them the server's URL and the bootstrap admin's credentials in the environment.
//! Node is on every CI machine (`.ci/run` says so), so these are not ignored; the Chromium
//! ones, which need Debian's `chromium` and `npm ci` in `clients/js`, are.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use claimd::config::{MailTransportKind, Settings};

use crate::helpers::{
    require, spawn_app_on_issuer, spawn_app_with, TestApp, ADMIN, ADMIN_PASSWORD,
};

/// How long one `node --test` run may take before it is killed and the test fails.
const NODE_TIMEOUT: Duration = Duration::from_secs(180);

/// `clients/js` in this checkout.
pub fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js")
}

/// Where the Chromium tests find the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Starts claimd with a bootstrap admin after `tweak`.
pub async fn spawn_for_js(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.bootstrap.admin_username = Some(ADMIN.to_string());
        s.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
        tweak(s);
    })
    .await
}

/// Runs `node --test <tests>` in `clients/js` against `app`, with `extra` in the
/// environment, and fails with Node's report unless every test passed.
pub async fn node_test(app: &TestApp, tests: &[&str], extra: &[(&str, String)]) {
    let mut cmd = Command::new("node");
    cmd.current_dir(client_dir())
        .arg("--test")
        .arg("--test-reporter=spec")
        .args(tests)
        .env("CLAIMD_URL", &app.address)
        .env("CLAIMD_ADMIN_USERNAME", ADMIN)
        .env("CLAIMD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("PUPPETEER_SKIP_DOWNLOAD", "1")
        .env("CHROMIUM_PATH", CHROMIUM)
        .stdin(Stdio::null());
    for (key, value) in extra {
        cmd.env(key, value);
    }
    let what = format!("node --test {}", tests.join(" "));
    let (ok, report) = tokio::task::spawn_blocking(move || run_bounded(cmd, NODE_TIMEOUT))
        .await
        .expect("node runner thread");
    assert!(ok, "{what} failed:\n{report}");
}

/// Runs `cmd` to its end or kills it at `timeout`; returns success and its output.
fn run_bounded(mut cmd: Command, timeout: Duration) -> (bool, String) {
    let out = tempfile::tempdir().expect("temp dir for node output");
    let stdout = std::fs::File::create(out.path().join("stdout")).expect("stdout file");
    let stderr = std::fs::File::create(out.path().join("stderr")).expect("stderr file");
    let mut child = match cmd.stdout(stdout).stderr(stderr).spawn() {
        Ok(child) => child,
        Err(err) => {
            return (
                false,
                format!("cannot start node: {err} (is Node 20+ installed?)"),
            )
        }
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap_or_default();
    let report = format!(
        "{}\n--- stderr ---\n{}{}",
        read("stdout"),
        read("stderr"),
        if status.is_none() {
            format!("\n(killed after {timeout:?})")
        } else {
            String::new()
        }
    );
    (status.is_some_and(|s| s.success()), report)
}

/// The client's tests, its mail methods among them: claimd mails to an outbox directory
/// (`test/mail.test.js` reads the links there), with room for every mail they ask for
/// from one client address.
#[tokio::test]
async fn the_js_client_tests_pass_against_a_live_claimd() {
    let outbox = tempfile::tempdir().expect("outbox dir");
    let app = spawn_for_js(|s| {
        s.mail.transport = MailTransportKind::Outbox;
        s.mail.outbox_dir = Some(outbox.path().to_path_buf());
        s.auth.mail_limit.max = 100;
    })
    .await;

    let dir = outbox.path().display().to_string();
    node_test(&app, &["test/"], &[("CLAIMD_OUTBOX", dir)]).await;
}

/// Starts claimd for the browser tests: the demo on (it serves the client module), a
/// bootstrap admin, and the issuer on the port it listens on, so the pages' `Origin` is
/// claimd's own (the refresh cookie's CSRF check wants that).
async fn spawn_for_browser(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on_issuer(|s| {
        s.bootstrap.admin_username = Some(ADMIN.to_string());
        s.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
        s.demo.enabled = true;
        tweak(s);
    })
    .await
}

#[tokio::test]
#[ignore = "needs chromium"]
async fn tabs_share_one_refresh_of_the_cookie_and_nothing_else() {
    require("Debian's chromium", Path::new(CHROMIUM).exists());
    let app = spawn_for_browser(|s| {
        s.tokens.refresh_cookie = true;
        // Plain HTTP on loopback: a Secure cookie would not be stored.
        s.tokens.refresh_cookie_secure = false;
    })
    .await;

    node_test(&app, &["browser/cross-tab.test.js"], &[]).await;
}

#[tokio::test]
#[ignore = "needs chromium"]
async fn the_demo_page_runs_its_story_in_chromium() {
    require("Debian's chromium", Path::new(CHROMIUM).exists());
    // The mailbox panel reads the outbox (in the data directory).
    let app = spawn_for_browser(|s| s.mail.transport = MailTransportKind::Outbox).await;
    let demo_url = app.demo_url.clone().expect("the demo prints its URL");
    let mut extra = vec![("CLAIMD_DEMO_URL", demo_url)];
    if std::env::var_os("CLAIMD_DEMO_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        for (name, file) in [
            ("DEMO_SCREENSHOT", "demo.png"),
            ("DEMO_SCREENSHOT_PHONE", "demo-phone.png"),
        ] {
            extra.push((name, docs.join(file).display().to_string()));
        }
    }

    node_test(&app, &["browser/demo.test.js"], &extra).await;
}
