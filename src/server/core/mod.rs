//! The core thread: the one owner of the host table.
//!
//! Receives [`CoreMsg`]s on its one inbox (heartbeat batches and counters
//! from `udp`, the number of watching browsers from the ws hub, the parent's
//! shutdown) and [`Query`]s with a reply channel (from `http` and `ws`), and
//! wakes on a tick to find hosts that fell silent. What it decides leaves
//! through [`CoreOutputs`], which states for each channel what happens when
//! it is full. It does no I/O and takes its time from a [`Clock`], so the
//! whole loop is tested through its channels without sockets or sleeps.
//!
//! The transition rules live in [`table::HostTable`]; the data model in
//! `server::model`; what core asks of DNS and hears back in `dns_wanted`.

pub mod alerts;
pub mod deps;
mod dns_wanted;
pub mod jobs;
mod silences;
pub mod table;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, never, select, tick, Receiver, Sender, TrySendError};
use log::{info, warn};

use crate::server::host_filter::HostPage;
use crate::server::model::AlertChange;
use crate::server::model::{
    summarize, Alert, AlertKey, AlertList, DnsOutcome, Event, Heartbeat, Host, JournalStats, Level, NotifyReport,
    ServiceStats, Status, UdpStats, HEARTBEAT,
};
use crate::server::msg::{
    AckRefused, AlertmanagerMsg, CoreMsg, CoreStatus, DnsMsg, JournalMsg, MetricsSnapshot, NotifyMsg, Query, Records,
    RecordsFromCore, RecordsWanted, Saved, Snapshot, StateMsg, Update, BATCH_ABOVE, MAX_SILENCES,
    RECORDS_WANTED_CAPACITY,
};
use crate::server::silence::{self, Window};
use crate::server::store::Record;
use crate::wire::{unix_seconds, PluginKind};
use alerts::AlertTable;
use dns_wanted::DnsWanted;
use silences::Silences;
use table::HostTable;

/// How often the core looks for hosts that fell silent.
const TICK: Duration = Duration::from_secs(1);
/// At most one warning about refused hosts or plugins in this long.
const DROP_REPORT_EVERY: f64 = 60.0;

/// What the core runs on, made by `Config::check` (config/mod.rs).
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub grace: Duration,
    pub state_save_interval: Duration,
    pub max_hosts: usize,
    pub plugin_history: usize,
    pub max_plugins_per_host: usize,
    /// `thresholds`, `threshold_renotify_interval` and `plugin_stale_intervals`, compiled.
    pub rules: alerts::Rules,
    /// `dyndomains`, checked: empty when dynamic DNS is off.
    pub dyndomains: Vec<String>,
    /// Hosts silent longer than this are forgotten (`host_expire_after`); None: never.
    pub host_expire_after: Option<f64>,
    /// `standby_for`: the primary hbd's name; while it is up here, this hbd
    /// holds its notifications as a silence would.
    pub standby_for: Option<String>,
    /// `parents:`, checked: which hosts stand behind which.
    pub parents: deps::Parents,
    /// `tags:`, checked: the tags hbd.yaml gives hosts by name.
    pub tags: crate::server::tags::TagRules,
    /// `maintenance`, checked: the recurring windows.
    pub maintenance: Vec<Window>,
}

/// Where the core sends what it decides, and what it does when a channel is
/// full. A new consumer of events is one field here and one line in
/// [`Core::route`].
pub struct CoreOutputs {
    /// Events for the journal. Full: the core blocks, because no line may be
    /// lost. None with `journal_enabled: false`.
    pub to_journal: Option<Sender<JournalMsg>>,
    /// Snapshots for the state writer. Full: a periodic save is owed to the
    /// next tick (as while one is at work); the final save waits.
    pub to_state: Sender<StateMsg>,
    /// Live updates for browsers. Full: the update is dropped and counted
    /// (`hbd_ws_updates_dropped_total`): live views must not slow monitoring.
    pub to_ws: Option<Sender<Update>>,
    /// Alert changes for the notifier. Full: dropped and counted
    /// (`hbd_notify_events_dropped_total`, and a warning): the notifier does
    /// no I/O on its thread but its queue file, so full means it is stuck,
    /// and monitoring must not stop for it. None with no service configured.
    pub to_notify: Option<Sender<NotifyMsg>>,
    /// Updates for the DNS worker, which coalesces them per record. Full (or
    /// gone): the core does not wait; it remembers the host and offers it
    /// again every tick until the worker takes it, so no update is lost. None
    /// without `dyndomains`.
    pub to_dns: Option<Sender<DnsMsg>>,
    /// Proof of life for the parent, once a tick, which pings systemd's
    /// watchdog with it. Full: skipped (the parent has the last one). None
    /// when hbd does not run under systemd.
    pub to_parent: Option<Sender<CoreStatus>>,
    /// Every alert that is not OK, for Alertmanager, on the tick after any
    /// changed. Full: offered again at the next tick (each list is the
    /// whole state). None without `alertmanager:`.
    pub to_alertmanager: Option<Sender<AlertmanagerMsg>>,
}

/// Where the core learns the time: the system clock in hbd, a hand-set one in tests.
pub trait Clock: Send + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> f64;

    /// Seconds east of UTC of local time at `t` (Unix seconds), for the
    /// maintenance windows: the system's zone (`TZ`) unless a test says.
    fn utc_offset_at(&self, t: i64) -> i64 {
        silence::local_utc_offset(t)
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        unix_seconds(SystemTime::now())
    }
}

/// Starts the core on the system clock, ticking every [`TICK`].
pub fn spawn(
    settings: CoreSettings,
    saved: Saved,
    inbox: Receiver<CoreMsg>,
    queries: Receiver<Query>,
    outputs: CoreOutputs,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("core".into())
        .spawn(move || run(settings, saved, inbox, queries, tick(TICK), SystemClock, outputs))
}

