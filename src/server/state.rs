//! The state thread: the only writer of `pickfile`, the host table saved
//! across restarts.
//!
//! The file is JSON: `{"version":3,"saved_at","hosts":[…],"alerts":[…],
//! "layouts":[…],"plugins":[…],"latency":[…]}`. `hosts` are the hosts
//! without their plugin data; `plugins[i]` is the store of `hosts[i]`: an
//! info plugin's latest sample, or a monitor plugin's history as blocks
//! `[layout, rows, base64 bytes]` in the store's own encoding
//! (`store`), the layouts listed once in `layouts`; `latency[i]` is
//! that host's round trips, as blocks too. Older files are read and
//! converted, and the next save writes version 3: version 2 (the same,
//! with the blocks' times as f64 bit patterns and the round trips as
//! numbers in `hosts`) and version 1 (hbd before the compact store: every
//! sample as JSON inside `hosts`).
//!
//! `silences` (not ended yet) and `silence_held` (the level each alert a
//! silence held was last notified at) are optional members of any version:
//! a file without them, written before silences, reads as none.
//!
//! Receives [`StateMsg::Save`] snapshots from `core` and writes the newest one
//! atomically: temporary file, fsync, rename, fsync of the directory, so a
//! crash leaves either the old or the new file, never a mix. [`load`] runs in
//! `main` before any thread starts; a file it cannot use is moved aside with
//! a warning and hbd starts with an empty table.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crossbeam_channel::Receiver;
use log::{error, info, warn};
use serde::{Deserialize, Serialize};

use crate::server::files::{temp_path, write_json_atomically};
use crate::server::model::{Alert, Host, Sample, Silence};
use crate::server::msg::{Saved, StateMsg};
use crate::server::silence::Held;
use crate::server::store::{Block, History, Layout, Layouts, Plugins, Record, Series, Shape};
use crate::wire::{unix_seconds, PluginKind};

const FORMAT_VERSION: u32 = 3;
/// Blocks with times as f64 bit patterns; read and converted.
const FORMAT_V2: u32 = 2;
/// hbd before the compact store; read and converted.
const FORMAT_V1: u32 = 1;

/// The file as written; `plugins[i]` is the store of `hosts[i]` and
/// `latency[i]` its round trips, blocks as the plugins' are.
#[derive(Serialize)]
struct StateOut<'a> {
    version: u32,
    saved_at: f64,
    hosts: Vec<&'a Host>,
    alerts: &'a [Alert],
    silences: &'a [Silence],
    silence_held: &'a [Held],
    layouts: Vec<&'a [Shape]>,
    plugins: Vec<BTreeMap<&'a str, PluginOut<'a>>>,
    latency: Vec<Vec<BlockOut<'a>>>,
}

/// A block: its layout's index in `layouts`, its rows, its bytes.
type BlockOut<'a> = (usize, usize, Base64<'a>);
type BlockIn = (usize, usize, Base64In);

#[derive(Serialize)]
struct PluginOut<'a> {
    kind: PluginKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// An info plugin's sample, as JSON text (decoded from the store).
    latest: Option<Sample>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    blocks: Vec<BlockOut<'a>>,
}

/// The file as read, streamed from it: version 3 or 2, or version 1 with
/// the samples in `hosts`. The file is never held whole (at 100,000 hosts
/// it is hundreds of MiB), and each block's base64 text is decoded as it
/// is read ([`Base64In`]), never kept as a string: short-lived strings
/// between the records being built would leave the heap fragmented for good.
#[derive(Deserialize)]
struct StateIn {
    version: u32,
    hosts: Vec<Host>,
    #[serde(default)]
    alerts: Vec<Alert>,
    #[serde(default)]
    silences: Vec<Silence>,
    #[serde(default)]
    silence_held: Vec<Held>,
    #[serde(default)]
    layouts: Vec<Vec<Shape>>,
    #[serde(default)]
    plugins: Vec<BTreeMap<String, PluginIn>>,
    /// Since version 3 (a file of version 1 or 2 has the round trips in
    /// `hosts`, as numbers).
    #[serde(default)]
    latency: Vec<Vec<BlockIn>>,
}

#[derive(Deserialize)]
struct PluginIn {
    kind: PluginKind,
    #[serde(default)]
    latest: Option<Sample>,
    #[serde(default)]
    blocks: Vec<BlockIn>,
}

