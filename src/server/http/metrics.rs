//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Pure formatting of a [`MetricsSnapshot`]: host state, udp counters, queue
//! lengths, DNS updates, and every numeric (or boolean) leaf of each host's latest plugin
//! data as `hbd_plugin_metric{host,plugin,metric}`, the metric being the
//! dot-joined path (`partitions./.percent`), as threshold paths name it.

use std::fmt::Write;

use serde_json::Value;

use crate::server::model::{summarize, Level, Status};
use crate::server::msg::MetricsSnapshot;
use crate::wire::decode::RejectReason;

/// Paths deeper than this are not exported (a hostile nesting costs nothing).
const MAX_DEPTH: usize = 8;

/// The text, or Err(bytes so far) once it passes `limit` bytes: at 100,000
/// hosts with plugin data it would be over 500 MiB, held whole in memory
/// before the HTTP front can send it (which refuses answers that large).
pub fn render(s: &MetricsSnapshot, limit: usize) -> Result<String, usize> {
    let mut out = String::with_capacity(256 + s.hosts.len() * 512);
    family(&mut out, "hbd_hosts", "gauge", "Hosts hbd knows.");
    sample(&mut out, "hbd_hosts", &[], s.hosts.len() as f64);
    family(&mut out, "hbd_hosts_unreachable", "gauge", "Hosts silent behind parents that are all down.");
    let unreachable = s.hosts.iter().filter(|h| h.status == Status::Unreachable).count();
    sample(&mut out, "hbd_hosts_unreachable", &[], unreachable as f64);

    family(&mut out, "hbd_host_up", "gauge", "Whether the host is up (1) or down or unreachable (0).");
    for h in &s.hosts {
        sample(&mut out, "hbd_host_up", &[("host", &h.name)], if h.status == Status::Up { 1.0 } else { 0.0 });
    }
    family(
        &mut out,
        "hbd_host_last_seen_timestamp_seconds",
        "gauge",
        "When the host was last heard from, in Unix time.",
    );
    for h in &s.hosts {
        sample(&mut out, "hbd_host_last_seen_timestamp_seconds", &[("host", &h.name)], h.last_seen);
    }
    family(&mut out, "hbd_host_interval_seconds", "gauge", "The heartbeat interval the host announced.");
    for h in &s.hosts {
        sample(&mut out, "hbd_host_interval_seconds", &[("host", &h.name)], h.interval);
    }
    family(&mut out, "hbd_host_heartbeats_total", "counter", "Heartbeats received from the host.");
    for h in &s.hosts {
        sample(&mut out, "hbd_host_heartbeats_total", &[("host", &h.name)], h.count as f64);
    }
    family(&mut out, "hbd_host_latency_seconds", "gauge", "Round-trip time the host's client last measured to hbd.");
    for h in &s.hosts {
        if let Some(ms) = h.latency_ms {
            sample(&mut out, "hbd_host_latency_seconds", &[("host", &h.name)], ms / 1000.0);
        }
    }
    // An info metric, as Prometheus users join it: `* on(host) group_left(tag)`.
    family(&mut out, "hbd_host_tags", "gauge", "A tag of the host (from its client or hbd.yaml): always 1.");
    for h in &s.hosts {
        for tag in &h.tags {
            sample(&mut out, "hbd_host_tags", &[("host", &h.name), ("tag", tag)], 1.0);
        }
    }

    family(&mut out, "hbd_datagrams_received_total", "counter", "UDP datagrams received.");
    sample(&mut out, "hbd_datagrams_received_total", &[], s.udp.received as f64);
    family(&mut out, "hbd_datagrams_rejected_total", "counter", "UDP datagrams rejected, by reason.");
    for reason in RejectReason::ALL {
        let n = s.udp.rejected.get(reason.index()).copied().unwrap_or(0);
        sample(&mut out, "hbd_datagrams_rejected_total", &[("reason", reason.as_str())], n as f64);
    }
    family(
        &mut out,
        "hbd_plugin_samples_refused_total",
        "counter",
        "Plugin samples left out: malformed, over a limit, or beyond max_plugins_per_host.",
    );
    sample(&mut out, "hbd_plugin_samples_refused_total", &[], (s.udp.dropped_plugins + s.dropped_plugins) as f64);
    family(
        &mut out,
        "hbd_hosts_refused_total",
        "counter",
        "Messages from new hosts refused because max_hosts was reached.",
    );
    sample(&mut out, "hbd_hosts_refused_total", &[], s.dropped_hosts as f64);
    family(
        &mut out,
        "hbd_ws_updates_dropped_total",
        "counter",
        "Live updates dropped because the WebSocket hub was behind.",
    );
    sample(&mut out, "hbd_ws_updates_dropped_total", &[], s.ws_dropped as f64);
    family(
        &mut out,
        "hbd_journal_lines_dropped_total",
        "counter",
        "Journal lines that never reached the file (the disk refused them and the buffer was full).",
    );
    sample(&mut out, "hbd_journal_lines_dropped_total", &[], s.journal.dropped_lines as f64);
    family(&mut out, "hbd_journal_write_errors_total", "counter", "Journal writes the disk refused.");
    sample(&mut out, "hbd_journal_write_errors_total", &[], s.journal.write_errors as f64);
    family(&mut out, "hbd_queue_length", "gauge", "Messages waiting in a channel between hbd's threads.");
    sample(&mut out, "hbd_queue_length", &[("queue", "core")], s.inbound_queue as f64);
    sample(&mut out, "hbd_queue_length", &[("queue", "journal")], s.journal_queue as f64);
    family(&mut out, "hbd_dns_updates_total", "counter", "DNS records set with nsupdate.");
    sample(&mut out, "hbd_dns_updates_total", &[], s.dns.updates as f64);
    family(
        &mut out,
        "hbd_dns_failures_total",
        "counter",
        "nsupdate runs that failed or timed out (each retry counts).",
    );
    sample(&mut out, "hbd_dns_failures_total", &[], s.dns.failures as f64);
    family(&mut out, "hbd_dns_pending", "gauge", "DNS records that do not hold their host's address yet.");
    sample(&mut out, "hbd_dns_pending", &[], s.dns.pending as f64);

    family(&mut out, "hbd_notifications_sent_total", "counter", "Notifications delivered, by service.");
    for n in &s.notify {
        sample(&mut out, "hbd_notifications_sent_total", &[("service", &n.service)], n.sent as f64);
    }
    family(
        &mut out,
        "hbd_notifications_failed_total",
        "counter",
        "Failed delivery attempts (each is retried), by service.",
    );
    for n in &s.notify {
        sample(&mut out, "hbd_notifications_failed_total", &[("service", &n.service)], n.failed_attempts as f64);
    }
    family(
        &mut out,
        "hbd_notifications_dropped_total",
        "counter",
        "Notifications given up: refused by the service, expired, or pushed out of a full queue.",
    );
    for n in &s.notify {
        sample(&mut out, "hbd_notifications_dropped_total", &[("service", &n.service)], n.dropped as f64);
    }
    family(
        &mut out,
        "hbd_notifications_folded_total",
        "counter",
        "Notifications folded into summaries by max_per_hour.",
    );
    for n in &s.notify {
        sample(&mut out, "hbd_notifications_folded_total", &[("service", &n.service)], n.folded as f64);
    }
    family(&mut out, "hbd_notifications_pending", "gauge", "Notifications waiting to be delivered, by service.");
    for n in &s.notify {
        sample(&mut out, "hbd_notifications_pending", &[("service", &n.service)], n.pending as f64);
    }
    family(
        &mut out,
        "hbd_notifications_undeliverable_total",
        "counter",
        "Notifications not sent because the service is not usable (its configuration lacks what it needs; /healthz says what), by service.",
    );
    for n in &s.notify {
        sample(&mut out, "hbd_notifications_undeliverable_total", &[("service", &n.service)], n.undeliverable as f64);
    }
    family(
        &mut out,
        "hbd_notify_service_usable",
        "gauge",
        "Whether hbd has what it needs to deliver to the service (1) or not (0), by service.",
    );
    for n in &s.notify {
        sample(&mut out, "hbd_notify_service_usable", &[("service", &n.service)], if n.usable { 1.0 } else { 0.0 });
    }
    family(
        &mut out,
        "hbd_notify_events_dropped_total",
        "counter",
        "Alert changes the notifier could not take because it was stuck.",
    );
    sample(&mut out, "hbd_notify_events_dropped_total", &[], s.notify_dropped as f64);

    family(
        &mut out,
        "hbd_alerts",
        "gauge",
        "Alert states at each level, as /api/0/alerts counts them (a down host is one critical alert; alerts held under it are not counted).",
    );
    for (level, n) in summarize(&s.alerts) {
        sample(&mut out, "hbd_alerts", &[("level", &level.as_str().to_ascii_lowercase())], n as f64);
    }
    family(
        &mut out,
        "hbd_alerts_held",
        "gauge",
        "Alerts of down or unreachable hosts that are not OK, held (under their host-down alert if any).",
    );
    sample(&mut out, "hbd_alerts_held", &[], s.alerts.iter().filter(|a| a.held && a.level != Level::Ok).count() as f64);
    family(
        &mut out,
        "hbd_alerts_silenced",
        "gauge",
        "Alerts that are not OK (held ones aside) covered by a silence or a maintenance window: not notified.",
    );
    let silenced = s.alerts.iter().filter(|a| !a.held && a.level != Level::Ok && a.silenced.is_some()).count();
    sample(&mut out, "hbd_alerts_silenced", &[], silenced as f64);
    family(
        &mut out,
        "hbd_silences",
        "gauge",
        "Silences holding now (active) and still to come (pending); maintenance windows are not counted.",
    );
    sample(&mut out, "hbd_silences", &[("state", "active")], s.silences_active as f64);
    sample(&mut out, "hbd_silences", &[("state", "pending")], s.silences_pending as f64);
    family(
        &mut out,
        "hbd_alert_level",
        "gauge",
        "Each alert's level as Nagios numbers it: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    );
    for alert in &s.alerts {
        let code = match alert.level {
            Level::Ok => 0.0,
            Level::Warning => 1.0,
            Level::Critical => 2.0,
            Level::Unknown => 3.0,
        };
        let k = &alert.key;
        let labels = [("host", &*k.host), ("plugin", &*k.plugin), ("metric", &*k.metric_path)];
        sample(&mut out, "hbd_alert_level", &labels, code);
    }

    let Some(plugins) = &s.plugins else { return Ok(out) };
    family(
        &mut out,
        "hbd_plugin_metric",
        "gauge",
        "Numeric values of each host's latest plugin data; metric is the dot-joined path.",
    );
    let mut path = String::new();
    for (host, plugin, latest) in plugins {
        if let Some(value) = latest.value() {
            path.clear();
            leaves(&mut out, host, plugin, &value, &mut path, 0);
        }
        if out.len() > limit {
            return Err(out.len());
        }
    }
    Ok(out)
}

fn leaves(out: &mut String, host: &str, plugin: &str, value: &Value, path: &mut String, depth: usize) {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Object(map) if depth < MAX_DEPTH => {
            for (key, child) in map {
                descend(out, host, plugin, child, path, depth, key);
            }
            None
        }
        Value::Array(items) if depth < MAX_DEPTH => {
            for (i, child) in items.iter().enumerate() {
                descend(out, host, plugin, child, path, depth, &i.to_string());
            }
            None
        }
        _ => None,
    };
    if let Some(number) = number.filter(|_| !path.is_empty()) {
        sample(out, "hbd_plugin_metric", &[("host", host), ("plugin", plugin), ("metric", path)], number);
    }
}

