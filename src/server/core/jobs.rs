//! Jobs: checks fed by `JOB` signals (`hbc run`, `hbc signal`, a script
//! with `nc -u`) rather than by heartbeats.
//!
//! A job is a host in the table like any other (listed, down when late,
//! forgotten), marked by `Host::job`, which keeps its recent runs. Only a
//! success is a sign of life (the table sees to that), so a job that stops
//! running, or only fails, is down after its interval plus grace. On top:
//!
//! - a failed run is CRITICAL at once (plugin `job`, metric `exit_code`),
//!   until the next successful run;
//! - a run started but not finished within its `timeout` (plus grace) is
//!   CRITICAL (metric `running_seconds`), until a run ends;
//! - each run's end is a sample of the monitor plugin `job` with
//!   `duration_seconds`, so that a `thresholds:` rule can warn about runs
//!   that take far longer than usual, as about any metric.
//!
//! Pure like the rest of core: the time comes in as an argument.

use std::sync::Arc;

use serde_json::json;

use super::alerts::AlertTable;
use super::table::HostTable;
use crate::server::model::{AlertChange, AlertKey, Event, Heartbeat, Level, Run, RunOutcome, MAX_RUNS};
use crate::wire::{truncate_chars, JobEvent, JobSignal, PluginKind, PluginSample};

/// The plugin of a job's alerts and of its run-time samples.
pub const JOB_PLUGIN: &str = "job";
/// The metric of a failed run's alert: the exit code (128 + the signal for
/// a run a signal ended, as shells count it).
pub const EXIT_CODE: &str = "exit_code";
/// The metric of the alert for a run past its timeout: how long it has run.
pub const RUNNING_FOR: &str = "running_seconds";
/// The metric of the `job` plugin's samples that rules can watch.
pub const DURATION: &str = "duration_seconds";

fn key(host: &str, metric: &str) -> AlertKey {
    AlertKey::new(host, JOB_PLUGIN, metric)
}

/// Before the table stores a signal: a run's end becomes a sample of the
/// `job` plugin carrying its run time (the sender's, else hbd's from the
/// start it heard), so the rules see it as any plugin sample.
pub fn add_sample(hb: &mut Heartbeat, table: &HostTable, now: f64) {
    let Some(signal) = hb.job.as_ref().filter(|s| s.event != JobEvent::Start) else { return };
    let host = table.host(&hb.name);
    let Some(duration) =
        signal.duration_s.or_else(|| running_since(host?.job.as_deref()?.runs.back()).map(|s| now - s))
    else {
        return;
    };
    let interval = match (signal.interval_given, host) {
        (false, Some(host)) => host.interval,
        _ => hb.interval,
    };
    let data = json!({ DURATION: (duration.max(0.0) * 1000.0).round() / 1000.0 }).to_string();
    hb.plugins.push(PluginSample {
        name: JOB_PLUGIN.to_string(),
        kind: PluginKind::Monitor,
        at: now,
        data: Some(Arc::from(data)),
        error: None,
        interval: Some(interval),
    });
}

/// Whether the signal `hb` carries repeats the last one its job took
/// (same `seq`: hbc sent it again because the ACK was lost).
pub fn is_repeat(hb: &Heartbeat, table: &HostTable) -> bool {
    let Some(seq) = hb.job.as_ref().and_then(|s| s.seq) else { return false };
    table.host(&hb.name).and_then(|h| h.job.as_ref()).is_some_and(|j| j.last_seq == Some(seq))
}

/// When `run` started, if it is still running.
fn running_since(run: Option<&Run>) -> Option<f64> {
    run.filter(|r| r.outcome == RunOutcome::Running).and_then(|r| r.started)
}

