//! `os_info` (info): what the machine is. Each sample looks at
//! /etc/os-release (read again when an upgrade has changed it) and asks for
//! the host name and the CPUs hbc may run on; the kernel's release and the
//! machine's architecture cannot change while hbc runs and are asked for
//! once. The values are sysinfo 0.36's, which read /etc/os-release four
//! times and all of /proc/stat per sample.

use std::ffi::CStr;
use std::io::Read;

use serde_json::{json, Value};

use super::{Kind, Plugin};

#[derive(Debug, Default)]
pub struct OsInfo {
    /// The kernel's release and the architecture (uname(2)), once known.
    uname: Option<(Option<String>, Option<String>)>,
    /// /etc/os-release's text, and what its metadata was when it was read.
    text: String,
    read_as: Option<FileVersion>,
}

/// What tells one version of a file from the next without reading it.
#[derive(Debug, PartialEq)]
struct FileVersion {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileVersion {
    fn of(path: &str) -> Option<FileVersion> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileVersion { inode: meta.ino(), len: meta.len(), modified: meta.modified().ok() })
    }
}

/// The CPUs hbc may run on (sched_getaffinity(2)): one system call, where
/// std's `available_parallelism` also reads the cgroup's CPU quota from
/// three files (a quota limits time, not CPUs).
fn cpu_count() -> usize {
    // SAFETY: cpu_set_t is plain data, and the kernel writes at most the
    // size given into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            return usize::try_from(libc::CPU_COUNT(&set)).unwrap_or(1).max(1);
        }
    }
    // More CPUs than a cpu_set_t holds.
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The value of `KEY=` in an os-release or lsb-release text, quotes
/// removed, as sysinfo gives it.
pub fn release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('=')).map(|value| value.replace('"', ""))
}

/// "Linux (Debian GNU/Linux 12)", "Linux (Debian GNU/Linux)" or "Linux":
/// sysinfo's `long_os_version`.
pub fn long_version(name: Option<&str>, version: Option<&str>) -> String {
    match (name, version) {
        (name, Some(version)) => format!("Linux ({} {version})", name.unwrap_or("unknown")),
        (Some(name), None) => format!("Linux ({name})"),
        (None, None) => "Linux".to_string(),
    }
}

/// uname(2)'s release and machine.
fn uname() -> (Option<String>, Option<String>) {
    let mut raw = std::mem::MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: uname fills the whole struct when it returns 0; only then is
    // it read, and its fields are NUL-terminated.
    unsafe {
        if libc::uname(raw.as_mut_ptr()) != 0 {
            return (None, None);
        }
        let info = raw.assume_init();
        let text = |field: &[libc::c_char]| CStr::from_ptr(field.as_ptr()).to_str().ok().map(str::to_owned);
        (text(&info.release), text(&info.machine))
    }
}

fn host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into `buffer`.
    if unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } != 0 {
        return None;
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8(buffer[..end].to_vec()).ok()
}

/// Unix seconds at boot: the real-time clock less the time since boot, as
/// the kernel computes `btime` in /proc/stat (whose whole text sysinfo
/// read for it); 0 if a clock cannot be read.
fn boot_time() -> u64 {
    let read = |clock| {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec into `t`.
        let ok = unsafe { libc::clock_gettime(clock, &mut t) } == 0;
        ok.then(|| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec))
    };
    let (Some(since_boot), Some(now)) = (read(libc::CLOCK_BOOTTIME), read(libc::CLOCK_REALTIME)) else {
        return 0;
    };
    u64::try_from((now - since_boot).div_euclid(1_000_000_000)).unwrap_or(0)
}

impl Plugin for OsInfo {
    fn name(&self) -> &str {
        "os_info"
    }

    fn kind(&self) -> Kind {
        Kind::Info
    }

