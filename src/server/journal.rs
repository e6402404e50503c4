//! The journal thread: the only writer of `journal_dir/journal_file`.
//!
//! Receives [`JournalMsg`]s from `udp` (every accepted message) and `core`
//! (events) and appends one JSON line each, in the Python hbd's shape:
//! `{"timestamp":…,"datetime":…,"source_ip":…,"source_port":…,"message":{…}}`;
//! events are lines with a `"type"` key instead of `"message"`.
//!
//! Invariants: lines reach the file only whole — they are collected in a
//! buffer and written in pieces of at most 64 KiB that end at line
//! boundaries, and a failed write is cut back to the last whole line.
//! Rotation happens between lines (`file` → `file.1` → … → `file.N`). The
//! buffer is flushed when it holds 64 KiB, when its oldest line is a second
//! old, on `Reopen` and on exit.
//!
//! A full (or read-only) disk: what fits is written, piece by piece, and the
//! rest waits in the buffer (up to [`MAX_UNWRITTEN`], beyond which lines are
//! dropped and counted); writing is retried once a second and resumes by
//! itself when space returns. Failures are logged at most once a minute
//! with counts, and the totals go to `core` for `/metrics`
//! ([`CoreMsg::JournalStats`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{error, info, warn};

use crate::server::config::JournalSettings;
use crate::server::core::CoreMsg;
use crate::server::model::Event;
use crate::server::views::{event_fields, round3};
use crate::wire::push_decimal;

const FLUSH_BYTES: usize = 64 << 10;
const FLUSH_AGE: Duration = Duration::from_secs(1);
/// Lines kept in memory while the disk refuses them (full, read-only);
/// beyond this they are dropped and counted rather than exhausting RAM.
const MAX_UNWRITTEN: usize = 16 << 20;
/// While writes fail, at most one error line in this long.
const ERROR_REPORT_EVERY: Duration = Duration::from_secs(60);
/// How often a refusing disk is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The journal's totals since start, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Lines that never reached the file (the buffer was full, or hbd
    /// stopped while the disk refused them).
    pub dropped_lines: u64,
    /// Writes the disk refused.
    pub write_errors: u64,
}

/// What the journal receives.
#[derive(Debug)]
pub enum JournalMsg {
    /// Messages accepted by `udp`, in arrival order (batched: see `udp::BATCH`).
    Received(ReceivedBatch),
    /// A state change decided by `core`.
    Event { at: f64, event: Event },
    /// Reopen the file after an outside rotation (SIGHUP from logrotate).
    Reopen,
}

/// Messages accepted by `udp`, each as compact JSON. Their texts share one
/// buffer, so a batch costs two allocations however many messages it holds
/// (the udp thread makes none per datagram).
#[derive(Debug, Default)]
pub struct ReceivedBatch {
    text: Vec<u8>,
    /// When and from where each message came, and where its text ends.
    entries: Vec<(SystemTime, SocketAddr, usize)>,
}

impl ReceivedBatch {
    pub fn with_capacity(messages: usize, bytes: usize) -> ReceivedBatch {
        ReceivedBatch { text: Vec::with_capacity(bytes), entries: Vec::with_capacity(messages) }
    }

