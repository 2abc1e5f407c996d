//! The servers under load: the real `claimd` binary as a child process (killed by a Drop
//! guard, so a panic never leaves it running), and the baseline, a bare actix-web app
//! inside this process with the same worker count. Also the process and disk figures read
//! from `/proc` and the file system.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The bootstrap admin the bench creates on first start.
pub const ADMIN_USERNAME: &str = "bench";
pub const ADMIN_PASSWORD: &str = "bench admin passphrase";

/// The plans the load test's "change" scenario moves its users between (flows.rs); the
/// server allows exactly these in `claims.self_service`, which opens nothing by default.
pub const CHANGE_PLANS: [&str; 8] = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];

/// How long start-up may take before the bench gives up (a store of a million entries is
/// scanned at start).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The last lines the server printed, for a report when it fails.
type LogTail = Arc<Mutex<VecDeque<String>>>;

/// A running `claimd`; killed when dropped.
pub struct Claimd {
    child: Child,
    pub addr: SocketAddr,
    /// From spawning the process to the `listening` line on its stdout.
    pub started_in: Duration,
    log: LogTail,
}

impl Claimd {
    /// Starts the binary cargo built for this bench on `127.0.0.1:0`, with its data in
    /// `dir` (also its working directory, so the repository's `config.toml` is not read),
    /// with the bootstrap admin or without (creating it costs an argon2 hash at start-up,
    /// which the footprint figures leave out).
    ///
    /// # Errors
    /// The process did not start or did not say where it listens in time.
    pub fn start(dir: &Path, workers: usize, bootstrap: bool) -> Result<Claimd, String> {
        Claimd::start_with(dir, workers, bootstrap, &[])
    }

    /// As [`Claimd::start`], with `settings` (`CLAIMD__…` variables) set last, over the
    /// bench's own.
    ///
    /// # Errors
    /// The process did not start or did not say where it listens in time.
    pub fn start_with(
        dir: &Path,
        workers: usize,
        bootstrap: bool,
        settings: &[(&str, &str)],
    ) -> Result<Claimd, String> {
        let spawned_at = Instant::now();
        let mut command = server_command();
        if bootstrap {
            command
                .env("CLAIMD__BOOTSTRAP__ADMIN_USERNAME", ADMIN_USERNAME)
                .env("CLAIMD__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD);
        }
        let mut child = command
            .current_dir(dir)
            .env("CLAIMD__SERVER__BIND", "127.0.0.1:0")
            .env("CLAIMD__SERVER__WORKERS", workers.to_string())
            .env("CLAIMD__STORAGE__PATH", dir)
            // Load must never trip the login limiter.
            .env("CLAIMD__AUTH__LOGIN_ATTEMPTS", "1000000/1s")
            // Nor the registration limit: the set-up registers every user from one address.
            .env("CLAIMD__AUTH__REGISTER_LIMIT", "1000000/1s")
            // The "change" scenario's plans (flows.rs): self-service opens nothing by default.
            .env("CLAIMD__CLAIMS__SELF_SERVICE__PLAN", CHANGE_PLANS.join(","))
            // A full run takes longer than the default 15 minutes; tokens from the set-up
            // must outlive it.
            .env("CLAIMD__TOKENS__ACCESS_TTL", "2h")
            .env("RUST_LOG", "warn")
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start claimd: {err}"))?;
        let log: LogTail = Arc::default();
        let (address_tx, address_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            drain(stdout, Arc::clone(&log), Some(address_tx));
        }
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, Arc::clone(&log), None);
        }
        let mut claimd = Claimd {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            started_in: Duration::ZERO,
            log,
        };
        match address_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                claimd.started_in = spawned_at.elapsed();
                claimd.addr = addr;
                Ok(claimd)
            }
            Err(_) => Err(format!(
                "claimd did not print its address within {START_TIMEOUT:?}; its last lines:\n{}",
                claimd.log_tail()
            )),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server now, in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_bytes(self.pid())
    }

    /// Starts the server's peak RSS (`VmHWM`) over from its RSS now.
    pub fn reset_peak_rss(&self) {
        // Linux: writing 5 to clear_refs resets the peak resident set size.
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// The server's highest RSS since start or [`Claimd::reset_peak_rss`], in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        proc_status_bytes(self.pid(), "VmHWM:")
    }

    /// The server's last output lines.
    pub fn log_tail(&self) -> String {
        let lines = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        lines.into_iter().collect::<Vec<_>>().join("\n")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Claimd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command that runs the server: the binary this bench was built with, or the
/// command line in `CLAIMD_BENCH_SERVER` (split on whitespace), for running the server
/// under a profiler: `CLAIMD_BENCH_SERVER="heaptrack -o /tmp/claimd target/prof/claimd"`.
fn server_command() -> Command {
    let custom = std::env::var("CLAIMD_BENCH_SERVER").unwrap_or_default();
    let mut words = custom.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words);
            command
        }
        None => Command::new(env!("CARGO_BIN_EXE_claimd")),
    }
}

/// Reads a pipe of the child line by line until it closes, keeping the last lines and
/// sending the address from the `claimd listening on http://…` line.
fn drain(
    pipe: impl Read + Send + 'static,
    log: LogTail,
    address: Option<mpsc::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        let mut address = address;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("claimd listening on http://") {
                if let (Some(sender), Ok(addr)) = (address.take(), rest.trim().parse()) {
                    let _ = sender.send(addr);
                }
            }
            if let Ok(mut log) = log.lock() {
                if log.len() == 20 {
                    log.pop_front();
                }
                log.push_back(line);
            }
        }
    });
}

/// `VmRSS` of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    proc_status_bytes(pid, "VmRSS:")
}

/// A size line of `/proc/<pid>/status` (given in kB), in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Disk space a directory takes, like `du`: allocated blocks, not apparent sizes.
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += disk_usage(&entry.path());
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

/// The baseline: a bare actix-web server in this process, one route answering 200 with
/// a short body. Stopped when dropped.
pub struct Baseline {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Baseline {
    /// # Errors
    /// The listener could not be bound.
    pub fn start(workers: usize) -> Result<Baseline, String> {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|err| format!("baseline bind: {err}"))?;
        let addr = listener
            .local_addr()
            .map_err(|err| format!("baseline address: {err}"))?;
        let (handle_tx, handle_rx) = mpsc::channel();
        // actix's server is built on the thread that runs it (its app factory is not Send).
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(|| {
                    App::new().route(
                        "/",
                        web::get().to(|| async { HttpResponse::Ok().body("ok") }),
                    )
                })
                .workers(workers)
                .disable_signals()
                .listen(listener);
                let running = match server {
                    Ok(server) => server.run(),
                    Err(err) => {
                        let _ = handle_tx.send(Err(format!("baseline listen: {err}")));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(running.handle()));
                let _ = running.await;
            });
        });
        let handle = handle_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "baseline server did not start".to_string())??;
        Ok(Baseline {
            addr,
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        // `stop` sends its command at once; the future only waits for completion.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
