//! Runs of the binary that are meant to end (a refused start, a command-line operation):
//! how it exited and everything it wrote, within a deadline.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::child_output::{pump, wait_bounded, Output};

/// How a run of the binary that should not get far ended.
#[derive(Debug)]
pub struct Exit {
    /// `None` when it was still running at the deadline (it has been killed since).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` until it exits or `timeout` passes (then kills it).
pub fn run_to_exit(mut cmd: Command, timeout: Duration) -> Exit {
    let child = cmd.spawn().expect("spawn claimd binary");
    collect_exit(child, program_name(&cmd), timeout)
}

/// Like [`run_to_exit`], writing `stdin` to the child's standard input (a pipe, so never a
/// terminal) and then closing it.
pub fn run_to_exit_with_stdin(mut cmd: Command, stdin: &str, timeout: Duration) -> Exit {
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn claimd binary");
    let name = program_name(&cmd);
    let mut pipe = child.stdin.take().expect("stdin piped");
    let input = stdin.as_bytes().to_vec();
    // A writer thread, so a child that never reads cannot block the test on a full pipe.
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = pipe.write_all(&input);
    });
    collect_exit(child, name, timeout)
}

/// The program's file name (`claimd`, `python3`), which prefixes its lines under
/// `TEST_LOG`.
fn program_name(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned()
}

fn collect_exit(mut child: Child, name: String, timeout: Duration) -> Exit {
    let pid = child.id();
    let output = Output::default();
    let readers = [
        pump(
            child.stdout.take().expect("stdout piped"),
            output.stdout.clone(),
            None,
            name.clone(),
            pid,
        ),
        pump(
            child.stderr.take().expect("stderr piped"),
            output.stderr.clone(),
            None,
            name,
            pid,
        ),
    ];
    let status = wait_bounded(&mut child, timeout);
    let reaped = status.is_some() || {
        let _ = child.kill();
        wait_bounded(&mut child, Duration::from_secs(10)).is_some()
    };
    if reaped {
        // The pipes are at EOF once the child is gone: collect everything it wrote.
        for reader in readers {
            let _ = reader.join();
        }
    }
    Exit {
        status,
        stdout: output.stdout(),
        stderr: output.stderr(),
    }
}
