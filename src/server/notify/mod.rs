//! The notify thread: tells people when something breaks.
//!
//! Receives [`NotifyMsg`]s from `core` (alert changes and reminders, host
//! down and up among them), groups those arriving within
//! `notify_group_window` into one message per service, and keeps each
//! service's messages in a queue that lives on disk (`notify_queue_file`)
//! until they are delivered, so they survive a restart. One `notify:NAME`
//! thread per service does the sending (`send`), so a service that hangs
//! delays only itself. Results go back to `core` ([`CoreMsg::Notified`],
//! journaled there) with counters for `/metrics` ([`CoreMsg::NotifyStats`]).
//!
//! Invariants: a service's messages go out in order, each once; a failing
//! one is retried with backoff (5 s doubling to 10 min) and holds the ones
//! behind it; the queue is bounded (`notify_queue_max`, oldest dropped and
//! counted) and messages expire after `notify_max_age`; a service over its
//! `max_per_hour` holds its messages and sends them as one summary when it
//! may again. Only this thread writes the queue file.
//!
//! A service that is named but not usable ([`config::Unusable`]: it lacks
//! its credentials, say) has no queue and no thread: each message it would
//! have got is counted as undeliverable, journaled as given up, and gone.

pub mod config;
pub mod send;

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{after, bounded, never, select, Receiver, Sender};
use log::{info, warn};
use serde::{Deserialize, Serialize};

use crate::server::files::write_json_atomically;
use crate::server::model::{AlertChange, Level, NotifyReport, ServiceStats};
use crate::server::msg::{CoreMsg, NotifyMsg};
use crate::wire::unix_seconds;
use config::{NotifySettings, ServiceSettings, Unusable, SERVICES};
use send::{Failure, Outgoing};

const QUEUE_FORMAT: u32 = 1;
const FIRST_RETRY: Duration = Duration::from_secs(5);
const LAST_RETRY: Duration = Duration::from_secs(600);
const HOUR: Duration = Duration::from_secs(3600);
/// At most one warning a minute about dropped messages.
const DROP_WARN_EVERY: Duration = Duration::from_secs(60);
/// How long the thread waits for deliveries under way when it stops.
const DRAIN: Duration = Duration::from_secs(3);
/// Subject lines name at most this many hosts.
const NAMED_HOSTS: usize = 5;

#[derive(Serialize, Deserialize)]
struct QueueFile {
    version: u32,
    saved_at: f64,
    messages: Vec<Outgoing>,
}

/// Undelivered messages from the last run; a missing or unreadable file is none.
fn load_queue(path: &Path) -> Vec<Outgoing> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            warn!("notify: read {}: {e}; starting with no undelivered messages", path.display());
            return Vec::new();
        }
    };
    match serde_json::from_slice::<QueueFile>(&bytes) {
        Ok(file) if file.version == QUEUE_FORMAT => file.messages,
        Ok(file) => {
            warn!("notify: {} has format {}, not {QUEUE_FORMAT}; ignoring it", path.display(), file.version);
            Vec::new()
        }
        Err(e) => {
            warn!("notify: {} is unusable ({e}); starting with no undelivered messages", path.display());
            Vec::new()
        }
    }
}

struct Service {
    settings: Arc<ServiceSettings>,
    queue: VecDeque<Outgoing>,
    /// To this service's sending thread; capacity 1, used only when idle.
    worker: Sender<Outgoing>,
    in_flight: Option<u64>,
    attempts: u32,
    retry_at: Option<Instant>,
    /// When the messages of the last hour went out (the rate cap).
    sent_at: VecDeque<Instant>,
    /// The rate cap held messages back: the next send folds them.
    capped: bool,
    stats: ServiceStats,
}

/// A named service hbd cannot deliver to.
struct Undeliverable {
    settings: Unusable,
    stats: ServiceStats,
    last_warning: Option<Instant>,
}

impl Undeliverable {
    /// Counts a message it would have got; warns at most once a minute.
    fn count(&mut self, subject: &str) {
        self.stats.undeliverable += 1;
        if self.last_warning.is_none_or(|at| at.elapsed() >= DROP_WARN_EVERY) {
            self.last_warning = Some(Instant::now());
            warn!(
                "notify: {} is not usable, not sent: {subject} ({} not sent so far; {})",
                self.settings.name, self.stats.undeliverable, self.settings.problem
            );
        }
    }
}