/// The core loop, on the calling thread: runs until [`CoreMsg::Shutdown`] (or
/// until every sender of `inbox` is gone), then hands the final table to the
/// state writer. `ticks` wake it to look for silent hosts and to save.
pub fn run(
    settings: CoreSettings,
    saved: Saved,
    inbox: Receiver<CoreMsg>,
    mut queries: Receiver<Query>,
    ticks: Receiver<Instant>,
    clock: impl Clock,
    outputs: CoreOutputs,
) {
    let now = clock.now();
    let mut core = Core {
        table: HostTable::new(saved.hosts, &settings, now),
        rules: settings.rules.clone(),
        host_expire_after: settings.host_expire_after,
        standby_for: settings.standby_for.clone(),
        has_parents: !settings.parents.is_empty(),
        alerts: AlertTable::new(saved.alerts),
        outputs,
        events: Vec::new(),
        outbox: Vec::new(),
        reported_drops: (0, 0),
        last_drop_report: None,
        udp_stats: UdpStats::default(),
        ws_dropped: 0,
        journal_stats: JournalStats::default(),
        live_clients: 0,
        notify_stats: Vec::new(),
        notify_dropped: 0,
        notify_outbox: NotifyOutbox::default(),
        alertmanager_stats: None,
        // What fires after a restart is told at the first tick.
        alerts_changed: true,
        save_pending: false,
        saving: None,
        primary_heard: None,
        grace: settings.grace.as_secs_f64(),
        dns: DnsWanted::new(settings.dyndomains.clone()),
        silences: Silences::new(saved.silences, saved.silence_held, settings.maintenance.clone()),
    };
    for (host, level) in core.alerts.worst_by_host() {
        core.table.set_alert_level(host, level);
    }
    for host in core.table.iter().filter(|h| h.status == Status::Unreachable) {
        core.alerts.host_unreachable(&host.name);
    }
    info!("core: tracking {} hosts from the state file", core.table.len());
    // Whatever DNS has not confirmed yet (pending or failed before a restart) is asked for again.
    core.dns.start(&mut core.table, &core.outputs.to_dns);
    // A maintenance window in force now holds from the start.
    core.tick_silences(now, &|t| clock.utc_offset_at(t));
    let save_every = settings.state_save_interval.as_secs_f64();
    let mut next_save = now + save_every;
    loop {
        // A periodic save's asks for records, while one runs.
        let save_asks = core.saving.as_ref().map_or_else(never, |saving| saving.asks.clone());
        select! {
            recv(inbox) -> msg => match msg {
                Ok(CoreMsg::Heartbeats(batch)) => core.handle_heartbeats(batch),
                Ok(CoreMsg::UdpStats(stats)) => core.handle_udp_stats(stats),
                Ok(CoreMsg::JournalStats(stats)) => core.handle_journal_stats(stats),
                Ok(CoreMsg::LiveClients(n)) => core.handle_live_clients(n),
                Ok(CoreMsg::Notified(report)) => core.handle_notified(report, clock.now()),
                Ok(CoreMsg::NotifyStats(stats)) => core.notify_stats = stats,
                Ok(CoreMsg::AlertmanagerStats(stats)) => core.alertmanager_stats = Some(stats),
                Ok(CoreMsg::DnsResult { name, domain, address, outcome }) => {
                    core.handle_dns_result(clock.now(), name, domain, address, outcome)
                }
                Ok(CoreMsg::DnsRemoved { name, domain, outcome }) => {
                    core.dns.count(&outcome);
                    core.route(clock.now(), Event::DnsRemoved { name, domain, outcome });
                }
                Ok(CoreMsg::Shutdown) | Err(_) => break,
            },
            recv(queries) -> query => match query {
                Ok(query) => core.handle_query(query, inbox.len(), clock.now()),
                // No one asks any more (http has stopped): stop listening.
                Err(_) => queries = never(),
            },
            recv(save_asks) -> ask => match ask {
                Ok(ask) => core.answer_save(ask),
                // The writer is done with this save.
                Err(_) => core.saving = None,
            },
            recv(ticks) -> _ => {
                let now = clock.now();
                // Windows first: a host that goes down in the second a
                // window opens is held by it.
                core.tick_silences(now, &|t| clock.utc_offset_at(t));
                core.handle_tick(now);
                if now >= next_save || std::mem::take(&mut core.save_pending) {
                    core.save(false);
                    next_save = now + save_every;
                }
            },
        }
        core.flush_updates();
        core.flush_notifications();
    }
    let hosts = core.table.len();
    core.save(true);
    info!("core: stopped with {hosts} hosts");
}

/// A periodic save while the writer asks for its records
/// ([`RecordsFromCore`]).
struct Saving {
    /// Hosts forgotten since it started: the file has them as they were
    /// then. (A host new since then and forgotten too is kept as well,
    /// never asked for, and let go with the rest.)
    forgotten: HashMap<String, Arc<Record>>,
    asks: Receiver<RecordsWanted>,
}

/// The alert changes of one turn of the loop, sent together.
#[derive(Default)]
struct NotifyOutbox {
    at: f64,
    changes: Vec<(AlertChange, Vec<String>)>,
}

struct Core {
    table: HostTable,
    rules: alerts::Rules,
    host_expire_after: Option<f64>,
    standby_for: Option<String>,
    /// Whether `parents:` is configured: only then are hosts counted behind others.
    has_parents: bool,
    alerts: AlertTable,
    outputs: CoreOutputs,
    /// Reused buffer for the events of one message or tick.
    events: Vec<Event>,
    /// Live updates of this turn of the loop, sent at its end.
    outbox: Vec<Update>,
    /// Refusals (full table, too many plugins) already reported, and when.
    reported_drops: (u64, u64),
    last_drop_report: Option<f64>,
    udp_stats: UdpStats,
    /// Live updates dropped because the WebSocket hub was behind.
    ws_dropped: u64,
    journal_stats: JournalStats,
    /// Browsers connected to the ws hub, as it last said.
    live_clients: usize,
    notify_stats: Vec<ServiceStats>,
    notify_dropped: u64,
    /// This turn's alert changes for the notifier.
    notify_outbox: NotifyOutbox,
    alertmanager_stats: Option<ServiceStats>,
    /// An alert changed (or a host was forgotten) since Alertmanager was told.
    alerts_changed: bool,
    /// A save could not start at once (the writer was busy): owed at the next tick.
    save_pending: bool,
    /// The periodic save the writer is at, whose records it asks for.
    saving: Option<Saving>,
    /// When the primary hbd (`standby_for`) last sent its own heartbeat,
    /// and the interval plus grace it has before it counts as silent.
    primary_heard: Option<(f64, f64)>,
    grace: f64,
    /// DNS updates the worker has not taken yet, and counts of results.
    dns: DnsWanted,
    /// Silences, maintenance windows, and the alerts whose notifications they hold.
    silences: Silences,
}

impl Core {
    fn handle_heartbeats(&mut self, batch: Vec<Heartbeat>) {
        for hb in batch {
            self.handle_heartbeat(hb);
        }
    }

    fn handle_heartbeat(&mut self, mut hb: Heartbeat) {
        let at = unix_seconds(hb.received_at);
        // The table takes the heartbeat and its name; a copy is made only
        // when something below needs the name after that (a job's signal,
        // plugin samples, a browser watching): not for a plain heartbeat.
        let name =
            if hb.job.is_some() || !hb.plugins.is_empty() || self.watched() { hb.name.clone() } else { String::new() };
        // Only the primary hbd's own heartbeat says it watches: its
        // machine's hbc goes by the same name and outlives a dead hbd.
        if hb.from_hbd && hb.counts && self.standby_for.as_deref() == Some(hb.name.as_str()) {
            self.primary_heard = Some((at, hb.interval + self.grace));
        }
        if jobs::is_repeat(&hb, &self.table) {
            return;
        }
        let signal = hb.job.clone();
        if signal.is_some() {
            jobs::add_sample(&mut hb, &self.table, at);
        }
        let mut stored = Vec::new();
        self.table.heartbeat(hb, &mut self.events, &mut stored);
        if let Some(signal) = signal {
            jobs::record(&mut self.table, &mut self.alerts, &name, signal, at, &mut self.events);
        }
        // The samples just stored, parsed once: the rules see them as they came.
        for s in &stored {
            // Any sample, with or without a rule (or an `error`), ends "stopped reporting".
            if s.kind == PluginKind::Monitor {
                self.events.extend(self.alerts.reported(&name, &s.plugin, at).map(Event::Alert));
            }
            if let Some(data) = s.data.as_ref().filter(|_| self.rules.watches(&s.plugin)) {
                let changes = self.alerts.observe(&self.rules, &name, &s.plugin, data, at);
                self.events.extend(changes.into_iter().map(Event::Alert));
            }
        }
        self.route_events(at);
        if self.watched() {
            self.publish_heartbeat(&name, stored);
        }
        self.report_drops(at);
    }

