//! The JSON views of hbd's data that the HTTP API and the WebSocket share,
//! so that a host looks the same in `/api/0/hosts` and in a live update.
//! docs/API.md documents every field.

use std::collections::BTreeMap;

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{json, Value};

use crate::server::model::{
    Alert, AlertList, DnsOutcome, Event, Host, Job, Level, PluginSeries, Sample, Silence, Silenced, Status,
    AVAILABILITY_KEPT, HEARTBEAT,
};
use crate::wire::{JobEvent, PluginKind};

/// A host as the API shows it. `uptime` counts seconds since it last came
/// up, and is null while it is down. Serialized straight from the host's
/// fields: `/api/0/hosts` writes thousands of these.
#[derive(Serialize)]
struct HostView<'a> {
    name: &'a str,
    status: Status,
    address: IpAddr,
    port: u16,
    interval: f64,
    first_seen: f64,
    last_seen: f64,
    count: u64,
    latency_ms: Option<f64>,
    status_since: f64,
    uptime: Option<f64>,
    /// The worst level of the host's alerts.
    alert_level: Level,
    /// Percent of the last day and week the host was up.
    availability: Availability,
    plugins: BTreeMap<&'a str, PluginKind>,
    /// Another hbd (`peers:`); absent for hosts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    peer: bool,
    /// `parents:` that apply to it, and while unreachable the ones down.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    parents: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    unreachable_via: &'a [String],
    /// Its tags (from its client and hbd.yaml); absent when none, so that
    /// hosts without tags look as they did.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    /// What silences the whole host now; absent when nothing does.
    #[serde(skip_serializing_if = "Option::is_none")]
    silenced: Option<SilencedView<'a>>,
    /// `host`, or `job` for a check fed by `JOB` signals (`hbc run`).
    kind: &'static str,
    /// A job's settings and runs (in lists only the last, without output).
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<&'a Job>,
}

#[derive(Serialize)]
struct SilencedView<'a> {
    id: &'a str,
    until: f64,
    comment: &'a str,
    by: &'a str,
}

