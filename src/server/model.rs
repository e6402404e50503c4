//! The server's data model: what hbd knows about hosts and what changes in
//! it. Owned and mutated by `core` alone; the other threads get copies
//! (queries, snapshots, updates) and render them in their own formats
//! (`views` for the API and WebSocket, `journal` for the file).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::wire::{JobEvent, JobSignal, PluginKind, PluginSample};

/// An accepted message, as `udp` hands it to `core`.
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
    /// Sent by a peer hbd (`peers:`) rather than hbc.
    pub from_hbd: bool,
    pub plugins: Vec<PluginSample>,
    /// The tags the client sent (checked, sorted); empty from clients that
    /// send none. Only a heartbeat (`counts`) sets a host's.
    pub tags: Vec<String>,
    /// A job's signal (`JOB`): only a success is a sign of life.
    pub job: Option<JobSignal>,
}

#[cfg(test)]
impl Heartbeat {
    /// A heartbeat of interval 10 from `ip`, received at `at` (Unix seconds).
    pub fn for_test(name: &str, ip: &str, at: f64) -> Heartbeat {
        Heartbeat {
            name: name.into(),
            source: SocketAddr::new(ip.parse().expect("a test IP address"), 40000),
            interval: 10.0,
            received_at: std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(at),
            signed_at_us: None,
            counts: true,
            latency_ms: None,
            from_hbd: false,
            plugins: Vec::new(),
            tags: Vec::new(),
            job: None,
        }
    }
}

/// What `udp` counted since it started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UdpStats {
    pub received: u64,
    /// Indexed by `RejectReason::index()`.
    pub rejected: Vec<u64>,
    pub dropped_plugins: u64,
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
    /// When hbd received it, to the millisecond (as hbc gives `at`): the
    /// store keeps millisecond times in a byte or two.
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
    /// Silent while every one of its parents (`parents:`) is down or
    /// unreachable: not known to be down, so not reported as down.
    Unreachable,
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
    /// Another hbd that watches us (its `peers:` name us): its heartbeats say so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub peer: bool,
    /// The worst level of the host's alerts; kept by core from the alert
    /// table (which the state file holds), so not saved here.
    #[serde(skip, default = "ok_level")]
    pub alert_level: Level,
    /// Dynamic DNS: for each domain of `dyndomains`, the address the DNS
    /// worker last confirmed it set `name.domain` to. A domain missing here,
    /// or set to another address than `address`, is pending.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dns: BTreeMap<String, IpAddr>,
    /// Past times down, `[from, to]`, oldest first, for availability: those
    /// of the last [`AVAILABILITY_KEPT`] seconds, at most [`MAX_OUTAGES`].
    /// The current one, while down, is `status_since` to now.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub outages: VecDeque<[f64; 2]>,
    /// The client's recent round trips, `[when, ms]`, oldest first, as many
    /// as `plugin_history`: for the host page's latency chart.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub latency_history: VecDeque<[f64; 2]>,
    /// The parents `parents:` gives it (set by the host table from the
    /// config, so not saved).
    #[serde(skip)]
    pub parents: Vec<String>,
    /// While unreachable: the parents that are down or unreachable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable_via: Vec<String>,
    /// An unreachable host whose parent came back has until then to send
    /// (its interval plus grace from the return); None otherwise.
    #[serde(skip)]
    pub reprieve: Option<f64>,
    /// The tags its client sent last (saved, so a restart keeps them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_tags: Vec<String>,
    /// Its tags: `sent_tags` and those `tags:` of hbd.yaml give it, sorted
    /// (set by the host table, so not saved).
    #[serde(skip)]
    pub tags: Vec<String>,
    /// The silence or maintenance window that covers the whole host now:
    /// set by core on the copies it hands out, never saved. (Boxed: every
    /// host's record has the field and almost none a silence; inline it
    /// was 80 of a record's 520 bytes.)
    #[serde(skip)]
    pub silenced: Option<Box<Silenced>>,
    /// Set for a job (a check fed by `JOB` signals, `hbc run`): its
    /// settings and recent runs. Saved with the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<Job>>,
}

