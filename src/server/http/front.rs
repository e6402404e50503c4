//! The `http-front` thread: the only reader and writer of hbd's public HTTP
//! socket. tiny_http (kept: the user's choice) has no limit on a request's
//! head, no read or write deadline and one thread per connection, so it
//! listens only on a private Unix socket and this thread stands in front.
//!
//! One `poll(2)` loop, no thread per connection:
//! - accepts within `http_max_connections`; when full, the connection that
//!   has made no progress for longest (an idle or slow client) is closed to
//!   make room, so a flood of idle connections cannot lock out `/healthz`;
//! - reads each request head within [`HEAD_TIMEOUT`] and [`MAX_REQUEST_LINE`]
//!   / [`MAX_HEADER_BYTES`] / [`MAX_HEADERS`] (414, 431 otherwise, like
//!   nginx's 8 KiB buffers), see [`check_head`];
//! - passes a valid head to tiny_http over the Unix socket (at most
//!   [`MAX_IN_FLIGHT`] at a time; the rest wait their turn), with
//!   `Connection: close`, and reads the whole answer at once into memory, so
//!   the `http0`/`http1` workers never wait on a client;
//! - writes the answer as fast as the client reads it; a client that makes
//!   no progress for [`WRITE_TIMEOUT`] is closed. It costs its own
//!   connection and buffer, nothing anyone else needs.
//!
//! A `GET /ws` that asks to upgrade to a WebSocket is not passed to
//! tiny_http: the connection, with the head read so far, is handed to the
//! ws acceptor ([`Upgraded`]), so the pages need only this one port.
//!
//! `GET /api/0/hosts` (and `HEAD`) is answered here when the shared list
//! ([`HostsCache::ready`]) may be served without asking core: the body is
//! written from the cache's bytes, not copied through tiny_http and the
//! Unix socket (megabytes at ten thousand hosts, the request that
//! dashboards repeat). A request that finds the list too old goes to
//! tiny_http, which builds the next one; so does the first to want it
//! gzip-compressed, since compressing takes milliseconds this loop must
//! not spend.
//!
//! Each connection carries one request (`Connection: close`). A request
//! body (the API's writes) is read whole, within [`MAX_BODY`] bytes and the
//! head's deadline, and forwarded with its `Content-Length`; a chunked one
//! is refused (411), as nginx did for years: every client sends the length
//! of a small JSON body. Ends when the parent's `stop` channel disconnects.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::server::msg::Upgraded;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use log::{debug, info, warn};

use super::hosts_cache::HostsCache;

/// The longest request line (method, target, version): 414 beyond.
pub const MAX_REQUEST_LINE: usize = 8 << 10;
/// All header lines together: 431 beyond.
pub const MAX_HEADER_BYTES: usize = 8 << 10;
/// Header lines: 431 beyond.
pub const MAX_HEADERS: usize = 100;
/// A request body (a silence, an acknowledgement: a few hundred bytes of
/// JSON): 413 beyond.
pub const MAX_BODY: usize = 64 << 10;
/// The whole head must arrive within this long of the connection (slow or
/// idle clients are closed).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that takes none of its answer for this long is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests handed to tiny_http at once: bounds its threads (one per
/// connection) while the core answers one query at a time anyway.
const MAX_IN_FLIGHT: usize = 8;
/// An answer larger than this is not buffered (the largest, `/api/0/hosts`,
/// is about 250 bytes per host).
pub const MAX_ANSWER: usize = 256 << 20;
/// How often the loop looks at its `stop` channel when nothing happens.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// At most one warning about closed or refused connections in this long.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// What [`check_head`] makes of the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// More bytes are needed.
    Incomplete,
    /// A whole request, rewritten for tiny_http: the head with
    /// `Connection: close` (and the body's `Content-Length`), then the body.
    Complete(Vec<u8>),
    /// Refused with this status and reason.
    Refused(u16, &'static str),
}

