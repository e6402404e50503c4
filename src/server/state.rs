//! The state thread: the only writer of `pickfile`, the host table saved
//! across restarts.
//!
//! The file is JSON: `{"version":3,"saved_at","silences","silence_held",
//! "layouts":[…],"alerts":[…],"hosts":[…],"latency":[…],"plugins":[…]}`
//! (in that order, so that a reader has the layouts before the blocks, and
//! the writer is done with each host once its plugins are out; hbd reads
//! the members in any order). `hosts` are the hosts
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
//! Receives [`StateMsg`] snapshots from `core` and writes the newest one
//! atomically: temporary file, fsync, rename, fsync of the directory, so a
//! crash leaves either the old or the new file, never a mix. A periodic
//! save asks core for its hosts' records a piece at a time
//! ([`Records::Asked`]): the file has the hosts there were when it started,
//! each as it was when the writer got to it. The final save, at shutdown,
//! has every record at once. [`load`] runs in
//! `main` before any thread starts; a file it cannot use is moved aside with
//! a warning and hbd starts with an empty table.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crossbeam_channel::{bounded, Receiver};
use log::{error, info, warn};
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::server::files::{temp_path, write_atomically};
use crate::server::model::{Alert, Host, Sample, Silence};
use crate::server::msg::{Records, RecordsWanted, Saved, Snapshot, StateMsg};
use crate::server::silence::Held;
use crate::server::store::{Block, History, Layout, Layouts, Names, Plugins, Record, Series, Shape};
use crate::wire::{unix_seconds, PluginKind};

const FORMAT_VERSION: u32 = 3;
/// Blocks with times as f64 bit patterns; read and converted.
const FORMAT_V2: u32 = 2;
/// hbd before the compact store; read and converted.
const FORMAT_V1: u32 = 1;

/// A block as the file has it: its layout's index in `layouts`, its rows,
/// its bytes in base64.
type BlockIn = (usize, usize, Base64In);

/// The file as read: version 3 or 2, or version 1 with the samples in
/// `hosts`.
///
/// It is streamed, never held whole (at 100,000 hosts it is hundreds of
/// MiB), and each host's store is built as its part of the file is read:
/// names shared from the start, blocks decoded from base64 straight into
/// the bytes the store keeps. Reading the file's own shapes first (a map
/// of plugins per host, a name per plugin, a string per block) made and
/// freed that much among what stays, and each freed piece stayed a hole
/// in the heap for the daemon's life: a sixth of its memory at 10,000
/// hosts.
struct StateIn {
    version: u32,
    hosts: Vec<Host>,
    alerts: Vec<Alert>,
    silences: Vec<Silence>,
    silence_held: Vec<Held>,
    /// `plugins`, one per host; since version 2.
    stores: Vec<Plugins>,
    /// `latency`, one per host; since version 3 (older files have the
    /// round trips in `hosts`, as numbers).
    latency: Vec<History>,
    layouts: Layouts,
    names: Names,
}

/// What reading `plugins` and `latency` needs of the parts read before:
/// `version` and `layouts`, which come first in every file hbd writes.
#[derive(Default)]
struct Context {
    version: Option<u32>,
    layouts: Layouts,
    /// None until `layouts` is read.
    shapes: Option<Vec<Arc<Layout>>>,
    names: Names,
    /// One host's plugins while they are read (reused: see [`StateIn`]).
    scratch: Vec<(Arc<str>, Series)>,
}

impl Context {
    /// Whether `plugins` and `latency` can be read as they come.
    fn ready(&self) -> bool {
        self.version.is_some() && self.shapes.is_some()
    }

    /// Whether the blocks have times as f64 bit patterns (version 2).
    fn v2(&self) -> bool {
        self.version == Some(FORMAT_V2)
    }
}

