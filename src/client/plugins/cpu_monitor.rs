//! `cpu_monitor`: CPU use between two samples, load averages, frequency and
//! process counts. The first call only takes the baseline.

use std::fs;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sysinfo::{CpuRefreshKind, RefreshKind, System};

use super::{round2, Common, Kind, Plugin};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(flatten)]
    pub common: Common,
    /// Also report each core's use as `per_core`.
    #[serde(default, deserialize_with = "crate::yaml::yaml11_bool")]
    pub per_core: bool,
}

pub struct CpuMonitor {
    system: System,
    per_core: bool,
    primed: bool,
}

impl CpuMonitor {
    pub fn new(options: &Options) -> CpuMonitor {
        let system = System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
        CpuMonitor { system, per_core: options.per_core, primed: false }
    }
}

/// `running/total` scheduling entities from /proc/loadavg: the process
/// counts without walking /proc.
fn process_counts() -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/loadavg").ok()?;
    let field = text.split_whitespace().nth(3)?;
    let (running, total) = field.split_once('/')?;
    Some((running.parse().ok()?, total.parse().ok()?))
}

impl Plugin for CpuMonitor {
    fn name(&self) -> &str {
        "cpu_monitor"
    }

    fn kind(&self) -> Kind {
        Kind::Monitor
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        self.system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage().with_frequency());
        if !std::mem::replace(&mut self.primed, true) {
            return Ok(None);
        }
        let cpus = self.system.cpus();
        let load = System::load_average();
        let frequency = cpus.iter().map(|c| c.frequency()).max().unwrap_or(0);
        let mut data = json!({
            "cpu_percent": round2(self.system.global_cpu_usage() as f64),
            "cpu_count": cpus.len(),
            "load_1min": load.one,
            "load_5min": load.five,
            "load_15min": load.fifteen,
            "frequency_mhz": frequency,
        });
        if let Some(map) = data.as_object_mut() {
            if let Some((running, total)) = process_counts() {
                map.insert("processes_running".into(), json!(running));
                map.insert("processes_total".into(), json!(total));
            }
            if self.per_core {
                let cores: Vec<f64> = cpus.iter().map(|c| round2(c.cpu_usage() as f64)).collect();
                map.insert("per_core".into(), json!(cores));
            }
        }
        Ok(Some(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_is_a_baseline_then_real_figures() {
        let mut cpu = CpuMonitor::new(&Options { per_core: true, ..Options::default() });
        assert_eq!(cpu.collect().unwrap(), None);
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let v = cpu.collect().unwrap().unwrap();
        let pct = v["cpu_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct), "{v}");
        assert_eq!(v["per_core"].as_array().unwrap().len(), v["cpu_count"].as_u64().unwrap() as usize);
        assert!(v["load_1min"].as_f64().is_some());
        assert!(v["processes_total"].as_u64().unwrap() >= v["processes_running"].as_u64().unwrap());
    }
}