    pub fn push(&mut self, at: SystemTime, source: SocketAddr, json: &[u8]) {
        self.text.extend_from_slice(json);
        self.entries.push((at, source, self.text.len()));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each message with when and from where it came, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (SystemTime, SocketAddr, &[u8])> {
        let mut start = 0;
        self.entries.iter().map(move |&(at, source, end)| {
            let json = &self.text[start..end];
            start = end;
            (at, source, json)
        })
    }
}

pub struct Journal {
    settings: JournalSettings,
    file: File,
    /// Bytes in the file, whole lines only.
    size: u64,
    pending: Vec<u8>,
    pending_since: Option<Instant>,
    /// While the disk refuses writes: when to try again. No write is tried
    /// before, however full the buffer gets.
    retry_at: Option<Instant>,
    stats: JournalStats,
    /// Dropped lines and failed writes not yet reported in a log line.
    unreported: JournalStats,
    last_error_report: Option<Instant>,
    datetime: DatetimeCache,
    /// The line being formatted; kept to reuse its allocation.
    line: Vec<u8>,
}

impl Journal {
    /// Opens (creating directory and file) for appending; done before the
    /// daemon detaches so that a bad path is reported on the terminal.
    pub fn open(settings: JournalSettings) -> io::Result<Journal> {
        if let Some(dir) = settings.path.parent() {
            fs::create_dir_all(dir).map_err(|e| annotate(e, "create journal directory", dir))?;
        }
        let (file, size) = open_append(&settings.path)?;
        Ok(Journal {
            settings,
            file,
            size,
            pending: Vec::with_capacity(FLUSH_BYTES + 4096),
            pending_since: None,
            retry_at: None,
            stats: JournalStats::default(),
            unreported: JournalStats::default(),
            last_error_report: None,
            datetime: DatetimeCache::default(),
            line: Vec::with_capacity(1024),
        })
    }

    pub fn path(&self) -> &Path {
        &self.settings.path
    }

    fn handle(&mut self, msg: JournalMsg) {
        match msg {
            JournalMsg::Received(batch) => {
                for (at, source, json) in batch.iter() {
                    self.handle_received(at, source, json);
                }
            }
            JournalMsg::Event { at, event } => self.handle_event(at, &event),
            JournalMsg::Reopen => self.handle_reopen(),
        }
    }

