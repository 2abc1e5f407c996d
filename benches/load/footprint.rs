//! Footprint figures (issue 5, part 4) that need no load: the argon2 bound login is
//! compared with, start-up with a large deny list (filled through the library, then served
//! by the real binary), and the data directory's size under deny-list churn (entries added
//! at a steady rate and evicted as they expire). Every loop here is bounded in count and
//! in time.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::{Algorithm, Argon2, Params, Version};
use serde::Serialize;

use claimd::store::sled::deny::BUCKET_SECONDS;
use claimd::store::sled::evict_expired;
use claimd::store::{DenyKind, SledStore};

use crate::server::{disk_usage, Claimd};

/// The longest a deny-list fill may run before it stops short (and says so).
const FILL_LIMIT: Duration = Duration::from_secs(600);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A distinct, well-spread 16-byte id for entry `n` of a run.
fn entry_id(run: u64, n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    id[8..].copy_from_slice(&(run ^ n).to_be_bytes());
    id
}

/// One argon2id hash at OWASP's parameters (what claimd uses), and what the machine's
/// cores could do with it.
#[derive(Serialize, Clone, Copy)]
pub struct Argon2Bound {
    pub hash_ms: f64,
    pub cores: usize,
    /// `cores ÷ hash_ms`: the bound issue 5 defines.
    pub logins_per_second: f64,
    /// Hashes per second with one thread per core hashing at once for a second, in this
    /// process: below the bound when the hashes contend for memory bandwidth.
    pub parallel_per_second: f64,
}

