//! The core thread: the one owner of the host table.
//!
//! Receives [`Inbound`] heartbeats from `udp`, wakes once a second to find hosts
//! that fell silent, and sends what it decides: [`Event`]s to the journal and
//! the log, snapshots of the table to the `state` writer. It does no I/O and
//! never blocks on a slow peer except the journal, which may not lose lines.
//!
//! The transition rules live in [`HostTable`], which takes the time as an
//! argument so they are unit-tested without clocks or sleeps.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{select, tick, Receiver, Sender, TrySendError};
use log::{info, warn};
use serde::{Deserialize, Serialize};

use crate::config::CoreSettings;
use crate::journal::JournalMsg;
use crate::state::StateMsg;

/// How often the core looks for hosts that fell silent.
const TICK: Duration = Duration::from_secs(1);

/// What the core receives.
#[derive(Debug)]
pub enum Inbound {
    /// An accepted heartbeat from `udp`.
    Heartbeat(Heartbeat),
}

#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub name: String,
    pub source: SocketAddr,
    pub interval: f64,
    pub received_at: SystemTime,
    /// Timestamp of the signed envelope, kept so replay protection survives a restart.
    pub signed_at_us: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Up,
    Down,
}

/// Everything hbd knows about one host. Times are seconds since the Unix
/// epoch, as in the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub interval: f64,
    pub first_seen: f64,
    pub last_seen: f64,
    pub count: u64,
    pub status: Status,
    pub status_since: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_signed_us: Option<u64>,
}

/// A change in what hbd knows about a host; later components (notifier, DNS,
/// WebSocket) act on these.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// First heartbeat ever from this host.
    HostNew { name: String, address: SocketAddr },
    /// A down host sent a heartbeat again.
    HostUp {
        name: String,
        address: SocketAddr,
        down_for: f64,
    },
    /// Nothing heard for longer than the host's interval plus `grace`.
    HostDown {
        name: String,
        last_seen: f64,
        silent_for: f64,
    },
    /// The heartbeat came from another IP address than the last one.
    AddressChanged {
        name: String,
        old: IpAddr,
        new: IpAddr,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Event::HostNew { name, address } => write!(f, "new host {name} at {}", address.ip()),
            Event::HostUp {
                name,
                address,
                down_for,
            } => {
                write!(
                    f,
                    "host {name} is up at {} after {down_for:.0} s down",
                    address.ip()
                )
            }
            Event::HostDown {
                name, silent_for, ..
            } => write!(f, "host {name} is down, silent for {silent_for:.0} s"),
            Event::AddressChanged { name, old, new } => {
                write!(f, "host {name} moved from {old} to {new}")
            }
        }
    }
}

pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The host table and its transition rules.
#[derive(Debug)]
pub struct HostTable {
    hosts: HashMap<String, Host>,
    grace: f64,
    /// When this run started: a host restored from the state file gets its
    /// full interval plus grace from here before it can be declared down.
    started: f64,
}

impl HostTable {
    pub fn new(hosts: Vec<Host>, grace: Duration, started: f64) -> HostTable {
        let hosts = hosts.into_iter().map(|h| (h.name.clone(), h)).collect();
        HostTable {
            hosts,
            grace: grace.as_secs_f64(),
            started,
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }

    pub fn snapshot(&self) -> Vec<Host> {
        self.hosts.values().cloned().collect()
    }

    /// Records a heartbeat; pushes the events it causes onto `events`.
    pub fn heartbeat(&mut self, hb: Heartbeat, events: &mut Vec<Event>) {
        let now = unix_seconds(hb.received_at);
        let Some(host) = self.hosts.get_mut(&hb.name) else {
            events.push(Event::HostNew {
                name: hb.name.clone(),
                address: hb.source,
            });
            let host = Host {
                name: hb.name.clone(),
                address: hb.source.ip(),
                port: hb.source.port(),
                interval: hb.interval,
                first_seen: now,
                last_seen: now,
                count: 1,
                status: Status::Up,
                status_since: now,
                last_signed_us: hb.signed_at_us,
            };
            self.hosts.insert(hb.name, host);
            return;
        };
        if host.address != hb.source.ip() {
            events.push(Event::AddressChanged {
                name: hb.name.clone(),
                old: host.address,
                new: hb.source.ip(),
            });
            host.address = hb.source.ip();
        }
        if host.status == Status::Down {
            events.push(Event::HostUp {
                name: hb.name,
                address: hb.source,
                down_for: now - host.status_since,
            });
            host.status = Status::Up;
            host.status_since = now;
        }
        host.port = hb.source.port();
        host.interval = hb.interval;
        host.last_seen = host.last_seen.max(now);
        host.count += 1;
        if hb.signed_at_us > host.last_signed_us {
            host.last_signed_us = hb.signed_at_us;
        }
    }

    /// Marks down every up host silent for longer than its interval plus grace.
    pub fn expire(&mut self, now: f64, events: &mut Vec<Event>) {
        for host in self.hosts.values_mut() {
            let heard = host.last_seen.max(self.started);
            if host.status == Status::Up && now - heard > host.interval + self.grace {
                host.status = Status::Down;
                host.status_since = now;
                events.push(Event::HostDown {
                    name: host.name.clone(),
                    last_seen: host.last_seen,
                    silent_for: now - host.last_seen,
                });
            }
        }
    }
}

/// Where the core sends what it decides.
pub struct CoreOutputs {
    pub to_journal: Option<Sender<JournalMsg>>,
    pub to_state: Sender<StateMsg>,
}

pub fn spawn(
    settings: CoreSettings,
    hosts: Vec<Host>,
    inbox: Receiver<Inbound>,
    outputs: CoreOutputs,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("core".into())
        .spawn(move || {
            let table = HostTable::new(hosts, settings.grace, unix_seconds(SystemTime::now()));
            Core {
                table,
                outputs,
                events: Vec::new(),
            }
            .run(inbox, settings.state_save_interval);
        })
}

struct Core {
    table: HostTable,
    outputs: CoreOutputs,
    /// Reused buffer for the events of one message or tick.
    events: Vec<Event>,
}

impl Core {
    /// Runs until `udp` hangs up (shutdown), then hands the final table to
    /// the state writer.
    fn run(mut self, inbox: Receiver<Inbound>, save_interval: Duration) {
        info!(
            "core: tracking {} hosts from the state file",
            self.table.len()
        );
        let ticker = tick(TICK);
        let mut next_save = Instant::now() + save_interval;
        loop {
            select! {
                recv(inbox) -> msg => match msg {
                    Ok(Inbound::Heartbeat(hb)) => self.handle_heartbeat(hb),
                    Err(_) => break,
                },
                recv(ticker) -> _ => {
                    self.handle_tick();
                    if Instant::now() >= next_save {
                        self.save(false);
                        next_save = Instant::now() + save_interval;
                    }
                },
            }
        }
        self.save(true);
        info!("core: stopped with {} hosts", self.table.len());
    }

