//! `memory_monitor`: RAM and swap, from one read of /proc/meminfo.

use serde_json::{json, Value};
use sysinfo::{MemoryRefreshKind, RefreshKind, System};

use super::{mib, percent, Kind, Plugin};

pub struct MemoryMonitor {
    system: System,
}

impl MemoryMonitor {
    pub fn new() -> MemoryMonitor {
        MemoryMonitor { system: System::new_with_specifics(RefreshKind::nothing()) }
    }
}

impl Default for MemoryMonitor {
    fn default() -> Self {
        MemoryMonitor::new()
    }
}

impl Plugin for MemoryMonitor {
    fn name(&self) -> &str {
        "memory_monitor"
    }

    fn kind(&self) -> Kind {
        Kind::Monitor
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        self.system.refresh_memory_specifics(MemoryRefreshKind::everything());
        let s = &self.system;
        let (total, available) = (s.total_memory(), s.available_memory());
        if total == 0 {
            return Err("the kernel reports no memory".into());
        }
        let used = total.saturating_sub(available);
        Ok(Some(json!({
            "percent": percent(used, total),
            "total_mb": mib(total),
            "available_mb": mib(available),
            "used_mb": mib(used),
            "swap_total_mb": mib(s.total_swap()),
            "swap_used_mb": mib(s.used_swap()),
            "swap_percent": percent(s.used_swap(), s.total_swap()),
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
}
