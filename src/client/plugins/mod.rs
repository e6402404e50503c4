//! hbc's plugins: one trait, one struct per plugin, and the registry
//! [`BUILT_IN`] that the command line, the configuration check, the builder
//! and the test of `man 8 hbc` share.
//!
//! A plugin turns the machine's state into one JSON object. Plugins that
//! read only what the kernel makes share a thread per interval; every other
//! runs on a thread of its own (see `client`), so a slow or hanging one
//! delays nobody else. Plugins that report rates keep the previous sample
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

/// Info plugins describe what rarely changes and are kept by hbd until
/// replaced; monitor plugins are sampled and hbd keeps their history.
pub use crate::wire::PluginKind as Kind;

pub trait Plugin: Send {
    fn name(&self) -> &str;
    fn kind(&self) -> Kind;
    /// Takes a sample. `Ok(None)`: nothing to report yet (a rate's first sample).
    fn collect(&mut self) -> Result<Option<Value>, String>;
    /// Whether a sample only reads what the kernel makes on the spot (/proc,
    /// /sys, netlink; /etc/os-release), so that it takes no longer than the
    /// kernel takes to write it and may share a thread with other such
    /// plugins. Not so for plugins that run programs, or call statvfs(2),
    /// which waits as long as a network filesystem's server.
    fn reads_kernel_only(&self) -> bool {
        false
    }
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

/// Seconds between samples unless configured: monitors are sampled often,
/// info plugins describe what rarely changes.
const MONITOR_INTERVAL: u64 = 300;
const INFO_INTERVAL: u64 = 3600;

/// One built-in plugin, as everything that needs the list sees it.
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    /// Seconds between samples when `interval` is not configured.
    pub default_interval: u64,
    /// Its `enabled` and `interval` in the configuration.
    pub common: fn(&PluginsConfig) -> &Common,
    /// Makes the plugin; `Err` says what the configuration lacks for it to
    /// have any work (nagios_runner without commands).
    pub build: fn(&PluginsConfig) -> Result<Box<dyn Plugin>, String>,
}

/// Every built-in plugin, in the order of `man 8 hbc`.
pub const BUILT_IN: [Spec; 7] = [
    Spec {
        name: "os_info",
        kind: Kind::Info,
        default_interval: INFO_INTERVAL,
        common: |c| &c.os_info,
        build: |_| Ok(Box::<os_info::OsInfo>::default()),
    },
    Spec {
        name: "cpu_monitor",
        kind: Kind::Monitor,
        default_interval: MONITOR_INTERVAL,
        common: |c| &c.cpu_monitor.common,
        build: |c| Ok(Box::new(cpu_monitor::CpuMonitor::new(&c.cpu_monitor))),
    },
    Spec {
        name: "memory_monitor",
        kind: Kind::Monitor,
        default_interval: MONITOR_INTERVAL,
        common: |c| &c.memory_monitor,
        build: |_| Ok(Box::<memory_monitor::MemoryMonitor>::default()),
    },
    Spec {
        name: "disk_monitor",
        kind: Kind::Monitor,
        default_interval: MONITOR_INTERVAL,
        common: |c| &c.disk_monitor.common,
        build: |c| Ok(Box::new(disk_monitor::DiskMonitor::new(&c.disk_monitor))),
    },
    Spec {
        name: "network_monitor",
        kind: Kind::Monitor,
        default_interval: MONITOR_INTERVAL,
        common: |c| &c.network_monitor.common,
        build: |c| Ok(Box::new(network_monitor::NetworkMonitor::new(&c.network_monitor))),
    },
    Spec {
        name: "filesystem_info",
        kind: Kind::Info,
        default_interval: INFO_INTERVAL,
        common: |c| &c.filesystem_info.common,
        build: |c| Ok(Box::new(filesystem_info::FilesystemInfo::new(&c.filesystem_info))),
    },
    Spec {
        name: "nagios_runner",
        kind: Kind::Monitor,
        default_interval: MONITOR_INTERVAL,
        common: |c| &c.nagios_runner.common,
        build: |c| {
            if c.nagios_runner.commands.is_empty() {
                return Err("plugin nagios_runner has no commands configured (plugins.nagios_runner.commands)".into());
            }
            Ok(Box::new(nagios_runner::NagiosRunner::new(&c.nagios_runner)))
        },
    },
];

