//! The messages that cross threads: one enum per channel (each component
//! has exactly one inbound enum), with its channel's capacity and what its
//! senders do when it is full or its receiver is gone. ARCHITECTURE.md's
//! channel table is this file; `server::run` makes the channels with these
//! capacities. Capacities are in messages; udp's carry batches of up to 319
//! heartbeats, or 127 messages with plugin data (`udp::HAND_OVER_AT`). A
//! bounded channel allocates all its slots up front: they are idle memory.
//!
//! Payload types that are data rather than messages (hosts, events, alerts,
//! the stats components report) live in `model`; the plugin store's types
//! in `store`. This module imports no component, and every component may
//! import it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{bounded, Sender};
use log::warn;

use crate::server::host_filter::{HostFilter, HostPage};
use crate::server::model::{
    Alert, AlertChange, AlertKey, AlertList, DnsOutcome, DnsStats, Event, Heartbeat, Host, JournalStats, Level,
    NotifyReport, PluginSeries, Sample, ServiceStats, Silence, UdpStats,
};
use crate::server::silence::{Held, NewSilence, SilenceList};
use crate::server::store::{LatestData, Layout, Record};
use crate::wire::PluginKind;

// ── core: its inbox and its queries ──────────────────────────────────────

/// udp, ws hub, journal, notify, dns, parent → core. Full: udp blocks and
/// the kernel's socket buffer takes the burst (its once-a-second counters,
/// like the journal's stats, are skipped instead: the next carry the same
/// totals); the hub waits up to 5 s; dns and notify wait. The core only does
/// in-memory work, so this clears in microseconds.
/// Disconnected: core saves state and exits (it normally ends on
/// `Shutdown`, since the hub holds a sender too).
pub const CORE_CAPACITY: usize = 64;

/// Everything the core is told that is not a question.
#[derive(Debug)]
pub enum CoreMsg {
    /// Accepted messages from `udp`, in arrival order (batched: see `udp::HOLD`).
    Heartbeats(Vec<Heartbeat>),
    /// `udp`'s counters, sent once a second when they changed.
    UdpStats(UdpStats),
    /// From the journal: its totals of dropped lines and failed writes,
    /// sent once a second when they changed (for `/metrics`).
    JournalStats(JournalStats),
    /// From the ws hub: how many browsers watch live updates now. Updates
    /// are prepared and sent only while some do.
    LiveClients(usize),
    /// From the notifier: a delivery attempt's outcome, to be journaled.
    Notified(NotifyReport),
    /// From the notifier: its counters, when they change.
    NotifyStats(Vec<ServiceStats>),
    /// From the alertmanager thread: its counters (service `alertmanager`).
    AlertmanagerStats(ServiceStats),
    /// From `dns`: how one update of `name.domain` to `address` ended.
    DnsResult { name: String, domain: String, address: IpAddr, outcome: DnsOutcome },
    /// From `dns`: how removing the records of a forgotten host ended.
    DnsRemoved { name: String, domain: String, outcome: DnsOutcome },
    /// From the parent once `udp` has stopped: send the final snapshot and end.
    /// (The inbox has several senders, so it cannot end by disconnection.)
    Shutdown,
}

/// http, ws → core. Full: the request waits (up to 5 s, then 503); queries
/// are answered in microseconds, so this only fills if the core is stuck.
/// Disconnected: core has stopped; the requester answers 503.
pub const QUERY_CAPACITY: usize = 64;

/// How long a requester waits for the core to take and to answer a query.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// What others (`http`, `ws`) ask the core. Each carries a channel of
/// capacity 1 for the answer, so answering never blocks the core. Ask with [`ask`].
#[derive(Debug)]
pub enum Query {
    /// Every host; plugins listed by kind, without samples.
    Hosts(Sender<Vec<Host>>),
    /// The page of hosts a filter selects, as `Hosts` shows them.
    HostPage { filter: HostFilter, reply: Sender<HostPage> },
    /// One host with its plugins' latest samples.
    Host { name: String, reply: Sender<Option<Host>> },
    /// One plugin's newest `limit` samples: None for an unknown host,
    /// Some(None) for an unknown plugin.
    History { name: String, plugin: String, limit: usize, reply: Sender<Option<Option<PluginSeries>>> },
    /// How many hosts there are (`/healthz`).
    HostCount(Sender<usize>),
    /// What `/metrics` shows; without `plugin_data` (`?plugins=none`), no
    /// plugin data: at 100,000 hosts that is most of a ~550 MiB answer.
    Metrics { plugin_data: bool, reply: Sender<MetricsSnapshot> },
    /// Alert states: with a host, all of that host's (None for an unknown
    /// host); without, every alert that is not OK. Worst first.
    Alerts { host: Option<String>, reply: Sender<Option<AlertList>> },
    /// Forget a host (an admin's write, `by` the token's name), and with
    /// `dns` remove its records too: false when hbd does not know it.
    Forget { name: String, by: String, dns: bool, reply: Sender<bool> },
    /// Acknowledge an alert (`comment` Some) or remove its acknowledgement
    /// (None), an admin's write `by` the token's name: the alert as it is
    /// then, or why not.
    Ack { key: AlertKey, by: String, comment: Option<String>, reply: Sender<Result<Alert, AckRefused>> },
    /// Add a silence (checked by `silence::parse_new`): the silence made.
    /// None when [`MAX_SILENCES`] are not yet ended.
    AddSilence { silence: NewSilence, reply: Sender<Option<Silence>> },
    /// The silences not ended and the maintenance windows.
    Silences(Sender<SilenceList>),
    /// End a silence early, `by` the token's name: None for an unknown id.
    EndSilence { id: String, by: String, reply: Sender<Option<Silence>> },
}