impl<'a> HostView<'a> {
    fn new(host: &'a Host, now: f64) -> HostView<'a> {
        HostView {
            name: &host.name,
            status: host.status,
            address: host.address,
            port: host.port,
            interval: host.interval,
            first_seen: host.first_seen,
            last_seen: host.last_seen,
            count: host.count,
            latency_ms: host.latency_ms,
            status_since: host.status_since,
            uptime: (host.status == Status::Up).then(|| (now - host.status_since).max(0.0)),
            alert_level: host.alert_level,
            availability: Availability {
                day: host.availability(now, 86400.0).map(round3),
                week: host.availability(now, AVAILABILITY_KEPT).map(round3),
            },
            plugins: host.plugins.iter().map(|(name, s)| (name.as_str(), s.kind)).collect(),
            peer: host.peer,
            parents: &host.parents,
            unreachable_via: &host.unreachable_via,
            tags: &host.tags,
            silenced: host.silenced.as_ref().map(|s| SilencedView {
                id: &s.id,
                until: s.until,
                comment: &s.comment,
                by: &s.by,
            }),
            kind: if host.job.is_some() { "job" } else { "host" },
            job: host.job.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct Availability {
    #[serde(rename = "24h")]
    day: Option<f64>,
    #[serde(rename = "7d")]
    week: Option<f64>,
}

pub fn host_json(host: &Host, now: f64) -> Value {
    serde_json::to_value(HostView::new(host, now)).unwrap_or(Value::Null)
}

/// One host as `/api/0/hosts/{name}` shows it: the list's view plus the
/// recent round trips, `latency_history` (`[[unix time, ms], …]`).
pub fn host_detail_json(host: &Host, now: f64) -> Value {
    let mut value = host_json(host, now);
    if let Some(map) = value.as_object_mut() {
        map.insert("latency_history".into(), json!(host.latency_history));
    }
    value
}

#[derive(Serialize)]
struct HostList<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    hosts: Vec<HostView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
}

/// The body of `/api/0/hosts`.
pub fn hosts_body(hosts: &[Host], now: f64) -> serde_json::Result<String> {
    let hosts_view = hosts.iter().map(|h| HostView::new(h, now)).collect();
    serde_json::to_string(&HostList { kind: None, hosts: hosts_view, count: Some(hosts.len()) })
}

/// The WebSocket's first message: `{"type":"snapshot","hosts":[…]}`.
pub fn snapshot_body(hosts: &[Host], now: f64) -> serde_json::Result<String> {
    let hosts_view = hosts.iter().map(|h| HostView::new(h, now)).collect();
    serde_json::to_string(&HostList { kind: Some("snapshot"), hosts: hosts_view, count: None })
}

pub fn sample_json(sample: &Sample) -> Value {
    let mut value = json!({"at": sample.at, "received": sample.received});
    if let Some(map) = value.as_object_mut() {
        if let Some(data) = &sample.data {
            // Stored as checked compact JSON; parsing it back cannot fail.
            map.insert("data".into(), serde_json::from_str(data.as_str()).unwrap_or(Value::Null));
        }
        if let Some(error) = &sample.error {
            map.insert("error".into(), json!(error));
        }
    }
    value
}

pub fn latest_json(series: &PluginSeries) -> Option<Value> {
    let mut value = sample_json(series.samples.back()?);
    if let Some(map) = value.as_object_mut() {
        map.insert("kind".into(), json!(series.kind));
    }
    Some(value)
}

/// Every `type` [`event_fields`] gives, as `/api/0/events?type=` takes them.
pub const EVENT_TYPES: &[&str] = &[
    "host_new",
    "host_up",
    "host_down",
    "address_changed",
    "dns_update",
    "alert",
    "alert_reminder",
    "notification",
    "host_forgotten",
    "dns_removed",
    "acknowledged",
    "ack_removed",
    "host_unreachable",
    "host_reachable",
    "silence_added",
    "silence_ended",
    "maintenance_started",
    "maintenance_ended",
    "job_start",
    "job_ok",
    "job_fail",
];

/// An event's type name and fields, as the events journal, `/api/0/events`
/// and live updates show it. No field is named `message`, which on a
/// journal line is a received message.
pub fn event_fields(event: &Event) -> (&'static str, Value) {
    match event {
        Event::HostNew { name, address } => {
            ("host_new", json!({"name": name, "address": address.ip().to_string(), "port": address.port()}))
        }
        Event::HostUp { name, address, down_for } => (
            "host_up",
            json!({"name": name, "address": address.ip().to_string(), "port": address.port(), "down_for": round3(*down_for)}),
        ),
        Event::HostDown { name, last_seen, silent_for } => {
            ("host_down", json!({"name": name, "last_seen": round3(*last_seen), "silent_for": round3(*silent_for)}))
        }
        Event::AddressChanged { name, old, new } => {
            ("address_changed", json!({"name": name, "old_address": old.to_string(), "address": new.to_string()}))
        }
        Event::Alert(change) => {
            let kind = if change.reminder { "alert_reminder" } else { "alert" };
            let fields = json!({
                "name": change.key.host,
                "plugin": change.key.plugin,
                "metric_path": change.key.metric_path,
                "from": change.from,
                "level": change.to,
                "value": change.value,
                "threshold": change.threshold,
                "ongoing": round3(change.ongoing),
                // Not `message`: on a journal line that key is a received
                // message's, and the Python hbd's jq one-liners read it so.
                "text": change.text,
            });
            (kind, fields)
        }
        Event::Notification(report) => (
            "notification",
            json!({
                "service": report.service,
                "subject": report.subject,
                "delivered": report.delivered,
                "error": report.error,
                "attempt": report.attempt,
                "will_retry": report.will_retry,
            }),
        ),
        Event::DnsUpdate { name, domain, address, outcome } => {
            let record = if address.is_ipv4() { "A" } else { "AAAA" };
            let mut fields = json!({"name": name, "domain": domain, "record": record, "address": address.to_string()});
            add_dns_outcome(&mut fields, outcome, "updated");
            ("dns_update", fields)
        }
        Event::DnsRemoved { name, domain, outcome } => {
            let mut fields = json!({"name": name, "domain": domain});
            add_dns_outcome(&mut fields, outcome, "removed");
            ("dns_removed", fields)
        }
        Event::HostForgotten { name, by, last_seen } => {
            ("host_forgotten", json!({"name": name, "by": by, "last_seen": round3(*last_seen)}))
        }
        Event::HostUnreachable { name, via, last_seen, silent_for } => (
            "host_unreachable",
            json!({"name": name, "via": via, "last_seen": round3(*last_seen), "silent_for": round3(*silent_for)}),
        ),
        Event::HostReachable { name, address, unreachable_for } => (
            "host_reachable",
            json!({"name": name, "address": address.ip().to_string(), "port": address.port(), "unreachable_for": round3(*unreachable_for)}),
        ),
        Event::Acknowledged { key, by, comment } => (
            "acknowledged",
            json!({"name": key.host, "plugin": key.plugin, "metric_path": key.metric_path, "by": by, "comment": comment}),
        ),
        Event::AckRemoved { key, by } => {
            ("ack_removed", json!({"name": key.host, "plugin": key.plugin, "metric_path": key.metric_path, "by": by}))
        }
        Event::JobRun { name, event, run } => {
            let kind = match event {
                JobEvent::Start => "job_start",
                JobEvent::Ok => "job_ok",
                JobEvent::Fail => "job_fail",
            };
            let mut fields = serde_json::to_value(run).unwrap_or_else(|_| json!({}));
            if let Some(map) = fields.as_object_mut() {
                map.insert("name".into(), json!(name));
                // `message` is a received message's key on a journal line.
                if let Some(message) = map.remove("message") {
                    map.insert("note".into(), message);
                }
            }
            (kind, fields)
        }
        Event::SilenceAdded(s) => ("silence_added", silence_fields(s, &s.by)),
        Event::SilenceEnded { silence, by } => ("silence_ended", silence_fields(silence, by)),
        Event::MaintenanceStarted { name, starts_at, ends_at, comment } => (
            "maintenance_started",
            json!({"name": name, "starts_at": round3(*starts_at), "ends_at": round3(*ends_at), "comment": comment}),
        ),
        Event::MaintenanceEnded { name } => ("maintenance_ended", json!({"name": name})),
    }
}

/// A silence's fields in its events; `by` who added it (`silence_added`)
/// or ended it (`silence_ended`: a token's name, or `expired`).
fn silence_fields(s: &Silence, by: &str) -> Value {
    json!({
        "id": s.id,
        "host": s.host,
        "plugin": s.plugin,
        "metric_path": s.metric_path,
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "comment": s.comment,
        "by": by,
    })
}

/// `"silenced": {"id", "until", "comment", "by"}` on an alert or host
/// object while something covers it; absent otherwise.
fn add_silenced(value: &mut Value, silenced: Option<&Silenced>) {
    if let (Some(s), Some(map)) = (silenced, value.as_object_mut()) {
        map.insert("silenced".into(), json!({"id": s.id, "until": s.until, "comment": s.comment, "by": s.by}));
    }
}

/// An nsupdate's outcome among an event's fields: `done` when it
/// succeeded, else `failed` with nsupdate's error and when it is retried.
fn add_dns_outcome(fields: &mut Value, outcome: &DnsOutcome, done: &str) {
    let Some(map) = fields.as_object_mut() else { return };
    match outcome {
        DnsOutcome::Updated => {
            map.insert("outcome".into(), json!(done));
        }
        DnsOutcome::Failed { error, retry_in } => {
            map.insert("outcome".into(), json!("failed"));
            map.insert("error".into(), json!(error));
            map.insert("retry_in".into(), json!(retry_in.map(round3)));
        }
    }
}

/// An alert as `/api/0/alerts` shows it: the Python hbd's field names.
pub fn alert_json(alert: &Alert) -> Value {
    let mut shown = json!({
        "hostname": alert.key.host,
        "plugin": alert.key.plugin,
        "metric_path": alert.key.metric_path,
        "level": alert.level,
        "last_value": alert.last_value,
        "threshold": alert.threshold,
        "since": round3(alert.since),
        "last_notified": round3(alert.last_notified),
        "warning": alert.warning,
        "critical": alert.critical,
        "message": alert.message,
    });
    add_ack(&mut shown, alert);
    add_silenced(&mut shown, alert.silenced.as_deref());
    if let (Some(behind), Some(map)) = (alert.behind, shown.as_object_mut()) {
        map.insert("behind".into(), json!(behind));
    }
    shown
}

/// `acknowledged: {by, at, comment}` while the alert is acknowledged; absent otherwise.
fn add_ack(shown: &mut Value, alert: &Alert) {
    if let (Some(ack), Some(map)) = (&alert.acknowledged, shown.as_object_mut()) {
        map.insert("acknowledged".into(), json!({"by": ack.by, "at": round3(ack.at), "comment": ack.comment}));
    }
}

/// `{"summary":{"ok":…,"warning":…,"critical":…,"unknown":…},"alerts":[…],"count":N}`.
///
/// An alert held under its host's host-down alert (`Alert::held`) is listed
/// inside that alert's `held`, not beside it: the Python README's loop over
/// `alerts` then prints as many CRITICAL lines as `summary.critical` says.
pub fn alerts_json(list: &AlertList) -> Value {
    // Each alert with its host's tags, when it has any.
    let alert_json = |alert: &Alert| {
        let mut shown = alert_json(alert);
        if let (Some(tags), Some(map)) = (list.tags.get(&*alert.key.host), shown.as_object_mut()) {
            map.insert("tags".into(), json!(tags));
        }
        shown
    };
    let mut held: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for alert in list.alerts.iter().filter(|a| a.held) {
        held.entry(&*alert.key.host).or_default().push(alert_json(alert));
    }
    let listed: Vec<Value> = list
        .alerts
        .iter()
        .filter(|a| !a.held)
        .map(|alert| {
            let mut shown = alert_json(alert);
            let under = match &*alert.key.plugin == HEARTBEAT {
                true => held.remove(&*alert.key.host).unwrap_or_default(),
                false => Vec::new(),
            };
            shown["held"] = Value::Array(under);
            shown
        })
        .collect();
    let count = |level| list.summary.get(&level).copied().unwrap_or(0);
    json!({
        "summary": {
            "ok": count(Level::Ok),
            "warning": count(Level::Warning),
            "critical": count(Level::Critical),
            "unknown": count(Level::Unknown),
        },
        "count": listed.len(),
        "alerts": listed,
        // Held under no listed host-down alert: an unreachable host's (`parents:`).
        "held": held.into_values().flatten().collect::<Vec<Value>>(),
    })
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::model::{Ack, AlertKey, SILENT_FOR};

    fn alert(host: &str, plugin: &str, path: &str, held: bool) -> Alert {
        Alert {
            key: AlertKey { host: host.into(), plugin: plugin.into(), metric_path: path.into() },
            level: Level::Critical,
            last_value: Some(1.0),
            threshold: None,
            since: 1.0,
            last_notified: 1.0,
            warning: None,
            critical: None,
            message: String::new(),
            pending: None,
            held,
            acknowledged: None,
            behind: None,
            silenced: None,
        }
    }

    /// A down host's alerts go under its host-down alert; an unreachable
    /// host's, with none to go under, into the top-level `held`; the
    /// acknowledgement and the hosts behind show on the alert.
    #[test]
    fn held_alerts_are_listed_under_their_host_down_alert_or_at_the_top() {
        let mut router = alert("router", HEARTBEAT, SILENT_FOR, false);
        router.behind = Some(20);
        router.acknowledged = Some(Box::new(Ack { by: "alice".into(), at: 5.0, comment: "<b>on it</b>".into() }));
        let list = AlertList {
            summary: BTreeMap::new(),
            alerts: vec![router, alert("router", "cpu_monitor", "x", true), alert("web", "cpu_monitor", "x", true)],
            tags: [("router".to_string(), vec!["net".to_string()])].into(),
        };
        let body = alerts_json(&list);
        assert_eq!(body["count"], 1);
        let shown = &body["alerts"][0];
        assert_eq!((&shown["behind"], &shown["acknowledged"]["comment"]), (&json!(20), &json!("<b>on it</b>")));
        assert_eq!(shown["held"].as_array().map(|h| h[0]["hostname"].clone()), Some(json!("router")));
        assert_eq!(body["held"].as_array().map(|h| (h.len(), h[0]["hostname"].clone())), Some((1, json!("web"))));
        assert_eq!((&shown["tags"], &shown["held"][0]["tags"]), (&json!(["net"]), &json!(["net"])));
        assert!(body["held"][0].get("tags").is_none(), "web has no tags");
        let plain = alert_json(&alert("web", "cpu_monitor", "x", false));
        assert!(plain.get("behind").is_none() && plain.get("acknowledged").is_none(), "{plain}");
    }
}
