//! Threshold alerting: the rules (`thresholds:` of hbd.yaml, compiled once by
//! [`crate::server::config::thresholds::compile`] into [`Rules`]) and the
//! alert table, which turns plugin values, host state and time into alert
//! transitions and reminders.
//!
//! Pure: values and time in, [`AlertChange`]s out; the core calls it and
//! routes what it returns. The arithmetic is the Python hbd's: a rule has a
//! `warning` and/or `critical` threshold, an `operator` (default `>`), and a
//! `hysteresis` fraction: with critical 90 and hysteresis 0.1 an alert stays
//! CRITICAL until the value falls below 81 (mirrored for `<`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::server::model::{summarize, Ack, Alert, AlertChange, AlertKey, Level, HEARTBEAT, SILENT_FOR};
use crate::server::msg::AckRefused;
use crate::server::pattern::glob_matches;
use crate::server::store::Names;

/// The plugin whose data carries Nagios checks, mapped without rules.
const NAGIOS_PLUGIN: &str = "nagios_runner";
/// What host-down alerts were called before `SILENT_FOR` (state files).
const OLD_HEARTBEAT_METRIC: &str = "status";
/// Wildcard path segment: every key of an object (every partition, interface).
pub const ANY: &str = "*";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Above,
    AtLeast,
    Below,
    AtMost,
    Equal,
    NotEqual,
}

impl Operator {
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::Above => value > threshold,
            Operator::AtLeast => value >= threshold,
            Operator::Below => value < threshold,
            Operator::AtMost => value <= threshold,
            Operator::Equal => value == threshold,
            Operator::NotEqual => value != threshold,
        }
    }

    /// +1 when larger is worse, -1 when smaller is worse, 0 for (in)equality.
    pub fn direction(self) -> f64 {
        match self {
            Operator::Above | Operator::AtLeast => 1.0,
            Operator::Below | Operator::AtMost => -1.0,
            Operator::Equal | Operator::NotEqual => 0.0,
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub operator: Operator,
    pub hysteresis: f64,
    /// Samples in a row at a new level before the alert changes to it.
    pub for_samples: u32,
}

impl Rule {
    /// Where an alert at a threshold's level returns below it: the
    /// threshold moved back by `hysteresis` of its size.
    fn recovery(&self, threshold: f64) -> f64 {
        threshold - self.operator.direction() * self.hysteresis * threshold.abs()
    }

    /// The level `value` calls for, given the alert's current level.
    /// Hysteresis holds only the level an alert is at: below its recovery
    /// point the level is what the thresholds alone say (the README's 91 →
    /// CRITICAL, 85 → CRITICAL, 79 → OK with warning 80, critical 90, 0.1).
    fn level(&self, value: f64, current: Level) -> (Level, Option<f64>) {
        // Not yet past the recovery point of `threshold`.
        let held_at = |threshold: f64| match self.operator.direction() {
            d if d > 0.0 => value >= self.recovery(threshold),
            d if d < 0.0 => value <= self.recovery(threshold),
            _ => self.operator.holds(value, threshold),
        };
        for (level, threshold) in [(Level::Critical, self.critical), (Level::Warning, self.warning)] {
            if let Some(t) = threshold.filter(|t| self.operator.holds(value, *t) || (current == level && held_at(*t))) {
                return (level, Some(t));
            }
        }
        (Level::Ok, self.warning.or(self.critical))
    }
}

/// A rule's place: a plugin and a path into its data, `*` for any key.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub plugin: String,
    pub path: Vec<String>,
    /// None: turned off (in a host override).
    pub rule: Option<Rule>,
}

/// Every rule of `thresholds:`, checked, with the per-host overrides.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    global: Vec<Placed>,
    /// Host name patterns (`*` and `?` wildcards) in file order: for each
    /// rule, the first pattern that matches a host and names it decides.
    overrides: Vec<(String, Vec<Placed>)>,
    /// Seconds between reminders of an alert that is not OK.
    pub renotify: f64,
    /// A monitor plugin silent for this many of its intervals is UNKNOWN; 0: never.
    pub stale_intervals: f64,
}

impl Rules {
    /// The rules `config::thresholds` compiled: `global` for every host,
    /// `overrides` by host pattern in file order.
    pub fn new(
        global: Vec<Placed>,
        overrides: Vec<(String, Vec<Placed>)>,
        renotify: f64,
        stale_intervals: f64,
    ) -> Rules {
        Rules { global, overrides, renotify, stale_intervals }
    }

    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.overrides.is_empty()
    }

    /// Whether a sample of `plugin` can change an alert: it has rules (for
    /// some host), or it carries Nagios checks.
    pub fn watches(&self, plugin: &str) -> bool {
        plugin == NAGIOS_PLUGIN
            || self.global.iter().any(|p| p.plugin == plugin)
            || self.overrides.iter().any(|(_, placed)| placed.iter().any(|p| p.plugin == plugin))
    }

    /// The rules in force for `plugin` of `host`, after its overrides.
    fn for_host<'a>(&'a self, host: &str, plugin: &str) -> Vec<(&'a [String], &'a Rule)> {
        let mut decided: Vec<(&'a [String], Option<&'a Rule>)> = Vec::new();
        for (pattern, placed) in &self.overrides {
            if !glob_matches(pattern, host) {
                continue;
            }
            for p in placed.iter().filter(|p| p.plugin == plugin) {
                if !decided.iter().any(|(path, _)| *path == p.path.as_slice()) {
                    decided.push((&p.path, p.rule.as_ref()));
                }
            }
        }
        for p in self.global.iter().filter(|p| p.plugin == plugin) {
            if !decided.iter().any(|(path, _)| *path == p.path.as_slice()) {
                decided.push((&p.path, p.rule.as_ref()));
            }
        }
        decided.into_iter().filter_map(|(path, rule)| Some((path, rule?))).collect()
    }
}

/// The numbers at `path` in `data`, with their concrete dot-joined paths.
fn values_at(data: &Value, path: &[String]) -> Vec<(String, f64)> {
    let mut found = Vec::new();
    collect(data, path, &mut String::new(), &mut found);
    found
}

fn collect(node: &Value, path: &[String], prefix: &mut String, found: &mut Vec<(String, f64)>) {
    let Some((segment, rest)) = path.split_first() else {
        if let Some(value) = node.as_f64().filter(|v| v.is_finite()) {
            found.push((prefix.clone(), value));
        }
        return;
    };
    let Value::Object(map) = node else { return };
    let mut descend = |key: &str, child: &Value| {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(key);
        collect(child, rest, prefix, found);
        prefix.truncate(len);
    };
    if segment == ANY {
        for (key, child) in map {
            descend(key, child);
        }
    } else if let Some(child) = map.get(segment) {
        descend(segment, child);
    }
}

