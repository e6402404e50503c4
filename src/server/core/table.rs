//! The host table and its transition rules: heartbeats and silence in,
//! [`Event`]s out. Pure: it takes the time as an argument, so its rules are
//! unit-tested without clocks or sleeps. It holds each host's plugin data in
//! the [`store`](super::store); queries get [`Host`] copies with the newest
//! samples decoded.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::alerts::UpHosts;
use super::deps::Parents;
use super::CoreSettings;
use crate::server::model::{Event, Heartbeat, Host, Json, Level, PluginSeries, Sample, Status};
use crate::server::store::{History, LatestData, Layout, Layouts, Names, Plugins, Record, Series};
use crate::server::tags::TagRules;
use crate::wire::{unix_seconds, JobEvent, PluginKind};

/// A plugin sample the table has just stored, for alerts and live updates.
#[derive(Debug)]
pub struct Stored {
    pub plugin: String,
    pub kind: PluginKind,
    pub sample: Sample,
    /// The sample's data, parsed.
    pub data: Option<Value>,
}

/// The host table and its transition rules.
#[derive(Debug)]
pub struct HostTable {
    /// Behind a pointer, as the map keeps a quarter of its slots empty and
    /// a slot is as large as what it holds; an `Arc`, shared with the state
    /// thread while it writes a snapshot: a record changed meanwhile is
    /// copied then (`Arc::make_mut`), so a snapshot costs core a pointer
    /// per host, not a copy of every record.
    hosts: HashMap<String, Arc<Record>>,
    /// The layouts of every host's plugin data and the plugins' names,
    /// shared between hosts.
    layouts: Layouts,
    names: Names,
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
    /// `parents:`, compiled: each host's `Host::parents` comes from here.
    parents: Parents,
    /// `tags:`, compiled: with what clients send, each host's `Host::tags`.
    tag_rules: TagRules,
}

impl HostTable {
    pub fn new(records: Vec<Arc<Record>>, settings: &CoreSettings, started: f64) -> HostTable {
        let (mut layouts, mut names) = (Layouts::default(), Names::default());
        let mut hosts = HashMap::with_capacity(records.len());
        for mut shared in records {
            // In place: moving it out of its Arc would free, on the loading
            // thread's heap, a hole per host among what stays.
            let record = Arc::make_mut(&mut shared);
            record.latency.adopt_layouts(&mut layouts);
            for (name, series) in record.plugins.iter_mut() {
                names.adopt(name);
                series.history_mut().adopt_layouts(&mut layouts);
            }
            record.host.parents = settings.parents.of(&record.host.name);
            record.host.tags = settings.tags.of(&record.host.name, &record.host.sent_tags);
            hosts.insert(record.host.name.clone(), shared);
        }
        HostTable {
            hosts,
            layouts,
            names,
            grace: settings.grace.as_secs_f64(),
            max_hosts: settings.max_hosts,
            plugin_history: settings.plugin_history.max(1),
            max_plugins_per_host: settings.max_plugins_per_host,
            dropped_plugins: 0,
            dropped_hosts: 0,
            started,
            parents: settings.parents.clone(),
            tag_rules: settings.tags.clone(),
        }
    }

    /// hbd's `grace`, in seconds (a job may have its own: `Host::grace_or`).
    pub fn grace(&self) -> f64 {
        self.grace
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.hosts.contains_key(name)
    }

