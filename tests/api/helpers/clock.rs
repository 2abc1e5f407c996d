//! Time in tests: unix seconds on the system clock, and claimd in-process on a
//! [`ManualClock`] that stands still until the test moves it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use claimd::clock::ManualClock;
use claimd::config::Settings;
use claimd::startup::Application;

use super::{test_settings, TestApp, Tokens, ADMIN, ADMIN_PASSWORD};

/// Unix seconds on the system clock.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Starts claimd in-process as [`spawn_app_with`](super::spawn_app_with) does, on a
/// [`ManualClock`] that stands still until the test moves it with [`TestApp::advance`].
/// Background tasks still tick in real time; each tick reads the manual clock.
///
/// The clock starts at the system's time in whole seconds. Everything the server judges by
/// time reads it, access-token `exp` included (`tokens::access` checks it against the
/// clock, not jsonwebtoken's system time), so a test may move it as far as it likes.
pub async fn spawn_app_on_clock(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let manual = ManualClock::starting_at(now_unix());
    let dir = tempfile::tempdir().expect("create temp dir");
    let mut settings = test_settings(&dir.path().join("data"));
    tweak(&mut settings);
    let listener = std::net::TcpListener::bind(&settings.server.bind).expect("bind the listener");
    let app = Application::build_with_listener(settings, listener, manual.clock())
        .await
        .expect("application builds");
    let port = app.port();
    let demo_url = app.demo_url().map(str::to_string);
    tokio::spawn(app.run_until_stopped());
    TestApp {
        clock: Some(manual),
        demo_url,
        ..TestApp::new(port, Some(dir))
    }
}

/// [`spawn_app_with_admin`](super::spawn_app_with_admin) on a manual clock, as
/// [`spawn_app_on_clock`].
pub async fn spawn_app_with_admin_on_clock(tweak: impl FnOnce(&mut Settings)) -> (TestApp, Tokens) {
    let app = spawn_app_on_clock(|s| {
        s.bootstrap.admin_username = Some(ADMIN.to_string());
        s.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
        tweak(s);
    })
    .await;
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    (app, admin)
}

impl TestApp {
    fn manual_clock(&self) -> &ManualClock {
        self.clock
            .as_ref()
            .expect("a server started on a manual clock (spawn_app_on_clock)")
    }

    /// Lets `by` pass on the server's manual clock: wall-clock and monotonic time both move.
    pub fn advance(&self, by: Duration) {
        self.manual_clock().advance(by);
    }

    /// Sets the server's manual wall clock to `unix_secs`, forward or back, as NTP or an
    /// operator does: monotonic time does not move.
    pub fn set_clock(&self, unix_secs: u64) {
        self.manual_clock().set(unix_secs);
    }

    /// Moves the server's manual clock on to `unix_secs + extra_ms` (not back if it is
    /// already past), e.g. just past a token's `exp`.
    pub fn advance_until_past(&self, unix_secs: u64, extra_ms: u64) {
        let target_ms = unix_secs * 1000 + extra_ms;
        let now_ms = self.manual_clock().clock().now_ms();
        self.advance(Duration::from_millis(target_ms.saturating_sub(now_ms)));
    }

    /// Unix seconds on the server's clock: the manual one if it runs on one.
    pub fn now(&self) -> u64 {
        self.clock.as_ref().map_or_else(now_unix, ManualClock::now)
    }
}