/// Numbers shown as the Python version printed floats: `85.0`, `12.5`.
fn show(value: f64) -> String {
    format!("{value:?}")
}

/// The alerts host by host, each host's in one Vec sorted by plugin and
/// metric path: a host's alerts are one lookup, and an alert's key is kept
/// once, in the alert. (A map keyed by the whole key held a second copy of
/// its three strings for every alert; this, and the rare acknowledgement
/// and silence boxed in `Alert`, cut hbd's RSS by 15 % at 2,000 hosts with
/// full histories and three watched metrics each.)
///
/// A key's strings are shared: its host with the map's key and the host's
/// other alerts, its plugin and metric path with every host's alerts of
/// them ([`Names`]). Each alert held three strings of its own before, 96
/// bytes of heap, and a list grew by doubling, leaving room for a fourth
/// alert behind three; together 0.5 KiB a host.
///
/// Each host's list is behind an `Arc`, as the host records are: a
/// snapshot for the state file copies one pointer per host, and a list
/// that changes while the writer still holds it is copied then. Cloning
/// every alert with its strings kept core from answering for 10 ms per
/// 10,000 hosts at each save.
#[derive(Debug, Default)]
struct AlertMap {
    lists: BTreeMap<Arc<str>, Arc<Vec<Alert>>>,
    names: Names,
}

impl AlertMap {
    /// Where `key` is (or would go) in its host's list.
    fn position(list: &[Alert], key: &AlertKey) -> Result<usize, usize> {
        list.binary_search_by(|a| (&a.key.plugin, &a.key.metric_path).cmp(&(&key.plugin, &key.metric_path)))
    }

    fn get(&self, key: &AlertKey) -> Option<&Alert> {
        let list = self.lists.get(&*key.host)?;
        Self::position(list, key).ok().map(|i| &list[i])
    }

    fn get_mut(&mut self, key: &AlertKey) -> Option<&mut Alert> {
        let list = self.lists.get_mut(&*key.host)?;
        let at = Self::position(list, key).ok()?;
        Some(&mut Arc::make_mut(list)[at])
    }

    /// The list of `key`'s host (made empty if it has none), and `key` with
    /// the strings shared (see [`AlertMap`]).
    fn list_for(&mut self, key: &AlertKey) -> (&mut Vec<Alert>, AlertKey) {
        let host = match self.lists.get_key_value(&*key.host) {
            Some((host, _)) => host.clone(),
            None => key.host.clone(),
        };
        let shared =
            AlertKey { plugin: self.names.name(&key.plugin), metric_path: self.names.name(&key.metric_path), host };
        let list = Arc::make_mut(self.lists.entry(shared.host.clone()).or_default());
        (list, shared)
    }

    /// The alert at `key`, made OK (as of `now`) if there is none yet.
    fn get_or_insert(&mut self, key: &AlertKey, now: f64) -> &mut Alert {
        match self.lists.get(&*key.host).map(|list| Self::position(list, key)) {
            Some(Ok(at)) => &mut Arc::make_mut(self.lists.entry(key.host.clone()).or_default())[at],
            _ => self.insert(new_alert(key, now)),
        }
    }

    /// Adds `alert`, replacing the one at its key.
    fn insert(&mut self, mut alert: Alert) -> &mut Alert {
        let (list, key) = self.list_for(&alert.key);
        alert.key = key;
        let at = match Self::position(list, &alert.key) {
            Ok(at) => {
                list[at] = alert;
                at
            }
            Err(at) => {
                list.reserve_exact(1);
                list.insert(at, alert);
                at
            }
        };
        &mut list[at]
    }

    fn of_host(&self, host: &str) -> &[Alert] {
        self.lists.get(host).map_or(&[], |list| list.as_slice())
    }

    /// Keeps the alerts of `host` that `keep` picks. A list that keeps
    /// them all is left as it is (and shared with a snapshot).
    fn retain_of_host(&mut self, host: &str, keep: impl Fn(&Alert) -> bool) {
        let Some(list) = self.lists.get_mut(host) else {
            return;
        };
        if list.iter().all(&keep) {
            return;
        }
        Arc::make_mut(list).retain(keep);
        if list.is_empty() {
            self.lists.remove(host);
        }
    }

    /// Every alert, by host, plugin and path.
    fn values(&self) -> impl Iterator<Item = &Alert> {
        self.lists.values().flat_map(|list| list.iter())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lists.values().map(|list| list.len()).sum()
    }
}

/// Every alert hbd tracks, keyed by host, plugin and metric path.
///
/// One model of "critical" for the API, the console, `/metrics` and the
/// notifications: a down host is one CRITICAL alert (plugin `heartbeat`,
/// metric `silent_for_seconds`), and its own metric and staleness alerts
/// are *held* under it until it returns: listed, marked `held`, but not
/// counted, reminded of or notified (they describe what it said before it
/// went silent, not what is wrong now).
#[derive(Debug, Default)]
pub struct AlertTable {
    /// Ordered by host first, so that one host's alerts are one range:
    /// a host's worst level is asked on every alert change, and a scan of
    /// every alert each time made a mass outage quadratic.
    alerts: AlertMap,
    /// Hosts whose host-down alert is not OK: their other alerts are held.
    down: HashSet<String>,
    /// Unreachable hosts (`parents:`): their alerts are held as a down host's.
    unreachable: HashSet<String>,
    /// Down hosts with hosts unreachable behind them, and how many.
    behind: HashMap<String, usize>,
}

impl AlertTable {
    pub fn new(saved: Vec<Arc<Vec<Alert>>>) -> AlertTable {
        let mut table = AlertTable::default();
        for mut alert in saved.into_iter().flat_map(Arc::unwrap_or_clone) {
            if &*alert.key.plugin == HEARTBEAT && &*alert.key.metric_path == OLD_HEARTBEAT_METRIC {
                alert.key.metric_path = SILENT_FOR.into();
            }
            if &*alert.key.plugin == HEARTBEAT && alert.level != Level::Ok {
                table.down.insert(alert.key.host.to_string());
            }
            table.alerts.insert(alert);
        }
        table
    }

    /// Each host's list, shared (see [`AlertMap`]).
    pub fn snapshot(&self) -> Vec<Arc<Vec<Alert>>> {
        self.alerts.lists.values().cloned().collect()
    }

    fn is_held(&self, alert: &Alert) -> bool {
        self.held_key(&alert.key)
    }

    /// Every alert state, marked held or not: those that count first,
    /// worst first, then by host, plugin and path.
    pub fn sorted(&self, host: Option<&str>) -> Vec<Alert> {
        let alerts: Box<dyn Iterator<Item = &Alert>> = match host {
            Some(host) => Box::new(self.of_host(host)),
            None => Box::new(self.alerts.values()),
        };
        let mut alerts: Vec<Alert> =
            alerts.map(|a| Alert { held: self.is_held(a), behind: self.behind_of(&a.key), ..a.clone() }).collect();
        alerts.sort_by(|a, b| a.held.cmp(&b.held).then(b.level.cmp(&a.level)).then_with(|| a.key.cmp(&b.key)));
        alerts
    }