impl<'de> Deserialize<'de> for StateIn {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct File;
        impl<'de> Visitor<'de> for File {
            type Value = StateIn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an hbd state file")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StateIn, A::Error> {
                let mut cx = Context::default();
                let (mut hosts, mut alerts, mut silences, mut silence_held) = (None, None, None, None);
                let (mut stores, mut latency) = (None, None);
                // `plugins` and `latency` of a file whose keys another
                // program reordered (sorted, say): parsed whole, read last.
                let (mut late_stores, mut late_latency) = (None, None);
                while let Some(key) = map.next_key::<std::borrow::Cow<str>>()? {
                    match &*key {
                        "version" => cx.version = Some(map.next_value()?),
                        "hosts" => hosts = Some(map.next_value::<Vec<Host>>()?),
                        "alerts" => alerts = Some(map.next_value()?),
                        "silences" => silences = Some(map.next_value()?),
                        "silence_held" => silence_held = Some(map.next_value()?),
                        "layouts" => {
                            let shapes: Vec<Vec<Shape>> = map.next_value()?;
                            cx.shapes = Some(shapes.into_iter().map(|shape| cx.layouts.layout(shape)).collect());
                        }
                        "plugins" if cx.ready() => {
                            let names = hosts.as_deref().unwrap_or_default();
                            stores = Some(map.next_value_seed(Each { cx: &mut cx, hosts: names, item: StoreIn })?);
                        }
                        "latency" if cx.ready() => {
                            let names = hosts.as_deref().unwrap_or_default();
                            latency = Some(map.next_value_seed(Each { cx: &mut cx, hosts: names, item: LatencyIn })?);
                        }
                        "plugins" => late_stores = Some(map.next_value::<serde_json::Value>()?),
                        "latency" => late_latency = Some(map.next_value::<serde_json::Value>()?),
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                let version = cx.version.ok_or_else(|| A::Error::missing_field("version"))?;
                let hosts = hosts.ok_or_else(|| A::Error::missing_field("hosts"))?;
                cx.shapes.get_or_insert_with(Vec::new);
                if let Some(late) = late_stores {
                    let each = Each { cx: &mut cx, hosts: &hosts, item: StoreIn };
                    stores = Some(each.deserialize(late).map_err(A::Error::custom)?);
                }
                if let Some(late) = late_latency {
                    let each = Each { cx: &mut cx, hosts: &hosts, item: LatencyIn };
                    latency = Some(each.deserialize(late).map_err(A::Error::custom)?);
                }
                Ok(StateIn {
                    version,
                    hosts,
                    alerts: alerts.unwrap_or_default(),
                    silences: silences.unwrap_or_default(),
                    silence_held: silence_held.unwrap_or_default(),
                    stores: stores.unwrap_or_default(),
                    latency: latency.unwrap_or_default(),
                    layouts: cx.layouts,
                    names: cx.names,
                })
            }
        }
        deserializer.deserialize_map(File)
    }
}

/// One host's part of `plugins` or `latency`, read into what the store keeps.
trait PerHost {
    type Value;
    fn read<'de, D: serde::Deserializer<'de>>(
        &self,
        cx: &mut Context,
        host: &str,
        d: D,
    ) -> Result<Self::Value, D::Error>;
}

/// `plugins` or `latency`: an array with an element per host.
struct Each<'a, T> {
    cx: &'a mut Context,
    hosts: &'a [Host],
    item: T,
}

impl<'de, T: PerHost> DeserializeSeed<'de> for Each<'_, T> {
    type Value = Vec<T::Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: PerHost> Visitor<'de> for Each<'_, T> {
    type Value = Vec<T::Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array with an element per host")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(self.hosts.len());
        loop {
            let host = self.hosts.get(out.len()).map_or("?", |h| h.name.as_str());
            let seed = One { cx: &mut *self.cx, host, item: &self.item };
            match seq.next_element_seed(seed)? {
                Some(value) => out.push(value),
                None => return Ok(out),
            }
        }
    }
}

struct One<'a, T> {
    cx: &'a mut Context,
    host: &'a str,
    item: &'a T,
}

impl<'de, T: PerHost> DeserializeSeed<'de> for One<'_, T> {
    type Value = T::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> {
        self.item.read(self.cx, self.host, d)
    }
}

/// A host's round trips: `[block, …]`.
struct LatencyIn;

impl PerHost for LatencyIn {
    type Value = History;
    fn read<'de, D: serde::Deserializer<'de>>(&self, cx: &mut Context, host: &str, d: D) -> Result<History, D::Error> {
        let blocks = Vec::<BlockIn>::deserialize(d)?;
        history_in(cx, blocks).map_err(|why| D::Error::custom(format!("host {host}: round trips: {why}")))
    }
}

/// A host's plugins: `{"<plugin>": {"kind", "latest" or "blocks"}, …}`.
struct StoreIn;

