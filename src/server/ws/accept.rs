//! The ws acceptors and client threads: `ws-accept` (and `wss-accept`) take
//! connections within `ws_max_clients` slots (503 beyond), and one
//! `ws-client` thread per browser does the handshake, sends the snapshot of
//! all hosts (asked from `core`), then writes its queue from the hub.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TryRecvError};
use log::{debug, warn};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use tungstenite::{Message, Utf8Bytes, WebSocket};

use super::{ClientMsg, CLIENT_QUEUE};
use crate::server::core::{self, Query};
use crate::server::views::snapshot_body;
use crate::wire::unix_seconds;

/// A write that takes longer means the browser is gone or stalled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pings keep idle connections (and proxies in between) alive.
const PING_EVERY: Duration = Duration::from_secs(30);
/// How often a client thread looks for frames from the browser.
const READ_EVERY: Duration = Duration::from_secs(1);
const ACCEPT_POLL: Duration = Duration::from_millis(200);

/// One listening socket, plain or TLS.
pub(super) struct Acceptor {
    pub(super) listener: TcpListener,
    pub(super) tls: Option<Arc<ServerConfig>>,
    /// Client ids of the plain and the TLS acceptor differ in their lowest bit.
    pub(super) id_parity: u64,
}

/// What every client thread needs.
#[derive(Clone)]
pub(super) struct Clients {
    pub(super) to_hub: Sender<ClientMsg>,
    pub(super) to_core_queries: Sender<Query>,
    pub(super) take_slot: Sender<()>,
    pub(super) slots: Receiver<()>,
}

impl Acceptor {
    pub(super) fn run(self, clients: &Clients, stop: &Receiver<()>) {
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
    // TCP_NODELAY: an update is one small frame, and with Nagle's
    // algorithm it would wait for the ACK of the previous one, which the
    // browser may delay by up to 40 ms.
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_nodelay(true))
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
        || joined.recv_timeout(core::ASK_TIMEOUT).is_err()
    {
        return;
    }
    debug!("ws: client {id} connected from {peer}");
    let result = snapshot(&clients.to_core_queries)
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
    let hosts = core::ask(to_core, Query::Hosts).map_err(|e| e.to_string())?;
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
