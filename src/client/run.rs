//! `hbc run` and `hbc signal`: jobs as checks (hbd(8), JOBS).
//!
//! `hbc run -- CMD ARGS…` tells hbd a run started, runs the command with
//! its standard output and error passed through (and their last
//! [`JOB_OUTPUT_MAX`] bytes kept), then tells hbd how it ended, and exits
//! with the command's own status, so that it can wrap any cron line. hbd
//! being unreachable never stops or holds up the job: each signal has a
//! bounded wait ([`SIGNAL_WAIT`]), the start is sent while the command
//! already runs, and a failure to report is said on standard error.
//!
//! The command runs in a process group of its own, so that `--timeout`
//! ends it with everything it started; the signals that would end hbc
//! (SIGTERM, SIGINT, SIGHUP, SIGQUIT) are passed on to that group.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError};
use serde_json::{json, Value};

use super::sender::{self, ClientSettings};
use crate::wire::{is_valid_host_name, tail_chars, JobEvent, JOB_ID, JOB_MESSAGE_MAX, JOB_OUTPUT_MAX};

/// How long one signal may wait for hbd's ACKs, repeats included.
pub const SIGNAL_WAIT: Duration = Duration::from_secs(3);
/// After `--timeout`, SIGTERM; this long later, SIGKILL.
const KILL_AFTER: Duration = Duration::from_secs(5);
/// Output still read after the command exited: a helper it left running in
/// the background may hold the pipes open, and is not waited for.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// The exit status of a run `--timeout` ended, as timeout(1) has it.
pub const EXIT_TIMED_OUT: u8 = 124;
/// The exit status when the command cannot be found, as shells have it.
const EXIT_NOT_FOUND: u8 = 127;
/// The exit status when it is found but cannot be run.
const EXIT_CANNOT_RUN: u8 = 126;

/// What a job declares with each signal.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    pub name: String,
    pub interval: Option<f64>,
    pub grace: Option<f64>,
    pub timeout: Option<f64>,
}

/// The name `hbc run` gives a job without `--name`: the command's file
/// name without its directory and from its first dot on, in lower case,
/// every character a host name cannot hold made a hyphen
/// (`/usr/local/bin/backup.sh` → `backup`). None when nothing is left.
pub fn default_name(command: &OsStr) -> Option<String> {
    let base = Path::new(command).file_name()?.to_string_lossy().to_ascii_lowercase();
    let stem = base.split('.').next().unwrap_or_default();
    let name: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let name = name.trim_matches('-');
    let name = name.get(..name.len().min(63)).unwrap_or(name).trim_end_matches('-').to_string();
    is_valid_host_name(&name).then_some(name)
}

/// The `JOB` object of one signal (`seq` and `client` are the sender's).
fn message(job: &JobOptions, event: JobEvent) -> Value {
    let mut message = json!({"ID": JOB_ID, "name": job.name, "event": event.as_str()});
    if let Some(map) = message.as_object_mut() {
        for (key, value) in [("interval", job.interval), ("grace", job.grace), ("timeout", job.timeout)] {
            if let Some(value) = value {
                map.insert(key.into(), json!(value));
            }
        }
    }
    message
}

/// Sends a signal on a thread of its own and waits at most
/// [`SIGNAL_WAIT`] (and a little) for it: name resolution can hang too.
fn send_bounded(settings: &ClientSettings, message: Value) -> Result<(), String> {
    let (done, outcome) = bounded(1);
    let settings = settings.clone();
    std::thread::Builder::new()
        .name("signal".into())
        .spawn(move || {
            let _ = done.send(sender::send_signal(settings, false, message, SIGNAL_WAIT));
        })
        .map_err(|e| format!("start the sender: {e}"))?;
    match outcome.recv_timeout(SIGNAL_WAIT + Duration::from_millis(500)) {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", SIGNAL_WAIT.as_secs())),
    }
}

/// `hbc signal`: one signal, with an exit code and a message for `fail`
/// (or a message for any).
pub fn signal(
    settings: &ClientSettings,
    job: &JobOptions,
    event: JobEvent,
    exit_code: Option<i32>,
    text: Option<&str>,
    print: bool,
) -> Result<(), String> {
    let mut message = message(job, event);
    if let Some(code) = exit_code {
        message["exit_code"] = json!(code);
    }
    if let Some(text) = text {
        message["message"] = json!(crate::wire::truncate_chars(text, JOB_MESSAGE_MAX));
    }
    if print {
        return sender::send_signal(settings.clone(), true, message, SIGNAL_WAIT);
    }
    send_bounded(settings, message)
}