    fn handle_udp_stats(&mut self, stats: UdpStats) {
        self.udp_stats = stats;
    }

    fn handle_journal_stats(&mut self, stats: JournalStats) {
        self.journal_stats = stats;
    }

    fn handle_live_clients(&mut self, n: usize) {
        self.live_clients = n;
    }

    fn handle_notified(&mut self, report: NotifyReport, now: f64) {
        self.route(now, Event::Notification(report));
    }

    fn handle_dns_result(&mut self, at: f64, name: String, domain: String, address: IpAddr, outcome: DnsOutcome) {
        self.dns.result(&mut self.table, &name, &domain, address, &outcome);
        self.route(at, Event::DnsUpdate { name, domain, address, outcome });
    }

    fn handle_tick(&mut self, now: f64) {
        if let Some(after) = self.host_expire_after {
            for name in self.table.silent_longer_than(after, now) {
                self.forget(&name, "host_expire_after", false, now);
            }
        }
        self.table.expire(now, &mut self.events);
        if self.has_parents {
            // Before the host-down alerts of this tick are written: they say it.
            self.alerts.set_behind(self.table.unreachable_behind());
        }
        let changes = self.alerts.tick(&self.rules, &self.table, now);
        self.events.extend(changes.into_iter().map(Event::Alert));
        let changes = jobs::tick(&self.table, &mut self.alerts, now);
        self.events.extend(changes.into_iter().map(Event::Alert));
        self.route_events(now);
        self.dns.retry_unsent(&self.table, &self.outputs.to_dns);
        self.tell_alertmanager(now);
        self.report_alive();
    }

    /// The alerts that are not OK, once per tick after they changed.
    fn tell_alertmanager(&mut self, now: f64) {
        let Some(to) = self.outputs.to_alertmanager.as_ref().filter(|_| self.alerts_changed) else { return };
        let mut alerts = self.alerts.sorted(None);
        // What a silence or maintenance window holds is not told either.
        alerts.retain(|a| a.level != Level::Ok && self.silences.covering(&a.key, now).is_none());
        if to.try_send(AlertmanagerMsg::Alerts { at: now, alerts }).is_ok() {
            self.alerts_changed = false;
        }
    }

    /// Tells the parent the loop still turns (and what it counts), for
    /// systemd's watchdog and `systemctl status`.
    fn report_alive(&self) {
        if let Some(parent) = &self.outputs.to_parent {
            let count = |status| self.table.iter().filter(|h| h.status == status).count();
            let (down, unreachable) = (count(Status::Down), count(Status::Unreachable));
            let status = CoreStatus { hosts: self.table.len(), down, unreachable, alerts: self.alerts.summary() };
            let _ = parent.try_send(status);
        }
    }

    /// Forgets a host: its state, history and alerts, journaled; with
    /// `dns`, its records in every `dyndomains` domain go too.
    fn forget(&mut self, name: &str, by: &str, dns: bool, now: f64) -> bool {
        let Some(record) = self.table.remove(name) else { return false };
        let last_seen = record.host.last_seen;
        // A save at work that has yet to write it still does.
        if let Some(saving) = self.saving.as_mut() {
            saving.forgotten.insert(name.to_string(), record);
        }
        self.alerts.forget(name);
        self.alerts_changed = true;
        self.silences.forget_host(name);
        if dns && !self.dns.remove(name, &self.outputs.to_dns) {
            warn!("core: the DNS records of {name} are not removed: no dyndomains, or the DNS worker is stuck");
        }
        let event = Event::HostForgotten { name: name.to_string(), by: by.to_string(), last_seen };
        self.route(now, event);
        true
    }

    /// Acknowledges an alert (`comment` Some) or removes the
    /// acknowledgement (None), journaled with who.
    fn acknowledge(
        &mut self,
        mut key: AlertKey,
        by: String,
        comment: Option<String>,
        now: f64,
    ) -> Result<Alert, AckRefused> {
        key.host = key.host.to_ascii_lowercase().into();
        if !self.table.contains(&key.host) {
            return Err(AckRefused::UnknownHost);
        }
        let (alert, event) = match comment {
            Some(comment) => {
                let alert = self.alerts.acknowledge(&key, &by, &comment, now)?;
                (alert, Event::Acknowledged { key, by, comment })
            }
            None => (self.alerts.unacknowledge(&key)?, Event::AckRemoved { key, by }),
        };
        self.route(now, event);
        let silenced = self.silences.covering(&alert.key, now).map(Box::new);
        Ok(Alert { silenced, ..alert })
    }

    fn handle_query(&mut self, query: Query, inbound_queue: usize, now: f64) {
        // A requester that gave up has dropped its receiver; nothing to do then.
        match query {
            Query::Hosts(reply) => {
                let mut hosts = self.table.hosts_with(0);
                hosts.iter_mut().for_each(|h| self.mark_host(h, now));
                let _ = reply.send(hosts);
            }
            Query::HostPage { filter, reply } => {
                let silenced = |h: &Host| self.silences.covering_host(&h.name, now).is_some();
                let (page, total, more) = filter.select(self.table.iter(), silenced);
                let hosts = page
                    .into_iter()
                    .filter_map(|h| self.table.get(&h.name, 0))
                    .map(|mut h| {
                        self.mark_host(&mut h, now);
                        h
                    })
                    .collect();
                let _ = reply.send(HostPage { hosts, total, more });
            }
            Query::Host { name, reply } => {
                // One host gets its latency history (and a job all its
                // runs) too; lists of hosts do not.
                let name = name.to_ascii_lowercase();
                let job = self.table.host(&name).and_then(|h| h.job.clone());
                let host = self
                    .table
                    .get(&name, 1)
                    .map(|h| Host { latency_history: self.table.latency_history(&name), job, ..h })
                    .map(|mut h| {
                        self.mark_host(&mut h, now);
                        h
                    });
                let _ = reply.send(host);
            }
            Query::History { name, plugin, limit, reply } => {
                let _ = reply.send(self.table.history(&name.to_ascii_lowercase(), &plugin, limit));
            }
            Query::HostCount(reply) => {
                let _ = reply.send(self.table.len());
            }
            Query::Alerts { host, reply } => {
                let mut list = self.alert_list(host.as_deref());
                if let Some(list) = list.as_mut() {
                    list.alerts.iter_mut().for_each(|a| a.silenced = self.silences.covering(&a.key, now).map(Box::new));
                }
                let _ = reply.send(list);
            }
            Query::AddSilence { silence, reply } => {
                let (active, pending) = self.silences.counts(now);
                if active + pending >= MAX_SILENCES {
                    let _ = reply.send(None);
                    return;
                }
                let silence = self.silences.add(silence, now);
                self.route(now, Event::SilenceAdded(silence.clone()));
                let _ = reply.send(Some(silence));
                // An operator's write is kept at once, not at the next periodic save.
                self.save(false);
            }
            Query::Silences(reply) => {
                let _ = reply.send(self.silences.list());
            }
            Query::EndSilence { id, by, reply } => {
                let ended = self.silences.end(&id);
                if let Some(silence) = &ended {
                    self.route(now, Event::SilenceEnded { silence: silence.clone(), by });
                    self.release_held(now);
                }
                let ended_one = ended.is_some();
                let _ = reply.send(ended);
                if ended_one {
                    self.save(false);
                }
            }
            Query::Forget { name, by, dns, reply } => {
                let _ = reply.send(self.forget(&name.to_ascii_lowercase(), &by, dns, now));
            }
            Query::Ack { key, by, comment, reply } => {
                let _ = reply.send(self.acknowledge(key, by, comment, now));
            }
            Query::Metrics { plugin_data, reply } => {
                let (hosts, plugins) = self.table.latest(plugin_data);
                let (silences_active, silences_pending) = self.silences.counts(now);
                let mut alerts = self.alerts.sorted(None);
                alerts.iter_mut().for_each(|a| a.silenced = self.silences.covering(&a.key, now).map(Box::new));
                let _ = reply.send(MetricsSnapshot {
                    hosts,
                    plugins,
                    udp: self.udp_stats.clone(),
                    inbound_queue,
                    journal_queue: self.outputs.to_journal.as_ref().map_or(0, |j| j.len()),
                    dropped_hosts: self.table.dropped_hosts,
                    dropped_plugins: self.table.dropped_plugins,
                    ws_dropped: self.ws_dropped,
                    journal: self.journal_stats,
                    alerts,
                    notify: self.notify_stats.iter().chain(&self.alertmanager_stats).cloned().collect(),
                    notify_dropped: self.notify_dropped,
                    dns: self.dns.stats(&self.table),
                    silences_active,
                    silences_pending,
                });
            }
        }
    }

