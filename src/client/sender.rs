//! hbc's sender thread: the only user of the client's socket.
//!
//! Receives [`SenderMsg`]s: plugin reports (batched for [`BATCH`] so that
//! plugins finishing together share a datagram) and shutdown; takes the
//! [`Ack`]s the `acks` thread read before each send. Every message starts
//! with a heartbeat, and one goes alone `interval` after the last message,
//! to every target with that target's last round-trip time; packs plugin data into
//! datagrams of at most `max_datagram_size` (docs/PROTOCOL.md: the first is an
//! `HTB`, the rest `PLG`), compresses and signs them. Resolves each target's
//! name again when it failed, is old, or the target stopped answering.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use log::{debug, info, warn};
use serde_json::{json, Value};
use socket2::{Domain, Protocol, Socket, Type};

use crate::wire::auth::Key;
use crate::wire::decode::parse_ack;
use crate::wire::{encode, unix_micros, PluginKind, HBC_CLIENT};

/// How long plugin reports wait for others before they are sent together.
const BATCH: Duration = Duration::from_millis(200);
/// Heartbeats without an ACK before a target is reported and resolved again.
const UNANSWERED_LIMIT: u32 = 3;
/// Resolve names again after this long even when all goes well (DNS changes).
const RESOLVE_EVERY: Duration = Duration::from_secs(300);
/// When the first samples (with their warm-ups) have been sent.
const SETTLE: Duration = Duration::from_secs(3);
/// The most a single UDP datagram can carry over IPv4.
const UDP_MAX: usize = 65507;

/// What the sender needs, checked: made only by `ClientConfig::check` (config.rs), so
/// a key that does not build can never silently turn signing off.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The name hbc reports, lower case as hbd keeps (and acknowledges) it.
    pub name: String,
    pub targets: Vec<Target>,
    pub interval: Duration,
    pub key: Option<Key>,
    pub max_datagram_size: usize,
    /// `tags`, checked and sorted: sent in each heartbeat.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// One plugin's result, as the plugin threads report it.
#[derive(Debug, Clone)]
pub struct PluginReport {
    pub name: String,
    pub kind: PluginKind,
    /// Unix seconds when the sample was taken.
    pub at: f64,
    pub result: Result<Value, String>,
    /// Seconds until the plugin's next sample; None when there is none
    /// (`--once`, where whatever runs hbc decides).
    pub interval: Option<f64>,
}

/// What the sender receives.
#[derive(Debug)]
pub enum SenderMsg {
    /// A plugin finished a sample.
    Plugin(PluginReport),
    /// SIGTERM/SIGINT: stop.
    Shutdown,
}

/// A valid ACK for `seq` from `from`, read by the `acks` thread at `at`.
/// The sender takes the ACKs waiting before each send, not as they come:
/// they only count then, and a wake-up for each would cost more than the
/// ACK itself.
#[derive(Debug)]
struct Ack {
    from: SocketAddr,
    seq: u64,
    at: Instant,
}

/// ACKs waiting for the sender's next send; newer ones are dropped when it
/// is full, which a turn's datagrams to a few servers do not come near
/// (each is answered once), a flood of replayed ACKs would.
const ACKS_CAPACITY: usize = 64;

struct TargetState {
    target: Target,
    addr: Option<SocketAddr>,
    resolved_at: Option<Instant>,
    unanswered: u32,
    latency_ms: Option<f64>,
}

/// The socket and everything that turns messages into datagrams.
struct Wire {
    socket: Option<UdpSocket>,
    v6: bool,
    name: String,
    interval: Duration,
    key: Option<Key>,
    max_datagram_size: usize,
    print: bool,
    seq: u64,
    last_timestamp_us: u64,
    targets: Vec<TargetState>,
    /// seq → when it was sent, per target index; pruned as ACKs come in.
    in_flight: HashMap<(usize, u64), Instant>,
    /// Each plugin's interval as it last reported it, declared to hbd.
    plugin_intervals: BTreeMap<String, f64>,
    tags: Vec<String>,
}

