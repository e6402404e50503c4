//! Hardening (issue 15) with the real `hbd` on loopback: hostile HTTP
//! clients (oversized heads, idle and stalled connections) while `/healthz`
//! keeps answering, WebSocket origins and message caps, a full disk (a small
//! tmpfs; root only), and SIGKILL under load: whole journal lines, a state
//! file that loads with its alert states, and no replay of a signed
//! datagram captured before the crash.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hbd::wire::auth::{HostPattern, Key};
use serde_json::{json, Value};
use support::*;
use tungstenite::client::IntoClientRequest;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// Sends `n` heartbeats from `hosts` names without waiting for each ACK,
/// pausing for one every 200 so that the socket buffer never overflows.
fn blast(hbd: &Hbd, hosts: usize, n: usize, pad: usize) {
    let socket = client("127.0.0.1:0");
    let padding = "x".repeat(pad);
    for i in 0..n {
        let message = json!({"ID": "HTB", "name": format!("h{}", i % hosts), "seq": i, "pad": padding}).to_string();
        socket.send_to(message.as_bytes(), hbd.addr).expect("send");
        if i % 200 == 199 {
            let mut buf = [0u8; 512];
            let _ = socket.recv_from(&mut buf);
        }
    }
}

/// A status line read from a raw connection, or None if it closed first.
fn status_of(stream: &mut TcpStream) -> Option<u16> {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).split(' ').nth(1)?.parse().ok()
}

fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    // The server may close before taking everything: that is the point.
    let _ = stream.write_all(bytes);
    status_of(&mut stream)
}

/// `/healthz` answers, and how long it took.
fn healthz_time(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let (status, body) = get_json(addr, "/healthz");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    started.elapsed()
}

#[test]
fn oversized_heads_are_refused_with_414_and_431() {
    let dir = TempDir::new("heads");
    let hbd = Hbd::start(&dir, "");
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    assert_eq!(raw(hbd.http, long_line.as_bytes()), Some(414));
    let big_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
    assert_eq!(raw(hbd.http, big_header.as_bytes()), Some(431));
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(101));
    assert_eq!(raw(hbd.http, many.as_bytes()), Some(431));
    // An unterminated 100 MB header: refused once 8 KiB are in, and the
    // rest is never read (the write fails or stalls, RSS does not grow).
    let mut stream = TcpStream::connect(hbd.http).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nX-Endless: ");
    let chunk = vec![b'c'; 1 << 20];
    for _ in 0..100 {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    assert_eq!(status_of(&mut stream), Some(431));
    let (status, headers, body) = http_request(hbd.http, "GET", "/healthz", &[]);
    assert_eq!(status, 200, "{headers:?} {body}");
    let rss_kb = fs::read_to_string(format!("/proc/{}/status", hbd.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap()))
        .unwrap();
    assert!(rss_kb < 64 << 10, "RSS {rss_kb} kB after a 100 MB header");
}

#[test]
fn idle_stalled_and_non_reading_clients_cost_only_their_own_connections() {
    let dir = TempDir::new("hostile");
    let hbd = Hbd::start(&dir, "http_max_connections: 100\n");
    // Enough hosts that /api/0/hosts is larger than the socket buffers.
    // UDP may drop some on a busy machine: send again until all are known.
    wait_for("4000 hosts", || {
        blast(&hbd, 4000, 4000, 0);
        (get_json(hbd.http, "/healthz").1["hosts"] == 4000).then_some(())
    });
    let (_, _, hosts_body) = http_request(hbd.http, "GET", "/api/0/hosts", &[]);
    assert!(hosts_body.len() > 500_000, "{} bytes", hosts_body.len());

    let first_idle = TcpStream::connect(hbd.http).unwrap();
    let opened = Instant::now();
    // 20 clients that ask for every host and never read the answer.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(hbd.http).unwrap();
        s.write_all(b"GET /api/0/hosts HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        stalled.push(s);
    }
    // Slow headers: a byte now and then, never the end.
    for _ in 0..10 {
        let mut s = TcpStream::connect(hbd.http).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").unwrap();
        stalled.push(s);
    }
    // More idle connections than http_max_connections.
    for _ in 0..300 {
        stalled.push(TcpStream::connect(hbd.http).unwrap());
    }
    // Every probe client is connected and stalled; their answers would take
    // WRITE_TIMEOUT (10 s) to be given up on. A fresh request must not wait
    // for any of them.
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let took = healthz_time(hbd.http);
        assert!(took < Duration::from_secs(3), "/healthz took {took:?} among stalled clients");
        slowest = slowest.max(took);
    }
    // The figure for RELIABILITY.md; the bound above only catches a stall.
    eprintln!("/healthz among 330 stalled connections: slowest of 5 {slowest:?}");
    let (status, _, metrics) = http_request(hbd.http, "GET", "/metrics", &[]);
    assert_eq!(status, 200);
    assert!(metrics.contains("hbd_hosts"), "{metrics}");
    let threads = fs::read_dir(format!("/proc/{}/task", hbd.child.id())).unwrap().count();
    assert!(threads < 40, "{threads} threads with 330 connections");

    // The idle connection is closed after the head deadline (10 s), or
    // before, to make room.
    let mut first_idle = first_idle;
    first_idle.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(first_idle.read(&mut byte), Ok(0) | Err(_)), "idle connection closed");
    assert!(opened.elapsed() < Duration::from_secs(15));
    drop(stalled);
    assert!(healthz_time(hbd.http) < Duration::from_secs(3));
}

