//! The WebSocket threads: live updates for browsers on `hbd_host:ws_port`.
//!
//! - `ws` (the hub, this module) receives [`Update`]s from `core`, turns each
//!   into JSON once, and writes it to every browser's socket itself: one
//!   thread for all of them, its sockets non-blocking, so an update costs
//!   one write per browser and no thread wake-ups (with one thread per
//!   browser, 100 browsers were 100 threads woken per update, and the p99
//!   of delivery twice as long: BENCHMARKS.md). What a socket does not take waits in the
//!   client's backlog (shared text, not copies); a client whose backlog
//!   reaches [`CLIENT_QUEUE`] is too slow: the hub drops it, and nobody
//!   else waits. It tells `core` how many browsers watch
//!   ([`CoreMsg::LiveClients`]).
//! - `ws-accept`, and a short-lived `ws-client` thread per browser for the
//!   handshake and the snapshot (blocking, with timeouts), which then hands
//!   the socket to the hub: [`accept`].
//! - the WSS certificate: [`tls`].
//!
//! Message types are in docs/API.md. The hub ends when `core` hangs up,
//! closing every socket; `ws-accept` ends when the parent's `stop` channel
//! disconnects.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, select, Receiver, Sender};
use log::{debug, info, warn};
use serde_json::{json, Map, Value};
use tungstenite::{Message, Utf8Bytes};

use crate::server::msg::{CoreMsg, Query, Update, Upgraded};
use crate::server::views::{event_fields, host_json, round3, sample_json};
use accept::{Acceptor, Clients, LiveSocket, Slot};
pub use tls::{load_tls, Tls};

mod accept;
mod tls;
use crate::wire::unix_seconds;

/// Updates a client may have waiting before it counts as too slow: enough
/// to cover the time a browser takes to receive the snapshot of thousands of
/// hosts at a high heartbeat rate. The backlog grows as needed, so slack
/// costs no memory until used (the messages themselves are shared by all
/// clients).
pub(crate) const CLIENT_QUEUE: usize = 4096;
/// How long the hub waits to tell core how many browsers watch.
const TELL_CORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How soon the hub tries again to write to a socket that took no more.
const RETRY_BLOCKED: Duration = Duration::from_millis(2);
/// A socket that takes nothing for this long belongs to a browser that is
/// gone or stalled: it is dropped as too slow (its backlog may be short
/// when updates are few).
const STALLED: Duration = Duration::from_secs(5);
/// How often the hub reads what browsers sent (close frames, pongs).
const READ_EVERY: Duration = Duration::from_secs(1);
/// Pings keep idle connections (and proxies in between) alive.
const PING_EVERY: Duration = Duration::from_secs(30);
/// Updates taken from core in one go before writing: one write per socket
/// for all of them.
const UPDATES_AT_ONCE: usize = 64;

#[derive(Debug, Clone)]
pub struct WsSettings {
    pub bind: SocketAddr,
    pub max_clients: usize,
    /// Browser origins allowed besides hbd's own pages (`cors_origins`).
    pub allowed_origins: Vec<String>,
    /// The ports hbd's own pages are served from (http, ws, wss as bound):
    /// a page's `Origin` names the `Host` it connects to and one of these.
    pub page_ports: Vec<u16>,
    /// WSS: where to listen, and the certificate chain and key files.
    pub wss: Option<(SocketAddr, PathBuf, PathBuf)>,
    /// With `api_reads_need_token`, a handshake needs a token as the API's reads do.
    pub tokens: crate::server::http::auth::Tokens,
}

/// What client threads tell the hub.
enum ClientMsg {
    /// A browser completed the handshake; the hub keeps its updates from
    /// now on. It answers on `ready` once `core` knows someone is watching,
    /// so that no update falls between the client's snapshot and its first
    /// update.
    Joined { id: u64, ready: Sender<()> },
    /// The snapshot is sent: the hub writes to the socket from now on (it
    /// is non-blocking), and gives the slot back when it drops it.
    Live { id: u64, socket: Box<LiveSocket>, slot: Slot },
    /// The browser went away before its socket was handed over.
    Left { id: u64 },
    /// A handshake was refused (a foreign `Origin`); the hub logs these at
    /// most once a minute, with counts, so a flood costs no log space.
    Refused { peer: SocketAddr, why: String },
}

/// Counts refusals and logs them at most once per [`REFUSAL_REPORT_EVERY`].
#[derive(Default)]
pub(crate) struct Refusals {
    count: u64,
    last: Option<std::time::Instant>,
}

/// How often refused connections are reported, at most.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(60);

impl Refusals {
    pub(crate) fn refused(&mut self, peer: SocketAddr, why: &str) {
        self.count += 1;
        let now = std::time::Instant::now();
        if self.last.is_none_or(|last| now.duration_since(last) >= REFUSAL_REPORT_EVERY) {
            warn!("ws: refused {} connections in the last minute; the latest from {peer}: {why}", self.count);
            self.count = 0;
            self.last = Some(now);
        }
    }
}

