//! The state thread: the only writer of `pickfile`, the host table saved
//! across restarts.
//!
//! Receives [`StateMsg::Save`] snapshots from `core` and writes the newest one
//! atomically: temporary file, fsync, rename, fsync of the directory, so a
//! crash leaves either the old or the new file, never a mix. [`load`] runs in
//! `main` before any thread starts; a file it cannot use is moved aside with
//! a warning and hbd starts with an empty table.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::SystemTime;

use crossbeam_channel::Receiver;
use log::{error, info, warn};
use serde::{Deserialize, Serialize};

use crate::server::model::{Alert, Host};
use crate::wire::unix_seconds;

const FORMAT_VERSION: u32 = 1;

/// What the state writer receives.
#[derive(Debug)]
pub enum StateMsg {
    /// Write this snapshot of what core knows.
    Save(Saved),
}

/// What hbd keeps across restarts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    pub hosts: Vec<Host>,
    /// Alert states, so that a restart does not fire them again.
    pub alerts: Vec<Alert>,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    saved_at: f64,
    hosts: Vec<Host>,
    #[serde(default)]
    alerts: Vec<Alert>,
}

/// Reads the state file. A missing file is an empty table; an unreadable or
/// corrupt one is renamed to `<pickfile>.corrupt-<unix time>` and reported.
pub fn load(path: &Path) -> Saved {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            info!("state: {} does not exist yet; starting with no hosts", path.display());
            return Saved::default();
        }
        Err(e) => {
            warn!("state: read {}: {e}; starting with no hosts", path.display());
            return Saved::default();
        }
    };
    let problem = match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(state) if state.version == FORMAT_VERSION => {
            info!(
                "state: restored {} hosts and {} alert states from {}",
                state.hosts.len(),
                state.alerts.len(),
                path.display()
            );
            return Saved { hosts: state.hosts, alerts: state.alerts };
        }
        Ok(state) => format!("format version {} is not {FORMAT_VERSION}", state.version),
        Err(e) => e.to_string(),
    };
    let aside = PathBuf::from(format!("{}.corrupt-{}", path.display(), unix_seconds(SystemTime::now()) as u64));
    match fs::rename(path, &aside) {
        Ok(()) => warn!(
            "state: {} is unusable ({problem}); moved it to {} and starting with no hosts",
            path.display(),
            aside.display()
        ),
        Err(e) => warn!(
            "state: {} is unusable ({problem}) and could not be moved aside ({e}); starting with no hosts",
            path.display()
        ),
    }
    Saved::default()
}

/// Fails early (before the daemon detaches) if the state file's directory
/// cannot take a new file.
pub fn check_writable(path: &Path) -> io::Result<()> {
    let probe = temp_path(path);
    File::create(&probe).and_then(|_| fs::remove_file(&probe)).map_err(|e| {
        io::Error::new(e.kind(), format!("state file {}: cannot create {}: {e}", path.display(), probe.display()))
    })
}

pub fn spawn(path: PathBuf, inbox: Receiver<StateMsg>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("state".into()).spawn(move || {
        while let Ok(StateMsg::Save(mut saved)) = inbox.recv() {
            // Only the newest snapshot matters.
            while let Ok(StateMsg::Save(newer)) = inbox.try_recv() {
                saved = newer;
            }
            let Saved { mut hosts, mut alerts } = saved;
            hosts.sort_by(|a, b| a.name.cmp(&b.name));
            alerts.sort_by(|a, b| a.key.cmp(&b.key));
            let n = hosts.len();
            let saved_at = unix_seconds(SystemTime::now());
            match write_json_atomically(&path, &StateFile { version: FORMAT_VERSION, saved_at, hosts, alerts }) {
                Ok(()) => log::debug!("state: saved {n} hosts to {}", path.display()),
                Err(e) => error!("state: save {}: {e}", path.display()),
            }
        }
    })
}

fn temp_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.tmp", path.display()))
}

/// Writes `value` as JSON to `path` so that a crash leaves the old file or
/// the new one, never a mix: temporary file, fsync, rename, fsync of the
/// directory. (The notifier's queue file is written the same way.)
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut file = File::create(&tmp)?;
    // The buffer is flushed explicitly: dropping a BufWriter ignores a
    // failed write, which on a full disk would rename a truncated file
    // over the good one.
    let mut writer = io::BufWriter::new(&mut file);
    let written = serde_json::to_writer(&mut writer, value)
        .map_err(io::Error::other)
        .and_then(|()| writer.write_all(b"\n"))
        .and_then(|()| writer.flush());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::model::{Level, Status};

    fn host(name: &str) -> Host {
        Host {
            name: name.into(),
            address: "192.0.2.7".parse().unwrap(),
            port: 4000,
            interval: 30.0,
            first_seen: 1.0,
            last_seen: 2.0,
            count: 3,
            status: Status::Up,
            status_since: 1.0,
            last_signed_us: Some(5),
            latency_ms: Some(0.25),
            alert_level: Level::Ok,
            plugins: Default::default(),
            // What DNS has confirmed survives a restart (no update is sent again).
            dns: [("example.com".to_string(), "192.0.2.7".parse().unwrap())].into(),
            outages: [[1.5, 1.75]].into(),
            latency_history: [[1.5, 0.25]].into(),
        }
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hbd-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn saved_state_loads_back() {
        let d = dir("roundtrip");
        let path = d.join("s.json");
        let (tx, rx) = crossbeam_channel::bounded(1);
        let handle = spawn(path.clone(), rx).unwrap();
        tx.send(StateMsg::Save(Saved { hosts: vec![host("b"), host("a")], alerts: Vec::new() })).unwrap();
        drop(tx);
        handle.join().unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.hosts, vec![host("a"), host("b")]);
        assert!(!temp_path(&path).exists());
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn corrupt_state_is_moved_aside() {
        let d = dir("corrupt");
        let path = d.join("s.json");
        fs::write(&path, b"{\"version\":1,\"hosts\":[{\"na").unwrap();
        assert!(load(&path).hosts.is_empty());
        assert!(!path.exists());
        let moved: Vec<_> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(moved[0].starts_with("s.json.corrupt-"), "{moved:?}");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn missing_state_is_empty() {
        assert_eq!(load(Path::new("/nonexistent/hbd/state.json")), Saved::default());
    }
}
