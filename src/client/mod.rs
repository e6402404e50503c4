//! hbc, the client: its parent starts one thread per plugin and the
//! `sender`, and implements `--once`. `config` reads `hbc.yaml`, `plugins`
//! holds the plugins and their registry, `nagios` parses Nagios plugin output.
//!
//! Plugins never talk to the network: they send [`SenderMsg::Plugin`] results
//! to the sender, which alone owns the socket.

use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, Receiver, Sender};
use log::{debug, warn};

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
    for scheduled in plugins {
        spawn_plugin(scheduled, origin, to_sender.clone(), stop.clone())?;
    }
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(|e| format!("signals: {e}"))?;
    let to_sender_on_signal = to_sender.clone();
    std::thread::Builder::new()
        .name("signal".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = to_sender_on_signal.send(SenderMsg::Shutdown);
            }
        })
        .map_err(|e| format!("spawn signal thread: {e}"))?;
    drop(to_sender);
    let sender = sender::spawn(settings.clone(), print, inbox).map_err(|e| format!("start sender: {e}"))?;
    // Every thread is up: what start-up alone touched can go (memory.rs).
    crate::memory::release_startup_pages();
    let result = sender.join().map_err(|_| "the sender thread panicked".to_string());
    drop(stop_tx);
    result
}

/// A plugin's thread: sample, report, wait for the next turn. A plugin that
/// needs a baseline is sampled again after [`WARM_UP`], so its first report
/// comes at once rather than an interval later. Turns fall every `interval`
/// after `origin` (see [`next_turn`]).
fn spawn_plugin(
    scheduled: Scheduled,
    origin: Instant,
    to_sender: Sender<SenderMsg>,
    stop: Receiver<()>,
) -> Result<(), String> {
    let name = scheduled.plugin.name().to_string();
    std::thread::Builder::new()
        .name(format!("plugin:{name}"))
        .stack_size(256 << 10)
        .spawn(move || {
            let Scheduled { mut plugin, interval } = scheduled;
            loop {
                let report = PluginReport { interval: Some(interval.as_secs_f64()), ..collect_once(plugin.as_mut()) };
                if to_sender.send(SenderMsg::Plugin(report)).is_err() {
                    return;
                }
                match stop.recv_deadline(next_turn(origin, interval, Instant::now())) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("spawn plugin {name}: {e}"))
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

/// One report from `plugin`, taking a second sample after [`WARM_UP`] when
/// the first was only a baseline.
pub fn collect_once(plugin: &mut dyn Plugin) -> PluginReport {
    let started = Instant::now();
    let mut result = plugin.collect();
    if let Ok(None) = result {
        std::thread::sleep(WARM_UP);
        result = plugin.collect();
    }
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
        let handles: Vec<_> = plugins
            .into_iter()
            .map(|mut scheduled| scope.spawn(move || collect_once(scheduled.plugin.as_mut())))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    sender::send_once(settings.clone(), print, reports)
}

#[cfg(test)]
mod tests {
    use super::*;

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
