//! hbc's plugins: one trait, one struct per plugin, and the registry
//! [`NAMES`] that the command line, the configuration and `man 8 hbc` share.
//!
//! A plugin turns the machine's state into one JSON object. Each configured
//! plugin runs on a thread of its own (see `client`), so a slow or hanging
//! one delays nobody else. Plugins that report rates keep the previous sample
//! and report nothing until they have two, never a made-up 0.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod command;
pub mod cpu_monitor;
pub mod disk_monitor;
pub mod exec;
pub mod filesystem_info;
pub mod memory_monitor;
pub mod nagios_runner;
pub mod network_monitor;
pub mod os_info;

/// Every plugin, in the order of `man 8 hbc`. `exec` stands for the user's
/// own executables, each configured under its own name.
pub const NAMES: [&str; 8] = [
    "os_info",
    "cpu_monitor",
    "memory_monitor",
    "disk_monitor",
    "network_monitor",
    "filesystem_info",
    "nagios_runner",
    "exec",
];

/// Info plugins describe what rarely changes and are kept by hbd until
/// replaced; monitor plugins are sampled and hbd keeps their history.
pub use crate::protocol::PluginKind as Kind;

pub trait Plugin: Send {
    fn name(&self) -> &str;
    fn kind(&self) -> Kind;
    /// Takes a sample. `Ok(None)`: nothing to report yet (a rate's first sample).
    fn collect(&mut self) -> Result<Option<Value>, String>;
}

/// A plugin with its schedule.
pub struct Scheduled {
    pub plugin: Box<dyn Plugin>,
    pub interval: Duration,
}

impl std::fmt::Debug for Scheduled {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Scheduled").field("plugin", &self.plugin.name()).field("interval", &self.interval).finish()
    }
}

const MONITOR_INTERVAL: u64 = 300;
/// A week: longer intervals are surely mistakes (and would overflow timers).
pub const MAX_INTERVAL: u64 = 7 * 86400;
/// A day, for plugin timeouts.
pub const MAX_TIMEOUT: u64 = 86400;

/// Why `seconds` is not from 1 to `max`, if it is not.
pub fn out_of_range(seconds: u64, max: u64) -> Option<String> {
    (!(1..=max).contains(&seconds)).then(|| format!("{seconds} is outside 1 to {max} seconds"))
}
const INFO_INTERVAL: u64 = 3600;

fn default_true() -> bool {
    true
}

/// Options every built-in plugin takes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds between samples; monitors default to 300, info plugins to 3600.
    pub interval: Option<u64>,
}

impl Default for Common {
    fn default() -> Self {
        Common { enabled: true, interval: None }
    }
}

/// The `plugins:` section of hbc.yaml.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    pub os_info: Common,
    pub cpu_monitor: cpu_monitor::Options,
    pub memory_monitor: Common,
    pub disk_monitor: disk_monitor::Options,
    pub network_monitor: network_monitor::Options,
    pub filesystem_info: filesystem_info::Options,
    pub nagios_runner: nagios_runner::Options,
    pub exec: Vec<exec::Options>,
}

impl PluginsConfig {
    /// Checks what serde cannot, naming the key at fault.
    pub fn check(&self) -> Result<(), String> {
        let intervals = [
            ("os_info", self.os_info.interval),
            ("cpu_monitor", self.cpu_monitor.common.interval),
            ("memory_monitor", self.memory_monitor.interval),
            ("disk_monitor", self.disk_monitor.common.interval),
            ("network_monitor", self.network_monitor.common.interval),
            ("filesystem_info", self.filesystem_info.common.interval),
            ("nagios_runner", self.nagios_runner.common.interval),
        ];
        for (name, interval) in intervals {
            if let Some(problem) = interval.and_then(|i| out_of_range(i, MAX_INTERVAL)) {
                return Err(format!("plugins.{name}.interval: {problem}"));
            }
        }
        self.nagios_runner.check()?;
        let mut seen: Vec<&str> = Vec::new();
        for (i, e) in self.exec.iter().enumerate() {
            e.check().map_err(|problem| format!("plugins.exec[{i}]: {problem}"))?;
            if NAMES.contains(&e.name.as_str()) || seen.contains(&e.name.as_str()) {
                return Err(format!("plugins.exec[{i}].name: `{}` is already a plugin's name", e.name));
            }
            seen.push(&e.name);
        }
        Ok(())
    }