/// Times one hash (the best of a few, after one to warm up): `cores ÷ one hash's time`
/// is the most logins per second the machine can do. Also counts what `cores` threads
/// hashing at once achieve (a second, bounded).
pub fn argon2_bound(cores: usize) -> Result<Argon2Bound, String> {
    use claimd::auth::password::{ITERATIONS, LANES, MEMORY_KIB};
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
        .map_err(|err| format!("argon2 params: {err}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut best = Duration::MAX;
    let mut out = [0u8; 32];
    for round in 0..6 {
        let started = Instant::now();
        argon2
            .hash_password_into(b"bench password 1234", b"claimd-bench-salt", &mut out)
            .map_err(|err| format!("argon2: {err}"))?;
        if round > 0 {
            best = best.min(started.elapsed());
        }
    }
    let hash_ms = best.as_secs_f64() * 1000.0;
    let started = Instant::now();
    let until = started + Duration::from_secs(1);
    let hashes: u64 = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cores.max(1))
            .map(|_| {
                let argon2 = &argon2;
                scope.spawn(move || {
                    let mut out = [0u8; 32];
                    let mut done = 0u64;
                    while Instant::now() < until {
                        if argon2
                            .hash_password_into(
                                b"bench password 1234",
                                b"claimd-bench-salt",
                                &mut out,
                            )
                            .is_ok()
                        {
                            done += 1;
                        }
                    }
                    done
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap_or(0)).sum()
    });
    Ok(Argon2Bound {
        hash_ms,
        cores,
        logins_per_second: cores as f64 * 1000.0 / hash_ms,
        parallel_per_second: hashes as f64 / started.elapsed().as_secs_f64(),
    })
}

/// RSS of a claimd started on an empty data dir without the bootstrap admin, a second
/// after it answered its first request.
///
/// # Errors
/// The server failed to start.
pub async fn idle_rss(workers: usize) -> Result<Option<u64>, String> {
    let dir = tempfile::Builder::new()
        .prefix("claimd-bench-idle-")
        .tempdir()
        .map_err(|err| format!("temp dir: {err}"))?;
    let claimd = Claimd::start(dir.path(), workers, false)?;
    crate::first_answer(claimd.addr, "/healthz").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(claimd.rss_bytes())
}

/// A store holding many deny entries, and the server started on it.
#[derive(Serialize, Clone)]
pub struct LargeDenyList {
    pub entries: u64,
    pub fill_seconds: f64,
    /// `SledStore::open` alone on the filled store, in this process (what start-up spends
    /// in the store).
    pub store_open_ms: f64,
    /// Spawn to the first answered `GET /healthz`.
    pub startup_ms: f64,
    pub rss_bytes: Option<u64>,
    pub data_dir_bytes: u64,
}

/// Fills a store with `entries` deny entries through the library (on every core), then
/// starts claimd on it and times it to its first answered request. Returns the filled
/// data dir too, for the verify comparison.
///
/// # Errors
/// The store or the server failed.
pub async fn large_deny_list(
    entries: u64,
    workers: usize,
    cores: usize,
) -> Result<(LargeDenyList, tempfile::TempDir), String> {
    let dir = tempfile::Builder::new()
        .prefix("claimd-bench-deny-")
        .tempdir()
        .map_err(|err| format!("temp dir: {err}"))?;
    let path = dir.path().to_path_buf();
    let started = Instant::now();
    let filled = tokio::task::spawn_blocking(move || fill(&path, entries, cores))
        .await
        .map_err(|err| format!("fill task: {err}"))??;
    let fill_seconds = started.elapsed().as_secs_f64();
    let path = dir.path().to_path_buf();
    let store_open_ms = tokio::task::spawn_blocking(move || {
        let opening = Instant::now();
        let store = SledStore::open(&path, 16).map_err(|err| format!("reopen store: {err}"))?;
        let elapsed = opening.elapsed();
        drop(store);
        Ok::<_, String>(elapsed.as_secs_f64() * 1000.0)
    })
    .await
    .map_err(|err| format!("open task: {err}"))??;

    let spawned = Instant::now();
    let claimd = Claimd::start(dir.path(), workers, false)?;
    crate::first_answer(claimd.addr, "/healthz").await?;
    let startup_ms = spawned.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let figures = LargeDenyList {
        entries: filled,
        fill_seconds,
        store_open_ms,
        startup_ms,
        rss_bytes: claimd.rss_bytes(),
        data_dir_bytes: disk_usage(dir.path()),
    };
    drop(claimd);
    Ok((figures, dir))
}

fn fill(path: &Path, entries: u64, threads: usize) -> Result<u64, String> {
    let store = SledStore::open(path, 16).map_err(|err| format!("open store: {err}"))?;
    // Spread over one default access-token lifetime of `exp`, as revoked tokens are.
    let base = unix_now() + 60;
    let deadline = Instant::now() + FILL_LIMIT;
    let threads = threads.max(1) as u64;
    let done: Result<Vec<u64>, String> = std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..threads)
            .map(|lane| {
                let store = &store;
                scope.spawn(move || {
                    let mut added = 0;
                    for n in (lane..entries).step_by(threads as usize) {
                        if n % 16_384 == lane && Instant::now() > deadline {
                            break;
                        }
                        let exp = base + n % 900;
                        store
                            .deny(DenyKind::Token, &entry_id(0, n), exp..=exp)
                            .map_err(|err| format!("deny: {err}"))?;
                        added += 1;
                    }
                    Ok(added)
                })
            })
            .collect();
        lanes
            .into_iter()
            .map(|lane| {
                lane.join()
                    .map_err(|_| "fill thread panicked".to_string())?
            })
            .collect()
    });
    let added = done?.iter().sum();
    store.flush_now().map_err(|err| format!("flush: {err}"))?;
    drop(store);
    Ok(added)
}

/// The data directory's size over a churn run.
#[derive(Serialize, Clone)]
pub struct Churn {
    pub seconds: u64,
    pub rate_per_second: u64,
    pub ttl_seconds: u64,
    pub inserted: u64,
    pub evicted: u64,
    /// `(seconds since start, live entries, data-dir bytes)`.
    pub samples: Vec<(u64, i64, u64)>,
    /// Largest size in the second half ÷ largest in the first half, both after the first
    /// bucket tree could be dropped (`ttl` + one bucket): about 1 when the size levels
    /// off, about 2 when it grows with what was ever inserted. The size is a sawtooth with
    /// the bucket width as its period (a tree leaves whole), so each half must span
    /// several periods: hence the 300 s default.
    pub growth: Option<f64>,
    /// `None` when the run was too short to tell.
    pub levels_off: Option<bool>,
}