/// Runs a job keeps, newest last: enough to see a pattern, small enough
/// (at most 20 × 4 KiB of output) for thousands of jobs.
pub const MAX_RUNS: usize = 20;

/// What hbd knows of a job beyond what it knows of any host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Seconds after its interval before it is down; None: hbd's `grace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<f64>,
    /// A run not finished this long (plus grace) after its start is CRITICAL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// The last [`MAX_RUNS`] runs, oldest first.
    #[serde(default)]
    pub runs: VecDeque<Run>,
    /// The `seq` of the last signal taken: a repeat is not a new run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
}

impl Job {
    /// The job with only its last run, and that without output.
    pub fn summary(&self) -> Job {
        let last = self.runs.back().map(|run| Run { output: None, ..run.clone() });
        Job { grace: self.grace, timeout: self.timeout, runs: last.into_iter().collect(), last_seq: self.last_seq }
    }
}

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// Started, not ended yet.
    Running,
    Ok,
    Failed,
    /// Started, but another run started before it ended.
    Unfinished,
}

/// One run of a job. Times are hbd's (Unix seconds); `duration_s` is the
/// sender's measure when it gave one, else hbd's from start to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub outcome: RunOutcome,
    pub started: Option<f64>,
    pub ended: Option<f64>,
    pub duration_s: Option<f64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The tail of its output (at most `wire::JOB_OUTPUT_MAX` bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Availability is shown over a day and a week; outages older are let go.
pub const AVAILABILITY_KEPT: f64 = 7.0 * 86400.0;
/// A host that flaps all week keeps at most this many outages (a few KiB).
pub const MAX_OUTAGES: usize = 500;

#[cfg(test)]
impl Host {
    /// An up host at 192.0.2.1:1 (interval 30, first seen at 1, last at
    /// 2), every other field at its default: tests set what they check.
    pub fn for_test(name: &str) -> Host {
        let fields = serde_json::json!({
            "name": name, "address": "192.0.2.1", "port": 1, "interval": 30.0, "first_seen": 1.0,
            "last_seen": 2.0, "count": 1, "status": "up", "status_since": 1.0,
        });
        serde_json::from_value(fields).unwrap_or_else(|e| panic!("a test host: {e}"))
    }
}

impl Host {
    /// The host came back up at `now` after being down since `status_since`.
    pub fn record_outage(&mut self, now: f64) {
        self.outages.push_back([self.status_since, now]);
        while self.outages.len() > MAX_OUTAGES || self.outages.front().is_some_and(|o| o[1] < now - AVAILABILITY_KEPT) {
            self.outages.pop_front();
        }
    }

    /// Seconds after its interval before the host is down: a job's own
    /// `grace`, or hbd's (`default`).
    pub fn grace_or(&self, default: f64) -> f64 {
        self.job.as_ref().and_then(|j| j.grace).unwrap_or(default)
    }

    /// Percent of the last `window` seconds the host was up, counted from
    /// when hbd first saw it; None before it was ever seen in the window.
    pub fn availability(&self, now: f64, window: f64) -> Option<f64> {
        let start = (now - window).max(self.first_seen);
        if start >= now {
            return None;
        }
        let overlap = |from: f64, to: f64| (to.min(now) - from.max(start)).max(0.0);
        let mut down: f64 = self.outages.iter().map(|o| overlap(o[0], o[1])).sum();
        if self.status == Status::Down {
            down += overlap(self.status_since, now);
        }
        Some(100.0 * (1.0 - down / (now - start)))
    }

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
            peer: self.peer,
            alert_level: self.alert_level,
            dns: self.dns.clone(),
            outages: self.outages.clone(),
            // Only the single-host query needs it (core adds it there).
            latency_history: VecDeque::new(),
            parents: self.parents.clone(),
            unreachable_via: self.unreachable_via.clone(),
            reprieve: self.reprieve,
            sent_tags: self.sent_tags.clone(),
            tags: self.tags.clone(),
            silenced: self.silenced.clone(),
            // Lists show a job's last run without its output; only the
            // single-host query has them all (core adds them there).
            job: self.job.as_ref().map(|job| Box::new(job.summary())),
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
    /// An alert changed level, or is still not OK after
    /// `threshold_renotify_interval` (a reminder).
    Alert(AlertChange),
    /// The notifier delivered a message, or failed to.
    Notification(NotifyReport),
    /// The DNS worker tried to point `name.domain` at `address`.
    DnsUpdate { name: String, domain: String, address: IpAddr, outcome: DnsOutcome },
    /// The DNS worker tried to remove the records of a forgotten host.
    DnsRemoved { name: String, domain: String, outcome: DnsOutcome },
    /// hbd forgot a host (its state, history and alerts): `by` the token
    /// that asked, or `host_expire_after` when it was silent that long.
    HostForgotten { name: String, by: String, last_seen: f64 },
    /// Silent past its interval while all its parents are down or
    /// unreachable (`via`): unreachable, not down.
    HostUnreachable { name: String, via: Vec<String>, last_seen: f64, silent_for: f64 },
    /// An unreachable host sent again: up, without having been down.
    HostReachable { name: String, address: SocketAddr, unreachable_for: f64 },
    /// An admin acknowledged an alert (`by` the token's name).
    Acknowledged { key: AlertKey, by: String, comment: String },
    /// An admin removed an acknowledgement.
    AckRemoved { key: AlertKey, by: String },
    /// An admin added a silence (`Silence::by` names the token).
    SilenceAdded(Silence),
    /// A silence ended: `by` the token that ended it early, or `expired`.
    SilenceEnded { silence: Silence, by: String },
    /// A maintenance window of the config began an occurrence, until `ends_at`.
    MaintenanceStarted { name: String, starts_at: f64, ends_at: f64, comment: String },
    /// A maintenance window's occurrence is over.
    MaintenanceEnded { name: String },
    /// A job's run started or ended (`event`), as it now stands.
    JobRun { name: String, event: JobEvent, run: Box<Run> },
}

/// A silence: while it holds (from `starts_at` to `ends_at`), the alerts
/// it covers are tracked and shown but not notified. It covers the alerts
/// of the hosts `host` names (a name or a `*`/`?` pattern), and with
/// `plugin` (and `metric_path`, patterns too) only those alerts; without a
/// plugin the host-down alert as well. Kept by core, saved in the state
/// file, shown by the API as it is here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub host: String,
    pub plugin: Option<String>,
    pub metric_path: Option<String>,
    pub starts_at: f64,
    pub ends_at: f64,
    pub comment: String,
    /// The token's name that added it.
    pub by: String,
    pub created_at: f64,
}

