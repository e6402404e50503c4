//! hbc, the client: its parent starts the plugins' threads (plugins that
//! read only the kernel's files share one per interval, every other has its
//! own) and the `sender`, and implements `--once`. `config` reads `hbc.yaml`, `plugins`
//! holds the plugins and their registry, `nagios` parses Nagios plugin output.
//!
//! Plugins never talk to the network: they send [`SenderMsg::Plugin`] results
//! to the sender, which alone owns the socket.

use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, Receiver, Sender};
use log::{debug, warn};
use serde_json::Value;

use crate::wire::unix_seconds;
use plugins::{Plugin, Scheduled};
use sender::{ClientSettings, PluginReport, SenderMsg};

pub mod config;
pub mod nagios;
pub mod plugins;
pub mod run;
pub mod sender;

/// Runs hbc until SIGTERM/SIGINT; returns when the sender has stopped.
pub fn run(settings: &ClientSettings, plugins: Vec<Scheduled>, print: bool) -> Result<(), String> {
    crate::memory::keep_heap_small();
    let (to_sender, inbox) = bounded(64);
    let (stop_tx, stop) = bounded::<()>(0);
    let origin = Instant::now();
    for thread in threads(plugins) {
        spawn_plugins(thread, origin, to_sender.clone(), stop.clone())?;
    }
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(|e| format!("signals: {e}"))?;
    std::thread::Builder::new()
        .name("signal".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = to_sender.send(SenderMsg::Shutdown);
            }
        })
        .map_err(|e| format!("spawn signal thread: {e}"))?;
    let sender = sender::spawn(settings.clone(), print, inbox).map_err(|e| format!("start sender: {e}"))?;
    // Every thread is up: what start-up alone touched can go (memory.rs).
    crate::memory::release_startup_pages();
    let result = sender.join().map_err(|_| "the sender thread panicked".to_string());
    drop(stop_tx);
    result
}

/// The plugins' threads: plugins that read only what the kernel makes
/// ([`Plugin::reads_kernel_only`]) and share an interval share a thread,
/// since waking a thread costs about as much as such a sample; every other
/// plugin has one of its own, so that a slow or hanging one delays nobody
/// else. In configuration order.
fn threads(plugins: Vec<Scheduled>) -> Vec<Vec<Scheduled>> {
    let mut threads: Vec<Vec<Scheduled>> = Vec::new();
    for scheduled in plugins {
        let shared = |thread: &&mut Vec<Scheduled>| {
            let first = &thread[0];
            first.interval == scheduled.interval
                && first.plugin.reads_kernel_only()
                && scheduled.plugin.reads_kernel_only()
        };
        match threads.iter_mut().find(shared) {
            Some(thread) => thread.push(scheduled),
            None => threads.push(vec![scheduled]),
        }
    }
    threads
}

/// A thread of plugins with one interval: sample, report, wait for the
/// next turn. Turns fall every `interval` after `origin` (see [`next_turn`]).
fn spawn_plugins(
    plugins: Vec<Scheduled>,
    origin: Instant,
    to_sender: Sender<SenderMsg>,
    stop: Receiver<()>,
) -> Result<(), String> {
    let interval = plugins.first().map_or(Duration::ZERO, |s| s.interval);
    let name = match plugins.as_slice() {
        [one] => format!("plugin:{}", one.plugin.name()),
        _ => format!("plugins:{}s", interval.as_secs()),
    };
    let mut plugins: Vec<Box<dyn Plugin>> = plugins.into_iter().map(|s| s.plugin).collect();
    std::thread::Builder::new()
        .name(name.clone())
        .stack_size(256 << 10)
        .spawn(move || loop {
            let turn = next_turn(origin, interval, Instant::now());
            let sent = collect_together(&mut plugins, Some(turn), |report| {
                let report = PluginReport { interval: Some(interval.as_secs_f64()), ..report };
                to_sender.send(SenderMsg::Plugin(report)).is_ok()
            });
            if !sent {
                return;
            }
            match stop.recv_deadline(next_turn(origin, interval, Instant::now())) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        })
        .map(|_| ())
        .map_err(|e| format!("spawn {name}: {e}"))
}

const WARM_UP: Duration = Duration::from_secs(1);