    fn reads_kernel_only(&self) -> bool {
        true
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        // Replaced by upgrades, so not kept open (as /proc's files are).
        const OS_RELEASE: &str = "/etc/os-release";
        let version = FileVersion::of(OS_RELEASE);
        if version.is_none() || version != self.read_as {
            self.text.clear();
            let read = std::fs::File::open(OS_RELEASE).and_then(|mut file| file.read_to_string(&mut self.text));
            self.read_as = version.filter(|_| read.is_ok());
        }
        let os_release = self.read_as.is_some().then_some(self.text.as_str());
        // /etc/lsb-release stands in for a missing NAME or VERSION_ID.
        let mut lsb: Option<Option<String>> = None;
        let mut fallback = |key: &str| {
            let text = lsb.get_or_insert_with(|| std::fs::read_to_string("/etc/lsb-release").ok());
            text.as_deref().and_then(|t| release_field(t, key))
        };
        let name = os_release.and_then(|t| release_field(t, "NAME")).or_else(|| fallback("DISTRIB_ID"));
        let version = os_release.and_then(|t| release_field(t, "VERSION_ID")).or_else(|| fallback("DISTRIB_RELEASE"));
        let distribution =
            os_release.and_then(|t| release_field(t, "ID")).unwrap_or_else(|| std::env::consts::OS.to_string());
        let (kernel, architecture) = self.uname.get_or_insert_with(uname).clone();
        Ok(Some(json!({
            "os": std::env::consts::OS,
            "long_version": long_version(name.as_deref(), version.as_deref()),
            "name": name,
            "distribution": distribution,
            "version": version,
            "kernel": kernel,
            "architecture": architecture,
            "hostname": host_name(),
            "boot_time": boot_time(),
            "cpu_count": cpu_count(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_basics() {
        let v = OsInfo::default().collect().unwrap().unwrap();
        assert_eq!(v["os"], "linux");
        assert!(v["kernel"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(v["boot_time"].as_u64().unwrap() > 1_000_000_000);
        assert!(v["architecture"].as_str().is_some());
    }

    /// The CPUs of Cpus_allowed_list in /proc/self/status ("0-3,6").
    #[test]
    fn cpu_count_is_the_affinity_s() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
        let allowed: usize = list
            .split(',')
            .map(|range| match range.split_once('-') {
                Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
                None => 1,
            })
            .sum();
        assert_eq!(cpu_count(), allowed, "{list}");
    }

    #[test]
    fn a_file_s_version_changes_with_its_text() {
        let path = std::env::temp_dir().join(format!("hbc-os-release-{}", std::process::id()));
        let path_text = path.to_str().unwrap();
        std::fs::write(&path, "ID=debian\n").unwrap();
        let before = FileVersion::of(path_text).unwrap();
        assert_eq!(FileVersion::of(path_text).as_ref(), Some(&before), "unchanged");
        // As an upgrade replaces it: a new file of the same length renamed over it.
        let replacement = path.with_extension("new");
        std::fs::write(&replacement, "ID=ubuntu\n").unwrap();
        std::fs::rename(&replacement, &path).unwrap();
        assert_ne!(FileVersion::of(path_text).as_ref(), Some(&before), "replaced");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(FileVersion::of(path_text), None);
    }

    /// The boot time /proc/stat gives, to the second (the two clocks are
    /// read one after the other).
    #[test]
    fn boot_time_is_proc_stat_s() {
        let stat = std::fs::read_to_string("/proc/stat").unwrap();
        let btime: u64 = stat.lines().find_map(|l| l.strip_prefix("btime ")).unwrap().trim().parse().unwrap();
        assert!(boot_time().abs_diff(btime) <= 1, "{} vs {btime}", boot_time());
    }

    const OS_RELEASE: &str = "\
PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"
NAME=\"Debian GNU/Linux\"
VERSION_ID=\"12\"
VERSION=\"12 (bookworm)\"
ID=debian
";

    #[test]
    fn os_release_fields() {
        assert_eq!(release_field(OS_RELEASE, "NAME").as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(release_field(OS_RELEASE, "VERSION_ID").as_deref(), Some("12"));
        assert_eq!(release_field(OS_RELEASE, "ID").as_deref(), Some("debian"));
        assert_eq!(release_field(OS_RELEASE, "ID_LIKE"), None);
        assert_eq!(release_field("DISTRIB_ID=Ubuntu\n", "DISTRIB_ID").as_deref(), Some("Ubuntu"));
        assert_eq!(long_version(Some("Debian GNU/Linux"), Some("12")), "Linux (Debian GNU/Linux 12)");
        assert_eq!(long_version(None, Some("12")), "Linux (unknown 12)");
        assert_eq!(long_version(Some("Arch Linux"), None), "Linux (Arch Linux)");
        assert_eq!(long_version(None, None), "Linux");
    }
}
