//! The udp thread: the only reader of the heartbeat socket.
//!
//! Datagrams come in batches of up to [`BATCH`] with one `recvmmsg(2)`. For
//! each: decode it ([`Decoder`]) and write the ACK of an accepted one into
//! the batch's ACK buffers; then the batch's ACKs leave with one
//! `sendmmsg(2)`. The accepted messages go to the journal and their
//! heartbeats to `core` in one hand-over each, per batch or, while
//! heartbeats come faster than [`BUSY_RATE`], per [`HOLD`]. Nothing is
//! allocated per datagram but the heartbeat's host name (and what a
//! signed, compressed or plugin-carrying message needs).
//! A rejected datagram is counted by reason and logged at most once per
//! reason every [`REJECT_LOG_EVERY`]. Nothing a sender does can stop or slow
//! this loop beyond the cost of decoding its datagram.
//!
//! Ends when the `stop` channel disconnects (checked at least every
//! [`POLL`]); dropping its senders then tells `core` and `journal` to finish.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use log::{info, trace, warn};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::server::model::{Heartbeat, UdpStats};
use crate::server::msg::{CoreMsg, JournalMsg, ReceivedBatch};
use crate::wire::auth::{Keyring, ReplayGuard};
use crate::wire::decode::{Decoder, PluginLimits, RejectReason, Rejection};

/// The most datagrams taken from the socket at once: one `recvmmsg(2)`
/// returns what is waiting, up to this many, and blocks only while nothing
/// is. One `sendmmsg(2)` of ACKs per batch instead of one `sendto` per
/// datagram saves the system calls that dominate the cost at high rates.
const BATCH: usize = 64;
/// While heartbeats come faster than [`BUSY_RATE`], accepted messages wait
/// in `udp` up to this long for more to join them before they are handed
/// on. Each hand-over wakes `core` and the journal, and a wake-up (futex,
/// two context switches) costs as much as decoding a dozen heartbeats:
/// handed on per `recvmmsg(2)`, as the socket drained every few datagrams,
/// they took 14 % of hbd's CPU at 200,000 heartbeats/s (BENCHMARKS.md).
/// A heartbeat's state is then known to `core` up to this much later; its
/// ACK does not wait.
const HOLD: Duration = Duration::from_millis(2);
/// Heartbeats per second above which they are held (see [`HOLD`]). Below
/// it a hand-over per `recvmmsg(2)` costs little, and a script that sends
/// a heartbeat and then asks the API about it finds it there.
const BUSY_RATE: f64 = 10_000.0;
/// How often the rate is judged.
const RATE_WINDOW: Duration = Duration::from_millis(100);
/// Held messages are handed on at once when their weight reaches this: a
/// heartbeat weighs 1, a message with plugin data [`PLUGIN_WEIGHT`]. With
/// one `recvmmsg(2)` more, a batch holds at most 319 heartbeats (which
/// keeps the wake-ups few at the highest rates) but at most 127 messages
/// with plugin data: what `core`'s 64 slots hold while it lags behind a
/// flood of those stays within twice what they held before messages were
/// held (64 a slot).
const HAND_OVER_AT: usize = 256;
const PLUGIN_WEIGHT: usize = 4;
/// How long `recv_from` blocks before the loop looks at `stop`.
const POLL: Duration = Duration::from_millis(200);
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);
/// How often the counters go to `core` (for /metrics), when they changed.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Larger than any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6).
/// [`BATCH`] of them are 4 MiB of address space, but only the pages that
/// datagrams were written to become resident (a 222-byte heartbeat touches
/// one page per slot).
const RECV_BUFFER: usize = 65536;

/// What the udp thread runs on, made by `Config::check` (config/mod.rs).
#[derive(Debug, Clone)]
pub struct UdpSettings {
    pub bind: SocketAddr,
    pub recv_buffer_size: usize,
    pub max_message_size: usize,
    pub default_interval: f64,
    pub keyring: Option<Keyring>,
    pub plugin_limits: PluginLimits,
}

