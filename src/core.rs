//! The core thread: the one owner of the host table.
//!
//! Receives [`Inbound`] heartbeats from `udp`, wakes once a second to find hosts
//! that fell silent, and sends what it decides: [`Event`]s to the journal and
//! the log, snapshots of the table to the `state` writer. It does no I/O and
//! never blocks on a slow peer except the journal, which may not lose lines.
//!
//! The transition rules live in [`HostTable`], which takes the time as an
//! argument so they are unit-tested without clocks or sleeps.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{never, select, tick, Receiver, Sender, TrySendError};
use log::{info, warn};
use serde::{Deserialize, Serialize};

use crate::config::CoreSettings;
use crate::journal::JournalMsg;
use crate::protocol::PluginKind;
use crate::state::StateMsg;
use crate::ws::Update;

/// How often the core looks for hosts that fell silent.
const TICK: Duration = Duration::from_secs(1);

/// What the core receives from `udp`.
#[derive(Debug)]
pub enum Inbound {
    /// Accepted heartbeats from `udp`, in arrival order (batched: see `udp::BATCH`).
    Heartbeats(Vec<Heartbeat>),
    /// `udp`'s counters, sent once a second when they changed.
    Stats(UdpStats),
}

/// What `udp` counted since it started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UdpStats {
    pub received: u64,
    /// Indexed by `RejectReason::index()`.
    pub rejected: Vec<u64>,
    pub dropped_plugins: u64,
}

/// What others (`http`) ask the core. Each carries a channel of capacity 1
/// for the answer, so answering never blocks the core.
#[derive(Debug)]
pub enum Query {
    /// Every host; plugins listed by kind, without samples.
    Hosts(Sender<Vec<Host>>),
    /// One host with its plugins' latest samples.
    Host { name: String, reply: Sender<Option<Host>> },
    /// One plugin's newest `limit` samples: None for an unknown host,
    /// Some(None) for an unknown plugin.
    History { name: String, plugin: String, limit: usize, reply: Sender<Option<Option<PluginSeries>>> },
    /// How many hosts there are (`/healthz`).
    HostCount(Sender<usize>),
    /// What `/metrics` shows.
    Metrics(Sender<MetricsSnapshot>),
    /// From the ws hub: how many browsers watch live updates now. Updates
    /// are prepared and sent only while some do.
    LiveClients(usize),
}

/// The figures `/metrics` exports, gathered in one turn of the core.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// With their plugins' latest samples.
    pub hosts: Vec<Host>,
    pub udp: UdpStats,
    pub inbound_queue: usize,
    pub journal_queue: usize,
    pub dropped_hosts: u64,
    pub dropped_plugins: u64,
    pub ws_dropped: u64,
}

#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub name: String,
    pub source: SocketAddr,
    pub interval: f64,
    pub received_at: SystemTime,
    /// Timestamp of the signed envelope, kept so replay protection survives a restart.
    pub signed_at_us: Option<u64>,
    /// False for a message with plugin data only (`PLG`): a sign of life,
    /// but not counted as a heartbeat.
    pub counts: bool,
    pub latency_ms: Option<f64>,
    pub plugins: Vec<PluginSample>,
}

/// A JSON value kept as its compact text: cheap to keep, to share between
/// the store and snapshots, and to send on as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Json(Arc<str>);

impl From<Arc<str>> for Json {
    fn from(text: Arc<str>) -> Json {
        Json(text)
    }
}

impl Json {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        let raw: Box<serde_json::value::RawValue> = Deserialize::deserialize(deserializer)?;
        Ok(Json(Arc::from(raw.get())))
    }
}

/// One plugin's report inside a message, checked by `protocol`.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSample {
    pub name: String,
    pub kind: PluginKind,
    /// When the client took the sample (Unix seconds, client's clock).
    pub at: f64,
    /// The plugin's data object, or None when it reported `error`.
    pub data: Option<Json>,
    pub error: Option<String>,
}

/// What hbd keeps of one plugin of one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginSeries {
    pub kind: PluginKind,
    /// Oldest first; an info plugin keeps only its latest sample.
    pub samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: f64,
    /// When hbd received it.
    pub received: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    /// The client's last measured round trip to hbd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<String, PluginSeries>,
}