/// After the table has taken the signal: the run recorded (at most
/// [`MAX_RUNS`] kept), its event and the alerts it changes pushed onto
/// `events`. Nothing for a job the table refused (`max_hosts`).
pub fn record(
    table: &mut HostTable,
    alerts: &mut AlertTable,
    name: &str,
    signal: JobSignal,
    now: f64,
    events: &mut Vec<Event>,
) {
    let Some(host) = table.get_mut(name) else { return };
    let job = host.job.get_or_insert_with(Box::default);
    if signal.grace.is_some() {
        job.grace = signal.grace;
    }
    if signal.timeout.is_some() {
        job.timeout = signal.timeout;
    }
    job.last_seq = signal.seq.or(job.last_seq);
    let event = signal.event;
    if event == JobEvent::Start {
        if let Some(last) = job.runs.back_mut().filter(|r| r.outcome == RunOutcome::Running) {
            last.outcome = RunOutcome::Unfinished;
        }
        job.runs.push_back(Run {
            outcome: RunOutcome::Running,
            started: Some(now),
            ended: None,
            duration_s: None,
            exit_code: None,
            signal: None,
            output: None,
            message: signal.message,
        });
    } else {
        let started = running_since(job.runs.back());
        if started.is_none() {
            // An end without a start heard (`hbc signal --ok` alone, or the
            // start was lost): a run of its own.
            let started = signal.duration_s.map(|d| now - d);
            job.runs.push_back(Run {
                outcome: RunOutcome::Running,
                started,
                ended: None,
                duration_s: None,
                exit_code: None,
                signal: None,
                output: None,
                message: None,
            });
        }
        if let Some(run) = job.runs.back_mut() {
            run.outcome = if event == JobEvent::Ok { RunOutcome::Ok } else { RunOutcome::Failed };
            run.ended = Some(now);
            run.duration_s = signal.duration_s.or(run.started.map(|s| (now - s).max(0.0)));
            run.exit_code = signal.exit_code;
            run.signal = signal.signal;
            run.output = signal.output;
            run.message = signal.message.or(run.message.take());
        }
    }
    while job.runs.len() > MAX_RUNS {
        job.runs.pop_front();
    }
    let Some(run) = job.runs.back().cloned() else { return };
    events.push(Event::JobRun { name: name.to_string(), event, run: Box::new(run.clone()) });
    let changes = match event {
        JobEvent::Start => [None, None],
        JobEvent::Ok => {
            let text = |what: &str| format!("RECOVERED: {name} - job {what} (CRITICAL -> OK)");
            [
                alerts.set(key(name, EXIT_CODE), Level::Ok, Some(0.0), text("succeeded"), now),
                alerts.set(key(name, RUNNING_FOR), Level::Ok, run.duration_s, text("run ended"), now),
            ]
        }
        JobEvent::Fail => {
            let text = failed_text(name, &run);
            let code = run.signal.map(|s| 128 + s).or(run.exit_code).map(f64::from);
            let ended = format!("RECOVERED: {name} - job run ended (CRITICAL -> OK)");
            [
                alerts.set(key(name, EXIT_CODE), Level::Critical, code, text, now),
                alerts.set(key(name, RUNNING_FOR), Level::Ok, run.duration_s, ended, now),
            ]
        }
    };
    events.extend(changes.into_iter().flatten().map(Event::Alert));
}

/// "CRITICAL: backup - job failed: exit code 3 after 12.5 s (last line)".
fn failed_text(name: &str, run: &Run) -> String {
    let how = match (run.exit_code, run.signal) {
        (_, Some(signal)) => format!("killed by signal {signal}"),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "no exit code".to_string(),
    };
    let took = run.duration_s.map_or_else(String::new, |d| format!(" after {d:.1} s"));
    let mut text = format!("CRITICAL: {name} - job failed: {how}{took}");
    if let Some(line) = last_line(run.message.as_deref().or(run.output.as_deref())) {
        text.push_str(&format!(" ({line})"));
    }
    text
}

/// The last line with text of `output`, without control characters (ANSI
/// escapes end up as their harmless rest), at most 200 characters: a hint in
/// a notification, never the whole output.
fn last_line(output: Option<&str>) -> Option<String> {
    let line = output?.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    let clean = truncate_chars(clean.trim(), 200).to_string();
    (!clean.is_empty()).then_some(clean)
}