/// Checks a request head against the limits and rewrites it for the
/// backend. Public for the fuzz target `http_head`: these are the first
/// bytes anyone on the network can send hbd over TCP.
pub fn check_head(bytes: &[u8]) -> Head {
    let Some(line_end) = bytes.iter().position(|&b| b == b'\n') else {
        return if bytes.len() > MAX_REQUEST_LINE {
            Head::Refused(414, "request line too long")
        } else {
            Head::Incomplete
        };
    };
    if line_end > MAX_REQUEST_LINE {
        return Head::Refused(414, "request line too long");
    }
    let mut forward = Vec::with_capacity(line_end + 64);
    forward.extend_from_slice(trim_cr(&bytes[..line_end]));
    forward.extend_from_slice(b"\r\n");
    let mut at = line_end + 1;
    let mut n_headers = 0;
    let mut body_len: Option<usize> = None;
    loop {
        if at - line_end - 1 > MAX_HEADER_BYTES {
            return Head::Refused(431, "request headers too large");
        }
        let Some(len) = bytes[at..].iter().position(|&b| b == b'\n') else {
            return if bytes.len() - line_end - 1 > MAX_HEADER_BYTES {
                Head::Refused(431, "request headers too large")
            } else {
                Head::Incomplete
            };
        };
        let line = trim_cr(&bytes[at..at + len]);
        at += len + 1;
        if line.is_empty() {
            if at - line_end - 1 > MAX_HEADER_BYTES {
                return Head::Refused(431, "request headers too large");
            }
            let body_len = body_len.unwrap_or(0);
            let Some(body) = bytes.get(at..at + body_len) else { return Head::Incomplete };
            if body_len > 0 {
                forward.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
            }
            forward.extend_from_slice(b"Connection: close\r\n\r\n");
            forward.extend_from_slice(body);
            return Head::Complete(forward);
        }
        n_headers += 1;
        if n_headers > MAX_HEADERS {
            return Head::Refused(431, "too many request headers");
        }
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        let value = line.get(name.len() + 1..).unwrap_or_default().trim_ascii();
        if name.trim_ascii().eq_ignore_ascii_case(b"transfer-encoding") {
            return Head::Refused(411, "a request body needs a Content-Length (chunked bodies are not taken)");
        }
        if name.trim_ascii().eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse::<usize>().ok()) {
                Some(n) if n > MAX_BODY => return Head::Refused(413, "request body too large"),
                Some(n) if body_len.is_none_or(|first| first == n) => body_len = Some(n),
                _ => return Head::Refused(400, "bad Content-Length"),
            }
        }
        // The connection is ours to manage; the body's length is set again.
        let dropped =
            [&b"connection"[..], b"keep-alive", b"content-length", b"transfer-encoding", b"expect", b"upgrade"];
        if !dropped.iter().any(|d| name.trim_ascii().eq_ignore_ascii_case(d)) {
            forward.extend_from_slice(line);
            forward.extend_from_slice(b"\r\n");
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// An answer written by the front itself, without asking tiny_http.
pub fn canned(status: u16, reason: &str) -> Vec<u8> {
    let phrase = match status {
        400 => "Bad Request",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let body = serde_json::json!({ "error": reason }).to_string();
    format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the request head.
    Head,
    /// A valid head waits for a free backend slot.
    Queued,
    /// Writing the answer (while it may still arrive from the backend).
    Answer,
}

struct Conn {
    client: TcpStream,
    peer: SocketAddr,
    phase: Phase,
    /// The head so far; then the rewritten head while queued.
    head: Vec<u8>,
    answer: Vec<u8>,
    /// Written after `answer`: a body shared with other requests.
    shared: Option<Arc<[u8]>>,
    /// Bytes of `answer`, then `shared`, written so far.
    sent: usize,
    backend: Option<UnixStream>,
    /// No more answer will come.
    answered: bool,
    /// When it is closed unless it makes progress.
    deadline: Instant,
    /// When it last made progress: the oldest is closed first when full.
    progress: Instant,
}

/// Counts of what the front refused or closed, reported at most once per
/// [`REPORT_EVERY`] so that a flood costs no more than one line a minute.
#[derive(Default)]
struct Refusals {
    limits: u64,
    timeouts: u64,
    evicted: u64,
    last_report: Option<Instant>,
}

impl Refusals {
    fn report(&mut self, now: Instant) {
        if self.limits + self.timeouts + self.evicted == 0 {
            return;
        }
        if self.last_report.is_some_and(|last| now.duration_since(last) < REPORT_EVERY) {
            return;
        }
        warn!(
            "http: closed {} connections over the head limits (414/431), {} slow or stalled, {} to make room (http_max_connections)",
            self.limits, self.timeouts, self.evicted
        );
        *self = Refusals { last_report: Some(now), ..Refusals::default() };
    }
}

pub struct Front {
    pub listener: TcpListener,
    /// tiny_http's private socket.
    pub backend: PathBuf,
    pub max_connections: usize,
    /// Where `/ws` upgrades go (the ws acceptor). Full: 503.
    pub to_ws: Sender<Upgraded>,
    /// The list of hosts the workers build, answered from here when ready.
    pub hosts: Arc<HostsCache>,
    /// Origins that may read answers from a browser (`cors_origins`).
    pub cors_origins: Vec<String>,
    /// Reads need no token (`api_reads_need_token` is off): only then may
    /// the front answer `/api/0/hosts` itself; otherwise the workers check.
    pub reads_open: bool,
}

/// Whether a complete request head asks for a WebSocket on `/ws`.
pub fn is_ws_upgrade(head: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(head) else { return false };
    let mut lines = text.split("\r\n");
    let target = lines.next().and_then(|l| l.strip_prefix("GET ")).and_then(|l| l.split(' ').next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    path == Some("/ws")
        && lines.any(|l| {
            l.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("upgrade") && value.trim().eq_ignore_ascii_case("websocket")
            })
        })
}

pub fn spawn(front: Front, stop: Receiver<()>) -> io::Result<JoinHandle<()>> {
    front.listener.set_nonblocking(true)?;
    info!("http: listening on {}", front.listener.local_addr()?);
    std::thread::Builder::new().name("http-front".into()).spawn(move || run(front, &stop))
}

fn run(front: Front, stop: &Receiver<()>) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut refusals = Refusals::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if let Err(TryRecvError::Disconnected) = stop.try_recv() {
            return;
        }
        let now = Instant::now();
        let mut fds = vec![libc::pollfd { fd: front.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        for conn in &conns {
            let client_events = match conn.phase {
                Phase::Head => libc::POLLIN,
                Phase::Queued => 0,
                Phase::Answer if conn.sent < conn.answer_len() => libc::POLLOUT,
                Phase::Answer => 0,
            };
            fds.push(libc::pollfd { fd: conn.client.as_raw_fd(), events: client_events, revents: 0 });
            let backend_fd = conn.backend.as_ref().map_or(-1, AsRawFd::as_raw_fd);
            fds.push(libc::pollfd { fd: backend_fd, events: libc::POLLIN, revents: 0 });
        }
        let next_deadline =
            conns.iter().map(|c| c.deadline).min().map_or(POLL_EVERY, |d| d.saturating_duration_since(now));
        let timeout = next_deadline.min(POLL_EVERY).as_millis() as libc::c_int + 1;
        // SAFETY: `fds` is a valid array of pollfd for its whole length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                warn!("http: poll: {e}");
                std::thread::sleep(POLL_EVERY);
            }
            continue;
        }
        let now = Instant::now();
        let mut closed = vec![false; conns.len()];
        for (i, conn) in conns.iter_mut().enumerate() {
            let (client, backend) = (fds[1 + 2 * i].revents, fds[2 + 2 * i].revents);
            let done = if backend != 0 { read_backend(conn, &mut buf) } else { false };
            closed[i] = done
                || match conn.phase {
                    Phase::Head if client != 0 => read_head(conn, &mut buf, now, &mut queue, i, &mut refusals, &front),
                    Phase::Answer if client != 0 => write_answer(conn, now),
                    _ => false,
                };
            if !closed[i] && conn.phase == Phase::Answer && conn.answered && conn.sent >= conn.answer_len() {
                let _ = conn.client.shutdown(std::net::Shutdown::Write);
                closed[i] = true;
            }
            if !closed[i] && conn.phase != Phase::Queued && now >= conn.deadline {
                debug!("http: {}: no progress in time; closing", conn.peer);
                refusals.timeouts += 1;
                closed[i] = true;
            }
        }
        if closed.iter().any(|&c| c) {
            remove(&mut conns, &mut queue, &closed);
        }
        dispatch(&front, &mut conns, &mut queue, now);
        if fds[0].revents != 0 {
            accept(&front, &mut conns, &mut queue, now, &mut refusals);
            dispatch(&front, &mut conns, &mut queue, now);
        }
        refusals.report(now);
    }
}