/// Binds the heartbeat socket: dual-stack when bound to `::`, with the
/// configured receive buffer so bursts queue in the kernel, not drop there.
pub fn bind(settings: &UdpSettings) -> io::Result<UdpSocket> {
    let context = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} udp {}: {e}", settings.bind));
    let socket = Socket::new(Domain::for_address(settings.bind), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| context("create socket for", e))?;
    if settings.bind.is_ipv6() {
        socket.set_only_v6(false).map_err(|e| context("allow IPv4 on", e))?;
    }
    if let Err(e) = socket.set_recv_buffer_size(settings.recv_buffer_size) {
        warn!("udp: cannot set receive buffer to {} bytes: {e}", settings.recv_buffer_size);
    }
    socket.bind(&settings.bind.into()).map_err(|e| context("bind", e))?;
    socket.set_read_timeout(Some(POLL)).map_err(|e| context("set timeout on", e))?;
    let socket: UdpSocket = socket.into();
    let effective = Socket::from(socket.try_clone()?).recv_buffer_size().unwrap_or(0);
    // Linux doubles the request for its bookkeeping (and reports the doubled
    // figure), and caps requests at net.core.rmem_max.
    let usable = if cfg!(target_os = "linux") { effective / 2 } else { effective };
    if usable < settings.recv_buffer_size {
        warn!(
            "udp: receive buffer is {usable} bytes, less than recv_buffer_size {}; raise net.core.rmem_max to avoid drops in bursts",
            settings.recv_buffer_size
        );
    }
    Ok(socket)
}

/// The channels the udp thread feeds.
pub struct UdpOutputs {
    pub to_core: Sender<CoreMsg>,
    pub to_journal: Option<Sender<JournalMsg>>,
}

pub fn spawn(
    socket: UdpSocket,
    settings: UdpSettings,
    replay: ReplayGuard,
    outputs: UdpOutputs,
    stop: Receiver<()>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("udp".into()).spawn(move || {
        let decoder = Decoder::new(
            settings.max_message_size,
            settings.default_interval,
            settings.keyring,
            replay,
            settings.plugin_limits,
        );
        let mut receiver = Listener {
            socket,
            decoder,
            outputs,
            stats: Stats::default(),
            heartbeats: Vec::with_capacity(BATCH),
            received: ReceivedBatch::with_capacity(BATCH, BATCH * 256),
            acks: Acks::default(),
            held_weight: 0,
        };
        match receiver.socket.local_addr() {
            Ok(addr) => info!("udp: listening on {addr}"),
            Err(e) => warn!("udp: listening, address unknown: {e}"),
        }
        receiver.run(&stop);
        receiver.stats.log_summary();
    })
}

struct Listener {
    socket: UdpSocket,
    decoder: Decoder,
    outputs: UdpOutputs,
    stats: Stats,
    /// Accepted messages not yet handed on: see [`BATCH`].
    heartbeats: Vec<Heartbeat>,
    received: ReceivedBatch,
    acks: Acks,
    /// The weight of `heartbeats` (see [`HAND_OVER_AT`]).
    held_weight: usize,
}

