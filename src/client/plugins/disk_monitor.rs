//! `disk_monitor`: space per mounted physical filesystem under `partitions`
//! (keyed by mount point, as the Python hbd's thresholds expect) and I/O
//! rates between two samples under `io`.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sysinfo::{DiskRefreshKind, Disks};

use super::{gib, is_physical, percent, round2, Common, Kind, Plugin, Rate};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(flatten)]
    pub common: Common,
    /// Mount points to report; empty: every physical filesystem.
    #[serde(default)]
    pub mounts: Vec<String>,
}

pub struct DiskMonitor {
    disks: Disks,
    mounts: Vec<String>,
    read: Rate,
    written: Rate,
}

impl DiskMonitor {
    pub fn new(options: &Options) -> DiskMonitor {
        DiskMonitor {
            disks: Disks::new(),
            mounts: options.mounts.clone(),
            read: Rate::default(),
            written: Rate::default(),
        }
    }
}

impl Plugin for DiskMonitor {
    fn name(&self) -> &str {
        "disk_monitor"
    }

    fn kind(&self) -> Kind {
        Kind::Monitor
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        self.disks.refresh_specifics(true, DiskRefreshKind::nothing().with_storage().with_io_usage());
        let now = Instant::now();
        let mut partitions = Map::new();
        let (mut read_total, mut written_total) = (0u64, 0u64);
        for disk in self.disks.list() {
            let mount = disk.mount_point().to_string_lossy().into_owned();
            let device = disk.name().to_string_lossy();
            let fstype = disk.file_system().to_string_lossy();
            let wanted =
                if self.mounts.is_empty() { is_physical(&device, &fstype) } else { self.mounts.contains(&mount) };
            if !wanted || partitions.contains_key(&mount) {
                continue;
            }
            let (total, free) = (disk.total_space(), disk.available_space());
            let used = total.saturating_sub(free);
            let usage = disk.usage();
            read_total += usage.total_read_bytes;
            written_total += usage.total_written_bytes;
            partitions.insert(
                mount,
                json!({
                    "device": device,
                    "fstype": fstype,
                    "total_gb": gib(total),
                    "used_gb": gib(used),
                    "free_gb": gib(free),
                    "free_mb": round2(free as f64 / 1048576.0),
                    "percent": percent(used, total),
                }),
            );
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
        assert!(v["io"]["read_bytes_per_s"].as_f64().unwrap() >= 0.0);
    }
}
