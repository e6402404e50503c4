//! `os_info` (info): what the machine is. Read once per interval; each field
//! is a cheap system call or a small file.

use serde_json::{json, Value};
use sysinfo::System;

use super::{Kind, Plugin};

pub struct OsInfo;

impl Plugin for OsInfo {
    fn name(&self) -> &str {
        "os_info"
    }

    fn kind(&self) -> Kind {
        Kind::Info
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        Ok(Some(json!({
            "os": std::env::consts::OS,
            "name": System::name(),
            "distribution": System::distribution_id(),
            "version": System::os_version(),
            "long_version": System::long_os_version(),
            "kernel": System::kernel_version(),
            "architecture": System::cpu_arch(),
            "hostname": System::host_name(),
            "boot_time": System::boot_time(),
            "cpu_count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_basics() {
        let v = OsInfo.collect().unwrap().unwrap();
        assert_eq!(v["os"], "linux");
        assert!(v["kernel"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(v["boot_time"].as_u64().unwrap() > 1_000_000_000);
        assert!(v["architecture"].as_str().is_some());
    }
}