/// Reads the state file. A missing file is an empty table; an unreadable or
/// corrupt one is renamed to `<pickfile>.corrupt-<unix time>` and reported.
pub fn load(path: &Path) -> Saved {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            info!("state: {} does not exist yet; starting with no hosts", path.display());
            return Saved::default();
        }
        Err(e) => {
            warn!("state: read {}: {e}; starting with no hosts", path.display());
            return Saved::default();
        }
    };
    let reader = io::BufReader::with_capacity(256 * 1024, file);
    let problem = match serde_json::from_reader::<_, StateIn>(reader) {
        Ok(state) if [FORMAT_VERSION, FORMAT_V2, FORMAT_V1].contains(&state.version) => {
            let version = state.version;
            match restore(state) {
                Ok(saved) => {
                    info!(
                        "state: restored {} hosts and {} alert states from {}{}",
                        saved.hosts.len(),
                        saved.alerts.len(),
                        path.display(),
                        if version == FORMAT_VERSION {
                            String::new()
                        } else {
                            format!(" (format {version}, converted)")
                        }
                    );
                    return saved;
                }
                Err(problem) => problem,
            }
        }
        Ok(state) => format!("format version {} is not {FORMAT_VERSION}", state.version),
        // The disk, not the file: nothing to move aside.
        Err(e) if e.is_io() => {
            warn!("state: read {}: {e}; starting with no hosts", path.display());
            return Saved::default();
        }
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
            let started = std::time::Instant::now();
            let Saved { mut hosts, mut alerts, silences, silence_held } = saved;
            hosts.sort_by(|a, b| a.host.name.cmp(&b.host.name));
            alerts.sort_by(|a, b| a.key.cmp(&b.key));
            let n = hosts.len();
            let saved_at = unix_seconds(SystemTime::now());
            let out =
                StateOut { silences: &silences, silence_held: &silence_held, ..state_out(saved_at, &hosts, &alerts) };
            match write_json_atomically(&path, &out) {
                // How long a save takes is what tells whether state_save_interval suits the fleet.
                Ok(()) => log::debug!(
                    "state: saved {n} hosts to {} in {:.3} s",
                    path.display(),
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => error!("state: save {}: {e}", path.display()),
            }
            drop((hosts, alerts));
            crate::memory::return_free_heap();
        }
    })
}

/// The file's form of a snapshot: borrows it, numbering the layouts.
fn state_out<'a>(saved_at: f64, hosts: &'a [Record], alerts: &'a [Alert]) -> StateOut<'a> {
    let mut ids: HashMap<*const Layout, usize> = HashMap::new();
    let mut layouts = Vec::new();
    let mut blocks_out = |history: &'a History| -> Vec<BlockOut<'a>> {
        history
            .blocks()
            .map(|block| {
                let id = *ids.entry(Arc::as_ptr(&block.layout)).or_insert_with(|| {
                    layouts.push(block.layout.shape());
                    layouts.len() - 1
                });
                (id, block.chunk.rows(), Base64(block.chunk.bytes()))
            })
            .collect()
    };
    let mut plugins = Vec::with_capacity(hosts.len());
    let mut latency = Vec::with_capacity(hosts.len());
    for record in hosts {
        let mut store = BTreeMap::new();
        for (name, series) in record.plugins.iter() {
            let plugin = match series {
                Series::Info(history) => {
                    // (None only if its block did not decode: left out.)
                    let Some(sample) = history.newest(1).pop() else { continue };
                    PluginOut { kind: PluginKind::Info, latest: Some(sample), blocks: Vec::new() }
                }
                Series::Monitor(history) => {
                    PluginOut { kind: PluginKind::Monitor, latest: None, blocks: blocks_out(history) }
                }
            };
            store.insert(&**name, plugin);
        }
        plugins.push(store);
        latency.push(blocks_out(&record.latency));
    }
    StateOut {
        version: FORMAT_VERSION,
        saved_at,
        hosts: hosts.iter().map(|r| &r.host).collect(),
        alerts,
        silences: &[],
        silence_held: &[],
        layouts,
        plugins,
        latency,
    }
}

/// A history's blocks as a file has them.
fn history_in(shapes: &[Arc<Layout>], blocks: Vec<BlockIn>, v2: bool) -> Option<History> {
    let blocks = blocks
        .into_iter()
        .map(|(id, rows, Base64In(bytes))| Block::from_parts(shapes.get(id)?.clone(), rows, bytes?, v2).ok())
        .collect::<Option<Vec<Block>>>()?;
    History::from_blocks(blocks).ok()
}