    /// How many alerts that count (not held) are at each level (every
    /// level named, 0 included).
    pub fn summary(&self) -> BTreeMap<Level, usize> {
        summarize(self.alerts.values().filter(|a| !self.is_held(a)))
    }

    /// The worst level of one host's alerts.
    pub fn worst(&self, host: &str) -> Level {
        self.of_host(host).map(|a| a.level).max().unwrap_or(Level::Ok)
    }

    /// The alerts of `host`, by plugin and path: one range of the map.
    fn of_host<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a Alert> + 'a {
        self.alerts.of_host(host).iter()
    }

    /// The worst level of each host's alerts (hosts with none are OK).
    pub fn worst_by_host(&self) -> HashMap<&str, Level> {
        let mut worst: HashMap<&str, Level> = HashMap::new();
        for alert in self.alerts.values() {
            let level = worst.entry(&*alert.key.host).or_insert(Level::Ok);
            *level = (*level).max(alert.level);
        }
        worst
    }

    /// Evaluates a plugin sample of `host` against its rules (and Nagios
    /// checks against their exit codes) at time `now`.
    pub fn observe(&mut self, rules: &Rules, host: &str, plugin: &str, data: &Value, now: f64) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        if let Some(change) = self.recover_stale(host, plugin, now) {
            changes.push(change);
        }
        for (path, rule) in rules.for_host(host, plugin) {
            for (metric_path, value) in values_at(data, path) {
                let key = AlertKey::new(host, plugin, &metric_path);
                changes.extend(self.evaluate(key, value, rule, now));
            }
        }
        if plugin == NAGIOS_PLUGIN {
            changes.extend(self.nagios(host, data, now));
        }
        changes
    }

    fn evaluate(&mut self, key: AlertKey, value: f64, rule: &Rule, now: f64) -> Option<AlertChange> {
        let alert = self.alerts.get_or_insert(&key, now);
        (alert.warning, alert.critical) = (rule.warning, rule.critical);
        let (level, threshold) = rule.level(value, alert.level);
        alert.last_value = Some(value);
        if level == alert.level {
            alert.pending = None;
            alert.threshold = threshold;
            return None;
        }
        let seen = match alert.pending {
            Some((pending, n)) if pending == level => n + 1,
            _ => 1,
        };
        if seen < rule.for_samples {
            alert.pending = Some((level, seen));
            return None;
        }
        let key = alert.key.clone();
        let text = metric_text(&key, level, alert.level, Some(value));
        Some(self.transition(&key, level, Some(value), threshold, now, text))
    }

    /// `checks.NAME.exit_code` of nagios_runner: 0 OK, 1 WARNING, 2 CRITICAL, else UNKNOWN.
    fn nagios(&mut self, host: &str, data: &Value, now: f64) -> Vec<AlertChange> {
        let Some(checks) = data.get("checks").and_then(Value::as_object) else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        for (check, result) in checks {
            let Some(code) = result.get("exit_code").and_then(Value::as_i64) else { continue };
            let key = AlertKey::new(host, NAGIOS_PLUGIN, &format!("checks.{check}.exit_code"));
            let alert = self.alerts.get_or_insert(&key, now);
            let level = Level::from_nagios(code);
            alert.last_value = Some(code as f64);
            if level == alert.level {
                continue;
            }
            let output = result.get("output").and_then(Value::as_str).unwrap_or("");
            let mut text = metric_text(&key, level, alert.level, Some(code as f64));
            if !output.is_empty() {
                text.push_str(&format!(" ({})", crate::wire::truncate_chars(output, 200)));
            }
            changes.push(self.transition(&key, level, Some(code as f64), None, now, text));
        }
        // A check no longer configured is no longer an alert.
        self.alerts.retain_of_host(host, |alert| {
            let k = &alert.key;
            &*k.plugin != NAGIOS_PLUGIN || checks.keys().any(|c| *k.metric_path == format!("checks.{c}.exit_code"))
        });
        changes
    }

    /// Sets an alert no rule decides (a job's run: `core::jobs`) to
    /// `level`: a transition when the level changes. An alert that does
    /// not exist yet is made only when it is not OK.
    pub fn set(
        &mut self,
        key: AlertKey,
        level: Level,
        value: Option<f64>,
        text: String,
        now: f64,
    ) -> Option<AlertChange> {
        match self.alerts.get_mut(&key) {
            None if level == Level::Ok => None,
            Some(alert) if alert.level == level => {
                alert.last_value = value.or(alert.last_value);
                None
            }
            _ => Some(self.transition(&key, level, value, None, now, text)),
        }
    }

    /// Forgets every alert of a host hbd forgets.
    pub fn forget(&mut self, host: &str) {
        self.alerts.lists.remove(host);
        self.down.remove(host);
        self.unreachable.remove(host);
    }

    /// The host stopped sending: its host-down alert becomes CRITICAL, with
    /// its silence as value, and its other alerts are held under it.
    pub fn host_down(&mut self, host: &str, silent_for: f64, now: f64) -> Option<AlertChange> {
        let key = heartbeat_key(host);
        let alert = self.alerts.get_or_insert(&key, now);
        if alert.level == Level::Critical {
            return None;
        }
        self.down.insert(host.to_string());
        self.unreachable.remove(host);
        let behind = self.behind_text(host);
        let text = format!("CRITICAL: {host} - host down (silent for {silent_for:.0}s){behind}");
        Some(self.transition(&key, Level::Critical, Some(silent_for.round()), None, now, text))
    }

    /// The host sent again: its host-down alert recovers (its value: how
    /// long it was silent) and its other alerts count again.
    pub fn host_up(&mut self, host: &str, now: f64) -> Option<AlertChange> {
        self.down.remove(host);
        let key = heartbeat_key(host);
        let alert = self.alerts.get(&key).filter(|a| a.level != Level::Ok)?;
        let (from, silent) = (alert.level, alert.last_value);
        let text = format!("RECOVERED: {host} - host up ({} -> OK)", from.as_str());
        Some(self.transition(&key, Level::Ok, silent, None, now, text))
    }

    /// Reminders for alerts still not OK after `renotify` seconds, and
    /// UNKNOWN for monitor plugins that stopped reporting. `hosts` tells,
    /// which hosts are up and when each of their monitor plugins was last
    /// heard; the alerts of a down host neither remind nor go stale.
    pub fn tick(&mut self, rules: &Rules, hosts: &impl UpHosts, now: f64) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        // A down host's alert shows how long it has been silent, now.
        for host in &self.down {
            let key = heartbeat_key(host);
            if let (Some(alert), Some(last_seen)) = (self.alerts.get_mut(&key), hosts.last_seen(host)) {
                alert.last_value = Some((now - last_seen).max(0.0).round());
            }
        }
        if rules.stale_intervals > 0.0 {
            hosts.each_plugin(&mut |host, plugin, last, interval| {
                let silent = now - last;
                if interval > 0.0 && silent > rules.stale_intervals * interval {
                    changes.extend(self.stale(host, plugin, silent, now));
                }
            });
        }
        if rules.renotify > 0.0 {
            let due: Vec<AlertKey> = self
                .alerts
                .values()
                .filter(|a| a.level != Level::Ok && now - a.last_notified >= rules.renotify)
                // Someone is on it: no reminders (see `acknowledge`).
                .filter(|a| a.acknowledged.is_none())
                .filter(|a| &*a.key.plugin == HEARTBEAT || hosts.is_up(&a.key.host))
                .map(|a| a.key.clone())
                .collect();
            for key in due {
                if let Some(alert) = self.alerts.get_mut(&key) {
                    alert.last_notified = now;
                    let ongoing = now - alert.since;
                    let what = describe(&key, alert.last_value);
                    let behind = match &*key.plugin == HEARTBEAT {
                        true => behind_text(self.behind.get(&*key.host).copied()),
                        false => String::new(),
                    };
                    let text = format!(
                        "REMINDER ({}): {} - {what} (ongoing for {ongoing:.0}s){behind}",
                        alert.level.as_str(),
                        key.host
                    );
                    alert.message = text.clone();
                    changes.push(AlertChange {
                        key,
                        from: alert.level,
                        to: alert.level,
                        value: alert.last_value,
                        threshold: alert.threshold,
                        reminder: true,
                        ongoing,
                        text,
                    });
                }
            }
        }
        changes
    }

    fn stale(&mut self, host: &str, plugin: &str, silent: f64, now: f64) -> Option<AlertChange> {
        let key = AlertKey::new(host, plugin, "");
        // Asked every second while the plugin stays silent: a look first,
        // so that a list a snapshot holds is not copied to change nothing.
        if self.alerts.get(&key).is_some_and(|alert| alert.level == Level::Unknown) {
            return None;
        }
        let text = format!("UNKNOWN: {host} - {plugin} stopped reporting (no sample for {silent:.0}s)");
        Some(self.transition(&key, Level::Unknown, None, None, now, text))
    }

    /// A monitor plugin sent a sample: if it was "stopped reporting", it recovers.
    pub fn reported(&mut self, host: &str, plugin: &str, now: f64) -> Option<AlertChange> {
        self.recover_stale(host, plugin, now)
    }

    fn recover_stale(&mut self, host: &str, plugin: &str, now: f64) -> Option<AlertChange> {
        let key = AlertKey::new(host, plugin, "");
        let from = self.alerts.get(&key).map(|a| a.level).filter(|l| *l != Level::Ok)?;
        let text = format!("RECOVERED: {host} - {plugin} reporting again ({} -> OK)", from.as_str());
        Some(self.transition(&key, Level::Ok, None, None, now, text))
    }

    /// Moves an alert to `to`, noting when and why.
    fn transition(
        &mut self,
        key: &AlertKey,
        to: Level,
        value: Option<f64>,
        threshold: Option<f64>,
        now: f64,
        text: String,
    ) -> AlertChange {
        let alert = self.alerts.get_or_insert(key, now);
        let from = alert.level;
        let ongoing = now - alert.since;
        alert.level = to;
        alert.since = now;
        alert.last_notified = now;
        alert.last_value = value.or(alert.last_value);
        alert.threshold = threshold;
        alert.pending = None;
        alert.message = text.clone();
        // What was acknowledged was this level: a new one needs a look again.
        alert.acknowledged = None;
        AlertChange { key: key.clone(), from, to, value, threshold, reminder: false, ongoing, text }
    }
}

