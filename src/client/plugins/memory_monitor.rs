//! `memory_monitor`: RAM and swap, from one read of /proc/meminfo.

use serde_json::{json, Value};

use super::{mib, percent, KernelFile, Kind, Plugin};

/// The figures of /proc/meminfo it reports, in bytes. Read directly (as
/// sysinfo 0.36 reads them, with its formulas) from the file kept open.
#[derive(Debug)]
pub struct MemoryMonitor {
    meminfo: KernelFile,
}

impl MemoryMonitor {
    pub fn new() -> MemoryMonitor {
        MemoryMonitor { meminfo: KernelFile::new("/proc/meminfo") }
    }
}

impl Default for MemoryMonitor {
    fn default() -> Self {
        MemoryMonitor::new()
    }
}

/// What one read of /proc/meminfo says, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

/// [`MemInfo`] from /proc/meminfo's text. Kernels before 3.14 have no
/// `MemAvailable`; it is then estimated as sysinfo does: free, buffers,
/// page cache and reclaimable slab, less shared memory.
pub fn parse_meminfo(text: &str) -> MemInfo {
    let (mut free, mut buffers, mut cached, mut shmem, mut reclaimable) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut info = MemInfo::default();
    let mut available = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        // "MemTotal:       24684052 kB": KiB, whatever the unit says.
        let Some(kib) = value.trim_start().split(' ').next().and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        let bytes = kib.saturating_mul(1024);
        match key {
            "MemTotal" => info.total = bytes,
            "MemFree" => free = bytes,
            "MemAvailable" => available = Some(bytes),
            "Buffers" => buffers = bytes,
            "Cached" => cached = bytes,
            "Shmem" => shmem = bytes,
            "SReclaimable" => reclaimable = bytes,
            "SwapTotal" => info.swap_total = bytes,
            "SwapFree" => info.swap_free = bytes,
            _ => {}
        }
    }
    info.available = available.unwrap_or_else(|| {
        free.saturating_add(buffers).saturating_add(cached).saturating_add(reclaimable).saturating_sub(shmem)
    });
    info
}

impl Plugin for MemoryMonitor {
    fn name(&self) -> &str {
        "memory_monitor"
    }

    fn kind(&self) -> Kind {
        Kind::Monitor
    }

    fn reads_kernel_only(&self) -> bool {
        true
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        let m = parse_meminfo(self.meminfo.read()?);
        if m.total == 0 {
            return Err("the kernel reports no memory".into());
        }
        let used = m.total.saturating_sub(m.available);
        let swap_used = m.swap_total.saturating_sub(m.swap_free);
        Ok(Some(json!({
            "percent": percent(used, m.total),
            "total_mb": mib(m.total),
            "available_mb": mib(m.available),
            "used_mb": mib(used),
            "swap_total_mb": mib(m.swap_total),
            "swap_used_mb": mib(swap_used),
            "swap_percent": percent(swap_used, m.swap_total),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_add_up() {
        let v = MemoryMonitor::new().collect().unwrap().unwrap();
        let total = v["total_mb"].as_f64().unwrap();
        assert!(total > 0.0);
        assert!((v["used_mb"].as_f64().unwrap() + v["available_mb"].as_f64().unwrap() - total).abs() < 0.05);
        assert!((0.0..=100.0).contains(&v["percent"].as_f64().unwrap()));
    }

    const MEMINFO: &str = "\
MemTotal:       24684052 kB
MemFree:        17321304 kB
MemAvailable:   23219304 kB
Buffers:          181220 kB
Cached:          5593232 kB
SwapCached:            0 kB
Shmem:             10768 kB
SReclaimable:     338896 kB
SwapTotal:       2097148 kB
SwapFree:        1048572 kB
HugePages_Total:       0
";

    #[test]
    fn parses_proc_meminfo() {
        let m = parse_meminfo(MEMINFO);
        assert_eq!(
            m,
            MemInfo {
                total: 24684052 * 1024,
                available: 23219304 * 1024,
                swap_total: 2097148 * 1024,
                swap_free: 1048572 * 1024
            }
        );
    }

    /// Without `MemAvailable` (Linux before 3.14), sysinfo's estimate.
    #[test]
    fn estimates_available_on_old_kernels() {
        let old: String =
            MEMINFO.lines().filter(|l| !l.starts_with("MemAvailable")).map(|l| format!("{l}\n")).collect();
        let m = parse_meminfo(&old);
        assert_eq!(m.available, (17321304 + 181220 + 5593232 + 338896 - 10768) * 1024);
        assert_eq!(parse_meminfo(""), MemInfo::default());
    }
}
