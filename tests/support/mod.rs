//! Helpers for the integration tests: a temp dir, the real `hbd` binary on an
//! ephemeral loopback port, UDP senders, and waiting for conditions with a
//! deadline (never a sleep as synchronisation).

#![allow(dead_code)]

pub mod standin;

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous bound for anything the daemon should do "at once"; only reached
/// when a test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("hbd-it-{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The hbd under test: this build's, or the one `HBD_BENCH_BIN` names, so
/// that benches/ui.sh measures an earlier build's console (embedded in its
/// binary) in the same run as this one's.
pub fn hbd_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| std::env::var("HBD_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hbd").to_string()))
}

/// `hbd`, without the variables it would take notification credentials
/// from, so that the environment of whoever runs the tests changes nothing.
pub fn hbd_command() -> Command {
    let mut command = Command::new(hbd_bin());
    for (_, var) in hbd::server::notify::config::DEFAULT_ENV {
        command.env_remove(var);
    }
    command
}

/// Prometheus' own `promtool check metrics` passes `text`, with nothing to say.
pub fn assert_promtool_clean(text: &str) {
    use std::io::Write;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (tests/run installs Debian's prometheus)");
    promtool.stdin.take().expect("promtool's stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = promtool.wait_with_output().expect("promtool's answer");
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}");
}

/// Polls `check` until it returns `Some`, panicking with `what` at the deadline.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `hbd -f -v` whose files all live in one temp dir.
pub struct Hbd {
    pub child: Child,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub stderr: PathBuf,
    pub addr: SocketAddr,
    /// Where the HTTP API listens.
    pub http: SocketAddr,
    /// Where the WebSocket listens.
    pub ws: SocketAddr,
}

/// The config every test starts from: loopback, ephemeral port, files in `dir`.
pub fn base_config(dir: &Path, host: &str) -> String {
    format!(
        "hb_host: \"{host}\"\nhb_port: 0\nhbd_host: \"{host}\"\nhbd_port: 0\nws_port: 0\npickfile: {}\njournal_dir: {}\n",
        dir.join("state.json").display(),
        dir.join("journal").display()
    )
}

impl Hbd {
    /// Starts hbd on 127.0.0.1 with `extra` YAML appended to the base config.
    pub fn start(dir: &TempDir, extra: &str) -> Hbd {
        Hbd::start_on(dir, "127.0.0.1", extra)
    }

    pub fn start_on(dir: &TempDir, host: &str, extra: &str) -> Hbd {
        let config = dir.join("hbd.yaml");
        fs::write(&config, format!("{}{extra}", base_config(dir.path(), host))).expect("write config");
        Hbd::start_with_config(dir, &config)
    }

    pub fn start_with_config(dir: &TempDir, config: &Path) -> Hbd {
        Hbd::start_with_env(dir, config, &[])
    }

    /// Starts hbd with `config` and these variables in its environment
    /// (and none of the notification credentials of the one running the
    /// tests: see [`hbd_command`]).
    pub fn start_with_env(dir: &TempDir, config: &Path, env: &[(&str, &str)]) -> Hbd {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let stderr = dir.join(&format!("hbd-{}.err", STARTS.fetch_add(1, Ordering::Relaxed)));
        let child = hbd_command()
            .args(["-f", "-v", "-c"])
            .arg(config)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("create stderr file"))
            .spawn()
            .expect("spawn hbd");
        let mut hbd = Hbd {
            child,
            dir: dir.path().to_path_buf(),
            config: config.to_path_buf(),
            stderr,
            addr: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            ws: "0.0.0.0:0".parse().unwrap(),
        };
        hbd.addr = hbd.listening("udp");
        hbd.http = hbd.listening("http");
        hbd.ws = hbd.listening("ws");
        hbd
    }

    /// The address a component logged as "<component>: listening on ADDR".
    fn listening(&mut self, component: &str) -> SocketAddr {
        let line = self.wait_log(&format!("{component}: listening on "));
        let addr = line.rsplit(' ').next().expect("address in listening line");
        addr.parse().unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        let stderr = self.stderr.clone();
        let child = &mut self.child;
        wait_for(&format!("log line {needle:?}"), || {
            let text = fs::read_to_string(&stderr).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return Some(line.to_string());
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("hbd exited ({status}) before logging {needle:?}:\n{text}");
            }
            None
        })
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// The journal of received messages (`journal_file`).
    pub fn messages_file(&self) -> PathBuf {
        self.journal_dir().join("messages.journal")
    }

    /// The journal of events (`journal_events_file`).
    pub fn events_file(&self) -> PathBuf {
        self.journal_dir().join("events.journal")
    }

    /// Every line of every journal file, messages and events, parsed,
    /// oldest file first.
    pub fn journal(&self) -> Vec<Value> {
        journal_lines(&self.journal_dir())
    }

    /// Waits until a journal line satisfies `matches`, and returns it.
    pub fn wait_journal(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || self.journal().into_iter().find(|v| matches(v)))
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({signal})");
    }

    /// SIGTERM, then waits for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let child = &mut self.child;
        wait_for("hbd to exit after SIGTERM", || child.try_wait().expect("wait for hbd"))
    }

    pub fn state(&self) -> Value {
        let text = fs::read_to_string(self.dir.join("state.json")).expect("read state file");
        serde_json::from_str(&text).expect("state file is JSON")
    }
}

