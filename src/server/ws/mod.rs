//! The WebSocket threads: live updates for browsers on `hbd_host:ws_port`.
//!
//! - `ws` (the hub, this module) receives [`Update`]s from `core`, turns each
//!   into JSON once, and hands it to every client's queue. A client whose
//!   queue is full is too slow: the hub drops it, and nobody else waits.
//!   It tells `core` how many browsers watch ([`CoreMsg::LiveClients`]).
//! - `ws-accept` and one `ws-client` thread per browser: [`accept`].
//! - the WSS certificate: [`tls`].
//!
//! Message types are in docs/API.md. The hub ends when `core` hangs up;
//! clients end when the hub drops their queues; `ws-accept` ends when the
//! parent's `stop` channel disconnects.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{bounded, select, Receiver, Sender};
use log::{info, warn};
use serde_json::{json, Map, Value};
use tungstenite::Utf8Bytes;

use crate::server::msg::{CoreMsg, Query, Update, Upgraded};
use crate::server::views::{event_fields, host_json, round3, sample_json};
use accept::{Acceptor, Clients};
pub use tls::{load_tls, Tls};

mod accept;
mod tls;
use crate::wire::unix_seconds;

/// Updates a client may have waiting before it counts as too slow: enough
/// to cover the time a browser takes to receive the snapshot of thousands of
/// hosts at a high heartbeat rate. The queue is unbounded and checked
/// against this length by the hub, so slack costs no memory until used
/// (the messages themselves are shared by all clients).
pub(crate) const CLIENT_QUEUE: usize = 4096;
/// How long the hub waits to tell core how many browsers watch.
const TELL_CORE_TIMEOUT: Duration = Duration::from_secs(5);

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
#[derive(Debug)]
pub enum ClientMsg {
    /// A browser completed the handshake; updates go to `queue`. The hub
    /// answers on `ready` once `core` knows someone is watching, so that no
    /// update falls between the client's snapshot and its first update.
    Joined { id: u64, queue: Sender<Utf8Bytes>, ready: Sender<()> },
    /// The browser went away.
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
    clients: Vec<(u64, Sender<Utf8Bytes>)>,
    dropped_slow: u64,
    /// Told how many clients there are: core prepares updates only for them.
    to_core: Sender<CoreMsg>,
    refusals: Refusals,
}

impl Hub {
    fn run(mut self, updates: &Receiver<Update>, clients: &Receiver<ClientMsg>) {
        let mut clients = clients.clone();
        loop {
            select! {
                recv(updates) -> update => match update {
                    Ok(update) => self.handle_update(update),
                    Err(_) => break,
                },
                recv(clients) -> msg => match msg {
                    Ok(ClientMsg::Joined { id, queue, ready }) => {
                        self.clients.push((id, queue));
                        self.tell_core();
                        let _ = ready.send(());
                    }
                    Ok(ClientMsg::Left { id }) => {
                        self.clients.retain(|(c, _)| *c != id);
                        self.tell_core();
                    }
                    Ok(ClientMsg::Refused { peer, why }) => self.refusals.refused(peer, &why),
                    Err(_) => clients = crossbeam_channel::never(),
                },
            }
        }
        info!("ws: stopped ({} slow clients were dropped)", self.dropped_slow);
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
        let mut slow = Vec::new();
        for (id, queue) in &self.clients {
            if queue.len() >= CLIENT_QUEUE || queue.send(text.clone()).is_err() {
                slow.push(*id);
            }
        }
        for id in slow {
            // Dropping its queue ends the client's thread once it has written what it has.
            self.clients.retain(|(c, _)| *c != id);
            self.dropped_slow += 1;
            warn!("ws: client {id} is too slow for live updates; dropping it");
            self.tell_core();
        }
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