struct Notifier {
    settings: NotifySettings,
    services: Vec<Service>,
    unusable: Vec<Undeliverable>,
    /// Events of the group window under way, each with its host's tags,
    /// and when it closes.
    window: Vec<(AlertChange, Vec<String>)>,
    window_closes: Option<Instant>,
    next_id: u64,
    to_core: Sender<CoreMsg>,
    dirty: bool,
    last_drop_warning: Option<Instant>,
    reported: Vec<ServiceStats>,
}

/// Starts the notifier and one sending thread per configured service.
pub fn spawn(
    settings: NotifySettings,
    inbox: Receiver<NotifyMsg>,
    to_core: Sender<CoreMsg>,
) -> io::Result<JoinHandle<()>> {
    let (to_notifier, results) = bounded::<(usize, u64, Result<(), Failure>)>(16);
    let mut services = Vec::new();
    for (index, service) in settings.services.iter().enumerate() {
        let service = Arc::new(service.clone());
        let (worker, jobs) = bounded::<Outgoing>(1);
        let (sender, results) = (service.clone(), to_notifier.clone());
        std::thread::Builder::new().name(format!("notify:{}", service.name)).spawn(move || {
            for message in jobs {
                let result = send::deliver(&sender.kind, sender.timeout, &message);
                if results.send((index, message.id, result)).is_err() {
                    return;
                }
            }
        })?;
        let stats = ServiceStats { service: service.name.to_string(), usable: true, ..ServiceStats::default() };
        services.push(Service {
            settings: service,
            queue: VecDeque::new(),
            worker,
            in_flight: None,
            attempts: 0,
            retry_at: None,
            sent_at: VecDeque::new(),
            capped: false,
            stats,
        });
    }
    drop(to_notifier);
    let unusable = settings
        .unusable
        .iter()
        .map(|u| Undeliverable {
            settings: u.clone(),
            stats: ServiceStats { service: u.name.to_string(), ..ServiceStats::default() },
            last_warning: None,
        })
        .collect();
    std::thread::Builder::new().name("notify".into()).spawn(move || {
        let mut notifier = Notifier {
            settings,
            services,
            unusable,
            window: Vec::new(),
            window_closes: None,
            next_id: 1,
            to_core,
            dirty: false,
            last_drop_warning: None,
            reported: Vec::new(),
        };
        notifier.restore();
        notifier.run(&inbox, &results);
    })
}

impl Notifier {
    /// Puts the messages the last run could not deliver back in their queues.
    fn restore(&mut self) {
        let saved = load_queue(&self.settings.queue_file);
        let n = saved.len();
        for message in saved {
            self.next_id = self.next_id.max(message.id + 1);
            if let Some(service) = self.services.iter_mut().find(|s| s.settings.name == message.service) {
                service.queue.push_back(message);
                continue;
            }
            // Gone from the file at the next save, like one no longer configured.
            self.dirty = true;
            match self.unusable.iter_mut().find(|u| u.settings.name == message.service) {
                Some(service) => service.count(&message.subject),
                None => warn!(
                    "notify: dropping an undelivered message for {}, which is no longer configured",
                    message.service
                ),
            }
        }
        if n > 0 {
            info!("notify: {n} undelivered messages from the last run");
        }
    }

    fn run(&mut self, inbox: &Receiver<NotifyMsg>, results: &Receiver<(usize, u64, Result<(), Failure>)>) {
        loop {
            self.pump();
            self.persist();
            self.report_stats();
            let wake = self.next_wake().map_or_else(never, |at| after(at.saturating_duration_since(Instant::now())));
            select! {
                recv(inbox) -> msg => match msg {
                    Ok(NotifyMsg::Alerts { changes, .. }) => {
                        for (change, tags) in changes {
                            self.handle_alert(change, tags);
                        }
                    }
                    Err(_) => break,
                },
                recv(results) -> result => {
                    if let Ok((index, id, result)) = result {
                        self.handle_result(index, id, result);
                    }
                },
                recv(wake) -> _ => {},
            }
        }
        // Stopping: what waits in the window goes to the queues (and the
        // file); deliveries under way get a moment to finish.
        self.close_window();
        self.persist();
        let deadline = Instant::now() + DRAIN;
        while self.services.iter().any(|s| s.in_flight.is_some()) {
            match results.recv_deadline(deadline) {
                Ok((index, id, result)) => self.handle_result(index, id, result),
                Err(_) => break,
            }
            self.persist();
        }
        let pending: usize = self.services.iter().map(|s| s.queue.len()).sum();
        info!("notify: stopped with {pending} undelivered messages kept in {}", self.settings.queue_file.display());
    }