/// The first of `origin + k × interval` (k ≥ 1) after `now`: the plugins'
/// turns, all counted from one origin, so that plugins with the same
/// interval sample together and their reports share one message (one
/// compression) however long each takes, rather than drifting apart by
/// their own durations; a turn missed while a sample ran late is skipped.
pub fn next_turn(origin: Instant, interval: Duration, now: Instant) -> Instant {
    let interval = interval.max(Duration::from_millis(1));
    let passed = now.saturating_duration_since(origin).as_nanos() / interval.as_nanos();
    let turns = u32::try_from(passed + 1).unwrap_or(u32::MAX);
    origin + interval * turns
}

/// One report from each plugin, handed to `report` as it is ready. A
/// plugin whose first sample was only a baseline for its rates is sampled
/// again after one [`WARM_UP`] for all of them, so that its first report
/// comes at once rather than an interval later; the others' reports do not
/// wait for it. When the `next_turn` comes before the warm-up would end,
/// that turn takes the second sample instead. False when `report` refused
/// one.
pub fn collect_together(
    plugins: &mut [Box<dyn Plugin>],
    next_turn: Option<Instant>,
    mut report: impl FnMut(PluginReport) -> bool,
) -> bool {
    let mut warming = Vec::new();
    for (index, plugin) in plugins.iter_mut().enumerate() {
        let started = Instant::now();
        match sample(plugin.as_mut()) {
            Ok(None) => warming.push(index),
            result => {
                if !report(finish(plugin.as_ref(), result, started)) {
                    return false;
                }
            }
        }
    }
    if warming.is_empty() || next_turn.is_some_and(|turn| turn <= Instant::now() + WARM_UP) {
        return true;
    }
    std::thread::sleep(WARM_UP);
    for index in warming {
        let plugin = &mut plugins[index];
        let started = Instant::now();
        let result = sample(plugin.as_mut());
        if !report(finish(plugin.as_ref(), result, started)) {
            return false;
        }
    }
    true
}

/// One report from `plugin`, warmed up if it needs to be (`--once`).
pub fn collect_once(mut plugin: Box<dyn Plugin>) -> PluginReport {
    let started = Instant::now();
    let mut result = sample(plugin.as_mut());
    if let Ok(None) = result {
        std::thread::sleep(WARM_UP);
        result = sample(plugin.as_mut());
    }
    finish(plugin.as_ref(), result, started)
}

/// A sample of `plugin`; a panic in it (a bug) becomes its error, so that
/// the plugins sharing its thread go on.
fn sample(plugin: &mut dyn Plugin) -> Result<Option<Value>, String> {
    let sampled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plugin.collect()));
    sampled.unwrap_or_else(|_| Err("the plugin panicked (a bug in hbc: please report it)".into()))
}

/// The report of a sample of `plugin` taken from `started`, logged when it failed.
fn finish(plugin: &dyn Plugin, result: Result<Option<Value>, String>, started: Instant) -> PluginReport {
    let result = match result {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Err("no sample after the warm-up".to_string()),
        Err(e) => {
            warn!("plugin {}: {e}", plugin.name());
            Err(e)
        }
    };
    debug!("plugin {}: collected in {:?}", plugin.name(), started.elapsed());
    PluginReport {
        name: plugin.name().to_string(),
        kind: plugin.kind(),
        at: unix_seconds(SystemTime::now()),
        result,
        interval: None,
    }
}

