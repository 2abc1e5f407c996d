//! [`ClaimdProcess`]: the real binary as a child process, for the tests that need a
//! process to kill, stop or restart. It counts as started once it prints its
//! `listening on` line, and is killed when its guard drops.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::child_output::{pump, wait_bounded, Output};
use super::{claimd_command, TestApp};

/// How long the binary may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running claimd child process; killed (SIGKILL) when dropped.
pub struct ClaimdProcess {
    child: Child,
    output: Output,
    readers: Vec<JoinHandle<()>>,
    pub port: u16,
}

impl ClaimdProcess {
    /// Starts the binary with `cmd` and waits (bounded) for its `listening on` line.
    pub fn start(mut cmd: Command) -> ClaimdProcess {
        let mut child = cmd.spawn().expect("spawn claimd binary");
        let pid = child.id();
        let output = Output::default();
        let (tx, rx) = mpsc::channel();
        let readers = vec![
            pump(
                child.stdout.take().expect("stdout piped"),
                output.stdout.clone(),
                Some(tx),
                "claimd".to_string(),
                pid,
            ),
            pump(
                child.stderr.take().expect("stderr piped"),
                output.stderr.clone(),
                None,
                "claimd".to_string(),
                pid,
            ),
        ];
        let mut process = ClaimdProcess {
            child,
            output,
            readers,
            port: 0,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(port) = parse_listening_port(&line) {
                        process.port = port;
                        return process;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(200));
                    panic!(
                        "claimd closed stdout before listening; status {:?}\nstdout:\n{}\nstderr:\n{}",
                        process.child.try_wait(),
                        process.output.stdout(),
                        process.output.stderr()
                    );
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "claimd did not print `listening on` within {STARTUP_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                    process.output.stdout(),
                    process.output.stderr()
                );
            }
        }
    }

    /// Starts the binary on `data` (`CLAIMD__STORAGE__PATH`), running in `workdir`.
    pub fn start_on(workdir: &Path, data: &Path) -> ClaimdProcess {
        let mut cmd = claimd_command(workdir);
        cmd.env("CLAIMD__STORAGE__PATH", data);
        ClaimdProcess::start(cmd)
    }

    pub fn app(&self) -> TestApp {
        TestApp::new(self.port, None)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        self.output.stdout()
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.output.stderr()
    }

    /// SIGKILL, then reap the child: a crash, with no chance to flush.
    pub fn kill9(mut self) {
        self.child.kill().expect("send SIGKILL");
        wait_bounded(&mut self.child, Duration::from_secs(10)).expect("killed child exits");
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> (Option<ExitStatus>, String, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let exit = wait_bounded(&mut self.child, timeout);
        if exit.is_some() {
            for reader in std::mem::take(&mut self.readers) {
                let _ = reader.join();
            }
        }
        (exit, self.output.stdout(), self.output.stderr())
    }
}

impl Drop for ClaimdProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = wait_bounded(&mut self.child, Duration::from_secs(10));
        }
    }
}

/// The port from a line containing `listening on http://HOST:PORT`.
pub fn parse_listening_port(line: &str) -> Option<u16> {
    let start = line.find("listening on http://")? + "listening on http://".len();
    let addr: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    let port: String = addr
        .rsplit(':')
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    port.parse().ok()
}