impl Wire {
    fn new(settings: ClientSettings, print: bool) -> io::Result<Wire> {
        let (socket, v6) = if print { (None, false) } else { open_socket().map(|(s, v6)| (Some(s), v6))? };
        let targets = settings
            .targets
            .into_iter()
            .map(|target| TargetState { target, addr: None, resolved_at: None, unanswered: 0, latency_ms: None })
            .collect();
        Ok(Wire {
            socket,
            v6,
            name: settings.name,
            interval: settings.interval,
            key: settings.key,
            max_datagram_size: settings.max_datagram_size,
            print,
            seq: 0,
            last_timestamp_us: 0,
            targets,
            in_flight: HashMap::new(),
            plugin_intervals: BTreeMap::new(),
            tags: settings.tags,
        })
    }

    /// Sends one heartbeat carrying `reports` to every target (or prints it).
    /// Returns the sequence numbers used.
    fn send(&mut self, reports: &[PluginReport]) -> Vec<u64> {
        for report in reports {
            match report.interval {
                Some(interval) => self.plugin_intervals.insert(report.name.clone(), interval),
                None => self.plugin_intervals.remove(&report.name),
            };
        }
        let plugins: Vec<(String, Value)> =
            reports.iter().map(|r| (r.name.clone(), encode::plugin_entry(r.kind, r.at, &r.result))).collect();
        if self.print {
            let messages = self.messages(None, &plugins);
            let mut out = io::stdout().lock();
            for (_, message, _) in &messages {
                let _ = writeln!(out, "{message}");
            }
            let _ = out.flush();
            return messages.into_iter().map(|(seq, _, _)| seq).collect();
        }
        let mut seqs = Vec::new();
        for index in 0..self.targets.len() {
            self.resolve_if_needed(index);
            let Some(addr) = self.targets[index].addr else {
                continue;
            };
            let messages = self.messages(self.targets[index].latency_ms, &plugins);
            for (seq, _, payload) in messages {
                let datagram = self.seal(payload);
                // Taken before sending: the ACK may be read before send_to returns.
                let sent = Instant::now();
                match self.socket.as_ref().map(|s| s.send_to(&datagram, addr)) {
                    Some(Ok(_)) => {
                        self.in_flight.insert((index, seq), sent);
                        seqs.push(seq);
                    }
                    Some(Err(e)) => warn!("sender: send to {} ({addr}): {e}", self.targets[index].target.host),
                    None => {}
                }
            }
            self.targets[index].unanswered += 1;
            if self.targets[index].unanswered == UNANSWERED_LIMIT {
                warn!(
                    "sender: no ACK from {} ({addr}) for {UNANSWERED_LIMIT} heartbeats; is hbd running there? will resolve the name again",
                    self.targets[index].target.host
                );
            }
        }
        let horizon = Instant::now() - self.interval * 4;
        self.in_flight.retain(|_, sent| *sent > horizon);
        seqs
    }

    /// The heartbeat (with as many plugins as fit) and `PLG` messages for the
    /// rest, each below `max_datagram_size` once encoded: each with its
    /// sequence number and its payload (compressed when that pays), which
    /// had to be made to know its size and is sent as it is.
    fn messages(&mut self, latency_ms: Option<f64>, plugins: &[(String, Value)]) -> Vec<(u64, Value, Vec<u8>)> {
        let mut groups: Vec<&[(String, Value)]> = vec![plugins];
        let mut out = Vec::new();
        let mut first = true;
        while let Some(group) = groups.pop() {
            let seq = self.next_seq();
            let message = self.message(first, seq, latency_ms, group);
            let bytes = payload(&message);
            let len = bytes.len() + encode::envelope_len(self.key.as_ref());
            if group.len() > 1 && len > self.max_datagram_size {
                // Too big: halve the plugins and try each half (first half first).
                let (a, b) = group.split_at(group.len() / 2);
                groups.push(b);
                groups.push(a);
                self.seq -= 1;
                continue;
            }
            let (message, bytes) = if len > UDP_MAX {
                let name = &group[0].0;
                warn!("sender: data of plugin {name} does not fit into one UDP datagram even compressed; sending an error instead");
                // Keep the entry's kind and time: hbd needs both to store the error.
                let entry = &group[0].1;
                let error =
                    json!({"kind": entry["kind"], "at": entry["at"], "error": "data too large for one datagram"});
                let message = self.message(first, seq, latency_ms, &[(name.clone(), error)]);
                let bytes = payload(&message);
                (message, bytes)
            } else {
                (message, bytes)
            };
            out.push((seq, message, bytes));
            first = false;
        }
        out
    }

