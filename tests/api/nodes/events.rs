//! The change feed: `GET /events` (Server-Sent Events) and `GET /events/snapshot`, read
//! the way a verifier reads them, over a real connection to a running claimd.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, header_str, json_response, spawn_app_with_admin, spawn_app_with_admin_on_clock,
    TestApp, Tokens,
};

/// One event as a verifier sees it.
#[derive(Debug)]
struct Event {
    id: Option<u64>,
    event: String,
    data: Value,
}

/// An open `/events` stream.
struct EventStream {
    response: Response,
    buffer: String,
}

/// How the feed's reader proves who it is.
enum Reader<'a> {
    Admin(&'a str),
    Service(&'a str, &'a str),
}

fn feed_request(app: &TestApp, path: &str, reader: &Reader<'_>) -> reqwest::RequestBuilder {
    // The test client's overall timeout would cut a stream short: each read is bounded
    // in `EventStream::next` instead.
    let request = reqwest::Client::new().get(app.url(path));
    match reader {
        Reader::Admin(token) => request.bearer_auth(token),
        Reader::Service(id, secret) => request.basic_auth(id, Some(secret)),
    }
}

async fn open(app: &TestApp, reader: &Reader<'_>, last_event_id: Option<u64>) -> Response {
    let mut request = feed_request(app, "/events", reader).header(ACCEPT, "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    request.send().await.expect("GET /events sent")
}

impl EventStream {
    async fn open(app: &TestApp, reader: &Reader<'_>, last_event_id: Option<u64>) -> EventStream {
        let response = open(app, reader, last_event_id).await;
        assert_eq!(response.status(), 200, "GET /events");
        assert_eq!(
            header_str(response.headers(), CONTENT_TYPE.as_str()).as_deref(),
            Some("text/event-stream")
        );
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (heartbeats included), within `limit`.
    async fn next(&mut self, limit: Duration) -> Event {
        tokio::time::timeout(limit, self.read_event())
            .await
            .unwrap_or_else(|_| panic!("no event within {limit:?}; read so far: {:?}", self.buffer))
    }

    /// The next event that is not a heartbeat.
    async fn next_change(&mut self) -> Event {
        loop {
            let event = self.next(Duration::from_secs(10)).await;
            if event.event != "heartbeat" {
                return event;
            }
        }
    }

    async fn read_event(&mut self) -> Event {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return event;
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

impl EventStream {
    /// Reads until the server ends the stream, within `limit`; the changes (not the
    /// heartbeats) that arrived before the end.
    async fn ends_within(&mut self, limit: Duration) -> Vec<Event> {
        let read = async {
            let mut changes = Vec::new();
            loop {
                while let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if let Some(event) = parse(&block).filter(|e| e.event != "heartbeat") {
                        changes.push(event);
                    }
                }
                match self.response.chunk().await {
                    Ok(Some(chunk)) => self
                        .buffer
                        .push_str(std::str::from_utf8(&chunk).expect("UTF-8")),
                    Ok(None) | Err(_) => return changes,
                }
            }
        };
        tokio::time::timeout(limit, read)
            .await
            .unwrap_or_else(|_| panic!("the stream did not end within {limit:?}"))
    }
}

/// An SSE block; `None` for one without an event (the `retry` hint).
fn parse(block: &str) -> Option<Event> {
    let (mut id, mut event, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = Some(value.parse().expect("a numeric id"));
        } else if let Some(value) = line.strip_prefix("event: ") {
            event = Some(value.to_string());
        } else if let Some(value) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(value).expect("data is JSON"));
        }
    }
    Some(Event {
        id,
        event: event?,
        data: data.expect("an event has data"),
    })
}

async fn signed_up_with_claims(app: &TestApp, name: &str) -> (Tokens, Value) {
    let (_, tokens) = app.signed_up(name).await;
    let claims = tokens.claims();
    (tokens, claims)
}

