//! The results as a person reads them: the load table (one row per store, node count and
//! scenario), the targets with whether each is met (printed, never asserted), and
//! the cross-node staleness figures. Markdown, printed on stdout.

use std::fmt::Write as _;

use crate::staleness::{Series, Staleness};

/// One scenario on one target.
pub struct Row {
    /// `sled`, `postgres ×1`, `postgres ×2`.
    pub target: &'static str,
    pub scenario: &'static str,
    pub concurrency: usize,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Refusals by a node that had not yet applied another node's write (see `spread`).
    pub lagged: u64,
    /// Successful answers, warm-up included (the lag's denominator).
    pub answered: u64,
    pub first_error: Option<String>,
}

/// Everything one run measured.
pub struct Report {
    pub command: String,
    pub cores: usize,
    pub workers: usize,
    pub rows: Vec<Row>,
    /// `synchronous_commit` and `fsync` of the cluster, when PostgreSQL ran.
    pub durability: Option<(String, String)>,
    pub staleness: Option<Staleness>,
    /// Why a part did not run, said again at the end.
    pub skipped: Vec<String>,
    pub seconds: f64,
}

impl Report {
    fn find(&self, target: &str, scenario: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|row| row.target == target && row.scenario == scenario)
    }

    /// The whole report.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "`{}` — {} cores shared by the load generator, every claimd node and PostgreSQL; \
             {} workers per node; {:.0} s in all\n",
            self.command, self.cores, self.workers, self.seconds
        );
        out.push_str(&self.table());
        out.push('\n');
        out.push_str(&self.targets());
        if let Some(staleness) = &self.staleness {
            out.push('\n');
            out.push_str(&staleness_table(staleness));
        }
        for skipped in &self.skipped {
            let _ = writeln!(out, "\n**SKIPPED:** {skipped}");
        }
        out
    }

    fn table(&self) -> String {
        let mut out = String::from(
            "| store | scenario | conc. | req/s | p50 ms | p99 ms | errors | notes |\n\
             |---|---|---:|---:|---:|---:|---:|---|\n",
        );
        for row in &self.rows {
            let mut notes = Vec::new();
            if row.lagged > 0 {
                notes.push(format!(
                    "{} refused by the other node before it applied the change ({:.1}% of \
                     attempts)",
                    row.lagged,
                    100.0 * row.lagged as f64 / (row.lagged + row.answered).max(1) as f64
                ));
            }
            if let Some(first) = &row.first_error {
                notes.push(format!("first error: {first}"));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
                row.target,
                row.scenario,
                row.concurrency,
                row.requests_per_second,
                row.p50_ms,
                row.p99_ms,
                row.errors,
                notes.join("; ")
            );
        }
        out
    }

    fn targets(&self) -> String {
        let header = "| issue 13 target | measured | met |\n|---|---|---|\n";
        let mut out = String::from(header);
        let met = |ok: bool| if ok { "yes" } else { "**no**" };
        if let (Some(sled), Some(pg)) = (
            self.find("sled", "verify"),
            self.find("postgres ×1", "verify"),
        ) {
            let ratio = pg.requests_per_second / sled.requests_per_second.max(1e-9);
            let _ = writeln!(
                out,
                "| `verify` on postgres ≥ 0.9 × on sled | {:.0} / {:.0} req/s = {ratio:.2}× | {} |",
                pg.requests_per_second,
                sled.requests_per_second,
                met(ratio >= 0.9)
            );
        }
        if let Some((synchronous_commit, fsync)) = &self.durability {
            for target in ["postgres ×1", "postgres ×2"] {
                if let Some(row) = self.find(target, "refresh") {
                    let _ = writeln!(
                        out,
                        "| durable `refresh` ≥ 2,000/s with synchronous_commit on ({target}) | \
                         {:.0}/s (synchronous_commit = {synchronous_commit}, fsync = {fsync}) | {} |",
                        row.requests_per_second,
                        met(row.requests_per_second >= 2000.0 && synchronous_commit == "on")
                    );
                }
            }
        }
        if let Some(staleness) = &self.staleness {
            for (what, series) in [
                ("claim change", &staleness.claim_changes),
                ("revocation", &staleness.revocations),
            ] {
                if let Some(p99) = quantile_ms(&series.refused_after, 0.99) {
                    let _ = writeln!(
                        out,
                        "| cross-node staleness p99 ≤ 50 ms ({what}, A's answer → B's refusal) | \
                         {p99:.2} ms over {} writes | {} |",
                        series.refused_after.len(),
                        met(p99 <= 50.0)
                    );
                }
            }
        }
        if out == header {
            return "No issue 13 target could be judged: each needs the PostgreSQL half (and the \
                    verify ratio the sled one too).\n"
                .to_string();
        }
        out
    }
}

/// A quantile of microsecond samples, in milliseconds (nearest rank).
fn quantile_ms(samples: &[u64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[index] as f64 / 1000.0)
}

fn series_row(out: &mut String, what: &str, samples: &[u64]) {
    let at = |q| quantile_ms(samples, q).map_or_else(|| "–".into(), |ms| format!("{ms:.2}"));
    let _ = writeln!(
        out,
        "| {what} | {} | {} | {} | {} |",
        samples.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

fn staleness_table(staleness: &Staleness) -> String {
    let Staleness {
        claim_changes,
        revocations,
    } = staleness;
    let mut out = String::from(
        "| cross-node, from node A's answer | n | p50 ms | p99 ms | max ms |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let Series {
        refused_after,
        accepted_after,
    } = claim_changes;
    series_row(
        &mut out,
        "`PATCH /me` → old token `token_stale` on B",
        refused_after,
    );
    series_row(
        &mut out,
        "`POST /oauth/revoke` → token `token_revoked` on B",
        &revocations.refused_after,
    );
    series_row(
        &mut out,
        "`PATCH /me` → A's new token accepted on B (until then `token_invalid`)",
        accepted_after,
    );
    out
}
