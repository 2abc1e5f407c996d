//! claimd in-process: the real `Application` on `127.0.0.1:0`, with a temporary data
//! directory of its own, on the test's tokio runtime. Variants start it with a bootstrap
//! admin already logged in, or with `tokens.issuer` set to its own URL for clients that
//! follow the discovery document. The same on a manual clock is in `clock`.

use claimd::clock::Clock;
use claimd::config::Settings;
use claimd::startup::Application;

use super::{init_test_log, test_settings, TestApp, Tokens};

/// Starts claimd in-process with the defaults of DESIGN.md's configuration table.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts claimd in-process after `tweak` has adjusted the settings (short TTLs, small
/// limits, another algorithm...). Bind address, workers and data dir are set before `tweak`
/// runs, so it may override them too.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_log();
    let dir = tempfile::tempdir().expect("create temp dir");
    let mut settings = test_settings(&dir.path().join("data"));
    tweak(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let port = app.port();
    let demo_url = app.demo_url().map(str::to_string);
    tokio::spawn(app.run_until_stopped());
    TestApp {
        demo_url,
        ..TestApp::new(port, Some(dir))
    }
}

/// The bootstrap admin of [`spawn_app_with_admin`].
pub const ADMIN: &str = "root";
/// [`ADMIN`]'s password.
pub const ADMIN_PASSWORD: &str = "the admin's own passphrase";

/// Starts claimd in-process with a bootstrap admin ([`ADMIN`], [`ADMIN_PASSWORD`]) and
/// returns the app and the admin's login.
pub async fn spawn_app_with_admin(tweak: impl FnOnce(&mut Settings)) -> (TestApp, Tokens) {
    let app = spawn_app_with(|s| {
        s.bootstrap.admin_username = Some(ADMIN.to_string());
        s.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
        tweak(s);
    })
    .await;
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    (app, admin)
}

/// Starts claimd in-process on a listener bound before the settings are made, with
/// `tokens.issuer` set to the server's real URL (`http://127.0.0.1:PORT`), so discovery
/// documents and JWKS clients that follow `jwks_uri` reach this very server.
pub async fn spawn_app_on_issuer(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_log();
    let dir = tempfile::tempdir().expect("create temp dir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("listener address").port();
    let mut settings = test_settings(&dir.path().join("data"));
    settings.server.bind = format!("127.0.0.1:{port}");
    settings.tokens.issuer = format!("http://127.0.0.1:{port}");
    tweak(&mut settings);
    let app = Application::build_with_listener(settings, listener, Clock::system())
        .await
        .expect("application builds");
    assert_eq!(app.port(), port, "serves on the listener it was given");
    let demo_url = app.demo_url().map(str::to_string);
    tokio::spawn(app.run_until_stopped());
    TestApp {
        demo_url,
        ..TestApp::new(port, Some(dir))
    }
}
