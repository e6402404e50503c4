//! Log output for both programs: standard error, or a file that is reopened
//! after SIGHUP so logrotate can move it away.
//!
//! The log crate's logger is process-global by design; the one piece of state
//! it shares with the signal thread is a reopen counter.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use simplelog::{ConfigBuilder, LevelFilter, WriteLogger};

use serde::{Deserialize, Serialize};

/// Where the log goes and how each line looks (`logfmt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Time stamp, level, source and message: for a log file.
    Text,
    /// Level, source and message only: for a service manager that stamps lines
    /// itself (systemd's journal).
    Msg,
}

static REOPEN_REQUESTS: AtomicUsize = AtomicUsize::new(0);

/// Asks the log file to be reopened before its next line.
pub fn request_reopen() {
    REOPEN_REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// `-v` count to level: info by default, then debug, then trace.
pub fn level(verbosity: u8) -> LevelFilter {
    match verbosity {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs the logger: into `file` if given, else standard error.
pub fn init(file: Option<&Path>, format: LogFormat, level: LevelFilter) -> io::Result<()> {
    let mut config = ConfigBuilder::new();
    config.set_target_level(LevelFilter::Off).set_thread_level(LevelFilter::Off).set_location_level(LevelFilter::Off);
    match format {
        LogFormat::Text => {
            config.set_time_format_rfc2822();
        }
        LogFormat::Msg => {
            config.set_time_level(LevelFilter::Off);
        }
    }
    let config = config.build();
    let installed = match file {
        Some(path) => WriteLogger::init(level, config, LogFile::open(path)?),
        // simplelog writes each piece of a line separately: buffer to whole
        // lines, one write(2) each, as LogFile does.
        None => WriteLogger::init(level, config, io::LineWriter::new(io::stderr())),
    };
    // A second init in one process (tests) keeps the first logger.
    let _ = installed;
    Ok(())
}

/// A log file that writes whole lines and reopens its path when asked.
struct LogFile {
    path: PathBuf,
    file: File,
    reopens_seen: usize,
    line: Vec<u8>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<LogFile> {
        let file = open_log(path)?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            reopens_seen: REOPEN_REQUESTS.load(Ordering::Relaxed),
            line: Vec::new(),
        })
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open log file {}: {e}", path.display())))
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if let Some(end) = self.line.iter().rposition(|&b| b == b'\n') {
            let requests = REOPEN_REQUESTS.load(Ordering::Relaxed);
            if requests != self.reopens_seen {
                self.reopens_seen = requests;
                // On failure keep writing to the old file rather than lose lines.
                if let Ok(file) = open_log(&self.path) {
                    self.file = file;
                }
            }
            let result = self.file.write_all(&self.line[..=end]);
            self.line.drain(..=end);
            result?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
