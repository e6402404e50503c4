//! The peers thread: hbd's own heartbeat to each hbd of `peers:`, so that
//! when this one dies the others say so through their notifiers, as for
//! any host (who watches the watcher: the other watchers).
//!
//! Every `peer_interval` it sends each peer an `HTB` datagram as hbc would,
//! named `hbd_name` and with `client` saying `hbd VERSION` (which marks it a
//! peer on the other side), signed when the peer's entry has a key. A
//! peer's name is looked up again at every send, so a peer that moves is
//! followed. It reads the ACKs only to say, once, when a peer stops
//! answering and when it answers again: it never waits for one. It touches
//! nothing of the daemon but its stop channel.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{select, tick, Receiver};
use log::{info, warn};

use crate::wire::auth::Key;
use crate::wire::decode::parse_ack;
use crate::wire::{encode, unix_micros, HBD_CLIENT};

/// A peer that has not answered this many heartbeats in a row is reported.
const SILENT_ROUNDS: u32 = 3;

/// One hbd of `peers:`, checked.
#[derive(Debug, Clone)]
pub struct Peer {
    pub host: String,
    pub port: u16,
    pub key: Option<Key>,
}

/// What the peers thread runs on, made by `config::peers`.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// `hbd_name`: the host name the peers know this hbd by.
    pub name: String,
    pub interval: Duration,
    pub peers: Vec<Peer>,
}

/// What the thread knows of one peer.
struct Watch {
    peer: Peer,
    /// Where the last heartbeat went (for telling its ACKs apart).
    sent_to: Option<SocketAddr>,
    /// Heartbeats since the last ACK.
    unanswered: u32,
    /// Said it stopped answering (or could not be looked up), not yet back.
    reported: bool,
}

/// Starts the thread; it ends when `stop` disconnects.
pub fn spawn(settings: PeerSettings, stop: Receiver<()>) -> io::Result<JoinHandle<()>> {
    let v4 = UdpSocket::bind("0.0.0.0:0")?;
    // A machine without IPv6 still sends to IPv4 peers.
    let v6 = UdpSocket::bind("[::]:0").ok();
    for socket in std::iter::once(&v4).chain(v6.as_ref()) {
        socket.set_nonblocking(true)?;
    }
    std::thread::Builder::new().name("peers".into()).spawn(move || run(settings, v4, v6, stop))
}

fn run(settings: PeerSettings, v4: UdpSocket, v6: Option<UdpSocket>, stop: Receiver<()>) {
    info!(
        "peers: sending a heartbeat as {} every {:?} to {}",
        settings.name,
        settings.interval,
        settings.peers.iter().map(|p| format!("{}:{}", p.host, p.port)).collect::<Vec<_>>().join(", ")
    );
    let mut watches: Vec<Watch> = settings
        .peers
        .iter()
        .map(|p| Watch { peer: p.clone(), sent_to: None, unanswered: 0, reported: false })
        .collect();
    let ticks = tick(settings.interval);
    let mut seq = 0u64;
    loop {
        read_acks(&settings.name, &v4, v6.as_ref(), &mut watches);
        seq += 1;
        for watch in &mut watches {
            send(&settings, seq, watch, &v4, v6.as_ref());
        }
        select! {
            recv(stop) -> _ => break,
            recv(ticks) -> _ => {}
        }
    }
}

fn send(settings: &PeerSettings, seq: u64, watch: &mut Watch, v4: &UdpSocket, v6: Option<&UdpSocket>) {
    let peer = &watch.peer;
    let target = match (peer.host.as_str(), peer.port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(target)) => target,
        Ok(None) | Err(_) => {
            watch.unanswered += 1;
            if !std::mem::replace(&mut watch.reported, true) {
                warn!("peers: cannot look up {}; its heartbeats wait until it can be", peer.host);
            }
            return;
        }
    };
    let header = encode::Header {
        heartbeat: true,
        name: &settings.name,
        interval_s: settings.interval.as_secs().max(1),
        seq,
        latency_ms: None,
        client: HBD_CLIENT,
    };
    let payload = encode::message(header, &[], &Default::default()).to_string().into_bytes();
    let datagram = encode::datagram(payload, peer.key.as_ref(), unix_micros(SystemTime::now()));
    let socket = if target.is_ipv4() { Some(v4) } else { v6 };
    let sent = match socket {
        Some(socket) => socket.send_to(&datagram, target).map(|_| ()),
        None => Err(io::Error::new(io::ErrorKind::Unsupported, "no IPv6 socket")),
    };
    watch.sent_to = Some(target);
    watch.unanswered += 1;
    if let Err(e) = sent {
        if !std::mem::replace(&mut watch.reported, true) {
            warn!("peers: cannot send to {} ({target}): {e}", peer.host);
        }
    } else if watch.unanswered > SILENT_ROUNDS && !std::mem::replace(&mut watch.reported, true) {
        warn!(
            "peers: {} ({target}) has not answered the last {SILENT_ROUNDS} heartbeats: is its hbd running, and does it take ours?",
            peer.host
        );
    }
}

/// Takes every ACK waiting on the sockets; an ACK from a peer's address
/// (signed with its key, when it has one) counts as its answer.
fn read_acks(name: &str, v4: &UdpSocket, v6: Option<&UdpSocket>, watches: &mut [Watch]) {
    let mut buf = [0u8; 2048];
    for socket in std::iter::once(v4).chain(v6) {
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Some(watch) = watches.iter_mut().find(|w| w.sent_to == Some(from)) else { continue };
            if parse_ack(&buf[..n], watch.peer.key.as_ref(), name).is_some() {
                watch.unanswered = 0;
                if std::mem::replace(&mut watch.reported, false) {
                    info!("peers: {} ({from}) answers again", watch.peer.host);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    /// The heartbeat a peer receives: an HTB named hbd_name, from hbd.
    #[test]
    fn peers_receive_heartbeats_that_say_they_come_from_hbd() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let settings = PeerSettings {
            name: "hbd1".into(),
            interval: Duration::from_secs(3600),
            peers: vec![Peer { host: "127.0.0.1".into(), port: peer.local_addr().unwrap().port(), key: None }],
        };
        let (stop, stopped) = bounded::<()>(0);
        let thread = spawn(settings, stopped).unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        let message: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(message["ID"], "HTB");
        assert_eq!(message["name"], "hbd1");
        assert_eq!(message["interval"], 3600);
        assert!(message["client"].as_str().unwrap().starts_with(crate::wire::HBD_CLIENT_PREFIX));
        drop(stop);
        thread.join().unwrap();
    }
}
