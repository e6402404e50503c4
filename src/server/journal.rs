//! The journal thread: the only writer of the journal's two files in
//! `journal_dir`, and [`tail`], which the http threads read them with.
//!
//! Receives [`JournalMsg`]s from `udp` (every accepted message) and `core`
//! (events) and appends one JSON line each. `journal_file` holds received
//! messages only, in the Python hbd's shape, so that its README's `jq`
//! one-liners give what they gave there:
//! `{"timestamp":…,"datetime":…,"source_ip":…,"source_port":…,"message":{…}}`.
//! `journal_events_file` holds the events (state changes, alerts,
//! notifications, DNS updates): `{"timestamp":…,"datetime":…,"type":…, …}`,
//! never with a key named `message`.
//!
//! Invariants, for each file on its own: lines reach it only whole — they
//! are collected in a buffer and written in pieces of at most 64 KiB that
//! end at line boundaries, and a failed write is cut back to the last whole
//! line. Rotation happens between lines (`file` → `file.1` → … → `file.N`)
//! when that file reaches `journal_max_size`. A buffer is flushed when it
//! holds 64 KiB, when its oldest line is a second old, on `Reopen` and on
//! exit.
//!
//! A full (or read-only) disk: what fits is written, piece by piece, and the
//! rest waits in the file's buffer (up to [`MAX_UNWRITTEN`] each, beyond
//! which lines are dropped and counted); writing is retried once a second
//! and resumes by itself when space returns. Failures are logged at most
//! once a minute with counts, and the totals go to `core` for `/metrics`
//! ([`CoreMsg::JournalStats`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{error, info, warn};
use serde_json::Value;

use crate::server::model::{Event, JournalStats};
use crate::server::msg::{CoreMsg, JournalMsg};
use crate::server::views::{event_fields, round3};
use crate::wire::push_decimal;

const FLUSH_BYTES: usize = 64 << 10;
const FLUSH_AGE: Duration = Duration::from_secs(1);
/// Lines kept in memory for one file while the disk refuses them (full,
/// read-only); beyond this they are dropped and counted rather than
/// exhausting RAM.
const MAX_UNWRITTEN: usize = 16 << 20;
/// While writes fail, at most one error line in this long.
const ERROR_REPORT_EVERY: Duration = Duration::from_secs(60);
/// How often a refusing disk is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What the journal runs on, made by `Config::check` (config/mod.rs).
#[derive(Debug, Clone)]
pub struct JournalSettings {
    /// `journal_dir` joined with `journal_file` and `journal_events_file`.
    pub files: JournalFiles,
    pub max_size: u64,
    pub max_backups: u32,
}

/// Where the journal's two files are: `journal_dir` joined with
/// `journal_file` (received messages) and `journal_events_file` (events).
/// The journal thread writes them; the http threads read their ends with
/// [`tail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalFiles {
    pub messages: PathBuf,
    pub events: PathBuf,
}

pub struct Journal {
    /// Received messages only, in the Python hbd's shape.
    messages: Sink,
    /// Events only: lines with a `type`.
    events: Sink,
    max_size: u64,
    max_backups: u32,
    reports: Reports,
    datetime: DatetimeCache,
    line_head: LineHead,
    /// The line being formatted; kept to reuse its allocation.
    line: Vec<u8>,
}

/// One of the journal's files with its buffer: each is buffered, written,
/// retried and rotated on its own.
struct Sink {
    path: PathBuf,
    file: File,
    /// Bytes in the file, whole lines only.
    size: u64,
    pending: Vec<u8>,
    pending_since: Option<Instant>,
    /// While the disk refuses writes: when to try again. No write is tried
    /// before, however full the buffer gets.
    retry_at: Option<Instant>,
}

/// What both files count and report together.
#[derive(Default)]
struct Reports {
    stats: JournalStats,
    /// Dropped lines and failed writes not yet reported in a log line.
    unreported: JournalStats,
    last_error_report: Option<Instant>,
}