    /// Builds the enabled plugins. `enable`/`disable` are the command line's
    /// `--enable-plugin`/`--disable-plugin` names and override the file.
    pub fn build(&self, enable: &[String], disable: &[String]) -> Result<Vec<Scheduled>, String> {
        let exec_names: Vec<&str> = self.exec.iter().map(|e| e.name.as_str()).collect();
        for name in enable.iter().chain(disable) {
            if !NAMES.contains(&name.as_str()) && !exec_names.contains(&name.as_str()) {
                return Err(format!(
                    "unknown plugin `{name}`; plugins are {} and the configured exec plugins",
                    NAMES.join(", ")
                ));
            }
        }
        let on = |name: &str, configured: bool| {
            !disable.iter().any(|d| d == name) && (configured || enable.iter().any(|e| e == name))
        };
        let every = |interval: Option<u64>, kind: Kind| {
            Duration::from_secs(interval.unwrap_or(if kind == Kind::Info { INFO_INTERVAL } else { MONITOR_INTERVAL }))
        };
        let mut plugins: Vec<Scheduled> = Vec::new();
        let mut add = |plugin: Box<dyn Plugin>, interval: Option<u64>| {
            let interval = every(interval, plugin.kind());
            plugins.push(Scheduled { plugin, interval });
        };
        if on("os_info", self.os_info.enabled) {
            add(Box::new(os_info::OsInfo), self.os_info.interval);
        }
        if on("cpu_monitor", self.cpu_monitor.common.enabled) {
            add(Box::new(cpu_monitor::CpuMonitor::new(&self.cpu_monitor)), self.cpu_monitor.common.interval);
        }
        if on("memory_monitor", self.memory_monitor.enabled) {
            add(Box::<memory_monitor::MemoryMonitor>::default(), self.memory_monitor.interval);
        }
        if on("disk_monitor", self.disk_monitor.common.enabled) {
            add(Box::new(disk_monitor::DiskMonitor::new(&self.disk_monitor)), self.disk_monitor.common.interval);
        }
        if on("network_monitor", self.network_monitor.common.enabled) {
            add(
                Box::new(network_monitor::NetworkMonitor::new(&self.network_monitor)),
                self.network_monitor.common.interval,
            );
        }
        if on("filesystem_info", self.filesystem_info.common.enabled) {
            add(
                Box::new(filesystem_info::FilesystemInfo::new(&self.filesystem_info)),
                self.filesystem_info.common.interval,
            );
        }
        // Nothing to run without commands: enabled only when some are configured.
        let nagios = &self.nagios_runner;
        if on("nagios_runner", nagios.common.enabled && !nagios.commands.is_empty()) {
            if nagios.commands.is_empty() {
                return Err("plugin nagios_runner has no commands configured (plugins.nagios_runner.commands)".into());
            }
            add(Box::new(nagios_runner::NagiosRunner::new(nagios)), nagios.common.interval);
        }
        // `exec` on the command line stands for every exec plugin.
        let all_exec_disabled = disable.iter().any(|d| d == "exec");
        let all_exec_enabled = enable.iter().any(|e| e == "exec");
        for e in &self.exec {
            if !all_exec_disabled && on(&e.name, e.enabled || all_exec_enabled) {
                add(Box::new(exec::Exec::new(e)), Some(e.interval));
            }
        }
        Ok(plugins)
    }
}

/// Turns an ever-growing counter into a per-second rate between samples.
#[derive(Debug, Default)]
pub struct Rate {
    last: Option<(Instant, u64)>,
}