#[tokio::test]
async fn only_services_and_admins_read_the_feed() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let service = app.create_service_ok(&admin.access_token, "verifier").await;
    let (user, _) = signed_up_with_claims(&app, "alice").await;

    let anonymous = app.client.get(app.url("/events")).send().await.unwrap();
    assert_problem(anonymous, 401, "invalid_client").await;
    let as_user = open(&app, &Reader::Admin(&user.access_token), None).await;
    assert_problem(as_user, 403, "forbidden").await;
    let wrong = open(&app, &Reader::Service(&service.client_id, "wrong"), None).await;
    assert_problem(wrong, 401, "invalid_client").await;
    let snapshot_as_user =
        feed_request(&app, "/events/snapshot", &Reader::Admin(&user.access_token))
            .send()
            .await
            .unwrap();
    assert_problem(snapshot_as_user, 403, "forbidden").await;

    let mut as_service = EventStream::open(
        &app,
        &Reader::Service(&service.client_id, &service.client_secret),
        None,
    )
    .await;
    assert_eq!(as_service.next_change().await.event, "snapshot");
    let mut as_admin = EventStream::open(&app, &Reader::Admin(&admin.access_token), None).await;
    assert_eq!(as_admin.next_change().await.event, "snapshot");
}

#[tokio::test]
async fn a_stream_opens_with_a_snapshot_and_then_carries_each_change_once() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let (alice, claims) = signed_up_with_claims(&app, "alice").await;
    let mut stream = EventStream::open(&app, &Reader::Admin(&admin.access_token), None).await;
    let snapshot = stream.next_change().await;
    assert_eq!(snapshot.event, "snapshot");
    let start = snapshot
        .id
        .expect("the snapshot has the id the stream continues from");
    assert_eq!(snapshot.data["continues_from"], json!(start));

    // The user upgrades: the change is published with the user's new claims version.
    let patched = app
        .patch_me(&alice.access_token, &json!({"plan": "premium"}))
        .await;
    assert_eq!(patched.status(), 200);
    let change = stream.next_change().await;
    assert_eq!(change.event, "token-claims-change");
    assert_eq!(change.data["sub"], claims["sub"]);
    assert_eq!(change.data["uv"], json!(claims["uv"].as_u64().unwrap() + 1));
    assert_eq!(change.data["disabled"], json!(false));
    assert!(change.id.unwrap() > start);

    // Logout ends the session: its tokens are refused through their latest `exp`.
    assert_eq!(app.logout(&alice.access_token).await.status(), 204);
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Event| e.event == "session-revoked") {
        seen.push(stream.next_change().await);
    }
    let revoked = seen.iter().find(|e| e.event == "session-revoked").unwrap();
    assert_eq!(revoked.data["sid"], claims["sid"]);
    assert!(revoked.data["exp"].as_u64().unwrap() >= claims["exp"].as_u64().unwrap());

    // A key rotation tells verifiers to fetch the JWKS again.
    assert_eq!(
        app.rotate_keys(&admin.access_token, None).await.status(),
        200
    );
    let keys = loop {
        let event = stream.next_change().await;
        if event.event == "keys-changed" {
            break event;
        }
        // Logout also denies the presented access token by its own id.
        assert_eq!(event.event, "token-revoked", "{event:?}");
        assert_eq!(event.data["jti"], claims["jti"]);
        seen.push(event);
    };

    let mut ids = vec![change.id.unwrap()];
    ids.extend(seen.iter().map(|e| e.id.unwrap()));
    ids.push(keys.id.unwrap());
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increase: {ids:?}"
    );
}

#[tokio::test]
async fn last_event_id_resumes_right_after_it() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let (alice, _) = signed_up_with_claims(&app, "alice").await;
    let (bob, bob_claims) = signed_up_with_claims(&app, "bob").await;
    let reader = Reader::Admin(&admin.access_token);
    let mut first = EventStream::open(&app, &reader, None).await;
    first.next_change().await;
    app.patch_me(&alice.access_token, &json!({"plan": "premium"}))
        .await;
    let alice_change = first.next_change().await;
    app.patch_me(&bob.access_token, &json!({"plan": "gold"}))
        .await;
    let bob_change = first.next_change().await;
    drop(first);

    // A verifier that saw Alice's change reconnects: Bob's comes next, no snapshot.
    let mut resumed = EventStream::open(&app, &reader, alice_change.id).await;
    let next = resumed.next_change().await;
    assert_eq!(next.id, bob_change.id);
    assert_eq!(next.event, "token-claims-change");
    assert_eq!(next.data["sub"], bob_claims["sub"]);

    let garbage = feed_request(&app, "/events", &reader)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_problem(garbage, 400, "invalid_request").await;

    // An id this server never published (its store restored from an older backup, say):
    // the verifier's state is from another history.
    let ahead = open(&app, &reader, Some(1_000_000)).await;
    let (_, body) = assert_problem(ahead, 410, "events_gone").await;
    assert!(body["detail"].as_str().unwrap().contains("never published"));
}