    fn handle_alert(&mut self, change: AlertChange, tags: Vec<String>) {
        self.window.push((change, tags));
        if self.window_closes.is_none() {
            self.window_closes = Some(Instant::now() + self.settings.group_window);
        }
    }

    fn handle_result(&mut self, index: usize, id: u64, result: Result<(), Failure>) {
        let now = Instant::now();
        let Some(service) = self.services.get_mut(index) else { return };
        if service.in_flight != Some(id) {
            return;
        }
        service.in_flight = None;
        let Some(message) = service.queue.front().filter(|m| m.id == id).cloned() else { return };
        service.attempts += 1;
        let attempt = service.attempts;
        let report = match result {
            Ok(()) => {
                service.queue.pop_front();
                service.stats.sent += 1;
                service.sent_at.push_back(now);
                service.attempts = 0;
                service.retry_at = None;
                self.dirty = true;
                info!("notify: {} delivered: {}", service.settings.name, message.subject);
                NotifyReport {
                    service: message.service,
                    subject: message.subject,
                    delivered: true,
                    error: None,
                    attempt,
                    will_retry: false,
                }
            }
            Err(failure) => {
                service.stats.failed_attempts += 1;
                let will_retry = failure.retry;
                if will_retry {
                    let backoff = FIRST_RETRY.saturating_mul(1 << (attempt - 1).min(10)).min(LAST_RETRY);
                    service.retry_at = Some(now + backoff);
                    warn!(
                        "notify: {} failed (attempt {attempt}, next in {} s): {}",
                        service.settings.name,
                        backoff.as_secs(),
                        failure.error
                    );
                } else {
                    service.queue.pop_front();
                    service.stats.dropped += 1;
                    service.attempts = 0;
                    self.dirty = true;
                    warn!("notify: {} refused a message, giving it up: {}", service.settings.name, failure.error);
                }
                NotifyReport {
                    service: message.service,
                    subject: message.subject,
                    delivered: false,
                    error: Some(failure.error),
                    attempt,
                    will_retry,
                }
            }
        };
        let _ = self.to_core.send(CoreMsg::Notified(report));
    }

    /// Closes the group window when it is due, then hands each idle service
    /// its next message.
    fn pump(&mut self) {
        let now = Instant::now();
        if self.window_closes.is_some_and(|at| at <= now) {
            self.close_window();
        }
        let max_age = self.settings.max_age.as_secs_f64();
        let wall = unix_seconds(SystemTime::now());
        for index in 0..self.services.len() {
            let service = &mut self.services[index];
            if service.in_flight.is_some() || service.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            // Expired messages are given up, counted and journaled.
            while service.queue.front().is_some_and(|m| wall - m.created > max_age) {
                if let Some(message) = service.queue.pop_front() {
                    service.stats.dropped += 1;
                    service.attempts = 0;
                    self.dirty = true;
                    warn!("notify: {} message expired undelivered: {}", service.settings.name, message.subject);
                    let report = NotifyReport {
                        service: message.service,
                        subject: message.subject,
                        delivered: false,
                        error: Some(format!("expired after notify_max_age ({max_age} s)")),
                        attempt: 0,
                        will_retry: false,
                    };
                    let _ = self.to_core.send(CoreMsg::Notified(report));
                }
            }
            while service.sent_at.front().is_some_and(|at| now.duration_since(*at) >= HOUR) {
                service.sent_at.pop_front();
            }
            if service.queue.is_empty() {
                continue;
            }
            if service.sent_at.len() >= service.settings.max_per_hour {
                service.capped = true;
                continue;
            }
            if std::mem::take(&mut service.capped) && service.queue.len() > 1 {
                let held: Vec<Outgoing> = service.queue.drain(..).collect();
                service.stats.folded += held.len() as u64;
                let summary = fold(held, service.settings.max_per_hour, self.next_id);
                self.next_id += 1;
                service.queue.push_back(summary);
                self.dirty = true;
            }
            if let Some(message) = service.queue.front() {
                if service.worker.try_send(message.clone()).is_ok() {
                    service.in_flight = Some(message.id);
                }
            }
        }
    }