/// What covers an alert or a host now: a silence (`id` its id) or a
/// maintenance window (`id` `maintenance:NAME`, `by` `maintenance`).
#[derive(Debug, Clone, PartialEq)]
pub struct Silenced {
    pub id: String,
    pub until: f64,
    pub comment: String,
    pub by: String,
}

/// How one DNS update ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DnsOutcome {
    /// nsupdate succeeded: the record now holds the address.
    Updated,
    /// nsupdate failed, timed out or could not run; `error` is its own
    /// message, trimmed. Retried after `retry_in` seconds unless a newer
    /// address replaced it (None).
    Failed { error: String, retry_in: Option<f64> },
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
            Event::Alert(change) => f.write_str(&change.text),
            Event::HostForgotten { name, by, .. } => write!(f, "host {name} forgotten (by {by})"),
            Event::HostUnreachable { name, via, silent_for, .. } => {
                write!(f, "host {name} is unreachable behind {}, silent for {silent_for:.0} s", via.join(", "))
            }
            Event::HostReachable { name, address, unreachable_for } => {
                write!(f, "host {name} is reachable at {} after {unreachable_for:.0} s", address.ip())
            }
            Event::Acknowledged { key, by, .. } => {
                write!(f, "alert {}/{}/{} acknowledged by {by}", key.host, key.plugin, key.metric_path)
            }
            Event::AckRemoved { key, by } => {
                write!(f, "acknowledgement of {}/{}/{} removed by {by}", key.host, key.plugin, key.metric_path)
            }
            Event::SilenceAdded(s) => write!(f, "silence {} added by {} for {}", s.id, s.by, s.host),
            Event::SilenceEnded { silence, by } => write!(f, "silence {} ended ({by})", silence.id),
            Event::MaintenanceStarted { name, .. } => write!(f, "maintenance window {name} started"),
            Event::MaintenanceEnded { name } => write!(f, "maintenance window {name} ended"),
            Event::JobRun { name, event: JobEvent::Start, .. } => write!(f, "job {name} started"),
            Event::JobRun { name, run, .. } => {
                let how = match (run.exit_code, run.signal) {
                    (_, Some(signal)) => format!("killed by signal {signal}"),
                    (Some(code), None) => format!("exit code {code}"),
                    (None, None) => "no exit code".to_string(),
                };
                let took = run.duration_s.map_or_else(String::new, |d| format!(" after {d:.1} s"));
                let outcome = if run.outcome == RunOutcome::Ok { "succeeded" } else { "failed" };
                write!(f, "job {name} {outcome}{took} ({how})")
            }
            Event::Notification(r) => match &r.error {
                None => write!(f, "{} delivered: {}", r.service, r.subject),
                Some(error) => write!(f, "{} failed: {error}: {}", r.service, r.subject),
            },
            Event::DnsUpdate { name, domain, address, outcome: DnsOutcome::Updated } => {
                write!(f, "dns record {name}.{domain} set to {address}")
            }
            Event::DnsUpdate { name, domain, address, outcome: DnsOutcome::Failed { error, .. } } => {
                write!(f, "dns record {name}.{domain} not set to {address}: {error}")
            }
            Event::DnsRemoved { name, domain, outcome: DnsOutcome::Updated } => {
                write!(f, "dns records of {name}.{domain} removed")
            }
            Event::DnsRemoved { name, domain, outcome: DnsOutcome::Failed { error, .. } } => {
                write!(f, "dns records of {name}.{domain} not removed: {error}")
            }
        }
    }
}