impl PerHost for StoreIn {
    type Value = Plugins;
    fn read<'de, D: serde::Deserializer<'de>>(&self, cx: &mut Context, host: &str, d: D) -> Result<Plugins, D::Error> {
        struct Map<'a> {
            cx: &'a mut Context,
            host: &'a str,
        }
        impl<'de> Visitor<'de> for Map<'_> {
            type Value = Plugins;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a host's plugins by name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Plugins, A::Error> {
                let Map { cx, host } = self;
                cx.scratch.clear();
                while let Some(name) = map.next_key_seed(NameIn(&mut cx.names))? {
                    let plugin: PluginIn = map.next_value()?;
                    let damaged = |why: String| A::Error::custom(format!("host {host}: plugin {name}: {why}"));
                    let series = match (plugin.kind, plugin.latest) {
                        (PluginKind::Info, Some(sample)) => {
                            info_series(&mut cx.layouts, &sample).ok_or_else(|| damaged("sample not stored".into()))?
                        }
                        (PluginKind::Info, None) => return Err(damaged("an info plugin without a sample".into())),
                        (PluginKind::Monitor, _) => Series::Monitor(history_in(cx, plugin.blocks).map_err(damaged)?),
                    };
                    cx.scratch.push((name, series));
                }
                Ok(Plugins::from_entries(cx.scratch.drain(..)))
            }
        }
        d.deserialize_map(Map { cx, host })
    }
}

#[derive(Deserialize)]
struct PluginIn {
    kind: PluginKind,
    #[serde(default)]
    latest: Option<Sample>,
    #[serde(default)]
    blocks: Vec<BlockIn>,
}

/// A plugin's name, shared with every host that has the plugin.
struct NameIn<'a>(&'a mut Names);

impl<'de> DeserializeSeed<'de> for NameIn<'_> {
    type Value = Arc<str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Arc<str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for NameIn<'_> {
    type Value = Arc<str>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a plugin name")
    }
    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Arc<str>, E> {
        Ok(self.0.name(name))
    }
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
                        saved.alerts.iter().map(|list| list.len()).sum::<usize>(),
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
        while let Ok(msg) = inbox.recv() {
            // Only the newest snapshot matters.
            let (mut snapshot, mut last) = msg.into_parts();
            while let Ok(newer) = inbox.try_recv() {
                (snapshot, last) = newer.into_parts();
            }
            let started = std::time::Instant::now();
            // The final save uses every core: nothing else runs by then,
            // and it is what SIGTERM waits for. A periodic one leaves the
            // other cores to monitoring.
            let workers = if last { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { 1 };
            match write_state(&path, snapshot, workers, last) {
                // How long a save takes is what tells whether state_save_interval suits the fleet.
                Ok(n) => log::debug!(
                    "state: saved {n} hosts to {} in {:.3} s",
                    path.display(),
                    started.elapsed().as_secs_f64()
                ),
                // The final save comes next, and replaces it.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    info!("state: save {} given up: {e}", path.display())
                }
                Err(e) => error!("state: save {}: {e}", path.display()),
            }
            if !last {
                crate::memory::return_free_heap();
            }
        }
    })
}

/// Hosts in one piece of the file: about 2 MiB of it with full histories.
const HOSTS_PER_PIECE: usize = 256;
/// Alerts in one piece of the file (at least; a host's are not split): about 1 MiB.
const ALERTS_PER_PIECE: usize = 4096;