    fn message(&self, heartbeat: bool, seq: u64, latency_ms: Option<f64>, plugins: &[(String, Value)]) -> Value {
        let header = encode::Header {
            heartbeat,
            name: &self.name,
            interval_s: self.interval.as_secs(),
            seq,
            latency_ms,
            client: HBC_CLIENT,
        };
        let mut message = encode::message(header, plugins, &self.plugin_intervals);
        encode::add_tags(&mut message, &self.tags);
        message
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn encoded_len(&self, message: &Value) -> usize {
        payload(message).len() + encode::envelope_len(self.key.as_ref())
    }

    fn encode(&mut self, message: &Value) -> Vec<u8> {
        let payload = payload(message);
        self.seal(payload)
    }

    /// The datagram for a payload made by [`payload`].
    fn seal(&mut self, payload: Vec<u8>) -> Vec<u8> {
        // Strictly increasing, as hbd's replay protection requires.
        let timestamp_us = unix_micros(SystemTime::now()).max(self.last_timestamp_us + 1);
        if self.key.is_some() {
            self.last_timestamp_us = timestamp_us;
        }
        encode::datagram(payload, self.key.as_ref(), timestamp_us)
    }

    fn resolve_if_needed(&mut self, index: usize) {
        let state = &self.targets[index];
        let stale = state.resolved_at.is_none_or(|at| at.elapsed() >= RESOLVE_EVERY);
        // While a target is silent, look its name up again every few beats.
        let silent = state.unanswered > 0 && state.unanswered % UNANSWERED_LIMIT == 0;
        if state.addr.is_some() && !stale && !silent {
            return;
        }
        let (host, port) = (state.target.host.clone(), state.target.port);
        let resolved = (host.as_str(), port).to_socket_addrs().map(|addrs| {
            let addrs: Vec<SocketAddr> = addrs.collect();
            addrs.iter().find(|a| self.v6 || a.is_ipv4()).copied()
        });
        let state = &mut self.targets[index];
        state.resolved_at = Some(Instant::now());
        match resolved {
            Ok(Some(addr)) => {
                let addr = if self.v6 { to_v6(addr) } else { addr };
                if state.addr != Some(addr) {
                    info!("sender: sending to {host} port {port} at {}", addr.ip().to_canonical());
                }
                state.addr = Some(addr);
            }
            Ok(None) => warn!("sender: {host} has no address this host can reach"),
            Err(e) => warn!("sender: resolve {host}: {e}; will try again"),
        }
    }

    fn handle_ack(&mut self, Ack { from, seq, at }: Ack) {
        let Some(index) = self.targets.iter().position(|t| t.addr.is_some_and(|a| same_endpoint(a, from))) else {
            debug!("sender: ACK from unknown {from}");
            return;
        };
        let Some(sent) = self.in_flight.remove(&(index, seq)) else {
            return;
        };
        let state = &mut self.targets[index];
        let rtt_ms = (at.duration_since(sent).as_secs_f64() * 1e6).round() / 1e3;
        if state.unanswered >= UNANSWERED_LIMIT {
            info!("sender: {} answers again", state.target.host);
        }
        state.unanswered = 0;
        state.latency_ms = Some(rtt_ms);
        debug!("sender: ACK {seq} from {} after {rtt_ms} ms", state.target.host);
    }
}

/// `message` as JSON text, compressed when that pays. Serialized with
/// `serde_json::to_vec`: the same text as `Display`, which goes through
/// `fmt` one piece at a time.
fn payload(message: &Value) -> Vec<u8> {
    let text = serde_json::to_vec(message).unwrap_or_else(|_| message.to_string().into_bytes());
    encode::compress(&text)
}

fn to_v6(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), addr.port()),
        IpAddr::V6(_) => addr,
    }
}

fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// One socket for both families when the host has IPv6, IPv4 only otherwise.
fn open_socket() -> io::Result<(UdpSocket, bool)> {
    let dual = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).and_then(|s| {
        s.set_only_v6(false)?;
        s.bind(&SocketAddr::from(([0u16; 8], 0)).into())?;
        Ok(s)
    });
    match dual {
        Ok(socket) => Ok((socket.into(), true)),
        Err(e) => {
            debug!("sender: no IPv6 socket ({e}); using IPv4 only");
            Ok((UdpSocket::bind("0.0.0.0:0")?, false))
        }
    }
}

pub fn spawn(settings: ClientSettings, print: bool, inbox: Receiver<SenderMsg>) -> io::Result<JoinHandle<()>> {
    let mut wire = Wire::new(settings, print)?;
    let (to_sender, acks) = bounded(ACKS_CAPACITY);
    if let Some(socket) = &wire.socket {
        spawn_ack_reader(socket.try_clone()?, wire.key.clone(), wire.name.clone(), to_sender)?;
    }
    std::thread::Builder::new().name("sender".into()).spawn(move || {
        // Code run only by the first samples and sends (warm-ups, first
        // resolution and connection) stays mapped unless released again
        // once they are over (memory.rs).
        let mut settled = crossbeam_channel::after(SETTLE);
        // Every message starts with a heartbeat: the next is due `interval`
        // after the last message, whatever it carried.
        let mut heartbeat_due = Instant::now();
        loop {
            let mut batch: Vec<PluginReport> = Vec::new();
            select! {
                recv(inbox) -> msg => match msg {
                    Ok(SenderMsg::Plugin(report)) => batch.push(report),
                    Ok(SenderMsg::Shutdown) | Err(_) => break,
                },
                recv(crossbeam_channel::at(heartbeat_due)) -> _ => {},
                recv(settled) -> _ => {
                    crate::memory::release_startup_pages();
                    settled = crossbeam_channel::never();
                    continue;
                },
            }
            if !batch.is_empty() {
                // The other plugins of the turn report within BATCH: their
                // reports gather in the inbox and are taken at once, rather
                // than each waking this thread (a wake-up costs more than
                // the report it brings).
                std::thread::sleep(BATCH);
                let mut stop = false;
                for msg in inbox.try_iter() {
                    match msg {
                        SenderMsg::Plugin(report) => {
                            batch.retain(|r| r.name != report.name);
                            batch.push(report);
                        }
                        SenderMsg::Shutdown => stop = true,
                    }
                }
                if stop {
                    break;
                }
            }
            for ack in acks.try_iter() {
                wire.handle_ack(ack);
            }
            wire.send(&batch);
            heartbeat_due = Instant::now() + wire.interval;
        }
        info!("sender: stopped");
    })
}

fn spawn_ack_reader(socket: UdpSocket, key: Option<Key>, name: String, to_sender: Sender<Ack>) -> io::Result<()> {
    std::thread::Builder::new().name("acks".into()).stack_size(128 << 10).spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let at = Instant::now();
            if let Some(seq) = parse_ack(&buf[..len], key.as_ref(), &name) {
                match to_sender.try_send(Ack { from, seq, at }) {
                    Err(TrySendError::Disconnected(_)) => return,
                    Err(TrySendError::Full(_)) => {
                        debug!("sender: ACK {seq} from {from} dropped: {ACKS_CAPACITY} wait already")
                    }
                    Ok(()) => {}
                }
            }
        }
    })?;
    Ok(())
}

