//! Revocations are all or nothing, even when the process dies in the middle of one: a
//! logout everywhere killed at a random moment leaves either every session of the user
//! ended (refresh refused *and* access tokens refused) or none, never a session that can
//! no longer refresh while its access token still verifies. Another client refreshes in a
//! loop meanwhile, so that group-commit flushes land in the middle of the revocation.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{workdir, ClaimdProcess, TestApp, Tokens, PASSWORD};

const SESSIONS: usize = 4;
const ROUNDS: u64 = 12;

/// Whether each session's access token verifies and whether its refresh token refreshes.
async fn session_states(app: &TestApp, sessions: &[Tokens]) -> Vec<(bool, bool)> {
    let mut states = Vec::new();
    for session in sessions {
        let verifies = app.me(&session.access_token).await.status() == StatusCode::OK;
        let refreshes = app.refresh(session.refresh()).await.status() == StatusCode::OK;
        states.push((verifies, refreshes));
    }
    states
}

#[tokio::test]
async fn a_logout_everywhere_cut_short_by_a_crash_ends_all_sessions_or_none() {
    let (dir, data) = workdir();
    let mut outcomes = (0, 0);
    for round in 0..ROUNDS {
        let server = ClaimdProcess::start_on(dir.path(), &data);
        let app = server.app();
        let name = format!("user{round}");
        app.register_ok(&name, PASSWORD).await;
        let mut sessions = Vec::new();
        for _ in 0..SESSIONS {
            sessions.push(app.login_ok(&name, PASSWORD).await);
        }

        let (_, busy) = app.signed_up(&format!("busy{round}")).await;
        let busy_app = server.app();
        let busy = tokio::spawn(async move {
            let mut tokens = busy;
            loop {
                let sent = busy_app
                    .client
                    .post(busy_app.url("/auth/refresh-token"))
                    .json(&serde_json::json!({"refresh_token": tokens.refresh()}))
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == StatusCode::OK => {
                        tokens = crate::helpers::token_response(resp).await;
                    }
                    _ => break,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;

        let request = app
            .client
            .post(app.url("/auth/logout-all"))
            .bearer_auth(&sessions[0].access_token)
            .send();
        let request = tokio::spawn(request);
        // Kill at a different moment each round, from before the request lands to after.
        tokio::time::sleep(Duration::from_micros(300 * round)).await;
        server.kill9();
        let _ = request.await;
        let _ = busy.await;

        let restarted = ClaimdProcess::start_on(dir.path(), &data);
        let states = session_states(&restarted.app(), &sessions).await;
        let ended = states
            .iter()
            .filter(|state| **state == (false, false))
            .count();
        let live = states
            .iter()
            .filter(|state| **state == (true, true))
            .count();
        assert!(
            ended == SESSIONS || live == SESSIONS,
            "round {round}: sessions half revoked: {states:?} (verifies, refreshes)"
        );
        if ended == SESSIONS {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
        restarted.kill9();
    }
    eprintln!(
        "{} rounds ended every session, {} ended none",
        outcomes.0, outcomes.1
    );
}