impl Listener {
    fn run(&mut self, stop: &Receiver<()>) {
        let mut batch = Batch::new();
        let mut next_stats = Instant::now();
        let mut reported = u64::MAX;
        let mut rate = Rate::new();
        // When the oldest message not yet handed on was accepted.
        let mut held_since: Option<Instant> = None;
        loop {
            if let Some(since) = held_since {
                let left = HOLD.saturating_sub(since.elapsed());
                if left.is_zero() || self.held_weight >= HAND_OVER_AT || !readable_within(&self.socket, left) {
                    if !self.flush() {
                        return;
                    }
                    held_since = None;
                }
            }
            match batch.receive(&self.socket) {
                Ok(n) => {
                    for i in 0..n {
                        let (datagram, source) = batch.datagram(i);
                        if let Some(source) = source {
                            self.handle_datagram(datagram, source, i);
                        }
                    }
                    self.send_acks(&mut batch);
                    if held_since.is_none() && !self.heartbeats.is_empty() {
                        let now = Instant::now();
                        if rate.busy(now, self.stats.received) {
                            held_since = Some(now);
                        } else if !self.flush() {
                            return;
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => self.stats.receive_error(&e),
            }
            if let Err(TryRecvError::Disconnected) = stop.try_recv() {
                self.flush();
                return;
            }
            // Every datagram changes `received`: the one figure to compare.
            if self.stats.received != reported && Instant::now() >= next_stats {
                // Skipped when core is busy; the next second brings newer figures.
                if self.outputs.to_core.try_send(CoreMsg::UdpStats(self.stats.snapshot())).is_ok() {
                    reported = self.stats.received;
                }
                next_stats = Instant::now() + STATS_EVERY;
            }
        }
    }

    /// Sends the batch's ACKs, each to the address its datagram came from.
    fn send_acks(&mut self, batch: &mut Batch) {
        let mut sent = 0;
        while sent < self.acks.len {
            match batch.send(&self.socket, &self.acks, sent) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // sendmmsg(2) reports an error only for the first message
                    // it could not send: skip that one and send the rest.
                    if let Some(source) = batch.datagram(self.acks.slots[sent]).1 {
                        self.stats.ack_error(&e, source);
                    }
                    sent += 1;
                }
            }
        }
        self.acks.len = 0;
    }

    /// Hands the held messages to the journal and core. False when `core`
    /// is gone, which only happens if it died.
    fn flush(&mut self) -> bool {
        if let Some(journal) = self.outputs.to_journal.as_ref().filter(|_| !self.received.is_empty()) {
            let batch = ReceivedBatch::with_capacity(BATCH, BATCH * 256);
            let _ = journal.send(JournalMsg::Received(std::mem::replace(&mut self.received, batch)));
        }
        if self.heartbeats.is_empty() {
            return true;
        }
        self.held_weight = 0;
        let batch = std::mem::replace(&mut self.heartbeats, Vec::with_capacity(BATCH));
        self.outputs.to_core.send(CoreMsg::Heartbeats(batch)).is_ok()
    }

    /// Decodes the datagram in `slot` of the batch; when accepted, its ACK
    /// goes into the batch's ACKs and its message and heartbeat into the
    /// batches handed on.
    fn handle_datagram(&mut self, datagram: &[u8], source: SocketAddr, slot: usize) {
        let now = SystemTime::now();
        // A dual-stack socket shows IPv4 senders as ::ffff:a.b.c.d.
        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
        self.stats.received += 1;
        let accepted = match self.decoder.decode(datagram, now) {
            Ok(accepted) => accepted,
            Err(rejection) => {
                self.stats.rejected(&rejection, source);
                return;
            }
        };
        trace!("udp: {} bytes from {source}: heartbeat of {}", datagram.len(), accepted.name);
        for why in &accepted.dropped_plugins {
            self.stats.dropped_plugin(why, &accepted.name);
        }
        self.decoder.ack_into(self.acks.next(slot), &accepted, now);
        if self.outputs.to_journal.is_some() {
            self.received.push(now, source, &accepted.json);
        }
        self.held_weight += if accepted.plugins.is_empty() { 1 } else { PLUGIN_WEIGHT };
        self.heartbeats.push(Heartbeat {
            name: accepted.name,
            source,
            interval: accepted.interval,
            received_at: now,
            signed_at_us: accepted.signed.map(|s| s.timestamp_us),
            counts: accepted.heartbeat,
            latency_ms: accepted.latency_ms,
            from_hbd: accepted.from_hbd,
            plugins: accepted.plugins,
            tags: accepted.tags,
            job: accepted.job,
        });
    }
}

/// The ACKs of one batch, their buffers kept from batch to batch.
#[derive(Default)]
struct Acks {
    buffers: Vec<Vec<u8>>,
    /// For each ACK, the batch slot of the datagram it answers.
    slots: Vec<usize>,
    /// ACKs in this batch: the first `len` of `buffers` and `slots`.
    len: usize,
}

impl Acks {
    /// The buffer for the next ACK, which answers the datagram in `slot`.
    fn next(&mut self, slot: usize) -> &mut Vec<u8> {
        if self.len == self.buffers.len() {
            self.buffers.push(Vec::with_capacity(64));
            self.slots.push(0);
        }
        self.slots[self.len] = slot;
        self.len += 1;
        &mut self.buffers[self.len - 1]
    }
}

/// Whether datagrams arrive faster than [`BUSY_RATE`], judged on the last
/// [`RATE_WINDOW`] (or the longer quiet before it).
struct Rate {
    window_start: Instant,
    received_at_start: u64,
    busy: bool,
}

impl Rate {
    fn new() -> Rate {
        Rate { window_start: Instant::now(), received_at_start: 0, busy: false }
    }

