//! `cpu_monitor`: CPU use between two samples, load averages, frequency and
//! process counts. The first call only takes the baseline.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{round2, Common, KernelFile, Kind, Plugin};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(flatten)]
    pub common: Common,
    /// Also report each core's use as `per_core`.
    #[serde(default, deserialize_with = "crate::yaml::yaml11_bool")]
    pub per_core: bool,
}

/// Reads /proc/stat, /proc/loadavg and the frequency itself: sysinfo, asked
/// for the same figures, read /proc/cpuinfo once per core on every sample
/// when cpufreq is absent (as in VMs), the largest part of hbc's cycle.
/// The figures are computed as sysinfo 0.36 computes them.
pub struct CpuMonitor {
    per_core: bool,
    /// The previous sample: the whole machine first, then each core.
    previous: Option<Vec<Times>>,
    stat: KernelFile,
    loadavg: KernelFile,
    /// Each core's cpufreq `scaling_cur_freq`, added as cores are seen.
    scaling: Vec<KernelFile>,
    /// None once it proved to have no frequency line.
    cpuinfo: Option<KernelFile>,
}

impl CpuMonitor {
    pub fn new(options: &Options) -> CpuMonitor {
        CpuMonitor {
            per_core: options.per_core,
            previous: None,
            stat: KernelFile::new("/proc/stat"),
            loadavg: KernelFile::new("/proc/loadavg"),
            scaling: Vec::new(),
            cpuinfo: Some(KernelFile::new("/proc/cpuinfo")),
        }
    }
}

/// One `cpu` line of /proc/stat, in clock ticks, with guest time taken out
/// of user and nice (the kernel counts it in both).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    user: u64,
    nice: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    irq: u64,
    softirq: u64,
    steal: u64,
    guest: u64,
    guest_nice: u64,
}

impl Times {
    fn parse(fields: &str) -> Times {
        let mut f = fields.split_ascii_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
        let mut next = || f.next().unwrap_or(0);
        let (user, nice, system, idle, iowait) = (next(), next(), next(), next(), next());
        let (irq, softirq, steal, guest, guest_nice) = (next(), next(), next(), next(), next());
        Times {
            user: user.saturating_sub(guest),
            nice: nice.saturating_sub(guest_nice),
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
            guest,
            guest_nice,
        }
    }

    fn system_time(&self) -> u64 {
        self.system.saturating_add(self.irq).saturating_add(self.softirq)
    }

    fn virtual_time(&self) -> u64 {
        self.guest.saturating_add(self.guest_nice)
    }

    fn total(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system_time())
            .saturating_add(self.idle.saturating_add(self.iowait))
            .saturating_add(self.virtual_time())
            .saturating_add(self.steal)
    }

    /// Percent busy since `old`: everything but idle and iowait, capped
    /// at 100 (sysinfo's `cpu_usage`, in its f32 arithmetic).
    fn percent_since(&self, old: &Times) -> f32 {
        let (new_total, old_total) = (self.total(), old.total());
        let total = if new_total > old_total { (new_total - old_total) as f32 } else { 1.0 };
        let busy = self.nice.saturating_sub(old.nice)
            + self.user.saturating_sub(old.user)
            + self.system_time().saturating_sub(old.system_time());
        let virt = self.steal.saturating_sub(old.steal) + self.virtual_time().saturating_sub(old.virtual_time());
        let percent = (busy as f32 / total + virt as f32 / total) * 100.0;
        percent.min(100.0)
    }
}

/// The machine's line and each core's, from /proc/stat's text.
pub fn parse_stat(text: &str) -> Vec<Times> {
    text.lines()
        .take_while(|line| line.starts_with("cpu"))
        .filter_map(|line| line.split_once(' ').map(|(_, fields)| Times::parse(fields)))
        .collect()
}

/// The cores' highest current frequency in MHz: cpufreq's
/// `scaling_cur_freq` where the kernel has it, else the first `cpu MHz`
/// (or like) line of /proc/cpuinfo, as sysinfo reports it for every core;
/// 0 when neither says. `scaling` holds a file per core.
fn frequency_mhz(scaling: &mut [KernelFile], cpuinfo: &mut Option<KernelFile>) -> u64 {
    let mut highest = 0;
    // Read once for all cores without cpufreq: it is the same line for each.
    let mut first_line = None;
    for file in scaling {
        let khz = file.read().ok().and_then(|text| text.trim().parse::<u64>().ok());
        let mhz = match khz {
            Some(khz) => khz / 1000,
            None => *first_line.get_or_insert_with(|| cpuinfo_mhz(cpuinfo)),
        };
        highest = highest.max(mhz);
    }
    highest
}

/// The first frequency line of /proc/cpuinfo, read only as far as that
/// line: the kernel makes the text one core at a time as it is read, and
/// a core's part (its flags above all) is the dearest text hbc reads. A
/// /proc/cpuinfo without any such line (as some architectures write it)
/// is not read again: `cpuinfo` becomes None.
fn cpuinfo_mhz(cpuinfo: &mut Option<KernelFile>) -> u64 {
    let Some(file) = cpuinfo else { return 0 };
    let first = |text: &str| text.split_inclusive('\n').filter(|line| line.ends_with('\n')).find_map(frequency_line);
    match file.read_until(512, |text| first(text).is_some()).map(first) {
        Ok(Some(mhz)) => mhz,
        Ok(None) => {
            *cpuinfo = None;
            0
        }
        Err(_) => 0,
    }
}