    /// What the table knows of a host, without its plugin data.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name).map(|r| &r.host)
    }

    /// A host with each plugin's newest `keep` samples.
    pub fn get(&self, name: &str, keep: usize) -> Option<Host> {
        self.hosts.get(name).map(|r| r.view(keep, self.plugin_history))
    }

    /// A host's recent round trips (empty for an unknown host).
    pub fn latency_history(&self, name: &str) -> VecDeque<[f64; 2]> {
        self.hosts.get(name).map(|r| r.latency.numbers()).unwrap_or_default()
    }

    /// One plugin's newest `limit` samples: None for an unknown host,
    /// Some(None) for an unknown plugin.
    pub fn history(&self, name: &str, plugin: &str, limit: usize) -> Option<Option<PluginSeries>> {
        let record = self.hosts.get(name)?;
        Some(record.plugins.get(plugin).map(|series| PluginSeries {
            kind: series.kind(),
            samples: series.newest(limit, self.plugin_history).into(),
        }))
    }

    /// Notes the worst level of a host's alerts, shown with the host.
    pub fn set_alert_level(&mut self, name: &str, level: Level) {
        if let Some(record) = self.hosts.get_mut(name) {
            Arc::make_mut(record).host.alert_level = level;
        }
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Host> {
        self.hosts.get_mut(name).map(|r| &mut Arc::make_mut(r).host)
    }

    /// Every host, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values().map(|r| &r.host)
    }

    /// Forgets a host: what it was, if hbd knew it (shared with a save
    /// that has yet to write it).
    pub fn remove(&mut self, name: &str) -> Option<Arc<Record>> {
        self.hosts.remove(name)
    }

    /// Down hosts not heard from for longer than `after` seconds (and not
    /// since this run started), for `host_expire_after`: a host still up
    /// (a long interval) is never forgotten between two heartbeats.
    pub fn silent_longer_than(&self, after: f64, now: f64) -> Vec<String> {
        let started = self.started;
        self.hosts
            .values()
            .filter(|r| r.host.status != Status::Up && now - r.host.last_seen.max(started) > after)
            .map(|r| r.host.name.clone())
            .collect()
    }

    /// A host and its store, for the state file: shared, not copied.
    pub fn record(&self, name: &str) -> Option<&Arc<Record>> {
        self.hosts.get(name)
    }

    /// Every host's name, in no order (a periodic save sorts them on its
    /// own thread).
    pub fn names(&self) -> Vec<String> {
        self.hosts.keys().cloned().collect()
    }

    /// Every layout a block of the table has (and perhaps a few more).
    pub fn layouts(&self) -> Vec<Arc<Layout>> {
        self.layouts.in_use()
    }

    /// Every record, leaving the table empty: for the final save.
    pub fn take_records(&mut self) -> Vec<Arc<Record>> {
        std::mem::take(&mut self.hosts).into_values().collect()
    }

    /// Hosts sorted by name, each series cut to its newest `keep` samples.
    pub fn hosts_with(&self, keep: usize) -> Vec<Host> {
        let mut hosts: Vec<Host> = self.hosts.values().map(|r| r.view(keep, self.plugin_history)).collect();
        hosts.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        hosts
    }

    /// Every host without its plugin data, by name, and with `plugin_data`
    /// each plugin's latest data, by host and plugin name.
    pub fn latest(&self, plugin_data: bool) -> (Vec<Host>, Option<LatestData>) {
        let mut records: Vec<&Record> = self.hosts.values().map(|r| &**r).collect();
        records.sort_unstable_by(|a, b| a.host.name.cmp(&b.host.name));
        let latest = plugin_data.then(|| {
            records
                .iter()
                .flat_map(|r| {
                    r.plugins
                        .iter()
                        .filter_map(|(plugin, series)| Some((r.host.name.clone(), plugin.clone(), series.latest()?)))
                })
                .collect()
        });
        (records.iter().map(|r| r.host.with_newest(0)).collect(), latest)
    }

    /// Records a heartbeat (or plugin data); pushes the events it causes
    /// onto `events` and the plugin samples it stored onto `stored`.
    pub fn heartbeat(&mut self, hb: Heartbeat, events: &mut Vec<Event>, stored: &mut Vec<Stored>) {
        let now = unix_seconds(hb.received_at);
        // What the store keeps: milliseconds, as hbc gives `at`.
        let now_ms = (now * 1000.0).round() / 1000.0;
        let full = self.hosts.len() >= self.max_hosts;
        let (keep, max_plugins) = (self.plugin_history, self.max_plugins_per_host);
        // One lookup: heartbeats from known hosts are nearly all of them.
        let record = match self.hosts.entry(hb.name) {
            Entry::Occupied(known) => Arc::make_mut(known.into_mut()),
            Entry::Vacant(_) if full => {
                self.dropped_hosts += 1;
                return;
            }
            Entry::Vacant(new) => {
                // Both copies of the name made here, on core's heap: the one
                // the udp thread made lies among its short-lived buffers, and
                // kept as long as the host it would pin their pages.
                let sent = new.into_key();
                let name = sent.as_str().to_owned();
                let parents = self.parents.of(&name);
                let tags = self.tag_rules.of(&name, &[]);
                events.push(Event::HostNew { name: sent, address: hb.source });
                Arc::make_mut(self.hosts.entry(name.clone()).or_insert(Arc::new(Record {
                    host: Host {
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
                        peer: false,
                        alert_level: Level::Ok,
                        dns: BTreeMap::new(),
                        outages: VecDeque::new(),
                        latency_history: VecDeque::new(),
                        parents,
                        unreachable_via: Vec::new(),
                        reprieve: None,
                        sent_tags: Vec::new(),
                        tags,
                        silenced: None,
                        job: hb.job.as_ref().map(|_| Box::default()),
                    },
                    plugins: Plugins::default(),
                    latency: History::default(),
                })))
            }
        };
        let host = &mut record.host;
        // A job's start or failure is no sign of life: only a success
        // keeps it up (it is down when none came within interval + grace).
        let alive = hb.job.as_ref().is_none_or(|job| job.event == JobEvent::Ok);
        if host.address != hb.source.ip() {
            events.push(Event::AddressChanged { name: host.name.clone(), old: host.address, new: hb.source.ip() });
            host.address = hb.source.ip();
        }
        if host.status == Status::Down && alive {
            events.push(Event::HostUp {
                name: host.name.clone(),
                address: hb.source,
                down_for: now - host.status_since,
            });
            host.record_outage(now);
            host.status = Status::Up;
            host.status_since = now;
        }
        if host.status == Status::Unreachable && alive {
            events.push(Event::HostReachable {
                name: host.name.clone(),
                address: hb.source,
                unreachable_for: now - host.status_since,
            });
            host.status = Status::Up;
            host.status_since = now;
            host.unreachable_via.clear();
            host.reprieve = None;
        }
        host.port = hb.source.port();
        if alive {
            host.last_seen = host.last_seen.max(now);
        }
        if let Some(job) = &hb.job {
            if job.interval_given {
                host.interval = hb.interval;
            }
            host.count += 1;
            host.job.get_or_insert_with(Box::default);
            // hbc sends its tags with each signal; a bare datagram (a
            // script's) sends none and leaves the job's as they are.
            if !hb.tags.is_empty() && host.sent_tags != hb.tags {
                host.tags = self.tag_rules.of(&host.name, &hb.tags);
                host.sent_tags = hb.tags.clone();
            }
        }
        if hb.counts {
            host.interval = hb.interval;
            host.count += 1;
            host.peer = hb.from_hbd;
            if host.sent_tags != hb.tags {
                host.tags = self.tag_rules.of(&host.name, &hb.tags);
                host.sent_tags = hb.tags;
            }
        }
        if hb.signed_at_us > host.last_signed_us {
            host.last_signed_us = hb.signed_at_us;
        }
        if let Some(latency) = hb.latency_ms {
            host.latency_ms = Some(latency);
            if record.latency.push_number(&mut self.layouts, keep, now_ms, latency).is_err() {
                log::warn!("core: round trip of {} not stored", host.name);
            }
        }
        let new = hb.plugins.iter().filter(|s| !record.plugins.contains_key(&s.name)).count();
        record.plugins.reserve_exact(new.min(max_plugins.saturating_sub(record.plugins.len())));
        for sample in hb.plugins {
            if !record.plugins.contains_key(&sample.name) && record.plugins.len() >= max_plugins {
                self.dropped_plugins += 1;
                continue;
            }
            // Checked by `wire` when it was decoded; parsing it again cannot fail.
            let data: Option<Value> = sample.data.as_deref().and_then(|text| serde_json::from_str(text).ok());
            let kept =
                Sample { at: sample.at, received: now_ms, data: sample.data.map(Json::from), error: sample.error };
            let series = record.plugins.get_or_insert_with(&mut self.names, &sample.name, || Series::new(sample.kind));
            if series.kind() != sample.kind {
                *series = Series::new(sample.kind);
            }
            if series.push(&mut self.layouts, keep, &kept, data.as_ref()).is_err() {
                log::warn!("core: plugin {} of {}: sample not stored", sample.name, host.name);
            }
            series.declare_interval(sample.interval);
            stored.push(Stored { plugin: sample.name, kind: sample.kind, sample: kept, data });
        }
    }

    /// Marks down every up host silent for longer than its interval plus
    /// grace, or unreachable when its parents are down (see [`Self::decide`]).
    pub fn expire(&mut self, now: f64, events: &mut Vec<Event>) {
        let started = self.started;
        let due = |h: &Host| match h.status {
            Status::Up if h.parents.is_empty() => now - h.last_seen.max(started) > h.interval + h.grace_or(self.grace),
            // Behind parents, a missed heartbeat is a question already.
            Status::Up => now - h.last_seen.max(started) > h.interval,
            Status::Unreachable => true,
            Status::Down => false,
        };
        let mut due: Vec<(usize, String)> =
            self.hosts.values().filter(|r| due(&r.host)).map(|r| (0, r.host.name.clone())).collect();
        if due.is_empty() {
            return;
        }
        // Parents before their children (a router behind a router too), so
        // that a child sees what its parents became in this same tick.
        for (depth, name) in &mut due {
            *depth = self.depth(name, 0);
        }
        due.sort_unstable();
        for (_, name) in due {
            self.decide(&name, now, events);
        }
    }

    /// How many parents deep `name` stands (0: none known); bounded, though
    /// the config has no cycles.
    fn depth(&self, name: &str, seen: usize) -> usize {
        let Some(host) = self.host(name).filter(|_| seen < 32) else { return 0 };
        host.parents.iter().filter(|p| self.contains(p)).map(|p| 1 + self.depth(p, seen + 1)).max().unwrap_or(0)
    }
}

