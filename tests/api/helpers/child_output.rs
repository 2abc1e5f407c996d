//! A child process's output and exit, for `process` and `run_to_exit`: reader threads drain
//! its pipes into shared buffers, so they never fill up (echoing each line with
//! `TEST_LOG`), and every wait for it to exit is bounded.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::test_log;

/// Everything a child wrote, collected by reader threads so its pipes never fill up.
#[derive(Clone, Default)]
pub(super) struct Output {
    pub(super) stdout: Arc<Mutex<String>>,
    pub(super) stderr: Arc<Mutex<String>>,
}

impl Output {
    pub(super) fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }
    pub(super) fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Reads a child's stream line by line into `sink` (and to `lines`). With `TEST_LOG` set,
/// each line is also printed, prefixed with the child's `name` and pid, through libtest's
/// capture (the reader thread inherits the test's), like the in-process servers' logs.
pub(super) fn pump(
    stream: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
    name: String,
    pid: u32,
) -> JoinHandle<()> {
    let echo = test_log();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if echo {
                        print!("[{name} {pid}] {line}");
                    }
                    if let Ok(mut all) = sink.lock() {
                        all.push_str(&line);
                    }
                    if let Some(tx) = &lines {
                        let _ = tx.send(line.clone());
                    }
                }
            }
        }
    })
}

pub(super) fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => return None,
        }
    }
}
