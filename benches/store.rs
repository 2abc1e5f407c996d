//! Micro-benchmarks of the store-backed steps: the deny-list and claim-version checks on a
//! store holding 1,000,000 deny entries, a verified-token-cache hit, a refresh rotation
//! including its durable write, and evicting 100,000 expired entries.
//! `cargo bench --bench store` (set CLAIMD_BENCH_DENY_ENTRIES to change the 1,000,000).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    reason = "a benchmark's harness stops at the first surprise and measures real time"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use claimd::auth::{Auth, Registration};
use claimd::clock::Clock;
use claimd::config::Settings;
use claimd::domain::UserId;
use claimd::secret::ExposeSecret as _;
use claimd::store::sled::evict_expired;
use claimd::store::{DenyKind, SledStore, Store, UserRecord};
use claimd::telemetry::Metrics;
use claimd::tokens::VerifiedTokenCache;

#[path = "support/claims.rs"]
mod support_claims;
use support_claims::member_claims;

fn id(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[8..].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    id
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn deny_entries() -> u64 {
    std::env::var("CLAIMD_BENCH_DENY_ENTRIES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000)
}

fn user(n: u64) -> UserRecord {
    UserRecord {
        username: format!("user{n}"),
        password_hash: String::new(),
        tenant: None,
        roles: vec!["member".into()],
        plan: "free".into(),
        attrs: serde_json::Map::new(),
        claims_version: 1,
        not_before: 0,
        disabled: false,
        created_at: 0,
        updated_at: 0,
        email: None,
        email_verified: false,
    }
}

fn checks_on_a_large_store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(dir.path(), 16).expect("store opens");
    let entries = deny_entries();
    let started = Instant::now();
    // Spread over one default access-token lifetime (15 minutes of `exp`), as revoked
    // tokens are: about 16 bucket trees of ~65,000 entries each.
    let base = now() + 60;
    let exp_of = |n: u64| base + n % 900;
    for n in 0..entries {
        let exp = exp_of(n);
        store
            .deny(DenyKind::Token, &id(n), exp..=exp)
            .expect("deny");
    }
    store.flush_now().expect("flush");
    eprintln!("filled {entries} deny entries in {:.1?}", started.elapsed());
    let users: Vec<UserId> = (0..1000)
        .map(|n| {
            let user_id = UserId::generate();
            store
                .create_user(user_id, &user(n), None, now())
                .expect("user");
            user_id
        })
        .collect();

    let mut n = 0u64;
    c.bench_function("deny_check/hit (1M entries)", |b| {
        b.iter(|| {
            n = (n + 7919) % entries;
            assert!(store
                .is_denied(DenyKind::Token, &id(n), exp_of(n))
                .expect("read"));
        })
    });
    c.bench_function("deny_check/miss (1M entries)", |b| {
        b.iter(|| {
            n += 1;
            assert!(!store
                .is_revoked(&id(entries + n), &id(entries + n + 1), exp_of(n))
                .expect("read"));
        })
    });
    let empty_dir = tempfile::tempdir().expect("temp dir");
    let empty = SledStore::open(empty_dir.path(), 16).expect("store opens");
    // One entry, so the bucket of the checked `exp` exists: a lookup, not a map miss.
    empty
        .deny(DenyKind::Token, &id(u64::MAX), base..=base)
        .expect("deny");
    c.bench_function("deny_check/miss (1 entry)", |b| {
        b.iter(|| {
            n += 1;
            assert!(!empty
                .is_revoked(&id(entries + n), &id(entries + n + 1), base)
                .expect("read"));
        })
    });
    let mut u = 0usize;
    c.bench_function("claim_version_check (mirror)", |b| {
        b.iter(|| {
            u = (u + 1) % users.len();
            store
                .user_stamp(users[u])
                .expect("store open")
                .expect("stamp")
                .claims_version
        })
    });
}

fn cache_hit(c: &mut Criterion) {
    let cache = VerifiedTokenCache::new(10_000, 30);
    let claims = member_claims("http://127.0.0.1:8080", now());
    let token = format!(
        "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFZERTQSJ9.{}.signature",
        "x".repeat(400)
    );
    cache.insert(&token, Arc::new(claims), now());
    c.bench_function("verified_cache/hit", |b| {
        b.iter(|| cache.get(&token, now()).expect("hit"))
    });
}

fn refresh_rotation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::default();
    settings.storage.path = dir.path().to_path_buf();
    let store = Arc::new(Store::open(dir.path(), 16).expect("store opens"));
    let auth = runtime.block_on(async {
        let ring =
            claimd::auth::keys::load_or_create_key_ring(&store, settings.tokens.algorithm, now())
                .await
                .expect("key ring");
        Auth::new(
            Arc::clone(&store),
            settings,
            ring,
            Arc::new(Metrics::new()),
            Clock::system(),
        )
        .await
        .expect("auth")
    });
    let mut refresh_token = runtime.block_on(async {
        auth.accounts
            .register(Registration {
                username: "bench".into(),
                password: "quiet harbour lantern seventy".into(),
                tenant: None,
                invitation: None,
                roles: Vec::new(),
                email: None,
            })
            .await
            .expect("register");
        let tokens = auth
            .accounts
            .login(
                "bench",
                "quiet harbour lantern seventy".into(),
                [127, 0, 0, 1].into(),
            )
            .await
            .expect("login");
        tokens.refresh_token.expect("refresh token")
    });
    let mut group = c.benchmark_group("refresh");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("rotation incl. durable write", |b| {
        b.iter(|| {
            let answer = runtime
                .block_on(auth.sessions.refresh(refresh_token.expose_secret()))
                .expect("rotation");
            refresh_token = answer.refresh_token.expect("rotated");
        })
    });
    group.finish();
}

fn eviction(c: &mut Criterion) {
    let mut group = c.benchmark_group("eviction");
    group.sample_size(10);
    group.bench_function("100k expired entries", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = SledStore::open(dir.path(), 16).expect("store opens");
                for n in 0..100_000 {
                    let exp = 1_000 + n % 100;
                    store
                        .deny(DenyKind::Token, &id(n), exp..=exp)
                        .expect("deny");
                }
                // On disk first, as they are long before they expire in a server that
                // flushes at every durable write and at least every second.
                store.flush_now().expect("flush");
                let started = Instant::now();
                let report = evict_expired(&store, 10_000, 30).expect("evict");
                total += started.elapsed();
                assert_eq!(report.deny_removed, 100_000);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    cache_hit,
    checks_on_a_large_store,
    refresh_rotation,
    eviction
);
criterion_main!(benches);