/// What a host's parents say about its silence.
enum Behind {
    /// No parents, or one is up and has been heard within its interval (an
    /// unknown parent counts so: hbd cannot say it is down): the host's
    /// silence is its own.
    Reachable,
    /// Some parent is up but missed its own heartbeat: it may be going
    /// down, which would explain this host's silence; wait for it.
    Undecided,
    /// Every parent is down or unreachable.
    Cut,
}

/// Dependencies: a host that went silent behind parents that are all down
/// or unreachable is unreachable, not down.
impl HostTable {
    /// Decides one host that missed its interval (or is unreachable).
    ///
    /// Up, without parents: down past its interval plus grace. Up with
    /// parents: unreachable once every parent is down or unreachable (a
    /// missed heartbeat is enough then); past its interval plus grace, down
    /// unless some parent is up but itself overdue, in which case the
    /// decision waits for the parent's. Unreachable: stays so while its
    /// parents are all down; once one is back, it has its interval plus
    /// grace from then to send, and is down after that.
    fn decide(&mut self, name: &str, now: f64, events: &mut Vec<Event>) {
        let Some(host) = self.host(name) else { return };
        let behind = self.behind(host, now);
        let grace = host.grace_or(self.grace);
        let past_deadline = now - host.last_seen.max(self.started) > host.interval + grace;
        let (status, interval) = (host.status, host.interval);
        let via: Vec<String> =
            host.parents.iter().filter(|p| self.host(p).is_some_and(|p| p.status != Status::Up)).cloned().collect();
        let Some(host) = self.get_mut(name) else { return };
        match (status, behind) {
            (Status::Up, Behind::Cut) => {
                host.status = Status::Unreachable;
                host.status_since = now;
                host.unreachable_via = via.clone();
                host.reprieve = None;
                events.push(Event::HostUnreachable {
                    name: name.to_string(),
                    via,
                    last_seen: host.last_seen,
                    silent_for: now - host.last_seen,
                });
            }
            (Status::Up, Behind::Reachable) if past_deadline => mark_down(host, now, events),
            (Status::Unreachable, Behind::Cut) => {
                host.unreachable_via = via;
                host.reprieve = None;
            }
            (Status::Unreachable, _) => match host.reprieve {
                None => host.reprieve = Some(now + interval + grace),
                Some(until) if now > until => {
                    host.unreachable_via.clear();
                    host.reprieve = None;
                    mark_down(host, now, events);
                }
                Some(_) => {}
            },
            _ => {}
        }
    }