/// `--once`: every enabled plugin once (in parallel, so their warm-ups and
/// timeouts overlap), one message, then wait for the ACKs.
pub fn run_once(settings: &ClientSettings, plugins: Vec<Scheduled>, print: bool) -> Result<(), String> {
    let reports: Vec<PluginReport> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            plugins.into_iter().map(|scheduled| scope.spawn(move || collect_once(scheduled.plugin))).collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    sender::send_once(settings.clone(), print, reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugins::Kind;

    /// A plugin that reads only the kernel or not, whose first sample may
    /// be a baseline.
    struct Fake {
        name: &'static str,
        kernel_only: bool,
        baseline_first: bool,
    }

    impl Plugin for Fake {
        fn name(&self) -> &str {
            self.name
        }
        fn kind(&self) -> Kind {
            Kind::Monitor
        }
        fn collect(&mut self) -> Result<Option<Value>, String> {
            if std::mem::take(&mut self.baseline_first) {
                return Ok(None);
            }
            Ok(Some(serde_json::json!({"sampled": self.name})))
        }
        fn reads_kernel_only(&self) -> bool {
            self.kernel_only
        }
    }

    fn fake(name: &'static str, kernel_only: bool, seconds: u64) -> Scheduled {
        Scheduled {
            plugin: Box::new(Fake { name, kernel_only, baseline_first: false }),
            interval: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn kernel_only_plugins_of_one_interval_share_a_thread() {
        let plugins =
            vec![fake("a", true, 1), fake("runs-programs", false, 1), fake("b", true, 1), fake("hourly", true, 3600)];
        let plugins = plugins.into_iter().chain([fake("c", true, 1), fake("also-apart", false, 1)]).collect();
        let names: Vec<Vec<String>> = threads(plugins)
            .iter()
            .map(|thread| thread.iter().map(|s| s.plugin.name().to_string()).collect())
            .collect();
        assert_eq!(names, [vec!["a", "b", "c"], vec!["runs-programs"], vec!["hourly"], vec!["also-apart"]]);
    }

    /// A plugin that needs a second sample for its rates reports after the
    /// warm-up; the plugins beside it on its thread report before it.
    #[test]
    fn a_warming_plugin_does_not_hold_back_the_others() {
        let mut plugins: Vec<Box<dyn Plugin>> = vec![
            Box::new(Fake { name: "rates", kernel_only: true, baseline_first: true }),
            Box::new(Fake { name: "plain", kernel_only: true, baseline_first: false }),
        ];
        let mut reports = Vec::new();
        assert!(collect_together(&mut plugins, None, |report| {
            reports.push(report);
            true
        }));
        let got: Vec<(&str, bool)> = reports.iter().map(|r| (r.name.as_str(), r.result.is_ok())).collect();
        assert_eq!(got, [("plain", true), ("rates", true)]);
        assert!(!collect_together(&mut plugins, None, |_| false), "a refused report stops the round");
    }

    /// With the next turn sooner than the warm-up would end (a 1 s
    /// interval), the plugins beside it keep that turn: the warming plugin
    /// reports at it.
    #[test]
    fn a_turn_sooner_than_the_warm_up_takes_the_second_sample() {
        let mut plugins: Vec<Box<dyn Plugin>> = vec![
            Box::new(Fake { name: "rates", kernel_only: true, baseline_first: true }),
            Box::new(Fake { name: "plain", kernel_only: true, baseline_first: false }),
        ];
        let mut names = Vec::new();
        let soon = Instant::now() + WARM_UP / 2;
        assert!(collect_together(&mut plugins, Some(soon), |report| {
            names.push(report.name);
            true
        }));
        assert_eq!(names, ["plain"], "no warm-up");
        assert!(collect_together(&mut plugins, Some(soon), |report| {
            names.push(report.name);
            true
        }));
        assert_eq!(names, ["plain", "rates", "plain"], "the next turn has both");
    }

    struct Panics;

    impl Plugin for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        fn kind(&self) -> Kind {
            Kind::Monitor
        }
        fn collect(&mut self) -> Result<Option<Value>, String> {
            panic!("a bug")
        }
    }

    #[test]
    fn a_plugin_that_panics_reports_an_error_and_its_neighbours_go_on() {
        let mut plugins: Vec<Box<dyn Plugin>> =
            vec![Box::new(Panics), Box::new(Fake { name: "plain", kernel_only: true, baseline_first: false })];
        let mut reports = Vec::new();
        assert!(collect_together(&mut plugins, None, |report| {
            reports.push(report);
            true
        }));
        assert_eq!(reports.len(), 2);
        assert!(reports[0].result.as_ref().is_err_and(|e| e.contains("panicked")), "{:?}", reports[0].result);
        assert!(reports[1].result.is_ok());
    }

    #[test]
    fn turns_keep_to_the_origin() {
        let origin = Instant::now();
        let second = Duration::from_secs(1);
        let ms = Duration::from_millis;
        assert_eq!(next_turn(origin, second, origin), origin + second);
        assert_eq!(next_turn(origin, second, origin + ms(4)), origin + second, "a sample's duration is not added");
        assert_eq!(next_turn(origin, second, origin + ms(1004)), origin + 2 * second);
        assert_eq!(next_turn(origin, second, origin + ms(3500)), origin + 4 * second, "missed turns are skipped");
        assert_eq!(next_turn(origin, second, origin + second), origin + 2 * second, "never now");
        let hour = Duration::from_secs(3600);
        assert_eq!(next_turn(origin, hour, origin + ms(1001)), origin + hour, "after a warm-up");
    }
}