/// Writes `snapshot` to `path` (atomically, see [`write_atomically`]); the
/// number of hosts written. The file is cut into pieces ([`Piece`]) that
/// `workers` threads serialize into buffers while this one writes them out
/// in order: at 100,000 hosts the file is 700 MiB, and on one core its
/// serialization alone took most of the 7 s that SIGTERM waited. Memory
/// stays bounded: each worker has two buffers, which come back to it once
/// written. A piece of hosts gets their records when it is serialized
/// ([`Records`]), and lets them go when done.
///
/// `last` (the final save): the records are not freed, since the process
/// exits next and the kernel takes its pages back at once (freeing 100,000
/// records one by one took most of a second of the wait for SIGTERM).
fn write_state(path: &Path, snapshot: Snapshot, workers: usize, last: bool) -> io::Result<usize> {
    let Snapshot { alerts, silences, silence_held, mut records } = snapshot;
    match &mut records {
        Records::Taken(records) => records.sort_unstable_by(|a, b| a.host.name.cmp(&b.host.name)),
        // Here rather than in core, which answers queries meanwhile.
        Records::Asked(from_core) => from_core.names.sort_unstable(),
    }
    let file = FileOut::new(&silences, &silence_held, &records);
    let hosts = file.hosts();
    let pieces = file.pieces(alerts);
    let count = pieces.len();
    let mut lane_pieces: Vec<Vec<Piece>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, piece) in pieces.into_iter().enumerate() {
        lane_pieces[i % workers].push(piece);
    }
    let written = write_atomically(path, |out| {
        std::thread::scope(|scope| {
            let mut lanes = Vec::with_capacity(workers);
            for pieces in lane_pieces {
                let (filled_tx, filled) = bounded::<io::Result<Vec<u8>>>(1);
                let (emptied, empty_rx) = bounded::<Vec<u8>>(2);
                for _ in 0..2 {
                    let _ = emptied.send(Vec::new());
                }
                let file = &file;
                std::thread::Builder::new().name("state-json".into()).spawn_scoped(scope, move || {
                    for piece in pieces {
                        // Closed: the writer has stopped (a write failed).
                        let Ok(mut buf) = empty_rx.recv() else { return };
                        buf.clear();
                        let done = file.write(&piece, &mut buf).map(|()| buf);
                        if last {
                            std::mem::forget(piece);
                        }
                        let failed = done.is_err();
                        if filled_tx.send(done).is_err() || failed {
                            return;
                        }
                    }
                })?;
                lanes.push((filled, emptied));
            }
            for i in 0..count {
                let (filled, emptied) = &lanes[i % workers];
                let buf = filled.recv().map_err(|_| io::Error::other("a serializing thread ended early"))??;
                out.write_all(&buf)?;
                let _ = emptied.send(buf);
            }
            Ok(())
        })
    });
    drop(file);
    if last {
        std::mem::forget(records);
    }
    written.map(|()| hosts)
}

/// A snapshot as the file has it (but its alerts, which its pieces hold):
/// layouts numbered.
struct FileOut<'a> {
    silences: &'a [Silence],
    silence_held: &'a [Held],
    /// Sorted by host name.
    records: &'a Records,
    /// Held here: a layout is let go with the last block that has it, and
    /// its address must not be taken by another during the save.
    layouts: Vec<Arc<Layout>>,
    /// By address (`Arc::as_ptr` as usize): one layout is shared by every block that has it.
    layout_ids: HashMap<usize, usize>,
}

/// One piece of the file, serialized on its own; together, in order, they
/// are `{"version":3,"saved_at":…,"silences":[…],"silence_held":[…],
/// "layouts":[…],"alerts":[…],"hosts":[…],"latency":[…],"plugins":[…]}`.
enum Piece {
    /// Everything up to the alerts' `[`.
    Head,
    /// Hosts' alert lists, the first of its alerts the `start`th in the
    /// file. Each list is let go once written: core copies a list that
    /// changes while the snapshot holds it, and one changes with nearly
    /// every sample (the value an alert last saw). Held to the end of the
    /// save, at 100,000 hosts those copies left 57–76 MiB of holes in
    /// core's heap after a fill.
    Alerts {
        start: usize,
        lists: Vec<Arc<Vec<Alert>>>,
    },
    /// The file's hosts in the range (by index), in one of the members
    /// that have an item per host.
    Hosts(Member, Range<usize>),
    Text(&'static str),
}

/// The members of the file with an item per host.
#[derive(Clone, Copy)]
enum Member {
    Hosts,
    Latency,
    Plugins,
}

impl<'a> FileOut<'a> {
    fn new(silences: &'a [Silence], silence_held: &'a [Held], records: &'a Records) -> FileOut<'a> {
        let layouts = match records {
            Records::Taken(records) => {
                let mut seen = HashSet::new();
                let histories = records.iter().flat_map(|record| {
                    record.plugins.iter().map(|(_, series)| series.history()).chain([&record.latency])
                });
                let blocks = histories.flat_map(|history| history.blocks());
                blocks
                    .filter(|block| seen.insert(Arc::as_ptr(&block.layout)))
                    .map(|block| block.layout.clone())
                    .collect()
            }
            Records::Asked(from_core) => from_core.layouts.clone(),
        };
        let layout_ids = layouts.iter().enumerate().map(|(id, layout)| (Arc::as_ptr(layout) as usize, id)).collect();
        FileOut { silences, silence_held, records, layouts, layout_ids }
    }

    fn hosts(&self) -> usize {
        match self.records {
            Records::Taken(records) => records.len(),
            Records::Asked(from_core) => from_core.names.len(),
        }
    }

    /// The records of the file's hosts in `range`: a periodic save's asked
    /// from core now (so core shares each only while its piece is
    /// serialized).
    fn records(&self, range: Range<usize>) -> io::Result<Cow<'a, [Arc<Record>]>> {
        let from_core = match self.records {
            Records::Taken(records) => return Ok(Cow::Borrowed(&records[range])),
            Records::Asked(from_core) => from_core,
        };
        let ended = || io::Error::new(io::ErrorKind::Interrupted, "hbd is stopping (core has ended)");
        let (reply, answer) = bounded(1);
        let names = from_core.names.get(range.clone()).unwrap_or_default().to_vec();
        from_core.asks.send(RecordsWanted { names, reply }).map_err(|_| ended())?;
        let records = answer.recv().map_err(|_| ended())?;
        if records.len() != range.len() {
            let error = format!("core had {} of the {} hosts asked for, {range:?}", records.len(), range.len());
            return Err(io::Error::other(error));
        }
        Ok(Cow::Owned(records))
    }