/// Acknowledgements: an operator says someone is on an alert. It stops the
/// alert's reminders (nothing else: it is still listed, counted and shown)
/// until its next transition, a recovery or another level, which clears
/// it in [`AlertTable::transition`].
impl AlertTable {
    /// Acknowledges the alert at `key` (again: the newer one replaces it).
    /// The host is known to the caller; the alert must exist and not be OK.
    pub fn acknowledge(&mut self, key: &AlertKey, by: &str, comment: &str, now: f64) -> Result<Alert, AckRefused> {
        let (held, behind) = (self.held_key(key), self.behind_of(key));
        let alert = self.alerts.get_mut(key).ok_or(AckRefused::UnknownAlert)?;
        if alert.level == Level::Ok {
            return Err(AckRefused::IsOk);
        }
        alert.acknowledged = Some(Box::new(Ack { by: by.to_string(), at: now, comment: comment.to_string() }));
        Ok(Alert { held, behind, ..alert.clone() })
    }

    /// Removes the acknowledgement of the alert at `key`: its reminders
    /// resume, the next one due after `renotify` from the last.
    pub fn unacknowledge(&mut self, key: &AlertKey) -> Result<Alert, AckRefused> {
        let (held, behind) = (self.held_key(key), self.behind_of(key));
        let alert = self.alerts.get_mut(key).ok_or(AckRefused::UnknownAlert)?;
        alert.acknowledged.take().ok_or(AckRefused::NotAcknowledged)?;
        Ok(Alert { held, behind, ..alert.clone() })
    }

    fn held_key(&self, key: &AlertKey) -> bool {
        &*key.plugin != HEARTBEAT && (self.down.contains(&*key.host) || self.unreachable.contains(&*key.host))
    }
}

/// Dependencies (`parents:`): an unreachable host's alerts are held as a
/// down host's, and a down parent's host-down alert says how many hosts
/// are unreachable behind it.
impl AlertTable {
    /// The host is unreachable: its alerts are held until it sends again.
    pub fn host_unreachable(&mut self, host: &str) {
        self.unreachable.insert(host.to_string());
    }

    /// The unreachable host sent again: its alerts count again.
    pub fn host_reachable(&mut self, host: &str) {
        self.unreachable.remove(host);
    }

    /// How many hosts are unreachable behind each down host, for the texts
    /// of host-down alerts and reminders from now on.
    pub fn set_behind(&mut self, behind: HashMap<String, usize>) {
        self.behind = behind;
    }

    /// Only a host-down alert that is not OK has hosts behind it (the count
    /// is the last tick's: a parent just back is OK already).
    fn behind_of(&self, key: &AlertKey) -> Option<usize> {
        let down = &*key.plugin == HEARTBEAT && self.alerts.get(key).is_some_and(|a| a.level != Level::Ok);
        down.then(|| self.behind.get(&*key.host).copied()).flatten()
    }