    fn behind(&self, host: &Host, now: f64) -> Behind {
        if host.parents.is_empty() {
            return Behind::Reachable;
        }
        let mut behind = Behind::Cut;
        for parent in &host.parents {
            match self.host(parent) {
                None => return Behind::Reachable,
                Some(p) if p.status != Status::Up => {}
                Some(p) if now - p.last_seen.max(self.started) > p.interval => behind = Behind::Undecided,
                Some(_) => return Behind::Reachable,
            }
        }
        behind
    }

    /// For each down host with hosts unreachable behind it, how many:
    /// directly or through other unreachable hosts (a router behind a
    /// router), each counted once.
    pub fn unreachable_behind(&self) -> HashMap<String, usize> {
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for host in self.iter().filter(|h| h.status == Status::Unreachable) {
            for via in &host.unreachable_via {
                children.entry(via.as_str()).or_default().push(&host.name);
            }
        }
        let mut counts = HashMap::new();
        for down in self.iter().filter(|h| h.status == Status::Down && children.contains_key(h.name.as_str())) {
            let mut seen: HashSet<&str> = HashSet::new();
            let mut next = vec![down.name.as_str()];
            while let Some(host) = next.pop() {
                for child in children.get(host).into_iter().flatten() {
                    if seen.insert(child) {
                        next.push(child);
                    }
                }
            }
            counts.insert(down.name.clone(), seen.len());
        }
        counts
    }
}

fn mark_down(host: &mut Host, now: f64, events: &mut Vec<Event>) {
    host.status = Status::Down;
    host.status_since = now;
    events.push(Event::HostDown {
        name: host.name.clone(),
        last_seen: host.last_seen,
        silent_for: now - host.last_seen,
    });
}

/// For alerts: each up host's monitor plugins with ≥ 2 samples, when each
/// was last heard (not before this run started) and the spacing its samples
/// are expected at: the interval its client declares, else hbd's estimate
/// (`store::Spacing`), and never less than the host's own interval. A
/// plugin is listed only while its host has been heard since its sample
/// was due: when the whole host is silent, that is the host-down alert's
/// to say, not one "stopped reporting" per plugin.
impl UpHosts for HostTable {
    fn is_up(&self, host: &str) -> bool {
        self.hosts.get(host).is_some_and(|r| r.host.status == Status::Up)
    }

    fn last_seen(&self, host: &str) -> Option<f64> {
        self.hosts.get(host).map(|r| r.host.last_seen)
    }

