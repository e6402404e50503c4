//! The alertmanager thread: hbd's alerts and down hosts, posted to
//! Prometheus Alertmanager's v2 API (`POST /api/v2/alerts`) the way
//! Prometheus posts its own, so that Alertmanager's grouping, silences,
//! inhibition, routing and, with several hbds and a clustered Alertmanager,
//! deduplication apply to them.
//!
//! Alertmanager wants state, not messages: every alert that fires is sent
//! again every `resend_interval` with an `endsAt` four intervals ahead (so
//! that alerts of an hbd that died resolve by themselves), and one that
//! ended is sent with its `endsAt` for a quarter of an hour, so that every
//! Alertmanager hears of it. The core hands this thread the alerts that
//! are not OK whenever they change ([`AlertmanagerMsg::Alerts`]); the
//! thread works out which fire, which ended, and posts the whole set to
//! every URL. A URL that fails is tried again with backoff (5 s doubling
//! up to the resend interval); what changed is never lost, since every
//! post carries the whole state. Deliveries that carried news, and failures,
//! are journaled like other notifications (service `alertmanager`).
//!
//! An alert's identity in Alertmanager is its label set, which carries
//! nothing particular to this hbd: two hbds that watch the same hosts send
//! the same alerts, and Alertmanager deduplicates them.

use std::collections::BTreeMap;
use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{after, never, select, Receiver, Sender};
use log::{info, warn};
use serde_json::{json, Map, Value};

use crate::server::model::{Alert, Level, NotifyReport, ServiceStats, HEARTBEAT};
use crate::server::msg::{AlertmanagerMsg, CoreMsg};
use crate::wire::{truncate_chars, unix_seconds};

/// The service name in journal lines and `/metrics`.
pub const SERVICE: &str = "alertmanager";
/// How long an ended alert is still sent (Prometheus sends resolved alerts
/// for 15 minutes).
const RESOLVED_KEPT: f64 = 15.0 * 60.0;
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// What the thread runs on, made by `config::alertmanager`.
#[derive(Debug, Clone)]
pub struct AlertmanagerSettings {
    /// Base URLs (`http://am1:9093`), without a trailing slash.
    pub urls: Vec<String>,
    pub resend_interval: Duration,
    pub timeout: Duration,
    /// Where the console is (`generatorURL` links to a host's page there).
    pub external_url: String,
}

/// One alert as Alertmanager knows it.
#[derive(Debug, Clone, PartialEq)]
struct Posted {
    labels: BTreeMap<&'static str, String>,
    summary: String,
    starts_at: f64,
    host: String,
}

/// Each URL's own progress: URLs fail independently.
struct Target {
    url: String,
    /// `url` without a `user:password@`, for the log and the journal.
    shown: String,
    /// The state last delivered here had these alerts firing / resolved.
    delivered: Option<(Vec<Labels>, Vec<Labels>)>,
    retry_at: Option<Instant>,
    failures: u32,
}

type Labels = BTreeMap<&'static str, String>;

struct Poster {
    settings: AlertmanagerSettings,
    agent: ureq::Agent,
    firing: BTreeMap<Labels, Posted>,
    /// Ended alerts and when they ended, sent until [`RESOLVED_KEPT`] after.
    resolved: Vec<(Posted, f64)>,
    targets: Vec<Target>,
    next_resend: Instant,
    stats: ServiceStats,
    to_core: Sender<CoreMsg>,
}

pub fn spawn(
    settings: AlertmanagerSettings,
    inbox: Receiver<AlertmanagerMsg>,
    to_core: Sender<CoreMsg>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("alertmanager".into()).spawn(move || {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let targets = settings
            .urls
            .iter()
            .map(|url| Target {
                url: url.clone(),
                shown: without_userinfo(url),
                delivered: None,
                retry_at: None,
                failures: 0,
            })
            .collect();
        let mut poster = Poster {
            stats: ServiceStats { service: SERVICE.into(), usable: true, ..ServiceStats::default() },
            next_resend: Instant::now() + settings.resend_interval,
            settings,
            agent,
            firing: BTreeMap::new(),
            resolved: Vec::new(),
            targets,
            to_core,
        };
        let shown: Vec<&str> = poster.targets.iter().map(|t| t.shown.as_str()).collect();
        info!("alertmanager: posting alerts to {}", shown.join(", "));
        poster.run(&inbox);
    })
}

