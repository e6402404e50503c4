//! Files hbd writes whole: one way to replace a file safely, shared by
//! `state` (the state file) and `notify` (its queue file), below both.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Where a file is written before it is renamed into place.
pub fn temp_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.tmp", path.display()))
}

/// Writes `value` as JSON to `path` so that a crash leaves the old file or
/// the new one, never a mix: temporary file, fsync, rename, fsync of the
/// directory. The state file and the notifier's queue file are written so.
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    write_atomically(path, |out| {
        serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
        out.write_all(b"\n")
    })
}

/// Writes what `write` writes to `path`, as [`write_json_atomically`] does.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut file = File::create(&tmp)?;
    // The buffer is flushed explicitly: dropping a BufWriter ignores a
    // failed write, which on a full disk would rename a truncated file
    // over the good one.
    // 256 KiB at a time: a state file of 100,000 hosts is hundreds of MiB,
    // and the default 8 KiB made that tens of thousands of write(2)s.
    let mut writer = io::BufWriter::with_capacity(256 * 1024, &mut file);
    let written = write(&mut writer).and_then(|()| writer.flush());
    drop(writer);
    let written = written.and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