/// Stands for the user's own executables (`plugins.exec`), each configured
/// under its own name; on the command line, for all of them at once.
pub const EXEC: &str = "exec";

/// Every plugin name the command line knows, in the order of `man 8 hbc`.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILT_IN.iter().map(|spec| spec.name).chain([EXEC])
}

/// A week: longer intervals are surely mistakes (and would overflow timers).
pub const MAX_INTERVAL: u64 = 7 * 86400;
/// A day, for plugin timeouts.
pub const MAX_TIMEOUT: u64 = 86400;

/// Why `seconds` is not from 1 to `max`, if it is not.
pub fn out_of_range(seconds: u64, max: u64) -> Option<String> {
    (!(1..=max).contains(&seconds)).then(|| format!("{seconds} is outside 1 to {max} seconds"))
}

fn default_true() -> bool {
    true
}

/// Options every built-in plugin takes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    #[serde(default = "default_true", deserialize_with = "crate::yaml::yaml11_bool")]
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
    /// Checks what serde cannot; each problem names its key.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for spec in &BUILT_IN {
            if let Some(problem) = (spec.common)(self).interval.and_then(|i| out_of_range(i, MAX_INTERVAL)) {
                problems.push(format!("plugins.{}.interval: {problem}", spec.name));
            }
        }
        problems.extend(self.nagios_runner.check().err());
        let mut seen: Vec<&str> = Vec::new();
        for (i, e) in self.exec.iter().enumerate() {
            problems.extend(e.check().err().map(|problem| format!("plugins.exec[{i}]: {problem}")));
            if names().any(|name| name == e.name) || seen.contains(&e.name.as_str()) {
                problems.push(format!("plugins.exec[{i}].name: `{}` is already a plugin's name", e.name));
            }
            seen.push(&e.name);
        }
        problems
    }

    /// Builds the enabled plugins. `enable`/`disable` are the command line's
    /// `--enable-plugin`/`--disable-plugin` names and override the file.
    pub fn build(&self, enable: &[String], disable: &[String]) -> Result<Vec<Scheduled>, String> {
        let exec_names: Vec<&str> = self.exec.iter().map(|e| e.name.as_str()).collect();
        for name in enable.iter().chain(disable) {
            if !names().any(|n| n == name) && !exec_names.contains(&name.as_str()) {
                let known: Vec<&str> = names().collect();
                return Err(format!(
                    "unknown plugin `{name}`; plugins are {} and the configured exec plugins",
                    known.join(", ")
                ));
            }
        }
        let listed = |list: &[String], name: &str| list.iter().any(|n| n == name);
        let mut plugins: Vec<Scheduled> = Vec::new();
        for spec in &BUILT_IN {
            let common = (spec.common)(self);
            let by_command_line = listed(enable, spec.name);
            if listed(disable, spec.name) || !(common.enabled || by_command_line) {
                continue;
            }
            match (spec.build)(self) {
                Ok(plugin) => plugins.push(Scheduled {
                    plugin,
                    interval: Duration::from_secs(common.interval.unwrap_or(spec.default_interval)),
                }),
                Err(why) if by_command_line => return Err(why),
                // Enabled by default but with nothing to do: not an error.
                Err(_) => {}
            }
        }
        for e in &self.exec {
            let on = (e.enabled || listed(enable, EXEC) || listed(enable, &e.name))
                && !listed(disable, EXEC)
                && !listed(disable, &e.name);
            if on {
                plugins.push(Scheduled {
                    plugin: Box::new(exec::Exec::new(e)),
                    interval: Duration::from_secs(e.interval),
                });
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

/// A file the kernel makes anew at each read from its start (/proc, /sys),
/// kept open from sample to sample and read with pread(2). Opening and
/// closing cost more than the reading: the path walk and the open file's
/// making and freeing were 40 % of the plugins' CPU (`perf`, BENCHMARKS.md)
/// when every sample opened its files. A kept file is as fresh, since the
/// kernel makes its text again at every read from offset 0.
///
/// A failed read closes the file, so the next one opens it again; a file
/// that cannot be opened is tried again [`KernelFile::RETRY`] later, not on
/// every sample (a cpufreq driver may load after hbc starts, a container
/// may lack /proc/diskstats).
#[derive(Debug)]
pub struct KernelFile {
    path: String,
    file: Option<std::fs::File>,
    /// The failed open's message and when it was tried.
    missing: Option<(String, Instant)>,
    /// The text read last; its allocation is kept.
    bytes: Vec<u8>,
}

impl KernelFile {
    pub const RETRY: Duration = Duration::from_secs(60);
    /// The first read of a file: a cpufreq value is a few bytes. Later
    /// reads ask for room for the last text, and each read for at least as
    /// much as was read before, so a long file takes few reads.
    const FIRST_READ: usize = 64;
    /// No file hbc reads comes near this: a file that never ends is an error.
    const MAX_LEN: usize = 16 << 20;

    pub fn new(path: impl Into<String>) -> KernelFile {
        KernelFile { path: path.into(), file: None, missing: None, bytes: Vec::new() }
    }

    /// The whole text as the kernel makes it now.
    pub fn read(&mut self) -> Result<&str, String> {
        let chunk = (self.bytes.len() + 1).next_power_of_two().max(Self::FIRST_READ);
        self.fill(chunk, None)?;
        std::str::from_utf8(&self.bytes).map_err(|e| format!("read {}: {e}", self.path))
    }

    /// The text from the start, read `chunk` bytes at first until `enough`
    /// says so or the file ends: the kernel makes some files (/proc/cpuinfo,
    /// one core at a time) only as far as they are read. Up to its last
    /// whole character: a read may end inside one.
    pub fn read_until(&mut self, chunk: usize, enough: impl Fn(&str) -> bool) -> Result<&str, String> {
        self.fill(chunk, Some(&enough))?;
        Ok(valid_prefix(&self.bytes))
    }

    fn fill(&mut self, chunk: usize, enough: Option<&dyn Fn(&str) -> bool>) -> Result<(), String> {
        self.bytes.clear();
        let filled = self.try_fill(chunk.max(1), enough);
        filled.map_err(|e| {
            self.file = None;
            format!("read {}: {e}", self.path)
        })
    }

    fn try_fill(&mut self, chunk: usize, enough: Option<&dyn Fn(&str) -> bool>) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = match self.file.take() {
            Some(file) => file,
            None => self.open()?,
        };
        let file = self.file.insert(file);
        loop {
            let start = self.bytes.len();
            if start > Self::MAX_LEN {
                return Err(std::io::Error::other(format!("longer than {} MiB", Self::MAX_LEN >> 20)));
            }
            self.bytes.resize(start + chunk.max(start), 0);
            let n = match file.read_at(&mut self.bytes[start..], start as u64) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    self.bytes.truncate(start);
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.bytes.truncate(start + n);
            if n == 0 || enough.is_some_and(|enough| enough(valid_prefix(&self.bytes))) {
                return Ok(());
            }
        }
    }

    fn open(&mut self) -> std::io::Result<std::fs::File> {
        if let Some((why, since)) = &self.missing {
            if since.elapsed() < Self::RETRY {
                return Err(std::io::Error::other(why.clone()));
            }
        }
        let opened = std::fs::File::open(&self.path);
        self.missing = opened.as_ref().err().map(|e| (e.to_string(), Instant::now()));
        opened
    }
}

/// The longest prefix of `bytes` that is UTF-8 (a read may end inside a character).
fn valid_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// /proc/self/mounts, read again only when the mount table changed: the
/// kernel makes the whole text on each read (one line per mount, paths
/// resolved), while poll(2) on the open file says whether anything was
/// mounted or unmounted since the last look (proc(5)).
#[derive(Debug, Default)]
pub struct Mounts {
    file: Option<std::fs::File>,
    text: String,
}

impl Mounts {
    const PATH: &'static str = "/proc/self/mounts";

    /// The mount table's text as it is now.
    pub fn text(&mut self) -> Result<&str, String> {
        let unchanged = self.file.as_ref().is_some_and(|file| !Self::changed(file));
        if !unchanged {
            use std::io::Read;
            // A new file: its poll baseline is the table it reads.
            self.file = None;
            self.text.clear();
            let mut file = std::fs::File::open(Self::PATH).map_err(|e| format!("read {}: {e}", Self::PATH))?;
            file.read_to_string(&mut self.text).map_err(|e| format!("read {}: {e}", Self::PATH))?;
            self.file = Some(file);
        }
        Ok(&self.text)
    }

    /// Whether the mount table changed since `file` was opened or last
    /// asked; true when poll(2) fails, so that the file is read again.
    fn changed(file: &std::fs::File) -> bool {
        use std::os::fd::AsRawFd;
        let mut watched = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLPRI, revents: 0 };
        // SAFETY: poll reads and writes the one pollfd it is given; a
        // timeout of 0 never blocks.
        let ready = unsafe { libc::poll(&mut watched, 1, 0) };
        ready != 0 && (ready < 0 || watched.revents & (libc::POLLERR | libc::POLLPRI) != 0)
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

    /// The first look reads the table; later ones keep the text until a
    /// mount changes it (none does during the test: a mount needs
    /// privileges and would disturb other tests).
    #[test]
    fn mounts_are_read_once_until_they_change() {
        let mut mounts = Mounts::default();
        let first = mounts.text().unwrap().to_string();
        assert!(first.lines().any(|line| line.split_whitespace().nth(1) == Some("/")), "{first}");
        let file = mounts.file.as_ref().unwrap();
        assert!(!Mounts::changed(file), "nothing was mounted since the read");
        assert_eq!(mounts.text().unwrap(), first);
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hbc-kernel-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Each read starts again at offset 0 of the file kept open, whatever
    /// its length now: what /proc's files do at every read, a plain file
    /// rewritten in place does too.
    #[test]
    fn a_kept_file_is_read_whole_and_fresh_each_time() {
        let dir = scratch("fresh");
        let path = dir.join("counters");
        std::fs::write(&path, "one\n").unwrap();
        let mut file = KernelFile::new(path.to_str().unwrap());
        assert_eq!(file.read().unwrap(), "one\n");
        let long = "0123456789\n".repeat(2000);
        std::fs::write(&path, &long).unwrap();
        assert_eq!(file.read().unwrap(), long, "longer than a page, read in pieces");
        std::fs::write(&path, "two\n").unwrap();
        assert_eq!(file.read().unwrap(), "two\n", "shorter again");
        std::fs::remove_dir_all(dir).unwrap();
        // /proc/uptime moves every 10 ms: a kept file sees it move.
        let mut uptime = KernelFile::new("/proc/uptime");
        let first = uptime.read().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while uptime.read().unwrap() == first {
            assert!(Instant::now() < deadline, "/proc/uptime read through a kept file never changed: {first}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn read_until_stops_reading_when_it_has_enough() {
        let dir = scratch("until");
        let path = dir.join("cores");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        let mut file = KernelFile::new(path.to_str().unwrap());
        assert_eq!(file.read_until(2, |text| text.contains("b\n")).unwrap(), "a\nb\n");
        assert_eq!(file.read_until(3, |_| false).unwrap(), "a\nb\nc\nd\n", "to the end");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A file that is not there is not looked for on every sample; after
    /// RETRY it is, and then found.
    #[test]
    fn a_missing_file_is_looked_for_again_only_after_a_while() {
        let dir = scratch("missing");
        let path = dir.join("scaling_cur_freq");
        let mut file = KernelFile::new(path.to_str().unwrap());
        let first = file.read().unwrap_err();
        assert!(first.contains("scaling_cur_freq") && first.contains("No such file"), "{first}");
        std::fs::write(&path, "2400000\n").unwrap();
        assert_eq!(file.read().unwrap_err(), first, "not opened again at once");
        if let Some((_, since)) = &mut file.missing {
            *since = Instant::now().checked_sub(KernelFile::RETRY).unwrap();
        }
        assert_eq!(file.read().unwrap(), "2400000\n");
        std::fs::remove_dir_all(dir).unwrap();
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