fn ok_level() -> Level {
    Level::Ok
}

/// How bad an alert is, in the order of escalation. Shown in upper case, as
/// the Python hbd's API and texts do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Ok,
    Unknown,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Unknown => "UNKNOWN",
            Level::Critical => "CRITICAL",
        }
    }

    /// A Nagios plugin's exit code as a level (3 and anything else: UNKNOWN).
    pub fn from_nagios(exit_code: i64) -> Level {
        match exit_code {
            0 => Level::Ok,
            1 => Level::Warning,
            2 => Level::Critical,
            _ => Level::Unknown,
        }
    }
}

/// What an alert is about: a metric of a plugin of a host. Host-down alerts
/// have the plugin `heartbeat`; a plugin that stopped reporting has an
/// empty metric path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    pub host: Arc<str>,
    pub plugin: Arc<str>,
    pub metric_path: Arc<str>,
}

impl AlertKey {
    pub fn new(host: &str, plugin: &str, metric_path: &str) -> AlertKey {
        AlertKey { host: host.into(), plugin: plugin.into(), metric_path: metric_path.into() }
    }
}

/// The state of one alert, as the API shows it and the state file keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    #[serde(flatten)]
    pub key: AlertKey,
    pub level: Level,
    /// The value that decided the level; for a host-down alert the seconds
    /// the host has been (or, back at OK, was) silent; None for stale alerts.
    pub last_value: Option<f64>,
    /// The threshold crossed (or, back at OK, the lowest one of the rule).
    pub threshold: Option<f64>,
    /// When the alert reached its level (Unix seconds).
    pub since: f64,
    /// When a transition or reminder was last sent for it.
    pub last_notified: f64,
    /// The rule's thresholds, for charts (None without a rule, as for
    /// Nagios checks and host-down alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
    /// The text of the last transition or reminder.
    pub message: String,
    /// A level seen in a row but not yet for `for` samples, and how often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<(Level, u32)>,
    /// Held under its host's host-down alert (not counted, not notified):
    /// worked out by the alert table when it lists alerts, never saved.
    #[serde(skip)]
    pub held: bool,
    /// Someone is on it: no reminders until the alert recovers or changes
    /// level, which ends the acknowledgement. Saved (older state files
    /// have none).
    /// (Boxed, as `silenced`: most alerts have neither, and each alert
    /// of every host is held for the daemon's life.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Box<Ack>>,
    /// A host-down alert: how many hosts are unreachable behind the host
    /// (`parents:`); worked out when listed, never saved.
    #[serde(skip)]
    pub behind: Option<usize>,
    /// The silence or maintenance window that covers it now: set by core
    /// on the copies it hands out, never saved.
    #[serde(skip)]
    pub silenced: Option<Box<Silenced>>,
}

