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

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender, TryRecvError};
use log::{debug, info, warn};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Map, Value};
use tungstenite::{Message, Utf8Bytes, WebSocket};

use crate::api::{event_fields, host_json, round3, sample_json, snapshot_body};
use crate::core::{unix_seconds, Event, Host, Query, Sample};
use crate::protocol::PluginKind;

/// Updates a client may have waiting before it counts as too slow: enough
/// to cover the time a browser takes to receive the snapshot of thousands of
/// hosts at a high heartbeat rate. The queue is unbounded and checked
/// against this length by the hub, so slack costs no memory until used
/// (the messages themselves are shared by all clients).
const CLIENT_QUEUE: usize = 4096;
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
    /// WSS: where to listen, and the certificate chain and key files.
    pub wss: Option<(SocketAddr, PathBuf, PathBuf)>,
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
    /// A browser completed the handshake; updates go to `queue`. The hub
    /// answers on `ready` once `core` knows someone is watching, so that no
    /// update falls between the client's snapshot and its first update.
    Joined { id: u64, queue: Sender<Utf8Bytes>, ready: Sender<()> },
    /// The browser went away.
    Left { id: u64 },
}

pub fn bind(addr: &SocketAddr) -> io::Result<TcpListener> {
    let listener =
        TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("bind websocket {addr}: {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The secure listener: `wss_port` with the certificate of `cert_path`.
pub struct Tls {
    pub listener: TcpListener,
    pub config: Arc<ServerConfig>,
}

/// Reads the certificate chain and key; errors name the file and what is wrong.
pub fn load_tls(cert: &Path, key: &Path) -> io::Result<Arc<ServerConfig>> {
    let invalid =
        |path: &Path, what: String| io::Error::new(ErrorKind::InvalidData, format!("{}: {what}", path.display()));
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid(cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert, format!("bad certificate: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(cert, "holds no PEM certificate".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, format!("cannot read a private key: {e}")))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| invalid(cert, format!("certificate and key {} do not fit: {e}", key.display())))?;
    Ok(Arc::new(config))
}

pub fn spawn(
    listener: TcpListener,
    tls: Option<Tls>,
    settings: WsSettings,
    updates: Receiver<Update>,
    to_core: Sender<Query>,
    stop: Receiver<()>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let (to_hub, clients) = bounded::<ClientMsg>(64);
    // One pool of slots for ws and wss: a slot is taken per client and given back when it leaves.
    let (take_slot, slots) = bounded::<()>(settings.max_clients);
    let hub_to_core = to_core.clone();
    let hub = std::thread::Builder::new()
        .name("ws".into())
        .spawn(move || Hub { clients: Vec::new(), dropped_slow: 0, to_core: hub_to_core }.run(&updates, &clients))?;
    let mut handles = vec![hub];
    let plain = Acceptor { listener, tls: None, id_parity: 0 };
    let secure = tls.map(|t| Acceptor { listener: t.listener, tls: Some(t.config), id_parity: 1 });
    for acceptor in std::iter::once(plain).chain(secure) {
        let scheme = if acceptor.tls.is_some() { "wss" } else { "ws" };
        if let Ok(addr) = acceptor.listener.local_addr() {
            info!("{scheme}: listening on {addr}");
        }
        let clients = Clients {
            to_hub: to_hub.clone(),
            to_core: to_core.clone(),
            take_slot: take_slot.clone(),
            slots: slots.clone(),
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
    to_core: Sender<Query>,
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
                    Err(_) => clients = crossbeam_channel::never(),
                },
            }
        }
        info!("ws: stopped ({} slow clients were dropped)", self.dropped_slow);
    }

    fn tell_core(&self) {
        // Core may be gone at shutdown; then nobody needs to know.
        let _ = self.to_core.send_timeout(Query::LiveClients(self.clients.len()), CORE_TIMEOUT);
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
    }
}

/// One listening socket, plain or TLS.
struct Acceptor {
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    /// Client ids of the plain and the TLS acceptor differ in their lowest bit.
    id_parity: u64,
}

/// What every client thread needs.
#[derive(Clone)]
struct Clients {
    to_hub: Sender<ClientMsg>,
    to_core: Sender<Query>,
    take_slot: Sender<()>,
    slots: Receiver<()>,
}

impl Acceptor {
    fn run(self, clients: &Clients, stop: &Receiver<()>) {
        let mut next_id = 0u64;
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if clients.take_slot.try_send(()).is_err() {
                        refuse(stream, peer);
                        continue;
                    }
                    next_id += 1;
                    let (id, tls, client) = (next_id * 2 + self.id_parity, self.tls.clone(), clients.clone());
                    let spawned =
                        std::thread::Builder::new().name("ws-client".into()).stack_size(256 << 10).spawn(move || {
                            serve_client(stream, tls, peer, id, &client);
                            let _ = client.slots.try_recv();
                        });
                    if let Err(e) = spawned {
                        warn!("ws: cannot start a thread for {peer}: {e}");
                        let _ = clients.slots.try_recv();
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

/// The read timeout of the TCP socket under a plain or TLS stream.
trait ReadTimeout {
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        TcpStream::set_read_timeout(self, Some(timeout))
    }
}

impl ReadTimeout for StreamOwned<ServerConnection, TcpStream> {
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.sock.set_read_timeout(Some(timeout))
    }
}

fn serve_client(stream: TcpStream, tls: Option<Arc<ServerConfig>>, peer: SocketAddr, id: u64, clients: &Clients) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    if let Err(e) = setup {
        debug!("ws: {peer}: {e}");
        return;
    }
    match tls {
        None => serve_stream(stream, peer, id, clients),
        // The TLS handshake happens within the WebSocket handshake's first read.
        Some(config) => match ServerConnection::new(config) {
            Ok(connection) => serve_stream(StreamOwned::new(connection, stream), peer, id, clients),
            Err(e) => debug!("ws: {peer}: TLS: {e}"),
        },
    }
}

fn serve_stream<S: Read + Write + ReadTimeout>(stream: S, peer: SocketAddr, id: u64, clients: &Clients) {
    let mut socket = match tungstenite::accept(stream) {
        Ok(socket) => socket,
        Err(e) => {
            debug!("ws: {peer}: handshake failed: {e}");
            return;
        }
    };
    // Join before asking for the snapshot, so no update falls in between.
    let (queue, updates) = unbounded();
    let (ready, joined) = bounded(1);
    if clients.to_hub.send(ClientMsg::Joined { id, queue, ready }).is_err()
        || joined.recv_timeout(CORE_TIMEOUT).is_err()
    {
        return;
    }
    debug!("ws: client {id} connected from {peer}");
    let result = snapshot(&clients.to_core)
        .and_then(|text| socket.send(Message::text(text)).map_err(|e| e.to_string()))
        .and_then(|()| socket.get_mut().set_read_timeout(Duration::from_millis(1)).map_err(|e| e.to_string()))
        .and_then(|()| forward(&mut socket, &updates));
    match result {
        Ok(()) => debug!("ws: client {id} ({peer}) left"),
        Err(e) => debug!("ws: client {id} ({peer}): {e}"),
    }
    let _ = socket.close(None);
    let _ = socket.flush();
    let _ = clients.to_hub.send(ClientMsg::Left { id });
}

fn snapshot(to_core: &Sender<Query>) -> Result<String, String> {
    let (reply, answer) = bounded(1);
    to_core.send_timeout(Query::Hosts(reply), CORE_TIMEOUT).map_err(|_| "core is not answering")?;
    let hosts = answer.recv_timeout(CORE_TIMEOUT).map_err(|_| "core is not answering")?;
    snapshot_body(&hosts, unix_seconds(SystemTime::now())).map_err(|e| e.to_string())
}

/// Writes queued updates until the hub drops the queue or the browser goes.
/// Whatever is queued goes out in one flush; what the browser sends is read
/// (and answered) once per [`READ_EVERY`], not after every update.
fn forward<S: Read + Write>(socket: &mut WebSocket<S>, updates: &Receiver<Utf8Bytes>) -> Result<(), String> {
    let mut last_ping = Instant::now();
    let mut last_read = Instant::now();
    loop {
        match updates.recv_timeout(READ_EVERY) {
            Ok(text) => {
                socket.write(Message::Text(text)).map_err(|e| e.to_string())?;
                for _ in 0..CLIENT_QUEUE {
                    let Ok(more) = updates.try_recv() else { break };
                    socket.write(Message::Text(more)).map_err(|e| e.to_string())?;
                }
                socket.flush().map_err(|e| e.to_string())?;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        if last_ping.elapsed() >= PING_EVERY {
            socket.send(Message::Ping(Default::default())).map_err(|e| e.to_string())?;
            last_ping = Instant::now();
        }
        if last_read.elapsed() >= READ_EVERY {
            last_read = Instant::now();
            loop {
                match socket.read() {
                    Ok(Message::Close(_)) => return Ok(()),
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        break
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
}