    /// Turns the window's events into one message per service that wants any.
    fn close_window(&mut self) {
        self.window_closes = None;
        if self.window.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.window);
        let created = unix_seconds(SystemTime::now());
        for service in &mut self.unusable {
            let wanted = service.settings.filter.wanted(&events);
            let Some(message) = compose(&wanted, service.settings.name, 0, created) else { continue };
            service.count(&message.subject);
            let report = NotifyReport {
                service: message.service,
                subject: message.subject,
                delivered: false,
                error: Some(format!("not usable: {}", service.settings.problem)),
                attempt: 0,
                will_retry: false,
            };
            let _ = self.to_core.send(CoreMsg::Notified(report));
        }
        let mut dropped = 0;
        for service in &mut self.services {
            let wanted = service.settings.filter.wanted(&events);
            let Some(message) = compose(&wanted, service.settings.name, self.next_id, created) else { continue };
            self.next_id += 1;
            if service.queue.len() >= self.settings.queue_max {
                // The oldest waiting message goes; one being sent stays.
                let oldest = usize::from(service.in_flight.is_some()).min(service.queue.len() - 1);
                service.queue.remove(oldest);
                service.stats.dropped += 1;
                dropped += 1;
            }
            service.queue.push_back(message);
            self.dirty = true;
        }
        if dropped > 0 && self.last_drop_warning.is_none_or(|at| at.elapsed() >= DROP_WARN_EVERY) {
            self.last_drop_warning = Some(Instant::now());
            let total: u64 = self.services.iter().map(|s| s.stats.dropped).sum();
            warn!(
                "notify: queue full (notify_queue_max {}): dropped the oldest undelivered messages ({total} dropped so far)",
                self.settings.queue_max
            );
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let mut wake = self.window_closes;
        let mut earliest = |at: Instant| wake = Some(wake.map_or(at, |w| w.min(at)));
        for service in &self.services {
            if service.queue.is_empty() || service.in_flight.is_some() {
                continue;
            }
            if let Some(at) = service.retry_at {
                earliest(at);
            } else if service.sent_at.len() >= service.settings.max_per_hour {
                if let Some(first) = service.sent_at.front() {
                    earliest(*first + HOUR);
                }
            }
            // Expiry is looked at whenever the thread wakes; once a minute at least.
            earliest(Instant::now() + Duration::from_secs(60));
        }
        wake
    }

    /// Writes the queue file when it changed.
    fn persist(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let messages: Vec<Outgoing> = self.services.iter().flat_map(|s| s.queue.iter().cloned()).collect();
        let file = QueueFile { version: QUEUE_FORMAT, saved_at: unix_seconds(SystemTime::now()), messages };
        if let Err(e) = write_json_atomically(&self.settings.queue_file, &file) {
            warn!("notify: save undelivered messages to {}: {e}", self.settings.queue_file.display());
            self.dirty = true;
        }
    }

    fn report_stats(&mut self) {
        let mut stats: Vec<ServiceStats> = self
            .services
            .iter()
            .map(|s| ServiceStats { pending: s.queue.len(), ..s.stats.clone() })
            .chain(self.unusable.iter().map(|u| u.stats.clone()))
            .collect();
        stats.sort_by_key(|s| SERVICES.iter().position(|n| *n == s.service));
        if stats != self.reported && self.to_core.try_send(CoreMsg::NotifyStats(stats.clone())).is_ok() {
            self.reported = stats;
        }
    }
}

/// How loud a change is: a recovery is as loud as what it ends.
pub fn severity(change: &AlertChange) -> Level {
    change.from.max(change.to)
}

/// `WARNING: host - what` as a subject: `[hbd] WARNING host what`.
fn subject_of(change: &AlertChange) -> String {
    let text = change.text.replacen(": ", " ", 1).replacen(" - ", " ", 1);
    format!("[hbd] {text}")
}

/// One message for the events a service wants from a window: the event's
/// own text for one, a summary naming the hosts for several.
fn compose(events: &[&AlertChange], service: &str, id: u64, created: f64) -> Option<Outgoing> {
    let level = events.iter().map(|c| severity(c)).max()?;
    let (subject, body) = match events {
        [one] => (subject_of(one), one.text.clone()),
        many => {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for change in many.iter() {
                let kind = if change.reminder {
                    "reminders".to_string()
                } else if change.to == Level::Ok {
                    "recovered".to_string()
                } else {
                    change.to.as_str().to_string()
                };
                match counts.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((kind, 1)),
                }
            }
            let mut hosts: Vec<&str> = many.iter().map(|c| &*c.key.host).collect();
            hosts.sort_unstable();
            hosts.dedup();
            let more = hosts.len().saturating_sub(NAMED_HOSTS);
            hosts.truncate(NAMED_HOSTS);
            let counts: Vec<String> = counts.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
            let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
            let subject = format!("[hbd] {} alerts: {} ({}{tail})", many.len(), counts.join(", "), hosts.join(", "));
            let body = many.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join("\n");
            (subject, body)
        }
    };
    Some(Outgoing { id, service: service.to_string(), created, level, subject, body })
}