    fn alert_list(&self, host: Option<&str>) -> Option<AlertList> {
        match host.map(str::to_ascii_lowercase) {
            Some(host) => {
                self.table.contains(&host).then_some(())?;
                let alerts = self.alerts.sorted(Some(&host));
                Some(AlertList { summary: summarize(&alerts), tags: self.host_tags(&alerts), alerts })
            }
            None => {
                let mut alerts = self.alerts.sorted(None);
                alerts.retain(|a| a.level != Level::Ok);
                Some(AlertList { summary: self.alerts.summary(), tags: self.host_tags(&alerts), alerts })
            }
        }
    }

    /// The tags of the hosts of `alerts`, for the alert objects' context.
    fn host_tags(&self, alerts: &[Alert]) -> std::collections::BTreeMap<String, Vec<String>> {
        let hosts = alerts.iter().map(|a| &a.key.host);
        hosts
            .filter_map(|h| Some((h.to_string(), self.table.host(h)?.tags.clone())).filter(|(_, t)| !t.is_empty()))
            .collect()
    }

    /// True while some browser watches: only then are live updates prepared.
    fn watched(&self) -> bool {
        self.live_clients > 0 && self.outputs.to_ws.is_some()
    }

    fn route_events(&mut self, at: f64) {
        self.follow_host_events(at);
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            if let Event::Alert(change) = &event {
                let level = self.alerts.worst(&change.key.host);
                self.table.set_alert_level(&change.key.host, level);
            }
            self.route(at, event);
        }
        self.events = events;
    }

    /// A host going down or coming back is an alert of its own.
    fn follow_host_events(&mut self, at: f64) {
        let follow: Vec<Option<_>> = self
            .events
            .iter()
            .map(|event| match event {
                Event::HostDown { name, silent_for, .. } => self.alerts.host_down(name, *silent_for, at),
                Event::HostUp { name, .. } => self.alerts.host_up(name, at),
                Event::HostUnreachable { name, .. } => {
                    self.alerts.host_unreachable(name);
                    None
                }
                Event::HostReachable { name, .. } => {
                    self.alerts.host_reachable(name);
                    None
                }
                _ => None,
            })
            .collect();
        self.events.extend(follow.into_iter().flatten().map(Event::Alert));
    }

    /// The one place that decides who hears of an event.
    fn route(&mut self, at: f64, event: Event) {
        match &event {
            // The notifier logs its own deliveries and failures.
            Event::Notification(_) => {}
            event => info!("core: {event}"),
        }
        // What Alertmanager is told depends on alerts, holds and silences.
        if matches!(
            event,
            Event::HostUnreachable { .. }
                | Event::HostReachable { .. }
                | Event::SilenceAdded(_)
                | Event::SilenceEnded { .. }
                | Event::MaintenanceStarted { .. }
                | Event::MaintenanceEnded { .. }
        ) {
            self.alerts_changed = true;
        }
        if let Event::Alert(change) = &event {
            self.alerts_changed = true;
            self.notify_unless_silenced(at, change);
        }
        if let Event::HostNew { name, .. } | Event::AddressChanged { name, .. } = &event {
            self.dns.want(&self.table, name, &self.outputs.to_dns);
        }
        if self.watched() {
            self.publish(Update::Event { at, event: event.clone() });
        }
        if let Some(journal) = &self.outputs.to_journal {
            // Blocking on purpose: the journal may not lose lines.
            let _ = journal.send(JournalMsg::Event { at, event });
        }
    }

    /// Tells browsers about the heartbeat and each plugin sample it carried.
    fn publish_heartbeat(&mut self, name: &str, stored: Vec<table::Stored>) {
        let Some(mut host) = self.table.get(name, 0) else { return };
        // The heartbeat's time: the core's clock says no other.
        let at = host.last_seen;
        self.mark_host(&mut host, at);
        self.publish(Update::Heartbeat(Box::new(host)));
        for s in stored {
            self.publish(Update::Plugin { host: name.to_string(), plugin: s.plugin, kind: s.kind, sample: s.sample });
        }
    }

    /// Kept for the end of this turn of the loop ([`Core::flush_updates`]).
    fn publish(&mut self, update: Update) {
        if self.outputs.to_ws.is_some() {
            self.outbox.push(update);
        }
    }

    /// The turn's updates for the hub: one by one, or past
    /// [`BATCH_ABOVE`] as one batch, so that a burst takes one slot.
    fn flush_updates(&mut self) {
        let Some(ws) = &self.outputs.to_ws else { return };
        let mut updates = std::mem::take(&mut self.outbox);
        let count = updates.len() as u64;
        if updates.len() > BATCH_ABOVE {
            if ws.try_send(Update::Batch(updates)).is_err() {
                self.ws_dropped += count;
            }
            return;
        }
        for update in updates.drain(..) {
            if ws.try_send(update).is_err() {
                self.ws_dropped += 1;
            }
        }
        // The buffer's room is kept for the next turn.
        self.outbox = updates;
    }

    fn report_drops(&mut self, now: f64) {
        let drops = (self.table.dropped_hosts, self.table.dropped_plugins);
        if drops != self.reported_drops && self.last_drop_report.is_none_or(|t| now - t >= DROP_REPORT_EVERY) {
            warn!(
                "core: refused {} messages from new hosts (max_hosts {} reached) and {} plugin samples (max_plugins_per_host reached) so far",
                drops.0,
                self.table.len(),
                drops.1
            );
            self.reported_drops = drops;
            self.last_drop_report = Some(now);
        }
    }

    /// Periodic saves are put off while the writer is still busy with the
    /// last one (a stalled disk must not stall the core); the final one waits.
    fn save(&mut self, last: bool) {
        if !last && self.saving.is_some() {
            self.save_pending = true;
            return;
        }
        let (silences, silence_held) = self.silences.snapshot();
        let alerts = self.alerts.snapshot();
        if last {
            // Ends a periodic save the writer is at: it has to give way.
            self.saving = None;
            // The last snapshot takes the records: core ends next, and the
            // state thread keeps them until the process exits.
            let records = Records::Taken(self.table.take_records());
            let msg = StateMsg::Final(Snapshot { alerts, silences, silence_held, records });
            if self.outputs.to_state.send(msg).is_err() {
                warn!("core: state writer is gone; final state not saved");
            }
            return;
        }
        let names = self.table.names();
        let (asks, asked) = bounded(RECORDS_WANTED_CAPACITY);
        let records = Records::Asked(RecordsFromCore { names, layouts: self.table.layouts(), asks });
        match self.outputs.to_state.try_send(StateMsg::Save(Snapshot { alerts, silences, silence_held, records })) {
            Ok(()) => self.saving = Some(Saving { forgotten: HashMap::new(), asks: asked }),
            // The writer is busy with the last one: this save is owed at the next tick.
            Err(TrySendError::Full(_)) => self.save_pending = true,
            Err(TrySendError::Disconnected(_)) => warn!("core: state writer is gone; state not saved"),
        }
    }

    /// The records the writer asks for.
    fn answer_save(&mut self, ask: RecordsWanted) {
        let Some(saving) = &self.saving else { return };
        let records = ask
            .names
            .iter()
            .filter_map(|name| self.table.record(name).or_else(|| saving.forgotten.get(name)))
            .cloned()
            .collect();
        let _ = ask.reply.send(records);
    }
}