    fn behind_text(&self, host: &str) -> String {
        behind_text(self.behind.get(host).copied())
    }
}

/// `; 20 hosts behind it are unreachable`, or nothing.
fn behind_text(behind: Option<usize>) -> String {
    match behind {
        None | Some(0) => String::new(),
        Some(1) => "; 1 host behind it is unreachable".to_string(),
        Some(n) => format!("; {n} hosts behind it are unreachable"),
    }
}

/// What [`AlertTable::tick`] asks of the hosts, once a second: answered by
/// the host table as it walks its records (a map of every host built for
/// it each second would be megabytes of garbage at ten thousand hosts).
pub trait UpHosts {
    fn is_up(&self, host: &str) -> bool;
    /// When the host was last heard from, if hbd knows it.
    fn last_seen(&self, host: &str) -> Option<f64>;
    /// `each(host, plugin, last, interval)` for each monitor plugin with
    /// two samples or more of each host that is up: when it was last heard
    /// and its interval as far as hbd can tell.
    fn each_plugin(&self, each: &mut dyn FnMut(&str, &str, f64, f64));
}

fn heartbeat_key(host: &str) -> AlertKey {
    AlertKey::new(host, HEARTBEAT, SILENT_FOR)
}

fn new_alert(key: &AlertKey, now: f64) -> Alert {
    Alert {
        key: key.clone(),
        level: Level::Ok,
        last_value: None,
        threshold: None,
        since: now,
        last_notified: now,
        message: String::new(),
        pending: None,
        warning: None,
        critical: None,
        held: false,
        acknowledged: None,
        behind: None,
        silenced: None,
    }
}

/// `plugin.metric = value`, or what a host-down or stale alert is about.
fn describe(key: &AlertKey, value: Option<f64>) -> String {
    if &*key.plugin == HEARTBEAT {
        return "host down".to_string();
    }
    if key.metric_path.is_empty() {
        return format!("{} stopped reporting", key.plugin);
    }
    match value {
        // Exit codes are whole numbers.
        Some(v) if &*key.plugin == NAGIOS_PLUGIN => format!("{}.{} = {v}", key.plugin, key.metric_path),
        Some(v) => format!("{}.{} = {}", key.plugin, key.metric_path, show(v)),
        None => format!("{}.{}", key.plugin, key.metric_path),
    }
}