    /// `received`: the datagrams received so far, all told.
    fn busy(&mut self, now: Instant, received: u64) -> bool {
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= RATE_WINDOW {
            let per_second = received.saturating_sub(self.received_at_start) as f64 / elapsed.as_secs_f64();
            self.busy = per_second > BUSY_RATE;
            (self.window_start, self.received_at_start) = (now, received);
        }
        self.busy
    }
}

/// Whether a datagram waits on `socket` or arrives within `timeout`
/// (rounded up to a millisecond). An interrupted wait counts as "no".
fn readable_within(socket: &UdpSocket, timeout: Duration) -> bool {
    let mut poll_fd = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let millis = timeout.as_micros().div_ceil(1000).min(libc::c_int::MAX as u128) as libc::c_int;
    // SAFETY: one pollfd, owned by this frame for the length of the call.
    unsafe { libc::poll(&mut poll_fd, 1, millis) > 0 }
}

/// Buffers and headers for `recvmmsg(2)` and `sendmmsg(2)`. The headers
/// point into the buffers; they are filled in again before every call, so
/// nothing depends on the struct staying in place between calls.
struct Batch {
    /// [`BATCH`] receive buffers of [`RECV_BUFFER`] bytes, one after the
    /// other. Zeroed by the allocator (calloc: fresh pages), so memory is
    /// resident only where datagrams were written.
    buffers: Vec<u8>,
    addresses: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    /// For the ACKs, so that the receive headers stay as the kernel left them.
    send_iovecs: Vec<libc::iovec>,
    send_headers: Vec<libc::mmsghdr>,
    /// Datagrams in the last receive.
    received: usize,
}

impl Batch {
    fn new() -> Batch {
        // SAFETY: all-zero bytes are a valid value of these plain C structs
        // (null pointers, zero lengths).
        let (address, iovec, header) = unsafe {
            (
                std::mem::zeroed::<libc::sockaddr_storage>(),
                std::mem::zeroed::<libc::iovec>(),
                std::mem::zeroed::<libc::mmsghdr>(),
            )
        };
        Batch {
            buffers: vec![0; BATCH * RECV_BUFFER],
            addresses: vec![address; BATCH],
            iovecs: vec![iovec; BATCH],
            headers: vec![header; BATCH],
            send_iovecs: vec![iovec; BATCH],
            send_headers: vec![header; BATCH],
            received: 0,
        }
    }