    fn handle_heartbeat(&mut self, hb: Heartbeat) {
        let at = unix_seconds(hb.received_at);
        self.table.heartbeat(hb, &mut self.events);
        self.dispatch(at);
    }

    fn handle_tick(&mut self) {
        let now = unix_seconds(SystemTime::now());
        self.table.expire(now, &mut self.events);
        self.dispatch(now);
    }

    fn dispatch(&mut self, at: f64) {
        for event in self.events.drain(..) {
            info!("core: {event}");
            if let Some(journal) = &self.outputs.to_journal {
                // Blocking on purpose: the journal may not lose lines.
                let _ = journal.send(JournalMsg::Event { at, event });
            }
        }
    }

    /// Periodic saves are skipped while the writer is still busy with the last
    /// one (a stalled disk must not stall the core); the final one waits.
    fn save(&mut self, last: bool) {
        let msg = StateMsg::Save(self.table.snapshot());
        if last {
            if self.outputs.to_state.send(msg).is_err() {
                warn!("core: state writer is gone; final state not saved");
            }
        } else if let Err(TrySendError::Disconnected(_)) = self.outputs.to_state.try_send(msg) {
            warn!("core: state writer is gone; state not saved");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(name: &str, ip: &str, at: f64) -> Heartbeat {
        Heartbeat {
            name: name.into(),
            source: SocketAddr::new(ip.parse().unwrap(), 40000),
            interval: 10.0,
            received_at: UNIX_EPOCH + Duration::from_secs_f64(at),
            signed_at_us: None,
        }
    }

    fn table() -> HostTable {
        HostTable::new(Vec::new(), Duration::from_secs(5), 1000.0)
    }

    #[test]
    fn first_heartbeat_creates_an_up_host() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev);
        assert!(matches!(&ev[..], [Event::HostNew { name, .. }] if name == "a"));
        let h = t.get("a").unwrap();
        assert_eq!(
            (h.status, h.count, h.first_seen, h.last_seen),
            (Status::Up, 1, 1000.0, 1000.0)
        );
    }

    #[test]
    fn silence_beyond_interval_plus_grace_means_down_and_a_heartbeat_means_up() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev);
        ev.clear();
        t.expire(1015.0, &mut ev);
        assert!(ev.is_empty(), "interval 10 + grace 5 not yet exceeded");
        t.expire(1015.5, &mut ev);
        assert!(matches!(&ev[..], [Event::HostDown { silent_for, .. }] if *silent_for == 15.5));
        ev.clear();
        t.expire(1100.0, &mut ev);
        assert!(ev.is_empty(), "down is reported once");
        t.heartbeat(hb("a", "10.0.0.1", 1200.0), &mut ev);
        assert!(matches!(&ev[..], [Event::HostUp { down_for, .. }] if *down_for == 184.5));
        assert_eq!(t.get("a").unwrap().count, 2);
    }

    #[test]
    fn address_change_is_an_event_port_change_is_not() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev);
        ev.clear();
        let mut other_port = hb("a", "10.0.0.1", 1001.0);
        other_port.source.set_port(1);
        t.heartbeat(other_port, &mut ev);
        assert!(ev.is_empty());
        t.heartbeat(hb("a", "2001:db8::1", 1002.0), &mut ev);
        assert!(
            matches!(&ev[..], [Event::AddressChanged { new, .. }] if new.to_string() == "2001:db8::1")
        );
    }

    #[test]
    fn restored_hosts_get_a_fresh_deadline_from_start() {
        let mut t = table();
        let mut ev = Vec::new();
        t.heartbeat(hb("a", "10.0.0.1", 500.0), &mut ev);
        let mut restarted = HostTable::new(t.snapshot(), Duration::from_secs(5), 1000.0);
        ev.clear();
        restarted.expire(1010.0, &mut ev);
        assert!(
            ev.is_empty(),
            "silent during hbd's own downtime is not down yet"
        );
        restarted.expire(1016.0, &mut ev);
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn late_heartbeat_does_not_move_last_seen_back_and_signed_time_only_grows() {
        let (mut t, mut ev) = (table(), Vec::new());
        let mut first = hb("a", "10.0.0.1", 1000.0);
        first.signed_at_us = Some(9);
        t.heartbeat(first, &mut ev);
        t.heartbeat(hb("a", "10.0.0.1", 999.0), &mut ev);
        let h = t.get("a").unwrap();
        assert_eq!((h.last_seen, h.last_signed_us), (1000.0, Some(9)));
    }
}