/// The MHz a /proc/cpuinfo line gives, if it is one of the lines sysinfo
/// takes the frequency from.
fn frequency_line(line: &str) -> Option<u64> {
    let keys = ["cpu MHz\t", "CPU MHz\t", "BogoMIPS", "clock\t", "bogomips per cpu"];
    if !keys.iter().any(|k| line.starts_with(k)) {
        return None;
    }
    let value = line.trim_end_matches('\n').rsplit(':').next()?;
    Some(value.replace("MHz", "").trim().parse::<f64>().map_or(0, |mhz| mhz as u64))
}

/// Load averages, and `running/total` scheduling entities when given.
type LoadAvg = ([f64; 3], Option<(u64, u64)>);

/// [`LoadAvg`] from one read of /proc/loadavg (into `text`): the process
/// counts without walking /proc.
fn loadavg(file: &mut KernelFile) -> Option<LoadAvg> {
    let text = file.read().ok()?;
    let f: Vec<&str> = text.split_whitespace().collect();
    let load = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    let counts = f.get(3).and_then(|field| {
        let (running, total) = field.split_once('/')?;
        Some((running.parse().ok()?, total.parse().ok()?))
    });
    Some(([load(0), load(1), load(2)], counts))
}

impl Plugin for CpuMonitor {
    fn name(&self) -> &str {
        "cpu_monitor"
    }

    fn kind(&self) -> Kind {
        Kind::Monitor
    }

    fn reads_kernel_only(&self) -> bool {
        true
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        let now = parse_stat(self.stat.read()?);
        if now.is_empty() {
            return Err("no cpu line in /proc/stat".into());
        }
        let Some(previous) = self.previous.replace(now.clone()) else {
            return Ok(None);
        };
        let percent = |i: usize| {
            let old = previous.get(i).copied().unwrap_or_default();
            round2(f64::from(now[i].percent_since(&old)))
        };
        let cores = now.len() - 1;
        let (load, counts) = loadavg(&mut self.loadavg).unwrap_or(([0.0; 3], None));
        while self.scaling.len() < cores {
            let path = format!("/sys/devices/system/cpu/cpu{}/cpufreq/scaling_cur_freq", self.scaling.len());
            self.scaling.push(KernelFile::new(path));
        }
        let mut data = json!({
            "cpu_percent": percent(0),
            "cpu_count": cores,
            "load_1min": load[0],
            "load_5min": load[1],
            "load_15min": load[2],
            "frequency_mhz": frequency_mhz(&mut self.scaling[..cores], &mut self.cpuinfo),
        });
        if let Some(map) = data.as_object_mut() {
            if let Some((running, total)) = counts {
                map.insert("processes_running".into(), json!(running));
                map.insert("processes_total".into(), json!(total));
            }
            if self.per_core {
                let per_core: Vec<f64> = (1..now.len()).map(percent).collect();
                map.insert("per_core".into(), json!(per_core));
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
        std::thread::sleep(std::time::Duration::from_millis(200));
        let v = cpu.collect().unwrap().unwrap();
        let pct = v["cpu_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct), "{v}");
        assert_eq!(v["per_core"].as_array().unwrap().len(), v["cpu_count"].as_u64().unwrap() as usize);
        assert!(v["load_1min"].as_f64().is_some());
        assert!(v["processes_total"].as_u64().unwrap() >= v["processes_running"].as_u64().unwrap());
    }

    #[test]
    fn frequency_lines() {
        assert_eq!(frequency_line("cpu MHz\t\t: 2994.374\n"), Some(2994));
        assert_eq!(frequency_line("BogoMIPS\t: 50.00\n"), Some(50));
        assert_eq!(frequency_line("clock\t\t: 1200.000000MHz\n"), Some(1200));
        assert_eq!(frequency_line("cpu MHz\t\t: ?\n"), Some(0), "sysinfo's 0 for a line it cannot read");
        assert_eq!(frequency_line("model name\t: Intel(R) Xeon(R)\n"), None);
    }

    /// The figures sysinfo gives for the same two samples of /proc/stat.
    #[test]
    fn percentages_are_sysinfo_s() {
        let before = parse_stat("cpu  100 10 50 1000 20 5 5 3 8 1\ncpu0 50 5 25 500 10 2 2 1 4 0\nintr 1\n");
        let after = parse_stat("cpu  180 12 70 1100 25 6 7 4 20 1\ncpu0 90 6 35 540 12 3 4 2 10 0\nintr 1\n");
        assert_eq!(after.len(), 2);
        // user 180-20=160 (was 92), nice 12-1=11 (was 9), system 70+6+7=83
        // (was 60), idle 1125 (was 1020), steal 4 (was 3), guest 21 (was 9):
        // busy 68+2+23=93, virtual 1+12=13, total 1404-1193=211.
        let expected = (93.0f32 / 211.0 + 13.0f32 / 211.0) * 100.0;
        assert_eq!(after[0].percent_since(&before[0]), expected);
        assert_eq!(after[0].percent_since(&after[0]), 0.0, "no time passed");
    }
}
