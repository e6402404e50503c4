//! `disk_monitor`: space per mounted physical filesystem under `partitions`
//! (keyed by mount point, as the Python hbd's thresholds expect) and I/O
//! rates between two samples under `io`.
//!
//! Reads /proc/self/mounts (when it changed), /proc/diskstats and `statvfs(3)` of the
//! filesystems it reports, with the rules and figures sysinfo 0.36's
//! `Disks` gave (which filesystems are listed, `f_bsize` blocks, 512-byte
//! sectors, the last good figures kept when a filesystem stops answering).
//! sysinfo also listed `/dev/disk/by-id`, resolved every device and called
//! `statvfs` for every listed filesystem on each sample, whether reported
//! or not.

use std::borrow::Cow;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{gib, is_physical, percent, round2, Common, KernelFile, Kind, Mounts, Plugin, Rate};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(flatten)]
    pub common: Common,
    /// Mount points to report; empty: every physical filesystem.
    #[serde(default)]
    pub mounts: Vec<String>,
}

/// "man iostat": /proc/diskstats counts sectors of 512 bytes, whatever the
/// device's own sector size.
const SECTOR_SIZE: u64 = 512;

/// A reported filesystem as the previous sample left it.
#[derive(Debug, Clone, PartialEq)]
struct Known {
    mount: String,
    device: String,
    fstype: String,
    /// The device's name in /proc/diskstats (`/dev/mapper/x` → `dm-0`),
    /// resolved when it was first seen.
    stats_name: String,
    total: u64,
    available: u64,
    read: u64,
    written: u64,
}

pub struct DiskMonitor {
    mounts: Vec<String>,
    read: Rate,
    written: Rate,
    known: Vec<Known>,
    mount_table: Mounts,
    diskstats: KernelFile,
}

impl DiskMonitor {
    pub fn new(options: &Options) -> DiskMonitor {
        DiskMonitor {
            mounts: options.mounts.clone(),
            read: Rate::default(),
            written: Rate::default(),
            known: Vec::new(),
            mount_table: Mounts::default(),
            diskstats: KernelFile::new("/proc/diskstats"),
        }
    }
}

/// One line of /proc/mounts: device, mount point (its escapes undone as
/// sysinfo undid them) and filesystem type.
pub fn mount_fields(line: &str) -> (&str, Cow<'_, str>, &str) {
    let mut fields = line.split_whitespace();
    let device = fields.next().unwrap_or("");
    let mount = fields.next().unwrap_or("");
    let mount = if mount.contains('\\') {
        Cow::Owned(mount.replace("\\134", "\\").replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n"))
    } else {
        Cow::Borrowed(mount)
    };
    (device, mount, fields.next().unwrap_or(""))
}

/// Whether sysinfo's `Disks` listed a mount: not a kernel, memory or
/// network filesystem, nor under /sys, /proc or /run (but /run/media).
pub fn listed(device: &str, mount: &str, fstype: &str) -> bool {
    const IGNORED: [&str; 18] = [
        "rootfs",
        "sysfs",
        "proc",
        "devtmpfs",
        "cgroup",
        "cgroup2",
        "pstore",
        "squashfs",
        "rpc_pipefs",
        "iso9660",
        "devpts",
        "hugetlbfs",
        "mqueue",
        "tmpfs",
        "cifs",
        "nfs",
        "nfs4",
        "autofs",
    ];
    !(IGNORED.contains(&fstype)
        || mount.starts_with("/sys")
        || mount.starts_with("/proc")
        || (mount.starts_with("/run") && !mount.starts_with("/run/media"))
        || device.starts_with("sunrpc"))
}

/// Sectors read and written of the device called `name` in
/// /proc/diskstats's text (the last line of that name, as sysinfo's map
/// kept it).
pub fn sectors(diskstats: &str, name: &str) -> Option<(u64, u64)> {
    diskstats.lines().rev().find_map(|line| {
        let mut f = line.split_whitespace();
        if f.nth(2)? != name {
            return None;
        }
        let read = f.nth(2).and_then(|v| v.parse().ok()).unwrap_or(0);
        let written = f.nth(3).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some((read, written))
    })
}

/// The name /proc/diskstats gives `device`: its path with links resolved
/// and without `/dev/`; the device as it is when that fails (zfs datasets).
fn stats_name(device: &str) -> String {
    let path = std::path::Path::new(device);
    std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.strip_prefix("/dev").ok().and_then(|p| p.to_str()).map(str::to_owned))
        .unwrap_or_else(|| device.to_owned())
}

/// `statvfs(3)` of `mount`: total and available bytes in `f_bsize` blocks,
/// None when it fails or reports no space.
fn space(mount: &str) -> Option<(u64, u64)> {
    let path = std::ffi::CString::new(mount).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated; statvfs writes a whole `statvfs`
    // into `stat` when it returns 0, and only then is it read.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    let (bsize, blocks, available) = (stat.f_bsize as u64, stat.f_blocks as u64, stat.f_bavail as u64);
    let total = bsize.saturating_mul(blocks);
    (total != 0).then(|| (total, bsize.saturating_mul(available)))
}

impl Plugin for DiskMonitor {
    fn name(&self) -> &str {
        "disk_monitor"
    }