    fn each_plugin(&self, each: &mut dyn FnMut(&str, &str, f64, f64)) {
        for record in self.hosts.values().filter(|r| r.host.status == Status::Up) {
            for (name, series) in record.plugins.iter() {
                if let Some((last, spacing)) = series.expected() {
                    let interval = spacing.max(record.host.interval);
                    if record.host.last_seen > last + interval {
                        each(&record.host.name, name, last.max(self.started), interval);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::wire::PluginSample;

    /// Every record, shared, as a save gives them (a restart reads them back).
    fn records(t: &HostTable) -> Vec<Arc<Record>> {
        let mut names = t.names();
        names.sort_unstable();
        names.iter().filter_map(|name| t.record(name).cloned()).collect()
    }

    fn hb(name: &str, ip: &str, at: f64) -> Heartbeat {
        Heartbeat::for_test(name, ip, at)
    }

    fn settings() -> CoreSettings {
        CoreSettings {
            grace: Duration::from_secs(5),
            state_save_interval: Duration::from_secs(60),
            max_hosts: 2,
            plugin_history: 3,
            max_plugins_per_host: 2,
            rules: Default::default(),
            dyndomains: Vec::new(),
            host_expire_after: None,
            standby_for: None,
            parents: Parents::default(),
            tags: TagRules::default(),
            maintenance: Vec::new(),
        }
    }

    /// A host's tags: what its client sends (a heartbeat replaces them, a
    /// plugin-data message does not) joined with hbd.yaml's patterns; kept
    /// across a restart.
    #[test]
    fn tags_from_the_client_and_the_config() {
        let rules = TagRules::new(vec![("db".into(), vec!["db*".into()])]);
        let settings = CoreSettings { tags: rules, ..settings() };
        let mut t = HostTable::new(Vec::new(), &settings, 1000.0);
        let (mut events, mut stored) = (Vec::new(), Vec::new());
        let tagged = |tags: &[&str], at| Heartbeat {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..hb("db1", "10.0.0.1", at)
        };
        t.heartbeat(tagged(&["eu"], 1000.0), &mut events, &mut stored);
        assert_eq!(t.host("db1").unwrap().tags, ["db", "eu"]);
        t.heartbeat(Heartbeat { counts: false, ..tagged(&[], 1001.0) }, &mut events, &mut stored);
        assert_eq!(t.host("db1").unwrap().tags, ["db", "eu"], "PLG carries no tags");
        t.heartbeat(tagged(&["prod"], 1002.0), &mut events, &mut stored);
        assert_eq!(t.host("db1").unwrap().tags, ["db", "prod"]);
        let restored = HostTable::new(records(&t), &settings, 2000.0);
        assert_eq!(restored.host("db1").unwrap().tags, ["db", "prod"]);
        t.heartbeat(tagged(&[], 1003.0), &mut events, &mut stored);
        assert_eq!(t.host("db1").unwrap().tags, ["db"]);
    }

    fn sample(name: &str, kind: PluginKind, at: f64) -> PluginSample {
        PluginSample {
            name: name.into(),
            kind,
            at,
            data: Some(Arc::<str>::from(format!("{{\"at\":{at}}}"))),
            error: None,
            interval: None,
        }
    }

    fn table() -> HostTable {
        HostTable::new(Vec::new(), &settings(), 1000.0)
    }

    fn listed(t: &HostTable) -> Vec<(String, String, f64, f64)> {
        let mut seen = Vec::new();
        t.each_plugin(&mut |host, plugin, last, interval| {
            seen.push((host.to_string(), plugin.to_string(), last, interval))
        });
        seen
    }

    /// What alerts see: up hosts' monitor plugins with two samples, the
    /// interval by the client's clock, nothing heard before the start, and
    /// only while the host still talks without them.
    #[test]
    fn up_hosts_list_monitor_plugins_with_their_interval() {
        let (mut t, mut ev) = (table(), Vec::new());
        for (i, at) in [(0, 100.0), (1, 160.5)] {
            let mut beat = hb("a", "10.0.0.1", 990.0 + f64::from(i) * 20.0);
            beat.plugins = vec![sample("cpu", PluginKind::Monitor, at), sample("os", PluginKind::Info, at)];
            t.heartbeat(beat, &mut ev, &mut Vec::new());
        }
        let mut b = hb("b", "10.0.0.2", 1000.0);
        b.plugins = vec![sample("cpu", PluginKind::Monitor, 100.0)];
        t.heartbeat(b, &mut ev, &mut Vec::new());
        assert!(listed(&t).is_empty(), "a is as silent as its plugin: that is the host-down alert's to say");
        t.heartbeat(hb("a", "10.0.0.1", 1070.0), &mut ev, &mut Vec::new());
        assert!(listed(&t).is_empty(), "the sample is not yet due");
        t.heartbeat(hb("a", "10.0.0.1", 1071.0), &mut ev, &mut Vec::new());
        assert_eq!(listed(&t), [("a".to_string(), "cpu".to_string(), 1010.0, 60.5)]);
        assert!(t.is_up("a") && t.is_up("b") && !t.is_up("c"));
        t.expire(2000.0, &mut ev);
        assert!(listed(&t).is_empty() && !t.is_up("a"), "down hosts are left out");
    }

    /// The spacing a plugin is expected at: never less than the host's
    /// interval, not shrunk by a burst, and what the client declares.
    #[test]
    fn expected_spacing_is_declared_or_robust() {
        let (mut t, mut ev) = (table(), Vec::new());
        let send = |t: &mut HostTable, ev: &mut Vec<Event>, at: f64, interval: Option<f64>| {
            let mut beat = hb("a", "10.0.0.1", at);
            beat.plugins = vec![PluginSample { interval, ..sample("cpu", PluginKind::Monitor, at) }];
            t.heartbeat(beat, ev, &mut Vec::new());
        };
        let spacing = |t: &mut HostTable| {
            t.heartbeat(hb("a", "10.0.0.1", 5000.0), &mut Vec::new(), &mut Vec::new());
            listed(t)[0].3
        };
        // Five samples half a second apart: the host's interval (10 s) at least.
        for i in 0..5 {
            send(&mut t, &mut ev, 1000.0 + f64::from(i) * 0.5, None);
        }
        assert_eq!(spacing(&mut t), 10.0);
        // Every 60 s, then a burst of four 1 s apart: still 60.
        let (mut t, mut at) = (table(), 1000.0);
        for _ in 0..10 {
            send(&mut t, &mut ev, at, None);
            at += 60.0;
        }
        for _ in 0..4 {
            send(&mut t, &mut ev, at, None);
            at += 1.0;
        }
        assert_eq!(spacing(&mut t), 60.0);
        // Declared: what the client says, whatever the gaps.
        let mut t = table();
        send(&mut t, &mut ev, 1000.0, Some(300.0));
        send(&mut t, &mut ev, 1001.0, Some(300.0));
        assert_eq!(spacing(&mut t), 300.0);
    }

    /// `host_expire_after` forgets only hosts that are down: one with an
    /// interval longer than the expiry is not forgotten between heartbeats.
    #[test]
    fn only_down_hosts_expire() {
        let (mut t, mut ev) = (table(), Vec::new());
        let mut slow = hb("slow", "10.0.0.1", 1000.0);
        slow.interval = 600.0;
        t.heartbeat(slow, &mut ev, &mut Vec::new());
        t.heartbeat(hb("quick", "10.0.0.2", 1000.0), &mut ev, &mut Vec::new());
        t.expire(1100.0, &mut ev);
        assert_eq!(t.silent_longer_than(60.0, 1100.0), ["quick"], "slow is silent as long, but up");
    }

    #[test]
    fn first_heartbeat_creates_an_up_host() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev, &mut Vec::new());
        assert!(matches!(&ev[..], [Event::HostNew { name, .. }] if name == "a"));
        let h = t.get("a", usize::MAX).unwrap();
        assert_eq!((h.status, h.count, h.first_seen, h.last_seen), (Status::Up, 1, 1000.0, 1000.0));
    }

    #[test]
    fn silence_beyond_interval_plus_grace_means_down_and_a_heartbeat_means_up() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev, &mut Vec::new());
        ev.clear();
        t.expire(1015.0, &mut ev);
        assert!(ev.is_empty(), "interval 10 + grace 5 not yet exceeded");
        t.expire(1015.5, &mut ev);
        assert!(matches!(&ev[..], [Event::HostDown { silent_for, .. }] if *silent_for == 15.5));
        ev.clear();
        t.expire(1100.0, &mut ev);
        assert!(ev.is_empty(), "down is reported once");
        t.heartbeat(hb("a", "10.0.0.1", 1200.0), &mut ev, &mut Vec::new());
        assert!(matches!(&ev[..], [Event::HostUp { down_for, .. }] if *down_for == 184.5));
        assert_eq!(t.get("a", usize::MAX).unwrap().count, 2);
    }

    #[test]
    fn address_change_is_an_event_port_change_is_not() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev, &mut Vec::new());
        ev.clear();
        let mut other_port = hb("a", "10.0.0.1", 1001.0);
        other_port.source.set_port(1);
        t.heartbeat(other_port, &mut ev, &mut Vec::new());
        assert!(ev.is_empty());
        t.heartbeat(hb("a", "2001:db8::1", 1002.0), &mut ev, &mut Vec::new());
        assert!(matches!(&ev[..], [Event::AddressChanged { new, .. }] if new.to_string() == "2001:db8::1"));
    }

    #[test]
    fn restored_hosts_get_a_fresh_deadline_from_start() {
        let mut t = table();
        let mut ev = Vec::new();
        t.heartbeat(hb("a", "10.0.0.1", 500.0), &mut ev, &mut Vec::new());
        let mut restarted = HostTable::new(records(&t), &settings(), 1000.0);
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
        t.heartbeat(first, &mut ev, &mut Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 999.0), &mut ev, &mut Vec::new());
        let h = t.get("a", usize::MAX).unwrap();
        assert_eq!((h.last_seen, h.last_signed_us), (1000.0, Some(9)));
    }

    #[test]
    fn plugin_history_is_bounded_info_keeps_latest_and_hosts_cap_plugins() {
        let (mut t, mut ev) = (table(), Vec::new());
        for i in 0..5 {
            let mut beat = hb("a", "10.0.0.1", 1000.0 + i as f64);
            beat.plugins = vec![sample("cpu", PluginKind::Monitor, i as f64), sample("os", PluginKind::Info, i as f64)];
            t.heartbeat(beat, &mut ev, &mut Vec::new());
        }
        let host = t.get("a", usize::MAX).unwrap();
        let cpu: Vec<f64> = host.plugins["cpu"].samples.iter().map(|s| s.at).collect();
        assert_eq!(cpu, [2.0, 3.0, 4.0], "history of 3, oldest first");
        assert_eq!(host.plugins["os"].samples.len(), 1);
        assert_eq!(host.plugins["os"].samples[0].at, 4.0);

        let mut third = hb("a", "10.0.0.1", 1010.0);
        third.plugins = vec![sample("disk", PluginKind::Monitor, 9.0)];
        t.heartbeat(third, &mut ev, &mut Vec::new());
        assert!(!t.get("a", usize::MAX).unwrap().plugins.contains_key("disk"), "max 2 plugins per host");
        assert_eq!(t.dropped_plugins, 1);
    }

    #[test]
    fn a_full_table_refuses_new_hosts_but_not_known_ones() {
        let (mut t, mut ev) = (table(), Vec::new());
        for name in ["a", "b", "c"] {
            t.heartbeat(hb(name, "10.0.0.1", 1000.0), &mut ev, &mut Vec::new());
        }
        assert_eq!((t.len(), t.dropped_hosts), (2, 1));
        t.heartbeat(hb("a", "10.0.0.1", 1001.0), &mut ev, &mut Vec::new());
        assert_eq!(t.get("a", usize::MAX).unwrap().count, 2);
    }

    #[test]
    fn plugin_only_messages_are_life_but_not_heartbeats() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev, &mut Vec::new());
        let mut plg = hb("a", "10.0.0.1", 1020.0);
        plg.counts = false;
        plg.interval = 999.0;
        plg.latency_ms = Some(0.5);
        t.heartbeat(plg, &mut ev, &mut Vec::new());
        let h = t.get("a", usize::MAX).unwrap();
        assert_eq!((h.count, h.interval, h.last_seen, h.latency_ms), (1, 10.0, 1020.0, Some(0.5)));
    }

    #[test]
    fn the_store_survives_serialization() {
        let (mut t, mut ev) = (table(), Vec::new());
        let mut beat = hb("a", "10.0.0.1", 1000.0);
        beat.plugins = vec![sample("cpu", PluginKind::Monitor, 1.0)];
        t.heartbeat(beat, &mut ev, &mut Vec::new());
        let restarted = HostTable::new(records(&t), &settings(), 2000.0);
        assert_eq!(restarted.get("a", 9), t.get("a", 9));
        let cpu = &restarted.get("a", 9).unwrap().plugins["cpu"];
        assert_eq!(cpu.samples[0].data.as_ref().unwrap().as_str(), r#"{"at":1}"#);
    }

    #[test]
    fn availability_counts_down_time_over_a_day_and_a_week() {
        let (mut t, mut ev) = (table(), Vec::new());
        t.heartbeat(hb("a", "10.0.0.1", 1000.0), &mut ev, &mut Vec::new());
        assert_eq!(t.host("a").unwrap().availability(1000.0, 86400.0), None, "nothing seen yet in the window");
        // Down from 1015.5 (interval 10 + grace 5) until 2015.5: 1000 s of 2000.
        t.expire(1015.5, &mut ev);
        t.heartbeat(hb("a", "10.0.0.1", 2015.5), &mut ev, &mut Vec::new());
        let h = t.host("a").unwrap();
        assert_eq!(h.outages, [[1015.5, 2015.5]]);
        assert_eq!(h.availability(3000.0, 86400.0), Some(50.0));
        // Down again now: the current outage counts up to now.
        t.expire(2031.0, &mut ev);
        let h = t.host("a").unwrap();
        // Up 1000..1015.5 and 2015.5..2031 of 2000 s: 31 s, 1.55 %.
        assert!((h.availability(3000.0, 86400.0).unwrap() - 1.55).abs() < 1e-9);
        // Back at 2100; a day later both outages have left the 24 h window, not the week's.
        t.heartbeat(hb("a", "10.0.0.1", 2100.0), &mut ev, &mut Vec::new());
        let later = 2100.0 + 86400.0 + 10.0;
        let h = t.host("a").unwrap();
        assert_eq!(h.availability(later, 86400.0), Some(100.0));
        let week = h.availability(later, 7.0 * 86400.0).unwrap();
        assert!((week - 100.0 * (1.0 - 1069.0 / (later - 1000.0))).abs() < 1e-9, "{week}");
    }

    // ── dependencies ──────────────────────────────────────────────────

    /// A table with `parents:` entries; grace 5, started at 1000.
    fn behind(entries: &[(&str, &[&str])]) -> HostTable {
        let parents = Parents::new(
            entries.iter().map(|(k, v)| (k.to_string(), v.iter().map(|p| p.to_string()).collect())).collect(),
        );
        HostTable::new(Vec::new(), &CoreSettings { max_hosts: 100, parents, ..settings() }, 1000.0)
    }

    fn beat(t: &mut HostTable, name: &str, interval: f64, at: f64) -> Vec<Event> {
        let (mut events, mut stored) = (Vec::new(), Vec::new());
        t.heartbeat(Heartbeat { interval, ..hb(name, "10.0.0.1", at) }, &mut events, &mut stored);
        events
    }

    fn tick(t: &mut HostTable, now: f64) -> Vec<(String, &'static str)> {
        let mut events = Vec::new();
        t.expire(now, &mut events);
        events
            .into_iter()
            .map(|e| match e {
                Event::HostDown { name, .. } => (name, "down"),
                Event::HostUnreachable { name, .. } => (name, "unreachable"),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn status(t: &HostTable, name: &str) -> Status {
        t.host(name).map(|h| h.status).unwrap()
    }

    fn named(events: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        events.iter().map(|(n, e)| (n.to_string(), *e)).collect()
    }

    /// Everything behind two routers stops at once: the outer router is
    /// down, the inner one and the hosts behind it unreachable, all in the
    /// tick the outer one is decided, and it has both behind it.
    #[test]
    fn a_chain_is_decided_parents_first_in_one_tick() {
        let mut t = behind(&[("site1-*", &["site1-router"]), ("site1-router", &["core"])]);
        // Children first, so that the map's order is no help.
        for name in ["site1-web", "site1-db", "site1-router", "core"] {
            beat(&mut t, name, 10.0, 1000.0);
        }
        assert_eq!(t.host("site1-router").unwrap().parents, ["core"]);
        assert!(tick(&mut t, 1012.0).is_empty(), "missed a heartbeat, but core is not down yet");
        let mut events = tick(&mut t, 1015.5);
        events.sort();
        assert_eq!(
            events,
            named(&[
                ("core", "down"),
                ("site1-db", "unreachable"),
                ("site1-router", "unreachable"),
                ("site1-web", "unreachable")
            ])
        );
        assert_eq!(t.host("site1-web").unwrap().unreachable_via, ["site1-router"]);
        assert_eq!(t.unreachable_behind(), [("core".to_string(), 3)].into());
        assert!(tick(&mut t, 1100.0).is_empty(), "unreachable stays so while core is down");
        assert_eq!(t.silent_longer_than(50.0, 1100.0).len(), 4, "host_expire_after takes unreachable hosts too");
    }

    /// Behind two parents a host is unreachable only when both are down.
    #[test]
    fn two_parents_both_down_or_it_is_down() {
        let mut t = behind(&[("dual", &["a", "b"])]);
        for name in ["dual", "a", "b"] {
            beat(&mut t, name, 10.0, 1000.0);
        }
        beat(&mut t, "b", 10.0, 1010.0);
        assert_eq!(
            tick(&mut t, 1015.5),
            named(&[("a", "down"), ("dual", "down")]),
            "b is up: dual's silence is its own"
        );

        let mut t = behind(&[("dual", &["a", "b"])]);
        for name in ["dual", "a", "b"] {
            beat(&mut t, name, 10.0, 1000.0);
        }
        let mut events = tick(&mut t, 1015.5);
        events.sort();
        assert_eq!(events, named(&[("a", "down"), ("b", "down"), ("dual", "unreachable")]));
        assert_eq!(t.host("dual").unwrap().unreachable_via, ["a", "b"]);
        assert_eq!(t.unreachable_behind(), [("a".to_string(), 1), ("b".to_string(), 1)].into());
    }

    /// A child past its deadline waits while its parent is up but has
    /// itself missed a heartbeat; the parent decides it.
    #[test]
    fn a_child_waits_for_an_overdue_parent() {
        for parent_returns in [false, true] {
            let mut t = behind(&[("web", &["router"])]);
            beat(&mut t, "router", 6.0, 1000.0);
            beat(&mut t, "web", 2.0, 1000.0);
            assert!(tick(&mut t, 1008.0).is_empty(), "web is past 2 + 5 s, but router is overdue: wait");
            assert_eq!(status(&t, "web"), Status::Up);
            if parent_returns {
                beat(&mut t, "router", 6.0, 1009.0);
                assert_eq!(tick(&mut t, 1010.0), named(&[("web", "down")]), "router is fine: web is down");
            } else {
                let mut events = tick(&mut t, 1011.5);
                events.sort();
                assert_eq!(events, named(&[("router", "down"), ("web", "unreachable")]));
            }
        }
        // A parent that has not missed its heartbeat does not hold anyone.
        let mut t = behind(&[("web", &["router"])]);
        beat(&mut t, "router", 30.0, 1000.0);
        beat(&mut t, "web", 2.0, 1000.0);
        assert_eq!(tick(&mut t, 1007.5), named(&[("web", "down")]));
        // Nor does a parent hbd has never heard of.
        let mut t = behind(&[("web", &["nowhere"])]);
        beat(&mut t, "web", 2.0, 1000.0);
        assert_eq!(tick(&mut t, 1007.5), named(&[("web", "down")]));
    }

    /// The parent is back: each unreachable child has its interval plus
    /// grace from then; one that sends is up without having been down,
    /// one that does not is down after that.
    #[test]
    fn when_the_parent_returns_children_have_their_interval_plus_grace() {
        let mut t = behind(&[("site-*", &["router"])]);
        for name in ["router", "site-a", "site-b"] {
            beat(&mut t, name, 10.0, 1000.0);
        }
        assert_eq!(tick(&mut t, 1015.5).len(), 3);
        assert!(beat(&mut t, "router", 10.0, 1100.0).iter().any(|e| matches!(e, Event::HostUp { .. })));
        assert!(tick(&mut t, 1100.5).is_empty(), "a fresh deadline: 1115.5");
        let events = beat(&mut t, "site-a", 10.0, 1105.0);
        assert!(
            matches!(events.as_slice(), [Event::HostReachable { name, unreachable_for, .. }] if name == "site-a" && *unreachable_for == 89.5),
            "{events:?}"
        );
        assert_eq!(status(&t, "site-a"), Status::Up);
        beat(&mut t, "site-a", 10.0, 1112.0);
        beat(&mut t, "router", 10.0, 1112.0);
        assert!(tick(&mut t, 1115.0).is_empty());
        assert_eq!(tick(&mut t, 1116.0), named(&[("site-b", "down")]));
        assert!(t.host("site-b").unwrap().unreachable_via.is_empty());
        assert!(t.unreachable_behind().is_empty());
    }
}
