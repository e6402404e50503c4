//! Child processes with a time limit, shared by hbc's command plugins
//! (`client::plugins::command`) and hbd's DNS worker (`server::dns`).
//!
//! A child runs without a shell in a process group of its own, so that the
//! whole group (helpers it forked included) is killed at its deadline. Its
//! output is read by two small threads and capped, so it never blocks on a
//! full pipe. [`Running::poll`] never blocks: the DNS worker watches several
//! children from one thread; [`run`] waits for one.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Output kept per stream; the rest is read and discarded so the child never
/// blocks on a full pipe.
pub const OUTPUT_CAP: usize = 64 << 10;
/// How long output is waited for after the child exited: a grandchild that
/// left the process group may hold the pipe open, and is not waited for.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Finished {
    /// `None` when killed by a signal (including our timeout).
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
    pub timed_out: bool,
}

/// A started child, its deadline and its output readers.
pub struct Running {
    child: Child,
    started: Instant,
    deadline: Instant,
    stdout: Drain,
    stderr: Drain,
    /// Set once the child has been reaped: how it ended, when, and whether we killed it.
    exited: Option<(ExitStatus, Instant, bool)>,
}

/// Starts `program` with `args` in its own process group, writes `input` to
/// its standard input (which is then closed) and gives it `timeout` to
/// finish. An error means it could not be started.
///
/// `input` must fit a pipe (64 KiB on Linux), so that writing it never waits
/// for the child to read.
pub fn spawn(
    program: impl AsRef<OsStr>,
    args: &[impl AsRef<OsStr>],
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Running, String> {
    let program = program.as_ref();
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.to_string_lossy()))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A child that exits without reading makes this fail (EPIPE); its
        // exit status and stderr then say why, so the error adds nothing.
        let _ = stdin.write_all(input);
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    Ok(Running { child, started, deadline: started + timeout, stdout, stderr, exited: None })
}

impl Running {
    /// Without blocking: the result once the child has ended and its output
    /// is read. Past the deadline, kills the child's process group first.
    pub fn poll(&mut self) -> Option<Finished> {
        let now = Instant::now();
        if self.exited.is_none() {
            let status = match self.child.try_wait() {
                Ok(Some(status)) => Some((status, false)),
                Ok(None) if now >= self.deadline => Some((self.kill_group(), true)),
                Ok(None) => None,
                // The child cannot be waited for (it was reaped elsewhere):
                // make sure it is gone and report it as killed.
                Err(_) => Some((self.kill_group(), true)),
            };
            self.exited = status.map(|(status, killed)| (status, now, killed));
        }
        let (status, exited_at, timed_out) = self.exited?;
        let output_read = self.stdout.as_ref().is_none_or(|h| h.is_finished())
            && self.stderr.as_ref().is_none_or(|h| h.is_finished());
        if !output_read && now < exited_at + OUTPUT_GRACE {
            return None;
        }
        Some(Finished {
            exit_code: status.code(),
            stdout: collect(self.stdout.take()),
            stderr: collect(self.stderr.take()),
            duration: exited_at - self.started,
            timed_out,
        })
    }

    fn kill_group(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on the process group we created for this child,
        // which has not been reaped yet, so its id cannot have been reused.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        match self.child.wait() {
            Ok(status) => status,
            // Only if it was reaped elsewhere; SIGKILL is what we sent.
            Err(_) => std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL),
        }
    }
}

impl Drop for Running {
    /// A child is never left behind: one that has not ended yet is killed,
    /// with its process group, and reaped.
    fn drop(&mut self) {
        if self.exited.is_none() {
            self.kill_group();
        }
    }
}

/// Runs `words` (program and arguments, stdin empty) with a time limit and
/// waits for it; an error means it could not be started.
pub fn run(words: &[String], timeout: Duration) -> Result<Finished, String> {
    let (program, args) = words.split_first().ok_or("empty command")?;
    let mut running = spawn(program, args, None, timeout)?;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(finished) = running.poll() {
            return Ok(finished);
        }
        std::thread::sleep(pause.min(running.deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

type Drain = Option<JoinHandle<Vec<u8>>>;

fn drain(stream: Option<impl Read + Send + 'static>) -> Drain {
    let mut stream = stream?;
    std::thread::Builder::new()
        .name("child-output".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        })
        .ok()
}

/// The output read, or nothing if the reader is still blocked (a grandchild
/// that escaped the group holds the pipe): it is not waited for.
fn collect(drain: Drain) -> String {
    match drain {
        Some(handle) if handle.is_finished() => {
            handle.join().map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runs_and_captures() {
        let done = run(&words(&["sh", "-c", "echo out; echo err >&2; exit 3"]), Duration::from_secs(10)).unwrap();
        assert_eq!(
            (done.exit_code, done.stdout.as_str(), done.stderr.as_str(), done.timed_out),
            (Some(3), "out\n", "err\n", false)
        );
    }

    #[test]
    fn input_reaches_stdin() {
        let mut running = spawn("sh", &["-c", "tr a-z A-Z"], Some(b"update add\n"), Duration::from_secs(10)).unwrap();
        let done = loop {
            if let Some(done) = running.poll() {
                break done;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!((done.exit_code, done.stdout.as_str()), (Some(0), "UPDATE ADD\n"));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let marker = std::env::temp_dir().join(format!("hbd-cmd-{}", std::process::id()));
        let script = format!("(sleep 5; touch {}) & sleep 5", marker.display());
        let done = run(&words(&["sh", "-c", &script]), Duration::from_millis(200)).unwrap();
        assert!(done.timed_out);
        assert_eq!(done.exit_code, None);
        assert!(done.duration < Duration::from_secs(4), "did not wait for the grandchild");
        // The grandchild was in the same group and was killed with it.
        let pgrep = Command::new("pgrep").args(["-f", &marker.display().to_string()]).output();
        if let Ok(out) = pgrep {
            assert!(out.stdout.is_empty(), "grandchild still running");
        }
    }

    #[test]
    fn dropping_kills_the_child_at_once() {
        let mut running = spawn("sh", &["-c", "sleep 30"], None, Duration::from_secs(60)).unwrap();
        assert!(running.poll().is_none());
        let started = Instant::now();
        drop(running);
        assert!(started.elapsed() < Duration::from_secs(2), "dropping waited for the child");
    }

    #[test]
    fn huge_output_is_capped_and_does_not_block() {
        let done = run(&words(&["sh", "-c", "head -c 1000000 /dev/zero"]), Duration::from_secs(10)).unwrap();
        assert_eq!(done.stdout.len(), OUTPUT_CAP);
        assert_eq!(done.exit_code, Some(0));
    }

    #[test]
    fn missing_program_is_an_error() {
        assert!(run(&words(&["/nonexistent/check"]), Duration::from_secs(1))
            .unwrap_err()
            .contains("/nonexistent/check"));
    }
}
