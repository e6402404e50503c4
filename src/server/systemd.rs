//! What hbd tells systemd when it runs as a `Type=notify` service: READY=1
//! once every component is up and the core answers, a one-line STATUS=
//! (`systemctl status hbd`), WATCHDOG=1 while the core loop turns, and
//! STOPPING=1 at shutdown (sd_notify(3)'s protocol: one datagram a message
//! on the AF_UNIX socket `$NOTIFY_SOCKET` names).
//!
//! Not a thread: the parent owns it. The core proves it is alive by sending
//! [`CoreStatus`] on its tick (msg.rs); the parent pings the watchdog only
//! when such a proof arrives, so a core that hangs (on a journal disk that
//! stopped answering, say) stops the pings and systemd restarts hbd after
//! `WatchdogSec=`. Without `$NOTIFY_SOCKET` nothing here does anything.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use log::warn;

use crate::server::model::Level;
use crate::server::msg::CoreStatus;

pub struct Systemd {
    socket: UnixDatagram,
    address: SocketAddr,
    /// Half of `$WATCHDOG_USEC` (systemd's advice), when the watchdog is on for us.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    last_status: String,
    /// A send failed: warned once, then quiet (systemd may have gone away).
    warned: bool,
}

impl Systemd {
    /// The notify socket of the environment; None without one (not under
    /// systemd, or `Type=` other than notify). A socket hbd cannot use is
    /// a warning, not a failure: monitoring goes on.
    pub fn from_env() -> Option<Systemd> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let watchdog = watchdog_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        match open(&path) {
            Ok((socket, address)) => Some(Systemd {
                socket,
                address,
                ping_every: watchdog.map(|w| w / 2),
                last_ping: None,
                last_status: String::new(),
                warned: false,
            }),
            Err(e) => {
                warn!(
                    "systemd: cannot use NOTIFY_SOCKET {}: {e}; not telling systemd anything",
                    path.to_string_lossy()
                );
                None
            }
        }
    }

    /// Every component runs and the core has answered.
    pub fn ready(&mut self) {
        self.send("READY=1\nSTATUS=started; waiting for the core's first tick");
    }

    /// The core turned: ping the watchdog when due, and say what changed.
    pub fn alive(&mut self, status: &CoreStatus) {
        let line = status_line(status);
        let mut message = String::new();
        if self.ping_every.is_some_and(|every| self.last_ping.is_none_or(|at| at.elapsed() >= every)) {
            self.last_ping = Some(Instant::now());
            message.push_str("WATCHDOG=1\n");
        }
        if line != self.last_status {
            message.push_str("STATUS=");
            message.push_str(&line);
            self.last_status = line;
        }
        if !message.is_empty() {
            self.send(message.trim_end());
        }
    }

    pub fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=stopping: saving state");
    }

    fn send(&mut self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.address) {
            if !std::mem::replace(&mut self.warned, true) {
                warn!("systemd: cannot send to NOTIFY_SOCKET: {e}");
            }
        }
    }
}

/// The watchdog interval, when `$WATCHDOG_USEC` is set for this process
/// (`$WATCHDOG_PID`, when set, must be ours: a child must not ping for us).
fn watchdog_from(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid {
        Some(pid) if pid.trim().parse::<u32>().ok() != Some(our_pid) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

/// A path, or `@name` for Linux's abstract namespace.
fn open(path: &std::ffi::OsStr) -> io::Result<(UnixDatagram, SocketAddr)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => abstract_address(name)?,
        None if bytes.first() == Some(&b'/') => SocketAddr::from_pathname(path)?,
        None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "neither an absolute path nor @name")),
    };
    Ok((UnixDatagram::unbound()?, address))
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "abstract sockets exist only on Linux"))
}

/// What `systemctl status hbd` shows under "Status:".
fn status_line(status: &CoreStatus) -> String {
    let count = |level| status.alerts.get(&level).copied().unwrap_or(0);
    format!(
        "hosts: {} up, {} down, {} unreachable; alerts: {} critical, {} warning, {} unknown",
        status.hosts - status.down - status.unreachable,
        status.down,
        status.unreachable,
        count(Level::Critical),
        count(Level::Warning),
        count(Level::Unknown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_ours_only_when_its_pid_is() {
        let second = Some(Duration::from_secs(1));
        assert_eq!(watchdog_from(Some("1000000"), None, 7), second);
        assert_eq!(watchdog_from(Some("1000000"), Some("7"), 7), second);
        assert_eq!(watchdog_from(Some("1000000"), Some("8"), 7), None, "another process's watchdog");
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
    }

    #[test]
    fn relative_paths_are_refused_and_abstract_names_taken() {
        assert!(open("relative/socket".as_ref()).is_err());
        assert!(open("/run/systemd/notify".as_ref()).is_ok());
        assert!(open("@hbd-test".as_ref()).is_ok());
    }

    #[test]
    fn status_lines_count_hosts_and_alerts() {
        let status =
            CoreStatus { hosts: 6, down: 2, unreachable: 1, alerts: [(Level::Critical, 3)].into_iter().collect() };
        assert_eq!(
            status_line(&status),
            "hosts: 3 up, 2 down, 1 unreachable; alerts: 3 critical, 0 warning, 0 unknown"
        );
    }

    /// Pings follow proofs of life no faster than half the watchdog
    /// interval; the status goes out only when it changed.
    #[test]
    fn pings_and_status_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("hbd-systemd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (socket, address) = open(path.as_os_str()).unwrap();
        let mut systemd = Systemd {
            socket,
            address,
            ping_every: Some(Duration::from_secs(3600)),
            last_ping: None,
            last_status: String::new(),
            warned: false,
        };
        let receive = || {
            let mut buf = [0; 512];
            let n = listener.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        systemd.ready();
        assert!(receive().starts_with("READY=1\n"));
        let status = CoreStatus { hosts: 1, down: 0, unreachable: 0, alerts: Default::default() };
        systemd.alive(&status);
        assert_eq!(
            receive(),
            "WATCHDOG=1\nSTATUS=hosts: 1 up, 0 down, 0 unreachable; alerts: 0 critical, 0 warning, 0 unknown"
        );
        // Not due, unchanged: nothing is sent; changed: only the status.
        systemd.alive(&status);
        systemd.alive(&CoreStatus { down: 1, ..status });
        assert_eq!(receive(), "STATUS=hosts: 0 up, 1 down, 0 unreachable; alerts: 0 critical, 0 warning, 0 unknown");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