/// The last bytes of the command's output, both streams as they came.
#[derive(Default)]
struct Tail(VecDeque<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(JOB_OUTPUT_MAX)..];
        let excess = (self.0.len() + bytes.len()).saturating_sub(JOB_OUTPUT_MAX);
        self.0.drain(..excess);
        self.0.extend(bytes);
    }

    /// As text: invalid UTF-8 replaced, at most [`JOB_OUTPUT_MAX`] bytes.
    fn text(&self) -> String {
        let bytes: Vec<u8> = self.0.iter().copied().collect();
        tail_chars(&String::from_utf8_lossy(&bytes), JOB_OUTPUT_MAX).to_string()
    }
}

/// Copies one of the child's streams to ours, keeping its tail. Our own
/// stream failing (closed) does not stop the copy: the child must never
/// block on a full pipe.
fn tee(mut from: impl Read + Send + 'static, to_stderr: bool, tail: Arc<Mutex<Tail>>) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tee".into())
        .spawn(move || {
            let mut buf = vec![0u8; 16 << 10];
            let mut ours_open = true;
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                };
                if ours_open {
                    let written = if to_stderr {
                        std::io::stderr().write_all(&buf[..n])
                    } else {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&buf[..n]).and_then(|_| out.flush())
                    };
                    ours_open = written.is_ok();
                }
                if let Ok(mut tail) = tail.lock() {
                    tail.push(&buf[..n]);
                }
            }
        })
        .ok()
}

/// How the command ended.
struct Outcome {
    status: Option<ExitStatus>,
    timed_out: bool,
    /// Why it could not be started, with the status a shell would give.
    not_started: Option<(String, u8)>,
    duration: Duration,
    output: String,
}

/// `hbc run`: runs `command` as the job `job`, reporting to the servers of
/// `settings` (None: hbc's configuration is broken; the job runs all the
/// same, unreported). Returns the exit status hbc ends with.
pub fn run(settings: Option<&ClientSettings>, job: &JobOptions, command: &[OsString]) -> u8 {
    let warn = |what: &str, e: String| eprintln!("hbc: job {}: {what} not reported to hbd: {e}", job.name);
    let start = settings.map(|settings| {
        let (settings, message) = (settings.clone(), message(job, JobEvent::Start));
        std::thread::spawn(move || send_bounded(&settings, message))
    });
    let outcome = execute(command, job.timeout.map(Duration::from_secs_f64));
    // The start goes first: the end of a quick command waits for it.
    if let Some(Ok(Err(e))) = start.map(|s| s.join()) {
        warn("start", e);
    }
    let (event, status, exit_code, signal, note) = describe(&outcome, job.timeout);
    if let Some(settings) = settings {
        let mut message = message(job, event);
        if let Some(map) = message.as_object_mut() {
            map.insert("exit_code".into(), json!(exit_code));
            map.insert("signal".into(), json!(signal));
            map.insert("duration_s".into(), json!((outcome.duration.as_secs_f64() * 1000.0).round() / 1000.0));
            map.insert("output".into(), json!(outcome.output));
            if let Some(note) = &note {
                map.insert("message".into(), json!(note));
            }
        }
        if let Err(e) = send_bounded(settings, message) {
            warn("end", e);
        }
    }
    if let Some(note) = note.filter(|_| outcome.not_started.is_some() || outcome.timed_out) {
        eprintln!("hbc: job {}: {note}", job.name);
    }
    status
}

/// The signal's event, hbc's exit status, the exit code and signal to
/// report, and a note for a run that timed out or never started.
fn describe(outcome: &Outcome, timeout: Option<f64>) -> (JobEvent, u8, Option<i32>, Option<i32>, Option<String>) {
    if let Some((why, status)) = &outcome.not_started {
        return (JobEvent::Fail, *status, Some(i32::from(*status)), None, Some(why.clone()));
    }
    let Some(status) = outcome.status else {
        return (JobEvent::Fail, 1, None, None, Some("the command could not be waited for".into()));
    };
    let (code, signal) = (status.code(), status.signal());
    if outcome.timed_out {
        let note = format!("timed out after {} s (--timeout); killed with its process group", timeout.unwrap_or(0.0));
        return (JobEvent::Fail, EXIT_TIMED_OUT, code, signal, Some(note));
    }
    match (code, signal) {
        (Some(0), _) => (JobEvent::Ok, 0, Some(0), None, None),
        (Some(code), _) => (JobEvent::Fail, (code & 0xff) as u8, Some(code), None, None),
        (None, Some(signal)) => (JobEvent::Fail, (128 + signal).clamp(0, 255) as u8, None, Some(signal), None),
        (None, None) => (JobEvent::Fail, 1, None, None, None),
    }
}