    /// Waits for datagrams (up to the socket's read timeout) and takes all
    /// that are waiting, up to [`BATCH`]; returns how many.
    fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received = 0;
        for i in 0..BATCH {
            self.iovecs[i] =
                libc::iovec { iov_base: self.buffers[i * RECV_BUFFER..].as_mut_ptr().cast(), iov_len: RECV_BUFFER };
            let header = &mut self.headers[i];
            header.msg_hdr.msg_name = (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = &mut self.iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = std::ptr::null_mut();
            header.msg_hdr.msg_controllen = 0;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        // SAFETY: every header points at its own address storage and at one
        // iovec over its own RECV_BUFFER bytes of `buffers`, all owned by
        // `self` and alive for the call; the kernel writes within those
        // lengths. MSG_WAITFORONE: block (with SO_RCVTIMEO) for the first
        // datagram only, then take what is waiting.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as _,
                libc::MSG_WAITFORONE as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// The datagram in `slot` of the last receive, and its sender (None
    /// for an address family other than IPv4 and IPv6, which a UDP socket
    /// does not produce).
    fn datagram(&self, slot: usize) -> (&[u8], Option<SocketAddr>) {
        if slot >= self.received {
            return (&[], None);
        }
        let header = &self.headers[slot];
        let len = (header.msg_len as usize).min(RECV_BUFFER);
        let start = slot * RECV_BUFFER;
        // SAFETY: the kernel filled `addresses[slot]` and set `msg_namelen`
        // to the length of the address it wrote there.
        let source = unsafe { SockAddr::new(self.addresses[slot], header.msg_hdr.msg_namelen) }.as_socket();
        (&self.buffers[start..start + len], source)
    }

    /// Sends `acks` from index `from` on with one `sendmmsg(2)`, each to
    /// the address its datagram came from; returns how many were sent.
    fn send(&mut self, socket: &UdpSocket, acks: &Acks, from: usize) -> io::Result<usize> {
        let count = acks.len - from;
        for i in 0..count {
            let (buffer, slot) = (&acks.buffers[from + i], acks.slots[from + i]);
            self.send_iovecs[i] = libc::iovec { iov_base: buffer.as_ptr() as *mut libc::c_void, iov_len: buffer.len() };
            let header = &mut self.send_headers[i];
            header.msg_hdr.msg_name = (&mut self.addresses[slot] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = self.headers[slot].msg_hdr.msg_namelen;
            header.msg_hdr.msg_iov = &mut self.send_iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_len = 0;
        }
        // SAFETY: the first `count` send headers each point at one iovec over an
        // ACK buffer in `acks` and at the sender's address in `addresses`,
        // all alive for the call; the kernel only reads them (and writes
        // `msg_len`).
        let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), self.send_headers.as_mut_ptr(), count as _, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Counters and the rate limit on log lines about bad datagrams.
#[derive(Default)]
struct Stats {
    received: u64,
    rejected: [u64; RejectReason::ALL.len()],
    last_logged: [Option<Instant>; RejectReason::ALL.len()],
    unlogged: [u64; RejectReason::ALL.len()],
    last_io_error_log: Option<Instant>,
    dropped_plugins: u64,
    last_dropped_plugin_log: Option<Instant>,
}

impl Stats {
    fn rejected(&mut self, rejection: &Rejection, source: SocketAddr) {
        let i = rejection.reason.index();
        self.rejected[i] += 1;
        let due = self.last_logged[i].is_none_or(|at| at.elapsed() >= REJECT_LOG_EVERY);
        if !due {
            self.unlogged[i] += 1;
            return;
        }
        let more = match std::mem::take(&mut self.unlogged[i]) {
            0 => String::new(),
            n => format!(" (and {n} more {} since the last report)", rejection.reason.as_str()),
        };
        warn!("udp: rejected datagram from {source}: {rejection}{more}");
        self.last_logged[i] = Some(Instant::now());
    }

    fn snapshot(&self) -> UdpStats {
        UdpStats { received: self.received, rejected: self.rejected.to_vec(), dropped_plugins: self.dropped_plugins }
    }

    fn dropped_plugin(&mut self, why: &str, host: &str) {
        self.dropped_plugins += 1;
        if self.last_dropped_plugin_log.is_none_or(|at| at.elapsed() >= REJECT_LOG_EVERY) {
            self.last_dropped_plugin_log = Some(Instant::now());
            warn!(
                "udp: left out plugin data from {host}: {why} ({} plugin entries left out so far)",
                self.dropped_plugins
            );
        }
    }

    fn io_error_due(&mut self) -> bool {
        let due = self.last_io_error_log.is_none_or(|at| at.elapsed() >= REJECT_LOG_EVERY);
        if due {
            self.last_io_error_log = Some(Instant::now());
        }
        due
    }

    fn receive_error(&mut self, e: &io::Error) {
        if self.io_error_due() {
            warn!("udp: receive: {e}");
        }
    }

    fn ack_error(&mut self, e: &io::Error, to: SocketAddr) {
        if self.io_error_due() {
            warn!("udp: send ack to {to}: {e}");
        }
    }

    fn log_summary(&self) {
        let total_rejected: u64 = self.rejected.iter().sum();
        let by_reason: Vec<String> = RejectReason::ALL
            .iter()
            .filter(|r| self.rejected[r.index()] > 0)
            .map(|r| format!("{}={}", r.as_str(), self.rejected[r.index()]))
            .collect();
        info!(
            "udp: stopped after {} datagrams, {} accepted, {} rejected{}{}",
            self.received,
            self.received - total_rejected,
            total_rejected,
            if by_reason.is_empty() { "" } else { ": " },
            by_reason.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_held_only_while_heartbeats_come_fast() {
        let start = Instant::now();
        let mut rate = Rate { window_start: start, received_at_start: 0, busy: false };
        // Judged once a window: 500 in the first 100 ms is 5,000/s.
        assert!(!rate.busy(start + RATE_WINDOW / 2, 400));
        assert!(!rate.busy(start + RATE_WINDOW, 500));
        // 2,000 in the next 100 ms is 20,000/s: held from then on.
        assert!(!rate.busy(start + RATE_WINDOW * 3 / 2, 1_500));
        assert!(rate.busy(start + RATE_WINDOW * 2, 2_500));
        assert!(rate.busy(start + RATE_WINDOW * 5 / 2, 2_600));
        // After a quiet second, the next heartbeat goes on at once.
        assert!(!rate.busy(start + RATE_WINDOW * 12, 2_700));
    }
}