/// Silences not ended that hbd keeps at most: each alert change is looked
/// up in all of them, on the core thread.
pub const MAX_SILENCES: usize = 10_000;

/// Why an acknowledgement (or its removal) was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckRefused {
    UnknownHost,
    /// The host has no such alert.
    UnknownAlert,
    /// The alert is OK: there is nothing to acknowledge.
    IsOk,
    /// Removing: the alert is not acknowledged.
    NotAcknowledged,
}

/// The figures `/metrics` exports, gathered in one turn of the core.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// Without plugin data, sorted by name.
    pub hosts: Vec<Host>,
    /// Each plugin's latest data, by host and plugin name; None when not asked for.
    pub plugins: Option<LatestData>,
    pub udp: UdpStats,
    pub inbound_queue: usize,
    pub journal_queue: usize,
    pub dropped_hosts: u64,
    pub dropped_plugins: u64,
    pub ws_dropped: u64,
    /// What the journal could not write.
    pub journal: JournalStats,
    /// Every alert state, worst first.
    pub alerts: Vec<Alert>,
    pub notify: Vec<ServiceStats>,
    /// Alert changes the notifier could not take (it was stuck).
    pub notify_dropped: u64,
    pub dns: DnsStats,
    /// Silences holding now, and those still to come.
    pub silences_active: usize,
    pub silences_pending: usize,
}

/// The core did not take or answer a query within [`ASK_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnswering;

impl std::fmt::Display for NotAnswering {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("hbd's core is not answering")
    }
}

/// Sends a query built around a fresh reply channel and waits for the
/// answer: the one round trip `http` and `ws` share.
pub fn ask<T>(to_core: &Sender<Query>, query: impl FnOnce(Sender<T>) -> Query) -> Result<T, NotAnswering> {
    let (reply, answer) = bounded(1);
    to_core.send_timeout(query(reply), ASK_TIMEOUT).map_err(|_| NotAnswering)?;
    answer.recv_timeout(ASK_TIMEOUT).map_err(|_| {
        warn!("core did not answer a query within {ASK_TIMEOUT:?}");
        NotAnswering
    })
}

// ── journal ───────────────────────────────────────────────────────────────

/// udp, core → journal. Full: senders block, because no line may be lost;
/// a slow disk thereby shows as kernel drops on the UDP socket, counted there.
/// 64 of udp's batches are up to 20,416 messages waiting in memory, about
/// the 256 slots of up to 64 each before batches grew (`udp::HOLD`).
/// Disconnected: the journal flushes what it holds and exits.
pub const JOURNAL_CAPACITY: usize = 64;

/// What the journal receives.
#[derive(Debug)]
pub enum JournalMsg {
    /// Messages accepted by `udp`, in arrival order (batched: see `udp::HOLD`).
    Received(ReceivedBatch),
    /// A state change decided by `core`.
    Event { at: f64, event: Event },
    /// Reopen the file after an outside rotation (SIGHUP from logrotate).
    Reopen,
}

/// Messages accepted by `udp`, each as compact JSON. Their texts share one
/// buffer, so a batch costs two allocations however many messages it holds
/// (the udp thread makes none per datagram).
#[derive(Debug, Default)]
pub struct ReceivedBatch {
    text: Vec<u8>,
    /// When and from where each message came, and where its text ends.
    entries: Vec<(SystemTime, SocketAddr, usize)>,
}

impl ReceivedBatch {
    pub fn with_capacity(messages: usize, bytes: usize) -> ReceivedBatch {
        ReceivedBatch { text: Vec::with_capacity(bytes), entries: Vec::with_capacity(messages) }
    }