impl Rate {
    /// `None` on the first sample, and after a counter reset (reboot of an
    /// interface, wrap): a rate across a reset would be nonsense.
    pub fn per_second(&mut self, now: Instant, total: u64) -> Option<f64> {
        let previous = self.last.replace((now, total));
        let (then, before) = previous?;
        let seconds = now.duration_since(then).as_secs_f64();
        (total >= before && seconds > 0.0).then(|| round2((total - before) as f64 / seconds))
    }
}

/// Rates for many named counters (interfaces, disks) at once.
#[derive(Debug, Default)]
pub struct Rates {
    by_key: BTreeMap<String, Rate>,
}

impl Rates {
    pub fn per_second(&mut self, key: &str, now: Instant, total: u64) -> Option<f64> {
        match self.by_key.get_mut(key) {
            Some(rate) => rate.per_second(now, total),
            None => self.by_key.entry(key.to_string()).or_default().per_second(now, total),
        }
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn mib(bytes: u64) -> f64 {
    round2(bytes as f64 / (1024.0 * 1024.0))
}

pub fn gib(bytes: u64) -> f64 {
    round2(bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round2(part as f64 * 100.0 / whole as f64)
    }
}

/// Filesystems that hold data on a device, as opposed to kernel and memory
/// filesystems; `filesystem_info` and `disk_monitor` report these by default.
pub fn is_physical(device: &str, fstype: &str) -> bool {
    const DEVICE_LESS: [&str; 5] = ["zfs", "ubifs", "jffs2", "btrfs", "nfs4"];
    const VIRTUAL: [&str; 6] = ["squashfs", "overlay", "tmpfs", "devtmpfs", "iso9660", "ramfs"];
    if VIRTUAL.contains(&fstype) {
        return false;
    }
    (device.starts_with("/dev/") && !device.starts_with("/dev/loop")) || DEVICE_LESS.contains(&fstype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_need_two_samples_and_survive_resets() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        assert_eq!(r.per_second(t0, 100), None);
        assert_eq!(r.per_second(t0 + Duration::from_secs(2), 300), Some(100.0));
        assert_eq!(r.per_second(t0 + Duration::from_secs(3), 10), None, "counter reset");
        assert_eq!(r.per_second(t0 + Duration::from_secs(4), 20), Some(10.0));
    }

    #[test]
    fn defaults_enable_the_system_plugins_only() {
        let names = |plugins: Vec<Scheduled>| plugins.iter().map(|s| s.plugin.name().to_string()).collect::<Vec<_>>();
        let config = PluginsConfig::default();
        assert_eq!(
            names(config.build(&[], &[]).unwrap()),
            ["os_info", "cpu_monitor", "memory_monitor", "disk_monitor", "network_monitor", "filesystem_info"]
        );
        let fewer = names(config.build(&[], &["os_info".into(), "cpu_monitor".into()]).unwrap());
        assert!(!fewer.contains(&"os_info".to_string()) && !fewer.contains(&"cpu_monitor".to_string()));
        assert!(config.build(&["nagios_runner".into()], &[]).unwrap_err().contains("no commands"));
        assert!(config.build(&["bogus".into()], &[]).unwrap_err().contains("unknown plugin `bogus`"));
    }

    #[test]
    fn intervals_default_by_kind() {
        let plugins = PluginsConfig::default().build(&[], &[]).unwrap();
        for s in plugins {
            let expected = if s.plugin.kind() == Kind::Info { 3600 } else { 300 };
            assert_eq!(s.interval.as_secs(), expected, "{}", s.plugin.name());
        }
    }

    #[test]
    fn physical_filesystems() {
        assert!(is_physical("/dev/sda1", "ext4"));
        assert!(is_physical("rpool/ROOT", "zfs"));
        assert!(!is_physical("tmpfs", "tmpfs"));
        assert!(!is_physical("/dev/loop0", "squashfs"));
        assert!(!is_physical("proc", "proc"));
        assert!(!is_physical("overlay", "overlay"));
    }
}