impl Host {
    /// A copy whose plugin series hold only their newest `keep` samples:
    /// what queries need, without copying whole histories.
    pub fn with_newest(&self, keep: usize) -> Host {
        let plugins = self
            .plugins
            .iter()
            .map(|(name, series)| {
                let skip = series.samples.len().saturating_sub(keep);
                let samples = series.samples.iter().skip(skip).cloned().collect();
                (name.clone(), PluginSeries { kind: series.kind, samples })
            })
            .collect();
        Host { plugins, ..self.clone_without_plugins() }
    }

    fn clone_without_plugins(&self) -> Host {
        Host {
            name: self.name.clone(),
            address: self.address,
            port: self.port,
            interval: self.interval,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            count: self.count,
            status: self.status,
            status_since: self.status_since,
            last_signed_us: self.last_signed_us,
            latency_ms: self.latency_ms,
            plugins: BTreeMap::new(),
        }
    }
}

/// A change in what hbd knows about a host; later components (notifier, DNS,
/// WebSocket) act on these.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// First heartbeat ever from this host.
    HostNew { name: String, address: SocketAddr },
    /// A down host sent a heartbeat again.
    HostUp { name: String, address: SocketAddr, down_for: f64 },
    /// Nothing heard for longer than the host's interval plus `grace`.
    HostDown { name: String, last_seen: f64, silent_for: f64 },
    /// The heartbeat came from another IP address than the last one.
    AddressChanged { name: String, old: IpAddr, new: IpAddr },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Event::HostNew { name, address } => write!(f, "new host {name} at {}", address.ip()),
            Event::HostUp { name, address, down_for } => {
                write!(f, "host {name} is up at {} after {down_for:.0} s down", address.ip())
            }
            Event::HostDown { name, silent_for, .. } => write!(f, "host {name} is down, silent for {silent_for:.0} s"),
            Event::AddressChanged { name, old, new } => {
                write!(f, "host {name} moved from {old} to {new}")
            }
        }
    }
}

pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The host table and its transition rules.
#[derive(Debug)]
pub struct HostTable {
    hosts: HashMap<String, Host>,
    grace: f64,
    max_hosts: usize,
    plugin_history: usize,
    max_plugins_per_host: usize,
    /// Plugin samples refused because their host has too many plugins.
    pub dropped_plugins: u64,
    /// Messages from new hosts refused because the table is full.
    pub dropped_hosts: u64,
    /// When this run started: a host restored from the state file gets its
    /// full interval plus grace from here before it can be declared down.
    started: f64,
}

