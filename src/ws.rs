//! The WebSocket threads: live updates for browsers on `hbd_host:ws_port`.
//!
//! - `ws` (the hub) receives [`Update`]s from `core`, turns each into JSON
//!   once, and hands it to every client's queue with `try_send`. A client
//!   whose queue is full is too slow: the hub drops it, and nobody else waits.
//! - `ws-accept` takes connections; a channel of `ws_max_clients` slots
//!   bounds how many are served (the rest get `503`).
//! - one `ws-client` thread per browser: handshake, the snapshot of all
//!   hosts (asked from `core`), then its queue, written with a timeout.
//!
//! Message types are in docs/API.md. The hub ends when `core` hangs up;
//! clients end when the hub drops their queues; `ws-accept` ends when the
//! parent's `stop` channel disconnects.

use std::io::{self, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError, TrySendError};
use log::{debug, info, warn};
use serde_json::{json, Map, Value};
use tungstenite::{Message, Utf8Bytes, WebSocket};

use crate::api::{event_fields, host_json, round3, sample_json};
use crate::core::{unix_seconds, Event, Host, Query, Sample};
use crate::protocol::PluginKind;

/// Updates a client may have waiting before it counts as too slow.
const CLIENT_QUEUE: usize = 256;
/// A write that takes longer means the browser is gone or stalled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pings keep idle connections (and proxies in between) alive.
const PING_EVERY: Duration = Duration::from_secs(30);
/// How often a client thread looks for frames from the browser.
const READ_EVERY: Duration = Duration::from_secs(1);
const ACCEPT_POLL: Duration = Duration::from_millis(200);
const CORE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WsSettings {
    pub bind: SocketAddr,
    pub max_clients: usize,
}

/// What `core` tells the hub.
#[derive(Debug)]
pub enum Update {
    /// A heartbeat (or plugin data) arrived; the host without plugin data.
    Heartbeat(Host),
    /// A host changed state.
    Event { at: f64, event: Event },
    /// A plugin sample arrived.
    Plugin { host: String, plugin: String, kind: PluginKind, sample: Sample },
}

/// What client threads tell the hub.
#[derive(Debug)]
pub enum ClientMsg {
    /// A browser completed the handshake; updates go to `queue`.
    Joined { id: u64, queue: Sender<Utf8Bytes> },
    /// The browser went away.
    Left { id: u64 },
}

pub fn bind(settings: &WsSettings) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(settings.bind)
        .map_err(|e| io::Error::new(e.kind(), format!("bind websocket {}: {e}", settings.bind)))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

pub fn spawn(
    listener: TcpListener,
    settings: WsSettings,
    updates: Receiver<Update>,
    to_core: Sender<Query>,
    stop: Receiver<()>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let (to_hub, clients) = bounded::<ClientMsg>(64);
    if let Ok(addr) = listener.local_addr() {
        info!("ws: listening on {addr}");
    }
    let hub = std::thread::Builder::new().name("ws".into()).spawn(move || Hub::default().run(&updates, &clients))?;
    let accept = std::thread::Builder::new()
        .name("ws-accept".into())
        .spawn(move || accept_loop(&listener, settings.max_clients, &to_hub, &to_core, &stop))?;
    Ok(vec![hub, accept])
}

#[derive(Default)]
struct Hub {
    clients: Vec<(u64, Sender<Utf8Bytes>)>,
    dropped_slow: u64,
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
                    Ok(ClientMsg::Joined { id, queue }) => self.clients.push((id, queue)),
                    Ok(ClientMsg::Left { id }) => self.clients.retain(|(c, _)| *c != id),
                    Err(_) => clients = crossbeam_channel::never(),
                },
            }
        }
        info!("ws: stopped ({} slow clients were dropped)", self.dropped_slow);
    }

    fn handle_update(&mut self, update: Update) {
        // Nobody listening: do not even format it.
        if self.clients.is_empty() {
            return;
        }
        let text = Utf8Bytes::from(update_json(&update).to_string());
        let mut slow = Vec::new();
        for (id, queue) in &self.clients {
            match queue.try_send(text.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => slow.push(*id),
                Err(TrySendError::Disconnected(_)) => slow.push(*id),
            }
        }
        for id in slow {
            // Dropping its queue ends the client's thread once it has written what it has.
            self.clients.retain(|(c, _)| *c != id);
            self.dropped_slow += 1;
            warn!("ws: client {id} is too slow for live updates; dropping it");
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
    }
}

