//! Runs an external command for `nagios_runner` and `exec`: no shell, its own
//! process group, output capped, and the whole group killed on timeout so a
//! check that forks helpers cannot leave them behind.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Output kept per stream; the rest is read and discarded so the child never
/// blocks on a full pipe.
pub const OUTPUT_CAP: usize = 64 << 10;

#[derive(Debug)]
pub struct Finished {
    /// `None` when killed by a signal (including our timeout).
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
    pub timed_out: bool,
}

/// Splits a command line into words: whitespace separates, single quotes
/// keep everything literal, double quotes and backslashes work as in sh.
/// There is no expansion of variables, globs or pipes; write `sh -c '…'` for those.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ' in `{line}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated \" in `{line}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \" in `{line}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing \\ in `{line}`")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}

/// Runs `words` with a time limit; an error means it could not be started.
pub fn run(words: &[String], timeout: Duration) -> Result<Finished, String> {
    let (program, args) = words.split_first().ok_or("empty command")?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let (status, timed_out) = wait_or_kill(&mut child, started + timeout)?;
    let duration = started.elapsed();
    Ok(Finished { exit_code: status.code(), stdout: collect(stdout), stderr: collect(stderr), duration, timed_out })
}

fn wait_or_kill(child: &mut Child, deadline: Instant) -> Result<(std::process::ExitStatus, bool), String> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            return Ok((status, false));
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on the process group we created for this child.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let status = child.wait().map_err(|e| format!("wait: {e}"))?;
            return Ok((status, true));
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

type Drain = Option<JoinHandle<Vec<u8>>>;

fn drain(stream: Option<impl Read + Send + 'static>) -> Drain {
    let mut stream = stream?;
    std::thread::Builder::new()
        .name("plugin-output".into())
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

/// The output read so far. A grandchild that escaped the process group may
/// keep the pipe open; we do not wait for it beyond the child's own exit.
fn collect(drain: Drain) -> String {
    let Some(handle) = drain else {
        return String::new();
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    while !handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !handle.is_finished() {
        return String::new();
    }
    handle.join().map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn split_like_sh_without_expansion() {
        assert_eq!(
            split_words("/bin/check -w 5,4,3 -c 10,8,6").unwrap(),
            words(&["/bin/check", "-w", "5,4,3", "-c", "10,8,6"])
        );
        assert_eq!(
            split_words(r#"a 'b c' "d \"e\"" f\ g '' $HOME"#).unwrap(),
            words(&["a", "b c", "d \"e\"", "f g", "", "$HOME"])
        );
        assert!(split_words("a 'b").is_err());
        assert!(split_words("   ").is_err());
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
