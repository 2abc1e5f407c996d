//! A stalled disk (issue 19 §4): the data directory's file system is frozen (`fsfreeze`)
//! for 8 s under a load of refreshes. Writes wait for the disk, as they must; everything
//! that needs no write answers throughout, within a second: liveness (`/healthz`), token
//! verification (`/verify`) and `/metrics`. Readiness says 503 once writes have been stuck past its
//! bound, and ready again once the disk is back; then the waiting writes finish and none
//! that was acknowledged is lost.
//!
//! Freezing needs root and a file system of its own (a loop-mounted ext4), so the test is
//! `#[ignore]`d in a plain `cargo test`; `.ci/run` runs it as root with `--include-ignored`.
//! On PostgreSQL the disk is the database's, so it runs on sled only.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{claimd_command, ClaimdProcess, TestApp, PASSWORD};
use crate::storage::loop_disk::LoopDisk;

const CLIENTS: usize = 8;
const FROZEN_FOR: Duration = Duration::from_secs(8);
/// How long an answer that needs no write may take while the disk is frozen.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

fn start(workdir: &Path, data: &Path) -> ClaimdProcess {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .env("CLAIMD__SERVER__WORKERS", "2")
        .env("CLAIMD__CLAIMS__SELF_SERVICE__PLAN", "free,premium");
    ClaimdProcess::start(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs root, a loop device and mkfs.ext4"]
async fn a_frozen_disk_holds_writes_but_not_liveness_or_verification() {
    if crate::backend::on_postgres() {
        eprintln!("skipped on PostgreSQL: its disk is the database's");
        return;
    }
    let disk = LoopDisk::create();
    let workdir = tempfile::tempdir().expect("workdir");
    let server = start(workdir.path(), &disk.mount_point.join("data"));
    let app = server.app();
    let (_, reader) = app.signed_up("reader").await;
    let mut refresh_tokens = Vec::new();
    for client in 0..CLIENTS {
        let (_, login) = app.signed_up(&format!("writer{client}")).await;
        refresh_tokens.push(login.refresh().to_string());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let rotations = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = refresh_tokens
        .into_iter()
        .map(|token| {
            tokio::spawn(rotate_until_stopped(
                server.app(),
                token,
                Arc::clone(&stop),
                Arc::clone(&rotations),
            ))
        })
        .collect();
    // Mixed writes beside the rotations: accounts created, claims changed, sessions
    // ended (transactions over several trees, the change log, deny-list buckets).
    let churners: Vec<_> = (0..CLIENTS)
        .map(|churner| {
            tokio::spawn(churn_until_stopped(
                server.app(),
                churner,
                Arc::clone(&stop),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        rotations.load(Ordering::SeqCst) > 0,
        "the writers rotate before the freeze"
    );

    disk.freeze();
    let frozen_at = Instant::now();
    let rotations_at_freeze = rotations.load(Ordering::SeqCst);
    let mut not_ready_seen = false;
    let mut probes = 0;
    while frozen_at.elapsed() < FROZEN_FOR {
        probes += 1;
        let healthz = timed_get(&app, "/healthz", None).await;
        assert_eq!(
            healthz,
            Some(StatusCode::OK),
            "/healthz at {:?} into the freeze",
            frozen_at.elapsed()
        );
        let verify = timed_get(&app, "/verify", Some(&reader.access_token)).await;
        assert_eq!(
            verify,
            Some(StatusCode::OK),
            "/verify at {:?} into the freeze",
            frozen_at.elapsed()
        );
        let metrics = timed_get(&app, "/metrics", None).await;
        assert_eq!(
            metrics,
            Some(StatusCode::OK),
            "/metrics at {:?} into the freeze",
            frozen_at.elapsed()
        );
        let readyz = timed_get(&app, "/readyz", None).await;
        assert!(
            readyz.is_some(),
            "/readyz answers at {:?} into the freeze",
            frozen_at.elapsed()
        );
        not_ready_seen |= readyz == Some(StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rotations_while_frozen = rotations.load(Ordering::SeqCst) - rotations_at_freeze;
    disk.thaw();

    assert!(probes >= 10, "only {probes} probes in {FROZEN_FOR:?}");
    assert!(
        not_ready_seen,
        "/readyz said ready throughout the stall ({rotations_while_frozen} rotations were acknowledged while frozen)"
    );
    // Ready again, and writing, once the disk is back.
    let deadline = Instant::now() + Duration::from_secs(20);
    while timed_get(&app, "/readyz", None).await != Some(StatusCode::OK) {
        assert!(Instant::now() < deadline, "not ready 20 s after the thaw");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after_thaw = rotations.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        rotations.load(Ordering::SeqCst) > after_thaw,
        "the writers rotate again after the thaw"
    );
    stop.store(true, Ordering::SeqCst);
    let mut last_acknowledged = Vec::new();
    for writer in writers {
        last_acknowledged.push(writer.await.expect("writer"));
    }
    for churner in churners {
        churner.await.expect("churner");
    }
    for (client, token) in last_acknowledged.iter().enumerate() {
        let resp = app.refresh(token).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "writer {client}'s last acknowledged token: {}",
            resp.text().await.unwrap_or_default()
        );
    }
}

/// Rotates `token` until `stop`, counting acknowledged rotations; returns the last
/// acknowledged token. A request waits as long as the disk does (up to a minute).
async fn rotate_until_stopped(
    app: TestApp,
    mut token: String,
    stop: Arc<AtomicBool>,
    rotations: Arc<AtomicUsize>,
) -> String {
    while !stop.load(Ordering::SeqCst) {
        let sent = app
            .client
            .post(app.url("/auth/refresh-token"))
            .json(&serde_json::json!({ "refresh_token": token }))
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        let Ok(resp) = sent else { continue };
        if resp.status() == StatusCode::OK {
            let body: serde_json::Value = resp.json().await.expect("a token response");
            token = body["refresh_token"]
                .as_str()
                .expect("a refresh token")
                .to_string();
            rotations.fetch_add(1, Ordering::SeqCst);
        }
    }
    token
}

/// Registers accounts, logs them in, changes their plan and logs them out, until `stop`.
/// Requests wait as long as the disk does (up to a minute); what they answer is not
/// judged here.
async fn churn_until_stopped(app: TestApp, churner: usize, stop: Arc<AtomicBool>) {
    let patient = |request: reqwest::RequestBuilder| request.timeout(Duration::from_secs(60));
    for round in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let username = format!("churner{churner}round{round}");
        let body = serde_json::json!({ "username": username, "password": PASSWORD });
        let _ = patient(app.client.post(app.url("/auth/register")).json(&body))
            .send()
            .await;
        let Ok(login) = patient(app.client.post(app.url("/auth/login")).json(&body))
            .send()
            .await
        else {
            continue;
        };
        let Ok(tokens) = login.json::<serde_json::Value>().await else {
            continue;
        };
        let Some(access) = tokens["access_token"].as_str() else {
            continue;
        };
        let _ = patient(app.client.patch(app.url("/me")).bearer_auth(access))
            .json(&serde_json::json!({ "plan": "premium" }))
            .send()
            .await;
        let _ = patient(app.client.post(app.url("/auth/logout")).bearer_auth(access))
            .send()
            .await;
    }
}

/// `GET path` (with a bearer token), its status if answered within [`ANSWER_WITHIN`].
async fn timed_get(app: &TestApp, path: &str, bearer: Option<&str>) -> Option<StatusCode> {
    let mut request = app.client.get(app.url(path)).timeout(ANSWER_WITHIN);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.ok().map(|resp| resp.status())
}