#[tokio::test]
async fn the_snapshot_holds_every_change_a_token_can_still_meet() {
    let (app, admin) = spawn_app_with_admin(|_| {}).await;
    let (alice, alice_claims) = signed_up_with_claims(&app, "alice").await;
    let (bob, bob_claims) = signed_up_with_claims(&app, "bob").await;
    let (carol, carol_claims) = signed_up_with_claims(&app, "carol").await;
    let sub = |claims: &Value| claims["sub"].as_str().unwrap().to_string();

    app.logout(&alice.access_token).await;
    app.admin_patch_user_ok(
        &admin.access_token,
        &sub(&bob_claims),
        &json!({"roles": ["editor"]}),
    )
    .await;
    let revoked = app
        .client
        .post(app.url("/oauth/revoke"))
        .form(&[("token", carol.access_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let _ = bob;

    let answer = feed_request(
        &app,
        "/events/snapshot",
        &Reader::Admin(&admin.access_token),
    )
    .send()
    .await
    .unwrap();
    let snapshot = json_response(answer, 200).await;
    let sessions = snapshot["revoked_sessions"].as_array().unwrap();
    assert!(
        sessions.iter().any(|s| s["sid"] == alice_claims["sid"]),
        "alice's session: {snapshot}"
    );
    let users = snapshot["users"].as_array().unwrap();
    let bob_state = users
        .iter()
        .find(|u| u["sub"] == bob_claims["sub"])
        .unwrap_or_else(|| panic!("bob moved: {snapshot}"));
    assert_eq!(
        bob_state["uv"],
        json!(bob_claims["uv"].as_u64().unwrap() + 1)
    );
    let tokens = snapshot["revoked_tokens"].as_array().unwrap();
    assert!(
        tokens.iter().any(|t| t["jti"] == carol_claims["jti"]),
        "carol's token: {snapshot}"
    );

    // The stream from there carries only what comes after.
    let from = snapshot["continues_from"].as_u64().unwrap();
    let mut stream = EventStream::open(&app, &Reader::Admin(&admin.access_token), Some(from)).await;
    let (dave, dave_claims) = signed_up_with_claims(&app, "dave").await;
    app.patch_me(&dave.access_token, &json!({"plan": "pro"}))
        .await;
    let next = stream.next_change().await;
    assert_eq!(next.data["sub"], dave_claims["sub"]);
    // Ids only grow: records no verifier needs (dave's new account) are not served.
    assert!(
        next.id.is_some_and(|id| id > from),
        "{:?} after {from}",
        next.id
    );
}

#[tokio::test]
async fn a_quiet_stream_sends_heartbeats_saying_how_far_it_has_read() {
    let (app, admin) = spawn_app_with_admin(|s| {
        s.events.heartbeat = Duration::from_millis(200);
    })
    .await;
    let mut stream = EventStream::open(&app, &Reader::Admin(&admin.access_token), None).await;
    let snapshot = stream.next(Duration::from_secs(5)).await;
    let heartbeat = stream.next(Duration::from_secs(5)).await;
    assert_eq!(heartbeat.event, "heartbeat");
    assert_eq!(heartbeat.id, None, "a heartbeat moves no Last-Event-ID");
    assert_eq!(heartbeat.data["through"], snapshot.data["continues_from"]);
}

#[tokio::test]
async fn an_id_the_log_no_longer_holds_answers_410() {
    let (app, admin) = spawn_app_with_admin_on_clock(|s| {
        s.eviction.interval = Duration::from_millis(100);
    })
    .await;
    let (alice, _) = signed_up_with_claims(&app, "alice").await;
    app.patch_me(&alice.access_token, &json!({"plan": "premium"}))
        .await;
    let reader = Reader::Admin(&admin.access_token);

    // Past the longest access-token life plus leeway, the change is evicted.
    app.advance(Duration::from_secs(3600));
    let admin = app
        .login_ok(crate::helpers::ADMIN, crate::helpers::ADMIN_PASSWORD)
        .await;
    let reader_now = Reader::Admin(&admin.access_token);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = open(&app, &reader_now, Some(0)).await;
        if answer.status() == 410 {
            let (_, body) = assert_problem(answer, 410, "events_gone").await;
            assert!(body["detail"].as_str().unwrap().contains("snapshot"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never evicted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = reader;
    // A new verifier starts from the snapshot and misses nothing that still matters.
    let mut fresh = EventStream::open(&app, &reader_now, None).await;
    assert_eq!(fresh.next_change().await.event, "snapshot");
}

// ---- the reader's right is checked while the stream is open ----

const HEARTBEAT: Duration = Duration::from_millis(200);

/// Long enough for a few heartbeats, far shorter than anything else a test waits for.
const ENDS_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_stream_ends_once_its_service_is_deleted_and_carries_nothing_after() {
    let (app, admin) = spawn_app_with_admin(|s| s.events.heartbeat = HEARTBEAT).await;
    let service = app.create_service_ok(&admin.access_token, "verifier").await;
    let reader = Reader::Service(&service.client_id, &service.client_secret);
    let mut stream = EventStream::open(&app, &reader, None).await;
    assert_eq!(stream.next_change().await.event, "snapshot");
    let (alice, _) = signed_up_with_claims(&app, "alice").await;

    let resp = app
        .delete_service(&admin.access_token, &service.client_id)
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(app.logout(&alice.access_token).await.status(), 204);

    let after = stream.ends_within(ENDS_WITHIN).await;
    assert!(
        after.iter().all(|e| e.event != "session-revoked"),
        "a change made after the service was deleted reached it: {after:?}"
    );
    assert_problem(open(&app, &reader, None).await, 401, "invalid_client").await;
}

/// A second admin: registered, then given the role by `root`.
async fn second_admin(app: &TestApp, root: &Tokens) -> Tokens {
    let (eve, _) = signed_up_with_claims(app, "eve").await;
    let id = eve.claims()["sub"].as_str().expect("sub").to_string();
    app.admin_patch_user_ok(&root.access_token, &id, &json!({"roles": ["admin"]}))
        .await;
    app.login_ok("eve", crate::helpers::PASSWORD).await
}

#[tokio::test]
async fn a_stream_ends_once_its_admin_is_disabled_or_demoted() {
    for change in [json!({"disabled": true}), json!({"roles": []})] {
        let (app, root) = spawn_app_with_admin(|s| s.events.heartbeat = HEARTBEAT).await;
        let eve = second_admin(&app, &root).await;
        let mut stream = EventStream::open(&app, &Reader::Admin(&eve.access_token), None).await;
        assert_eq!(stream.next_change().await.event, "snapshot");

        let id = eve.claims()["sub"].as_str().expect("sub").to_string();
        let resp = app.admin_patch_user(&root.access_token, &id, &change).await;
        assert_eq!(resp.status(), 200, "{change}");

        stream.ends_within(ENDS_WITHIN).await;
    }
}

#[tokio::test]
async fn an_admin_stream_ends_at_its_tokens_exp() {
    let (app, admin) = spawn_app_with_admin_on_clock(|s| s.events.heartbeat = HEARTBEAT).await;
    let mut stream = EventStream::open(&app, &Reader::Admin(&admin.access_token), None).await;
    assert_eq!(stream.next_change().await.event, "snapshot");
    let heartbeat = stream.next(Duration::from_secs(5)).await;
    assert_eq!(heartbeat.event, "heartbeat", "open while the token lives");

    let exp = admin.claims()["exp"].as_u64().expect("exp");
    app.advance_until_past(exp, 0);

    stream.ends_within(ENDS_WITHIN).await;
}