fn ws_handshake(addr: SocketAddr, origin: Option<&str>) -> Result<tungstenite::WebSocket<TcpStream>, u16> {
    let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to ws");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", origin.parse().unwrap());
    }
    match tungstenite::client(request, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

#[test]
fn websocket_checks_origin_and_caps_what_browsers_send() {
    let dir = TempDir::new("ws-origin");
    let mut hbd = Hbd::start(&dir, "cors_origins: [\"https://dash.example\"]\n");
    assert_eq!(ws_handshake(hbd.ws, Some("http://evil.example")).err(), Some(403));
    assert_eq!(ws_handshake(hbd.ws, Some(&format!("http://127.0.0.1:{}", hbd.ws.port() + 1))).err(), Some(403));
    hbd.wait_log("ws: refused 1 connections");
    for _ in 0..20 {
        assert_eq!(ws_handshake(hbd.ws, Some("http://evil.example")).err(), Some(403));
    }
    let page = format!("http://127.0.0.1:{}", hbd.http.port());
    for origin in [None, Some(page.as_str()), Some("https://dash.example")] {
        let mut ws = ws_handshake(hbd.ws, origin).unwrap_or_else(|s| panic!("{origin:?}: {s}"));
        let snapshot = ws.read().expect("snapshot");
        assert!(snapshot.is_text(), "{origin:?}");
    }
    // A browser message over 64 KiB ends the connection.
    let mut ws = ws_handshake(hbd.ws, None).unwrap();
    ws.read().expect("snapshot");
    ws.send(tungstenite::Message::text("x".repeat(1 << 20))).expect("send a large message");
    let closed = wait_for("the server to drop the connection", || match ws.read() {
        Ok(tungstenite::Message::Close(_)) | Err(_) => Some(true),
        Ok(_) => None,
    });
    assert!(closed);
    assert_eq!(hbd.log().matches("ws: refused").count(), 1, "refusals are logged once a minute");
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn metric(hbd: &Hbd, name: &str) -> f64 {
    let (_, _, text) = http_request(hbd.http, "GET", "/metrics", &[]);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

fn state_is_whole(path: &Path) {
    if let Ok(text) = fs::read_to_string(path) {
        let state: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("state file torn: {e}"));
        assert!(state["hosts"].is_array());
    }
}

#[test]
fn a_full_disk_loses_lines_countably_and_journaling_resumes_by_itself() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = TempDir::new("full-disk");
    let Some(_disk) = Tmpfs::mount(&dir.join("disk"), "40m") else {
        eprintln!("skipped: mount -t tmpfs failed");
        return;
    };
    let disk = dir.join("disk");
    let config = format!(
        "hb_host: 127.0.0.1\nhb_port: 0\nhbd_host: 127.0.0.1\nhbd_port: 0\nws_port: 0\npickfile: {}\njournal_dir: {}\nstate_save_interval: 1\n",
        disk.join("state.json").display(),
        disk.join("journal").display()
    );
    fs::write(dir.join("hbd.yaml"), config).unwrap();
    let mut hbd = Hbd::start_with_config(&dir, &dir.join("hbd.yaml"));
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "before", 30.0, 1);
    let journal = disk.join("journal");
    let in_journal = |name: &str| journal_lines(&journal).iter().any(|v| v["message"]["name"] == name);
    wait_for("the first line", || in_journal("before").then_some(()));
    wait_for("a saved state", || disk.join("state.json").exists().then_some(()));

    // Fill the disk.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", disk.join("filler").display()))
        .stderr(std::process::Stdio::null())
        .status();
    // 20 MB of lines: more than fits, more than the 16 MiB buffer.
    blast(&hbd, 500, 20_000, 1000);
    wait_for("hosts known despite the full disk", || (get_json(hbd.http, "/healthz").1["hosts"] == 501).then_some(()));
    wait_for("dropped lines counted", || (metric(&hbd, "hbd_journal_lines_dropped_total") > 0.0).then_some(()));
    assert!(metric(&hbd, "hbd_journal_write_errors_total") > 0.0);
    state_is_whole(&disk.join("state.json"));
    let errors = hbd.log().matches("journal: write").count();
    assert!((1..=2).contains(&errors), "{errors} write errors logged, not rate-limited");

    // Space returns (more than the 16 MiB waiting): journaling resumes by
    // itself, whole lines only.
    fs::remove_file(disk.join("filler")).unwrap();
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "after", 30.0, 2);
    hbd.wait_log("journal: writing");
    wait_for("a line sent after space returned", || in_journal("after").then_some(()));
    state_is_whole(&disk.join("state.json"));
    assert!(hbd.stop().success());
    for entry in fs::read_dir(disk.join("journal")).unwrap() {
        let text = fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "torn last line");
    }
    let lines = journal_lines(&disk.join("journal"));
    assert!(lines.len() > 1000, "{} lines: what fit was written", lines.len());
    let state: Value = serde_json::from_str(&fs::read_to_string(disk.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["hosts"].as_array().map(Vec::len), Some(502));
}