/// Silences and maintenance windows: what the notifier is not told.
impl Core {
    /// Hands an alert change to the notifier, unless a silence or window
    /// covers the alert: then it is held, and the level last notified kept.
    fn notify_unless_silenced(&mut self, at: f64, change: &AlertChange) {
        if self.outputs.to_notify.is_none() {
            return;
        }
        if self.silences.covering(&change.key, at).is_some() || self.standing_by(&change.key, at) {
            self.silences.hold(&change.key, change.from);
            return;
        }
        self.silences.sent(&change.key);
        self.send_to_notifier(at, change.clone());
    }

    /// A standby (`standby_for`) holds what its primary hbd notifies while
    /// it hears the primary; never the primary's own alerts, since the
    /// primary cannot say that it is down (or back).
    fn standing_by(&self, key: &AlertKey, now: f64) -> bool {
        let primary_alive = self.primary_heard.is_some_and(|(at, allowed)| now - at <= allowed);
        let primarys_own = self.standby_for.as_deref() == Some(&*key.host) && &*key.plugin == HEARTBEAT;
        self.standby_for.is_some() && primary_alive && !primarys_own
    }

    /// Kept for the end of this turn of the loop ([`Core::flush_notifications`]).
    fn send_to_notifier(&mut self, at: f64, change: AlertChange) {
        if self.outputs.to_notify.is_none() {
            return;
        }
        // The host's tags go along, for the services' `tags` routes.
        let tags = self.table.host(&change.key.host).map(|h| h.tags.clone()).unwrap_or_default();
        self.notify_outbox.changes.push((change, tags));
        self.notify_outbox.at = at;
    }

    /// The turn's alert changes for the notifier, as one message.
    fn flush_notifications(&mut self) {
        let Some(notify) = &self.outputs.to_notify else { return };
        if self.notify_outbox.changes.is_empty() {
            return;
        }
        let at = self.notify_outbox.at;
        let changes = std::mem::take(&mut self.notify_outbox.changes);
        let count = changes.len() as u64;
        if notify.try_send(NotifyMsg::Alerts { at, changes }).is_err() {
            let before = self.notify_dropped;
            self.notify_dropped += count;
            // Warned when the total passes a power of two.
            if before.checked_ilog2() != self.notify_dropped.checked_ilog2() {
                warn!("core: the notifier is not taking alerts; {} dropped so far", self.notify_dropped);
            }
        }
    }

    /// Expires silences, follows the windows, journals what ended or
    /// began, and makes up for what nothing holds any more.
    fn tick_silences(&mut self, now: f64, offset: &dyn Fn(i64) -> i64) {
        for event in self.silences.tick(now, offset) {
            self.route(now, event);
        }
        self.release_held(now);
    }

    /// Held alerts nothing covers any more: one notification each whose
    /// level is not the one last notified; none for one that came back to
    /// it meanwhile. An alert held under its host's host-down alert waits
    /// until the host is back.
    fn release_held(&mut self, now: f64) {
        // A standby's primary that is not up (or never was) has left it
        // what it held; anything else was a silence's.
        let why = match self.standby_for.as_deref() {
            Some(primary) => format!("held while {primary} watched; it is silent now"),
            None => "held by a silence until now".to_string(),
        };
        for (key, notified) in self.silences.uncovered(now) {
            if self.standing_by(&key, now) {
                continue;
            }
            let alert = self.alerts.sorted(Some(&*key.host)).into_iter().find(|a| a.key == key);
            match alert {
                Some(alert) if alert.held => continue,
                Some(alert) if alert.level != notified => {
                    info!(
                        "core: {}/{}/{}: no longer held, notifying {}",
                        key.host,
                        key.plugin,
                        key.metric_path,
                        alert.level.as_str()
                    );
                    let change = AlertChange {
                        key: key.clone(),
                        from: notified,
                        to: alert.level,
                        value: alert.last_value,
                        threshold: alert.threshold,
                        reminder: false,
                        ongoing: (now - alert.since).max(0.0),
                        text: format!("{} ({why})", alert.message),
                    };
                    self.send_to_notifier(now, change);
                }
                _ => {}
            }
            self.silences.sent(&key);
        }
    }

    /// Marks a copy of a host with what silences it as a whole.
    fn mark_host(&self, host: &mut Host, now: f64) {
        host.silenced = self.silences.covering_host(&host.name, now).map(Box::new);
    }
}

#[cfg(test)]
mod tests {
    //! The core loop driven through its channels, on a clock the test sets.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use crossbeam_channel::bounded;

    use super::*;
    use crate::server::model::DnsStats;
    use crate::server::msg::ask;

    #[derive(Clone, Default)]
    struct TestClock(Arc<AtomicU64>);

    impl TestClock {
        fn set(&self, seconds: f64) {
            self.0.store(seconds.to_bits(), Ordering::SeqCst);
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> f64 {
            f64::from_bits(self.0.load(Ordering::SeqCst))
        }

        /// The tests' local time is UTC, whatever the machine's zone.
        fn utc_offset_at(&self, _: i64) -> i64 {
            0
        }
    }

    struct Harness {
        inbox: Sender<CoreMsg>,
        queries: Sender<Query>,
        ticks: Sender<Instant>,
        clock: TestClock,
        journal: Receiver<JournalMsg>,
        state: Receiver<StateMsg>,
        ws: Receiver<Update>,
        core: JoinHandle<()>,
    }

    const DEADLINE: Duration = Duration::from_secs(10);

    fn start() -> Harness {
        start_with_dns(Vec::new(), None)
    }

    /// The settings the core's tests run on (also `dns_wanted`'s).
    pub(super) fn settings(dyndomains: Vec<String>) -> CoreSettings {
        CoreSettings {
            grace: Duration::from_secs(5),
            state_save_interval: Duration::from_secs(60),
            max_hosts: 10,
            plugin_history: 3,
            max_plugins_per_host: 4,
            rules: alerts::Rules::default(),
            dyndomains,
            host_expire_after: None,
            standby_for: None,
            parents: deps::Parents::default(),
            tags: Default::default(),
            maintenance: Vec::new(),
        }
    }