    fn kind(&self) -> Kind {
        Kind::Monitor
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        let mount_table = self.mount_table.text()?;
        // Without it the I/O totals keep their last values, as with sysinfo.
        let stats = self.diskstats.read().unwrap_or_default();
        let now = Instant::now();
        let mut previous = std::mem::take(&mut self.known);
        let mut partitions = Map::new();
        let (mut read_total, mut written_total) = (0u64, 0u64);
        for line in mount_table.lines() {
            let (device, mount, fstype) = mount_fields(line);
            if !listed(device, &mount, fstype) {
                continue;
            }
            let wanted = if self.mounts.is_empty() {
                is_physical(device, fstype)
            } else {
                self.mounts.iter().any(|m| *m == mount)
            };
            if !wanted || partitions.contains_key(mount.as_ref()) {
                continue;
            }
            let same = |k: &Known| k.mount == mount && k.device == device && k.fstype == fstype;
            let mut disk = match previous.iter().position(same) {
                Some(i) => previous.swap_remove(i),
                None => Known {
                    mount: mount.to_string(),
                    device: device.to_string(),
                    fstype: fstype.to_string(),
                    stats_name: stats_name(device),
                    total: 0,
                    available: 0,
                    read: 0,
                    written: 0,
                },
            };
            if let Some((read, written)) = sectors(stats, &disk.stats_name) {
                (disk.read, disk.written) = (read * SECTOR_SIZE, written * SECTOR_SIZE);
            }
            if let Some((total, available)) = space(&disk.mount) {
                (disk.total, disk.available) = (total, available);
            }
            read_total += disk.read;
            written_total += disk.written;
            let (total, free) = (disk.total, disk.available);
            let used = total.saturating_sub(free);
            partitions.insert(
                disk.mount.clone(),
                json!({
                    "device": disk.device,
                    "fstype": disk.fstype,
                    "total_gb": gib(total),
                    "used_gb": gib(used),
                    "free_gb": gib(free),
                    "free_mb": round2(free as f64 / 1048576.0),
                    "percent": percent(used, total),
                }),
            );
            self.known.push(disk);
        }
        for wanted in &self.mounts {
            if !partitions.contains_key(wanted) {
                partitions.insert(wanted.clone(), json!({"error": "not mounted"}));
            }
        }
        let read = self.read.per_second(now, read_total);
        let written = self.written.per_second(now, written_total);
        let (Some(read), Some(written)) = (read, written) else {
            return Ok(None);
        };
        Ok(Some(json!({
            "partitions": partitions,
            "io": {"read_bytes_per_s": read, "write_bytes_per_s": written},
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_reported_with_the_python_metric_names() {
        let mut disk =
            DiskMonitor::new(&Options { mounts: vec!["/".into(), "/nonexistent".into()], ..Options::default() });
        assert_eq!(disk.collect().unwrap(), None, "first sample is the I/O baseline");
        let v = disk.collect().unwrap().unwrap();
        let root = &v["partitions"]["/"];
        for key in ["percent", "free_gb", "free_mb", "total_gb", "used_gb"] {
            assert!(root[key].as_f64().is_some(), "{key} in {root}");
        }
        assert_eq!(v["partitions"]["/nonexistent"]["error"], "not mounted");
        assert!(v["io"]["read_bytes_per_s"].as_f64().is_some_and(|r| r >= 0.0));
    }

    #[test]
    fn mounts_listed_as_sysinfo_listed_them() {
        let fields = |line| {
            let (device, mount, fstype) = mount_fields(line);
            (device.to_string(), mount.into_owned(), fstype.to_string())
        };
        assert_eq!(fields("/dev/vda / ext4 rw,relatime 0 0"), ("/dev/vda".into(), "/".into(), "ext4".into()));
        assert_eq!(fields("/dev/sdb1 /media/my\\040disk vfat ro 0 0").1, "/media/my disk");
        assert_eq!(fields(""), (String::new(), String::new(), String::new()));
        assert!(listed("/dev/vda", "/", "ext4"));
        assert!(listed("/dev/sdc1", "/run/media/usb", "vfat"));
        assert!(!listed("/dev/sdc1", "/run/user", "vfat"));
        assert!(!listed("tmpfs", "/dev/shm", "tmpfs"));
        assert!(!listed("server:/x", "/mnt/x", "nfs4"));
        assert!(!listed("sunrpc", "/var/lib/nfs", "rpc_pipefs"));
        assert!(!listed("proc", "/proc", "proc"));
    }

    const DISKSTATS: &str = "\
 254       0 vda 20312 4977 1726782 9862 88713 58204 4221592 193004 0 101072 221284 0 0 0 0 7524 18417
 254      16 vdb 1 0 8 0 0 0 0 0 0 1 0
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn sectors_from_proc_diskstats() {
        assert_eq!(sectors(DISKSTATS, "vda"), Some((1726782, 4221592)));
        assert_eq!(sectors(DISKSTATS, "vdb"), Some((8, 0)));
        assert_eq!(sectors(DISKSTATS, "sda"), None);
        assert_eq!(sectors("", "vda"), None);
        assert_eq!(sectors(" 8 0 sda 1\n", "sda"), Some((0, 0)), "short lines count nothing");
    }

    #[test]
    fn diskstats_names() {
        assert_eq!(stats_name("rpool/ROOT"), "rpool/ROOT");
        assert_eq!(stats_name("/dev/null"), "null");
    }
}