/// `--once`: send one heartbeat with `reports` and wait until every target
/// acknowledged it (sending again up to three times), or print it.
pub fn send_once(settings: ClientSettings, print: bool, reports: Vec<PluginReport>) -> Result<(), String> {
    let mut wire = Wire::new(settings, print).map_err(|e| format!("open socket: {e}"))?;
    if wire.print {
        wire.send(&reports);
        return Ok(());
    }
    if wire.targets.is_empty() {
        return Err("no server to send to: give -s HOST or set `server`".into());
    }
    let socket = wire.socket.as_ref().ok_or("no socket")?.try_clone().map_err(|e| e.to_string())?;
    let mut acked = vec![false; wire.targets.len()];
    for _attempt in 0..3 {
        wire.send(&reports);
        let deadline = Instant::now() + Duration::from_millis(1500);
        let mut buf = [0u8; 2048];
        while acked.iter().any(|a| !a) && Instant::now() < deadline {
            let _ = socket.set_read_timeout(Some(
                deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)),
            ));
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if let Some(seq) = parse_ack(&buf[..len], wire.key.as_ref(), &wire.name) {
                let at = Instant::now();
                if let Some(index) = wire.targets.iter().position(|t| t.addr.is_some_and(|a| same_endpoint(a, from))) {
                    if wire.in_flight.contains_key(&(index, seq)) {
                        acked[index] = true;
                        wire.handle_ack(Ack { from, seq, at });
                        info!(
                            "ACK from {} after {} ms",
                            wire.targets[index].target.host,
                            wire.targets[index].latency_ms.unwrap_or(0.0)
                        );
                    }
                }
            }
        }
        if acked.iter().all(|a| *a) {
            return Ok(());
        }
    }
    Err(format!("no ACK from {}", unanswered(&wire, &acked)))
}

/// The servers whose ACK did not come, as `host:port, …`.
fn unanswered(wire: &Wire, acked: &[bool]) -> String {
    let silent: Vec<String> = wire
        .targets
        .iter()
        .zip(acked)
        .filter(|(_, a)| !**a)
        .map(|(t, _)| format!("{}:{}", t.target.host, t.target.port))
        .collect();
    silent.join(", ")
}

