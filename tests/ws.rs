//! Live updates over the real `hbd`'s WebSocket, with tungstenite as the
//! browser: snapshot, then heartbeats, events and plugin data; a stalled
//! client must not delay another; the number of clients is capped.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::*;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn connect(addr: SocketAddr) -> Ws {
    connect_to(addr, "/")
}

/// A WebSocket on `path` (with its query) at `addr`.
fn connect_to(addr: SocketAddr, path: &str) -> Ws {
    let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to ws");
    // The handshake gets the whole deadline; reads after it wake every 200 ms.
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{addr}{path}"), stream).expect("websocket handshake");
    ws.get_ref().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    ws
}

/// Reads messages, and the updates inside batches, until one satisfies
/// `wanted`, failing at the deadline.
fn next_matching(ws: &mut Ws, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    next_matching_within(DEADLINE, ws, what, wanted)
}

fn next_matching_within(limit: Duration, ws: &mut Ws, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        match ws.read() {
            Ok(Message::Text(text)) => {
                let value: Value = serde_json::from_str(&text).expect("updates are JSON");
                if wanted(&value) {
                    return value;
                }
                // A turn of hbd's core with many updates sends them as one
                // batch (a busy or loaded machine makes them); a browser
                // reads each.
                if value["type"] == "batch" {
                    let updates = value["updates"].as_array().into_iter().flatten();
                    if let Some(update) = updates.into_iter().find(|u| wanted(u)) {
                        return update.clone();
                    }
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("websocket read while waiting for {what}: {e}"),
        }
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn snapshot_then_live_heartbeats_events_and_plugin_data() {
    let dir = TempDir::new("ws-live");
    let hbd = Hbd::start(&dir, "");
    let udp = client("127.0.0.1:0");
    heartbeat(&udp, hbd.addr, "early", 30.0, 1);

    let mut ws = connect(hbd.ws);
    let snapshot = next_matching(&mut ws, "snapshot", |v| v["type"] == "snapshot");
    assert_eq!(snapshot["hosts"][0]["name"], "early");
    assert_eq!(snapshot["hosts"][0]["status"], "up");

    heartbeat(&udp, hbd.addr, "early", 30.0, 2);
    let beat = next_matching(&mut ws, "heartbeat of early", |v| v["type"] == "heartbeat" && v["host"]["count"] == 2);
    assert_eq!(beat["host"]["name"], "early");

    let message = json!({"ID": "HTB", "name": "late", "interval": 30, "seq": 3,
        "plugins": {"cpu_monitor": {"kind": "monitor", "at": now(), "data": {"cpu_percent": 42.0}}}});
    wait_for("ACK", || send_recv(&udp, hbd.addr, message.to_string().as_bytes()));
    let new = next_matching(&mut ws, "host_new", |v| v["type"] == "host_new");
    assert_eq!((new["name"].as_str(), new["address"].as_str()), (Some("late"), Some("127.0.0.1")));
    assert!(new["at"].as_f64().unwrap() > 1.7e9);
    let plugin = next_matching(&mut ws, "plugin update", |v| v["type"] == "plugin");
    assert_eq!(plugin["name"], "late");
    assert_eq!(plugin["plugin"], "cpu_monitor");
    assert_eq!(plugin["sample"]["data"]["cpu_percent"], 42.0);
}

/// `?snapshot=none` (the console beyond a page of hosts, which reads them
/// from the API): the snapshot comes without hosts, the updates as ever.
#[test]
fn a_snapshot_without_hosts_when_asked() {
    let dir = TempDir::new("ws-no-snapshot");
    let hbd = Hbd::start(&dir, "");
    let udp = client("127.0.0.1:0");
    heartbeat(&udp, hbd.addr, "early", 30.0, 1);
    let mut ws = connect_to(hbd.http, "/ws?snapshot=none");
    let snapshot = next_matching(&mut ws, "snapshot", |v| v["type"] == "snapshot");
    assert_eq!(snapshot, json!({"type": "snapshot", "hosts": null}));
    heartbeat(&udp, hbd.addr, "early", 30.0, 2);
    let beat = next_matching(&mut ws, "heartbeat of early", |v| v["type"] == "heartbeat" && v["host"]["count"] == 2);
    assert_eq!(beat["host"]["name"], "early");
    // Without it, the hosts come as before.
    let mut plain = connect(hbd.ws);
    let snapshot = next_matching(&mut plain, "snapshot", |v| v["type"] == "snapshot");
    assert_eq!(snapshot["hosts"][0]["name"], "early");
}

/// A heartbeat of host `busy` with 16 kB of plugin data: a 16 kB update.
fn send_16k_update(udp: &std::net::UdpSocket, hbd: SocketAddr, seq: u64) {
    let message = json!({"ID": "HTB", "name": "busy", "interval": 30, "seq": seq,
        "plugins": {"blob": {"kind": "monitor", "at": now(), "data": {"blob": "x".repeat(16000)}}}});
    udp.send_to(message.to_string().as_bytes(), hbd).unwrap();
}

#[test]
fn a_stalled_client_does_not_delay_another() {
    let dir = TempDir::new("ws-stall");
    let hbd = Hbd::start(&dir, "");
    // This one completes the handshake and then never reads again.
    let stalled = connect(hbd.ws);
    let mut reader = connect(hbd.ws);
    next_matching(&mut reader, "snapshot", |v| v["type"] == "snapshot");
    // The other reads all the time and tells how far it got, until it sees
    // the final heartbeat.
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = progress.clone();
    let reading = std::thread::spawn(move || {
        // The whole flood happens meanwhile: a generous bound.
        next_matching_within(Duration::from_secs(60), &mut reader, "the final heartbeat", |v| {
            if v["type"] == "heartbeat" && v["host"]["name"] == "busy" {
                seen.fetch_max(v["host"]["count"].as_u64().unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
            }
            v["type"] == "heartbeat" && v["host"]["name"] == "final"
        })
    });

    // 16 kB updates until the stalled client's socket buffers (a few MiB on
    // loopback) and queue are full and hbd drops it. Sent in tens, each after
    // the reader has caught up, so neither the reader nor a small kernel
    // receive buffer falls behind.
    let udp = client("127.0.0.1:0");
    for seq in 1.. {
        assert!(seq <= 5000, "50 MiB sent and the stalled client was not dropped");
        send_16k_update(&udp, hbd.addr, seq);
        if seq % 10 == 0 {
            wait_for(&format!("the reader to see heartbeat {seq}"), || {
                (progress.load(std::sync::atomic::Ordering::Relaxed) + 10 >= seq).then_some(())
            });
            if hbd.log().contains("is too slow for live updates; dropping it") {
                break;
            }
        }
    }
    // After the stalled client was dropped, the other still gets each update.
    heartbeat(&udp, hbd.addr, "final", 30.0, 9999);
    let last = reading.join().expect("the reader got every update");
    assert_eq!(last["host"]["name"], "final");
    drop(stalled);
}

/// A browser whose socket takes nothing for 5 s is dropped even when few
/// updates wait for it (far fewer than would make its backlog full).
#[test]
fn a_client_that_takes_nothing_is_dropped_after_a_while() {
    let dir = TempDir::new("ws-stalled-few");
    let hbd = Hbd::start(&dir, "");
    let mut stalled = connect(hbd.ws);
    next_matching(&mut stalled, "snapshot", |v| v["type"] == "snapshot");
    // 1,000 updates of 16 kB: more than loopback's socket buffers hold,
    // a quarter of the backlog that counts as too slow.
    let udp = client("127.0.0.1:0");
    for seq in 1..=1000 {
        send_16k_update(&udp, hbd.addr, seq);
        if seq % 100 == 0 {
            // Let hbd keep up, so that the datagrams are not lost.
            wait_for(&format!("heartbeat {seq} stored"), || {
                let (_, _, body) = http_request(hbd.http, "GET", "/api/0/hosts/busy", &[]);
                let count = serde_json::from_str::<Value>(&body).ok()?["count"].as_u64()?;
                (count + 10 >= seq).then_some(())
            });
        }
    }
    wait_for("the stalled client dropped", || {
        hbd.log().contains("is too slow for live updates; dropping it").then_some(())
    });
    drop(stalled);
}

#[test]
fn clients_beyond_the_cap_are_refused() {
    let dir = TempDir::new("ws-cap");
    let hbd = Hbd::start(&dir, "ws_max_clients: 1\n");
    let mut first = connect(hbd.ws);
    next_matching(&mut first, "snapshot", |v| v["type"] == "snapshot");
    let (status, _, body) = http_request(hbd.ws, "GET", "/", &[]);
    assert_eq!(status, 503);
    assert!(body.contains("too many websocket clients"));
    let stream = TcpStream::connect(hbd.ws).unwrap();
    assert!(tungstenite::client(format!("ws://{}/", hbd.ws), stream).is_err());
    // The place is given back when the browser leaves: a close, or the
    // connection just dropped.
    first.close(None).unwrap();
    let _ = first.flush();
    drop(first);
    let mut second = wait_for("the place of the client that closed", || {
        let stream = TcpStream::connect(hbd.ws).ok()?;
        tungstenite::client(format!("ws://{}/", hbd.ws), stream).ok().map(|(ws, _)| ws)
    });
    next_matching(&mut second, "snapshot", |v| v["type"] == "snapshot");
    drop(second);
    let mut third = wait_for("the place of the client that dropped its connection", || {
        let stream = TcpStream::connect(hbd.ws).ok()?;
        tungstenite::client(format!("ws://{}/", hbd.ws), stream).ok().map(|(ws, _)| ws)
    });
    next_matching(&mut third, "snapshot", |v| v["type"] == "snapshot");
}

/// A self-signed certificate for 127.0.0.1, made with openssl(1).

#[test]
fn wss_serves_the_same_updates_over_tls() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let dir = TempDir::new("wss");
    let (cert, _) = self_signed(&dir);
    let mut hbd = Hbd::start(&dir, &format!("wss_port: 0\ncert_path: {}\n", dir.path().display()));
    let wss: SocketAddr = hbd.wait_log("wss: listening on ").rsplit(' ').next().unwrap().parse().unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&cert).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let tcp = TcpStream::connect(wss).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = rustls::StreamOwned::new(rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap(), tcp);
    let (mut ws, _) = tungstenite::client(format!("wss://{wss}/"), tls).expect("TLS and WebSocket handshake");
    ws.get_ref().sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut got_snapshot = false;
    loop {
        assert!(Instant::now() < deadline, "no update over wss");
        match ws.read() {
            Ok(Message::Text(text)) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                // Updates are promised from the snapshot on: send after it.
                if v["type"] == "snapshot" && !got_snapshot {
                    got_snapshot = true;
                    heartbeat(&client("127.0.0.1:0"), hbd.addr, "secure", 30.0, 1);
                }
                if v["type"] == "heartbeat" && v["host"]["name"] == "secure" {
                    break;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("wss read: {e}"),
        }
    }
    assert!(got_snapshot);
    // Plain WebSocket still works beside it.
    let mut plain = connect(hbd.ws);
    next_matching(&mut plain, "snapshot", |v| v["type"] == "snapshot");
}

#[test]
fn wss_without_a_usable_certificate_is_a_clear_start_up_error() {
    let dir = TempDir::new("wss-bad");
    let config = dir.join("hbd.yaml");
    let base = format!("hb_host: 127.0.0.1\nhb_port: 0\nhbd_port: 0\nws_port: 0\nwss_port: 0\npickfile: {}/s.json\njournal_enabled: false\n", dir.path().display());
    let run = |extra: &str| {
        std::fs::write(&config, format!("{base}{extra}")).unwrap();
        let out = std::process::Command::new(hbd_bin()).args(["-f", "-c"]).arg(&config).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run(&format!("cert_path: {}\n", dir.path().display()));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("fullchain.pem: cannot read certificates"), "{stderr}");
    std::fs::write(dir.join("garbage.pem"), "not a certificate\n").unwrap();
    let (code, stderr) = run(&format!("cert_path: {}\nwss_pem: garbage.pem\n", dir.path().display()));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("garbage.pem: holds no PEM certificate"), "{stderr}");
}

/// Where reads need a token, a page sends it as the subprotocol
/// `bearer.TOKEN` (browsers cannot set headers on a WebSocket): hbd takes
/// it there as in `Authorization`, answers with that same protocol, and
/// refuses (401) a handshake with no token or an unknown one.
#[test]
fn a_token_as_the_subprotocol_opens_the_websocket_where_reads_need_one() {
    use std::os::unix::fs::PermissionsExt;
    use tungstenite::client::IntoClientRequest;
    const READER: &str = "bob-read-secret-0123456";
    let dir = TempDir::new("ws-token");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("bob read {READER}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let hbd = Hbd::start(&dir, &format!("api_tokens_file: {}\napi_reads_need_token: yes\n", tokens.display()));
    // The error type is tungstenite's, not ours to box.
    #[allow(clippy::result_large_err)]
    let handshake = |addr: SocketAddr, path: &str, protocol: Option<&str>| {
        let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
        if let Some(protocol) = protocol {
            request.headers_mut().insert("sec-websocket-protocol", protocol.parse().unwrap());
        }
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        tungstenite::client(request, stream)
    };
    // On ws_port and on the pages' own port (/ws, through the HTTP front).
    for (addr, path) in [(hbd.ws, "/"), (hbd.http, "/ws")] {
        for refused in [None, Some("bearer.not-a-known-token-0123"), Some("chat")] {
            match handshake(addr, path, refused) {
                Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                    assert_eq!(response.status(), 401, "{refused:?}")
                }
                other => panic!("{refused:?} on {addr}{path}: not refused: {:?}", other.map(|(_, r)| r)),
            }
        }
        let offered = format!("bearer.{READER}");
        let (mut ws, response) = handshake(addr, path, Some(&offered)).expect("the token as the subprotocol");
        let chosen = response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
        assert_eq!(chosen, Some(offered.as_str()), "the same protocol back");
        ws.get_ref().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        next_matching(&mut ws, "snapshot", |v| v["type"] == "snapshot");
    }
    // The header still works, and with reads open the protocol is echoed too.
    let open_dir = TempDir::new("ws-token-open");
    let open = Hbd::start(&open_dir, "");
    let (_, response) = handshake(open.ws, "/", Some("bearer.anything-at-all")).expect("reads are open");
    assert_eq!(
        response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
        Some("bearer.anything-at-all"),
        "a browser drops a connection whose answer names no protocol it offered"
    );
}

/// Issue 25: a mass outage reaches a live browser as batches (one message
/// for a turn of the core with many updates), every event in it, and
/// drops nobody.
#[test]
fn a_mass_outage_arrives_as_batches_and_drops_no_browser() {
    let dir = TempDir::new("ws-burst");
    let hbd = Hbd::start(&dir, "grace: 1\n");
    let udp = client("127.0.0.1:0");
    const HOSTS: usize = 300;
    for i in 0..HOSTS {
        heartbeat(&udp, hbd.addr, &format!("h{i}"), 1.0, i as u64);
    }
    let mut ws = connect(hbd.ws);
    next_matching(&mut ws, "snapshot", |v| v["type"] == "snapshot");
    let mut down = std::collections::BTreeSet::new();
    let mut batches = 0;
    while down.len() < HOSTS {
        let message = next_matching(&mut ws, "host_down events", |v| v["type"] == "batch" || v["type"] == "host_down");
        let updates = match message["type"].as_str() {
            Some("batch") => {
                batches += 1;
                message["updates"].as_array().cloned().unwrap_or_default()
            }
            _ => vec![message],
        };
        down.extend(
            updates.iter().filter(|u| u["type"] == "host_down").filter_map(|u| u["name"].as_str().map(String::from)),
        );
    }
    assert!(batches > 0, "the outage came in batches");
    let (_, _, metrics) = http_request(hbd.http, "GET", "/metrics", &[]);
    assert!(metrics.lines().any(|l| l == "hbd_ws_updates_dropped_total 0"), "no update dropped");
}
