//! The results, as a person reads them: the Markdown table (printed and written), the
//! JSON file, and the chart (see `chart`), all under `target/claimd-bench/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::footprint::{Argon2Bound, Churn, LargeDenyList};

/// One scenario at one concurrency.
#[derive(Serialize, Clone)]
pub struct Row {
    pub scenario: String,
    pub concurrency: usize,
    pub requests_per_second: f64,
    /// Requests per second ÷ the baseline's at the same concurrency.
    pub ratio_to_baseline: Option<f64>,
    /// The baseline's requests per second in a short run just before this row.
    pub baseline_requests_per_second: Option<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub requests: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub server_rss_bytes: Option<u64>,
    /// The server's highest RSS while the row ran (warm-up included).
    pub server_peak_rss_bytes: Option<u64>,
    /// `verify-under-login-flood`: verify's p99 without the flood (`p99_ms` is with it).
    pub p99_without_flood_ms: Option<f64>,
    pub notes: Vec<String>,
}

/// The footprint figures.
#[derive(Serialize, Clone, Default)]
pub struct Footprint {
    pub binary_bytes: Option<u64>,
    /// The sled-only build (`--no-default-features`), when it has been built.
    pub edge_binary_bytes: Option<u64>,
    /// A second after start-up on an empty store, no bootstrap admin.
    pub idle_rss_bytes: Option<u64>,
    /// The same with the bootstrap admin created at start-up (the load test's server).
    pub idle_rss_bootstrap_bytes: Option<u64>,
    /// Spawn to the `listening` line on an empty store.
    pub empty_startup_ms: Option<f64>,
    pub large_deny_list: Option<LargeDenyList>,
    pub verify_with_deny_list: Option<VerifyWithDenyList>,
    pub churn: Option<Churn>,
    /// Why a figure is missing or what it means (`--quick` sizes).
    pub notes: Vec<String>,
}

/// `verify` on the store filled with deny entries against the same on an empty store,
/// run alternately (empty, filled, empty, filled); the best of each is compared.
#[derive(Serialize, Clone, Default)]
pub struct VerifyWithDenyList {
    pub entries: u64,
    pub concurrency: usize,
    pub empty_requests_per_second: f64,
    pub filled_requests_per_second: f64,
    pub empty_p99_ms: f64,
    pub filled_p99_ms: f64,
    /// filled ÷ empty.
    pub ratio: f64,
}

