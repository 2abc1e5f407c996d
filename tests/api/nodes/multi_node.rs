//! Several claimd nodes on one PostgreSQL database (issue 13), black-box: two or three
//! servers with the same `storage.postgres_url`, each on its own port with its own data
//! directory, and each request of a scenario sent to another node than the one before.
//!
//! These tests always run on PostgreSQL, whatever `CLAIMD_TEST_BACKEND` says; without a
//! cluster they skip loudly ([`backend::cluster_url`], a failure under `CI`).
//!
//! What they hold the nodes to: a refresh race between nodes has one successor and a late
//! replay revokes the family wherever it lands; a revocation, claim change, tenant change
//! or disabling made on one node is refused (or stale) on every other on the very next
//! request; `max_accounts` holds under registrations spread over every node; one key ring
//! is published and used by all; the change feed of one node carries another's writes; a
//! node killed with SIGKILL loses nothing it acknowledged; a database that goes away
//! turns writes and verification into 503 until it is back, with no restart; and one that
//! goes silent (a relay in the test drops every packet, closing nothing) is noticed as
//! quickly.
//!
//! The very-next-request tests rest on the cross-node acknowledgement (a write answered
//! only once every node whose lease runs applied it, see `store::postgres::node`).
//!
//! The fault test takes a database of its own and makes it refuse connections: the shared
//! `claimd_tests` database holds every other test's servers, whose connections it must not
//! cut.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use claimd::config::{Settings, StorageBackend};
use claimd::startup::Application;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::backend;
use crate::helpers::{
    assert_problem, assert_token_error, claimd_command, header_str, init_test_log, json_response,
    jwks_kids, jwt_kid, now_unix, refresh_parts, refreshed_response, test_settings, token_response,
    ClaimdProcess, TestApp, Tokens, ADMIN, ADMIN_PASSWORD, PASSWORD,
};

/// The reuse-grace window of the refresh race test: short, so that a replay past it comes
/// within the test.
const GRACE: Duration = Duration::from_secs(1);

/// How long a node may take to notice that it lost the database, or to recover once the
/// database is back (the listener backs off up to 2 s between attempts).
const FAULT_WAIT: Duration = Duration::from_secs(15);

// ---- nodes ----

/// Nodes in-process over one schema, and the bootstrap admin's login (made on the first).
struct Cluster {
    nodes: Vec<TestApp>,
    admin: Tokens,
    /// Names the shared schema (see [`backend::postgres_url_for`]).
    _schema: TempDir,
}

impl Cluster {
    /// `n` nodes on a fresh schema of the suite's cluster, each adjusted by `tweak`.
    async fn spawn(n: usize, tweak: impl Fn(&mut Settings)) -> Cluster {
        let schema = tempfile::tempdir().expect("create temp dir");
        let url = backend::postgres_url_for(schema.path());
        Cluster::spawn_on(&url, n, tweak, schema).await
    }

    /// `n` nodes on the database `url` names.
    async fn spawn_on(
        url: &str,
        n: usize,
        tweak: impl Fn(&mut Settings),
        schema: TempDir,
    ) -> Cluster {
        let mut nodes = Vec::with_capacity(n);
        // One after the other: the first creates the schema and the bootstrap admin, the
        // others find both.
        for _ in 0..n {
            nodes.push(spawn_node(url, &tweak).await);
        }
        let admin = nodes[0].login_ok(ADMIN, ADMIN_PASSWORD).await;
        Cluster {
            nodes,
            admin,
            _schema: schema,
        }
    }

    fn admin(&self) -> &str {
        &self.admin.access_token
    }
}