/// The README's texts: `WARNING: host - plugin.metric = 85.0`, and
/// `RECOVERED: host - plugin.metric = 75.0 (WARNING -> OK)` back at OK.
fn metric_text(key: &AlertKey, to: Level, from: Level, value: Option<f64>) -> String {
    let what = describe(key, value);
    match to {
        Level::Ok => format!("RECOVERED: {} - {what} ({} -> OK)", key.host, from.as_str()),
        _ => format!("{}: {} - {what}", to.as_str(), key.host),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::server::config::thresholds::tests::{rules, README};

    /// Hosts that are up and their plugins `(name, last, interval)`.
    #[derive(Default)]
    struct HostView<'a> {
        up_plugins: HashMap<&'a str, Vec<(&'a str, f64, f64)>>,
        /// When every host was last heard.
        last_seen: Option<f64>,
    }

    impl UpHosts for HostView<'_> {
        fn is_up(&self, host: &str) -> bool {
            self.up_plugins.contains_key(host)
        }

        fn last_seen(&self, _: &str) -> Option<f64> {
            self.last_seen
        }

        fn each_plugin(&self, each: &mut dyn FnMut(&str, &str, f64, f64)) {
            for (host, plugins) in &self.up_plugins {
                plugins.iter().for_each(|(plugin, last, interval)| each(host, plugin, *last, *interval));
            }
        }
    }

    /// Feeds `values` of cpu_monitor.cpu_percent one per second; the levels after each.
    fn levels(rules: &Rules, plugin: &str, path: &[&str], values: &[f64]) -> Vec<Level> {
        let mut table = AlertTable::default();
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let mut data = json!(*v);
            for segment in path.iter().rev() {
                data = json!({ *segment: data });
            }
            table.observe(rules, "h", plugin, &data, i as f64);
            let key = AlertKey { host: "h".into(), plugin: plugin.into(), metric_path: path.join(".").into() };
            out.push(table.alerts.get(&key).map_or(Level::Ok, |a| a.level));
        }
        out
    }

    use Level::{Critical as C, Ok as O, Warning as W};

    #[test]
    fn the_readme_rules_and_hysteresis_arithmetic() {
        let r = rules(README);
        // critical 90, hysteresis 0.1: CRITICAL until below 81; then WARNING until below 72.
        assert_eq!(
            levels(&r, "cpu_monitor", &["cpu_percent"], &[85.0, 91.0, 85.0, 82.0, 80.9, 75.0, 72.5, 71.9]),
            [W, C, C, C, W, W, W, O]
        );
        // No hysteresis on memory: straight back.
        assert_eq!(levels(&r, "memory_monitor", &["percent"], &[96.0, 94.0, 84.0]), [C, W, O]);
        // `<` for free space, nested under partitions and /.
        assert_eq!(
            levels(&r, "disk_monitor", &["partitions", "/", "free_gb"], &[20.0, 9.0, 4.0, 6.0, 11.0]),
            [O, W, C, W, O]
        );
    }

    /// The README's own sequence: leaving CRITICAL below its recovery
    /// point, the level is what the thresholds alone say.
    #[test]
    fn the_readme_hysteresis_sequence() {
        let r = rules(README);
        assert_eq!(levels(&r, "cpu_monitor", &["cpu_percent"], &[91.0, 85.0, 79.0]), [C, C, O]);
        assert_eq!(levels(&r, "cpu_monitor", &["cpu_percent"], &[91.0, 80.5, 79.0, 73.0]), [C, W, W, W]);
        // Mirrored for `<`: free_gb critical 5, warning 10, no hysteresis configured.
        let r = rules("p:\n  v: {warning: 10, critical: 5, operator: '<', hysteresis: 0.2}\n");
        assert_eq!(levels(&r, "p", &["v"], &[4.0, 5.5, 11.0]), [C, C, O]);
        assert_eq!(levels(&r, "p", &["v"], &[4.0, 6.5, 11.5, 12.5]), [C, W, W, O]);
    }

    /// A host's alerts are one range of the map: names that share a
    /// prefix with it (db1-b, db10) or sort between its keys are not its.
    #[test]
    fn a_hosts_worst_level_and_list_are_its_own() {
        let r = rules(README);
        let mut t = AlertTable::default();
        t.observe(&r, "db1", "cpu_monitor", &json!({"cpu_percent": 85.0}), 100.0);
        t.observe(&r, "db1-b", "cpu_monitor", &json!({"cpu_percent": 95.0}), 100.0);
        t.observe(&r, "db10", "cpu_monitor", &json!({"cpu_percent": 95.0}), 100.0);
        t.observe(&r, "db", "cpu_monitor", &json!({"cpu_percent": 95.0}), 100.0);
        assert_eq!(t.worst("db1"), Level::Warning);
        assert_eq!(t.worst("db10"), Level::Critical);
        assert_eq!(t.worst("db2"), Level::Ok);
        let hosts = |host| t.sorted(Some(host)).into_iter().map(|a| a.key.host.to_string()).collect::<Vec<_>>();
        assert_eq!(hosts("db1"), ["db1"]);
        assert_eq!(hosts("db"), ["db"]);
        assert_eq!(t.sorted(None).len(), 4);
    }

    /// A down host is one CRITICAL alert whose value is its silence; its
    /// other alerts are held under it (listed, marked, not counted) until
    /// it returns.
    #[test]
    fn a_down_hosts_alerts_are_held_under_its_host_down_alert() {
        let r = rules(README);
        let mut t = AlertTable::default();
        t.observe(&r, "db1", "cpu_monitor", &json!({"cpu_percent": 95.0}), 100.0);
        t.observe(&r, "web1", "cpu_monitor", &json!({"cpu_percent": 85.0}), 100.0);
        let counts = |t: &AlertTable| {
            let s = t.summary();
            (s[&Level::Critical], s[&Level::Warning])
        };
        assert_eq!(counts(&t), (1, 1));
        let change = t.host_down("db1", 75.4, 160.0).unwrap();
        assert_eq!((change.to, change.value), (C, Some(75.0)));
        assert_eq!(counts(&t), (1, 1), "db1's host-down alert counts, its cpu alert is held");
        let listed = t.sorted(None);
        let db1: Vec<_> = listed.iter().filter(|a| &*a.key.host == "db1").collect();
        assert_eq!(db1.len(), 2);
        assert_eq!((&*db1[0].key.plugin, &*db1[0].key.metric_path, db1[0].held), (HEARTBEAT, SILENT_FOR, false));
        assert_eq!((&*db1[1].key.plugin, db1[1].held), ("cpu_monitor", true));
        assert!(listed.last().is_some_and(|a| a.held), "held alerts are listed last");
        assert_eq!(summarize(&t.sorted(Some("db1")))[&C], 1);
        // The silence grows with the clock.
        let down = HostView { last_seen: Some(85.0), ..HostView::default() };
        t.tick(&r, &down, 200.0);
        assert_eq!(t.sorted(Some("db1"))[0].last_value, Some(115.0));
        // Back: the host-down alert recovers with how long it was silent, the cpu alert counts again.
        let change = t.host_up("db1", 210.0).unwrap();
        assert_eq!((change.to, change.value), (O, Some(115.0)));
        assert_eq!(counts(&t), (1, 1));
        assert!(t.sorted(None).iter().all(|a| !a.held));
    }

    /// State files name host-down alerts `status`; they are read under the new name.
    #[test]
    fn saved_host_down_alerts_take_the_new_metric_name() {
        let mut saved =
            new_alert(&AlertKey { host: "db1".into(), plugin: HEARTBEAT.into(), metric_path: "status".into() }, 5.0);
        saved.level = C;
        let cpu =
            new_alert(&AlertKey { host: "db1".into(), plugin: "cpu_monitor".into(), metric_path: "x".into() }, 5.0);
        let mut t = AlertTable::new(vec![Arc::new(vec![saved, Alert { level: W, ..cpu }])]);
        let listed = t.sorted(None);
        assert_eq!(&*listed[0].key.metric_path, SILENT_FOR);
        assert!(listed[1].held, "the host is still down after the restart");
        assert!(t.host_down("db1", 10.0, 10.0).is_none(), "still down: not a second time");
    }

    #[test]
    fn every_operator() {
        for (op, values, expected) in [
            (">", [5.0, 10.0, 11.0], [O, O, C]),
            (">=", [5.0, 10.0, 11.0], [O, C, C]),
            ("<", [11.0, 10.0, 9.0], [O, O, C]),
            ("<=", [11.0, 10.0, 9.0], [O, C, C]),
            ("==", [9.0, 10.0, 11.0], [O, C, O]),
            ("!=", [10.0, 11.0, 10.0], [O, C, O]),
        ] {
            let r = rules(&format!("p:\n  v: {{critical: 10, operator: \"{op}\"}}\n"));
            assert_eq!(levels(&r, "p", &["v"], &values), expected, "operator {op}");
        }
    }

    #[test]
    fn hysteresis_is_mirrored_below() {
        // critical below 10 with 0.2: stays CRITICAL until above 12.
        let r = rules("p:\n  v: {critical: 10, operator: \"<\", hysteresis: 0.2}\n");
        assert_eq!(levels(&r, "p", &["v"], &[9.0, 11.0, 12.0, 12.1]), [C, C, C, O]);
    }

    #[test]
    fn for_n_needs_n_samples_in_a_row() {
        let r = rules("p:\n  v: {warning: 10, for: 3}\n");
        assert_eq!(
            levels(&r, "p", &["v"], &[11.0, 11.0, 5.0, 11.0, 11.0, 11.0, 5.0, 5.0, 5.0]),
            [O, O, O, O, O, W, W, W, O]
        );
    }

    #[test]
    fn wildcards_give_one_alert_per_match() {
        let r = rules("disk_monitor:\n  partitions:\n    '*':\n      percent: {critical: 90}\n");
        let mut table = AlertTable::default();
        let data = json!({"partitions": {"/": {"percent": 95.0}, "/home": {"percent": 10.0}}});
        let changes = table.observe(&r, "h", "disk_monitor", &data, 0.0);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].text, "CRITICAL: h - disk_monitor.partitions./.percent = 95.0");
        assert_eq!(table.alerts.len(), 2, "the OK partition is tracked too");
    }

    #[test]
    fn per_host_overrides_replace_or_turn_off_first_match_wins() {
        let r = rules(
            "cpu_monitor:\n  cpu_percent: {critical: 90}\nhosts:\n  db*:\n    cpu_monitor:\n      cpu_percent: {critical: 99}\n\
             \x20 build01:\n    cpu_monitor:\n      cpu_percent: off\n  '*':\n    cpu_monitor:\n      cpu_percent: {critical: 1}\n",
        );
        let level = |host: &str| {
            let mut t = AlertTable::default();
            t.observe(&r, host, "cpu_monitor", &json!({"cpu_percent": 95.0}), 0.0);
            let level = t.alerts.values().next().map(|a| a.level);
            level
        };
        assert_eq!(level("db01"), Some(O), "99 for db*");
        assert_eq!(level("build01"), None, "turned off");
        assert_eq!(level("web01"), Some(C), "`*` matches the rest");
        assert!(glob_matches("*.example.com", "a.example.com") && !glob_matches("db?", "db10"));
    }

    #[test]
    fn texts_are_the_readmes() {
        let r = rules(README);
        let mut t = AlertTable::default();
        let cpu = |v: f64| json!({"cpu_percent": v});
        let c = t.observe(&r, "webserver01", "cpu_monitor", &cpu(85.0), 0.0);
        assert_eq!(c[0].text, "WARNING: webserver01 - cpu_monitor.cpu_percent = 85.0");
        let c = t.observe(&r, "webserver01", "cpu_monitor", &cpu(96.0), 10.0);
        assert_eq!(c[0].text, "CRITICAL: webserver01 - cpu_monitor.cpu_percent = 96.0");
        let c = t.observe(&r, "webserver01", "cpu_monitor", &cpu(12.5), 20.0);
        assert_eq!(c[0].text, "RECOVERED: webserver01 - cpu_monitor.cpu_percent = 12.5 (CRITICAL -> OK)");
        let disk = json!({"partitions": {"/": {"percent": 85.0}}});
        t.observe(&r, "database01", "disk_monitor", &disk, 0.0);
        let disk = json!({"partitions": {"/": {"percent": 75.0}}});
        let c = t.observe(&r, "database01", "disk_monitor", &disk, 5.0);
        assert_eq!(c[0].text, "RECOVERED: database01 - disk_monitor.partitions./.percent = 75.0 (WARNING -> OK)");
    }

    #[test]
    fn reminders_follow_the_renotify_interval_and_hold_while_the_host_is_down() {
        let r = rules("cpu_monitor:\n  load_1min: {critical: 10}\n");
        let mut t = AlertTable::default();
        t.observe(&r, "mailserver", "cpu_monitor", &json!({"load_1min": 12.5}), 1000.0);
        let up = HostView { up_plugins: [("mailserver", Vec::new())].into(), ..HostView::default() };
        assert!(t.tick(&r, &up, 4599.0).is_empty());
        let c = t.tick(&r, &up, 4600.0);
        assert_eq!(c[0].text, "REMINDER (CRITICAL): mailserver - cpu_monitor.load_1min = 12.5 (ongoing for 3600s)");
        assert!(c[0].reminder);
        assert!(t.tick(&r, &up, 5000.0).is_empty(), "next one an interval later");
        let down = HostView::default();
        assert!(t.tick(&r, &down, 9000.0).is_empty(), "no reminders while the host is down");
    }

    /// An acknowledged alert reminds no more; its next transition (another
    /// level, or back to OK) ends the acknowledgement, and reminders of the
    /// new level follow the interval again.
    #[test]
    fn an_acknowledged_alert_reminds_no_more_until_its_level_changes() {
        let r = rules("cpu_monitor:\n  load_1min: {warning: 5, critical: 10}\n");
        let key = AlertKey { host: "mail".into(), plugin: "cpu_monitor".into(), metric_path: "load_1min".into() };
        let up = HostView { up_plugins: [("mail", Vec::new())].into(), ..HostView::default() };
        let mut t = AlertTable::default();
        assert_eq!(t.acknowledge(&key, "alice", "on it", 999.0), Err(AckRefused::UnknownAlert));
        t.observe(&r, "mail", "cpu_monitor", &json!({"load_1min": 2.0}), 999.0);
        assert_eq!(t.acknowledge(&key, "alice", "on it", 999.0), Err(AckRefused::IsOk));
        t.observe(&r, "mail", "cpu_monitor", &json!({"load_1min": 12.5}), 1000.0);
        let acked = t.acknowledge(&key, "alice", "swapping the disk", 1100.0).unwrap();
        assert_eq!(
            acked.acknowledged,
            Some(Box::new(Ack { by: "alice".into(), at: 1100.0, comment: "swapping the disk".into() }))
        );
        assert!(t.tick(&r, &up, 4600.0).is_empty(), "no reminder while acknowledged");
        assert!(t.tick(&r, &up, 9000.0).is_empty());
        assert_eq!(t.sorted(None)[0].acknowledged.as_ref().map(|a| a.by.as_str()), Some("alice"));
        // Saved and loaded with the state file.
        let mut t = AlertTable::new(t.snapshot());
        assert!(t.tick(&r, &up, 9500.0).is_empty(), "still acknowledged after a restart");
        // Another level: the acknowledgement ends, reminders resume.
        let c = t.observe(&r, "mail", "cpu_monitor", &json!({"load_1min": 7.0}), 10_000.0);
        assert_eq!(c[0].to, W);
        assert_eq!(t.sorted(None)[0].acknowledged, None);
        assert_eq!(t.tick(&r, &up, 13_600.0).len(), 1, "a reminder of the new level");
        // Recovery ends it too.
        t.acknowledge(&key, "bob", "known", 13_700.0).unwrap();
        t.observe(&r, "mail", "cpu_monitor", &json!({"load_1min": 1.0}), 13_800.0);
        assert_eq!(t.sorted(None)[0].acknowledged, None);
        t.observe(&r, "mail", "cpu_monitor", &json!({"load_1min": 12.0}), 13_900.0);
        assert_eq!(t.tick(&r, &up, 17_500.0).len(), 1, "a new problem reminds");
        // Removing it by hand brings the reminders back.
        assert_eq!(t.unacknowledge(&key), Err(AckRefused::NotAcknowledged));
        t.acknowledge(&key, "bob", "known", 17_600.0).unwrap();
        assert!(t.tick(&r, &up, 21_100.0).is_empty());
        assert_eq!(t.unacknowledge(&key).unwrap().acknowledged, None);
        assert_eq!(t.tick(&r, &up, 21_101.0).len(), 1);
    }

    /// A snapshot for the state file shares each host's list: what changes
    /// after it (a new value, a new alert, a host forgotten) changes the
    /// table, not the snapshot, and a host whose alerts did not change
    /// still shares its list.
    #[test]
    fn a_snapshot_keeps_the_alerts_as_they_were() {
        let r =
            rules("cpu_monitor:\n  load_1min: {warning: 5, critical: 10}\n  load_5min: {warning: 5, critical: 10}\n");
        let mut t = AlertTable::default();
        for host in ["db", "mail", "web"] {
            t.observe(&r, host, "cpu_monitor", &json!({"load_1min": 12.5}), 1000.0);
        }
        let snapshot = t.snapshot();
        t.observe(&r, "mail", "cpu_monitor", &json!({"load_1min": 2.0, "load_5min": 7.0}), 1010.0);
        t.forget("web");
        let levels = |lists: &[Arc<Vec<Alert>>]| -> Vec<(String, Level)> {
            lists
                .iter()
                .flat_map(|l| l.iter())
                .map(|a| (format!("{}/{}", a.key.host, a.key.metric_path), a.level))
                .collect()
        };
        let at_snapshot = [("db/load_1min", C), ("mail/load_1min", C), ("web/load_1min", C)];
        assert_eq!(levels(&snapshot), at_snapshot.map(|(k, l)| (k.to_string(), l)));
        let now = [("db/load_1min", C), ("mail/load_1min", O), ("mail/load_5min", W)];
        assert_eq!(levels(&t.snapshot()), now.map(|(k, l)| (k.to_string(), l)));
        assert!(Arc::ptr_eq(&snapshot[0], &t.snapshot()[0]), "db's list unchanged, still shared");
        assert_eq!(AlertTable::new(snapshot).alerts.len(), 3, "the snapshot loads as it was");
    }

    /// A down host is acknowledged through its host-down alert: no
    /// reminders of it; back up, the acknowledgement is gone.
    #[test]
    fn a_down_host_is_acknowledged_through_its_host_down_alert() {
        let r = rules("");
        let mut t = AlertTable::default();
        t.host_down("web1", 75.0, 100.0).unwrap();
        let acked = t.acknowledge(&heartbeat_key("web1"), "alice", "decommissioning", 110.0).unwrap();
        assert!(acked.acknowledged.is_some() && !acked.held);
        assert!(t.tick(&r, &HostView::default(), 3700.0).is_empty(), "no reminder");
        t.host_up("web1", 3800.0).unwrap();
        assert_eq!(t.sorted(Some("web1"))[0].acknowledged, None);
        t.host_down("web1", 75.0, 4000.0).unwrap();
        assert_eq!(t.tick(&r, &HostView::default(), 7600.0).len(), 1, "a new outage reminds");
    }

    /// A down parent's host-down alert says how many hosts are unreachable
    /// behind it, in its text and its reminders (with the count of then);
    /// an unreachable host's own alerts are held as a down host's.
    #[test]
    fn a_parents_host_down_alert_counts_the_hosts_behind_it() {
        let r = rules(README);
        let mut t = AlertTable::default();
        t.observe(&r, "site1-web", "cpu_monitor", &json!({"cpu_percent": 95.0}), 100.0);
        t.host_unreachable("site1-web");
        t.set_behind([("site1-router".to_string(), 20)].into());
        let c = t.host_down("site1-router", 32.0, 110.0).unwrap();
        assert_eq!(c.text, "CRITICAL: site1-router - host down (silent for 32s); 20 hosts behind it are unreachable");
        let listed = t.sorted(None);
        assert_eq!((&*listed[0].key.host, listed[0].behind), ("site1-router", Some(20)));
        assert!(listed[1].held, "the unreachable host's cpu alert is held");
        assert_eq!(t.summary()[&C], 1, "and not counted");
        t.set_behind([("site1-router".to_string(), 21)].into());
        let c = t.tick(&r, &HostView::default(), 3710.0);
        assert_eq!(c.len(), 1, "no reminder of the held cpu alert");
        assert_eq!(
            c[0].text,
            "REMINDER (CRITICAL): site1-router - host down (ongoing for 3600s); 21 hosts behind it are unreachable"
        );
        t.host_reachable("site1-web");
        assert!(!t.sorted(None)[1].held);
        t.host_up("site1-router", 3800.0).unwrap();
        assert_eq!(t.sorted(Some("site1-router"))[0].behind, None, "back: nobody behind it, whatever the last count");
        assert_eq!(behind_text(Some(1)), "; 1 host behind it is unreachable");
        assert_eq!(behind_text(Some(0)), "");
    }

    /// A state file from before acknowledgements loads as unacknowledged.
    #[test]
    fn old_state_files_have_no_acknowledgements() {
        let old = r#"{"host":"h","plugin":"p","metric_path":"v","level":"CRITICAL","last_value":1.0,"threshold":null,"since":5.0,"last_notified":5.0,"message":"m"}"#;
        let alert: Alert = serde_json::from_str(old).unwrap();
        assert_eq!(alert.acknowledged, None);
        assert!(!serde_json::to_string(&alert).unwrap().contains("acknowledged"));
    }

    #[test]
    fn host_down_is_critical_and_reminds() {
        let r = rules("");
        let mut t = AlertTable::default();
        let c = t.host_down("web1", 75.0, 100.0).unwrap();
        assert_eq!((c.to, c.text.as_str()), (C, "CRITICAL: web1 - host down (silent for 75s)"));
        assert!(t.host_down("web1", 80.0, 105.0).is_none(), "once");
        let c = t.tick(&r, &HostView::default(), 3700.0);
        assert_eq!(c[0].text, "REMINDER (CRITICAL): web1 - host down (ongoing for 3600s)");
        let c = t.host_up("web1", 3800.0).unwrap();
        assert_eq!(c.text, "RECOVERED: web1 - host up (CRITICAL -> OK)");
        assert!(t.host_up("web1", 3900.0).is_none());
    }

    #[test]
    fn a_silent_plugin_is_unknown_until_it_reports() {
        let r = rules("");
        let mut t = AlertTable::default();
        let hosts = |last: f64| HostView {
            up_plugins: [("h", vec![("cpu_monitor", last, 60.0)])].into(),
            ..HostView::default()
        };
        assert!(t.tick(&r, &hosts(1000.0), 1180.0).is_empty(), "3 intervals of 60 s not yet passed");
        let c = t.tick(&r, &hosts(1000.0), 1181.0);
        assert_eq!(
            (c[0].to, c[0].text.as_str()),
            (Level::Unknown, "UNKNOWN: h - cpu_monitor stopped reporting (no sample for 181s)")
        );
        assert!(t.tick(&r, &hosts(1000.0), 1182.0).is_empty());
        let c = t.observe(&r, "h", "cpu_monitor", &json!({}), 1200.0);
        assert_eq!(c[0].text, "RECOVERED: h - cpu_monitor reporting again (UNKNOWN -> OK)");
    }

    #[test]
    fn nagios_exit_codes_need_no_rule() {
        let r = Rules::default();
        let mut t = AlertTable::default();
        let data =
            |code: i64| json!({"checks": {"check_disk": {"exit_code": code, "output": "DISK WARNING - free space"}}});
        let c = t.observe(&r, "h", "nagios_runner", &data(1), 0.0);
        assert_eq!(c[0].text, "WARNING: h - nagios_runner.checks.check_disk.exit_code = 1 (DISK WARNING - free space)");
        assert_eq!(t.observe(&r, "h", "nagios_runner", &data(2), 1.0)[0].to, C);
        assert_eq!(t.observe(&r, "h", "nagios_runner", &data(3), 2.0)[0].to, Level::Unknown);
        assert_eq!(t.observe(&r, "h", "nagios_runner", &data(0), 3.0)[0].to, O);
        t.observe(&r, "h", "nagios_runner", &json!({"checks": {}}), 4.0);
        assert!(t.alerts.len() == 0, "a check no longer configured is forgotten");
    }
}