impl Poster {
    fn run(&mut self, inbox: &Receiver<AlertmanagerMsg>) {
        loop {
            let wake = self.next_wake();
            let timer = wake.map_or_else(never, |at| after(at.saturating_duration_since(Instant::now())));
            select! {
                recv(inbox) -> msg => match msg {
                    Ok(AlertmanagerMsg::Alerts { at, alerts }) => {
                        self.update(at, &alerts);
                        // News goes out at once, also to a URL waiting to retry.
                        for target in &mut self.targets {
                            target.retry_at = None;
                        }
                        self.post(false);
                    }
                    Err(_) => break,
                },
                recv(timer) -> _ => {
                    let resend = Instant::now() >= self.next_resend;
                    self.post(resend);
                }
            }
        }
        // Stopping: what fires stays firing in Alertmanager until its
        // endsAt (four resend intervals), long enough for a restart.
        info!("alertmanager: stopped with {} alerts firing", self.firing.len());
    }

    fn next_wake(&self) -> Option<Instant> {
        let retry = self.targets.iter().filter_map(|t| t.retry_at).min();
        Some(retry.map_or(self.next_resend, |r| r.min(self.next_resend)))
    }

    /// The alerts that are not OK now: new ones fire, gone ones end.
    fn update(&mut self, at: f64, alerts: &[Alert]) {
        let mut now_firing = BTreeMap::new();
        for alert in alerts.iter().filter(|a| a.level != Level::Ok && !a.held) {
            let posted = posted(alert);
            now_firing.insert(posted.labels.clone(), posted);
        }
        for (labels, old) in std::mem::take(&mut self.firing) {
            if !now_firing.contains_key(&labels) {
                self.resolved.push((old, at));
            }
        }
        // An alert that fires again is no longer resolved.
        self.resolved.retain(|(p, _)| !now_firing.contains_key(&p.labels));
        self.firing = now_firing;
    }

    /// Posts the state to every URL that is due (`resend`: all of them).
    fn post(&mut self, resend: bool) {
        let now = unix_seconds(SystemTime::now());
        self.resolved.retain(|(_, ended)| now - ended < RESOLVED_KEPT);
        let valid_until = now + 4.0 * self.settings.resend_interval.as_secs_f64();
        let body = Value::Array(
            self.firing
                .values()
                .map(|p| self.alert_json(p, valid_until))
                .chain(self.resolved.iter().map(|(p, ended)| self.alert_json(p, *ended)))
                .collect(),
        )
        .to_string();
        let firing: Vec<Labels> = self.firing.keys().cloned().collect();
        let resolved: Vec<Labels> = self.resolved.iter().map(|(p, _)| p.labels.clone()).collect();
        let instant = Instant::now();
        if resend {
            self.next_resend = instant + self.settings.resend_interval;
        }
        for index in 0..self.targets.len() {
            let target = &self.targets[index];
            let news = target.delivered.as_ref() != Some(&(firing.clone(), resolved.clone()));
            let due = target.retry_at.map_or(resend || news, |at| at <= instant);
            if !due || (firing.is_empty() && resolved.is_empty() && target.delivered.is_some() && !news) {
                continue;
            }
            let result = self.send(&self.targets[index].url, &body);
            let target = &mut self.targets[index];
            match result {
                Ok(()) => {
                    self.stats.sent += 1;
                    if std::mem::take(&mut target.failures) > 0 {
                        info!("alertmanager: {} takes alerts again", target.shown);
                    }
                    target.retry_at = None;
                    target.delivered = Some((firing.clone(), resolved.clone()));
                    if news {
                        let subject = format!(
                            "[hbd] {} alerts firing, {} resolved, to {}",
                            firing.len(),
                            resolved.len(),
                            target.shown
                        );
                        self.report(subject, None, 1);
                    }
                }
                Err(error) => {
                    self.stats.failed_attempts += 1;
                    target.failures += 1;
                    let backoff = FIRST_RETRY
                        .saturating_mul(1 << (target.failures - 1).min(10))
                        .min(self.settings.resend_interval);
                    target.retry_at = Some(instant + backoff);
                    let attempt = target.failures;
                    let subject = format!(
                        "[hbd] {} alerts firing, {} resolved, to {}",
                        firing.len(),
                        resolved.len(),
                        target.shown
                    );
                    warn!(
                        "alertmanager: {} failed (attempt {attempt}, next in {} s): {error}",
                        target.shown,
                        backoff.as_secs()
                    );
                    // Journaled at the first failure of a streak, not at each retry.
                    if attempt == 1 {
                        self.report(subject, Some(error), attempt);
                    }
                }
            }
        }
        self.stats.pending = self.targets.iter().filter(|t| t.retry_at.is_some()).count();
        let _ = self.to_core.try_send(CoreMsg::AlertmanagerStats(self.stats.clone()));
    }

