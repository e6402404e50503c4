//! The ws acceptors and client threads: `ws-accept` (and `wss-accept`) take
//! connections within `ws_max_clients` slots (503 beyond), and one
//! `ws-client` thread per new browser does the handshake, sends the
//! snapshot of all hosts (asked from `core`), then hands the socket, made
//! non-blocking, to the hub, which writes the live updates. A
//! client that asked for `?snapshot=none` gets the snapshot without hosts:
//! the console beyond a page of hosts reads the ones it shows from the API,
//! and at 100,000 hosts the snapshot is ~30 MB that it would parse to drop.
//!
//! The handshake refuses (403) a browser page from another site: its
//! `Origin` must name the host it connects to and one of hbd's ports, or be
//! listed in `cors_origins`; clients that send no `Origin` (scripts, not
//! browsers) are served. Where reads need a token, the handshake needs one
//! too (401 without): in `Authorization: Bearer TOKEN`, or, from a page
//! (browsers cannot set headers on a WebSocket), as the subprotocol
//! `bearer.TOKEN`, which the answer then names as the protocol chosen.
//! What a browser sends is capped at [`MAX_MESSAGE`]:
//! hbd reads nothing of substance from it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use log::{debug, warn};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::{ClientMsg, Refusals};
use crate::server::msg::{self, Query, Upgraded};
use crate::server::views::snapshot_body;
use crate::wire::unix_seconds;

/// A write that takes longer means the browser is gone or stalled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const ACCEPT_POLL: Duration = Duration::from_millis(200);
/// The largest frame and message a browser may send (the library's defaults,
/// 16 and 64 MiB, would let each client hold that much memory).
pub(crate) const MAX_MESSAGE: usize = 64 << 10;

/// One listening socket, plain or TLS.
pub(super) struct Acceptor {
    pub(super) listener: TcpListener,
    pub(super) tls: Option<Arc<ServerConfig>>,
    /// Client ids of the plain and the TLS acceptor differ in their lowest bit.
    pub(super) id_parity: u64,
    /// Connections the HTTP front took for `/ws` (plain acceptor only).
    pub(super) upgrades: Option<Receiver<Upgraded>>,
}

/// A browser's connection once its handshake is done, whatever is under it.
pub(super) type LiveSocket = WebSocket<Box<dyn Socket>>;

/// A plain or TLS stream, and the TCP socket under it.
pub(super) trait Socket: Read + Write + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for StreamOwned<ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// One of the `ws_max_clients` places, given back when dropped: by the
/// client's thread if the browser never got as far as the hub, else by
/// the hub when it drops the client.
pub(super) struct Slot(Receiver<()>);

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.0.try_recv();
    }
}

/// What every client thread needs.
#[derive(Clone)]
pub(super) struct Clients {
    pub(super) to_hub: Sender<ClientMsg>,
    pub(super) to_core_queries: Sender<Query>,
    pub(super) take_slot: Sender<()>,
    pub(super) slots: Receiver<()>,
    /// `cors_origins` and the ports of hbd's pages, for [`origin_allowed`].
    pub(super) origins: Arc<(Vec<String>, Vec<u16>)>,
    /// Who may read (`api_reads_need_token`): the snapshot and live updates are reads.
    pub(super) tokens: Arc<crate::server::http::auth::Tokens>,
}

impl Acceptor {
    pub(super) fn run(self, clients: &Clients, stop: &Receiver<()>) {
        let mut next_id = 0u64;
        let mut refusals = Refusals::default();
        let upgrades = self.upgrades.clone().unwrap_or_else(crossbeam_channel::never);
        loop {
            let accepted = match self.listener.accept() {
                Ok((stream, peer)) => Some((stream, peer, Vec::new())),
                Err(e) => {
                    if e.kind() != ErrorKind::WouldBlock {
                        warn!("ws: accept: {e}");
                    }
                    // Nothing at the listener: wait for an upgrade (or the next look).
                    upgrades.recv_timeout(ACCEPT_POLL).ok().map(|up| (up.stream, up.peer, up.head))
                }
            };
            if let Some((stream, peer, head)) = accepted {
                if clients.take_slot.try_send(()).is_err() {
                    refusals.refused(peer, "ws_max_clients reached");
                    refuse(stream, !head.is_empty());
                    continue;
                }
                next_id += 1;
                let slot = Slot(clients.slots.clone());
                let (id, tls, client) = (next_id * 2 + self.id_parity, self.tls.clone(), clients.clone());
                // (If the thread cannot start, the closure and its slot are dropped.)
                let spawned = std::thread::Builder::new()
                    .name("ws-client".into())
                    .stack_size(256 << 10)
                    .spawn(move || serve_client(stream, head, tls, peer, id, slot, &client));
                if let Err(e) = spawned {
                    warn!("ws: cannot start a thread for {peer}: {e}");
                }
            }
            if let Err(TryRecvError::Disconnected) = stop.try_recv() {
                return;
            }
        }
    }
}