    fn handle_received(&mut self, at: SystemTime, source: SocketAddr, json: &[u8]) {
        // Written by hand, without `fmt`: this runs for every datagram, and
        // every piece but the already-validated message is a number or a
        // fixed-form string. The line is whole before `append` sees it, so
        // rotation and the buffer's invariants are those of any other line.
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let millis = at.duration_since(UNIX_EPOCH).map(|d| (d.as_nanos() + 500_000) / 1_000_000).unwrap_or(0);
        let (second, milli) = ((millis / 1000) as u64, (millis % 1000) as u64);
        line.extend_from_slice(b"{\"timestamp\":");
        push_decimal(&mut line, second);
        line.push(b'.');
        push_padded(&mut line, milli, 3);
        line.extend_from_slice(b",\"datetime\":\"");
        line.extend_from_slice(self.datetime.format(second as f64).as_bytes());
        line.extend_from_slice(b"\",\"source_ip\":\"");
        match source.ip() {
            IpAddr::V4(ip) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        line.push(b'.');
                    }
                    push_decimal(&mut line, u64::from(octet));
                }
            }
            IpAddr::V6(ip) => {
                let _ = write!(line, "{ip}");
            }
        }
        line.extend_from_slice(b"\",\"source_port\":");
        push_decimal(&mut line, u64::from(source.port()));
        line.extend_from_slice(b",\"message\":");
        line.extend_from_slice(json);
        line.extend_from_slice(b"}\n");
        self.append(&line);
        self.line = line;
    }

    fn handle_event(&mut self, at: f64, event: &Event) {
        let (kind, fields) = event_fields(event);
        // Time and type first, as time leads on message lines; then the fields.
        let fields = fields.to_string();
        let mut line = format!(
            "{{\"timestamp\":{},\"datetime\":\"{}\",\"type\":\"{kind}\",",
            round3(at),
            self.datetime.format(at)
        )
        .into_bytes();
        line.extend_from_slice(&fields.as_bytes()[1..]);
        line.push(b'\n');
        self.append(&line);
    }

    fn handle_reopen(&mut self) {
        self.flush();
        match open_append(&self.settings.path) {
            Ok((file, size)) => {
                self.file = file;
                self.size = size;
                info!("journal: reopened {}", self.settings.path.display());
            }
            Err(e) => error!("journal: {e}; still writing to the old file"),
        }
    }

    fn append(&mut self, line: &[u8]) {
        let max = self.settings.max_size;
        let would_be = self.size + (self.pending.len() + line.len()) as u64;
        if max > 0 && would_be > max && self.size + self.pending.len() as u64 > 0 {
            self.flush();
            if self.size > 0 {
                self.rotate();
            }
        }
        if self.pending.len() + line.len() > MAX_UNWRITTEN {
            self.stats.dropped_lines += 1;
            self.unreported.dropped_lines += 1;
            return;
        }
        self.pending.extend_from_slice(line);
        self.pending_since.get_or_insert_with(Instant::now);
        if self.pending.len() >= FLUSH_BYTES && self.retry_at.is_none() {
            self.flush();
        }
    }

    /// Writes the buffer in pieces that end at line boundaries, so that a
    /// nearly full disk takes what fits. On failure the file is cut back to
    /// its last whole line, the rest of the buffer is kept, and the next
    /// try waits [`RETRY_EVERY`].
    fn flush(&mut self) {
        let mut written = 0;
        let mut failure = None;
        while written < self.pending.len() {
            let rest = &self.pending[written..];
            let piece = if rest.len() <= FLUSH_BYTES {
                rest.len()
            } else {
                // Up to the last line end within the piece, or one whole
                // line when a single line is longer than that.
                match rest[..FLUSH_BYTES].iter().rposition(|&b| b == b'\n') {
                    Some(end) => end + 1,
                    None => rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |end| end + 1),
                }
            };
            match self.file.write_all(&rest[..piece]) {
                Ok(()) => {
                    written += piece;
                    self.size += piece as u64;
                }
                Err(e) => {
                    let _ = self.file.set_len(self.size);
                    failure = Some(e);
                    break;
                }
            }
        }
        self.pending.drain(..written);
        match failure {
            None => {
                self.pending_since = None;
                if self.retry_at.take().is_some() || self.unreported != JournalStats::default() {
                    self.report_resumed();
                }
            }
            Some(e) => {
                let now = Instant::now();
                self.retry_at = Some(now + RETRY_EVERY);
                self.pending_since = Some(now);
                self.stats.write_errors += 1;
                self.unreported.write_errors += 1;
                if self.last_error_report.is_none_or(|last| now.duration_since(last) >= ERROR_REPORT_EVERY) {
                    self.last_error_report = Some(now);
                    error!(
                        "journal: write {}: {e}; {} writes failed and {} lines were dropped since the last report; {} bytes wait, retrying every second",
                        self.settings.path.display(),
                        self.unreported.write_errors,
                        self.unreported.dropped_lines,
                        self.pending.len()
                    );
                    self.unreported = JournalStats::default();
                }
            }
        }
    }

    /// The one line that says writing works again, with what was lost.
    fn report_resumed(&mut self) {
        warn!(
            "journal: writing {} again; {} writes had failed and {} lines were dropped since the last report ({} dropped in all)",
            self.settings.path.display(),
            self.unreported.write_errors,
            self.unreported.dropped_lines,
            self.stats.dropped_lines
        );
        self.unreported = JournalStats::default();
        self.last_error_report = None;
    }

    /// `file.N-1` → `file.N`, …, `file` → `file.1`, then a fresh `file`.
    fn rotate(&mut self) {
        let base = &self.settings.path;
        let backups = self.settings.max_backups;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", base.display()));
        let result = if backups == 0 {
            fs::remove_file(base)
        } else {
            (1..backups)
                .rev()
                .filter(|n| numbered(*n).exists())
                .try_for_each(|n| fs::rename(numbered(n), numbered(n + 1)))
                .and_then(|()| fs::rename(base, numbered(1)))
        };
        if let Err(e) = result {
            error!("journal: rotate {}: {e}; continuing in the same file", base.display());
            return;
        }
        match open_append(base) {
            Ok((file, size)) => {
                self.file = file;
                self.size = size;
            }
            Err(e) => error!("journal: {e}; lines stay buffered"),
        }
    }

    fn flush_due(&self) -> Option<Instant> {
        self.retry_at.or(self.pending_since.map(|since| since + FLUSH_AGE))
    }
}

