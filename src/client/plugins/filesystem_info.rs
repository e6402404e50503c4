//! `filesystem_info` (info): the mounted filesystems, physical ones only
//! unless `all` is set, from /proc/self/mounts.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{is_physical, Common, Kind, Plugin};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(flatten)]
    pub common: Common,
    /// Include kernel and memory filesystems (proc, sysfs, tmpfs, …).
    #[serde(default, deserialize_with = "crate::yaml::yaml11_bool")]
    pub all: bool,
}

pub struct FilesystemInfo {
    all: bool,
    mounts: super::Mounts,
}

impl FilesystemInfo {
    pub fn new(options: &Options) -> FilesystemInfo {
        FilesystemInfo { all: options.all, mounts: super::Mounts::default() }
    }
}

/// Undoes the octal escapes of /proc/mounts (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mounts(text: &str, all: bool) -> Vec<Value> {
    let mut filesystems = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || !(all || is_physical(f[0], f[2])) {
            continue;
        }
        let options: Vec<&str> = f[3].split(',').collect();
        filesystems.push(json!({
            "device": unescape(f[0]),
            "mount": unescape(f[1]),
            "fstype": f[2],
            "read_only": options.contains(&"ro"),
            "options": f[3],
        }));
    }
    filesystems
}

impl Plugin for FilesystemInfo {
    fn name(&self) -> &str {
        "filesystem_info"
    }

    fn kind(&self) -> Kind {
        Kind::Info
    }

    fn reads_kernel_only(&self) -> bool {
        true
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        let filesystems = parse_mounts(self.mounts.text()?, self.all);
        Ok(Some(json!({"count": filesystems.len(), "filesystems": filesystems})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
/dev/sda1 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid 0 0
tmpfs /run tmpfs rw,nosuid 0 0
/dev/sdb1 /media/my\\040disk vfat ro,noatime 0 0
";

    #[test]
    fn physical_only_by_default() {
        let fs = parse_mounts(MOUNTS, false);
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0]["mount"], "/");
        assert_eq!(fs[1]["mount"], "/media/my disk");
        assert_eq!(fs[1]["read_only"], true);
        assert_eq!(parse_mounts(MOUNTS, true).len(), 4);
    }
}