/// Answers 503; `head_read`: the request was read already (by the HTTP front).
fn refuse(mut stream: TcpStream, head_read: bool) {
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
    if !head_read {
        let mut request = [0u8; 4096];
        let _ = std::io::Read::read(&mut stream, &mut request);
    }
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// A connection whose request head the HTTP front read already: those
/// bytes first, then the socket, so tungstenite reads the whole request.
struct Replayed {
    head: Vec<u8>,
    at: usize,
    stream: TcpStream,
}

impl Read for Replayed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at < self.head.len() {
            let n = buf.len().min(self.head.len() - self.at);
            buf[..n].copy_from_slice(&self.head[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        self.stream.read(buf)
    }
}

impl Write for Replayed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Socket for Replayed {
    fn tcp(&self) -> &TcpStream {
        &self.stream
    }
}

/// `head`: what the HTTP front already read of the request (empty for a
/// connection to ws_port or wss_port).
fn serve_client(
    stream: TcpStream,
    head: Vec<u8>,
    tls: Option<Arc<ServerConfig>>,
    peer: SocketAddr,
    id: u64,
    slot: Slot,
    clients: &Clients,
) {
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
    let stream: Box<dyn Socket> = match tls {
        None if !head.is_empty() => Box::new(Replayed { head, at: 0, stream }),
        None => Box::new(stream),
        // The TLS handshake happens within the WebSocket handshake's first read.
        Some(config) => match ServerConnection::new(config) {
            Ok(connection) => Box::new(StreamOwned::new(connection, stream)),
            Err(e) => return debug!("ws: {peer}: TLS: {e}"),
        },
    };
    serve_stream(stream, peer, id, slot, clients);
}

fn serve_stream(stream: Box<dyn Socket>, peer: SocketAddr, id: u64, slot: Slot, clients: &Clients) {
    let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
    let refused = std::cell::Cell::new(None);
    let without_hosts = std::cell::Cell::new(false);
    // The error type is tungstenite's callback contract, not ours to box.
    #[allow(clippy::result_large_err)]
    let check_origin = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        without_hosts.set(request.uri().query().is_some_and(snapshot_without_hosts));
        let (allowed, ports) = &*clients.origins;
        let origin = header("origin");
        // A browser cannot set headers on a WebSocket: its token comes as
        // the subprotocol `bearer.TOKEN`, and the answer must name the
        // same protocol or the browser drops the connection.
        let offered =
            bearer_protocol(request.headers().get_all("sec-websocket-protocol").iter().filter_map(|v| v.to_str().ok()));
        let authorization = match (header("authorization"), offered) {
            (Some(given), _) => Some(given.to_string()),
            (None, Some(protocol)) => Some(format!("Bearer {}", &protocol[BEARER_PROTOCOL.len()..])),
            (None, None) => None,
        };
        if clients.tokens.allow(authorization.as_deref(), false).is_err() {
            let mut answer =
                ErrorResponse::new(Some(r#"{"error":"a token is needed: Authorization: Bearer TOKEN"}"#.to_string()));
            *answer.status_mut() = tungstenite::http::StatusCode::UNAUTHORIZED;
            return Err(answer);
        }
        if origin_allowed(origin, header("host"), ports, allowed) {
            let mut response = response;
            if let Some(value) = offered.and_then(|p| tungstenite::http::HeaderValue::from_str(p).ok()) {
                response.headers_mut().insert("sec-websocket-protocol", value);
            }
            return Ok(response);
        }
        refused.set(Some(format!("Origin {:?} is not this site's", origin.unwrap_or_default())));
        let mut answer = ErrorResponse::new(Some(r#"{"error":"websocket origin not allowed"}"#.to_string()));
        *answer.status_mut() = tungstenite::http::StatusCode::FORBIDDEN;
        Err(answer)
    };
    let accepted = tungstenite::accept_hdr_with_config(stream, check_origin, Some(config));
    if let Some(why) = refused.take() {
        let _ = clients.to_hub.try_send(ClientMsg::Refused { peer, why });
        return;
    }
    let mut socket = match accepted {
        Ok(socket) => socket,
        Err(e) => {
            debug!("ws: {peer}: handshake failed: {e}");
            return;
        }
    };
    // Join before asking for the snapshot, so no update falls in between.
    let (ready, joined) = bounded(1);
    if clients.to_hub.send(ClientMsg::Joined { id, ready }).is_err() {
        return;
    }
    if joined.recv_timeout(msg::ASK_TIMEOUT).is_err() {
        // Not left joined: its backlog would grow until it counted as slow.
        let _ = clients.to_hub.send(ClientMsg::Left { id });
        return;
    }
    debug!("ws: client {id} connected from {peer}");
    let first =
        if without_hosts.get() { Ok(SNAPSHOT_WITHOUT_HOSTS.to_string()) } else { snapshot(&clients.to_core_queries) };
    let sent = first
        .and_then(|text| socket.send(Message::text(text)).map_err(|e| e.to_string()))
        .and_then(|()| socket.get_ref().tcp().set_nonblocking(true).map_err(|e| e.to_string()));
    match sent {
        // From here on the hub writes to it.
        Ok(()) => {
            let _ = clients.to_hub.send(ClientMsg::Live { id, socket: Box::new(socket), slot });
        }
        Err(e) => {
            debug!("ws: client {id} ({peer}): {e}");
            let _ = socket.close(None);
            let _ = socket.flush();
            let _ = clients.to_hub.send(ClientMsg::Left { id });
        }
    }
}

/// What a client that asked for `?snapshot=none` gets first: the message
/// that says updates follow from here, without the hosts.
const SNAPSHOT_WITHOUT_HOSTS: &str = r#"{"type":"snapshot","hosts":null}"#;

/// Whether the handshake's query asks for the snapshot without hosts.
fn snapshot_without_hosts(query: &str) -> bool {
    query.split('&').any(|pair| pair == "snapshot=none")
}

fn snapshot(to_core: &Sender<Query>) -> Result<String, String> {
    let hosts = msg::ask(to_core, Query::Hosts).map_err(|e| e.to_string())?;
    snapshot_body(&hosts, unix_seconds(SystemTime::now())).map_err(|e| e.to_string())
}

const BEARER_PROTOCOL: &str = "bearer.";

/// The first `bearer.TOKEN` among the offered subprotocols (each header
/// value a comma-separated list), as offered.
fn bearer_protocol<'a>(values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    values
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find(|p| p.len() > BEARER_PROTOCOL.len() && p.starts_with(BEARER_PROTOCOL))
}

/// Whether a handshake's `Origin` may open a socket: absent (not a browser),
/// listed in `cors_origins` (or `*` there), or naming the host the browser
/// connected to (its `Host`) on one of hbd's own ports.
pub(crate) fn origin_allowed(origin: Option<&str>, host: Option<&str>, ports: &[u16], allowed: &[String]) -> bool {
    let Some(origin) = origin else { return true };
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let Some((origin_host, origin_port)) = split_authority(authority, default_port) else { return false };
    let Some((host, _)) = host.and_then(|h| split_authority(h, 0)) else { return false };
    origin_host.eq_ignore_ascii_case(host) && ports.contains(&origin_port)
}

/// `host[:port]` or `[v6][:port]` → host and port (`default` when absent).
fn split_authority(text: &str, default: u16) -> Option<(&str, u16)> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default,
    };
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_as_a_subprotocol() {
        assert_eq!(bearer_protocol(["bearer.s3cret-0123456789"].into_iter()), Some("bearer.s3cret-0123456789"));
        assert_eq!(bearer_protocol(["chat, bearer.abc"].into_iter()), Some("bearer.abc"));
        assert_eq!(bearer_protocol(["chat", " bearer.abc "].into_iter()), Some("bearer.abc"));
        assert_eq!(bearer_protocol(["bearer.", "chat"].into_iter()), None, "no token in it");
        assert_eq!(bearer_protocol(["Bearer.abc"].into_iter()), None, "the prefix as the contract writes it");
        assert_eq!(bearer_protocol([].into_iter()), None);
    }

    #[test]
    fn origins() {
        let ports = [8080, 8081];
        let none: &[String] = &[];
        assert!(origin_allowed(None, None, &ports, none), "scripts send no Origin");
        assert!(origin_allowed(Some("http://mon.lan:8080"), Some("mon.lan:8081"), &ports, none));
        assert!(origin_allowed(Some("http://[::1]:8080"), Some("[::1]:8081"), &ports, none));
        assert!(!origin_allowed(Some("http://evil.example"), Some("mon.lan:8081"), &ports, none));
        assert!(!origin_allowed(Some("http://mon.lan:9999"), Some("mon.lan:8081"), &ports, none), "other port");
        assert!(!origin_allowed(Some("null"), Some("mon.lan:8081"), &ports, none));
        assert!(!origin_allowed(Some("http://mon.lan:8080"), None, &ports, none));
        let listed = ["https://dash.example".to_string()];
        assert!(origin_allowed(Some("https://dash.example"), Some("mon.lan:8081"), &ports, &listed));
        assert!(origin_allowed(Some("http://evil.example"), Some("x"), &ports, &["*".to_string()]));
    }
}