    fn start_with_dns(dyndomains: Vec<String>, to_dns: Option<Sender<DnsMsg>>) -> Harness {
        start_with(settings(dyndomains), to_dns)
    }

    fn start_with(settings: CoreSettings, to_dns: Option<Sender<DnsMsg>>) -> Harness {
        // Rendezvous channels: once a send returns, the core has taken the
        // message, so the answer to a later query comes after it was handled.
        let (inbox, core_inbox) = bounded(0);
        let (queries, core_queries) = bounded(0);
        let (ticks, core_ticks) = bounded(0);
        let (to_journal, journal) = bounded(64);
        let (to_state, state) = bounded(1);
        let (to_ws, ws) = bounded(64);
        let clock = TestClock::default();
        clock.set(1000.0);
        let outputs = CoreOutputs {
            to_journal: Some(to_journal),
            to_state,
            to_ws: Some(to_ws),
            to_notify: None,
            to_dns,
            to_parent: None,
            to_alertmanager: None,
        };
        let run_clock = clock.clone();
        let core = std::thread::spawn(move || {
            run(settings, Saved::default(), core_inbox, core_queries, core_ticks, run_clock, outputs)
        });
        Harness { inbox, queries, ticks, clock, journal, state, ws, core }
    }

    fn heartbeat(name: &str, at: f64) -> Heartbeat {
        Heartbeat::for_test(name, "10.0.0.1", at)
    }

    fn next_event(journal: &Receiver<JournalMsg>) -> Event {
        match journal.recv_timeout(DEADLINE) {
            Ok(JournalMsg::Event { event, .. }) => event,
            other => panic!("expected an event for the journal, got {other:?}"),
        }
    }