/// The messages a rate cap held back, as one.
fn fold(held: Vec<Outgoing>, max_per_hour: usize, id: u64) -> Outgoing {
    let level = held.iter().map(|m| m.level).max().unwrap_or(Level::Unknown);
    let created = held.iter().map(|m| m.created).fold(f64::INFINITY, f64::min);
    let service = held.first().map(|m| m.service.clone()).unwrap_or_default();
    let subject = format!("[hbd] {} messages held back by the rate cap (max_per_hour {max_per_hour})", held.len());
    let body = held.iter().map(|m| format!("{}\n{}", m.subject, m.body)).collect::<Vec<_>>().join("\n\n");
    Outgoing { id, service, created, level, subject, body }
}

/// `hbd --test-notify`: one test message through each service, each
/// result printed (a service that is not usable says why); true when every
/// one was delivered.
pub fn test(settings: &NotifySettings) -> bool {
    if settings.is_empty() {
        println!("no notification service is configured (email, pushover, mattermost, signal in hbd.yaml(5))");
        return false;
    }
    let host = sysinfo::System::host_name().unwrap_or_else(|| "this host".into());
    let mut all = settings.unusable.is_empty();
    for service in &settings.unusable {
        println!("{}: not usable: {}", service.name, service.problem);
    }
    for service in &settings.services {
        let message = Outgoing {
            id: 0,
            service: service.name.to_string(),
            created: unix_seconds(SystemTime::now()),
            level: Level::Ok,
            subject: format!("[hbd] test message from hbd on {host}"),
            body: format!("This is a test of hbd's {} notifications (hbd --test-notify).", service.name),
        };
        match send::deliver(&service.kind, service.timeout, &message) {
            Ok(()) => println!("{}: delivered", service.name),
            Err(failure) => {
                all = false;
                println!("{}: failed: {}", service.name, failure.error);
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::model::AlertKey;

    fn change(host: &str, from: Level, to: Level, text: &str) -> AlertChange {
        AlertChange {
            key: AlertKey { host: host.into(), plugin: "heartbeat".into(), metric_path: "silent_for_seconds".into() },
            from,
            to,
            value: None,
            threshold: None,
            reminder: false,
            ongoing: 0.0,
            text: text.into(),
        }
    }

    #[test]
    fn one_event_keeps_its_text_many_are_summed_up() {
        let c =
            change("webserver01", Level::Ok, Level::Critical, "CRITICAL: webserver01 - cpu_monitor.cpu_percent = 96.0");
        let one = compose(&[&c], "email", 1, 0.0).unwrap();
        assert_eq!(one.subject, "[hbd] CRITICAL webserver01 cpu_monitor.cpu_percent = 96.0");
        assert_eq!(one.body, c.text);
        let downs: Vec<AlertChange> = (0..40)
            .map(|i| {
                change(
                    &format!("web{i}"),
                    Level::Ok,
                    Level::Critical,
                    &format!("CRITICAL: web{i} - host down (silent for 60s)"),
                )
            })
            .collect();
        let refs: Vec<&AlertChange> = downs.iter().collect();
        let many = compose(&refs, "pushover", 2, 0.0).unwrap();
        assert_eq!(many.subject, "[hbd] 40 alerts: 40 CRITICAL (web0, web1, web10, web11, web12 and 35 more)");
        assert_eq!(many.body.lines().count(), 40);
        assert_eq!(many.level, Level::Critical);
        assert!(compose(&[], "email", 3, 0.0).is_none());
    }

    #[test]
    fn recoveries_are_as_loud_as_what_they_end() {
        let c = change("h", Level::Critical, Level::Ok, "RECOVERED: h - host up (CRITICAL -> OK)");
        assert_eq!(severity(&c), Level::Critical);
        assert_eq!(compose(&[&c], "email", 1, 0.0).unwrap().subject, "[hbd] RECOVERED h host up (CRITICAL -> OK)");
    }

    #[test]
    fn held_messages_fold_into_one() {
        let m = |id: u64, level| Outgoing {
            id,
            service: "signal".into(),
            created: id as f64,
            level,
            subject: format!("s{id}"),
            body: format!("b{id}"),
        };
        let folded = fold(vec![m(1, Level::Warning), m(2, Level::Critical)], 30, 9);
        assert_eq!(folded.subject, "[hbd] 2 messages held back by the rate cap (max_per_hour 30)");
        assert_eq!((folded.level, folded.created, folded.id), (Level::Critical, 1.0, 9));
        assert!(folded.body.contains("s1\nb1") && folded.body.contains("s2\nb2"));
    }
}
