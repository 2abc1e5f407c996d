//! The settings every test server starts from, in-process or as a child process: a fixed
//! issuer, a few plans users may choose for themselves, and no registration limit from
//! 127.0.0.1; on a PostgreSQL run, a schema of the store's own (`crate::backend`).

use std::path::Path;
use std::time::Duration;

use claimd::config::Settings;

/// The issuer of test servers, in-process or child: fixed, since each restart on port 0
/// gets a new port (and an unset issuer follows the port).
pub const TEST_ISSUER: &str = "http://127.0.0.1:8080";

/// The plans tests move users between with `PATCH /me`.
pub const TEST_PLANS: [&str; 6] = ["free", "premium", "gold", "pro", "enterprise", "x"];

/// The base every in-process test server starts from: DESIGN.md's defaults, except that
/// users may set their plan to one of [`TEST_PLANS`] (the shipped default opens no
/// self-service field: `tokens::claim_changes::self_service_opens_nothing_by_default`
/// holds it to that) and registrations from 127.0.0.1 are not limited (`rate_limit` tests
/// set the limit they check).
pub fn test_settings(data: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".to_string();
    settings.server.workers = Some(2);
    settings.storage.path = data.to_path_buf();
    if crate::backend::on_postgres() {
        settings.storage.backend = claimd::config::StorageBackend::Postgres;
        settings.storage.postgres_url = Some(crate::backend::postgres_url_for(data).into());
        // Hundreds of servers share one cluster in a run.
        settings.storage.postgres_pool = 4;
    }
    settings.tokens.issuer = TEST_ISSUER.to_string();
    settings.claims.self_service = allow_plans(&TEST_PLANS);
    settings.auth.register_limit = claimd::config::LoginAttempts {
        max: 100_000,
        window: Duration::from_secs(1),
    };
    // Likewise mail requests; `mail::limits` sets its own budget.
    settings.auth.mail_limit = claimd::config::LoginAttempts {
        max: 100_000,
        window: Duration::from_secs(1),
    };
    settings
}

/// A `claims.self_service` table that lets users choose among `plans` only.
pub fn allow_plans(plans: &[&str]) -> std::collections::BTreeMap<String, Vec<String>> {
    std::collections::BTreeMap::from([(
        "plan".to_string(),
        plans.iter().map(|p| (*p).to_string()).collect(),
    )])
}
