//! hbd under systemd's `Type=notify`, with the real binary and a notify
//! socket the test reads in systemd's place: READY=1 once the ports answer,
//! a STATUS= line, WATCHDOG=1 while the core turns, none once it hangs.

mod support;

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::*;

/// The watchdog interval the test gives hbd: pings every half of it.
const WATCHDOG: Duration = Duration::from_secs(2);

/// The notify socket systemd would own, bound in `dir`.
fn notify_socket(dir: &TempDir) -> (UnixDatagram, String) {
    let path = dir.join("notify");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    (socket, path.display().to_string())
}

/// The next message on the socket, waiting at most `wait`.
fn next_message(socket: &UnixDatagram, wait: Duration) -> Option<String> {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => None,
        Err(e) => panic!("notify socket: {e}"),
    }
}

fn start(dir: &TempDir, extra: &str, notify_path: &str) -> Hbd {
    let config = dir.join("hbd.yaml");
    fs::write(&config, format!("{}{extra}", base_config(dir.path(), "127.0.0.1"))).unwrap();
    let usec = WATCHDOG.as_micros().to_string();
    Hbd::start_with_env(dir, &config, &[("NOTIFY_SOCKET", notify_path), ("WATCHDOG_USEC", &usec)])
}

/// Makes `path` a named pipe, as a journal on a disk that stops answering.
fn mkfifo(path: &std::path::Path) {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

#[test]
fn ready_comes_once_the_ports_answer_and_the_watchdog_follows_the_core() {
    let dir = TempDir::new("systemd");
    let (socket, path) = notify_socket(&dir);
    let mut hbd = start(&dir, "", &path);
    let ready = wait_for("READY=1", || next_message(&socket, Duration::from_millis(200)));
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // When systemd hears READY=1 every port answers.
    assert_eq!(get_json(hbd.http, "/healthz").0, 200);
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "web1", 30.0, 1);

    // Pings, each with the status the core counts once it changes.
    let mut pings = 0;
    let mut status = None;
    let started = Instant::now();
    while pings < 3 {
        let message = next_message(&socket, WATCHDOG * 5).expect("a watchdog ping within the interval");
        pings += message.lines().filter(|l| *l == "WATCHDOG=1").count();
        if let Some(line) = message.lines().find_map(|l| l.strip_prefix("STATUS=")) {
            status = Some(line.to_string());
        }
    }
    // Three pings half an interval apart take more than one interval.
    assert!(started.elapsed() >= WATCHDOG / 2, "pings come no faster than half the interval");
    assert_eq!(status.as_deref(), Some("hosts: 1 up, 0 down, 0 unreachable; alerts: 0 critical, 0 warning, 0 unknown"));

    assert!(hbd.stop().success());
    let stopping = wait_for("STOPPING=1", || next_message(&socket, Duration::from_millis(200)));
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

/// The events journal is a pipe nobody reads: once it is full the journal
/// thread waits in write(2), its queue fills, and the core blocks on the
/// next event it must journal (a host going down). Its pings stop, so
/// systemd would restart hbd.
#[test]
fn a_core_that_hangs_stops_the_watchdog_pings() {
    let dir = TempDir::new("systemd-stall");
    let journal = dir.join("journal");
    fs::create_dir_all(&journal).unwrap();
    let fifo = journal.join("events.journal");
    mkfifo(&fifo);
    // A reader that never reads, so that hbd's open(2) for writing returns.
    let _reader: File = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
    let (socket, path) = notify_socket(&dir);
    let hbd = start(&dir, "grace: 1\n", &path);
    let first = wait_for("READY=1", || next_message(&socket, Duration::from_millis(200)));
    assert!(first.contains("READY=1"));
    assert!(next_message(&socket, WATCHDOG * 5).is_some_and(|m| m.contains("WATCHDOG=1")), "pings while it turns");

    // New hosts fill the pipe with host_new events; then they go down.
    let udp = client("127.0.0.1:0");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    loop {
        assert!(Instant::now() < deadline, "the pings did not stop: the core never blocked");
        for _ in 0..500 {
            let datagram = format!("{{\"ID\":\"HTB\",\"name\":\"host{sent}\",\"interval\":1,\"seq\":1}}");
            udp.send_to(datagram.as_bytes(), hbd.addr).unwrap();
            sent += 1;
        }
        // Silent for four intervals of pings: the core has stopped turning.
        if !std::iter::from_fn(|| next_message(&socket, WATCHDOG * 2)).any(|m| m.contains("WATCHDOG=1")) {
            break;
        }
    }
    assert!(next_message(&socket, WATCHDOG * 2).is_none(), "no ping once the core hangs");
}