impl HostTable {
    pub fn new(hosts: Vec<Host>, settings: &CoreSettings, started: f64) -> HostTable {
        let hosts = hosts.into_iter().map(|h| (h.name.clone(), h)).collect();
        HostTable {
            hosts,
            grace: settings.grace.as_secs_f64(),
            max_hosts: settings.max_hosts,
            plugin_history: settings.plugin_history,
            max_plugins_per_host: settings.max_plugins_per_host,
            dropped_plugins: 0,
            dropped_hosts: 0,
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

    /// Hosts sorted by name, each series cut to its newest `keep` samples.
    pub fn hosts_with(&self, keep: usize) -> Vec<Host> {
        let mut hosts: Vec<Host> = self.hosts.values().map(|h| h.with_newest(keep)).collect();
        hosts.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        hosts
    }

    /// Records a heartbeat (or plugin data); pushes the events it causes onto `events`.
    pub fn heartbeat(&mut self, hb: Heartbeat, events: &mut Vec<Event>) {
        let now = unix_seconds(hb.received_at);
        let full = self.hosts.len() >= self.max_hosts;
        let (history, max_plugins) = (self.plugin_history, self.max_plugins_per_host);
        // One lookup: heartbeats from known hosts are nearly all of them.
        let host = match self.hosts.entry(hb.name) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(_) if full => {
                self.dropped_hosts += 1;
                return;
            }
            Entry::Vacant(new) => {
                events.push(Event::HostNew { name: new.key().clone(), address: hb.source });
                let name = new.key().clone();
                new.insert(Host {
                    name,
                    address: hb.source.ip(),
                    port: hb.source.port(),
                    interval: hb.interval,
                    first_seen: now,
                    last_seen: now,
                    count: 0,
                    status: Status::Up,
                    status_since: now,
                    last_signed_us: None,
                    latency_ms: None,
                    plugins: BTreeMap::new(),
                })
            }
        };
        if host.address != hb.source.ip() {
            events.push(Event::AddressChanged { name: host.name.clone(), old: host.address, new: hb.source.ip() });
            host.address = hb.source.ip();
        }
        if host.status == Status::Down {
            events.push(Event::HostUp {
                name: host.name.clone(),
                address: hb.source,
                down_for: now - host.status_since,
            });
            host.status = Status::Up;
            host.status_since = now;
        }
        host.port = hb.source.port();
        host.last_seen = host.last_seen.max(now);
        if hb.counts {
            host.interval = hb.interval;
            host.count += 1;
        }
        if hb.signed_at_us > host.last_signed_us {
            host.last_signed_us = hb.signed_at_us;
        }
        if hb.latency_ms.is_some() {
            host.latency_ms = hb.latency_ms;
        }
        for sample in hb.plugins {
            if !host.plugins.contains_key(&sample.name) && host.plugins.len() >= max_plugins {
                self.dropped_plugins += 1;
                continue;
            }
            let series = host
                .plugins
                .entry(sample.name)
                .or_insert_with(|| PluginSeries { kind: sample.kind, samples: VecDeque::new() });
            series.kind = sample.kind;
            let keep = if sample.kind == PluginKind::Info { 1 } else { history.max(1) };
            while series.samples.len() >= keep {
                series.samples.pop_front();
            }
            series.samples.push_back(Sample { at: sample.at, received: now, data: sample.data, error: sample.error });
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
    /// Live updates for browsers; full: the update is dropped and counted.
    pub to_ws: Option<Sender<Update>>,
}

pub fn spawn(
    settings: CoreSettings,
    hosts: Vec<Host>,
    inbox: Receiver<Inbound>,
    queries: Receiver<Query>,
    outputs: CoreOutputs,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("core".into()).spawn(move || {
        let table = HostTable::new(hosts, &settings, unix_seconds(SystemTime::now()));
        Core {
            table,
            outputs,
            events: Vec::new(),
            reported_drops: (0, 0),
            last_drop_report: None,
            udp_stats: UdpStats::default(),
            ws_dropped: 0,
            live_clients: 0,
        }
        .run(inbox, queries, settings.state_save_interval);
    })
}

struct Core {
    table: HostTable,
    outputs: CoreOutputs,
    /// Reused buffer for the events of one message or tick.
    events: Vec<Event>,
    /// Refusals (full table, too many plugins) already reported, and when.
    reported_drops: (u64, u64),
    last_drop_report: Option<Instant>,
    udp_stats: UdpStats,
    /// Live updates dropped because the WebSocket hub was behind.
    ws_dropped: u64,
    /// Browsers connected to the ws hub, as it last said.
    live_clients: usize,
}

/// At most one warning about refused hosts or plugins in this long.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(60);

impl Core {
    /// Runs until `udp` hangs up (shutdown), then hands the final table to
    /// the state writer.
    fn run(mut self, inbox: Receiver<Inbound>, mut queries: Receiver<Query>, save_interval: Duration) {
        info!("core: tracking {} hosts from the state file", self.table.len());
        let ticker = tick(TICK);
        let mut next_save = Instant::now() + save_interval;
        loop {
            select! {
                recv(inbox) -> msg => match msg {
                    Ok(Inbound::Heartbeats(batch)) => {
                        for hb in batch {
                            self.handle_heartbeat(hb);
                        }
                    }
                    Ok(Inbound::Stats(stats)) => self.udp_stats = stats,
                    Err(_) => break,
                },
                recv(queries) -> query => match query {
                    Ok(query) => self.handle_query(query, inbox.len()),
                    // No one asks any more (http has stopped): stop listening.
                    Err(_) => queries = never(),
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
        // What live updates need, taken before the table consumes `hb`.
        let watched = (self.live_clients > 0 && self.outputs.to_ws.is_some())
            .then(|| (hb.name.clone(), hb.plugins.iter().map(|p| p.name.clone()).collect::<Vec<_>>()));
        self.table.heartbeat(hb, &mut self.events);
        self.dispatch(at);
        if let Some((name, plugins)) = watched {
            self.publish_heartbeat(&name, plugins);
        }
        let drops = (self.table.dropped_hosts, self.table.dropped_plugins);
        if drops != self.reported_drops && self.last_drop_report.is_none_or(|t| t.elapsed() >= DROP_REPORT_EVERY) {
            warn!(
                "core: refused {} messages from new hosts (max_hosts {} reached) and {} plugin samples (max_plugins_per_host reached) so far",
                drops.0,
                self.table.len(),
                drops.1
            );
            self.reported_drops = drops;
            self.last_drop_report = Some(Instant::now());
        }
    }

    /// Tells browsers about the heartbeat and each plugin sample it carried.
    fn publish_heartbeat(&mut self, name: &str, plugins: Vec<String>) {
        let Some(host) = self.table.get(name) else { return };
        let mut updates = vec![Update::Heartbeat(host.with_newest(0))];
        for plugin in plugins {
            if let Some(series) = host.plugins.get(&plugin) {
                if let Some(sample) = series.samples.back() {
                    updates.push(Update::Plugin {
                        host: name.to_string(),
                        plugin,
                        kind: series.kind,
                        sample: sample.clone(),
                    });
                }
            }
        }
        for update in updates {
            self.publish(update);
        }
    }

    fn publish(&mut self, update: Update) {
        if let Some(ws) = &self.outputs.to_ws {
            if ws.try_send(update).is_err() {
                self.ws_dropped += 1;
            }
        }
    }

    fn handle_query(&mut self, query: Query, inbound_queue: usize) {
        // A requester that gave up has dropped its receiver; nothing to do then.
        match query {
            Query::Hosts(reply) => {
                let _ = reply.send(self.table.hosts_with(0));
            }
            Query::Host { name, reply } => {
                let _ = reply.send(self.table.get(&name.to_ascii_lowercase()).map(|h| h.with_newest(1)));
            }
            Query::History { name, plugin, limit, reply } => {
                let answer = self.table.get(&name.to_ascii_lowercase()).map(|host| {
                    host.plugins.get(&plugin).map(|series| {
                        let skip = series.samples.len().saturating_sub(limit);
                        PluginSeries { kind: series.kind, samples: series.samples.iter().skip(skip).cloned().collect() }
                    })
                });
                let _ = reply.send(answer);
            }
            Query::LiveClients(n) => self.live_clients = n,
            Query::HostCount(reply) => {
                let _ = reply.send(self.table.len());
            }
            Query::Metrics(reply) => {
                let _ = reply.send(MetricsSnapshot {
                    hosts: self.table.hosts_with(1),
                    udp: self.udp_stats.clone(),
                    inbound_queue,
                    journal_queue: self.outputs.to_journal.as_ref().map_or(0, |j| j.len()),
                    dropped_hosts: self.table.dropped_hosts,
                    dropped_plugins: self.table.dropped_plugins,
                    ws_dropped: self.ws_dropped,
                });
            }
        }
    }

    fn handle_tick(&mut self) {
        let now = unix_seconds(SystemTime::now());
        self.table.expire(now, &mut self.events);
        self.dispatch(now);
    }

    fn dispatch(&mut self, at: f64) {
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            info!("core: {event}");
            if self.live_clients > 0 {
                self.publish(Update::Event { at, event: event.clone() });
            }
            if let Some(journal) = &self.outputs.to_journal {
                // Blocking on purpose: the journal may not lose lines.
                let _ = journal.send(JournalMsg::Event { at, event });
            }
        }
        self.events = events;
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
            counts: true,
            latency_ms: None,
            plugins: Vec::new(),
        }
    }

    fn settings() -> CoreSettings {
        CoreSettings {
            grace: Duration::from_secs(5),
            state_save_interval: Duration::from_secs(60),
            max_hosts: 2,
            plugin_history: 3,
            max_plugins_per_host: 2,
        }
    }

    fn sample(name: &str, kind: PluginKind, at: f64) -> PluginSample {
        PluginSample {
            name: name.into(),
            kind,
            at,
            data: Some(Json::from(Arc::<str>::from(format!("{{\"at\":{at}}}")))),
            error: None,
        }
    }

    fn table() -> HostTable {
        HostTable::new(Vec::new(), &settings(), 1000.0)
    }

    #[test]
    fn first_heartbeat_creates_an_up_host() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev);
        assert!(matches!(&ev[..], [Event::HostNew { name, .. }] if name == "a"));
        let h = t.get("a").unwrap();
        assert_eq!((h.status, h.count, h.first_seen, h.last_seen), (Status::Up, 1, 1000.0, 1000.0));
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
        assert!(matches!(&ev[..], [Event::AddressChanged { new, .. }] if new.to_string() == "2001:db8::1"));
    }

    #[test]
    fn restored_hosts_get_a_fresh_deadline_from_start() {
        let mut t = table();
        let mut ev = Vec::new();
        t.heartbeat(hb("a", "10.0.0.1", 500.0), &mut ev);
        let mut restarted = HostTable::new(t.snapshot(), &settings(), 1000.0);
        ev.clear();
        restarted.expire(1010.0, &mut ev);
        assert!(ev.is_empty(), "silent during hbd's own downtime is not down yet");
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

    #[test]
    fn plugin_history_is_bounded_info_keeps_latest_and_hosts_cap_plugins() {
        let (mut t, mut ev) = (table(), Vec::new());
        for i in 0..5 {
            let mut beat = hb("a", "10.0.0.1", 1000.0 + i as f64);
            beat.plugins = vec![sample("cpu", PluginKind::Monitor, i as f64), sample("os", PluginKind::Info, i as f64)];
            t.heartbeat(beat, &mut ev);
        }
        let host = t.get("a").unwrap();
        let cpu: Vec<f64> = host.plugins["cpu"].samples.iter().map(|s| s.at).collect();
        assert_eq!(cpu, [2.0, 3.0, 4.0], "history of 3, oldest first");
        assert_eq!(host.plugins["os"].samples.len(), 1);
        assert_eq!(host.plugins["os"].samples[0].at, 4.0);

        let mut third = hb("a", "10.0.0.1", 1010.0);
        third.plugins = vec![sample("disk", PluginKind::Monitor, 9.0)];
        t.heartbeat(third, &mut ev);
        assert!(!t.get("a").unwrap().plugins.contains_key("disk"), "max 2 plugins per host");
        assert_eq!(t.dropped_plugins, 1);
    }

    #[test]
    fn a_full_table_refuses_new_hosts_but_not_known_ones() {
        let (mut t, mut ev) = (table(), Vec::new());
        for name in ["a", "b", "c"] {
            t.heartbeat(hb(name, "10.0.0.1", 1000.0), &mut ev);
        }
        assert_eq!((t.len(), t.dropped_hosts), (2, 1));
        t.heartbeat(hb("a", "10.0.0.1", 1001.0), &mut ev);
        assert_eq!(t.get("a").unwrap().count, 2);
    }

    #[test]
    fn plugin_only_messages_are_life_but_not_heartbeats() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev);
        let mut plg = hb("a", "10.0.0.1", 1020.0);
        plg.counts = false;
        plg.interval = 999.0;
        plg.latency_ms = Some(0.5);
        t.heartbeat(plg, &mut ev);
        let h = t.get("a").unwrap();
        assert_eq!((h.count, h.interval, h.last_seen, h.latency_ms), (1, 10.0, 1020.0, Some(0.5)));
    }

    #[test]
    fn the_store_survives_serialization() {
        let (mut t, mut ev) = (table(), Vec::new());
        let mut beat = hb("a", "10.0.0.1", 1000.0);
        beat.plugins = vec![sample("cpu", PluginKind::Monitor, 1.0)];
        t.heartbeat(beat, &mut ev);
        let text = serde_json::to_string(&t.snapshot()).unwrap();
        assert!(text.contains(r#""data":{"at":1}"#), "stored JSON is embedded, not quoted: {text}");
        let back: Vec<Host> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, t.snapshot());
    }
}