fn accept_loop(
    listener: &TcpListener,
    max_clients: usize,
    to_hub: &Sender<ClientMsg>,
    to_core: &Sender<Query>,
    stop: &Receiver<()>,
) {
    // A slot is taken per client and given back when it leaves.
    let (take_slot, slots) = bounded::<()>(max_clients);
    let mut next_id = 0u64;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if take_slot.try_send(()).is_err() {
                    refuse(stream, peer);
                    continue;
                }
                next_id += 1;
                let (id, to_hub, to_core, release) = (next_id, to_hub.clone(), to_core.clone(), slots.clone());
                let spawned =
                    std::thread::Builder::new().name("ws-client".into()).stack_size(256 << 10).spawn(move || {
                        serve_client(stream, peer, id, &to_hub, &to_core);
                        let _ = release.try_recv();
                    });
                if let Err(e) = spawned {
                    warn!("ws: cannot start a thread for {peer}: {e}");
                    let _ = slots.try_recv();
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) => {
                warn!("ws: accept: {e}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
        if let Err(TryRecvError::Disconnected) = stop.try_recv() {
            return;
        }
    }
}

fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    warn!("ws: refusing {peer}: ws_max_clients reached");
    let body = r#"{"error":"too many websocket clients"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // Read the request first: closing with it unread would reset the
    // connection and lose the answer.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut request = [0u8; 4096];
    let _ = std::io::Read::read(&mut stream, &mut request);
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

fn serve_client(stream: TcpStream, peer: SocketAddr, id: u64, to_hub: &Sender<ClientMsg>, to_core: &Sender<Query>) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    if let Err(e) = setup {
        debug!("ws: {peer}: {e}");
        return;
    }
    let mut socket = match tungstenite::accept(stream) {
        Ok(socket) => socket,
        Err(e) => {
            debug!("ws: {peer}: handshake failed: {e}");
            return;
        }
    };
    // Join before asking for the snapshot, so no update falls in between.
    let (queue, updates) = bounded(CLIENT_QUEUE);
    if to_hub.send(ClientMsg::Joined { id, queue }).is_err() {
        return;
    }
    debug!("ws: client {id} connected from {peer}");
    let result = snapshot(to_core)
        .and_then(|text| socket.send(Message::text(text)).map_err(|e| e.to_string()))
        .and_then(|()| socket.get_mut().set_read_timeout(Some(Duration::from_millis(1))).map_err(|e| e.to_string()))
        .and_then(|()| forward(&mut socket, &updates));
    match result {
        Ok(()) => debug!("ws: client {id} ({peer}) left"),
        Err(e) => debug!("ws: client {id} ({peer}): {e}"),
    }
    let _ = socket.close(None);
    let _ = socket.flush();
    let _ = to_hub.send(ClientMsg::Left { id });
}

fn snapshot(to_core: &Sender<Query>) -> Result<String, String> {
    let (reply, answer) = bounded(1);
    to_core.send_timeout(Query::Hosts(reply), CORE_TIMEOUT).map_err(|_| "core is not answering")?;
    let hosts = answer.recv_timeout(CORE_TIMEOUT).map_err(|_| "core is not answering")?;
    let now = unix_seconds(SystemTime::now());
    let hosts: Vec<Value> = hosts.iter().map(|h| host_json(h, now)).collect();
    Ok(json!({"type": "snapshot", "hosts": hosts}).to_string())
}

/// Writes queued updates until the hub drops the queue or the browser goes;
/// between them reads (and answers) what the browser sends.
fn forward(socket: &mut WebSocket<TcpStream>, updates: &Receiver<Utf8Bytes>) -> Result<(), String> {
    let mut last_ping = Instant::now();
    loop {
        match updates.recv_timeout(READ_EVERY) {
            Ok(text) => socket.send(Message::Text(text)).map_err(|e| e.to_string())?,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        if last_ping.elapsed() >= PING_EVERY {
            socket.send(Message::Ping(Default::default())).map_err(|e| e.to_string())?;
            last_ping = Instant::now();
        }
        loop {
            match socket.read() {
                Ok(Message::Close(_)) => return Ok(()),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
