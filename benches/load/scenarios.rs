//! The scenarios of issue 5 and the state they share on one server: the set-up users and
//! their tokens (read-only: `verify`, `introspect`, `login`), and per-connection chains
//! that carry on from one concurrency to the next (`refresh`, `change`, `mixed`). `change`
//! and `mixed` bump claim versions and end sessions, so each of their connections has a
//! user of its own that no other scenario touches.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::driver::{self, Outcome, Plan};
use crate::fixture;
use crate::flows::{Account, Change, Introspect, Login, Mixed, Refresh, Session, Verify};

/// Connections of the login flood in `verify-under-login-flood`: enough to keep every
/// argon2 slot of the server busy.
pub const FLOOD_CONNECTIONS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Verify,
    Introspect,
    Refresh,
    Change,
    Login,
    Mixed,
    VerifyUnderLoginFlood,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Verify,
        Scenario::Introspect,
        Scenario::Refresh,
        Scenario::Change,
        Scenario::Login,
        Scenario::Mixed,
        Scenario::VerifyUnderLoginFlood,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Verify => "verify",
            Scenario::Introspect => "introspect",
            Scenario::Refresh => "refresh",
            Scenario::Change => "change",
            Scenario::Login => "login",
            Scenario::Mixed => "mixed",
            Scenario::VerifyUnderLoginFlood => "verify-under-login-flood",
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What one scenario at one concurrency measured.
pub struct Measured {
    pub outcome: Outcome,
    /// Figures particular to the scenario, for the notes column.
    pub notes: Vec<String>,
    /// p99 without and with the flood, in ms (only `verify-under-login-flood`).
    pub flood_p99: Option<(f64, f64)>,
    /// Logins per second (`login`, and the flood).
    pub logins_per_second: Option<f64>,
}

/// The scenarios' shared state on one running claimd.
pub struct Bench {
    addr: SocketAddr,
    accounts: Arc<Vec<Account>>,
    tokens: Arc<Vec<String>>,
    basic: Arc<str>,
    refresh: Vec<Refresh>,
    change: Vec<Change>,
    mixed: Vec<Mixed>,
}

impl Bench {
    /// Registers `users` users with one session each, and a service credential.
    ///
    /// # Errors
    /// Any unexpected answer during set-up.
    pub async fn set_up(addr: SocketAddr, users: usize) -> Result<Bench, String> {
        let basic = fixture::service_credential(addr).await?;
        let created = fixture::new_users(addr, "user", 0, users).await?;
        let (accounts, sessions): (Vec<Account>, Vec<Session>) = created.into_iter().unzip();
        Ok(Bench {
            addr,
            accounts: Arc::new(accounts),
            tokens: Arc::new(sessions.into_iter().map(|s| s.access).collect()),
            basic: basic.into(),
            refresh: Vec::new(),
            change: Vec::new(),
            mixed: Vec::new(),
        })
    }

    /// Grows the chains of `refresh`, `change` and `mixed` to `connections` each (their
    /// sessions are logged in here): `run` does it too, this lets a caller do it first.
    pub async fn ensure_chains(
        &mut self,
        scenario: Scenario,
        connections: usize,
    ) -> Result<(), String> {
        match scenario {
            Scenario::Refresh if self.refresh.len() < connections => {
                let have = self.refresh.len();
                let accounts = (have..connections)
                    .map(|n| self.accounts[n % self.accounts.len()].clone())
                    .collect();
                let sessions = fixture::sessions(self.addr, accounts).await?;
                self.refresh
                    .extend(sessions.into_iter().map(|session| Refresh { session }));
            }
            Scenario::Change if self.change.len() < connections => {
                let have = self.change.len();
                let created =
                    fixture::new_users(self.addr, "change", have, connections - have).await?;
                self.change.extend(
                    created
                        .into_iter()
                        .map(|(_, s)| Change { access: s.access }),
                );
            }
            Scenario::Mixed if self.mixed.len() < connections => {
                let have = self.mixed.len();
                let created =
                    fixture::new_users(self.addr, "mixed", have, connections - have).await?;
                self.mixed
                    .extend(created.into_iter().map(|(account, session)| Mixed {
                        account,
                        session,
                        logged_out: false,
                    }));
            }
            _ => {}
        }
        Ok(())
    }