    /// The file's pieces, `alerts` (one list per host, as core keeps them:
    /// by host, then plugin and metric) handed to the pieces that write them.
    fn pieces(&self, alerts: Vec<Arc<Vec<Alert>>>) -> Vec<Piece> {
        let hosts = self.hosts();
        let per_host = |member| {
            (0..hosts).step_by(HOSTS_PER_PIECE).map(move |i| Piece::Hosts(member, i..(i + HOSTS_PER_PIECE).min(hosts)))
        };
        let mut pieces = vec![Piece::Head];
        let (mut start, mut lists, mut count) = (0, Vec::new(), 0);
        for list in alerts {
            count += list.len();
            lists.push(list);
            if count - start >= ALERTS_PER_PIECE {
                pieces.push(Piece::Alerts { start, lists: std::mem::take(&mut lists) });
                start = count;
            }
        }
        pieces.push(Piece::Alerts { start, lists });
        pieces.push(Piece::Text("],\"hosts\":["));
        pieces.extend(per_host(Member::Hosts));
        pieces.push(Piece::Text("],\"latency\":["));
        pieces.extend(per_host(Member::Latency));
        pieces.push(Piece::Text("],\"plugins\":["));
        pieces.extend(per_host(Member::Plugins));
        pieces.push(Piece::Text("]}\n"));
        pieces
    }

    fn write(&self, piece: &Piece, out: &mut Vec<u8>) -> io::Result<()> {
        match piece {
            Piece::Head => {
                write!(out, "{{\"version\":{FORMAT_VERSION},\"saved_at\":")?;
                serde_json::to_writer(&mut *out, &unix_seconds(SystemTime::now()))?;
                out.extend_from_slice(b",\"silences\":");
                serde_json::to_writer(&mut *out, self.silences)?;
                out.extend_from_slice(b",\"silence_held\":");
                serde_json::to_writer(&mut *out, self.silence_held)?;
                out.extend_from_slice(b",\"layouts\":");
                let shapes: Vec<&[Shape]> = self.layouts.iter().map(|layout| layout.shape()).collect();
                serde_json::to_writer(&mut *out, &shapes)?;
                out.extend_from_slice(b",\"alerts\":[");
            }
            Piece::Alerts { start, lists } => {
                for (i, alert) in (*start..).zip(lists.iter().flat_map(|list| list.iter())) {
                    comma_before(out, i);
                    serde_json::to_writer(&mut *out, alert)?;
                }
            }
            Piece::Hosts(member, range) => {
                let records = self.records(range.clone())?;
                for (i, record) in range.clone().zip(records.iter()) {
                    comma_before(out, i);
                    match member {
                        Member::Hosts => serde_json::to_writer(&mut *out, &record.host)?,
                        Member::Latency => self.write_blocks(&record.latency, out),
                        Member::Plugins => self.write_plugins(record, out)?,
                    }
                }
            }
            Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
        }
        Ok(())
    }