/// Runs the command in its own process group, passing its output through.
fn execute(command: &[OsString], timeout: Option<Duration>) -> Outcome {
    let started = Instant::now();
    let not_started = |why: String, status: u8| Outcome {
        status: None,
        timed_out: false,
        not_started: Some((why, status)),
        duration: started.elapsed(),
        output: String::new(),
    };
    let Some((program, args)) = command.split_first() else {
        return not_started("no command".into(), EXIT_NOT_FOUND);
    };
    // In a group of its own the command is not the terminal's foreground:
    // reading the terminal would stop it (SIGTTIN), so it reads nothing.
    // SAFETY: isatty(3) only looks at the descriptor.
    let stdin = if unsafe { libc::isatty(0) } == 1 { Stdio::null() } else { Stdio::inherit() };
    let spawned = Command::new(program)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let status = if e.kind() == std::io::ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_CANNOT_RUN };
            return not_started(format!("cannot run {}: {e}", program.to_string_lossy()), status);
        }
    };
    let group = child.id() as libc::pid_t;
    let tail = Arc::new(Mutex::new(Tail::default()));
    let readers: Vec<JoinHandle<()>> = [
        child.stdout.take().and_then(|out| tee(out, false, tail.clone())),
        child.stderr.take().and_then(|err| tee(err, true, tail.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    forward_signals(group);
    let (exited, status) = bounded(1);
    let waiter = std::thread::Builder::new().name("wait".into()).spawn(move || {
        let _ = exited.send(child.wait());
    });
    if waiter.is_err() {
        kill_group(group, libc::SIGKILL);
        return not_started("cannot wait for the command".into(), EXIT_CANNOT_RUN);
    }
    let mut timed_out = false;
    let result = match timeout {
        None => status.recv().ok(),
        Some(timeout) => match status.recv_timeout(timeout) {
            Ok(result) => Some(result),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                // Not reaped yet (the waiter has not returned), so the
                // group's id cannot have been reused.
                timed_out = true;
                kill_group(group, libc::SIGTERM);
                match status.recv_timeout(KILL_AFTER) {
                    Ok(result) => {
                        kill_group(group, libc::SIGKILL);
                        Some(result)
                    }
                    Err(_) => {
                        kill_group(group, libc::SIGKILL);
                        status.recv().ok()
                    }
                }
            }
        },
    };
    let duration = started.elapsed();
    let output_deadline = Instant::now() + OUTPUT_GRACE;
    for reader in readers {
        while !reader.is_finished() && Instant::now() < output_deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let output = tail.lock().map(|t| t.text()).unwrap_or_default();
    let status = result.and_then(Result::ok).or_else(|| timed_out.then(|| ExitStatus::from_raw(libc::SIGKILL)));
    Outcome { status, timed_out, not_started: None, duration, output }
}

/// Sends `signal` to the process group `group`. Called only while its
/// leader is unreaped, or just after (hbc's own waiter reaps it), so the
/// id names our child's group.
fn kill_group(group: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; see above for the id.
    unsafe { libc::kill(-group, signal) };
}

/// Passes the signals that would end hbc on to the command's group: it
/// runs in a group of its own, so a terminal's Ctrl-C or cron's SIGTERM
/// would not reach it otherwise. hbc itself stays to report the outcome.
fn forward_signals(group: libc::pid_t) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT]) else { return };
    let _ = std::thread::Builder::new().name("forward".into()).spawn(move || {
        for signal in signals.forever() {
            kill_group(group, signal);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_come_from_the_command() {
        let name = |s: &str| default_name(OsStr::new(s));
        assert_eq!(name("/usr/local/bin/backup.sh").as_deref(), Some("backup"));
        assert_eq!(name("Renew_Certs").as_deref(), Some("renew-certs"));
        assert_eq!(name("./db-dump.tar.gz").as_deref(), Some("db-dump"));
        assert_eq!(name(&"x".repeat(100)).map(|n| n.len()), Some(63));
        assert_eq!(name("/"), None);
        assert_eq!(name(".hidden"), None);
        assert_eq!(name("äöü"), None);
    }

    #[test]
    fn the_tail_is_bounded_and_text() {
        let mut tail = Tail::default();
        tail.push(&vec![b'a'; 10_000]);
        tail.push(b"\xff\xfe end");
        let text = tail.text();
        assert!(text.len() <= JOB_OUTPUT_MAX && text.ends_with("\u{fffd}\u{fffd} end"), "{}", text.len());
    }

    #[test]
    fn outcomes_become_statuses_as_shells_give_them() {
        let outcome = |raw: i32, timed_out: bool| Outcome {
            status: Some(ExitStatus::from_raw(raw)),
            timed_out,
            not_started: None,
            duration: Duration::ZERO,
            output: String::new(),
        };
        assert_eq!(describe(&outcome(0, false), None).1, 0);
        let (event, status, code, ..) = describe(&outcome(3 << 8, false), None);
        assert_eq!((event, status, code), (JobEvent::Fail, 3, Some(3)));
        let (_, status, _, signal, _) = describe(&outcome(libc::SIGKILL, false), None);
        assert_eq!((status, signal), (137, Some(libc::SIGKILL)));
        assert_eq!(describe(&outcome(libc::SIGTERM, true), Some(2.0)).1, EXIT_TIMED_OUT);
    }
}