/// Who acknowledged an alert, when (Unix seconds) and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at: f64,
    pub comment: String,
}

/// Counts alerts by level, every level named (0 included); held alerts
/// (of a down host) do not count.
pub fn summarize<'a>(alerts: impl IntoIterator<Item = &'a Alert>) -> BTreeMap<Level, usize> {
    let mut counts: BTreeMap<Level, usize> =
        [Level::Ok, Level::Warning, Level::Critical, Level::Unknown].into_iter().map(|l| (l, 0)).collect();
    for alert in alerts.into_iter().filter(|a| !a.held) {
        *counts.entry(alert.level).or_default() += 1;
    }
    counts
}

/// Alerts with the count of each level (of the host's, or of all).
#[derive(Debug, Clone)]
pub struct AlertList {
    pub summary: BTreeMap<Level, usize>,
    pub alerts: Vec<Alert>,
    /// The tags of the alerts' hosts (those with any), shown with each alert.
    pub tags: BTreeMap<String, Vec<String>>,
}

/// A transition or reminder of an alert, with the text a person reads.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    pub key: AlertKey,
    pub from: Level,
    pub to: Level,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// True for a reminder: the level did not change.
    pub reminder: bool,
    /// Seconds since the alert reached its level.
    pub ongoing: f64,
    pub text: String,
}

/// The "plugin" of host-down alerts.
pub const HEARTBEAT: &str = "heartbeat";

/// The metric of a host-down alert: its value is how long the host has
/// been silent, so that `{metric_path} = {last_value}` reads true.
pub const SILENT_FOR: &str = "silent_for_seconds";

// What components report, for `/metrics`, the journal and `/healthz`.

/// The journal's totals since start, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Lines that never reached the file (the buffer was full, or hbd
    /// stopped while the disk refused them).
    pub dropped_lines: u64,
    /// Writes the disk refused.
    pub write_errors: u64,
}

/// The outcome of one delivery attempt, for the journal and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyReport {
    pub service: String,
    pub subject: String,
    pub delivered: bool,
    /// The service's own error text.
    pub error: Option<String>,
    pub attempt: u32,
    /// False when the message was given up (refused, expired or dropped).
    pub will_retry: bool,
}

/// One service's counters, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceStats {
    pub service: String,
    pub sent: u64,
    pub failed_attempts: u64,
    /// Given up: refused by the service, expired, or pushed out of a full queue.
    pub dropped: u64,
    /// Messages folded into summaries by the rate cap.
    pub folded: u64,
    pub pending: usize,
    /// Whether hbd has what it needs to deliver to the service.
    pub usable: bool,
    /// Messages not sent because the service is not usable.
    pub undeliverable: u64,
}

/// What `/metrics` shows of DNS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DnsStats {
    /// Records set since hbd started.
    pub updates: u64,
    /// Updates that failed (each retry counts) since hbd started.
    pub failures: u64,
    /// Records that do not hold their host's address yet.
    pub pending: u64,
}

/// How one named service stands, for `/healthz` and the console.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceState {
    pub name: &'static str,
    /// None: usable; otherwise what it lacks and how to give it.
    pub problem: Option<String>,
}