    /// `{"<plugin>":{"kind":"info","latest":<sample>}` or
    /// `{"kind":"monitor","blocks":[…]}, …}`.
    fn write_plugins(&self, record: &Record, out: &mut Vec<u8>) -> io::Result<()> {
        out.push(b'{');
        let mut first = true;
        for (name, series) in record.plugins.iter() {
            let latest = match series {
                // (None only if its block did not decode: left out.)
                Series::Info(history) => match history.newest(1).pop() {
                    Some(sample) => Some(sample),
                    None => continue,
                },
                Series::Monitor(_) => None,
            };
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, &**name)?;
            match latest {
                Some(sample) => {
                    out.extend_from_slice(b":{\"kind\":\"info\",\"latest\":");
                    serde_json::to_writer(&mut *out, &sample)?;
                }
                None => {
                    out.extend_from_slice(b":{\"kind\":\"monitor\",\"blocks\":");
                    self.write_blocks(series.history(), out);
                }
            }
            out.push(b'}');
        }
        out.push(b'}');
        Ok(())
    }

    /// `[[layout, rows, "<bytes in base64>"], …]`: base64 needs no JSON
    /// escaping, so it is written straight into the buffer.
    fn write_blocks(&self, history: &History, out: &mut Vec<u8>) {
        out.push(b'[');
        // A block with a layout new since the save started holds only
        // newer samples: left out (see `RecordsFromCore::layouts`).
        let known = history
            .blocks()
            .filter_map(|block| Some((self.layout_ids.get(&(Arc::as_ptr(&block.layout) as usize))?, block)));
        for (i, (id, block)) in known.enumerate() {
            comma_before(out, i);
            let _ = write!(out, "[{id},{},\"", block.chunk.rows());
            push_base64(out, block.chunk.bytes());
            out.extend_from_slice(b"\"]");
        }
        out.push(b']');
    }
}

fn comma_before(out: &mut Vec<u8>, index: usize) {
    if index > 0 {
        out.push(b',');
    }
}

/// A history's blocks as a file has them.
fn history_in(cx: &Context, blocks: Vec<BlockIn>) -> Result<History, String> {
    let v2 = cx.v2();
    let mut history = History::default();
    for (id, rows, Base64In(bytes)) in blocks {
        let shapes = cx.shapes.as_deref().unwrap_or_default();
        let layout = shapes.get(id).ok_or_else(|| format!("layout {id} is not among the {} layouts", shapes.len()))?;
        let bytes = bytes.ok_or("a block that is not base64")?;
        let block = Block::from_parts(layout.clone(), rows, bytes, v2).map_err(|_| "a damaged block")?;
        history.push_block(block).map_err(|_| "a damaged block")?;
    }
    Ok(history)
}

