//! The demo page (`demo.enabled`): absent by default, served with a strict CSP when on, its
//! client module the very file of `clients/js`, and its password-less admin session kept to
//! pages of this machine, as is its mailbox. The Chromium run of the page is in `js_client`.

use reqwest::{Method, StatusCode};

use crate::helpers::{assert_problem, header_str, jwt_claims, spawn_app, spawn_app_with, TestApp};

async fn demo_app() -> TestApp {
    spawn_app_with(|s| s.demo.enabled = true).await
}

#[tokio::test]
async fn every_demo_path_is_404_when_the_demo_is_off() {
    let app = spawn_app().await;

    for path in [
        "/demo",
        "/demo/demo.js",
        "/demo/demo.css",
        "/demo/claimd.js",
        "/demo/mailbox",
    ] {
        let resp = app.request(Method::GET, path, None).await;
        assert_problem(resp, 404, "not_found").await;
    }
    let resp = app
        .client
        .post(app.url("/demo/admin-session"))
        .header("X-Requested-With", "claimd")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "not_found").await;
}

#[tokio::test]
async fn the_demo_page_is_served_with_a_strict_csp_and_no_inline_script() {
    let app = demo_app().await;

    let resp = app.request(Method::GET, "/demo", None).await;

    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    assert!(header_str(&headers, "content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = header_str(&headers, "content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(
        header_str(&headers, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/demo/demo.js"></script>"#));
    assert_eq!(
        html.matches("<script").count(),
        1,
        "the only script is the external one"
    );
}

#[tokio::test]
async fn the_demo_serves_the_js_client_unchanged() {
    let app = demo_app().await;

    let resp = app.request(Method::GET, "/demo/claimd.js", None).await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header_str(resp.headers(), "content-type")
        .unwrap()
        .starts_with("text/javascript"));
    let served = resp.text().await.unwrap();
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js/src/claimd.js"),
    )
    .unwrap();
    assert_eq!(served, file);
    for path in ["/demo/demo.js", "/demo/demo.css"] {
        assert_eq!(
            app.request(Method::GET, path, None).await.status(),
            200,
            "{path}"
        );
    }
}

/// The key in the demo URL claimd printed (`…/demo#key=KEY`).
fn demo_key(app: &TestApp) -> String {
    let url = app.demo_url.as_deref().expect("the demo prints its URL");
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{}/demo#key=", app.port)),
        "{url}"
    );
    url.rsplit_once("#key=").expect("a key").1.to_string()
}

/// What the demo page itself sends: its own origin, the CSRF header and the key.
fn from_the_page(app: &TestApp, key: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/demo/admin-session"))
        .header("X-Requested-With", "claimd")
        .header("Origin", format!("http://127.0.0.1:{}", app.port))
        .header("X-Demo-Key", key)
}

#[tokio::test]
async fn the_demo_admin_session_is_an_admin_token_for_this_machines_pages_only() {
    let app = demo_app().await;
    let key = demo_key(&app);
    let url = app.url("/demo/admin-session");

    let bare = app.client.post(&url).send().await.unwrap();
    assert_problem(bare, 403, "forbidden").await;
    let foreign = app
        .client
        .post(&url)
        .header("X-Requested-With", "claimd")
        .header("X-Demo-Key", &key)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_problem(foreign, 403, "forbidden").await;
    let rebound = app
        .client
        .post(&url)
        .header("X-Requested-With", "claimd")
        .header("X-Demo-Key", &key)
        .header("Host", "evil.example")
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_problem(rebound, 403, "forbidden").await;
    // A second Origin after the page's own is not a way around the check.
    let doubled = from_the_page(&app, &key)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_problem(doubled, 403, "forbidden").await;
    let no_origin = app
        .client
        .post(&url)
        .header("X-Requested-With", "claimd")
        .header("X-Demo-Key", &key)
        .send()
        .await
        .unwrap();
    assert_problem(no_origin, 403, "forbidden").await;

    let resp = from_the_page(&app, &key).send().await.unwrap();

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_str(resp.headers(), "cache-control").as_deref(),
        Some("no-store")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(token)["roles"], serde_json::json!(["admin"]));
    let users = app.admin_list_users(token, "").await;
    assert_eq!(
        users.status(),
        StatusCode::OK,
        "the token works as an admin's"
    );
}

/// nginx's `proxy_pass http://127.0.0.1:PORT` forwards a loopback `Host`, and a client
/// far away can set `Origin` and `X-Requested-With` itself: only the key, which it cannot
/// know, keeps it out; a relayed request is refused even with the key.
#[tokio::test]
async fn a_request_through_a_proxy_on_this_host_gets_no_demo_admin_session() {
    let app = demo_app().await;
    let key = demo_key(&app);

    let guessed = from_the_page(&app, "not-the-key").send().await.unwrap();
    assert_problem(guessed, 403, "forbidden").await;
    let without = from_the_page(&app, "").send().await.unwrap();
    assert_problem(without, 403, "forbidden").await;
    for (name, value) in [
        ("X-Forwarded-For", "203.0.113.7"),
        ("Forwarded", "for=203.0.113.7"),
        ("X-Real-IP", "203.0.113.7"),
        ("X-Forwarded-Host", "claimd.example"),
        ("Via", "1.1 nginx"),
    ] {
        let relayed = from_the_page(&app, &key)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_problem(relayed, 403, "forbidden").await;
    }
    // A new start, a new key: the old one opens nothing.
    let other = demo_app().await;
    let stale = from_the_page(&other, &key).send().await.unwrap();
    assert_problem(stale, 403, "forbidden").await;
}