const SECRET: &str = "crash-test-secret-0123456789";

fn signed(key: &Key, name: &str, seq: u64, cpu: f64) -> Vec<u8> {
    let at = now_us() as f64 / 1e6;
    let body = json!({"ID": "HTB", "name": name, "seq": seq,
        "plugins": {"cpu_monitor": {"kind": "monitor", "at": at, "data": {"cpu_percent": cpu}}}});
    key.seal(now_us(), body.to_string().as_bytes())
}

#[test]
fn sigkill_under_load_keeps_whole_lines_state_and_alerts_and_allows_no_replay() {
    let dir = TempDir::new("sigkill");
    let extra = format!(
        "keys:\n  - id: k1\n    secret: {SECRET}\nstate_save_interval: 1\nthresholds:\n  cpu_monitor:\n    cpu_percent:\n      warning: 80\n      critical: 90\n"
    );
    let key = Key::new("k1", SECRET.as_bytes(), vec![HostPattern::Any]).unwrap();
    let mut hbd = Hbd::start(&dir, &extra);
    let socket = client("127.0.0.1:0");
    let captured = signed(&key, "web1", 1, 95.0);
    assert!(send_recv(&socket, hbd.addr, &captured).is_some(), "accepted before the crash");
    wait_for("the CRITICAL alert saved", || {
        let state = fs::read_to_string(dir.join("state.json")).ok()?;
        state.contains("CRITICAL").then_some(())
    });

    for round in 0..3 {
        // Load from another thread while hbd is killed.
        let addr = hbd.addr;
        let sender = {
            let key = key.clone();
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                let until = Instant::now() + Duration::from_millis(1500);
                let mut seq = 0;
                while Instant::now() < until {
                    seq += 1;
                    let _ = socket.send_to(&signed(&key, &format!("load{}", seq % 50), seq, 10.0), addr);
                    if seq % 20 == 0 {
                        std::thread::sleep(Duration::from_millis(4));
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(700));
        hbd.signal(libc::SIGKILL);
        let _ = hbd.child.wait();
        sender.join().unwrap();
        // Whole lines: a torn line would fail to parse here, or merge with
        // the first line of the next run.
        let lines = hbd.journal();
        assert!(lines.len() > 10, "round {round}: {} lines", lines.len());
        hbd = Hbd::start(&dir, &extra);
        hbd.wait_log("state: restored");
        let (_, alerts) = get_json(hbd.http, "/api/0/alerts");
        assert_eq!(alerts["summary"]["critical"], 1, "round {round}: {alerts}");
    }
    let fired = hbd.journal().into_iter().filter(|l| l["type"] == "alert").count();
    assert_eq!(fired, 1, "a restart fires no alert again");

    // The datagram captured before the crashes is not accepted after them.
    assert_eq!(send_recv(&socket, hbd.addr, &captured), None);
    hbd.wait_log(": replayed: ");
    let fresh = signed(&key, "web1", 2, 95.0);
    assert!(send_recv(&socket, hbd.addr, &fresh).is_some(), "a new datagram is");
    assert!(hbd.stop().success());
    let _ = hbd.journal();
}
