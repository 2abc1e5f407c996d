//! Request bodies over a raw TCP connection, where a client can lie and stall: a declared
//! `Content-Length` over `server.max_body_bytes` is refused with 413 before a byte of the
//! body is read, and a body that stops arriving gets 408 `request_timeout` within
//! `server.body_timeout`, after which the connection is closed.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_with, TestApp};

/// Longest a refusal may take in these tests (the server's own bound is far below it).
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection or `ANSWER_WITHIN` passes; returns what
/// arrived and whether the connection was closed.
async fn read_answer(stream: &mut TcpStream) -> (String, bool) {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&answer).into(), true),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&answer).into(), false),
        }
    }
}

/// The status line's code and the problem's `code` of a raw HTTP/1.1 answer.
fn status_and_code(answer: &str) -> (u16, String) {
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let problem: Value = serde_json::from_str(body).unwrap_or_default();
    (
        status,
        problem["code"].as_str().unwrap_or_default().to_string(),
    )
}

fn head(path: &str, content_length: u64) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: claimd\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_before_the_body_is_read() {
    let app = spawn_app_with(|s| s.server.body_timeout = Duration::from_secs(30)).await;
    for path in [
        "/auth/login",
        "/auth/register",
        "/oauth/introspect",
        "/no/such/path",
    ] {
        let mut stream = connect(&app).await;
        stream
            .write_all(head(path, 1_000_000_000).as_bytes())
            .await
            .unwrap();
        stream.write_all(b"{\"username\":").await.unwrap();
        let started = Instant::now();

        let (answer, closed) = read_answer(&mut stream).await;

        assert_eq!(
            status_and_code(&answer),
            (413, "payload_too_large".into()),
            "{path}: {answer}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path}: answered at once, not after waiting for the body ({:?})",
            started.elapsed()
        );
        assert!(closed, "{path}: the connection is closed after the refusal");
        // The OAuth endpoints answer even this refusal as RFC 6749 §5.2 says.
        let media = if crate::helpers::OAUTH_ENDPOINTS.contains(&path) {
            "application/json"
        } else {
            "application/problem+json"
        };
        assert!(
            answer
                .to_lowercase()
                .contains(&format!("content-type: {media}")),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_within_the_body_timeout() {
    let app = spawn_app_with(|s| s.server.body_timeout = Duration::from_secs(1)).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(head("/auth/login", 100).as_bytes())
        .await
        .unwrap();
    stream
        .write_all(br#"{"username":"alice","password":"#)
        .await
        .unwrap();
    let started = Instant::now();

    let (answer, closed) = read_answer(&mut stream).await;

    assert_eq!(
        status_and_code(&answer),
        (408, "request_timeout".into()),
        "{answer}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "answered after the timeout, not long after: {waited:?}"
    );
    assert!(closed, "the connection is closed: {answer}");
}

#[tokio::test]
async fn a_body_that_trickles_in_past_the_timeout_gets_408_too() {
    let app = spawn_app_with(|s| s.server.body_timeout = Duration::from_secs(1)).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(head("/auth/register", 200).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    // A byte every 200 ms: never idle long, but the whole body would take 40 s.
    let mut answered = String::new();
    for _ in 0..40 {
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
        {
            answered.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || answered.contains("\r\n\r\n") {
                break;
            }
        }
    }
    if !answered.contains("\r\n\r\n") {
        let (rest, _) = read_answer(&mut stream).await;
        answered.push_str(&rest);
    }

    assert_eq!(
        status_and_code(&answered),
        (408, "request_timeout".into()),
        "{answered}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_in_time_is_served_as_before() {
    let app = spawn_app_with(|s| s.server.body_timeout = Duration::from_secs(2)).await;
    let body = br#"{"username":"alice","password":"correct horse battery staple"}"#;
    let mut stream = connect(&app).await;
    stream
        .write_all(head("/auth/register", body.len() as u64).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(&body[10..]).await.unwrap();

    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(ANSWER_WITHIN, stream.read(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}