/// One node in-process over the database `url` names, with the bootstrap admin.
async fn spawn_node(url: &str, tweak: &impl Fn(&mut Settings)) -> TestApp {
    init_test_log();
    let dir = tempfile::tempdir().expect("create temp dir");
    let mut settings = test_settings(&dir.path().join("data"));
    settings.storage.backend = StorageBackend::Postgres;
    settings.storage.postgres_url = Some(url.to_string().into());
    settings.storage.postgres_pool = 4;
    settings.bootstrap.admin_username = Some(ADMIN.to_string());
    settings.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
    tweak(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("a node over PostgreSQL builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp::new(port, Some(dir))
}

/// A node as a child process (for the tests that kill one) over the database `url`
/// names, with the bootstrap admin; its working directory lives as long as it.
struct ChildNode {
    process: ClaimdProcess,
    _workdir: TempDir,
}

impl ChildNode {
    async fn start(url: &str) -> ChildNode {
        let url = url.to_string();
        tokio::task::spawn_blocking(move || {
            let workdir = tempfile::tempdir().expect("create temp dir");
            let mut cmd = claimd_command(workdir.path());
            cmd.env("CLAIMD__STORAGE__BACKEND", "postgres")
                .env("CLAIMD__STORAGE__POSTGRES_URL", &url)
                .env("CLAIMD__STORAGE__POSTGRES_POOL", "4")
                .env("CLAIMD__STORAGE__PATH", workdir.path().join("data"))
                .env("CLAIMD__SERVER__WORKERS", "2")
                .env("CLAIMD__BOOTSTRAP__ADMIN_USERNAME", ADMIN)
                .env("CLAIMD__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD);
            ChildNode {
                process: ClaimdProcess::start(cmd),
                _workdir: workdir,
            }
        })
        .await
        .expect("start a child node")
    }

    fn app(&self) -> TestApp {
        self.process.app()
    }
}

/// Two child nodes on a fresh schema, one to kill and one to go on (the schema's
/// directory names it, and lives as long as the caller holds it).
async fn victim_and_survivor() -> (TempDir, ChildNode, ChildNode) {
    let schema = tempfile::tempdir().expect("create temp dir");
    let url = backend::postgres_url_for(schema.path());
    let victim = ChildNode::start(&url).await;
    let survivor = ChildNode::start(&url).await;
    (schema, victim, survivor)
}

// ---- small assertions ----

fn user_id(user: &Value) -> String {
    user["id"]
        .as_str()
        .unwrap_or_else(|| panic!("user id is a string: {user}"))
        .to_string()
}

async fn assert_me_ok(node: &TestApp, token: &str, what: &str) -> Value {
    let resp = node.me(token).await;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{what}: {text}");
    serde_json::from_str(&text).expect("/me answers JSON")
}

/// A 503 `storage_unavailable` problem with `Retry-After`.
async fn assert_storage_unavailable(resp: Response, what: &str) {
    let status = resp.status();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
    let (headers, _) = assert_problem(resp, 503, "storage_unavailable").await;
    let retry_after = header_str(&headers, "retry-after");
    assert!(
        retry_after.is_some_and(|v| v.parse::<u64>().is_ok_and(|secs| secs > 0)),
        "{what}: a 503 for a storage fault says when to retry, got {:?}",
        header_str(&headers, "retry-after")
    );
}

/// A registration answered 201, or 409 `username_taken` when an earlier attempt whose
/// answer was a 503 (outcome unknown) had made the user after all.
async fn assert_created_or_taken(resp: Response) {
    if resp.status() != StatusCode::CREATED {
        assert_problem(resp, 409, "username_taken").await;
    }
}

/// Sends `request` until `done` says its answer is the awaited one, within `limit`; that
/// answer, for the caller's assertions.
async fn poll_until<F, Fut>(
    what: &str,
    limit: Duration,
    mut request: F,
    done: impl Fn(StatusCode) -> bool,
) -> Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let deadline = Instant::now() + limit;
    loop {
        let resp = request().await;
        if done(resp.status()) {
            return resp;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {} after {limit:?}",
            resp.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bound for a write on one node to reach the others without the cross-node
/// acknowledgement: one notification, or one 250 ms poll, with room for a busy machine.
const SECOND: Duration = Duration::from_secs(1);

fn accepted(status: StatusCode) -> bool {
    status == StatusCode::OK
}

fn refused(status: StatusCode) -> bool {
    status != StatusCode::OK
}

fn unavailable_no_more(status: StatusCode) -> bool {
    status != StatusCode::SERVICE_UNAVAILABLE
}

// ---- 0. starting together ----

/// Three nodes started at once on an empty database: the schema is made once under its
/// lock, one bootstrap admin exists, and whatever signing keys the first starts made,
/// every node's tokens verify on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn nodes_starting_together_on_an_empty_database_share_one_admin_and_one_key_ring() {
    let schema = tempfile::tempdir().expect("create temp dir");
    let url = backend::postgres_url_for(schema.path());
    let no_tweak = |_: &mut Settings| {};
    let (a, b, c) = tokio::join!(
        spawn_node(&url, &no_tweak),
        spawn_node(&url, &no_tweak),
        spawn_node(&url, &no_tweak)
    );
    let nodes = [&a, &b, &c];
    let mut logins = Vec::new();
    for node in nodes {
        logins.push(node.login_ok(ADMIN, ADMIN_PASSWORD).await);
    }
    let ids: BTreeSet<String> = logins
        .iter()
        .map(|l| l.claims()["sub"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "one bootstrap admin: {ids:?}");
    let listed = json_response(a.admin_list_users(&logins[0].access_token, "").await, 200).await;
    let admins = listed["users"]
        .as_array()
        .unwrap_or_else(|| panic!("a users array: {listed}"))
        .iter()
        .filter(|u| u["username"] == json!(ADMIN))
        .count();
    assert_eq!(admins, 1, "{listed}");

    for login in &logins {
        let kid = jwt_kid(&login.access_token);
        for node in nodes {
            assert!(
                kid_set(&node.jwks_ok().await).contains(&kid),
                "every node publishes the key {kid} a node signed with"
            );
            assert_me_ok(node, &login.access_token, &format!("a token of kid {kid}")).await;
        }
    }
}

// ---- 1. the refresh race ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn nodes_racing_on_one_refresh_token_get_the_same_successor() {
    let cluster = Cluster::spawn(3, |_| {}).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    a.register_ok("alice", PASSWORD).await;
    let login = b.login_ok("alice", PASSWORD).await;

    // Four presentations on each node, all at once: the holder's tabs behind a load
    // balancer.
    let racers: Vec<_> = (0..12)
        .map(|i| {
            cluster.nodes[i % 3].post_json_task(
                "/auth/refresh-token",
                json!({"refresh_token": login.refresh()}),
            )
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        let resp = racer.await.expect("request task");
        let status = resp.status();
        answers.push((status, resp.json::<Value>().await.expect("a JSON answer")));
    }

    // Every presentation is the race of one holder: none is refused, all get one pair.
    for (status, body) in &answers {
        assert_eq!(
            *status,
            StatusCode::OK,
            "every racer gets the successor: {body}"
        );
    }
    let pairs: Vec<Tokens> = answers
        .into_iter()
        .map(|(_, body)| crate::helpers::parse_tokens(body))
        .collect();
    for pair in &pairs {
        assert_eq!(
            pair.refresh(),
            pairs[0].refresh(),
            "one rotation, one answer"
        );
        assert_eq!(pair.access_token, pairs[0].access_token);
    }
    let successor = &pairs[0];
    assert_eq!(refresh_parts(successor.refresh()).1, 2);
    assert_me_ok(
        c,
        &successor.access_token,
        "the successor on the third node",
    )
    .await;
    let next = token_response(c.refresh(successor.refresh()).await).await;
    assert_eq!(refresh_parts(next.refresh()).1, 3, "the family carries on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_replay_past_the_grace_on_a_third_node_revokes_the_family_everywhere() {
    let cluster = Cluster::spawn(3, |s| s.tokens.refresh_reuse_grace = GRACE).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    c.register_ok("alice", PASSWORD).await;
    let login = b.login_ok("alice", PASSWORD).await;
    let successor = token_response(a.refresh(login.refresh()).await).await;
    assert_me_ok(
        b,
        &successor.access_token,
        "the successor before the replay",
    )
    .await;

    // Past the grace window (and the moment the answer is recorded as acknowledged), the
    // old token again is a replay, wherever it is presented.
    tokio::time::sleep(GRACE + Duration::from_millis(1500)).await;
    assert_problem(c.refresh(login.refresh()).await, 400, "invalid_grant").await;

    assert_token_error(a.me(&successor.access_token).await, "token_revoked").await;
    assert_token_error(b.me(&successor.access_token).await, "token_revoked").await;
    assert_problem(b.refresh(successor.refresh()).await, 400, "invalid_grant").await;
    assert_problem(a.refresh(successor.refresh()).await, 400, "invalid_grant").await;
    assert_token_error(c.me(&successor.access_token).await, "token_revoked").await;
}

// ---- 2. a write on one node, seen by every other on the next request ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_logout_on_one_node_is_refused_by_every_other_on_the_next_request() {
    let cluster = Cluster::spawn(3, |_| {}).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    c.register_ok("alice", PASSWORD).await;
    let login = b.login_ok("alice", PASSWORD).await;
    // Both other nodes have verified (and cached) the token before it is revoked.
    assert_me_ok(b, &login.access_token, "before the logout, on B").await;
    assert_me_ok(c, &login.access_token, "before the logout, on C").await;

    assert_eq!(a.logout(&login.access_token).await.status(), 204);

    assert_token_error(b.me(&login.access_token).await, "token_revoked").await;
    assert_token_error(c.me(&login.access_token).await, "token_revoked").await;
    assert_problem(c.refresh(login.refresh()).await, 400, "invalid_grant").await;
    let verify = b.verify(Some(&login.access_token)).await;
    assert_eq!(verify.status(), StatusCode::UNAUTHORIZED, "/verify on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_claim_change_on_one_node_makes_the_old_token_stale_on_the_others() {
    let cluster = Cluster::spawn(3, |_| {}).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    let alice = c.register_ok("alice", PASSWORD).await;
    let login = b.login_ok("alice", PASSWORD).await;
    assert_me_ok(b, &login.access_token, "before the change, on B").await;

    // The user changes a self-service claim on A.
    let resp = a
        .patch_me(&login.access_token, &json!({"plan": "premium"}))
        .await;
    let (_, fresh) = refreshed_response(resp).await;

    assert_token_error(b.me(&login.access_token).await, "token_stale").await;
    let me = assert_me_ok(c, &fresh.clone(), "the refreshed token on C").await;
    assert_eq!(me["user"]["plan"], json!("premium"), "{me}");

    // An admin changes the user's roles on C: the token of the last change turns stale on
    // A, and a re-mint there carries the new roles.
    assert_me_ok(a, &fresh, "before the admin's change, on A").await;
    let resp = c
        .admin_patch_user(
            cluster.admin(),
            &user_id(&alice),
            &json!({"roles": ["editor"]}),
        )
        .await;
    json_response(resp, 200).await;

    assert_token_error(a.me(&fresh).await, "token_stale").await;
    let remint = token_response(b.refresh_with_access(&fresh).await).await;
    assert_eq!(remint.claims()["roles"], json!(["editor"]));
    assert_eq!(remint.claims()["plan"], json!("premium"));
    assert_me_ok(a, &remint.access_token, "the re-minted token on A").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_tenant_change_on_one_node_reaches_members_verified_on_another() {
    let cluster = Cluster::spawn(3, |_| {}).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    let tenant = json_response(
        c.create_tenant(cluster.admin(), &json!({"name": "Acme"}))
            .await,
        201,
    )
    .await["tenant"]
        .clone();
    let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();
    let resp = b
        .register_in_tenant(cluster.admin(), "alice", PASSWORD, &tenant_id)
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "register into the tenant"
    );
    let member = c.login_ok("alice", PASSWORD).await;
    assert_eq!(member.claims()["tv"], json!(1));
    assert_me_ok(b, &member.access_token, "before the tenant change, on B").await;

    let resp = a
        .patch_tenant(cluster.admin(), &tenant_id, &json!({"plan": "enterprise"}))
        .await;
    assert_eq!(
        json_response(resp, 200).await["tenant"]["version"],
        json!(2)
    );

    assert_token_error(b.me(&member.access_token).await, "token_stale").await;
    let remint = token_response(c.refresh_with_access(&member.access_token).await).await;
    assert_eq!(remint.claims()["tv"], json!(2));
    assert_me_ok(a, &remint.access_token, "the re-minted token on A").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_user_disabled_on_one_node_is_refused_on_another() {
    let cluster = Cluster::spawn(2, |_| {}).await;
    let [a, b] = &cluster.nodes[..] else {
        unreachable!()
    };
    let alice = a.register_ok("alice", PASSWORD).await;
    let login = b.login_ok("alice", PASSWORD).await;
    assert_me_ok(a, &login.access_token, "before disabling, on A").await;

    let resp = b
        .admin_patch_user(
            cluster.admin(),
            &user_id(&alice),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(
        json_response(resp, 200).await["user"]["disabled"],
        json!(true)
    );

    assert_token_error(a.me(&login.access_token).await, "token_revoked").await;
    assert_problem(b.refresh(login.refresh()).await, 400, "invalid_grant").await;
    assert_problem(a.login("alice", PASSWORD).await, 401, "invalid_credentials").await;
}

// ---- 3. max_accounts ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn max_accounts_holds_under_registrations_spread_over_every_node() {
    const SEATS: usize = 5;
    const ATTEMPTS: usize = 30;
    let cluster = Cluster::spawn(3, |_| {}).await;
    let tenant = json_response(
        cluster.nodes[0]
            .create_tenant(
                cluster.admin(),
                &json!({"name": "Race", "max_accounts": SEATS}),
            )
            .await,
        201,
    )
    .await["tenant"]
        .clone();
    let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();

    let racers: Vec<_> = (0..ATTEMPTS)
        .map(|i| {
            cluster.nodes[i % cluster.nodes.len()].send_json_task(
                Method::POST,
                "/auth/register",
                Some(cluster.admin()),
                json!({"username": format!("racer{i:02}"), "password": PASSWORD,
                       "tenant": tenant_id}),
            )
        })
        .collect();
    let (mut created, mut full) = (0, 0);
    for racer in racers {
        let resp = racer.await.expect("request task");
        if resp.status() == StatusCode::CREATED {
            created += 1;
        } else {
            assert_problem(resp, 409, "tenant_full").await;
            full += 1;
        }
    }

    assert_eq!((created, full), (SEATS, ATTEMPTS - SEATS));
    for node in &cluster.nodes {
        let fetched = node.get_tenant_ok(cluster.admin(), &tenant_id).await;
        assert_eq!(fetched["members"], json!(SEATS), "{fetched}");
    }
}

// ---- 4. one key ring ----

fn kid_set(jwks: &Value) -> BTreeSet<String> {
    jwks_kids(jwks).into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn one_key_ring_rotated_on_one_node_is_published_and_used_by_all() {
    const AHEAD: Duration = Duration::from_secs(2);
    let cluster = Cluster::spawn(3, |s| s.keys.publish_ahead = AHEAD).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    let first_kid = jwt_kid(cluster.admin());
    a.register_ok("alice", PASSWORD).await;
    let before = c.login_ok("alice", PASSWORD).await;
    assert_eq!(jwt_kid(&before.access_token), first_kid);

    // A staged rotation on A: every node publishes the key within moments (each reads its
    // key ring again when it applies the change, on a task of its own: that is what
    // `keys.publish_ahead` is for) and signs with it once it is due.
    let staged = a.rotate_keys_ok(cluster.admin(), false).await;
    let staged_kid = staged["kid"].as_str().expect("kid").to_string();
    let signs_from = staged["signs_from"].as_u64().expect("signs_from");
    for node in [b, c] {
        let deadline = Instant::now() + SECOND;
        let mut kids = kid_set(&node.jwks_ok().await);
        while !kids.contains(&staged_kid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            kids = kid_set(&node.jwks_ok().await);
        }
        assert!(
            kids.contains(&staged_kid),
            "published by every node: {kids:?}"
        );
        assert!(
            kids.contains(&first_kid),
            "the old key stays published: {kids:?}"
        );
    }
    let early = b.login_ok("alice", PASSWORD).await;
    let early_iat = early.claims()["iat"].as_u64().expect("iat");
    let expected = if early_iat < signs_from {
        &first_kid
    } else {
        &staged_kid
    };
    assert_eq!(
        &jwt_kid(&early.access_token),
        expected,
        "iat {early_iat}, signs_from {signs_from}"
    );

    let due = Duration::from_secs(signs_from.saturating_sub(now_unix()) + 1);
    assert!(
        due <= AHEAD + Duration::from_secs(2),
        "signs_from is publish_ahead away"
    );
    tokio::time::sleep(due).await;
    let late = b.login_ok("alice", PASSWORD).await;
    assert_eq!(
        jwt_kid(&late.access_token),
        staged_kid,
        "B signs with A's key once due"
    );
    let late_c = c.login_ok("alice", PASSWORD).await;
    assert_eq!(jwt_kid(&late_c.access_token), staged_kid, "C too");

    // An at-once rotation on B: A signs with it as soon as it has read its ring again.
    let now_key = b.rotate_keys_ok(cluster.admin(), true).await;
    let now_kid = now_key["kid"].as_str().expect("kid").to_string();
    for node in [a, c] {
        let deadline = Instant::now() + SECOND;
        while !kid_set(&node.jwks_ok().await).contains(&now_kid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let from_a = a.login_ok("alice", PASSWORD).await;
    assert_eq!(
        jwt_kid(&from_a.access_token),
        now_kid,
        "A signs with B's key at once"
    );
    assert!(kid_set(&c.jwks_ok().await).contains(&now_kid));

    // Tokens of every key and node verify on every node.
    for token in [
        &before.access_token,
        &early.access_token,
        &late.access_token,
        &from_a.access_token,
    ] {
        for node in [a, b, c] {
            assert_me_ok(node, token, &format!("a token of kid {}", jwt_kid(token))).await;
        }
    }
}

// ---- 5. the change feed ----

/// One server-sent event: its name and data (heartbeats included).
struct Event {
    name: String,
    data: Value,
}

/// An open `GET /events` stream.
struct Feed {
    response: Response,
    buffer: String,
}

impl Feed {
    async fn open(node: &TestApp, admin: &str) -> Feed {
        // A client without the test client's overall timeout: each read is bounded instead.
        let response = reqwest::Client::new()
            .get(node.url("/events"))
            .bearer_auth(admin)
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .expect("GET /events sent");
        assert_eq!(response.status(), StatusCode::OK, "GET /events");
        assert_eq!(
            header_str(response.headers(), CONTENT_TYPE.as_str()).as_deref(),
            Some("text/event-stream")
        );
        Feed {
            response,
            buffer: String::new(),
        }
    }

    /// The next event named `name`, within `limit`; the others read on the way.
    async fn until(&mut self, name: &str, limit: Duration) -> (Event, Vec<Event>) {
        let mut passed = Vec::new();
        let found = tokio::time::timeout(limit, async {
            loop {
                let event = self.next().await;
                if event.name == name {
                    return event;
                }
                passed.push(event);
            }
        })
        .await;
        match found {
            Ok(event) => (event, passed),
            Err(_) => panic!(
                "no {name} event within {limit:?}; passed {:?}",
                passed.iter().map(|e| &e.name).collect::<Vec<_>>()
            ),
        }
    }

    async fn next(&mut self) -> Event {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut data) = (None, None);
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_string());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(value).expect("event data is JSON"));
                    }
                }
                if let (Some(name), Some(data)) = (name, data) {
                    return Event { name, data };
                }
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("the stream reads")
                .expect("the stream stays open");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn the_feed_followed_on_one_node_carries_the_writes_of_the_others() {
    let cluster = Cluster::spawn(3, |_| {}).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    a.register_ok("alice", PASSWORD).await;
    let on_a = a.login_ok("alice", PASSWORD).await;
    let on_c = c.login_ok("alice", PASSWORD).await;
    let mut feed = Feed::open(b, cluster.admin()).await;
    feed.until("snapshot", Duration::from_secs(10)).await;

    // A logout on A (with a token A minted, so that no other node's lag is involved)...
    assert_eq!(a.logout(&on_a.access_token).await.status(), 204);
    let (revoked, _) = feed.until("session-revoked", Duration::from_secs(10)).await;
    assert_eq!(revoked.data["sid"], on_a.claims()["sid"]);
    assert!(
        revoked.data["exp"].as_u64().expect("exp") >= on_a.claims()["exp"].as_u64().expect("exp")
    );

    // ...and a claim change on C both reach the feed followed on B.
    let resp = c
        .patch_me(&on_c.access_token, &json!({"plan": "gold"}))
        .await;
    refreshed_response(resp).await;
    let (change, _) = feed
        .until("token-claims-change", Duration::from_secs(10))
        .await;
    let claims = on_c.claims();
    assert_eq!(change.data["sub"], claims["sub"]);
    assert_eq!(
        change.data["uv"],
        json!(claims["uv"].as_u64().expect("uv") + 1)
    );
}

/// Without the cross-node acknowledgement, a write on one node still reaches the others
/// within one notification (or one 250 ms poll): each is awaited here within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn writes_on_one_node_reach_every_other_within_a_second() {
    let cluster = Cluster::spawn(3, |_| {}).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    a.register_ok("alice", PASSWORD).await;
    let login = a.login_ok("alice", PASSWORD).await;
    assert_me_ok(b, &login.access_token, "before the change, on B").await;

    let resp = a
        .patch_me(&login.access_token, &json!({"plan": "gold"}))
        .await;
    let (_, fresh) = refreshed_response(resp).await;
    for node in [b, c] {
        let resp = poll_until(
            "the stale token refused",
            SECOND,
            || node.me(&login.access_token),
            refused,
        )
        .await;
        assert_token_error(resp, "token_stale").await;
        poll_until(
            "the fresh token accepted",
            SECOND,
            || node.me(&fresh),
            accepted,
        )
        .await;
    }

    assert_eq!(a.logout(&fresh).await.status(), 204);
    for node in [b, c] {
        let resp = poll_until(
            "the logged-out token refused",
            SECOND,
            || node.me(&fresh),
            refused,
        )
        .await;
        assert_token_error(resp, "token_revoked").await;
    }

    let key = b.rotate_keys_ok(cluster.admin(), true).await;
    let kid = key["kid"].as_str().expect("kid").to_string();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let remint = token_response(c.refresh_with_access(cluster.admin()).await).await;
        let kids = kid_set(&a.jwks_ok().await);
        if jwt_kid(&remint.access_token) == kid && kids.contains(&kid) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "C signs with B's new key and A publishes it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- 6. a node killed under load ----

/// What the load's clients were told was done.
#[derive(Default)]
struct Acknowledged {
    /// `(username, user id)` of each registration answered 201.
    registered: Vec<(String, String)>,
    /// Sessions whose login and one rotation were answered 200: the rotated pair.
    rotated: Vec<Tokens>,
    /// Logins whose logout was answered 204.
    logged_out: Vec<Tokens>,
}

impl Acknowledged {
    fn counts(&self) -> (usize, usize, usize) {
        (
            self.registered.len(),
            self.rotated.len(),
            self.logged_out.len(),
        )
    }
}

type Shared = std::sync::Arc<std::sync::Mutex<Acknowledged>>;

fn note(acked: &Shared, write: impl FnOnce(&mut Acknowledged)) {
    write(&mut acked.lock().expect("the list of acknowledged writes"));
}

/// A request of the load: the JSON answer when its status is `expected`, `None` when the
/// node did not answer it so (it is dying: the outcome is unknown).
async fn acked_json(request: reqwest::RequestBuilder, expected: StatusCode) -> Option<Value> {
    let resp = request.send().await.ok()?;
    if resp.status() != expected {
        return None;
    }
    resp.json().await.ok()
}

/// Registers and logs in on `node` and then, turn about, rotates the session's refresh
/// token or logs out; notes each write answered 2xx in `acked`; ends at the first
/// request that was not (the node died) or at `stop`.
async fn load(node: TestApp, client: usize, acked: Shared, stop: Instant) {
    for i in 0.. {
        if Instant::now() >= stop {
            return;
        }
        let name = format!("load{client}x{i}");
        let body = json!({"username": name, "password": PASSWORD});
        let register = node.client.post(node.url("/auth/register")).json(&body);
        let Some(user) = acked_json(register, StatusCode::CREATED).await else {
            return;
        };
        note(&acked, |a| {
            a.registered.push((name.clone(), user_id(&user["user"])));
        });
        let login = node.client.post(node.url("/auth/login")).json(&body);
        let Some(login) = acked_json(login, StatusCode::OK).await else {
            return;
        };
        let login = crate::helpers::parse_tokens(login);
        if i % 2 == 1 {
            let refresh = node
                .client
                .post(node.url("/auth/refresh-token"))
                .json(&json!({"refresh_token": login.refresh()}));
            let Some(rotated) = acked_json(refresh, StatusCode::OK).await else {
                return;
            };
            note(&acked, |a| {
                a.rotated.push(crate::helpers::parse_tokens(rotated))
            });
            continue;
        }
        let logout = node
            .client
            .post(node.url("/auth/logout"))
            .bearer_auth(&login.access_token);
        match logout.send().await {
            Ok(resp) if resp.status() == StatusCode::NO_CONTENT => {
                note(&acked, |a| a.logged_out.push(login));
            }
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_node_killed_under_load_loses_nothing_it_acknowledged() {
    const CLIENTS: usize = 6;
    let (_schema, victim, survivor) = victim_and_survivor().await;
    let (a, b) = (victim.app(), survivor.app());

    let acked = Shared::default();
    let stop = Instant::now() + Duration::from_secs(30);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let node = TestApp::new(a.port, None);
            tokio::spawn(load(node, client, acked.clone(), stop))
        })
        .collect();
    // Killed in the thick of it, once writes of each kind have been answered.
    let enough = Instant::now() + Duration::from_secs(20);
    loop {
        let (registered, rotated, logged_out) = acked.lock().expect("acknowledged").counts();
        if registered >= 3 * CLIENTS && rotated >= 5 && logged_out >= 5 {
            break;
        }
        assert!(
            Instant::now() < enough,
            "the load made too little progress: {registered} registrations, {rotated}              rotations, {logged_out} logouts in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = victim.process.pid();
    tokio::task::spawn_blocking(move || victim.process.kill9())
        .await
        .expect("kill the node");
    for client in clients {
        tokio::time::timeout(Duration::from_secs(30), client)
            .await
            .expect("the load ends once its node is gone")
            .expect("load task");
    }

    let acked = std::mem::take(&mut *acked.lock().expect("acknowledged"));
    eprintln!(
        "node {pid} acknowledged (registrations, rotations, logouts) {:?} before SIGKILL",
        acked.counts()
    );
    let admin = b.login_ok(ADMIN, ADMIN_PASSWORD).await;
    for (name, id) in &acked.registered {
        let resp = b.admin_get_user(&admin.access_token, id).await;
        let user = json_response(resp, 200).await;
        assert_eq!(user["user"]["username"], json!(name), "{user}");
    }
    for rotated in &acked.rotated {
        assert_me_ok(
            &b,
            &rotated.access_token,
            "the pair of an acknowledged rotation",
        )
        .await;
        let next = token_response(b.refresh(rotated.refresh()).await).await;
        assert_eq!(next.session_id, rotated.session_id);
        assert_eq!(refresh_parts(next.refresh()).1, 3, "the rotation was kept");
    }
    for tokens in &acked.logged_out {
        assert_token_error(b.me(&tokens.access_token).await, "token_revoked").await;
        assert_problem(b.refresh(tokens.refresh()).await, 400, "invalid_grant").await;
    }
}

/// Issue 19 §9: a node that dies without giving up its lease holds the writes of the
/// others that log something until the lease runs out (up to 5 s; a crash loop pays it on
/// every crash). A refresh logs nothing, and once waited all the same, for the log id of
/// whatever else its node had written. Here a logout on the survivor waits for the dead
/// node's lease while a refresh on the survivor is answered: before the logout, whose wait
/// is counted in `claimd_peer_waits_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_dead_peer_delays_logged_writes_but_never_a_refresh() {
    let (_schema, victim, survivor) = victim_and_survivor().await;
    let node = survivor.app();
    let (_, alice) = node.signed_up("alice").await;
    let (_, bob) = node.signed_up("bob").await;

    tokio::task::spawn_blocking(move || victim.process.kill9())
        .await
        .expect("kill the node");
    let logging_out = {
        let node = survivor.app();
        let token = bob.access_token.clone();
        tokio::spawn(async move { node.logout(&token).await.status() })
    };
    // The dead node renewed its lease at most 250 ms before it died: the logout waits
    // seconds for it to run out, and a moment is enough for it to be waiting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !logging_out.is_finished(),
        "the logout did not wait for the dead node's lease"
    );

    let refreshed = node.refresh(alice.refresh()).await;

    assert_eq!(refreshed.status(), StatusCode::OK);
    assert!(
        !logging_out.is_finished(),
        "the refresh was answered only after the logout: it waited for the dead node too"
    );
    let logged_out = tokio::time::timeout(Duration::from_secs(15), logging_out)
        .await
        .expect("the logout is answered once the dead node's lease has run out")
        .expect("logout task");
    assert_eq!(logged_out, StatusCode::NO_CONTENT);
    let metrics = node.metrics_text().await;
    assert!(
        crate::helpers::metric_sum(&metrics, "claimd_peer_waits_total", &[]) >= 1.0,
        "the logout's wait is counted"
    );
    assert!(crate::helpers::metric_sum(&metrics, "claimd_peer_wait_milliseconds_total", &[]) > 0.0);
}

// ---- 7. the database going away ----

/// A database of this test's own on the suite's cluster, dropped (connections and all)
/// when this goes out of scope.
struct OwnDatabase {
    cluster: String,
    name: String,
    url: String,
}

impl OwnDatabase {
    fn create(cluster: &str) -> OwnDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!("claimd_mn_{}_{nanos}", std::process::id());
        psql(cluster, &format!("CREATE DATABASE {name}"));
        let url = with_database(cluster, &name);
        OwnDatabase {
            cluster: cluster.to_string(),
            name,
            url,
        }
    }

    /// Refuses new connections and ends every open one: the database is gone for the
    /// nodes until [`OwnDatabase::come_back`].
    fn go_away(&self) {
        psql(
            &self.cluster,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.name),
        );
        self.cut_connections();
    }

    fn come_back(&self) {
        psql(
            &self.cluster,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name),
        );
    }

    /// Ends every connection the nodes have to this database, as a restart of the server
    /// would (the server's own workers on it, autovacuum's, are not ours to end).
    fn cut_connections(&self) {
        psql(
            &self.cluster,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND usename = current_user AND pid <> pg_backend_pid()",
                self.name
            ),
        );
    }
}

impl Drop for OwnDatabase {
    fn drop(&mut self) {
        let _ = run_psql(
            &self.cluster,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// `url` (a `postgres://…/database` URL) naming `database` instead.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = base[authority..]
        .find('/')
        .map_or(base, |slash| &base[..authority + slash]);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

fn run_psql(url: &str, statement: &str) -> Result<(), String> {
    let out = Command::new("timeout")
        .args([
            "20",
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            statement,
        ])
        .output()
        .map_err(|err| format!("cannot run psql: {err}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn psql(url: &str, statement: &str) {
    if let Err(err) = run_psql(url, statement) {
        panic!("psql {statement:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn writes_and_verification_answer_503_while_the_database_is_gone_and_recover_alone() {
    let cluster_url = backend::cluster_url();
    let database = OwnDatabase::create(&cluster_url);
    let anchor = tempfile::tempdir().expect("create temp dir");
    let cluster = Cluster::spawn_on(&database.url, 2, |_| {}, anchor).await;
    let [a, b] = &cluster.nodes[..] else {
        unreachable!()
    };
    a.register_ok("alice", PASSWORD).await;
    let alice = b.login_ok("alice", PASSWORD).await;
    assert_me_ok(a, &alice.access_token, "before any fault").await;

    // Every connection ends, as when the database restarts: the nodes carry on by
    // themselves.
    database.cut_connections();
    // A write whose connection was cut under it may answer 503 (its outcome unknown);
    // its retry then finds the user made, or makes it.
    let resp = poll_until(
        "a write after the connections were cut",
        FAULT_WAIT,
        || a.register("bob", PASSWORD),
        unavailable_no_more,
    )
    .await;
    assert_created_or_taken(resp).await;
    poll_until(
        "verification after the connections were cut",
        FAULT_WAIT,
        || b.me(&alice.access_token),
        accepted,
    )
    .await;

    // The database goes away: verification stops trusting memory it cannot vouch for,
    // and writes are refused as storage faults.
    database.go_away();
    let resp = poll_until(
        "verification without the database",
        FAULT_WAIT,
        || b.me(&alice.access_token),
        refused,
    )
    .await;
    assert_storage_unavailable(resp, "verification on B without the database").await;
    let resp = poll_until(
        "verification on A without the database",
        FAULT_WAIT,
        || a.me(&alice.access_token),
        refused,
    )
    .await;
    assert_storage_unavailable(resp, "verification on A without the database").await;
    assert_storage_unavailable(a.register("carol", PASSWORD).await, "a registration on A").await;
    assert_storage_unavailable(b.logout(&alice.access_token).await, "a logout on B").await;
    assert_storage_unavailable(b.refresh(alice.refresh()).await, "a refresh on B").await;
    for node in [a, b] {
        assert_eq!(
            node.readyz().await.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready without the database"
        );
    }

    // Back: both kinds of request recover with no restart.
    database.come_back();
    poll_until(
        "verification once the database is back",
        FAULT_WAIT,
        || b.me(&alice.access_token),
        accepted,
    )
    .await;
    let resp = poll_until(
        "a write once the database is back",
        FAULT_WAIT,
        || a.register("carol", PASSWORD),
        unavailable_no_more,
    )
    .await;
    assert_created_or_taken(resp).await;
    // The refresh refused during the outage took nothing: the same token rotates now.
    let rotated = token_response(a.refresh(alice.refresh()).await).await;
    assert_eq!(refresh_parts(rotated.refresh()).1, 2);
    let carol = b.login_ok("carol", PASSWORD).await;
    assert_me_ok(a, &carol.access_token, "a login made after the recovery").await;
    // The nodes follow each other's writes again.
    assert_eq!(b.logout(&alice.access_token).await.status(), 204);
    let resp = poll_until(
        "the logout on B reaching A",
        SECOND,
        || a.me(&alice.access_token),
        refused,
    )
    .await;
    assert_token_error(resp, "token_revoked").await;
    for node in [a, b] {
        assert_eq!(node.readyz().await.status(), StatusCode::OK, "ready again");
    }
}

// ---- 7b. a database that goes silent ----

/// A TCP relay between nodes and the database that can go silent: while frozen it
/// forwards nothing either way and closes nothing, as a network that drops packets does.
struct Relay {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(pipe(in_read, out_write, gate.clone()));
                tokio::spawn(pipe(out_read, in_write, gate.clone()));
            }
        });
        Relay { port, frozen, task }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, dropping what arrives while `frozen`.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if frozen.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Where `url` (`postgres://user:password@host:port/…`) names its `host:port`.
fn address_range(url: &str) -> std::ops::Range<usize> {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let host = url[authority..]
        .find('@')
        .map_or(authority, |at| authority + at + 1);
    let end = url[host..]
        .find(['/', '?'])
        .map_or(url.len(), |end| host + end);
    host..end
}

/// The `host:port` `url` points at.
fn address_of(url: &str) -> &str {
    &url[address_range(url)]
}

/// `url` pointing at `address` instead.
fn with_address(url: &str, address: &str) -> String {
    let range = address_range(url);
    format!("{}{address}{}", &url[..range.start], &url[range.end..])
}

#[test]
fn a_url_can_point_at_another_address() {
    assert_eq!(
        with_address("postgres://u:p@127.0.0.1:55432/db?x=1", "127.0.0.1:9"),
        "postgres://u:p@127.0.0.1:9/db?x=1"
    );
    assert_eq!(
        with_address("postgres://h:1/db", "k:2"),
        "postgres://k:2/db"
    );
    assert_eq!(address_of("postgres://u:p@h:5/db"), "h:5");
}

/// One node straight on a fresh schema (B) and one through a [`Relay`] (A), with alice
/// logged in on B and known to A.
async fn relayed_pair() -> (Cluster, TestApp, Relay, Tokens) {
    let cluster_url = backend::cluster_url();
    let schema = tempfile::tempdir().expect("create temp dir");
    let direct = backend::postgres_url_for(schema.path());
    let relay = Relay::start(address_of(&cluster_url).to_string()).await;
    let relayed = with_address(&direct, &format!("127.0.0.1:{}", relay.port));
    let cluster = Cluster::spawn_on(&direct, 1, |_| {}, schema).await;
    let a = spawn_node(&relayed, &|_: &mut Settings| {}).await;
    let b = &cluster.nodes[0];
    b.register_ok("alice", PASSWORD).await;
    let alice = b.login_ok("alice", PASSWORD).await;
    poll_until(
        "A knows alice",
        SECOND,
        || a.verify(Some(&alice.access_token)),
        accepted,
    )
    .await;
    (cluster, a, relay, alice)
}

/// A node whose database goes silent (no error, no closed connection: packets dropped)
/// stops vouching for its memory within its trust window (2 s after its last renewal),
/// not at a read timeout; a write made meanwhile on another node is answered only once
/// the silent node's lease has run out, so the silent node never accepts what the other
/// node has acknowledged revoking.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_node_whose_database_goes_silent_stops_trusting_its_memory_within_seconds() {
    const TRUST_BOUND: Duration = Duration::from_secs(3);
    let (cluster, a, relay, alice) = relayed_pair().await;
    let b = &cluster.nodes[0];

    relay.freeze(true);
    let silent = Instant::now();
    let resp = poll_until(
        "A's verification once its database went silent",
        FAULT_WAIT,
        || a.verify(Some(&alice.access_token)),
        refused,
    )
    .await;
    let trusted = silent.elapsed();
    assert_storage_unavailable(resp, "verification on the silent node").await;
    assert!(
        trusted <= TRUST_BOUND,
        "the silent node went on answering from memory for {trusted:?}"
    );
    assert_eq!(b.logout(&alice.access_token).await.status(), 204);
    assert_storage_unavailable(
        a.verify(Some(&alice.access_token)).await,
        "the silent node, once B acknowledged the logout",
    )
    .await;

    relay.freeze(false);
    let resp = poll_until(
        "A once its database speaks again",
        FAULT_WAIT,
        || a.verify(Some(&alice.access_token)),
        unavailable_no_more,
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "the logout made on B"
    );
}

/// A request that reads the database on a node whose database went silent answers 503
/// within a bound (the pool's wait, a statement's), rather than hanging until the client
/// gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL"]
async fn a_request_reading_a_silent_database_answers_503_within_seconds() {
    const BOUND: Duration = Duration::from_secs(12);
    let (_cluster, a, relay, alice) = relayed_pair().await;
    // The pool holds a connection that has served a read: the usual state of a busy node.
    assert_me_ok(&a, &alice.access_token, "GET /me before the silence").await;
    relay.freeze(true);

    let started = Instant::now();
    let answer = reqwest::Client::new()
        .get(a.url("/me"))
        .bearer_auth(&alice.access_token)
        .timeout(BOUND)
        .send()
        .await;
    let took = started.elapsed();
    let resp = answer.unwrap_or_else(|err| {
        panic!("GET /me on the silent node had no answer within {BOUND:?} ({took:?}): {err}")
    });
    assert_storage_unavailable(resp, "GET /me on the silent node").await;

    relay.freeze(false);
    poll_until(
        "GET /me once the database speaks again",
        FAULT_WAIT,
        || a.me(&alice.access_token),
        accepted,
    )
    .await;
}
