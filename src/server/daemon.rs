//! Classic daemon mode: detach from the terminal and keep a pid file.
//!
//! Runs before any thread is started (fork(2) copies only the calling thread).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Forks twice and starts a new session, so hbd has no controlling terminal
/// and is not a session leader; the original process exits 0. Standard input
/// and output go to /dev/null, standard error too (logs go to `logfile`).
pub fn detach() -> io::Result<()> {
    // SAFETY: no other thread exists yet; each call's result is checked.
    unsafe {
        fork_and_exit_parent()?;
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        fork_and_exit_parent()?;
        libc::umask(0o022);
    }
    std::env::set_current_dir("/")?;
    let null = fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    use std::os::fd::AsRawFd;
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors of our own process.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

unsafe fn fork_and_exit_parent() -> io::Result<()> {
    match libc::fork() {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(()),
        _ => libc::_exit(0),
    }
}

/// The pid file of a running daemon; removed when dropped.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Fails if the file names a process that is still alive.
    pub fn check_not_running(path: &Path) -> io::Result<()> {
        let Ok(text) = fs::read_to_string(path) else {
            return Ok(());
        };
        let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
            return Ok(());
        };
        // SAFETY: signal 0 only checks that the process exists.
        if pid > 0 && unsafe { libc::kill(pid, 0) } == 0 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("pid file {} names running process {pid}: is hbd already running?", path.display()),
            ));
        }
        Ok(())
    }

    pub fn create(path: &Path) -> io::Result<PidFile> {
        fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| io::Error::new(e.kind(), format!("write pid file {}: {e}", path.display())))?;
        Ok(PidFile { path: path.to_path_buf() })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