impl Drop for Hbd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // A failing test shows what hbd said (its temp dir is removed next).
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- the last lines of hbd's log ---");
            tail.iter().rev().for_each(|line| eprintln!("{line}"));
        }
    }
}

pub fn journal_lines(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => return Vec::new(),
    };
    // messages.journal.N is older the larger N is; messages.journal is newest.
    let age = |p: &PathBuf| p.extension().and_then(|e| e.to_str()).and_then(|e| e.parse::<u32>().ok()).unwrap_or(0);
    files.sort_by_key(|p| std::cmp::Reverse(age(p)));
    let mut lines = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        // A line still being written has no newline yet: skip it.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        for line in complete.lines() {
            lines.push(
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", file.display())),
            );
        }
    }
    lines
}

/// A UDP client socket on loopback that waits at most [`DEADLINE`] for replies.
pub fn client(local: &str) -> UdpSocket {
    let socket = UdpSocket::bind(local).expect("bind client socket");
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    socket
}

/// Sends `datagram` and returns the reply, or None if none came in 500 ms.
pub fn send_recv(socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(datagram, to).expect("send datagram");
    let mut buf = [0u8; 2048];
    socket.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

/// Sends a heartbeat with `seq` until it is acknowledged (UDP may drop).
pub fn heartbeat(socket: &UdpSocket, to: SocketAddr, name: &str, interval: f64, seq: u64) -> Value {
    let datagram = serde_json::json!({"ID": "HTB", "name": name, "interval": interval, "seq": seq}).to_string();
    wait_for(&format!("ACK of {name} seq {seq}"), || {
        let reply = send_recv(socket, to, datagram.as_bytes())?;
        let ack: Value = serde_json::from_slice(&reply).ok()?;
        (ack["seq"] == seq).then_some(ack)
    })
}

/// Sends `message` exactly once and waits up to [`DEADLINE`] for its ACK
/// (the same `seq`), so a test can count lines exactly: nothing is sent
/// twice. On loopback at a test's rate nothing is dropped.
pub fn send_once(socket: &UdpSocket, to: SocketAddr, message: &Value) {
    socket.send_to(message.to_string().as_bytes(), to).expect("send datagram");
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 2048];
    loop {
        assert!(Instant::now() < deadline, "no ACK of {message}");
        let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
        let ack: Value = serde_json::from_slice(&buf[..n]).unwrap_or(Value::Null);
        if ack["ID"] == "ACK" && ack["seq"] == message["seq"] {
            return;
        }
    }
}

pub fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn event_of<'a>(v: &'a Value, kind: &str, name: &str) -> Option<&'a Value> {
    (v["type"] == kind && v["name"] == name).then_some(v)
}

/// One HTTP/1.1 request the way a plain client sends it; returns status,
/// headers (lower-case names) and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to http");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// GET returning status and parsed JSON body.
pub fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, headers, body) = http_request(addr, "GET", path, &[]);
    let content_type = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str()).unwrap_or("");
    assert_eq!(content_type, "application/json", "{path}");
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
}

/// A self-signed certificate for 127.0.0.1 (and localhost), made by openssl:
/// (certificate, key). A leaf, not a CA: webpki refuses a CA as a server's own.
pub fn self_signed(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}