    pub fn push(&mut self, at: SystemTime, source: SocketAddr, json: &[u8]) {
        self.text.extend_from_slice(json);
        self.entries.push((at, source, self.text.len()));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each message with when and from where it came, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (SystemTime, SocketAddr, &[u8])> {
        let mut start = 0;
        self.entries.iter().map(move |&(at, source, end)| {
            let json = &self.text[start..end];
            start = end;
            (at, source, json)
        })
    }
}

// ── dns ───────────────────────────────────────────────────────────────────

/// core → dns. Full: core keeps the host and offers it again each tick (the
/// worker coalesces per record, so nothing is lost and nothing waits).
/// Disconnected: dns kills its running nsupdates and ends; what was not confirmed stays pending in the state file.
pub const DNS_CAPACITY: usize = 256;

/// What the dns thread receives.
#[derive(Debug)]
pub enum DnsMsg {
    /// Point `name.domain` at `address` for each of `domains` (some of
    /// `dyndomains`). Replaces an update of the same record that is still
    /// waiting: only the newest address matters.
    Update { name: String, address: IpAddr, domains: Vec<String> },
    /// Remove the A and AAAA records of `name.domain` for each of `domains`
    /// (the host was forgotten). Replaces a waiting update of the same record.
    Remove { name: String, domains: Vec<String> },
}

// ── notify ────────────────────────────────────────────────────────────────

/// core → notify, one message per turn of core that changed alerts, so
/// that a mass outage (100,000 hosts down in one tick) takes one slot.
/// Full: core drops the turn's alert changes and counts them; the notifier
/// only groups and queues on its thread, so this fills only if it is stuck.
/// Disconnected: the notifier closes its group window into the queue file, waits up to 3 s for deliveries under way, and exits.
pub const NOTIFY_CAPACITY: usize = 256;

/// What the notifier receives.
#[derive(Debug)]
pub enum NotifyMsg {
    /// Alerts that changed level or remind, in one turn of core (at `at`,
    /// Unix seconds), each with its host's tags then, for the services'
    /// `tags` routes.
    Alerts { at: f64, changes: Vec<(AlertChange, Vec<String>)> },
}

// ── alertmanager ──────────────────────────────────────────────────────────

/// core → alertmanager, on the tick after alerts changed (only with an
/// `alertmanager:` block). Full: the core keeps its "changed" mark and
/// offers the newer list at the next tick (each list is the whole state,
/// so nothing is lost). Disconnected: the thread ends.
pub const ALERTMANAGER_CAPACITY: usize = 4;

/// What the alertmanager thread receives.
#[derive(Debug)]
pub enum AlertmanagerMsg {
    /// Every alert that is not OK, at `at` (held ones marked).
    Alerts { at: f64, alerts: Vec<Alert> },
}

// ── state ─────────────────────────────────────────────────────────────────

/// core → state. Full: the core owes that periodic save to the next tick
/// (as it does while one is at work); the final save at shutdown waits.
/// Disconnected: state exits after writing the newest snapshot.
pub const STATE_CAPACITY: usize = 1;

/// What the state writer receives.
#[derive(Debug)]
pub enum StateMsg {
    /// Write this snapshot of what core knows (its records asked for).
    Save(Snapshot),
    /// The last snapshot, at shutdown, its records taken: written with every core.
    Final(Snapshot),
}

impl StateMsg {
    /// The snapshot, and whether it is the last.
    pub fn into_parts(self) -> (Snapshot, bool) {
        match self {
            StateMsg::Save(snapshot) => (snapshot, false),
            StateMsg::Final(snapshot) => (snapshot, true),
        }
    }
}

/// What a save writes: what core knows when the save starts, and its
/// records.
#[derive(Debug)]
pub struct Snapshot {
    /// Shared with core's alert table, one list per host (see [`Saved`]).
    pub alerts: Vec<Arc<Vec<Alert>>>,
    pub silences: Vec<Silence>,
    pub silence_held: Vec<Held>,
    pub records: Records,
}

/// A snapshot of every record, for tests (and a test's final save, back).
#[cfg(test)]
impl From<Saved> for Snapshot {
    fn from(saved: Saved) -> Snapshot {
        let Saved { hosts, alerts, silences, silence_held } = saved;
        Snapshot { alerts, silences, silence_held, records: Records::Taken(hosts) }
    }
}

#[cfg(test)]
impl From<Snapshot> for Saved {
    fn from(snapshot: Snapshot) -> Saved {
        let Snapshot { alerts, silences, silence_held, records } = snapshot;
        let Records::Taken(hosts) = records else { panic!("a periodic save's records are asked for") };
        Saved { hosts, alerts, silences, silence_held }
    }
}

/// The hosts of a [`Snapshot`].
#[derive(Debug)]
pub enum Records {
    /// Every record, taken from core's table: the final save's (core ends
    /// next) and tests'.
    Taken(Vec<Arc<Record>>),
    /// A periodic save's: asked from core a piece at a time, as the writer
    /// gets to them, so that core shares a record with the writer for
    /// milliseconds, not for a save of seconds: core copies a record that
    /// changes while shared, and the copies, freed among blocks that stay,
    /// leave holes in its heap.
    Asked(RecordsFromCore),
}

/// A periodic save's way to core's records: the hosts there were when it
/// started. A host forgotten meanwhile is still given, as it was when
/// forgotten (core keeps it until the save ends, when this is dropped); a
/// host new since the save started is in the next one.
#[derive(Debug)]
pub struct RecordsFromCore {
    /// In no order: the writer sorts them on its own thread, not core
    /// (100,000 names take milliseconds to sort, and core answers queries).
    pub names: Vec<String>,
    /// Every layout core's blocks had when the save started: the file
    /// lists them before any block. A block made since with a new layout
    /// holds only samples newer than the save, and is left out.
    pub layouts: Vec<Arc<Layout>>,
    pub asks: Sender<RecordsWanted>,
}

/// state → core, one channel per periodic save. Zero: an ask is taken by
/// core or fails because core has ended; it never waits in a queue that
/// nobody reads (the writer would wait for its answer forever).
/// Disconnected: by state when the save ends (core lets the forgotten
/// hosts go); by core when it ends (the save fails, and the final one is
/// written).
pub const RECORDS_WANTED_CAPACITY: usize = 0;

/// The records of `names`, some of the save's, in their order.
#[derive(Debug)]
pub struct RecordsWanted {
    pub names: Vec<String>,
    pub reply: Sender<Vec<Arc<Record>>>,
}

/// What hbd keeps across restarts, as the state file gives it back at
/// start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    /// Shared with core's table from then on (see `HostTable`).
    pub hosts: Vec<Arc<Record>>,
    /// Alert states, so that a restart does not fire them again: in
    /// lists shared with core's alert table, one per host (a loaded
    /// file's come as one list), for the reason the records are shared.
    pub alerts: Vec<Arc<Vec<Alert>>>,
    /// Silences not ended, so that a restart keeps holding.
    pub silences: Vec<Silence>,
    /// The level each alert held by a silence was last notified at.
    pub silence_held: Vec<Held>,
}