/// Adds entries that expire `ttl` seconds later at a steady rate for `seconds`, evicting
/// every second and flushing like the server does, and samples the directory's size.
///
/// # Errors
/// The store failed.
pub fn churn(seconds: u64, rate: u64, ttl: u64, sample_every: u64) -> Result<Churn, String> {
    let dir = tempfile::Builder::new()
        .prefix("claimd-bench-churn-")
        .tempdir()
        .map_err(|err| format!("temp dir: {err}"))?;
    let store = SledStore::open(dir.path(), 16).map_err(|err| format!("open store: {err}"))?;
    let run = unix_now();
    let started = Instant::now();
    let tick = Duration::from_millis(100);
    let per_tick = (rate / 10).max(1);
    let (mut inserted, mut evicted) = (0u64, 0u64);
    let mut samples = vec![(0, 0, disk_usage(dir.path()))];
    let mut next_eviction = 1;
    let mut next_sample = sample_every;
    let give_up = started + Duration::from_secs(seconds * 2 + 30);
    for step in 1..=seconds * 10 {
        if Instant::now() > give_up {
            break;
        }
        let exp = unix_now() + ttl;
        for _ in 0..per_tick {
            store
                .deny(DenyKind::Token, &entry_id(run, inserted), exp..=exp)
                .map_err(|err| format!("deny: {err}"))?;
            inserted += 1;
        }
        let elapsed = step / 10;
        if step % 10 == 0 && elapsed >= next_eviction {
            let report =
                evict_expired(&store, unix_now(), 0).map_err(|err| format!("evict: {err}"))?;
            evicted += report.deny_removed;
            store.flush_now().map_err(|err| format!("flush: {err}"))?;
            next_eviction += 1;
        }
        if step % 10 == 0 && elapsed >= next_sample {
            samples.push((elapsed, store.deny_entries(), disk_usage(dir.path())));
            next_sample += sample_every;
        }
        // Steady rate: sleep to the tick's planned end (never longer than one tick).
        let planned = started + tick * u32::try_from(step).unwrap_or(u32::MAX);
        if let Some(wait) = planned.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.min(tick));
        }
    }
    drop(store);
    let settled: Vec<u64> = samples
        .iter()
        .filter(|(at, _, _)| *at > ttl + BUCKET_SECONDS + 1)
        .map(|(_, _, bytes)| *bytes)
        .collect();
    let half = settled.len() / 2;
    let first = settled[..half].iter().copied().max().unwrap_or(0);
    let second = settled[half..].iter().copied().max().unwrap_or(0);
    let growth = (settled.len() >= 4 && first > 0).then(|| second as f64 / first as f64);
    Ok(Churn {
        seconds,
        rate_per_second: per_tick * 10,
        ttl_seconds: ttl,
        inserted,
        evicted,
        samples,
        growth,
        levels_off: growth.map(|growth| growth <= 1.2),
    })
}

/// How the edge (sled-only) binary is built, into a target directory of its own so the
/// default build's artefacts stay as they are (`.ci/run` runs it before the benches).
pub const EDGE_BUILD: &str =
    "cargo build --release --locked --no-default-features --bin claimd --target-dir target/edge";

/// The size of the edge binary `EDGE_BUILD` makes (stripped by the release profile), if it
/// is there and newer than the sources of this build's binary.
pub fn edge_binary_bytes() -> Option<u64> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let edge = std::fs::metadata(root.join("target/edge/release/claimd")).ok()?;
    let default = std::fs::metadata(env!("CARGO_BIN_EXE_claimd")).ok()?;
    // An edge binary older than this bench's own claimd is a leftover of other sources.
    let fresh = match (edge.modified(), default.modified()) {
        (Ok(edge), Ok(default)) => default
            .duration_since(edge)
            .map_or(true, |behind| behind < Duration::from_secs(3600)),
        _ => true,
    };
    fresh.then_some(edge.len())
}