/// Sends one job signal (`hbc run`, `hbc signal`): `message` is a `JOB`
/// object without `seq`, in the name of `settings.name`. Waits for every
/// target's ACK, sending again after 0.25, 0.5, 1 s … within `wait` in all,
/// then gives up: a job must never hang on an unreachable server. The
/// `seq` is the signal's first send time in µs, the same in every repeat,
/// so that hbd takes a repeat whose first copy arrived (its ACK was lost)
/// as the same signal. An `output` too long for `max_datagram_size` once
/// compressed is cut at its front until it fits.
pub fn send_signal(settings: ClientSettings, print: bool, mut message: Value, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    let mut wire = Wire::new(settings, print).map_err(|e| format!("open socket: {e}"))?;
    let seq = unix_micros(SystemTime::now());
    if let Some(map) = message.as_object_mut() {
        // As a heartbeat carries them (`encode::add_tags` is for those).
        if !wire.tags.is_empty() {
            map.insert("tags".into(), json!(wire.tags));
        }
        map.insert("seq".into(), json!(seq));
        map.insert("client".into(), json!(HBC_CLIENT));
    }
    while wire.encoded_len(&message) > wire.max_datagram_size {
        let Some(output) = message.get("output").and_then(Value::as_str).filter(|o| !o.is_empty()) else { break };
        let kept = crate::wire::tail_chars(output, output.len() / 2).to_string();
        message["output"] = json!(kept);
    }
    if wire.print {
        println!("{message}");
        return Ok(());
    }
    let socket = wire.socket.as_ref().ok_or("no socket")?.try_clone().map_err(|e| e.to_string())?;
    let mut acked = vec![false; wire.targets.len()];
    let mut pause = Duration::from_millis(250);
    let mut buf = [0u8; 2048];
    loop {
        let datagram = wire.encode(&message);
        for (index, _) in acked.iter().enumerate().filter(|(_, acked)| !**acked) {
            wire.resolve_if_needed(index);
            if let Some(addr) = wire.targets[index].addr {
                if let Err(e) = socket.send_to(&datagram, addr) {
                    debug!("sender: send to {addr}: {e}");
                }
            }
        }
        let until = (Instant::now() + pause).min(deadline);
        while acked.iter().any(|a| !a) && Instant::now() < until {
            let _ = socket
                .set_read_timeout(Some(until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))));
            let Ok((len, from)) = socket.recv_from(&mut buf) else { continue };
            if parse_ack(&buf[..len], wire.key.as_ref(), &wire.name) != Some(seq) {
                continue;
            }
            if let Some(index) = wire.targets.iter().position(|t| t.addr.is_some_and(|a| same_endpoint(a, from))) {
                acked[index] = true;
            }
        }
        if acked.iter().all(|a| *a) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            break;
        }
        pause *= 2;
    }
    Err(format!("no ACK from {} within {:.1} s", unanswered(&wire, &acked), wait.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(max: usize, key: Option<Key>) -> Wire {
        let settings = ClientSettings {
            name: "h1".into(),
            interval: Duration::from_secs(30),
            targets: vec![],
            key,
            max_datagram_size: max,
            tags: vec!["db".into()],
        };
        Wire::new(settings, true).unwrap()
    }

    fn report(name: &str, size: usize) -> (String, Value) {
        // Incompressible data of `size` letters (xorshift, seeded by the name).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ name.len() as u64 ^ u64::from(name.as_bytes()[name.len() - 1]);
        let data: String = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        (name.to_string(), json!({"kind": "monitor", "at": 1.0, "data": {"blob": data}}))
    }

    #[test]
    fn small_message_is_one_heartbeat() {
        let mut w = wire(1400, None);
        let messages = w.messages(Some(1.5), &[report("a", 10)]);
        assert_eq!(messages.len(), 1);
        let m = &messages[0].1;
        assert_eq!(
            (m["ID"].as_str(), m["name"].as_str(), m["interval"].as_u64(), m["latency_ms"].as_f64()),
            (Some("HTB"), Some("h1"), Some(30), Some(1.5))
        );
        assert!(m["plugins"]["a"]["data"].is_object());
    }

    #[test]
    fn large_plugin_data_is_split_into_datagrams_that_fit() {
        let key = Key::new("k", b"0123456789abcdef", vec![]).unwrap();
        let mut w = wire(1400, Some(key));
        let plugins: Vec<_> = (0..6).map(|i| report(&format!("p{i}"), 900)).collect();
        let messages = w.messages(None, &plugins);
        assert!(messages.len() > 1);
        assert_eq!(messages[0].1["ID"], "HTB");
        assert!(messages[1..].iter().all(|(_, m, _)| m["ID"] == "PLG" && m.get("interval").is_none()));
        let mut seen: Vec<String> = Vec::new();
        for (_, m, sent) in &messages {
            assert!(w.encoded_len(m) <= 1400, "{} bytes", w.encoded_len(m));
            assert_eq!(*sent, payload(m), "the payload sent is the message's");
            assert_eq!(serde_json::to_vec(m).unwrap(), m.to_string().into_bytes());
            seen.extend(m["plugins"].as_object().unwrap().keys().cloned());
        }
        seen.sort();
        assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4", "p5"]);
        let seqs: Vec<u64> = messages.iter().map(|(s, _, _)| *s).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }

    /// Each message declares the intervals of the plugins it carries, and
    /// hbd reads them back.
    #[test]
    fn messages_declare_their_plugins_intervals() {
        let mut w = wire(1400, None);
        let plugins: Vec<_> = (0..6).map(|i| report(&format!("p{i}"), 900)).collect();
        w.plugin_intervals = (0..5).map(|i| (format!("p{i}"), f64::from(i + 1) * 10.0)).collect();
        let messages = w.messages(None, &plugins);
        assert!(messages.len() > 1);
        let limits = crate::wire::decode::PluginLimits { max_plugins: 32, max_keys: 1000, max_bytes: 65536 };
        let mut decoder = crate::wire::decode::Decoder::new(65536, 30.0, None, Default::default(), limits);
        let mut declared = Vec::new();
        for (_, m, _) in &messages {
            let carried: Vec<&String> = m["plugins"].as_object().unwrap().keys().collect();
            if let Some(intervals) = m.get("plugin_intervals").and_then(Value::as_object) {
                assert!(intervals.keys().all(|k| carried.contains(&k)), "only its own plugins: {m}");
            }
            let text = m.to_string();
            let accepted = decoder.decode(text.as_bytes(), SystemTime::now()).unwrap();
            declared.extend(accepted.plugins.into_iter().map(|p| (p.name, p.interval)));
        }
        declared.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<_> = (0..6).map(|i| (format!("p{i}"), (i < 5).then(|| f64::from(i + 1) * 10.0))).collect();
        assert_eq!(declared, expected);
    }

    /// The heartbeat carries the tags, hbd reads them back; `PLG`
    /// messages (the rest of the plugin data) do not repeat them.
    #[test]
    fn the_heartbeat_carries_the_tags() {
        let mut w = wire(1400, None);
        let plugins: Vec<_> = (0..6).map(|i| report(&format!("p{i}"), 900)).collect();
        let messages = w.messages(None, &plugins);
        assert!(messages.len() > 1);
        let limits = crate::wire::decode::PluginLimits { max_plugins: 32, max_keys: 1000, max_bytes: 65536 };
        let mut decoder = crate::wire::decode::Decoder::new(65536, 30.0, None, Default::default(), limits);
        for (i, (_, m, _)) in messages.iter().enumerate() {
            assert_eq!(m.get("tags").is_some(), i == 0, "{m}");
            let text = m.to_string();
            let accepted = decoder.decode(text.as_bytes(), SystemTime::now()).unwrap();
            assert_eq!(accepted.tags, if i == 0 { vec!["db".to_string()] } else { vec![] });
        }
    }

    #[test]
    fn a_plugin_too_large_for_any_datagram_becomes_an_error() {
        let mut w = wire(1400, None);
        let messages = w.messages(None, &[report("huge", 200_000)]);
        assert_eq!(messages.len(), 1);
        // hbd must accept and store the error entry.
        let limits = crate::wire::decode::PluginLimits { max_plugins: 32, max_keys: 1000, max_bytes: 65536 };
        let mut decoder = crate::wire::decode::Decoder::new(65536, 30.0, None, Default::default(), limits);
        let text = messages[0].1.to_string();
        let accepted = decoder.decode(text.as_bytes(), SystemTime::now()).unwrap();
        assert!(accepted.dropped_plugins.is_empty(), "{:?}", accepted.dropped_plugins);
        assert_eq!(accepted.plugins[0].error.as_deref(), Some("data too large for one datagram"));
        assert_eq!(accepted.plugins[0].at, 1.0);
    }

    #[test]
    fn acks_must_match_name_and_key() {
        assert_eq!(parse_ack(br#"{"ID":"ACK","name":"h1","seq":5}"#, None, "h1"), Some(5));
        assert_eq!(parse_ack(br#"{"ID":"ACK","name":"h2","seq":5}"#, None, "h1"), None);
        assert_eq!(parse_ack(b"junk", None, "h1"), None);
        let key = Key::new("k", b"0123456789abcdef", vec![]).unwrap();
        let sealed = key.seal(unix_micros(SystemTime::now()), br#"{"ID":"ACK","name":"h1","seq":6}"#);
        assert_eq!(parse_ack(&sealed, Some(&key), "h1"), Some(6));
        assert_eq!(
            parse_ack(br#"{"ID":"ACK","name":"h1","seq":6}"#, Some(&key), "h1"),
            None,
            "unsigned ACK with a key"
        );
    }

    #[test]
    fn signed_timestamps_strictly_increase() {
        let key = Key::new("k", b"0123456789abcdef", vec![]).unwrap();
        let mut w = wire(1400, Some(key));
        let m = json!({"ID": "HTB"});
        let stamps: Vec<u64> = (0..100)
            .map(|_| {
                let d = w.encode(&m);
                u64::from_be_bytes(d[6..14].try_into().unwrap())
            })
            .collect();
        assert!(stamps.windows(2).all(|p| p[0] < p[1]));
    }
}