/// Everything one run measured.
#[derive(Serialize)]
pub struct Report {
    pub command: String,
    pub cores: usize,
    pub workers: usize,
    pub quick: bool,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    pub argon2: Option<Argon2Bound>,
    pub rows: Vec<Row>,
    pub footprint: Footprint,
    pub total_seconds: f64,
    pub errors: u64,
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn optional_mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "–".into(), mib)
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| scenario | conc. | req/s | × baseline | p50 ms | p99 ms | p99.9 ms | errors | server RSS peak / after | notes |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {} | {} / {} | {} |",
                row.scenario,
                row.concurrency,
                row.requests_per_second,
                row.ratio_to_baseline
                    .map_or_else(|| "–".into(), |r| format!("{r:.2}")),
                row.p50_ms,
                row.p99_ms,
                row.p999_ms,
                row.errors,
                optional_mib(row.server_peak_rss_bytes),
                optional_mib(row.server_rss_bytes),
                row.notes.join("; ")
            );
        }
        out
    }

    pub fn footprint_text(&self) -> String {
        let f = &self.footprint;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "- stripped binary: {} with PostgreSQL (default features); {} sled only \
             (`--no-default-features`, the edge build)",
            optional_mib(f.binary_bytes),
            optional_mib(f.edge_binary_bytes)
        );
        let _ = writeln!(
            out,
            "- idle RSS after start-up (empty store, default cache): {}; {} when start-up also \
             created the bootstrap admin (one argon2 hash)",
            optional_mib(f.idle_rss_bytes),
            optional_mib(f.idle_rss_bootstrap_bytes)
        );
        if let Some(ms) = f.empty_startup_ms {
            let _ = writeln!(
                out,
                "- start-up, empty store: {ms:.0} ms to the listening line"
            );
        }
        if let Some(argon2) = &self.argon2 {
            let _ = writeln!(
                out,
                "- argon2 bound: one argon2id hash ({} KiB, t={}, p={}) takes {:.1} ms here; \
                 {} cores ÷ that = {:.1} logins/s ({:.1} hashes/s with {} threads hashing at \
                 once in-process)",
                claimd::auth::password::MEMORY_KIB,
                claimd::auth::password::ITERATIONS,
                claimd::auth::password::LANES,
                argon2.hash_ms,
                argon2.cores,
                argon2.logins_per_second,
                argon2.parallel_per_second,
                argon2.cores
            );
        }
        if let Some(large) = &f.large_deny_list {
            let _ = writeln!(
                out,
                "- start-up with {} deny entries: {:.0} ms from spawn to the first answered \
                 `GET /healthz` (`Store::open` alone: {:.0} ms); RSS then {}; data dir {} \
                 (filled through the library in {:.1} s)",
                large.entries,
                large.startup_ms,
                large.store_open_ms,
                optional_mib(large.rss_bytes),
                mib(large.data_dir_bytes),
                large.fill_seconds
            );
        }
        if let Some(v) = &f.verify_with_deny_list {
            let _ = writeln!(
                out,
                "- `verify` at concurrency {} with {} deny entries vs an empty deny list: \
                 {:.0} vs {:.0} req/s = **{:.2}×** (p99 {:.2} vs {:.2} ms; best of two runs \
                 each, alternated)",
                v.concurrency,
                v.entries,
                v.filled_requests_per_second,
                v.empty_requests_per_second,
                v.ratio,
                v.filled_p99_ms,
                v.empty_p99_ms
            );
        }
        if let Some(churn) = &f.churn {
            let series: Vec<String> = churn
                .samples
                .iter()
                .map(|(at, live, bytes)| format!("{at}s: {live} live, {}", mib(*bytes)))
                .collect();
            let verdict = match (churn.levels_off, churn.growth) {
                (Some(true), Some(growth)) => format!(
                    "levels off (largest size in the second half ÷ the first half = {growth:.2}×)"
                ),
                (_, Some(growth)) => format!(
                    "KEEPS GROWING (largest size in the second half ÷ the first half = {growth:.2}×)"
                ),
                _ => "cannot be judged (run too short)".into(),
            };
            let _ = writeln!(
                out,
                "- churn: {} s at {}/s, each entry live {} s: {} inserted, {} evicted; the data \
                 dir {verdict}",
                churn.seconds,
                churn.rate_per_second,
                churn.ttl_seconds,
                churn.inserted,
                churn.evicted,
            );
            let _ = writeln!(out, "  - series: {}", series.join(" · "));
        }
        for note in &f.notes {
            let _ = writeln!(out, "- {note}");
        }
        out
    }

    pub fn markdown(&self) -> String {
        format!(
            "# claimd load test\n\n`{}` — {} cores, {} server workers, client and servers on the \
             same machine; {:.1} s warm-up and {:.1} s measured per row; each ratio is to a short \
             baseline run (bare actix-web, same workers and concurrency) just before its row; \
             took {:.0} s.\n\n{}\n\
             ## Footprint\n\n{}",
            self.command,
            self.cores,
            self.workers,
            self.warmup_seconds,
            self.duration_seconds,
            self.total_seconds,
            self.table(),
            self.footprint_text()
        )
    }

    /// Writes `results.json`, `results.md` and `results.svg` under `dir`.
    ///
    /// # Errors
    /// A file could not be written (the chart's failure is reported apart).
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, String> {
        std::fs::create_dir_all(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).map_err(|err| format!("json: {err}"))?;
        let files = [
            (dir.join("results.json"), json),
            (dir.join("results.md"), self.markdown()),
        ];
        let mut written = Vec::new();
        for (path, text) in files {
            std::fs::write(&path, text).map_err(|err| format!("{}: {err}", path.display()))?;
            written.push(path);
        }
        let svg = dir.join("results.svg");
        crate::chart::draw(&self.rows, &svg)?;
        written.push(svg);
        Ok(written)
    }
}

/// `target/` of this build: `CARGO_TARGET_DIR` when set, else the nearest ancestor of the
/// bench executable that cargo marked with `CACHEDIR.TAG`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .or_else(|| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}