/// A backup holds every key and password hash: the demo's password-less admin may not
/// take one.
#[tokio::test]
async fn the_demo_admin_cannot_download_a_backup() {
    let app = demo_app().await;
    let resp = from_the_page(&app, &demo_key(&app)).send().await.unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();

    let resp = app
        .request(Method::POST, "/admin/backup", Some(token))
        .await;

    assert_problem(resp, 403, "forbidden").await;
}

#[tokio::test]
async fn the_demo_will_not_sign_in_as_a_demo_admin_someone_else_registered() {
    let app = demo_app().await;
    app.register_ok(claimd::auth::DEMO_ADMIN, crate::helpers::PASSWORD)
        .await;

    let resp = from_the_page(&app, &demo_key(&app)).send().await.unwrap();

    assert_problem(resp, 403, "forbidden").await;
}

/// A GET from the page itself: the key and the CSRF header, no `Origin` (a same-origin
/// `GET` has none).
async fn mailbox(app: &TestApp, key: &str) -> reqwest::Response {
    mailbox_with(app, key, &[]).await
}

/// As [`mailbox`], with `extra` headers besides the page's own.
async fn mailbox_with(app: &TestApp, key: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url("/demo/mailbox"))
        .header("X-Requested-With", "claimd")
        .header("X-Demo-Key", key);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The newest mail the mailbox lists once there are `count`, within a few seconds.
async fn wait_for_mails(app: &TestApp, key: &str, count: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let resp = mailbox(app, key).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["transport"], "outbox");
        let mails = body["mails"].as_array().unwrap().clone();
        if mails.len() >= count {
            return mails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mailbox shows {} mails, not {count}: {body}",
            mails.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_demo_mailbox_shows_the_outbox_newest_first_to_the_page_only() {
    let outbox = tempfile::tempdir().unwrap();
    let dir = outbox.path().join("outbox");
    let app = spawn_app_with(|s| {
        s.demo.enabled = true;
        s.mail.transport = claimd::config::MailTransportKind::Outbox;
        s.mail.outbox_dir = Some(dir.clone());
    })
    .await;
    let key = demo_key(&app);
    assert_eq!(
        wait_for_mails(&app, &key, 0).await.len(),
        0,
        "empty at first"
    );
    let resp = app
        .post_json(
            "/auth/register",
            &serde_json::json!({"username": "ada", "password": crate::helpers::PASSWORD,
                                "email": "Ada@Example.org"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    for path in ["/auth/magic-link", "/auth/password/forgot"] {
        let resp = app
            .post_json(path, &serde_json::json!({"email": "ada@example.org"}))
            .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{path}");
        // One at a time, so the two files' times order them.
        wait_for_mails(&app, &key, if path.contains("magic") { 1 } else { 2 }).await;
    }

    let mails = wait_for_mails(&app, &key, 2).await;

    // Sent to the address as the user spelled it; found by it case-insensitively.
    assert_eq!(mails[0]["to"], serde_json::json!(["Ada@Example.org"]));
    let text = mails[0]["text"].as_str().unwrap();
    let marker = "/account/reset-password#token=";
    let token: String = text[text.find(marker).expect(text) + marker.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    assert!(mails[1]["text"]
        .as_str()
        .unwrap()
        .contains("/account/magic#token="));
    assert!(mails[0]["subject"].as_str().unwrap().contains("password"));
    assert!(mails[0]["date"].as_i64().unwrap() > 1_700_000_000);
    let reset = app
        .post_json(
            "/auth/password/reset",
            &serde_json::json!({"token": token, "new_password": "a brand new passphrase 2"}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::OK, "the mailbox's link works");

    // The links are live: only the page, with the key, reads them.
    assert_problem(mailbox(&app, "not-the-key").await, 403, "forbidden").await;
    for refused in [
        ("Origin", "http://evil.example"),
        ("X-Forwarded-For", "203.0.113.7"),
    ] {
        let resp = mailbox_with(&app, &key, &[refused]).await;
        assert_problem(resp, 403, "forbidden").await;
    }
}

#[tokio::test]
async fn without_an_outbox_the_demo_mailbox_is_empty_and_says_why() {
    let app = demo_app().await;

    let resp = mailbox(&app, &demo_key(&app)).await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_str(resp.headers(), "cache-control").as_deref(),
        Some("no-store")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"transport": "none", "mails": []}));
}