impl Journal {
    /// Opens (creating directory and files) for appending; done before the
    /// daemon detaches so that a bad path is reported on the terminal.
    pub fn open(settings: JournalSettings) -> io::Result<Journal> {
        let JournalSettings { files, max_size, max_backups } = settings;
        for path in [&files.messages, &files.events] {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|e| annotate(e, "create journal directory", dir))?;
            }
        }
        Ok(Journal {
            messages: Sink::open(files.messages)?,
            events: Sink::open(files.events)?,
            max_size,
            max_backups,
            reports: Reports::default(),
            datetime: DatetimeCache::default(),
            line_head: LineHead::default(),
            line: Vec::with_capacity(1024),
        })
    }

    pub fn files(&self) -> JournalFiles {
        JournalFiles { messages: self.messages.path.clone(), events: self.events.path.clone() }
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
        let (before, after) = self.line_head.of(second, &mut self.datetime);
        line.extend_from_slice(before);
        line.extend_from_slice(&[
            b'0' + (milli / 100) as u8,
            b'0' + (milli / 10 % 10) as u8,
            b'0' + (milli % 10) as u8,
        ]);
        line.extend_from_slice(after);
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
        self.messages.append(&line, self.max_size, self.max_backups, &mut self.reports);
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
        self.events.append(&line, self.max_size, self.max_backups, &mut self.reports);
    }

    fn handle_reopen(&mut self) {
        self.flush();
        self.messages.reopen();
        self.events.reopen();
    }

    /// Writes what both files have waiting.
    fn flush(&mut self) {
        self.messages.flush(&mut self.reports);
        self.events.flush(&mut self.reports);
    }

    /// Writes the files whose buffer is due (a second old, or retrying).
    fn flush_due_files(&mut self, now: Instant) {
        for sink in [&mut self.messages, &mut self.events] {
            if sink.flush_due().is_some_and(|due| due <= now) {
                sink.flush(&mut self.reports);
            }
        }
    }

    fn flush_due(&self) -> Option<Instant> {
        match (self.messages.flush_due(), self.events.flush_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Lines and bytes still in the buffers.
    fn unwritten(&self) -> (u64, usize) {
        [&self.messages, &self.events].iter().fold((0, 0), |(lines, bytes), sink| {
            (lines + sink.pending.iter().filter(|&&b| b == b'\n').count() as u64, bytes + sink.pending.len())
        })
    }
}

impl Sink {
    fn open(path: PathBuf) -> io::Result<Sink> {
        let (file, size) = open_append(&path)?;
        Ok(Sink {
            path,
            file,
            size,
            pending: Vec::with_capacity(FLUSH_BYTES + 4096),
            pending_since: None,
            retry_at: None,
        })
    }

    fn append(&mut self, line: &[u8], max_size: u64, max_backups: u32, reports: &mut Reports) {
        let would_be = self.size + (self.pending.len() + line.len()) as u64;
        if max_size > 0 && would_be > max_size && self.size + self.pending.len() as u64 > 0 {
            self.flush(reports);
            if self.size > 0 {
                self.rotate(max_backups);
            }
        }
        if self.pending.len() + line.len() > MAX_UNWRITTEN {
            reports.stats.dropped_lines += 1;
            reports.unreported.dropped_lines += 1;
            return;
        }
        self.pending.extend_from_slice(line);
        self.pending_since.get_or_insert_with(Instant::now);
        if self.pending.len() >= FLUSH_BYTES && self.retry_at.is_none() {
            self.flush(reports);
        }
    }

    /// Writes the buffer in pieces that end at line boundaries, so that a
    /// nearly full disk takes what fits. On failure the file is cut back to
    /// its last whole line, the rest of the buffer is kept, and the next
    /// try waits [`RETRY_EVERY`].
    fn flush(&mut self, reports: &mut Reports) {
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
                if self.retry_at.take().is_some() {
                    reports.resumed(&self.path);
                }
            }
            Some(e) => {
                let now = Instant::now();
                self.retry_at = Some(now + RETRY_EVERY);
                self.pending_since = Some(now);
                reports.failed(&self.path, &e, self.pending.len(), now);
            }
        }
    }

    fn reopen(&mut self) {
        match open_append(&self.path) {
            Ok((file, size)) => {
                self.file = file;
                self.size = size;
                info!("journal: reopened {}", self.path.display());
            }
            Err(e) => error!("journal: {e}; still writing to the old file"),
        }
    }

    /// `file.N-1` → `file.N`, …, `file` → `file.1`, then a fresh `file`.
    fn rotate(&mut self, backups: u32) {
        let base = &self.path;
        let result = if backups == 0 {
            fs::remove_file(base)
        } else {
            (1..backups)
                .rev()
                .filter(|n| backup(base, *n).exists())
                .try_for_each(|n| fs::rename(backup(base, n), backup(base, n + 1)))
                .and_then(|()| fs::rename(base, backup(base, 1)))
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

impl Reports {
    /// A write failed: counted, and logged at most once a minute.
    fn failed(&mut self, path: &Path, e: &io::Error, waiting: usize, now: Instant) {
        self.stats.write_errors += 1;
        self.unreported.write_errors += 1;
        if self.last_error_report.is_none_or(|last| now.duration_since(last) >= ERROR_REPORT_EVERY) {
            self.last_error_report = Some(now);
            error!(
                "journal: write {}: {e}; {} writes failed and {} lines were dropped since the last report; {waiting} bytes wait, retrying every second",
                path.display(),
                self.unreported.write_errors,
                self.unreported.dropped_lines,
            );
            self.unreported = JournalStats::default();
        }
    }

    /// The one line that says writing `path` works again, with what was lost.
    fn resumed(&mut self, path: &Path) {
        warn!(
            "journal: writing {} again; {} writes had failed and {} lines were dropped since the last report ({} dropped in all)",
            path.display(),
            self.unreported.write_errors,
            self.unreported.dropped_lines,
            self.stats.dropped_lines
        );
        self.unreported = JournalStats::default();
        self.last_error_report = None;
    }
}

/// `path.n`, a rotated copy of the journal file `path`.
fn backup(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
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
        let files = journal.files();
        info!("journal: writing {} and {}", files.messages.display(), files.events.display());
        let mut reported = JournalStats::default();
        let mut next_report = Instant::now() + STATS_EVERY;
        loop {
            let due = journal.flush_due().map_or(next_report, |due| due.min(next_report));
            match inbox.recv_deadline(due) {
                Ok(msg) => journal.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            journal.flush_due_files(Instant::now());
            if Instant::now() >= next_report {
                next_report = Instant::now() + STATS_EVERY;
                let stats = journal.reports.stats;
                if stats != reported && to_core.try_send(CoreMsg::JournalStats(stats)).is_ok() {
                    reported = stats;
                }
            }
        }
        journal.flush();
        let (lines, bytes) = journal.unwritten();
        if lines > 0 {
            journal.reports.stats.dropped_lines += lines;
            error!(
                "journal: {lines} lines ({bytes} bytes) could not be written at exit; {} lines dropped in all",
                journal.reports.stats.dropped_lines
            );
        } else if journal.reports.stats.dropped_lines > 0 {
            warn!(
                "journal: {} lines were dropped in all while the disk refused writes",
                journal.reports.stats.dropped_lines
            );
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

/// The most bytes one [`tail`] reads, over both files: how far a request
/// for a rare event type looks back.
pub const TAIL_MAX_SCAN: u64 = 32 << 20;
/// Lines longer than this are skipped by [`tail`]; a message of the
/// default `max_message_size` (1 MiB) makes a line just over 1 MiB.
pub const TAIL_MAX_LINE: usize = 2 << 20;
/// What [`tail`] reads at a time, from the end.
const TAIL_CHUNK: usize = 64 << 10;

/// The last `limit` lines of the journal file `path` that `take` turns into
/// values, oldest first. The file is read from its end in chunks of 64 KiB,
/// never whole; when it has fewer such lines, the rest come from the end of
/// `path.1`. Left out: a last line not ended yet (still being written), a
/// line `take` refuses (garbled, cut, not wanted) and a line longer than
/// [`TAIL_MAX_LINE`]. At most [`TAIL_MAX_SCAN`] bytes are read. A file that
/// does not exist has no lines. Called by the http threads, which only read.
pub fn tail(path: &Path, limit: usize, take: impl FnMut(&[u8]) -> Option<Value>) -> io::Result<Vec<Value>> {
    tail_within(path, limit, TAIL_MAX_SCAN, take).map(|(lines, _)| lines)
}

/// [`tail`] reading at most `budget` bytes; also says how many it read.
fn tail_within(
    path: &Path,
    limit: usize,
    budget: u64,
    mut take: impl FnMut(&[u8]) -> Option<Value>,
) -> io::Result<(Vec<Value>, u64)> {
    let current = open_existing(path)?;
    let older = open_existing(&backup(path, 1))?;
    // Rotated between the two opens: `.1` is the file opened as `path`.
    let older = match (&current, older) {
        (Some(current), Some(older)) if same_file(current, &older)? => None,
        (_, older) => older,
    };
    let mut found = Vec::new();
    let mut left = budget;
    let older_path = backup(path, 1);
    for (file, path) in [(current, path), (older, older_path.as_path())] {
        let Some(file) = file else { continue };
        if found.len() >= limit || left == 0 {
            break;
        }
        read_back(&file, limit, &mut left, &mut take, &mut found).map_err(|e| annotate(e, "read journal", path))?;
    }
    found.reverse();
    Ok((found, budget - left))
}

fn open_existing(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(annotate(e, "open journal", path)),
    }
}

fn same_file(a: &File, b: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (a.metadata()?, b.metadata()?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// Adds the lines of `file` that `take` accepts to `found`, newest first,
/// until `found` holds `limit` or `budget` bytes are read.
fn read_back<F: FnMut(&[u8]) -> Option<Value>>(
    file: &File,
    limit: usize,
    budget: &mut u64,
    take: &mut F,
    found: &mut Vec<Value>,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut pos = file.metadata()?.len();
    let mut chunk = vec![0; TAIL_CHUNK];
    let mut line = Gathered { unfinished: true, ..Gathered::default() };
    while pos > 0 && found.len() < limit && *budget > 0 {
        let n = pos.min(TAIL_CHUNK as u64).min(*budget) as usize;
        pos -= n as u64;
        *budget -= n as u64;
        let data = &mut chunk[..n];
        match file.read_exact_at(data, pos) {
            Ok(()) => {}
            // Cut short under us (truncated from outside): what was read stands.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut end = n;
        while let Some(newline) = data[..end].iter().rposition(|&b| b == b'\n') {
            if let Some(value) = line.finish(&data[newline + 1..end], take) {
                found.push(value);
                if found.len() >= limit {
                    return Ok(());
                }
            }
            end = newline;
        }
        line.prepend(&data[..end]);
    }
    if pos == 0 {
        // The file's first line, which no newline precedes.
        if let Some(value) = line.finish(&[], take) {
            found.push(value);
        }
    }
    Ok(())
}

/// The line being gathered while a file is read backwards.
#[derive(Default)]
struct Gathered {
    /// Its pieces from the chunks read so far, its end first.
    parts: Vec<Vec<u8>>,
    len: usize,
    /// Longer than [`TAIL_MAX_LINE`]: skipped.
    too_long: bool,
    /// What follows the file's last newline: a line still being written.
    unfinished: bool,
}

impl Gathered {
    /// Adds `piece`, which comes before what was gathered.
    fn prepend(&mut self, piece: &[u8]) {
        if self.too_long || piece.is_empty() {
            return;
        }
        if self.len + piece.len() > TAIL_MAX_LINE {
            self.too_long = true;
            self.parts.clear();
            return;
        }
        self.len += piece.len();
        self.parts.push(piece.to_vec());
    }

    /// The line is whole, `head` being its start: offered to `take` unless
    /// it is to be skipped. The next line begins.
    fn finish<F: FnMut(&[u8]) -> Option<Value>>(&mut self, head: &[u8], take: &mut F) -> Option<Value> {
        let skip = self.unfinished || self.too_long || self.len + head.len() > TAIL_MAX_LINE;
        let value = if skip {
            None
        } else if self.parts.is_empty() {
            take(head)
        } else {
            let mut whole = Vec::with_capacity(self.len + head.len());
            whole.extend_from_slice(head);
            for part in self.parts.iter().rev() {
                whole.extend_from_slice(part);
            }
            take(&whole)
        };
        *self = Gathered::default();
        value
    }
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

/// What a message line holds before and after its milliseconds, which
/// changes only once a second: `{"timestamp":SECOND.` and
/// `,"datetime":"…","source_ip":"`, made once per second instead of per line.
#[derive(Default)]
struct LineHead {
    second: Option<u64>,
    before: Vec<u8>,
    after: Vec<u8>,
}

impl LineHead {
    fn of(&mut self, second: u64, datetime: &mut DatetimeCache) -> (&[u8], &[u8]) {
        if self.second != Some(second) {
            self.second = Some(second);
            self.before.clear();
            self.before.extend_from_slice(b"{\"timestamp\":");
            push_decimal(&mut self.before, second);
            self.before.push(b'.');
            self.after.clear();
            self.after.extend_from_slice(b",\"datetime\":\"");
            self.after.extend_from_slice(datetime.format(second as f64).as_bytes());
            self.after.extend_from_slice(b"\",\"source_ip\":\"");
        }
        (&self.before, &self.after)
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
    use crate::server::model::NotifyReport;
    use crate::server::model::{AlertChange, AlertKey, DnsOutcome, Level};
    use crate::server::msg::ReceivedBatch;
    use crossbeam_channel::bounded;
    use serde_json::json;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hbd-journal-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Messages in `dir/m.journal`, events in `dir/e.journal`.
    fn settings(dir: &Path, max_size: u64, max_backups: u32) -> JournalSettings {
        let files = JournalFiles { messages: dir.join("m.journal"), events: dir.join("e.journal") };
        JournalSettings { files, max_size, max_backups }
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

    fn alert(n: usize) -> Event {
        Event::Alert(AlertChange {
            key: AlertKey {
                host: format!("h{n}").into(),
                plugin: "cpu_monitor".into(),
                metric_path: "cpu_percent".into(),
            },
            from: Level::Ok,
            to: Level::Critical,
            value: Some(95.0),
            threshold: Some(90.0),
            reminder: false,
            ongoing: 1.5,
            text: format!("CRITICAL: h{n} - cpu_monitor.cpu_percent = 95.0"),
        })
    }

    /// One of each kind of event.
    fn every_event() -> Vec<Event> {
        let address: SocketAddr = "192.0.2.1:50003".parse().unwrap();
        vec![
            Event::HostNew { name: "a".into(), address },
            Event::HostUp { name: "a".into(), address, down_for: 3.0 },
            Event::HostDown { name: "a".into(), last_seen: 1.0, silent_for: 4.0 },
            Event::AddressChanged { name: "a".into(), old: address.ip(), new: "192.0.2.2".parse().unwrap() },
            alert(1),
            Event::Alert(AlertChange {
                reminder: true,
                ..match alert(2) {
                    Event::Alert(change) => change,
                    _ => unreachable!(),
                }
            }),
            Event::Notification(NotifyReport {
                service: "email".into(),
                subject: "s".into(),
                delivered: false,
                error: Some("refused".into()),
                attempt: 2,
                will_retry: true,
            }),
            Event::DnsUpdate {
                name: "a".into(),
                domain: "dyn.example".into(),
                address: address.ip(),
                outcome: DnsOutcome::Failed { error: "NOTAUTH".into(), retry_in: Some(5.0) },
            },
            Event::JobRun {
                name: "backup".into(),
                event: crate::wire::JobEvent::Fail,
                run: Box::new(crate::server::model::Run {
                    outcome: crate::server::model::RunOutcome::Failed,
                    started: Some(1.0),
                    ended: Some(2.0),
                    duration_s: Some(1.0),
                    exit_code: Some(3),
                    signal: None,
                    output: Some("hi\n".into()),
                    message: Some("disk full".into()),
                }),
            },
        ]
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(path).unwrap_or_default();
        assert!(text.is_empty() || text.ends_with('\n'), "{} ends mid-line", path.display());
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The names of the files in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn line_has_the_python_shape() {
        let dir = temp_dir("shape");
        let mut j = Journal::open(settings(&dir, 0, 1)).unwrap();
        j.handle(received(1));
        j.flush();
        let text = fs::read_to_string(dir.join("m.journal")).unwrap();
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
        let mut j = Journal::open(settings(&dir, 0, 1)).unwrap();
        let json = br#"{"ID":"HTB","name":"a"}"#;
        for (millis, source) in [
            (1_700_000_000_123u64, "192.0.2.1:50003"),
            (1_700_000_000_000, "10.0.0.255:1"),
            (1_700_000_000_007, "[2001:db8::1]:65535"),
            (1_700_000_000_070, "0.0.0.0:0"),
            // The head made once a second: a new second, then an old one.
            (1_700_000_001_999, "192.0.2.1:50003"),
            (1_700_000_000_500, "192.0.2.1:50003"),
            (1_699_999_999_999, "192.0.2.1:50003"),
        ] {
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
            let source: SocketAddr = source.parse().unwrap();
            let before = j.messages.pending.len();
            j.handle_received(at, source, json);
            let ts = crate::wire::unix_seconds(at);
            let expected = format!(
                "{{\"timestamp\":{ts:.3},\"datetime\":\"{}\",\"source_ip\":\"{}\",\"source_port\":{},\"message\":{}}}\n",
                local_datetime(ts.floor() as i64),
                source.ip(),
                source.port(),
                std::str::from_utf8(json).unwrap()
            );
            assert_eq!(std::str::from_utf8(&j.messages.pending[before..]).unwrap(), expected);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotation_keeps_every_line_whole_and_each_file_under_the_cap() {
        let dir = temp_dir("rotate");
        let j = Journal::open(settings(&dir, 1000, 50)).unwrap();
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
            for line in lines(&p) {
                names.push(line["message"]["name"].as_str().unwrap().to_string());
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
        let mut j = Journal::open(settings(&dir, 200, 2)).unwrap();
        for n in 0..50 {
            j.handle(received(n));
        }
        j.flush();
        assert_eq!(names(&dir), ["e.journal", "m.journal", "m.journal.1", "m.journal.2"]);
        fs::remove_dir_all(dir).unwrap();
    }

    /// Every kind of event goes to the events file, with its type and time
    /// and without a `message` key; the messages file holds none of them.
    #[test]
    fn events_never_land_in_the_messages_file() {
        let dir = temp_dir("event");
        let j = Journal::open(settings(&dir, 0, 1)).unwrap();
        let (tx, rx) = bounded(16);
        let (to_core, _core) = bounded(4);
        let handle = spawn(j, rx, to_core).unwrap();
        let events = every_event();
        for (n, event) in events.iter().cloned().enumerate() {
            tx.send(received(n)).unwrap();
            tx.send(JournalMsg::Event { at: 5.0 + n as f64, event }).unwrap();
        }
        drop(tx);
        handle.join().unwrap();
        let messages = lines(&dir.join("m.journal"));
        assert_eq!(messages.len(), events.len());
        for line in &messages {
            assert!(line["message"].is_object() && line.get("type").is_none(), "{line}");
        }
        let written = lines(&dir.join("e.journal"));
        let kinds: Vec<&str> = written.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, EVENT_KINDS_IN_ORDER);
        for (n, line) in written.iter().enumerate() {
            assert!(line.get("message").is_none(), "no `message` on an event line: {line}");
            assert_eq!(line["timestamp"].as_f64(), Some(5.0 + n as f64));
            assert_eq!(line["datetime"].as_str().unwrap().len(), 19);
        }
        assert_eq!(written[2]["name"], "a");
        assert_eq!(written[2]["silent_for"], json!(4.0));
        assert_eq!(written[4]["text"], "CRITICAL: h1 - cpu_monitor.cpu_percent = 95.0");
        assert_eq!((written[8]["exit_code"].as_i64(), written[8]["note"].as_str()), (Some(3), Some("disk full")));
        fs::remove_dir_all(dir).unwrap();
    }

    const EVENT_KINDS_IN_ORDER: [&str; 9] = [
        "host_new",
        "host_up",
        "host_down",
        "address_changed",
        "alert",
        "alert_reminder",
        "notification",
        "dns_update",
        "job_fail",
    ];

    #[test]
    fn every_event_type_is_one_the_api_filters_by() {
        for event in every_event() {
            let (kind, fields) = event_fields(&event);
            assert!(crate::server::views::EVENT_TYPES.contains(&kind), "{kind}");
            assert!(fields.get("message").is_none(), "{kind}: {fields}");
        }
    }

    /// Many events and few messages: the events file rotates, the messages
    /// file does not, and then the other way round.
    #[test]
    fn each_file_rotates_on_its_own() {
        let dir = temp_dir("rotate-each");
        let mut j = Journal::open(settings(&dir, 1000, 3)).unwrap();
        j.handle(received(0));
        for n in 0..20 {
            j.handle(JournalMsg::Event { at: n as f64, event: alert(n) });
        }
        j.flush();
        assert_eq!(names(&dir), ["e.journal", "e.journal.1", "e.journal.2", "e.journal.3", "m.journal"]);
        assert_eq!(lines(&dir.join("m.journal")).len(), 1, "the messages file was not rotated with the events");
        let events_size = fs::metadata(dir.join("e.journal")).unwrap().len();
        for n in 1..40 {
            j.handle(received(n));
        }
        j.flush();
        assert!(names(&dir).contains(&"m.journal.3".to_string()), "{:?}", names(&dir));
        assert_eq!(fs::metadata(dir.join("e.journal")).unwrap().len(), events_size, "nor the events with the messages");
        for name in names(&dir) {
            let path = dir.join(&name);
            assert!(fs::metadata(&path).unwrap().len() <= 1000, "{name}");
            for line in lines(&path) {
                assert_eq!(name.starts_with("m."), line.get("message").is_some(), "{name}: {line}");
            }
        }
        fs::remove_dir_all(dir).unwrap();
    }

    /// SIGHUP after an outside rotation: both files are opened again at their paths.
    #[test]
    fn reopen_starts_both_files_afresh() {
        let dir = temp_dir("reopen");
        let mut j = Journal::open(settings(&dir, 0, 1)).unwrap();
        j.handle(received(1));
        j.handle(JournalMsg::Event { at: 1.0, event: alert(1) });
        j.flush();
        fs::rename(dir.join("m.journal"), dir.join("m.old")).unwrap();
        fs::rename(dir.join("e.journal"), dir.join("e.old")).unwrap();
        j.handle(received(2));
        j.handle(JournalMsg::Event { at: 2.0, event: alert(2) });
        j.handle(JournalMsg::Reopen);
        j.handle(received(3));
        j.handle(JournalMsg::Event { at: 3.0, event: alert(3) });
        j.flush();
        let names_of = |file: &str, field: fn(&serde_json::Value) -> String| -> Vec<String> {
            lines(&dir.join(file)).iter().map(field).collect()
        };
        let message = |v: &serde_json::Value| v["message"]["name"].as_str().unwrap().to_string();
        let event = |v: &serde_json::Value| v["name"].as_str().unwrap().to_string();
        assert_eq!(names_of("m.old", message), ["h1", "h2"], "what was buffered goes to the old file");
        assert_eq!(names_of("m.journal", message), ["h3"]);
        assert_eq!(names_of("e.old", event), ["h1", "h2"]);
        assert_eq!(names_of("e.journal", event), ["h3"]);
        fs::remove_dir_all(dir).unwrap();
    }

    // ------------------------------------------------------------ tail

    fn write_lines(path: &Path, from: usize, to: usize) {
        let mut file = OpenOptions::new().create(true).append(true).open(path).unwrap();
        for n in from..to {
            writeln!(file, "{{\"n\":{n}}}").unwrap();
        }
    }

    fn any(line: &[u8]) -> Option<Value> {
        serde_json::from_slice(line).ok()
    }

    fn numbers(lines: &[Value]) -> Vec<u64> {
        lines.iter().map(|v| v["n"].as_u64().unwrap()).collect()
    }

    #[test]
    fn tail_gives_what_there_is_oldest_first() {
        let dir = temp_dir("tail-few");
        let path = dir.join("j");
        assert_eq!(tail(&path, 10, any).unwrap(), Vec::<Value>::new(), "no file, no lines");
        write_lines(&path, 0, 3);
        assert_eq!(numbers(&tail(&path, 10, any).unwrap()), [0, 1, 2]);
        assert_eq!(numbers(&tail(&path, 2, any).unwrap()), [1, 2]);
        fs::write(&path, "").unwrap();
        assert!(tail(&path, 10, any).unwrap().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tail_continues_into_the_newest_backup_only() {
        let dir = temp_dir("tail-backup");
        let path = dir.join("j");
        write_lines(&backup(&path, 2), 0, 5);
        write_lines(&backup(&path, 1), 5, 10);
        write_lines(&path, 10, 12);
        assert_eq!(numbers(&tail(&path, 4, any).unwrap()), [8, 9, 10, 11]);
        assert_eq!(numbers(&tail(&path, 2, any).unwrap()), [10, 11], ".1 is not read when not needed");
        assert_eq!(numbers(&tail(&path, 100, any).unwrap()), (5..12).collect::<Vec<_>>(), "not into .2");
        // Only .1 (the file itself was just rotated away and not made again).
        fs::remove_file(&path).unwrap();
        assert_eq!(numbers(&tail(&path, 3, any).unwrap()), [7, 8, 9]);
        // A rotation between opening the file and its .1: the same file twice is read once.
        fs::hard_link(backup(&path, 1), &path).unwrap();
        assert_eq!(numbers(&tail(&path, 100, any).unwrap()), (5..10).collect::<Vec<_>>());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tail_skips_a_partial_last_line_and_garbled_ones() {
        let dir = temp_dir("tail-partial");
        let path = dir.join("j");
        write_lines(&path, 0, 2);
        fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"n\":2,\"cut\":\n{\"n\"").unwrap();
        assert_eq!(numbers(&tail(&path, 10, any).unwrap()), [0, 1], "the cut line and the one being written");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b":3}\n\xff\xfe garbage\n\n").unwrap();
        write_lines(&path, 4, 5);
        assert_eq!(numbers(&tail(&path, 10, any).unwrap()), [0, 1, 3, 4]);
        assert_eq!(numbers(&tail(&path, 2, any).unwrap()), [3, 4]);
        // No newline at all: a first line still being written.
        fs::write(&path, "{\"n\":9}").unwrap();
        assert!(tail(&path, 10, any).unwrap().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tail_joins_lines_across_chunks_and_skips_oversized_ones() {
        let dir = temp_dir("tail-long");
        let path = dir.join("j");
        let long = "x".repeat(3 * TAIL_CHUNK + 17);
        let huge = "y".repeat(TAIL_MAX_LINE + 1);
        fs::write(
            &path,
            format!("{{\"n\":0,\"s\":\"{long}\"}}\n{{\"n\":1,\"s\":\"{huge}\"}}\n{{\"n\":2,\"s\":\"{long}\"}}\n{{\"n\":3}}\n"),
        )
        .unwrap();
        let got = tail(&path, 10, any).unwrap();
        assert_eq!(numbers(&got), [0, 2, 3], "the line over TAIL_MAX_LINE is skipped");
        assert_eq!(got[0]["s"].as_str().unwrap(), long, "a line read in four chunks is whole");
        assert_eq!(got[1]["s"].as_str().unwrap(), long);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A 1 GiB file (sparse: no disk used) is read only at its end.
    #[test]
    fn tail_of_a_huge_file_reads_only_its_end() {
        let dir = temp_dir("tail-huge");
        let path = dir.join("j");
        let file = File::create(&path).unwrap();
        file.set_len(1 << 30).unwrap();
        drop(file);
        fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"\n").unwrap();
        write_lines(&path, 0, 100);
        let (lines, read) = tail_within(&path, 50, TAIL_MAX_SCAN, any).unwrap();
        assert_eq!(numbers(&lines), (50..100).collect::<Vec<_>>());
        assert!(read <= TAIL_CHUNK as u64, "read {read} bytes for 50 short lines");
        // Looking for lines that are not there stops at the budget.
        let (none, read) = tail_within(&path, 10, 1 << 20, |_| None).unwrap();
        assert!(none.is_empty());
        assert_eq!(read, 1 << 20);
        // A filter that matches a few: what it finds within the budget.
        let (odd, _) =
            tail_within(&path, 5, TAIL_MAX_SCAN, |l| any(l).filter(|v| v["n"].as_u64().is_some_and(|n| n % 2 == 1)))
                .unwrap();
        assert_eq!(numbers(&odd), [91, 93, 95, 97, 99]);
        fs::remove_dir_all(dir).unwrap();
    }
}