    fn report(&self, subject: String, error: Option<String>, attempt: u32) {
        let delivered = error.is_none();
        let report =
            NotifyReport { service: SERVICE.into(), subject, delivered, error, attempt, will_retry: !delivered };
        let _ = self.to_core.send(CoreMsg::Notified(report));
    }

    fn send(&self, base: &str, body: &str) -> Result<(), String> {
        let url = format!("{base}/api/v2/alerts");
        let response = self.agent.post(&url).header("Content-Type", "application/json").send(body);
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Err(format!("HTTP {status}: {}", truncate_chars(text.trim(), 500)))
    }

    fn alert_json(&self, posted: &Posted, ends_at: f64) -> Value {
        let labels: Map<String, Value> = posted.labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        json!({
            "labels": labels,
            "annotations": {"summary": posted.summary},
            "startsAt": rfc3339(posted.starts_at),
            "endsAt": rfc3339(ends_at),
            "generatorURL": format!("{}/hosts/{}", self.settings.external_url, posted.host),
        })
    }
}

/// A URL as the log may show it: without the `user:password@` it may carry.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// An alert in Alertmanager's terms: its labels say what it is about, and
/// its level (a WARNING that turns CRITICAL is another alert: the warning
/// ends as the critical one starts).
fn posted(alert: &Alert) -> Posted {
    let name = if &*alert.key.plugin == HEARTBEAT { "HostDown" } else { "PluginAlert" };
    let labels: Labels = [
        ("alertname", name.to_string()),
        ("host", alert.key.host.to_string()),
        ("plugin", alert.key.plugin.to_string()),
        ("metric", alert.key.metric_path.to_string()),
        ("severity", alert.level.as_str().to_ascii_lowercase()),
        ("source", "hbd".to_string()),
    ]
    .into_iter()
    .collect();
    Posted { labels, summary: alert.message.clone(), starts_at: alert.since, host: alert.key.host.to_string() }
}

/// Unix seconds as RFC 3339 in UTC, to the millisecond: `2026-12-03T13:20:00.125Z`.
pub fn rfc3339(unix: f64) -> String {
    let millis = (unix * 1000.0).round() as i64;
    let (seconds, millis) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let (days, of_day) = (seconds.div_euclid(86400), seconds.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_not_shown() {
        assert_eq!(without_userinfo("http://alice:s3cret@am1:9093"), "http://am1:9093");
        assert_eq!(without_userinfo("https://am1:9093/x@y"), "https://am1:9093/x@y");
        assert_eq!(without_userinfo("http://am1:9093"), "http://am1:9093");
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400.5), "2000-02-29T00:00:00.500Z");
        assert_eq!(rfc3339(1_796_304_000.125), "2026-12-03T13:20:00.125Z");
        assert_eq!(rfc3339(4_107_542_399.0), "2100-02-28T23:59:59.000Z");
    }

    fn alert(host: &str, level: Level) -> Alert {
        let json = json!({
            "host": host, "plugin": "heartbeat", "metric_path": "silent_for_seconds", "level": level,
            "last_value": 40.0, "threshold": null, "since": 1000.0, "last_notified": 1000.0,
            "message": format!("CRITICAL: {host} - host down"),
        });
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Labels name the host, plugin, metric and severity, and nothing of
    /// this hbd, so that two hbds' alerts are one in Alertmanager.
    #[test]
    fn labels_say_what_the_alert_is_about_and_nothing_of_who_sends_it() {
        let p = posted(&alert("db1", Level::Critical));
        let labels: Vec<(&str, &str)> = p.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            labels,
            [
                ("alertname", "HostDown"),
                ("host", "db1"),
                ("metric", "silent_for_seconds"),
                ("plugin", "heartbeat"),
                ("severity", "critical"),
                ("source", "hbd"),
            ]
        );
        assert_ne!(posted(&alert("db1", Level::Warning)).labels, p.labels, "another level is another alert");
    }
}