/// The records of a file read: version 3 as it is, version 2 block by
/// block, version 1 sample by sample into the store.
fn restore(state: StateIn) -> Result<Saved, String> {
    let mut layouts = Layouts::default();
    let shapes: Vec<Arc<Layout>> = state.layouts.into_iter().map(|shape| layouts.layout(shape)).collect();
    if state.version != FORMAT_V1 && state.plugins.len() != state.hosts.len() {
        return Err(format!("{} hosts but {} plugin stores", state.hosts.len(), state.plugins.len()));
    }
    let v2 = state.version == FORMAT_V2;
    let mut stores = state.plugins.into_iter();
    let mut latencies = state.latency.into_iter();
    let mut hosts = Vec::with_capacity(state.hosts.len());
    for mut host in state.hosts {
        // Version 3 keeps them as blocks; older files as numbers in `hosts`.
        let points: Vec<[f64; 2]> = std::mem::take(&mut host.latency_history).into();
        let latency = match latencies.next() {
            Some(blocks) if points.is_empty() => history_in(&shapes, blocks, v2),
            _ => History::from_numbers(&mut layouts, &points).ok(),
        };
        let latency = latency.ok_or_else(|| format!("host {}: damaged round trips", host.name))?;
        let mut plugins = Plugins::default();
        for (name, old) in std::mem::take(&mut host.plugins) {
            plugins.insert(name.into(), convert_v1(&mut layouts, old.kind, old.samples.into()));
        }
        for (name, plugin) in stores.next().unwrap_or_default() {
            let series = match (plugin.kind, plugin.latest) {
                (PluginKind::Info, Some(sample)) => info_series(&mut layouts, &sample)
                    .ok_or_else(|| format!("host {}: info plugin {name}: sample not stored", host.name))?,
                (PluginKind::Info, None) => {
                    return Err(format!("host {}: info plugin {name} without a sample", host.name))
                }
                (PluginKind::Monitor, _) => Series::Monitor(
                    history_in(&shapes, plugin.blocks, v2)
                        .ok_or_else(|| format!("host {}: plugin {name}: damaged history", host.name))?,
                ),
            };
            plugins.insert(name.into(), series);
        }
        hosts.push(Record { host, plugins, latency });
    }
    Ok(Saved { hosts, alerts: state.alerts, silences: state.silences, silence_held: state.silence_held })
}

/// An info plugin's series holding `sample`.
fn info_series(layouts: &mut Layouts, sample: &Sample) -> Option<Series> {
    let mut history = History::default();
    history.push_sample(layouts, 1, sample).ok()?;
    Some(Series::Info(history))
}

/// A version-1 series: its samples stored again, one by one.
fn convert_v1(layouts: &mut Layouts, kind: PluginKind, samples: Vec<Sample>) -> Series {
    match kind {
        PluginKind::Info => match samples.last().and_then(|sample| info_series(layouts, sample)) {
            Some(series) => series,
            None => Series::Monitor(History::default()),
        },
        PluginKind::Monitor => {
            let mut history = History::default();
            for s in &samples {
                // The file held at most `plugin_history` samples; keep them all.
                let _ = history.push_sample(layouts, usize::MAX, s);
            }
            Series::Monitor(history)
        }
    }
}

/// Bytes as standard base64 (RFC 4648, padded) inside a JSON string.
struct Base64<'a>(&'a [u8]);

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl Serialize for Base64<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(self.0.len().div_ceil(3) * 4);
        for group in self.0.chunks(3) {
            let n = group.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= group.len() { B64[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
            }
        }
        serializer.serialize_str(&out)
    }
}

/// A block's bytes, decoded from base64 as the file is read; None if the
/// text is not base64 (the host it belongs to is then named as damaged).
struct Base64In(Option<Vec<u8>>);