    fn verify_flows(&self, connections: usize) -> Vec<Verify> {
        (0..connections)
            .map(|n| Verify {
                tokens: Arc::clone(&self.tokens),
                next: n * self.tokens.len() / connections.max(1),
            })
            .collect()
    }

    fn login_flows(&self, connections: usize) -> Vec<Login> {
        (0..connections)
            .map(|n| Login {
                accounts: Arc::clone(&self.accounts),
                next: n * self.accounts.len() / connections.max(1),
            })
            .collect()
    }

    /// Runs one scenario at one concurrency.
    ///
    /// # Errors
    /// Set-up of more chains failed (errors of the load itself are in the outcome).
    pub async fn run(
        &mut self,
        scenario: Scenario,
        connections: usize,
        plan: Plan,
    ) -> Result<Measured, String> {
        self.ensure_chains(scenario, connections).await?;
        let mut measured = Measured {
            outcome: match scenario {
                Scenario::Verify => driver::run(plan, self.verify_flows(connections)).await.0,
                Scenario::Introspect => {
                    let flows = (0..connections)
                        .map(|n| Introspect {
                            tokens: Arc::clone(&self.tokens),
                            next: n * self.tokens.len() / connections.max(1),
                            basic: Arc::clone(&self.basic),
                        })
                        .collect();
                    driver::run(plan, flows).await.0
                }
                Scenario::Refresh => {
                    let flows = self.refresh.drain(..connections).collect();
                    let (outcome, flows) = driver::run(plan, flows).await;
                    self.refresh.extend(flows);
                    outcome
                }
                Scenario::Change => {
                    let flows = self.change.drain(..connections).collect();
                    let (outcome, flows) = driver::run(plan, flows).await;
                    self.change.extend(flows);
                    outcome
                }
                Scenario::Login => driver::run(plan, self.login_flows(connections)).await.0,
                Scenario::Mixed => {
                    let flows = self.mixed.drain(..connections).collect();
                    let (outcome, flows) = driver::run(plan, flows).await;
                    self.mixed.extend(flows);
                    outcome
                }
                Scenario::VerifyUnderLoginFlood => {
                    return Ok(self.verify_under_flood(connections, plan).await);
                }
            },
            notes: Vec::new(),
            flood_p99: None,
            logins_per_second: None,
        };
        if scenario == Scenario::Login {
            measured.logins_per_second = Some(measured.outcome.requests_per_second());
        }
        if scenario == Scenario::Mixed {
            let seconds = measured.outcome.window.as_secs_f64();
            let ops: Vec<String> = measured
                .outcome
                .by_op
                .iter()
                .map(|(op, latency)| {
                    format!(
                        "{op} {:.0}/s p99 {:.2} ms",
                        latency.len() as f64 / seconds,
                        latency.value_at_quantile(0.99) as f64 / 1000.0
                    )
                })
                .collect();
            measured.notes.push(ops.join(", "));
        }
        Ok(measured)
    }

    /// `verify` alone, then `verify` again while a second client floods `login`.
    async fn verify_under_flood(&self, connections: usize, plan: Plan) -> Measured {
        let (alone, _) = driver::run(plan, self.verify_flows(connections)).await;
        let ((mut flooded, _), (flood, _)) = tokio::join!(
            driver::run(plan, self.verify_flows(connections)),
            driver::run(plan, self.login_flows(FLOOD_CONNECTIONS)),
        );
        let before = alone.quantile_ms(0.99);
        let during = flooded.quantile_ms(0.99);
        let logins = flood.requests_per_second();
        let notes = vec![
            format!(
                "p99 {during:.2} ms under the flood vs {before:.2} ms without = {:.2}×",
                during / before.max(1e-6)
            ),
            format!(
                "without the flood: {:.0} req/s; flood: {logins:.1} login/s on {FLOOD_CONNECTIONS} connections",
                alone.requests_per_second()
            ),
        ];
        flooded.errors += alone.errors + flood.errors;
        flooded.checked += alone.checked + flood.checked;
        for sample in alone.error_samples.into_iter().chain(flood.error_samples) {
            if flooded.error_samples.len() < 5 {
                flooded.error_samples.push(sample);
            }
        }
        Measured {
            outcome: flooded,
            notes,
            flood_p99: Some((before, during)),
            logins_per_second: Some(logins),
        }
    }
}