/// Runs past their timeout (plus the job's grace, so that the sender's own
/// timeout and its failure signal come first): CRITICAL, with how long
/// they have run. Once a tick.
pub fn tick(table: &HostTable, alerts: &mut AlertTable, now: f64) -> Vec<AlertChange> {
    let default_grace = table.grace();
    let mut changes = Vec::new();
    for host in table.iter() {
        let Some(job) = host.job.as_deref() else { continue };
        let (Some(timeout), Some(started)) = (job.timeout, running_since(job.runs.back())) else { continue };
        let running = now - started;
        if running > timeout + host.grace_or(default_grace) {
            let text =
                format!("CRITICAL: {} - job run not finished after {running:.0}s (timeout {timeout:.0}s)", host.name);
            changes.extend(alerts.set(key(&host.name, RUNNING_FOR), Level::Critical, Some(running.round()), text, now));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::core::tests::settings;

    fn signal(event: JobEvent) -> JobSignal {
        JobSignal {
            event,
            exit_code: None,
            signal: None,
            duration_s: None,
            output: None,
            message: None,
            interval_given: true,
            grace: None,
            timeout: None,
            seq: None,
        }
    }

    fn send(table: &mut HostTable, alerts: &mut AlertTable, s: JobSignal, at: f64) -> Vec<Event> {
        let mut hb = Heartbeat { counts: false, job: Some(s.clone()), ..Heartbeat::for_test("backup", "10.0.0.1", at) };
        add_sample(&mut hb, table, at);
        let mut events = Vec::new();
        let mut stored = Vec::new();
        table.heartbeat(hb, &mut events, &mut stored);
        record(table, alerts, "backup", s, at, &mut events);
        events
    }

    fn alert_levels(events: &[Event]) -> Vec<(String, Level)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Alert(c) => Some((c.key.metric_path.to_string(), c.to)),
                _ => None,
            })
            .collect()
    }

    /// Start, failure (CRITICAL at once, the run with its code, time and
    /// output), success (cleared); runs bounded; the run time a sample.
    #[test]
    fn runs_are_recorded_and_failures_are_critical_at_once() {
        let mut table = HostTable::new(Vec::new(), &settings(Vec::new()), 1000.0);
        let mut alerts = AlertTable::default();
        send(&mut table, &mut alerts, signal(JobEvent::Start), 1000.0);
        let fail = JobSignal {
            exit_code: Some(3),
            output: Some("hi\n\x1b[31m<b>broken</b>\x1b[0m\n".into()),
            ..signal(JobEvent::Fail)
        };
        let events = send(&mut table, &mut alerts, fail, 1002.5);
        assert_eq!(alert_levels(&events), [(EXIT_CODE.to_string(), Level::Critical)]);
        let Some(Event::Alert(change)) = events.iter().find(|e| matches!(e, Event::Alert(_))) else { panic!() };
        assert_eq!(change.text, "CRITICAL: backup - job failed: exit code 3 after 2.5 s ([31m<b>broken</b>[0m)");
        let host = table.host("backup").unwrap();
        let run = host.job.as_ref().unwrap().runs.back().unwrap();
        assert_eq!((run.outcome, run.exit_code, run.duration_s), (RunOutcome::Failed, Some(3), Some(2.5)));
        assert_eq!(table.history("backup", JOB_PLUGIN, 1).unwrap().unwrap().samples.len(), 1);
        assert_eq!(host.last_seen, 1000.0, "a failure is no sign of life");

        let ok = JobSignal { exit_code: Some(0), duration_s: Some(1.0), ..signal(JobEvent::Ok) };
        let events = send(&mut table, &mut alerts, ok.clone(), 1100.0);
        assert_eq!(alert_levels(&events), [(EXIT_CODE.to_string(), Level::Ok)]);
        assert_eq!(table.host("backup").unwrap().last_seen, 1100.0);
        assert!(alert_levels(&send(&mut table, &mut alerts, ok.clone(), 1200.0)).is_empty(), "nothing to clear");
        let repeated = JobSignal { seq: Some(7), ..ok.clone() };
        send(&mut table, &mut alerts, repeated.clone(), 1201.0);
        let hb = Heartbeat { job: Some(repeated), ..Heartbeat::for_test("backup", "10.0.0.1", 1201.5) };
        assert!(is_repeat(&hb, &table), "the same seq again is the same signal");
        for i in 0..30 {
            send(&mut table, &mut alerts, ok.clone(), 1300.0 + f64::from(i));
        }
        assert_eq!(table.host("backup").unwrap().job.as_ref().unwrap().runs.len(), MAX_RUNS);
    }

    /// A run past its timeout plus grace is CRITICAL; its end clears it; a
    /// new start leaves the old run unfinished.
    #[test]
    fn runs_past_their_timeout_are_critical() {
        let mut table = HostTable::new(Vec::new(), &settings(Vec::new()), 1000.0);
        let mut alerts = AlertTable::default();
        send(&mut table, &mut alerts, JobSignal { timeout: Some(60.0), ..signal(JobEvent::Start) }, 1000.0);
        assert!(tick(&table, &mut alerts, 1065.0).is_empty(), "timeout 60 + grace 5 not yet passed");
        let changes = tick(&table, &mut alerts, 1066.0);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].text, "CRITICAL: backup - job run not finished after 66s (timeout 60s)");
        assert!(tick(&table, &mut alerts, 1067.0).is_empty(), "once");
        send(&mut table, &mut alerts, signal(JobEvent::Start), 1070.0);
        let runs = &table.host("backup").unwrap().job.as_ref().unwrap().runs;
        assert_eq!(runs.iter().map(|r| r.outcome).collect::<Vec<_>>(), [RunOutcome::Unfinished, RunOutcome::Running]);
        let events = send(&mut table, &mut alerts, signal(JobEvent::Ok), 1080.0);
        assert_eq!(alert_levels(&events), [(RUNNING_FOR.to_string(), Level::Ok)]);
        let run = table.host("backup").unwrap().job.as_ref().unwrap().runs.back().cloned().unwrap();
        assert_eq!(run.duration_s, Some(10.0), "hbd's own measure without the sender's");
    }
}
