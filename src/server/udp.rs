//! The udp thread: the only reader of the heartbeat socket.
//!
//! For each datagram: decode it ([`Decoder`]), answer an accepted one
//! with an ACK, send the message to the journal and the heartbeat to `core`.
//! A rejected datagram is counted by reason and logged at most once per
//! reason every [`REJECT_LOG_EVERY`]. Nothing a sender does can stop or slow
//! this loop beyond the cost of decoding its datagram.
//!
//! Ends when the `stop` channel disconnects (checked at least every
//! [`POLL`]); dropping its senders then tells `core` and `journal` to finish.

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use log::{info, trace, warn};
use socket2::{Domain, Protocol, Socket, Type};

use crate::server::config::UdpSettings;
use crate::server::core::CoreMsg;
use crate::server::journal::{JournalMsg, Received};
use crate::server::model::{Heartbeat, UdpStats};
use crate::wire::auth::ReplayGuard;
use crate::wire::decode::{Decoder, RejectReason, Rejection};

/// The most accepted messages handed on at once. The socket is drained
/// without blocking until it is empty or a batch is full; one hand-over per
/// batch instead of per datagram saves the wake-ups that dominate the cost
/// at high rates, and adds no delay (a lone datagram is passed on at once).
const BATCH: usize = 64;
/// How long `recv_from` blocks before the loop looks at `stop`.
const POLL: Duration = Duration::from_millis(200);
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);
/// How often the counters go to `core` (for /metrics), when they changed.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Larger than any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6).
const RECV_BUFFER: usize = 65536;

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
            received: Vec::with_capacity(BATCH),
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
    received: Vec<Received>,
}

impl Listener {
    fn run(&mut self, stop: &Receiver<()>) {
        // The same socket, for recv(2) with flags; O_NONBLOCK is not used, so
        // the blocking receive (with its timeout) is unaffected.
        let raw = match self.socket.try_clone() {
            Ok(clone) => Socket::from(clone),
            Err(e) => {
                warn!("udp: clone socket: {e}");
                return;
            }
        };
        let mut buf = vec![MaybeUninit::<u8>::uninit(); RECV_BUFFER];
        let mut next_stats = Instant::now();
        let mut reported = u64::MAX;
        loop {
            // Block only when nothing is waiting to be handed on.
            let flags = if self.heartbeats.is_empty() && self.received.is_empty() { 0 } else { libc::MSG_DONTWAIT };
            match raw.recv_from_with_flags(&mut buf, flags) {
                Ok((len, from)) => {
                    // SAFETY: recvfrom(2) initialised the first `len` bytes.
                    let datagram = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) };
                    if let Some(source) = from.as_socket() {
                        self.handle_datagram(datagram, source);
                    }
                    if self.heartbeats.len() >= BATCH && !self.flush() {
                        return;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) =>
                {
                    if !self.flush() {
                        return;
                    }
                }
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

    /// Hands the batch to the journal and core. False when `core` is gone,
    /// which only happens if it died.
    fn flush(&mut self) -> bool {
        if let Some(journal) = self.outputs.to_journal.as_ref().filter(|_| !self.received.is_empty()) {
            let _ =
                journal.send(JournalMsg::Received(std::mem::replace(&mut self.received, Vec::with_capacity(BATCH))));
        }
        if self.heartbeats.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.heartbeats, Vec::with_capacity(BATCH));
        self.outputs.to_core.send(CoreMsg::Heartbeats(batch)).is_ok()
    }

    fn handle_datagram(&mut self, datagram: &[u8], source: SocketAddr) {
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
        let ack = self.decoder.ack(&accepted, now);
        if let Err(e) = self.socket.send_to(&ack, source) {
            self.stats.ack_error(&e, source);
        }
        if self.outputs.to_journal.is_some() {
            self.received.push(Received { at: now, source, json: accepted.json });
        }
        self.heartbeats.push(Heartbeat {
            name: accepted.name,
            source,
            interval: accepted.interval,
            received_at: now,
            signed_at_us: accepted.signed.map(|s| s.timestamp_us),
            counts: accepted.heartbeat,
            latency_ms: accepted.latency_ms,
            plugins: accepted.plugins,
        });
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