    /// A host forgotten by hand or by `host_expire_after` is gone from the
    /// table, its alerts and the next snapshot, and the journal says who.
    #[test]
    fn forgotten_hosts_are_gone_and_journaled() {
        let h = start_with(CoreSettings { host_expire_after: Some(100.0), ..settings(Vec::new()) }, None);
        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1000.0), heartbeat("b", 1000.0)])).unwrap();
        next_event(&h.journal);
        next_event(&h.journal);
        let forget = |name: &str| {
            ask(&h.queries, |reply| Query::Forget { name: name.into(), by: "alice".into(), dns: false, reply })
        };
        assert!(forget("A").unwrap(), "names are case-insensitive");
        assert!(
            matches!(next_event(&h.journal), Event::HostForgotten { name, by, .. } if name == "a" && by == "alice")
        );
        assert!(!forget("a").unwrap());
        // b is down at 1016 and forgotten once silent for more than 100 s.
        h.clock.set(1016.0);
        h.ticks.send(Instant::now()).unwrap();
        assert!(matches!(next_event(&h.journal), Event::HostDown { name, .. } if name == "b"));
        next_event(&h.journal);
        h.clock.set(1100.0);
        h.ticks.send(Instant::now()).unwrap();
        assert_eq!(ask(&h.queries, Query::HostCount).unwrap(), 1, "silent for 100 s, not more");
        h.clock.set(1100.5);
        h.ticks.send(Instant::now()).unwrap();
        assert!(
            matches!(next_event(&h.journal), Event::HostForgotten { name, by, .. } if name == "b" && by == "host_expire_after")
        );
        let alerts = ask(&h.queries, |reply| Query::Alerts { host: None, reply }).unwrap().unwrap();
        assert!(alerts.alerts.is_empty(), "b's host-down alert went with it");
        h.inbox.send(CoreMsg::Shutdown).unwrap();
        // A periodic save (at 1060) may wait before the final one; the
        // channel disconnects once the core has ended.
        let mut last = None;
        while let Ok(msg) = h.state.recv_timeout(DEADLINE) {
            if let StateMsg::Final(snapshot) = msg {
                last = Some(Saved::from(snapshot));
            }
        }
        h.core.join().unwrap();
        let saved = last.expect("a final snapshot");
        assert!(saved.hosts.is_empty() && saved.alerts.is_empty());
    }

    /// Acknowledging through the query: names case-insensitive, refusals
    /// typed, the journal told who.
    #[test]
    fn acknowledgements_are_asked_of_the_core_and_journaled() {
        let h = start();
        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1000.0)])).unwrap();
        next_event(&h.journal);
        let host_down = |host: &str| AlertKey {
            host: host.into(),
            plugin: "heartbeat".into(),
            metric_path: "silent_for_seconds".into(),
        };
        let ack = |key: AlertKey, comment: Option<&str>| {
            ask(&h.queries, |reply| Query::Ack { key, by: "alice".into(), comment: comment.map(String::from), reply })
                .unwrap()
        };
        assert_eq!(ack(host_down("nosuch"), Some("x")).unwrap_err(), AckRefused::UnknownHost);
        assert_eq!(ack(host_down("a"), Some("x")).unwrap_err(), AckRefused::UnknownAlert, "never down: no such alert");
        h.clock.set(1016.0);
        h.ticks.send(Instant::now()).unwrap();
        assert!(matches!(next_event(&h.journal), Event::HostDown { .. }));
        assert!(matches!(next_event(&h.journal), Event::Alert(_)));
        let alert = ack(host_down("A"), Some("rebooting")).unwrap();
        assert_eq!(alert.acknowledged.map(|a| (a.by, a.at)), Some(("alice".to_string(), 1016.0)));
        assert!(
            matches!(next_event(&h.journal), Event::Acknowledged { key, by, comment } if &*key.host == "a" && by == "alice" && comment == "rebooting")
        );
        assert!(ack(host_down("a"), None).unwrap().acknowledged.is_none());
        assert!(matches!(next_event(&h.journal), Event::AckRemoved { .. }));
        assert_eq!(ack(host_down("a"), None).unwrap_err(), AckRefused::NotAcknowledged);
        h.inbox.send(CoreMsg::Shutdown).unwrap();
        h.core.join().unwrap();
    }

    #[test]
    fn heartbeats_make_hosts_and_silence_makes_them_down() {
        let h = start();
        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1000.0), heartbeat("b", 1000.0)])).unwrap();
        assert!(matches!(next_event(&h.journal), Event::HostNew { name, .. } if name == "a"));
        assert!(matches!(next_event(&h.journal), Event::HostNew { name, .. } if name == "b"));
        let hosts = ask(&h.queries, Query::Hosts).unwrap();
        assert_eq!(hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);

        h.clock.set(1014.0);
        h.ticks.send(Instant::now()).unwrap();
        assert_eq!(ask(&h.queries, Query::HostCount).unwrap(), 2);
        assert!(h.journal.try_recv().is_err(), "interval 10 + grace 5 not yet exceeded");

        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("b", 1014.0)])).unwrap();
        h.clock.set(1016.0);
        h.ticks.send(Instant::now()).unwrap();
        assert!(matches!(next_event(&h.journal), Event::HostDown { name, .. } if name == "a"));

        h.inbox.send(CoreMsg::Shutdown).unwrap();
        h.core.join().unwrap();
        let (snapshot, true) = h.state.recv_timeout(DEADLINE).unwrap().into_parts() else {
            panic!("not the final save")
        };
        assert_eq!(Saved::from(snapshot).hosts.len(), 2, "the final snapshot has every host");
    }

    /// A periodic save gets the records when it asks for them: a host
    /// forgotten meanwhile as it was, a new one not at all; a second save
    /// waits for the first; and the final save ends one at work.
    #[test]
    fn a_periodic_save_asks_for_its_records_piece_by_piece() {
        let h = start();
        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("b", 1000.0), heartbeat("a", 1000.0)])).unwrap();
        h.clock.set(1060.0);
        h.ticks.send(Instant::now()).unwrap();
        let Ok(StateMsg::Save(Snapshot { records: Records::Asked(from_core), .. })) = h.state.recv_timeout(DEADLINE)
        else {
            panic!("a periodic save whose records are asked for")
        };
        let mut names = from_core.names.clone();
        names.sort_unstable();
        assert_eq!(names, ["a", "b"], "the hosts there are, in any order");
        let records = |names: &[&str]| {
            let (reply, answer) = bounded(1);
            let names = names.iter().map(|name| name.to_string()).collect();
            from_core.asks.send(RecordsWanted { names, reply }).ok()?;
            let records: Vec<Arc<Record>> = answer.recv().ok()?;
            Some(records.iter().map(|r| (r.host.name.clone(), r.host.count)).collect::<Vec<_>>())
        };
        assert_eq!(records(&["b"]).unwrap(), [("b".to_string(), 1)]);

        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1061.0), heartbeat("c", 1061.0)])).unwrap();
        ask(&h.queries, |reply| Query::Forget { name: "b".into(), by: "alice".into(), dns: false, reply }).unwrap();
        let now = records(&["a", "b"]).unwrap();
        assert_eq!(now, [("a".to_string(), 2), ("b".to_string(), 1)], "a as it is now, b as it was forgotten");

        h.clock.set(1121.0);
        h.ticks.send(Instant::now()).unwrap();
        ask(&h.queries, Query::HostCount).unwrap();
        assert!(h.state.try_recv().is_err(), "the next save waits for this one");
        drop(from_core);
        // Owed at the first tick after core has seen the save end.
        let owed = (0..100).find_map(|_| {
            h.ticks.send(Instant::now()).unwrap();
            ask(&h.queries, Query::HostCount).unwrap();
            h.state.try_recv().ok()
        });
        let Some(StateMsg::Save(Snapshot { records: Records::Asked(from_core), .. })) = owed else {
            panic!("the save owed")
        };
        let mut names = from_core.names.clone();
        names.sort_unstable();
        assert_eq!(names, ["a", "c"]);

        h.inbox.send(CoreMsg::Shutdown).unwrap();
        let (snapshot, true) = h.state.recv_timeout(DEADLINE).unwrap().into_parts() else {
            panic!("not the final save")
        };
        assert_eq!(Saved::from(snapshot).hosts.len(), 2);
        h.core.join().unwrap();
        let (reply, _answer) = bounded(1);
        let names = vec!["a".to_string()];
        assert!(from_core.asks.send(RecordsWanted { names, reply }).is_err(), "the save at work ended with core");
    }

    #[test]
    fn live_updates_flow_only_while_browsers_watch() {
        let h = start();
        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1000.0)])).unwrap();
        next_event(&h.journal);
        ask(&h.queries, Query::HostCount).unwrap();
        assert!(h.ws.try_recv().is_err(), "nobody watches: no updates");

        h.inbox.send(CoreMsg::LiveClients(1)).unwrap();
        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1001.0)])).unwrap();
        match h.ws.recv_timeout(DEADLINE) {
            Ok(Update::Heartbeat(host)) => assert_eq!((host.name.as_str(), host.count), ("a", 2)),
            other => panic!("expected a heartbeat update, got {other:?}"),
        }
        drop(h.inbox);
        h.core.join().unwrap();
    }

    #[test]
    fn metrics_carry_udp_counters_and_periodic_saves_follow_the_clock() {
        let h = start();
        let stats = UdpStats { received: 7, rejected: vec![1, 2], dropped_plugins: 3 };
        h.inbox.send(CoreMsg::UdpStats(stats.clone())).unwrap();
        assert_eq!(ask(&h.queries, |reply| Query::Metrics { plugin_data: true, reply }).unwrap().udp, stats);

        h.clock.set(1059.0);
        h.ticks.send(Instant::now()).unwrap();
        ask(&h.queries, Query::HostCount).unwrap();
        assert!(h.state.try_recv().is_err(), "state_save_interval 60 not reached");
        h.clock.set(1060.0);
        h.ticks.send(Instant::now()).unwrap();
        assert!(h.state.recv_timeout(DEADLINE).is_ok(), "saved after 60 s by the clock");
        h.inbox.send(CoreMsg::Shutdown).unwrap();
        h.core.join().unwrap();
    }

    #[test]
    fn new_and_moved_hosts_go_to_dns_and_results_are_journaled_and_saved() {
        let (to_dns, dns) = bounded(8);
        let h = start_with_dns(vec!["example.test".into()], Some(to_dns));
        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1000.0)])).unwrap();
        let update = |dns: &Receiver<DnsMsg>| match dns.recv_timeout(DEADLINE) {
            Ok(DnsMsg::Update { name, address, domains }) => (name, address.to_string(), domains),
            Ok(other) => panic!("expected a DNS update, not {other:?}"),
            Err(e) => panic!("expected a DNS update: {e}"),
        };
        assert_eq!(update(&dns), ("a".into(), "10.0.0.1".into(), vec!["example.test".into()]));
        next_event(&h.journal);
        let address: IpAddr = "10.0.0.1".parse().unwrap();
        h.inbox
            .send(CoreMsg::DnsResult {
                name: "a".into(),
                domain: "example.test".into(),
                address,
                outcome: DnsOutcome::Updated,
            })
            .unwrap();
        assert!(matches!(next_event(&h.journal), Event::DnsUpdate { outcome: DnsOutcome::Updated, .. }));
        let metrics = ask(&h.queries, |reply| Query::Metrics { plugin_data: true, reply }).unwrap();
        assert_eq!(metrics.dns, DnsStats { updates: 1, failures: 0, pending: 0 });
        assert_eq!(
            ask(&h.queries, |reply| Query::Host { name: "a".into(), reply }).unwrap().unwrap().dns["example.test"],
            address
        );

        // The same address again is no news for DNS; another one is.
        h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1001.0)])).unwrap();
        h.inbox.send(CoreMsg::Heartbeats(vec![Heartbeat::for_test("a", "10.0.0.2", 1002.0)])).unwrap();
        assert_eq!(update(&dns).1, "10.0.0.2");
        assert!(dns.try_recv().is_err());
        h.inbox.send(CoreMsg::Shutdown).unwrap();
        h.core.join().unwrap();
    }

    mod silencing {
        //! Silences and windows through the loop: what reaches the notifier.

        use super::*;
        use crate::server::model::SILENT_FOR;
        use crate::server::silence::{NewSilence, WindowEnd};

        struct Silenced {
            inbox: Sender<CoreMsg>,
            queries: Sender<Query>,
            ticks: Sender<Instant>,
            clock: TestClock,
            notify: Receiver<NotifyMsg>,
            state: Receiver<StateMsg>,
            core: JoinHandle<()>,
        }

        fn start(settings: CoreSettings, saved: Saved) -> Silenced {
            let (inbox, core_inbox) = bounded(0);
            let (queries, core_queries) = bounded(0);
            let (ticks, core_ticks) = bounded(0);
            let (to_state, state) = bounded(1);
            let (to_notify, notify) = bounded(64);
            let clock = TestClock::default();
            clock.set(1000.0);
            let outputs = CoreOutputs {
                to_journal: None,
                to_state,
                to_ws: None,
                to_notify: Some(to_notify),
                to_dns: None,
                to_parent: None,
                to_alertmanager: None,
            };
            let run_clock = clock.clone();
            let core = std::thread::spawn(move || {
                run(settings, saved, core_inbox, core_queries, core_ticks, run_clock, outputs)
            });
            Silenced { inbox, queries, ticks, clock, notify, state, core }
        }

        impl Silenced {
            fn tick_at(&self, at: f64) {
                self.clock.set(at);
                self.ticks.send(Instant::now()).unwrap();
                // A query after the tick: answered once the tick is done.
                ask(&self.queries, Query::HostCount).unwrap();
            }

            fn silence(&self, host: &str, from: f64, to: f64) -> String {
                let silence = NewSilence {
                    host: host.into(),
                    plugin: None,
                    metric_path: None,
                    starts_at: from,
                    ends_at: to,
                    comment: "<b>kernel</b>".into(),
                    by: "alice".into(),
                };
                ask(&self.queries, |reply| Query::AddSilence { silence, reply }).unwrap().unwrap().id
            }

            fn notified(&self) -> Vec<(String, Level)> {
                self.notify
                    .try_iter()
                    .flat_map(|NotifyMsg::Alerts { changes, .. }| changes)
                    .map(|(change, _)| (change.key.host.to_string(), change.to))
                    .collect()
            }

            fn stop(self) -> Saved {
                self.inbox.send(CoreMsg::Shutdown).unwrap();
                let mut last = None;
                while let Ok(msg) = self.state.recv_timeout(DEADLINE) {
                    if let StateMsg::Final(snapshot) = msg {
                        last = Some(Saved::from(snapshot));
                    }
                }
                self.core.join().unwrap();
                last.expect("a final snapshot")
            }
        }

        /// A mass outage in one tick is one message to the notifier: its
        /// inbox (64 here) would have lost all but the first changes.
        #[test]
        fn a_mass_outage_reaches_the_notifier_whole_in_one_message() {
            let h = start(CoreSettings { max_hosts: 1000, ..settings(Vec::new()) }, Saved::default());
            let beats: Vec<Heartbeat> = (0..500).map(|i| heartbeat(&format!("h{i:03}"), 1000.0)).collect();
            for batch in beats.chunks(64) {
                h.inbox.send(CoreMsg::Heartbeats(batch.to_vec())).unwrap();
            }
            h.tick_at(1016.0);
            assert_eq!(h.notify.len(), 1, "one message for the turn");
            let notified = h.notified();
            assert_eq!(notified.len(), 500);
            assert!(notified.iter().all(|(_, level)| *level == Level::Critical));
            let metrics = ask(&h.queries, |reply| Query::Metrics { plugin_data: true, reply }).unwrap();
            assert_eq!(metrics.notify_dropped, 0);
            h.stop();
        }

        #[test]
        fn a_silence_holds_and_one_notification_follows_if_the_problem_stayed() {
            let h = start(settings(Vec::new()), Saved::default());
            h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1000.0), heartbeat("b", 1000.0)])).unwrap();
            h.silence("a", 1000.0, 1100.0);
            let b = h.silence("b", 1000.0, 1100.0);
            h.tick_at(1016.0);
            assert!(h.notified().is_empty(), "both host-down alerts held");
            let alerts = ask(&h.queries, |reply| Query::Alerts { host: None, reply }).unwrap().unwrap();
            let marks: Vec<_> =
                alerts.alerts.iter().map(|a| a.silenced.as_ref().map(|s| (s.until, s.by.as_str()))).collect();
            assert_eq!(marks, [Some((1100.0, "alice")), Some((1100.0, "alice"))]);
            let hosts = ask(&h.queries, Query::Hosts).unwrap();
            assert!(hosts.iter().all(|host| host.silenced.as_ref().is_some_and(|s| s.comment == "<b>kernel</b>")));
            let metrics = ask(&h.queries, |reply| Query::Metrics { plugin_data: true, reply }).unwrap();
            assert_eq!((metrics.silences_active, metrics.silences_pending), (2, 0));
            // b comes back while silenced: nothing to say when its silence ends.
            h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("b", 1095.0)])).unwrap();
            // Ended early by hand: b was notified OK, is OK: nothing.
            let ended = ask(&h.queries, |reply| Query::EndSilence { id: b.clone(), by: "bob".into(), reply });
            assert_eq!(ended.unwrap().map(|s| s.id), Some(b.clone()));
            assert!(ask(&h.queries, |reply| Query::EndSilence { id: b, by: "bob".into(), reply }).unwrap().is_none());
            h.tick_at(1099.0);
            assert_eq!(h.notified(), []);
            // a is still down when its silence runs out: one message, CRITICAL.
            h.tick_at(1100.0);
            assert_eq!(h.notified(), [("a".to_string(), Level::Critical)]);
            h.tick_at(1101.0);
            assert!(h.notified().is_empty(), "exactly one");
            assert!(ask(&h.queries, |reply| Query::Alerts { host: None, reply }).unwrap().unwrap().alerts[0]
                .silenced
                .is_none());
            h.stop();
        }

        #[test]
        fn a_restart_in_the_middle_of_a_silence_keeps_holding() {
            let h = start(settings(Vec::new()), Saved::default());
            h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a", 1000.0)])).unwrap();
            let id = h.silence("a", 1000.0, 1200.0);
            h.tick_at(1016.0);
            assert!(h.notified().is_empty());
            let saved = h.stop();
            assert_eq!(saved.silences.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
            assert_eq!(&*saved.silence_held[0].key.metric_path, SILENT_FOR);

            let h = start(settings(Vec::new()), saved);
            h.tick_at(1100.0);
            assert!(h.notified().is_empty(), "still held after the restart");
            h.tick_at(1200.0);
            assert_eq!(h.notified(), [("a".to_string(), Level::Critical)]);
            h.stop();
        }

        #[test]
        fn a_window_in_force_at_start_up_holds_and_comes_back_to_nothing() {
            // Daily 00:00 for 200 s; the clock starts at 1000 s after midnight
            // (1970-01-01), so: 86400 → 86600 tomorrow. Start the core inside one.
            let window = Window {
                name: "nightly".into(),
                hosts: vec!["a*".into()],
                plugin: None,
                metric_path: None,
                days: [true; 7],
                start: 900,
                end: WindowEnd::For(200.0),
                comment: "backups".into(),
            };
            let h = start(CoreSettings { maintenance: vec![window], ..settings(Vec::new()) }, Saved::default());
            h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a1", 1000.0)])).unwrap();
            h.tick_at(1016.0);
            assert!(h.notified().is_empty(), "held by the window (900 to 1100)");
            let host = ask(&h.queries, |reply| Query::Host { name: "a1".into(), reply }).unwrap().unwrap();
            assert_eq!(host.silenced.map(|s| (s.id, s.until)), Some(("maintenance:nightly".into(), 1100.0)));
            let list = ask(&h.queries, Query::Silences).unwrap();
            assert_eq!(list.maintenance[0].1, Some((900.0, 1100.0)));
            // Back before the window ends: nothing, then or later.
            h.inbox.send(CoreMsg::Heartbeats(vec![heartbeat("a1", 1095.0)])).unwrap();
            h.tick_at(1100.0);
            h.tick_at(1101.0);
            assert_eq!(h.notified(), []);
            h.stop();
        }
    }
}
