//! Set-up through the public API, outside any measured window: a service credential for
//! introspection (the bootstrap admin creates it), users registered with
//! `POST /auth/register`, and sessions opened with `POST /auth/login`. Registration and
//! login are argon2-bound, so they run on a few connections in parallel.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tokio::time::timeout;

use crate::flows::{login_request, token_pair, Account, Session};
use crate::http::{write_request, Conn, Response};
use crate::server::{ADMIN_PASSWORD, ADMIN_USERNAME};

/// Connections the set-up uses at once.
const PARALLEL: usize = 8;
/// Longest one set-up request may take.
const TIMEOUT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "bench password 1234";

/// One request on a fresh or reused connection, bounded in time.
async fn call(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    request: &[u8],
) -> Result<Response, String> {
    let attempt = async {
        let mut current = match conn.take() {
            Some(current) => current,
            None => Conn::connect(addr)
                .await
                .map_err(|err| format!("connect: {err}"))?,
        };
        let response = current.exchange(request).await?;
        if !response.close {
            *conn = Some(current);
        }
        Ok(response)
    };
    timeout(TIMEOUT, attempt)
        .await
        .map_err(|_| format!("no answer within {TIMEOUT:?}"))?
}

async fn login(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    account: &Account,
) -> Result<Session, String> {
    let mut request = Vec::new();
    login_request(&mut request, account);
    let response = call(conn, addr, &request).await?;
    token_pair(&response).map_err(|err| format!("login {}: {err}", account.username))
}

async fn register(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    account: &Account,
) -> Result<(), String> {
    let body = json!({ "username": account.username, "password": account.password });
    let mut request = Vec::new();
    write_request(
        &mut request,
        "POST",
        "/auth/register",
        &[],
        Some(("application/json", body.to_string().as_bytes())),
    );
    let response = call(conn, addr, &request).await?;
    if response.status == 201 {
        Ok(())
    } else {
        Err(format!(
            "register {}: status {}: {}",
            account.username,
            response.status,
            response.snippet()
        ))
    }
}

/// Logs the bootstrap admin in and creates a service credential; returns the
/// `Authorization: Basic …` value for it.
///
/// # Errors
/// Any unexpected answer.
pub async fn service_credential(addr: SocketAddr) -> Result<String, String> {
    let mut conn = None;
    let admin = Account {
        username: ADMIN_USERNAME.into(),
        password: ADMIN_PASSWORD.into(),
    };
    let session = login(&mut conn, addr, &admin).await?;
    let mut request = Vec::new();
    write_request(
        &mut request,
        "POST",
        "/admin/services",
        &[("Authorization", &format!("Bearer {}", session.access))],
        Some(("application/json", br#"{"name":"bench"}"#)),
    );
    let response = call(&mut conn, addr, &request).await?;
    if response.status != 201 {
        return Err(format!(
            "POST /admin/services: status {}: {}",
            response.status,
            response.snippet()
        ));
    }
    let body = response.json()?;
    let field = |name: &str| {
        body.get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("POST /admin/services answer without `{name}`"))
    };
    let pair = format!("{}:{}", field("client_id")?, field("client_secret")?);
    Ok(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// Runs `work` for every item on [`PARALLEL`] connections, keeping the input order.
async fn in_parallel<T, R, F, Fut>(
    addr: SocketAddr,
    items: Vec<T>,
    work: F,
) -> Result<Vec<R>, String>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(Option<Conn>, SocketAddr, T) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = (Option<Conn>, Result<R, String>)> + Send,
{
    let mut lanes: Vec<Vec<(usize, T)>> = (0..PARALLEL).map(|_| Vec::new()).collect();
    let total = items.len();
    for (n, item) in items.into_iter().enumerate() {
        lanes[n % PARALLEL].push((n, item));
    }
    let tasks: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            tokio::spawn(async move {
                let mut conn = None;
                let mut done = Vec::with_capacity(lane.len());
                for (n, item) in lane {
                    let (back, result) = work(conn, addr, item).await;
                    conn = back;
                    done.push((n, result?));
                }
                Ok::<_, String>(done)
            })
        })
        .collect();
    let mut results: Vec<Option<R>> = (0..total).map(|_| None).collect();
    for task in tasks {
        let done = task.await.map_err(|err| format!("set-up task: {err}"))??;
        for (n, result) in done {
            results[n] = Some(result);
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// Registers `count` new users named `{prefix}{n}` and logs each in once.
///
/// # Errors
/// Any unexpected answer.
pub async fn new_users(
    addr: SocketAddr,
    prefix: &str,
    first: usize,
    count: usize,
) -> Result<Vec<(Account, Session)>, String> {
    let accounts: Vec<Account> = (first..first + count)
        .map(|n| Account {
            username: format!("{prefix}{n}"),
            password: PASSWORD.into(),
        })
        .collect();
    in_parallel(addr, accounts, |mut conn, addr, account| async move {
        let outcome = async {
            register(&mut conn, addr, &account).await?;
            let session = login(&mut conn, addr, &account).await?;
            Ok((account, session))
        }
        .await;
        (conn, outcome)
    })
    .await
}

/// Opens one more session for each account.
///
/// # Errors
/// Any unexpected answer.
pub async fn sessions(addr: SocketAddr, accounts: Vec<Account>) -> Result<Vec<Session>, String> {
    in_parallel(addr, accounts, |mut conn, addr, account| async move {
        let outcome = login(&mut conn, addr, &account).await;
        (conn, outcome)
    })
    .await
}