pub fn bind(addr: &SocketAddr) -> io::Result<TcpListener> {
    let listener =
        TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("bind websocket {addr}: {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Starts the hub and the acceptors; the hub's handle comes first.
/// The channels of the ws threads.
pub struct Links {
    /// Live updates from core, for the hub.
    pub updates: Receiver<Update>,
    /// The number of watching browsers, to core.
    pub to_core: Sender<CoreMsg>,
    /// Snapshots for new clients.
    pub to_core_queries: Sender<Query>,
    /// `/ws` connections taken by the HTTP front.
    pub upgrades: Receiver<Upgraded>,
    /// Disconnects when the acceptors are to stop.
    pub stop: Receiver<()>,
}

pub fn spawn(
    listener: TcpListener,
    tls: Option<Tls>,
    settings: WsSettings,
    links: Links,
) -> io::Result<Vec<JoinHandle<()>>> {
    let Links { updates, to_core, to_core_queries, upgrades, stop } = links;
    let (to_hub, clients) = bounded::<ClientMsg>(64);
    // One pool of slots for ws and wss: a slot is taken per client and given back when it leaves.
    let (take_slot, slots) = bounded::<()>(settings.max_clients);
    let hub = std::thread::Builder::new().name("ws".into()).spawn(move || {
        Hub { clients: Vec::new(), dropped_slow: 0, to_core, refusals: Refusals::default() }.run(&updates, &clients)
    })?;
    let mut handles = vec![hub];
    // The plain acceptor also takes the `/ws` upgrades of the HTTP port.
    let plain = Acceptor { listener, tls: None, id_parity: 0, upgrades: Some(upgrades) };
    let secure = tls.map(|t| Acceptor { listener: t.listener, tls: Some(t.config), id_parity: 1, upgrades: None });
    for acceptor in std::iter::once(plain).chain(secure) {
        let scheme = if acceptor.tls.is_some() { "wss" } else { "ws" };
        if let Ok(addr) = acceptor.listener.local_addr() {
            info!("{scheme}: listening on {addr}");
        }
        let clients = Clients {
            to_hub: to_hub.clone(),
            to_core_queries: to_core_queries.clone(),
            take_slot: take_slot.clone(),
            slots: slots.clone(),
            origins: std::sync::Arc::new((settings.allowed_origins.clone(), settings.page_ports.clone())),
            tokens: std::sync::Arc::new(settings.tokens.clone()),
        };
        let stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{scheme}-accept"))
            .spawn(move || acceptor.run(&clients, &stop))?;
        handles.push(handle);
    }
    Ok(handles)
}

struct Hub {
    clients: Vec<Client>,
    dropped_slow: u64,
    /// Told how many clients there are: core prepares updates only for them.
    to_core: Sender<CoreMsg>,
    refusals: Refusals,
}

/// A browser, from its handshake on.
struct Client {
    id: u64,
    /// None until its thread has sent the snapshot and handed it over.
    live: Option<(Box<LiveSocket>, Slot)>,
    /// Updates not written yet: waiting for the hand-over, or for the
    /// socket to take more.
    backlog: VecDeque<Utf8Bytes>,
    /// Since when the socket has taken no more: a flush must get through
    /// before anything new is written, and within [`STALLED`].
    blocked_since: Option<Instant>,
    last_ping: Instant,
}

/// Why a client is dropped.
enum Gone {
    TooSlow,
    Left(String),
}

impl Hub {
    fn run(mut self, updates: &Receiver<Update>, clients: &Receiver<ClientMsg>) {
        let mut clients = clients.clone();
        let mut next_read = Instant::now() + READ_EVERY;
        loop {
            let wait = match self.clients.iter().any(|c| c.blocked_since.is_some()) {
                true => RETRY_BLOCKED,
                false => next_read.saturating_duration_since(Instant::now()),
            };
            select! {
                recv(updates) -> update => match update {
                    Ok(update) => {
                        self.handle_update(update);
                        for more in updates.try_iter().take(UPDATES_AT_ONCE - 1) {
                            self.handle_update(more);
                        }
                    }
                    Err(_) => break,
                },
                recv(clients) -> msg => match msg {
                    Ok(msg) => self.handle_client(msg),
                    Err(_) => clients = crossbeam_channel::never(),
                },
                default(wait) => {}
            }
            let reading = Instant::now() >= next_read;
            if reading {
                next_read = Instant::now() + READ_EVERY;
            }
            self.write_and_read(reading);
        }
        self.clients.iter_mut().for_each(Client::close);
        info!("ws: stopped ({} slow clients were dropped)", self.dropped_slow);
    }

    fn handle_client(&mut self, msg: ClientMsg) {
        match msg {
            ClientMsg::Joined { id, ready } => {
                let client =
                    Client { id, live: None, backlog: VecDeque::new(), blocked_since: None, last_ping: Instant::now() };
                self.clients.push(client);
                self.tell_core();
                let _ = ready.send(());
            }
            ClientMsg::Live { id, socket, slot } => {
                // (A client dropped as too slow while its snapshot was sent
                // is not here any more: its socket is closed by dropping it.)
                if let Some(client) = self.clients.iter_mut().find(|c| c.id == id) {
                    client.live = Some((socket, slot));
                }
            }
            ClientMsg::Left { id } => {
                self.clients.retain(|c| c.id != id);
                self.tell_core();
            }
            ClientMsg::Refused { peer, why } => self.refusals.refused(peer, &why),
        }
    }

    fn tell_core(&self) {
        // Core may be gone at shutdown; then nobody needs to know.
        let _ = self.to_core.send_timeout(CoreMsg::LiveClients(self.clients.len()), TELL_CORE_TIMEOUT);
    }

    fn handle_update(&mut self, update: Update) {
        // Nobody listening: do not even format it.
        if self.clients.is_empty() {
            return;
        }
        let text = Utf8Bytes::from(update_json(&update).to_string());
        for client in &mut self.clients {
            client.backlog.push_back(text.clone());
        }
    }

    /// Writes each client's backlog as far as its socket takes it, and
    /// with `reading`, reads what browsers sent and pings the idle ones.
    /// Drops the clients that are gone or too slow.
    fn write_and_read(&mut self, reading: bool) {
        let mut gone = Vec::new();
        for client in &mut self.clients {
            let result = match reading {
                true => client.read_and_ping().and_then(|()| client.write()),
                false => client.write(),
            };
            let result = match result {
                Err(why) => Err(Gone::Left(why)),
                Ok(()) if client.backlog.len() >= CLIENT_QUEUE => Err(Gone::TooSlow),
                Ok(()) if client.blocked_since.is_some_and(|since| since.elapsed() >= STALLED) => Err(Gone::TooSlow),
                Ok(()) => Ok(()),
            };
            if let Err(why) = result {
                gone.push((client.id, why));
            }
        }
        if gone.is_empty() {
            return;
        }
        for (id, why) in gone {
            match why {
                Gone::TooSlow => {
                    self.dropped_slow += 1;
                    warn!("ws: client {id} is too slow for live updates; dropping it");
                }
                Gone::Left(why) => debug!("ws: client {id} left: {why}"),
            }
            if let Some(at) = self.clients.iter().position(|c| c.id == id) {
                self.clients.swap_remove(at).close();
            }
        }
        self.tell_core();
    }
}

impl Client {
    /// Says goodbye, as far as the non-blocking socket takes it.
    fn close(&mut self) {
        if let Some((socket, _)) = self.live.as_mut() {
            let _ = socket.close(None);
            let _ = socket.flush();
        }
    }

    /// Writes the backlog until the socket takes no more. Err: the
    /// connection is gone.
    fn write(&mut self) -> Result<(), String> {
        let Some((socket, _)) = self.live.as_mut() else { return Ok(()) };
        if self.blocked_since.is_some() {
            match would_block(socket.flush())? {
                true => return Ok(()),
                false => self.blocked_since = None,
            }
        }
        if self.backlog.is_empty() {
            return Ok(());
        }
        // tungstenite keeps a frame the socket did not take and sends it
        // first on the next flush.
        while let Some(text) = self.backlog.pop_front() {
            if would_block(socket.write(Message::Text(text)))? {
                self.blocked_since = Some(Instant::now());
                return Ok(());
            }
        }
        if would_block(socket.flush())? {
            self.blocked_since = Some(Instant::now());
        }
        Ok(())
    }

    /// Reads what the browser sent (a close ends it; pongs are answered
    /// by the library), and pings it every [`PING_EVERY`].
    fn read_and_ping(&mut self) -> Result<(), String> {
        let Some((socket, _)) = self.live.as_mut() else { return Ok(()) };
        loop {
            match socket.read() {
                Ok(Message::Close(_)) => return Err("closed by the browser".into()),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        if self.last_ping.elapsed() >= PING_EVERY {
            self.last_ping = Instant::now();
            let pinged = would_block(socket.write(Message::Ping(Default::default())))?;
            if (pinged || would_block(socket.flush())?) && self.blocked_since.is_none() {
                self.blocked_since = Some(Instant::now());
            }
        }
        Ok(())
    }
}

/// Ok(true): the socket took no more (what was not written is kept).
fn would_block(result: tungstenite::Result<()>) -> Result<bool, String> {
    match result {
        Ok(()) => Ok(false),
        Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(true),
        Err(e) => Err(e.to_string()),
    }
}

/// The JSON of one live update (docs/API.md, "WebSocket").
pub fn update_json(update: &Update) -> Value {
    match update {
        Update::Heartbeat(host) => {
            json!({"type": "heartbeat", "host": host_json(host, unix_seconds(SystemTime::now()))})
        }
        Update::Event { at, event } => {
            let (kind, fields) = event_fields(event);
            let mut map = Map::new();
            map.insert("type".into(), json!(kind));
            map.insert("at".into(), json!(round3(*at)));
            if let Value::Object(fields) = fields {
                map.extend(fields);
            }
            Value::Object(map)
        }
        Update::Plugin { host, plugin, kind, sample } => {
            json!({"type": "plugin", "name": host, "plugin": plugin, "kind": kind, "sample": sample_json(sample)})
        }
        Update::Batch(updates) => {
            json!({"type": "batch", "updates": updates.iter().map(update_json).collect::<Vec<_>>()})
        }
    }
}