fn descend(out: &mut String, host: &str, plugin: &str, child: &Value, path: &mut String, depth: usize, key: &str) {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    leaves(out, host, plugin, child, path, depth + 1);
    path.truncate(len);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, label)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"");
            escape_label(out, label);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_value(value));
}

/// Label values escape `\`, `"` and newlines, as the format requires.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::model::DnsStats;
    use crate::server::model::{Host, Json, Sample, UdpStats};
    use crate::server::store::{History, Layouts, Series};
    use crate::wire::PluginKind;
    use std::sync::Arc;

    /// `data` as the latest sample of a monitor plugin (from the store, as
    /// core hands it over) and of an info plugin.
    fn snapshot(data: &str) -> MetricsSnapshot {
        let value: serde_json::Value = serde_json::from_str(data).unwrap();
        let (mut history, mut layouts) = (History::default(), Layouts::default());
        history.push(&mut layouts, 5, (0.5, 0.5), Some(&serde_json::json!({"superseded": 1})), None).unwrap();
        history.push(&mut layouts, 5, (1.0, 1.0), Some(&value), None).unwrap();
        let mut info = Series::new(PluginKind::Info);
        let sample = Sample { at: 2.0, received: 2.0, data: Some(Json::from(Arc::<str>::from(data))), error: None };
        info.push(&mut layouts, 5, &sample, Some(&value)).unwrap();
        let plugins = vec![
            ("web-1".to_string(), Arc::from("disk_monitor"), Series::Monitor(history).latest().unwrap()),
            ("web-1".to_string(), Arc::from("os_info"), info.latest().unwrap()),
        ];
        let host = Host {
            last_seen: 2.5,
            count: 7,
            latency_ms: Some(1.5),
            tags: vec!["db".into(), "eu".into()],
            ..Host::for_test("web-1")
        };
        MetricsSnapshot {
            hosts: vec![host],
            plugins: Some(plugins),
            udp: UdpStats { received: 10, rejected: vec![0, 3], dropped_plugins: 1 },
            alerts: Vec::new(),
            notify: Vec::new(),
            notify_dropped: 0,
            inbound_queue: 0,
            journal_queue: 2,
            dropped_hosts: 0,
            dropped_plugins: 0,
            ws_dropped: 0,
            dns: DnsStats { updates: 4, failures: 1, pending: 2 },
            journal: Default::default(),
            silences_active: 1,
            silences_pending: 2,
        }
    }

    #[test]
    fn hosts_counters_and_plugin_leaves() {
        let full = snapshot(r#"{"partitions":{"/":{"percent":41.5,"device":"/dev/sda1"}},"per_core":[1,2],"ok":true}"#);
        let text = render(&full, usize::MAX).unwrap();
        // Past the limit, no text: how far it got.
        assert!(matches!(render(&full, 100), Err(bytes) if bytes > 100));
        for line in [
            "hbd_host_up{host=\"web-1\"} 1",
            "hbd_host_heartbeats_total{host=\"web-1\"} 7",
            "hbd_host_latency_seconds{host=\"web-1\"} 0.0015",
            "hbd_host_tags{host=\"web-1\",tag=\"db\"} 1",
            "hbd_host_tags{host=\"web-1\",tag=\"eu\"} 1",
            "hbd_datagrams_received_total 10",
            "hbd_datagrams_rejected_total{reason=\"not_json\"} 3",
            "hbd_datagrams_rejected_total{reason=\"host_not_allowed\"} 0",
            "hbd_queue_length{queue=\"journal\"} 2",
            "hbd_dns_updates_total 4",
            "hbd_dns_failures_total 1",
            "hbd_dns_pending 2",
            "hbd_silences{state=\"active\"} 1",
            "hbd_silences{state=\"pending\"} 2",
            "hbd_alerts_silenced 0",
            "hbd_plugin_metric{host=\"web-1\",plugin=\"disk_monitor\",metric=\"partitions./.percent\"} 41.5",
            "hbd_plugin_metric{host=\"web-1\",plugin=\"disk_monitor\",metric=\"per_core.1\"} 2",
            "hbd_plugin_metric{host=\"web-1\",plugin=\"disk_monitor\",metric=\"ok\"} 1",
            "hbd_plugin_metric{host=\"web-1\",plugin=\"os_info\",metric=\"per_core.0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("device"), "strings are not metrics");
        assert!(!text.contains("superseded"), "only the latest sample");
    }

    #[test]
    fn notification_services_usable_or_not() {
        use crate::server::model::ServiceStats;
        let mut s = snapshot("{}");
        s.notify = vec![
            ServiceStats { service: "email".into(), sent: 2, usable: true, ..ServiceStats::default() },
            ServiceStats { service: "pushover".into(), undeliverable: 3, ..ServiceStats::default() },
        ];
        let text = render(&s, usize::MAX).unwrap();
        for line in [
            "hbd_notifications_sent_total{service=\"email\"} 2",
            "hbd_notifications_undeliverable_total{service=\"email\"} 0",
            "hbd_notifications_undeliverable_total{service=\"pushover\"} 3",
            "hbd_notify_service_usable{service=\"email\"} 1",
            "hbd_notify_service_usable{service=\"pushover\"} 0",
            "# TYPE hbd_notifications_undeliverable_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn hostile_keys_are_escaped() {
        let text = render(&snapshot(r#"{"a\"b\\c\nd":1}"#), usize::MAX).unwrap();
        assert!(text.contains(r#"metric="a\"b\\c\nd"} 1"#), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("hbd_plugin_metric{")).count(), 2, "one per plugin");
    }
}