/// Starts the journal thread. `to_core` hears the totals once a second
/// when they changed; a full core inbox skips a report (the next one
/// carries the same totals), so the journal never waits on the core.
pub fn spawn(
    mut journal: Journal,
    inbox: Receiver<JournalMsg>,
    to_core: Sender<CoreMsg>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("journal".into()).spawn(move || {
        info!("journal: writing {}", journal.path().display());
        let mut reported = JournalStats::default();
        let mut next_report = Instant::now() + STATS_EVERY;
        loop {
            let due = journal.flush_due().map_or(next_report, |due| due.min(next_report));
            match inbox.recv_deadline(due) {
                Ok(msg) => {
                    journal.handle(msg);
                    if journal.flush_due().is_some_and(|due| due <= Instant::now()) {
                        journal.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if journal.flush_due().is_some_and(|due| due <= Instant::now()) {
                        journal.flush();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_report {
                next_report = Instant::now() + STATS_EVERY;
                if journal.stats != reported && to_core.try_send(CoreMsg::JournalStats(journal.stats)).is_ok() {
                    reported = journal.stats;
                }
            }
        }
        journal.flush();
        if !journal.pending.is_empty() {
            let lines = journal.pending.iter().filter(|&&b| b == b'\n').count() as u64;
            journal.stats.dropped_lines += lines;
            error!(
                "journal: {lines} lines ({} bytes) could not be written at exit; {} lines dropped in all",
                journal.pending.len(),
                journal.stats.dropped_lines
            );
        } else if journal.stats.dropped_lines > 0 {
            warn!("journal: {} lines were dropped in all while the disk refused writes", journal.stats.dropped_lines);
        }
        info!("journal: closed");
    })
}

/// How often the totals go to `core`, when they changed.
const STATS_EVERY: Duration = Duration::from_secs(1);

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file =
        OpenOptions::new().create(true).append(true).open(path).map_err(|e| annotate(e, "open journal", path))?;
    let size = file.metadata().map_err(|e| annotate(e, "stat journal", path))?.len();
    Ok((file, size))
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Formats local time as `2026-03-28T12:34:56`, once per second: at a high
/// message rate nearly every line reuses the last result.
#[derive(Default)]
struct DatetimeCache {
    second: i64,
    text: String,
}

impl DatetimeCache {
    fn format(&mut self, ts: f64) -> &str {
        let second = ts.floor() as i64;
        if self.text.is_empty() || second != self.second {
            self.second = second;
            self.text = local_datetime(second);
        }
        &self.text
    }
}

/// Appends `n` in decimal with leading zeros to `width` digits.
fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let start = out.len();
    push_decimal(out, n);
    let len = out.len() - start;
    if len < width {
        out.splice(start..start, std::iter::repeat_n(b'0', width - len));
    }
}

/// Local time as the Python hbd's `datetime.fromtimestamp(ts).isoformat()`
/// to the second.
pub fn local_datetime(second: i64) -> String {
    // `as _`: time_t is i64 here, and libc names it deprecated on musl
    // (whose type may change); localtime_r's own signature gives the type.
    let t = second as _;
    // SAFETY: localtime_r writes only into `tm`, which we own, and reads `t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::from("1970-01-01T00:00:00");
    }
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use serde_json::json;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hbd-journal-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn received(n: usize) -> JournalMsg {
        let mut batch = ReceivedBatch::default();
        batch.push(
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            "192.0.2.1:50003".parse().unwrap(),
            format!("{{\"ID\":\"HTB\",\"name\":\"h{n}\"}}").as_bytes(),
        );
        JournalMsg::Received(batch)
    }

    #[test]
    fn line_has_the_python_shape() {
        let dir = temp_dir("shape");
        let path = dir.join("m.journal");
        let mut j = Journal::open(JournalSettings { path: path.clone(), max_size: 0, max_backups: 1 }).unwrap();
        j.handle(received(1));
        j.flush();
        let text = fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["timestamp"], json!(1700000000.123));
        assert_eq!(v["source_ip"], "192.0.2.1");
        assert_eq!(v["source_port"], 50003);
        assert_eq!(v["message"]["name"], "h1");
        assert_eq!(v["datetime"].as_str().unwrap().len(), 19);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5);
        fs::remove_dir_all(dir).unwrap();
    }

    /// The hand-written line is the one `write!` made before it.
    #[test]
    fn received_line_matches_the_formatted_one() {
        let dir = temp_dir("format");
        let mut j =
            Journal::open(JournalSettings { path: dir.join("m.journal"), max_size: 0, max_backups: 1 }).unwrap();
        let json = br#"{"ID":"HTB","name":"a"}"#;
        for (millis, source) in [
            (1_700_000_000_123u64, "192.0.2.1:50003"),
            (1_700_000_000_000, "10.0.0.255:1"),
            (1_700_000_000_007, "[2001:db8::1]:65535"),
            (1_700_000_000_070, "0.0.0.0:0"),
        ] {
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
            let source: SocketAddr = source.parse().unwrap();
            let before = j.pending.len();
            j.handle_received(at, source, json);
            let ts = crate::wire::unix_seconds(at);
            let expected = format!(
                "{{\"timestamp\":{ts:.3},\"datetime\":\"{}\",\"source_ip\":\"{}\",\"source_port\":{},\"message\":{}}}\n",
                local_datetime(ts.floor() as i64),
                source.ip(),
                source.port(),
                std::str::from_utf8(json).unwrap()
            );
            assert_eq!(std::str::from_utf8(&j.pending[before..]).unwrap(), expected);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotation_keeps_every_line_whole_and_each_file_under_the_cap() {
        let dir = temp_dir("rotate");
        let path = dir.join("m.journal");
        let j = Journal::open(JournalSettings { path: path.clone(), max_size: 1000, max_backups: 50 }).unwrap();
        let (tx, rx) = bounded(16);
        let (to_core, _core) = bounded(4);
        let handle = spawn(j, rx, to_core).unwrap();
        for n in 0..200 {
            tx.send(received(n)).unwrap();
        }
        drop(tx);
        handle.join().unwrap();
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let text = fs::read_to_string(&p).unwrap();
            assert!(text.len() <= 1000, "{} is {} bytes", p.display(), text.len());
            assert!(text.ends_with('\n'));
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                names.push(v["message"]["name"].as_str().unwrap().to_string());
            }
        }
        names.sort();
        let mut expected: Vec<String> = (0..200).map(|n| format!("h{n}")).collect();
        expected.sort();
        assert_eq!(names, expected);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn backups_beyond_the_limit_are_removed() {
        let dir = temp_dir("backups");
        let path = dir.join("m.journal");
        let mut j = Journal::open(JournalSettings { path: path.clone(), max_size: 200, max_backups: 2 }).unwrap();
        for n in 0..50 {
            j.handle(received(n));
        }
        j.flush();
        let mut files: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        assert_eq!(files, ["m.journal", "m.journal.1", "m.journal.2"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn event_lines_carry_type_and_time() {
        let dir = temp_dir("event");
        let path = dir.join("m.journal");
        let mut j = Journal::open(JournalSettings { path: path.clone(), max_size: 0, max_backups: 1 }).unwrap();
        j.handle(JournalMsg::Event {
            at: 5.0,
            event: Event::HostDown { name: "a".into(), last_seen: 1.0, silent_for: 4.0 },
        });
        j.flush();
        let v: serde_json::Value = serde_json::from_str(fs::read_to_string(&path).unwrap().trim_end()).unwrap();
        assert_eq!(v["type"], "host_down");
        assert_eq!(v["name"], "a");
        assert_eq!(v["silent_for"], json!(4.0));
        fs::remove_dir_all(dir).unwrap();
    }
}