/// Drops closed connections, keeping the queue's indexes right.
fn remove(conns: &mut Vec<Conn>, queue: &mut VecDeque<usize>, closed: &[bool]) {
    let mut new_index = Vec::with_capacity(conns.len());
    let mut next = 0;
    for &c in closed {
        new_index.push(if c { usize::MAX } else { next });
        next += usize::from(!c);
    }
    let mut i = 0;
    conns.retain(|_| {
        i += 1;
        !closed[i - 1]
    });
    queue.retain_mut(|q| {
        *q = new_index[*q];
        *q != usize::MAX
    });
}

fn accept(front: &Front, conns: &mut Vec<Conn>, queue: &mut VecDeque<usize>, now: Instant, refusals: &mut Refusals) {
    loop {
        let (client, peer) = match front.listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => {
                // EMFILE and the like: leave the rest in the backlog for now.
                debug!("http: accept: {e}");
                return;
            }
        };
        if client.set_nonblocking(true).is_err() {
            continue;
        }
        let _ = client.set_nodelay(true);
        if conns.len() >= front.max_connections {
            // Make room by closing whoever waited longest without progress;
            // requests being answered by tiny_http are not candidates.
            let victim = conns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.backend.is_none() && c.phase != Phase::Queued)
                .min_by_key(|(_, c)| c.progress)
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    refusals.evicted += 1;
                    let mut closed = vec![false; conns.len()];
                    closed[i] = true;
                    remove(conns, queue, &closed);
                }
                None => {
                    refusals.evicted += 1;
                    let mut client = client;
                    let _ = client.write(&canned(503, "too many connections"));
                    continue;
                }
            }
        }
        conns.push(Conn {
            client,
            peer,
            phase: Phase::Head,
            head: Vec::new(),
            answer: Vec::new(),
            shared: None,
            sent: 0,
            backend: None,
            answered: false,
            deadline: now + HEAD_TIMEOUT,
            progress: now,
        });
    }
}