// ── ws: the hub's updates and the HTTP front's upgrades ───────────────────

/// core → ws. Full: the core drops the update and counts it
/// (`hbd_ws_updates_dropped_total`): live views must not slow monitoring.
/// Disconnected: the hub stops and drops every client's queue.
pub const WS_CAPACITY: usize = 1024;

/// What `core` tells the hub.
#[derive(Debug)]
pub enum Update {
    /// A heartbeat (or plugin data) arrived; the host without plugin data
    /// (boxed: a host is several times larger than the other updates).
    Heartbeat(Box<Host>),
    /// A host changed state.
    Event { at: f64, event: Event },
    /// A plugin sample arrived.
    Plugin { host: String, plugin: String, kind: PluginKind, sample: Sample },
    /// More than [`BATCH_ABOVE`] updates of one turn of the core (a mass
    /// outage, a large heartbeat batch), in order: one slot here, one
    /// message and one queue slot per browser, so a burst drops nobody.
    Batch(Vec<Update>),
}

/// A turn of the core with more updates than this sends them as one
/// [`Update::Batch`]; fewer go one by one.
pub const BATCH_ABOVE: usize = 32;

/// http-front → ws acceptor: `/ws` connections on the HTTP port. Full: the
/// front answers 503 (the acceptor takes one within 200 ms at worst).
/// Disconnected: the front answers 503.
pub const UPGRADE_CAPACITY: usize = 16;

/// A connection that asked for a WebSocket on `/ws`, with the bytes of its
/// request read so far, for the ws acceptor to answer.
#[derive(Debug)]
pub struct Upgraded {
    pub stream: TcpStream,
    pub head: Vec<u8>,
    pub peer: SocketAddr,
}

// ── parent: the core's proof of life ──────────────────────────────────────

/// core → parent, once a tick, only under systemd (`$NOTIFY_SOCKET`). Full:
/// the core skips it (the parent has not read the last one yet; the next is
/// as good). The parent pings systemd's watchdog only when one arrives, so a
/// core that stops turning is restarted (systemd.rs).
/// Disconnected: the core has ended; the parent is shutting down.
pub const ALIVE_CAPACITY: usize = 1;

/// What the core counts, for `systemctl status hbd`.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreStatus {
    pub hosts: usize,
    pub down: usize,
    pub unreachable: usize,
    /// Alerts counted as in `/api/0/alerts`' summary.
    pub alerts: BTreeMap<Level, usize>,
}