/// The records of a file read: version 3 and 2 as read, version 1 sample by
/// sample into the store.
fn restore(state: StateIn) -> Result<Saved, String> {
    let StateIn { version, hosts: hosts_in, stores, latency, mut layouts, mut names, .. } = state;
    if version != FORMAT_V1 && stores.len() != hosts_in.len() {
        return Err(format!("{} hosts but {} plugin stores", hosts_in.len(), stores.len()));
    }
    let mut stores = stores.into_iter();
    let mut latencies = latency.into_iter();
    let mut hosts = Vec::with_capacity(hosts_in.len());
    for mut host in hosts_in {
        // Version 3 keeps them as blocks; older files as numbers in `hosts`.
        let points: Vec<[f64; 2]> = std::mem::take(&mut host.latency_history).into();
        let latency = match latencies.next() {
            Some(history) if points.is_empty() => history,
            _ => History::from_numbers(&mut layouts, &points)
                .map_err(|_| format!("host {}: damaged round trips", host.name))?,
        };
        let mut plugins = stores.next().unwrap_or_default();
        for (name, old) in std::mem::take(&mut host.plugins) {
            plugins.insert(names.name(&name), convert_v1(&mut layouts, old.kind, old.samples.into()));
        }
        hosts.push(Arc::new(Record { host, plugins, latency }));
    }
    let alerts = vec![Arc::new(state.alerts)];
    Ok(Saved { hosts, alerts, silences: state.silences, silence_held: state.silence_held })
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

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends `bytes` as standard base64 (RFC 4648, padded).
fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len().div_ceil(3) * 4);
    let mut groups = bytes.chunks_exact(3);
    for g in &mut groups {
        let n = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        out.extend_from_slice(&[0, 6, 12, 18].map(|shift| B64[(n >> (18 - shift) & 63) as usize]));
    }
    let rest = groups.remainder();
    if !rest.is_empty() {
        let n = rest.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= rest.len() { B64[(n >> (18 - 6 * i) & 63) as usize] } else { b'=' });
        }
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
    use crate::server::model::{Json, Level, Status};
    use crate::server::msg::RecordsFromCore;

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
        tx.send(StateMsg::Save(Snapshot::from(Saved {
            silences: vec![silence.clone()],
            silence_held: held.clone(),
            ..Saved::default()
        })))
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
            Arc::new(Record { host: host(name), plugins: Default::default(), latency })
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

    /// Hosts enough for three pieces, each with a monitor plugin, an info
    /// plugin and round trips, named in the order they come.
    fn hosts_of_three_pieces(layouts: &mut Layouts) -> Vec<Arc<Record>> {
        let sample = |i: usize, data: String| Sample {
            at: 1000.0 + i as f64,
            received: 1000.5 + i as f64,
            data: Some(Json::from(Arc::<str>::from(data))),
            error: None,
        };
        (0..2 * HOSTS_PER_PIECE + 7)
            .map(|h| {
                let mut monitor = History::default();
                for i in 0..5 {
                    let data = format!("{{\"load\":{}.25,\"name\":\"cpu \\\"{h}\\\"\"}}", i * h);
                    monitor.push_sample(layouts, 50, &sample(i, data)).unwrap();
                }
                let mut info = History::default();
                info.push_sample(layouts, 1, &sample(0, format!("{{\"os\":\"é{h}\"}}"))).unwrap();
                let mut plugins = Plugins::default();
                plugins.insert("cpu_monitor".into(), Series::Monitor(monitor));
                plugins.insert("os_info".into(), Series::Info(info));
                let mut latency = History::default();
                latency.push_number(layouts, 50, 1.5, h as f64 / 8.0).unwrap();
                Arc::new(Record { host: host(&format!("h{h:04}")), plugins, latency })
            })
            .collect()
    }

    /// A file of several pieces reads back whole, and is the same whether
    /// one thread serialized its pieces or several did.
    #[test]
    fn pieces_made_on_several_threads_make_the_same_file() {
        let d = dir("pieces");
        let path = d.join("s.json");
        let hosts = hosts_of_three_pieces(&mut Layouts::default());
        let saved = Saved { hosts: hosts.iter().rev().cloned().collect(), ..Saved::default() };
        let file_of = |workers| {
            write_state(&path, saved.clone().into(), workers, false).unwrap();
            let mut file: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            file.as_object_mut().unwrap().remove("saved_at");
            file
        };
        assert_eq!(file_of(1), file_of(3));
        assert_eq!(load(&path).hosts, hosts);
        // Its keys sorted by another program (`plugins` and `latency` now
        // before `layouts` and `version`): the same hosts.
        let sorted = file_of(1);
        let keys: Vec<&str> = sorted.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["alerts", "hosts", "latency", "layouts", "plugins", "silence_held", "silences", "version"]);
        fs::write(&path, sorted.to_string()).unwrap();
        assert_eq!(load(&path).hosts, hosts);
        fs::remove_dir_all(d).unwrap();
    }

    /// A periodic save of `hosts` whose blocks have `layouts`, with
    /// `alerts`, and a thread that stands in for core: it answers the
    /// save's asks until it has given `answers`, then ends (as core does at
    /// shutdown). It gives the writer the names in reverse, which it must
    /// sort. It returns how many hosts each ask was for, and whether the
    /// writer held no alert list by its first ask.
    fn save_asking(
        hosts: Vec<Arc<Record>>,
        layouts: Vec<Arc<Layout>>,
        alerts: Vec<Arc<Vec<Alert>>>,
        answers: usize,
    ) -> (Snapshot, JoinHandle<(Vec<usize>, bool)>) {
        let (asks, asked) = bounded::<RecordsWanted>(0);
        let names = hosts.iter().rev().map(|record| record.host.name.clone()).collect();
        let from_core = RecordsFromCore { names, layouts, asks };
        let cores_alerts = alerts.clone();
        let core = std::thread::spawn(move || {
            let table: HashMap<&str, &Arc<Record>> = hosts.iter().map(|r| (r.host.name.as_str(), r)).collect();
            let mut alerts_let_go = None;
            let answer = |ask: RecordsWanted| {
                alerts_let_go.get_or_insert_with(|| cores_alerts.iter().all(|list| Arc::strong_count(list) == 1));
                let records = ask.names.iter().filter_map(|name| table.get(name.as_str()).map(|r| Arc::clone(r)));
                let _ = ask.reply.send(records.collect());
                ask.names.len()
            };
            let pieces = asked.iter().take(answers).map(answer).collect();
            (pieces, alerts_let_go.unwrap_or(false))
        });
        let snapshot =
            Snapshot { alerts, silences: Vec::new(), silence_held: Vec::new(), records: Records::Asked(from_core) };
        (snapshot, core)
    }

    /// `n` alerts for each of `hosts`, one list per host as core keeps them.
    fn alert_lists(hosts: &[Arc<Record>], n: usize) -> Vec<Arc<Vec<Alert>>> {
        let alert = |host: &str, i: usize| Alert {
            key: crate::server::model::AlertKey::new(host, "disk_monitor", &format!("p{i:02}.percent")),
            level: Level::Warning,
            last_value: Some(i as f64),
            threshold: Some(85.0),
            since: 1.0,
            last_notified: 1.0,
            warning: Some(85.0),
            critical: None,
            message: format!("WARNING: {host} p{i:02}"),
            pending: None,
            held: false,
            acknowledged: None,
            behind: None,
            silenced: None,
        };
        hosts.iter().map(|r| Arc::new((0..n).map(|i| alert(&r.host.name, i)).collect())).collect()
    }

    /// A periodic save asks core for its records a piece at a time, and
    /// its file reads back as the one written from records taken. A block
    /// with a layout new since the save started is left out; a save whose
    /// core ends before it is done is given up, and the file stays as it
    /// was.
    #[test]
    fn a_periodic_save_asks_core_for_its_records_a_piece_at_a_time() {
        let d = dir("asked");
        let path = d.join("s.json");
        let mut layouts = Layouts::default();
        let hosts = hosts_of_three_pieces(&mut layouts);
        let asked = |answers| {
            // More than a piece of alerts.
            let alerts = alert_lists(&hosts, 10);
            let (snapshot, core) = save_asking(hosts.clone(), layouts.in_use(), alerts, answers);
            (write_state(&path, snapshot, 1, false), core.join().unwrap())
        };
        let (written, (pieces, alerts_let_go)) = asked(usize::MAX);
        assert_eq!(written.unwrap(), hosts.len());
        assert!(pieces.iter().all(|&n| n <= HOSTS_PER_PIECE), "{pieces:?}");
        assert_eq!(pieces.iter().sum::<usize>(), 3 * hosts.len(), "hosts, latency and plugins");
        assert!(alerts_let_go, "each alert list let go once written, before the hosts");
        let loaded = load(&path);
        assert_eq!(loaded.hosts, hosts);
        let alerts = alert_lists(&hosts, 10).iter().flat_map(|list| list.iter().cloned()).collect();
        assert_eq!(loaded.alerts, [Arc::new(alerts)]);

        let before = fs::read(&path).unwrap();
        let (written, _) = asked(4);
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::Interrupted);
        assert_eq!(fs::read(&path).unwrap(), before, "the file as it was");
        assert!(!temp_path(&path).exists());

        // A sample of a new shape after the save started: a new block, with a
        // layout the save's list does not have.
        let mut changed = (*hosts[0]).clone();
        let sample = Sample {
            at: 2000.0,
            received: 2000.5,
            data: Some(Json::from(Arc::<str>::from(r#"{"new":1}"#))),
            error: None,
        };
        let Some(Series::Monitor(history)) = changed.plugins.get("cpu_monitor") else { panic!("no cpu_monitor") };
        let mut history = history.clone();
        history.push_sample(&mut Layouts::default(), 50, &sample).unwrap();
        changed.plugins.insert("cpu_monitor".into(), Series::Monitor(history));
        let (snapshot, core) = save_asking(vec![Arc::new(changed)], layouts.in_use(), Vec::new(), usize::MAX);
        write_state(&path, snapshot, 1, false).unwrap();
        core.join().unwrap();
        assert_eq!(load(&path).hosts, hosts[..1], "without the sample of the new shape");
        fs::remove_dir_all(d).unwrap();
    }

    /// Saves `hosts` to `path` through the state thread.
    fn tx_save(path: &Path, hosts: Vec<Arc<Record>>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let handle = spawn(path.to_path_buf(), rx).unwrap();
        tx.send(StateMsg::Save(Snapshot::from(Saved { hosts, ..Saved::default() }))).unwrap();
        drop(tx);
        handle.join().unwrap();
    }

    #[test]
    fn base64_round_trips_and_refuses_what_is_not() {
        for len in 0..70usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let mut text = Vec::new();
            push_base64(&mut text, &bytes);
            let text = String::from_utf8(text).unwrap();
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