/// Reads what the client sent; true when the connection is to be closed.
fn read_head(
    conn: &mut Conn,
    buf: &mut [u8],
    now: Instant,
    queue: &mut VecDeque<usize>,
    index: usize,
    refusals: &mut Refusals,
    front: &Front,
) -> bool {
    loop {
        match conn.client.read(buf) {
            Ok(0) => return true,
            Ok(n) => {
                conn.head.extend_from_slice(&buf[..n]);
                conn.progress = now;
                match check_head(&conn.head) {
                    Head::Incomplete => continue,
                    Head::Complete(_) if is_ws_upgrade(&conn.head) => {
                        let handed = conn.client.try_clone().map(|stream| Upgraded {
                            stream,
                            head: std::mem::take(&mut conn.head),
                            peer: conn.peer,
                        });
                        // The ws acceptor now owns the connection (this copy closes).
                        match handed.map(|upgraded| front.to_ws.try_send(upgraded)) {
                            Ok(Ok(())) => return true,
                            _ => {
                                answer_now(conn, canned(503, "websocket clients are not being taken"), now);
                                return false;
                            }
                        }
                    }
                    Head::Complete(forward) => {
                        if let Some((head, body)) = answer_hosts(front, &forward) {
                            conn.head = Vec::new();
                            answer_now(conn, head, now);
                            conn.shared = body;
                            return false;
                        }
                        conn.head = forward;
                        conn.phase = Phase::Queued;
                        queue.push_back(index);
                        return false;
                    }
                    Head::Refused(status, reason) => {
                        debug!("http: {}: {status} {reason}", conn.peer);
                        refusals.limits += 1;
                        conn.head = Vec::new();
                        answer_now(conn, canned(status, reason), now);
                        return false;
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

fn answer_now(conn: &mut Conn, answer: Vec<u8>, now: Instant) {
    conn.answer = answer;
    conn.answered = true;
    conn.phase = Phase::Answer;
    conn.deadline = now + WRITE_TIMEOUT;
}

/// Hands queued heads to tiny_http while fewer than [`MAX_IN_FLIGHT`] are there.
fn dispatch(front: &Front, conns: &mut [Conn], queue: &mut VecDeque<usize>, now: Instant) {
    while conns.iter().filter(|c| c.backend.is_some()).count() < MAX_IN_FLIGHT {
        let Some(i) = queue.pop_front() else { return };
        let conn = &mut conns[i];
        let head = std::mem::take(&mut conn.head);
        // Head and body are at most 80 KiB and fit the socket buffer, so the
        // blocking write returns at once.
        let connected = UnixStream::connect(&front.backend)
            .and_then(|mut s| s.write_all(&head).and_then(|()| s.set_nonblocking(true)).map(|()| s));
        conn.phase = Phase::Answer;
        conn.deadline = now + WRITE_TIMEOUT;
        conn.progress = now;
        match connected {
            Ok(stream) => conn.backend = Some(stream),
            Err(e) => {
                warn!("http: the request handlers are not reachable: {e}");
                answer_now(conn, canned(503, "hbd's request handlers are not reachable"), now);
            }
        }
    }
}

/// Takes what tiny_http wrote; true when the connection is to be closed.
fn read_backend(conn: &mut Conn, buf: &mut [u8]) -> bool {
    let Some(backend) = conn.backend.as_mut() else { return false };
    loop {
        match backend.read(buf) {
            Ok(0) => {
                conn.backend = None;
                conn.answered = true;
                return false;
            }
            Ok(n) => {
                if conn.answer.len() + n > MAX_ANSWER {
                    warn!("http: an answer to {} exceeds {MAX_ANSWER} bytes; closing", conn.peer);
                    return true;
                }
                conn.answer.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.backend = None;
                conn.answered = true;
                return false;
            }
        }
    }
}

/// Writes as much of the answer as the client takes; true to close.
fn write_answer(conn: &mut Conn, now: Instant) -> bool {
    while conn.sent < conn.answer_len() {
        let shared = conn.shared.as_deref().unwrap_or_default();
        let written = if conn.sent < conn.answer.len() {
            conn.client.write_vectored(&[IoSlice::new(&conn.answer[conn.sent..]), IoSlice::new(shared)])
        } else {
            conn.client.write(&shared[conn.sent - conn.answer.len()..])
        };
        match written {
            Ok(0) => return true,
            Ok(n) => {
                conn.sent += n;
                conn.deadline = now + WRITE_TIMEOUT;
                conn.progress = now;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
    if conn.answered {
        // Written in full: free the buffer before the close.
        conn.answer = Vec::new();
        conn.shared = None;
        conn.sent = 0;
    }
    false
}

impl Conn {
    fn answer_len(&self) -> usize {
        self.answer.len() + self.shared.as_ref().map_or(0, |b| b.len())
    }
}

/// An answer's head, and its body when it is shared with other requests.
type HeadAndBody = (Vec<u8>, Option<Arc<[u8]>>);

/// The answer to a request (its head as [`check_head`] rewrote it) for
/// `/api/0/hosts`, when the front can give it: the head of the answer and
/// its body. None for any other request, or when the list must be built
/// first (tiny_http does that).
fn answer_hosts(front: &Front, head: &[u8]) -> Option<HeadAndBody> {
    if !front.reads_open {
        return None;
    }
    let request = std::str::from_utf8(head).ok()?;
    let mut lines = request.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let head_only = match request_line.next()? {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    if request_line.next()? != "/api/0/hosts" || !request_line.next()?.starts_with("HTTP/1.") {
        return None;
    }
    // The first of each, as tiny_http's workers take them.
    let header = |wanted: &str| {
        let mut fields = lines.clone().filter_map(|l| l.split_once(':'));
        fields.find(|(name, _)| name.trim().eq_ignore_ascii_case(wanted)).map(|(_, value)| value.trim())
    };
    let body = front.hosts.ready()?;
    let served = body.serve_ready(header("If-None-Match"), header("Accept-Encoding"))?;
    let extra = served.headers.iter().map(|h| (h.field.as_str().as_str(), h.value.as_str()));
    let origin = header("Origin").filter(|origin| super::cors_allows(&front.cors_origins, origin));
    let answer = super::hosts_answer_head(served.status, served.bytes.len(), extra, origin);
    Some((answer, (!head_only && served.status == 200).then_some(served.bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_rewritten_for_the_backend() {
        let head = b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello";
        let Head::Complete(forward) = check_head(head) else { panic!() };
        assert_eq!(forward, b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        assert_eq!(
            check_head(b"GET / HTTP/1.1\nHost: a\n\n"),
            Head::Complete(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec())
        );
        assert_eq!(check_head(b"GET / HTTP/1.1\r\nHost: a\r\n"), Head::Incomplete);
    }

    /// A body is waited for, whole, within its limit; chunked ones and
    /// lengths that do not parse or disagree are refused.
    #[test]
    fn bodies_come_whole_with_their_length() {
        let post = b"POST /api/0/silences HTTP/1.1\r\nContent-Length: 7\r\n\r\n{\"a\":1";
        assert_eq!(check_head(post), Head::Incomplete, "one byte of the body is still to come");
        let mut whole = post.to_vec();
        whole.extend_from_slice(b"}trailing");
        let Head::Complete(forward) = check_head(&whole) else { panic!() };
        assert!(forward.ends_with(b"Content-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}"));
        let head = |extra: &str| format!("POST / HTTP/1.1\r\n{extra}\r\n\r\n");
        assert_eq!(check_head(head(&format!("Content-Length: {}", MAX_BODY + 1)).as_bytes()).status(), Some(413));
        assert_eq!(check_head(head("Transfer-Encoding: chunked").as_bytes()).status(), Some(411));
        assert_eq!(check_head(head("Content-Length: -1").as_bytes()).status(), Some(400));
        assert_eq!(check_head(head("Content-Length: 1\r\nContent-Length: 2").as_bytes()).status(), Some(400));
    }

    #[test]
    fn websocket_upgrades_on_ws_are_told_apart() {
        let head = |text: &str| text.replace('\n', "\r\n").into_bytes();
        assert!(is_ws_upgrade(&head("GET /ws HTTP/1.1\nHost: a\nUpgrade: websocket\nConnection: Upgrade\n\n")));
        assert!(is_ws_upgrade(&head("GET /ws?x=1 HTTP/1.1\nupgrade:  WebSocket\n\n")));
        assert!(!is_ws_upgrade(&head("GET /ws HTTP/1.1\nHost: a\n\n")), "no upgrade asked");
        assert!(!is_ws_upgrade(&head("GET /wss HTTP/1.1\nUpgrade: websocket\n\n")));
        assert!(!is_ws_upgrade(&head("POST /ws HTTP/1.1\nUpgrade: websocket\n\n")));
    }

    #[test]
    fn limits_are_414_and_431() {
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(check_head(long_line.as_bytes()), Head::Refused(414, "request line too long"));
        assert_eq!(check_head(&vec![b'a'; MAX_REQUEST_LINE + 1]), Head::Refused(414, "request line too long"));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "b".repeat(MAX_HEADER_BYTES));
        assert_eq!(check_head(big.as_bytes()).status(), Some(431));
        let unterminated = format!("GET / HTTP/1.1\r\nX: {}", "b".repeat(MAX_HEADER_BYTES));
        assert_eq!(check_head(unterminated.as_bytes()).status(), Some(431));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(check_head(many.as_bytes()).status(), Some(431));
        let fine = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(MAX_HEADERS));
        assert!(matches!(check_head(fine.as_bytes()), Head::Complete(_)));
    }

    impl Head {
        fn status(&self) -> Option<u16> {
            match self {
                Head::Refused(status, _) => Some(*status),
                _ => None,
            }
        }
    }
}