impl<'de> Deserialize<'de> for Base64In {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Base64In;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a block's bytes in base64")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Base64In, E> {
                Ok(Base64In(base64_decode(text)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const INVALID: u8 = 255;
    const VALUES: [u8; 256] = {
        let mut table = [INVALID; 256];
        let mut i = 0;
        while i < 64 {
            table[B64[i] as usize] = i as u8;
            i += 1;
        }
        table
    };
    let text = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for group in text.chunks(4) {
        let mut n = 0u32;
        for (i, c) in group.iter().enumerate() {
            let v = VALUES[usize::from(*c)];
            if v == INVALID {
                return None;
            }
            n |= u32::from(v) << (18 - 6 * i);
        }
        match group.len() {
            4 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]),
            3 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8]),
            2 => out.push((n >> 16) as u8),
            _ => return None,
        }
    }
    Some(out)
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
            peer: true,
            // What DNS has confirmed survives a restart (no update is sent again).
            dns: [("example.com".to_string(), "192.0.2.7".parse().unwrap())].into(),
            outages: [[1.5, 1.75]].into(),
            ..Host::for_test(name)
        }
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hbd-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Silences and the levels they hold come back; a file without them
    /// (written before silences) has none.
    #[test]
    fn silences_load_back_and_older_files_have_none() {
        let d = dir("silences");
        let path = d.join("s.json");
        let (tx, rx) = crossbeam_channel::bounded(1);
        let handle = spawn(path.clone(), rx).unwrap();
        let silence = Silence {
            id: "19ad7c3e2f1".into(),
            host: "db*".into(),
            plugin: Some("disk_monitor".into()),
            metric_path: None,
            starts_at: 10.0,
            ends_at: 20.0,
            comment: "<b>why</b>".into(),
            by: "alice".into(),
            created_at: 9.5,
        };
        let key = crate::server::model::AlertKey {
            host: "db1".into(),
            plugin: "heartbeat".into(),
            metric_path: "silent_for_seconds".into(),
        };
        let held = vec![Held { key, notified: Level::Ok }];
        tx.send(StateMsg::Save(Saved {
            silences: vec![silence.clone()],
            silence_held: held.clone(),
            ..Saved::default()
        }))
        .unwrap();
        drop(tx);
        handle.join().unwrap();
        let loaded = load(&path);
        assert_eq!((loaded.silences, loaded.silence_held), (vec![silence], held));
        let mut older: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        older.as_object_mut().unwrap().retain(|k, _| !k.starts_with("silence"));
        fs::write(&path, older.to_string()).unwrap();
        let loaded = load(&path);
        assert!(loaded.silences.is_empty() && loaded.silence_held.is_empty());
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn saved_state_loads_back() {
        let d = dir("roundtrip");
        let path = d.join("s.json");
        let record = |name| {
            let mut latency = History::default();
            latency.push_number(&mut Layouts::default(), 50, 1.5, 0.25).unwrap();
            Record { host: host(name), plugins: Default::default(), latency }
        };
        tx_save(&path, vec![record("b"), record("a")]);
        let loaded = load(&path);
        assert_eq!(loaded.hosts, vec![record("a"), record("b")]);
        assert_eq!(loaded.hosts[0].latency.numbers(), [[1.5, 0.25]]);
        // A file of version 2 has the round trips as numbers in `hosts`.
        let mut older: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        older["version"] = 2.into();
        older.as_object_mut().unwrap().remove("latency");
        for host in older["hosts"].as_array_mut().unwrap() {
            host["latency_history"] = serde_json::json!([[1.5, 0.25]]);
        }
        fs::write(&path, older.to_string()).unwrap();
        assert_eq!(load(&path).hosts, vec![record("a"), record("b")]);
        assert!(!temp_path(&path).exists());
        // A block that is not base64 makes the file unusable: moved aside.
        tx_save(&path, vec![record("a")]);
        let mut damaged: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        damaged["latency"][0][0][2] = "not*base64".into();
        fs::write(&path, damaged.to_string()).unwrap();
        assert!(load(&path).hosts.is_empty());
        assert!(!path.exists(), "moved aside");
        fs::remove_dir_all(d).unwrap();
    }

    /// Saves `hosts` to `path` through the state thread.
    fn tx_save(path: &Path, hosts: Vec<Record>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let handle = spawn(path.to_path_buf(), rx).unwrap();
        tx.send(StateMsg::Save(Saved { hosts, ..Saved::default() })).unwrap();
        drop(tx);
        handle.join().unwrap();
    }

    #[test]
    fn base64_round_trips_and_refuses_what_is_not() {
        for len in 0..70usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let text = serde_json::to_string(&Base64(&bytes)).unwrap();
            let text: String = serde_json::from_str(&text).unwrap();
            assert_eq!(text.len(), len.div_ceil(3) * 4);
            assert_eq!(base64_decode(&text), Some(bytes));
        }
        assert_eq!(base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(base64_decode("aGV*bG8="), None);
        assert_eq!(base64_decode("a"), None);
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
