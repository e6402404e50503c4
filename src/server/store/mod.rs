//! The plugin store: what hbd keeps of each plugin of each host, owned by
//! the core thread inside the host table (`core::table`), mutated by it
//! alone. A data module below the components (like `model`): core keeps
//! and changes it, `state` encodes and decodes its blocks, `http` decodes
//! the `Latest` blocks core hands it.
//!
//! A monitor plugin keeps its history as numbers, not text; an info plugin
//! keeps its latest sample the same way (a history of one). Each sample
//! is split into its *layout* (the shape of its data: object keys, array
//! lengths, where the leaves are) and its leaves (numbers, strings,
//! booleans, nulls), and the leaves go into a block of rows encoded by
//! [`series`] (delta-of-delta times, deltas of numbers, changes only of
//! everything else). Layouts are interned in [`Layouts`], so the metric
//! names of ten thousand hosts sending the same plugin are kept once.
//!
//! A block holds at most [`BLOCK_ROWS`] samples of one layout; a sample of
//! another layout (a key that came or went, a Nagios check that failed)
//! starts a new block. Blocks are shared by `Arc`, so a snapshot for the
//! state file copies pointers only; a block that changes while the state
//! writer still holds it is copied on write. A series keeps exactly
//! `plugin_history` samples: past that, the oldest block is encoded again
//! without its oldest sample (or dropped, when that was its last). With the
//! default of 50 a steady plugin is one block, held inline, and each new
//! sample encodes it again in one pass into the block's own buffer (grown,
//! to exactly its size, only when it must): hour after hour the heap then
//! holds the same blocks in the same places, instead of freeing and
//! allocating a block at every sample, which left it in pieces.
//!
//! Invariant: a sample read back is the sample that was stored: the same
//! times, and data that is the same JSON value (numbers equal as JSON
//! numbers, object keys in the same order, since hbd's JSON objects are
//! sorted maps).

pub mod series;

use std::borrow::Borrow;
use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::server::model::{Host, Json, PluginSeries, Sample};
use crate::wire::PluginKind;
use series::{Chunk, Corrupt, Num, Scalar};

/// Samples in a block at most. Each block starts with a full row (its key
/// frame), so longer blocks cost less per sample; but appending a sample
/// and trimming the oldest decode the whole block, so they take longer.
pub const BLOCK_ROWS: usize = 64;

/// One element of a layout, in document order. An object is followed by
/// its keys, each followed by its value; an array by its elements.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Obj(u32),
    Key(Box<str>),
    Arr(u32),
    /// A number, string, boolean or null: one column of the block.
    Leaf,
    /// A sample without data: one column holding the error text (or null).
    Error,
}

/// The shape of a sample's data, shared by every sample (of every host)
/// that has it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Box<[Shape]>,
}

impl Layout {
    pub fn shape(&self) -> &[Shape] {
        &self.shape
    }

    fn leaves(&self) -> usize {
        self.shape.iter().filter(|s| matches!(s, Shape::Leaf | Shape::Error)).count()
    }

    fn is_error(&self) -> bool {
        matches!(*self.shape, [Shape::Error])
    }
}

/// Values shared by `Arc` between hosts: layouts and plugin names. Unused
/// ones are forgotten when the set has doubled since the last look, so
/// changing keys or names cannot grow it forever.
#[derive(Debug)]
pub struct Interner<T: ?Sized> {
    set: HashSet<Arc<T>>,
    prune_at: usize,
}

impl<T: ?Sized> Default for Interner<T> {
    fn default() -> Self {
        Interner { set: HashSet::new(), prune_at: 0 }
    }
}

/// The interned layouts.
pub type Layouts = Interner<Layout>;
/// The interned plugin names.
pub type Names = Interner<str>;

impl<T: ?Sized + Eq + Hash> Interner<T> {
    /// The known value equal to `key`, or `make(key)`, kept from now on.
    pub fn intern<Q: ?Sized + Eq + Hash>(&mut self, key: &Q, make: impl FnOnce(&Q) -> Arc<T>) -> Arc<T>
    where
        Arc<T>: Borrow<Q>,
    {
        if let Some(known) = self.set.get(key) {
            return known.clone();
        }
        if self.set.len() >= self.prune_at {
            self.set.retain(|v| Arc::strong_count(v) > 1);
            self.prune_at = (self.set.len() * 2).max(64);
        }
        let value = make(key);
        self.set.insert(value.clone());
        value
    }

    /// Takes in a value read from a state file (keeps the known copy).
    pub fn adopt(&mut self, value: &mut Arc<T>) {
        *value = self.intern(&**value, |_| value.clone());
    }

    /// Every value something besides the set still holds.
    pub fn in_use(&self) -> Vec<Arc<T>> {
        self.set.iter().filter(|v| Arc::strong_count(v) > 1).cloned().collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.len()
    }
}

impl Layouts {
    pub fn layout(&mut self, shape: Vec<Shape>) -> Arc<Layout> {
        let layout = Layout { shape: shape.into_boxed_slice() };
        self.intern(&layout, |_| Arc::new(Layout { shape: layout.shape.clone() }))
    }
}

impl Names {
    pub fn name(&mut self, name: &str) -> Arc<str> {
        self.intern(name, |name| Arc::from(name))
    }
}

/// A host's plugins by name: a sorted vector, not a tree (a host has a
/// handful, and ten thousand trees cost a node each), the names shared
/// between hosts through [`Names`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plugins(Vec<(Arc<str>, Series)>);

impl Plugins {
    /// The plugins read back from a state file, in any order (the last of
    /// a name counts), in a list of their exact number.
    pub fn from_entries(entries: impl Iterator<Item = (Arc<str>, Series)>) -> Plugins {
        let mut list: Vec<(Arc<str>, Series)> = entries.collect();
        list.reverse();
        list.sort_by(|(a, _), (b, _)| a.cmp(b));
        list.dedup_by(|later, earlier| later.0 == earlier.0);
        list.shrink_to_fit();
        Plugins(list)
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| (**n).cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&Series> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// By name.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Series)> {
        self.0.iter().map(|(n, s)| (n, s))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&mut Arc<str>, &mut Series)> {
        self.0.iter_mut().map(|(n, s)| (n, s))
    }

    /// Room for `more` plugins at once: a host's first message brings
    /// all of them, and growing the list by one for each moved it once
    /// per plugin (five times a host, with hbc's plugins: valgrind's DHAT).
    pub fn reserve_exact(&mut self, more: usize) {
        self.0.reserve_exact(more);
    }

    /// The series of `name`, made by `make` when there is none (its name
    /// then taken from `names`). Grows by one: most hosts never add a plugin
    /// after their first message.
    pub fn get_or_insert_with(&mut self, names: &mut Names, name: &str, make: impl FnOnce() -> Series) -> &mut Series {
        let i = match self.find(name) {
            Ok(i) => i,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (names.name(name), make()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Sets the series of `name`.
    pub fn insert(&mut self, name: Arc<str>, series: Series) {
        match self.find(&name) {
            Ok(i) => self.0[i].1 = series,
            Err(i) => {
                // Exact growth: a host has a handful of plugins for good,
                // and doubling left room for as many again in every host.
                self.0.reserve_exact(1);
                self.0.insert(i, (name, series))
            }
        }
    }
}

/// Samples of one layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub layout: Arc<Layout>,
    pub chunk: Chunk,
}

impl Block {
    /// Shares the layout with equal ones the table already knows.
    pub fn adopt_layout(&mut self, layouts: &mut Layouts) {
        layouts.adopt(&mut self.layout);
    }

    /// A block read back from a state file (of version 2: `v2`): its bytes
    /// must decode.
    pub fn from_parts(layout: Arc<Layout>, rows: usize, bytes: Vec<u8>, v2: bool) -> Result<Block, Corrupt> {
        let chunk = if v2 {
            Chunk::from_v2_parts(layout.leaves(), rows, bytes)?
        } else {
            Chunk::from_parts(layout.leaves(), rows, bytes)?
        };
        Ok(Block { layout, chunk })
    }
}

/// What hbd keeps of one plugin of one host.
#[derive(Debug, Clone, PartialEq)]
pub enum Series {
    /// The latest sample (a history of one).
    Info(History),
    Monitor(History),
}

impl Series {
    pub fn new(kind: PluginKind) -> Series {
        match kind {
            PluginKind::Info => Series::Info(History::default()),
            PluginKind::Monitor => Series::Monitor(History::default()),
        }
    }

    pub fn kind(&self) -> PluginKind {
        match self {
            Series::Info(_) => PluginKind::Info,
            Series::Monitor(_) => PluginKind::Monitor,
        }
    }

    pub fn history(&self) -> &History {
        match self {
            Series::Info(history) | Series::Monitor(history) => history,
        }
    }

    pub fn history_mut(&mut self) -> &mut History {
        match self {
            Series::Info(history) | Series::Monitor(history) => history,
        }
    }

    /// How many samples this series keeps, `plugin_history` being `keep`.
    fn kept(&self, keep: usize) -> usize {
        match self {
            Series::Info(_) => 1,
            Series::Monitor(_) => keep,
        }
    }

    /// Stores a sample (`kept(keep)` of them are kept).
    pub fn push(
        &mut self,
        layouts: &mut Layouts,
        keep: usize,
        sample: &Sample,
        data: Option<&Value>,
    ) -> Result<(), Corrupt> {
        let keep = self.kept(keep);
        self.history_mut().push(layouts, keep, (sample.at, sample.received), data, sample.error.as_deref())
    }

    /// The newest `n` samples (at most `keep`), oldest first.
    pub fn newest(&self, n: usize, keep: usize) -> Vec<Sample> {
        self.history().newest(n.min(self.kept(keep)))
    }

    /// The interval its client declares for this plugin (None: it
    /// declares none, and the spacing of its samples is estimated).
    pub fn declare_interval(&mut self, interval: Option<f64>) {
        self.history_mut().spacing.declare(interval);
    }

    /// For a monitor plugin with two samples or more: when its last
    /// sample arrived and how far apart its samples are expected.
    pub fn expected(&self) -> Option<(f64, f64)> {
        match self {
            Series::Monitor(h) if h.rows >= 2 => Some((h.last_received, f64::from(h.spacing.expected))),
            _ => None,
        }
    }
}

/// How far apart a plugin's samples are expected: the interval its client
/// declares, or else the longest gap between samples in the last
/// `WINDOW` of them. A gap longer than the estimate raises it at once (a
/// slower plugin is never taken for a silent one); it comes down only at
/// the end of a window, to that window's longest gap, so a burst shorter
/// than a window (hbc's second sample for a baseline, a restart, a
/// sender that sends five samples half a second apart) cannot shrink it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Spacing {
    expected: f32,
    window_max: f32,
    in_window: u8,
    declared: bool,
}

impl Spacing {
    const WINDOW: u8 = 8;

    /// A gap between two samples, by whichever of the client's and hbd's
    /// clocks says it was longer (two samples can arrive together; they
    /// are not taken together).
    fn observe(&mut self, gap: f64) {
        if self.declared || !gap.is_finite() || gap < 0.0 {
            return;
        }
        let gap = gap as f32;
        self.expected = self.expected.max(gap);
        self.window_max = self.window_max.max(gap);
        self.in_window += 1;
        if self.in_window >= Self::WINDOW {
            self.expected = self.window_max;
            (self.window_max, self.in_window) = (0.0, 0);
        }
    }

    fn declare(&mut self, interval: Option<f64>) {
        match interval {
            Some(interval) => *self = Spacing { expected: interval as f32, declared: true, ..Spacing::default() },
            // The client stopped declaring it: estimate afresh.
            None if self.declared => *self = Spacing::default(),
            None => {}
        }
    }
}

/// A plugin's latest data as `/metrics` takes it out of the core thread:
/// its newest block, shared, not decoded there (the core hands over
/// pointers; the HTTP thread decodes).
#[derive(Debug, Clone)]
pub struct Latest(Arc<Block>);

/// Plugins' latest data: host name, plugin name, data.
pub type LatestData = Vec<(String, Arc<str>, Latest)>;

impl Latest {
    /// The data of the latest sample (None for an error sample).
    pub fn value(&self) -> Option<Value> {
        let Latest(block) = self;
        let mut last = None;
        let rows = block.chunk.rows();
        let mut index = 0;
        let decoded = block.chunk.decode(|_, _, leaves| {
            index += 1;
            if index == rows && !block.layout.is_error() {
                last = rebuild(&block.layout.shape, &mut 0, &mut leaves.iter());
            }
        });
        decoded.ok().and(last)
    }
}

impl Series {
    /// The latest sample's data, to be read by [`Latest::value`].
    pub fn latest(&self) -> Option<Latest> {
        self.history().blocks.as_slice().last().cloned().map(Latest)
    }
}

/// A history's blocks, oldest first: nearly always one, kept inline (a
/// `VecDeque` would be an allocation of its own for every plugin of every
/// host).
#[derive(Debug, Clone, PartialEq, Default)]
enum Blocks {
    #[default]
    None,
    One(Arc<Block>),
    Many(Vec<Arc<Block>>),
}

impl Blocks {
    fn as_slice(&self) -> &[Arc<Block>] {
        match self {
            Blocks::None => &[],
            Blocks::One(block) => std::slice::from_ref(block),
            Blocks::Many(blocks) => blocks,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Arc<Block>] {
        match self {
            Blocks::None => &mut [],
            Blocks::One(block) => std::slice::from_mut(block),
            Blocks::Many(blocks) => blocks,
        }
    }

    fn push(&mut self, block: Arc<Block>) {
        *self = match std::mem::take(self) {
            Blocks::None => Blocks::One(block),
            Blocks::One(first) => Blocks::Many(vec![first, block]),
            Blocks::Many(mut blocks) => {
                blocks.reserve_exact(1);
                blocks.push(block);
                Blocks::Many(blocks)
            }
        }
    }

    fn remove_oldest(&mut self) {
        *self = match std::mem::take(self) {
            Blocks::None | Blocks::One(_) => Blocks::None,
            Blocks::Many(mut blocks) => {
                blocks.remove(0);
                match <[_; 1]>::try_from(blocks) {
                    Ok([only]) => Blocks::One(only),
                    Err(blocks) => Blocks::Many(blocks),
                }
            }
        }
    }
}

/// A plugin's samples: blocks, oldest first; only the last grows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    blocks: Blocks,
    rows: usize,
    /// When the newest sample was received, and taken by the client's clock.
    last_received: f64,
    last_taken: f64,
    spacing: Spacing,
}

impl History {
    /// A history read back from a state file, oldest block first.
    pub fn from_blocks(blocks: Vec<Block>) -> Result<History, Corrupt> {
        let mut history = History::default();
        for block in blocks {
            history.push_block(block)?;
        }
        Ok(history)
    }

    /// Adds a block read back from a state file, after the others.
    pub fn push_block(&mut self, block: Block) -> Result<(), Corrupt> {
        self.rows += block.chunk.rows();
        block.chunk.decode(|at, received, _| self.note_times(at, received))?;
        self.blocks.push(Arc::new(block));
        Ok(())
    }

    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.as_slice().iter().map(|b| &**b)
    }

    /// Shares the blocks' layouts with equal ones the table already knows
    /// (a history read back from a state file).
    pub fn adopt_layouts(&mut self, layouts: &mut Layouts) {
        for block in self.blocks.as_mut_slice() {
            Arc::make_mut(block).adopt_layout(layouts);
        }
    }

    /// Notes when the newest sample was taken and received.
    fn note_times(&mut self, at: f64, received: f64) {
        if self.last_received > 0.0 {
            self.spacing.observe((at - self.last_taken).max(received - self.last_received));
        }
        (self.last_taken, self.last_received) = (at, received);
    }

    /// Stores a sample: `data`, or else the error text (or nothing).
    pub fn push(
        &mut self,
        layouts: &mut Layouts,
        keep: usize,
        sample: (f64, f64),
        data: Option<&Value>,
        error: Option<&str>,
    ) -> Result<(), Corrupt> {
        let (at, received) = sample;
        let mut leaves = Vec::new();
        match data {
            Some(value) => collect_leaves(value, &mut leaves),
            None => leaves.push(error.map_or(Scalar::Null, Scalar::Str)),
        }
        let keep = keep.max(1);
        let same_layout = |b: &Block| match data {
            Some(value) => matches_layout(&b.layout.shape, &mut 0, value),
            None => b.layout.is_error(),
        };
        if let [only] = self.blocks.as_mut_slice() {
            if self.rows >= keep && same_layout(only) {
                // The steady state: the oldest rows out and the new one in,
                // in the block's own buffer unless a reader holds it.
                let (excess, row) = (self.rows + 1 - keep, Some((at, received, &leaves[..])));
                match Arc::get_mut(only) {
                    Some(block) => block.chunk.shift(excess, row)?,
                    None => {
                        let chunk = only.chunk.rewritten(excess, row)?;
                        *only = Arc::new(Block { layout: only.layout.clone(), chunk });
                    }
                }
                self.rows = keep;
                self.note_times(at, received);
                return Ok(());
            }
        }
        let fits = self.blocks.as_slice().last().is_some_and(|b| b.chunk.rows() < BLOCK_ROWS && same_layout(b));
        if !fits {
            // (A block the state writer holds is left as it is, not copied.)
            if let Some(last) = self.blocks.as_mut_slice().last_mut().and_then(Arc::get_mut) {
                last.chunk.seal();
            }
            let mut shape = Vec::new();
            match data {
                Some(value) => build_layout(value, &mut shape),
                None => shape.push(Shape::Error),
            }
            let layout = layouts.layout(shape);
            self.blocks.push(Arc::new(Block { chunk: Chunk::new(layout.leaves()), layout }));
        }
        let Some(last) = self.blocks.as_mut_slice().last_mut() else { return Err(Corrupt) };
        Arc::make_mut(last).chunk.push(at, received, &leaves)?;
        self.rows += 1;
        self.note_times(at, received);
        while self.rows > keep {
            let Some(oldest) = self.blocks.as_mut_slice().first_mut() else { break };
            let excess = self.rows - keep;
            if oldest.chunk.rows() <= excess {
                self.rows -= oldest.chunk.rows();
                self.blocks.remove_oldest();
            } else {
                let chunk = oldest.chunk.rewritten(excess, None)?;
                *oldest = Arc::new(Block { layout: oldest.layout.clone(), chunk });
                self.rows = keep;
            }
        }
        Ok(())
    }

    /// Stores a sample as a state file or an older store held it: its data
    /// as JSON text.
    pub fn push_sample(&mut self, layouts: &mut Layouts, keep: usize, sample: &Sample) -> Result<(), Corrupt> {
        let data = sample.data.as_ref().and_then(|d| serde_json::from_str::<Value>(d.as_str()).ok());
        self.push(layouts, keep, (sample.at, sample.received), data.as_ref(), sample.error.as_deref())
    }

    /// Stores one number taken at `at` (a host's round trip): a history of
    /// a one-leaf layout, so a few bytes a sample instead of sixteen.
    pub fn push_number(&mut self, layouts: &mut Layouts, keep: usize, at: f64, value: f64) -> Result<(), Corrupt> {
        self.push(layouts, keep, (at, at), Some(&Value::from(value)), None)
    }

    /// A history of numbers read back from a state file, `[at, value]`
    /// oldest first: encoded block by block in one pass (pushing them one
    /// by one would decode each block once per number).
    pub fn from_numbers(layouts: &mut Layouts, points: &[[f64; 2]]) -> Result<History, Corrupt> {
        let layout = layouts.layout(vec![Shape::Leaf]);
        let mut blocks = Vec::with_capacity(points.len().div_ceil(BLOCK_ROWS));
        for rows in points.chunks(BLOCK_ROWS) {
            let numbers: Vec<Value> = rows.iter().map(|[_, v]| Value::from(*v)).collect();
            let mut chunk = Chunk::new(1);
            chunk.extend(rows.iter().zip(&numbers).map(|([at, _], value)| {
                let mut leaves = Vec::with_capacity(1);
                collect_leaves(value, &mut leaves);
                (*at, *at, leaves)
            }))?;
            blocks.push(Block { layout: layout.clone(), chunk });
        }
        History::from_blocks(blocks)
    }

    /// What [`History::push_number`] stored, `[at, value]`, oldest first.
    pub fn numbers(&self) -> VecDeque<[f64; 2]> {
        let samples = self.newest(self.rows).into_iter();
        samples.filter_map(|s| Some([s.at, s.data?.as_str().parse().ok()?])).collect()
    }

    /// The newest `n` samples, oldest first. A block that does not decode
    /// (which only a bug could cause) is left out rather than failing all.
    pub fn newest(&self, n: usize) -> Vec<Sample> {
        let mut skip = self.rows.saturating_sub(n);
        let mut out = Vec::with_capacity(n.min(self.rows));
        for block in self.blocks.as_slice() {
            let rows = block.chunk.rows();
            if skip >= rows {
                skip -= rows;
                continue;
            }
            let mut index = 0;
            let decoded = block.chunk.decode(|at, received, leaves| {
                if index >= skip {
                    out.push(row_sample(&block.layout, at, received, leaves));
                }
                index += 1;
            });
            if decoded.is_err() {
                log::warn!("core: a block of plugin history does not decode; left out");
            }
            skip = 0;
        }
        out
    }
}

fn row_sample(layout: &Layout, at: f64, received: f64, leaves: &[Scalar]) -> Sample {
    if layout.is_error() {
        let error = match leaves.first() {
            Some(Scalar::Str(s)) => Some(s.to_string()),
            _ => None,
        };
        return Sample { at, received, data: None, error };
    }
    let mut leaves = leaves.iter();
    let value = rebuild(&layout.shape, &mut 0, &mut leaves).unwrap_or(Value::Null);
    Sample { at, received, data: Some(Json::from(Arc::<str>::from(value.to_string()))), error: None }
}

/// The leaves of `value` in document order.
fn collect_leaves<'a>(value: &'a Value, out: &mut Vec<Scalar<'a>>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| collect_leaves(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_leaves(v, out)),
        Value::Number(n) => out.push(Scalar::Num(Num::from_json(n))),
        Value::String(s) => out.push(Scalar::Str(s)),
        Value::Bool(b) => out.push(Scalar::Bool(*b)),
        Value::Null => out.push(Scalar::Null),
    }
}

fn build_layout(value: &Value, out: &mut Vec<Shape>) {
    match value {
        Value::Object(map) => {
            out.push(Shape::Obj(map.len() as u32));
            for (key, v) in map {
                out.push(Shape::Key(key.as_str().into()));
                build_layout(v, out);
            }
        }
        Value::Array(items) => {
            out.push(Shape::Arr(items.len() as u32));
            items.iter().for_each(|v| build_layout(v, out));
        }
        _ => out.push(Shape::Leaf),
    }
}

/// Whether `value` has the layout `shape` (from `pos` on): checked without
/// building a layout, since nearly every sample has its block's.
fn matches_layout(shape: &[Shape], pos: &mut usize, value: &Value) -> bool {
    let Some(head) = shape.get(*pos) else { return false };
    *pos += 1;
    match (head, value) {
        (Shape::Obj(n), Value::Object(map)) if *n as usize == map.len() => map.iter().all(|(key, v)| {
            let same_key = matches!(shape.get(*pos), Some(Shape::Key(k)) if **k == **key);
            *pos += 1;
            same_key && matches_layout(shape, pos, v)
        }),
        (Shape::Arr(n), Value::Array(items)) if *n as usize == items.len() => {
            items.iter().all(|v| matches_layout(shape, pos, v))
        }
        (Shape::Leaf, v) => !v.is_object() && !v.is_array(),
        _ => false,
    }
}

fn rebuild<'a>(shape: &[Shape], pos: &mut usize, leaves: &mut impl Iterator<Item = &'a Scalar<'a>>) -> Option<Value> {
    let head = shape.get(*pos)?;
    *pos += 1;
    Some(match head {
        Shape::Obj(n) => {
            let mut map = Map::new();
            for _ in 0..*n {
                let Shape::Key(key) = shape.get(*pos)? else { return None };
                *pos += 1;
                let value = rebuild(shape, pos, leaves)?;
                map.insert(key.to_string(), value);
            }
            Value::Object(map)
        }
        Shape::Arr(n) => Value::Array((0..*n).map(|_| rebuild(shape, pos, leaves)).collect::<Option<_>>()?),
        Shape::Key(_) => return None,
        Shape::Leaf | Shape::Error => match leaves.next()? {
            Scalar::Num(n) => n.to_json().map_or(Value::Null, Value::Number),
            Scalar::Str(s) => Value::String(s.to_string()),
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Null => Value::Null,
        },
    })
}

/// One host as the table keeps it: what it knows of the host (its
/// `plugins` and `latency_history` always empty), its plugin store and its
/// round trips, `[when, ms]` (in the store's encoding: a few bytes each).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub host: Host,
    pub plugins: Plugins,
    pub latency: History,
}

impl Record {
    /// The host with each plugin's newest `keep` samples (at most
    /// `history`, the configured `plugin_history`).
    pub fn view(&self, keep: usize, history: usize) -> Host {
        // Without the latency history: only the single-host query shows it.
        let mut host = self.host.with_newest(0);
        host.plugins = self
            .plugins
            .iter()
            .map(|(name, series)| {
                let samples = series.newest(keep, history).into();
                (name.to_string(), PluginSeries { kind: series.kind(), samples })
            })
            .collect();
        host
    }
}

#[cfg(test)]
mod tests {
    use super::series::tests::XorShift;
    use super::*;
    use serde_json::json;

    fn store(history: &mut History, layouts: &mut Layouts, keep: usize, samples: &[Value]) {
        for (i, data) in samples.iter().enumerate() {
            history.push(layouts, keep, (i as f64 + 0.5, 1000.0 + i as f64), Some(data), None).unwrap();
        }
    }

    fn data_of(samples: &[Sample]) -> Vec<Value> {
        samples.iter().map(|s| serde_json::from_str(s.data.as_ref().unwrap().as_str()).unwrap()).collect()
    }

    #[test]
    fn hostile_shapes_round_trip() {
        let samples = vec![
            json!({"a": 1, "b": {"c": [1, 2.5, "x", null, true]}}),
            json!({"a": "1", "b": {"c": [1, 2.5, "x", null, true]}}),
            json!({"a": 1.0, "b": {}}),
            json!({"a": [], "b": {"c": [[], {}, [[]]]}, "zz": "NaN"}),
            json!({"a": "Infinity", "n": -0.0, "big": 18446744073709551615u64, "neg": -9223372036854775808i64}),
            json!({"tiny": 5e-324, "huge": 1.7976931348623157e308, "e": 1e21, "x": 123_456_789.123_456_79}),
            json!({"": {"": ""}, "ключ": "значение", "a.b": {"c d": 1}}),
            json!({"a": 1}),
            json!({"a": 2}),
            json!({}),
        ];
        let (mut history, mut layouts) = (History::default(), Layouts::default());
        store(&mut history, &mut layouts, 100, &samples);
        let back = history.newest(100);
        assert_eq!(data_of(&back), samples);
        for (sample, original) in back.iter().zip(&samples) {
            assert_eq!(sample.data.as_ref().unwrap().as_str(), original.to_string(), "same text");
        }
        assert_eq!(back[3].at, 3.5);
        assert_eq!(back[3].received, 1003.0);
    }

    #[test]
    fn errors_sit_between_data_and_history_is_bounded() {
        let (mut history, mut layouts) = (History::default(), Layouts::default());
        for i in 0..100u32 {
            if i % 7 == 3 {
                history.push(&mut layouts, 20, (f64::from(i), f64::from(i)), None, Some("timed out")).unwrap();
            } else {
                history.push(&mut layouts, 20, (f64::from(i), f64::from(i)), Some(&json!({"v": i})), None).unwrap();
            }
        }
        assert_eq!(history.rows, 20, "exactly plugin_history samples are kept");
        let back = history.newest(20);
        assert_eq!(back.len(), 20);
        for (sample, i) in back.iter().zip(80u32..) {
            assert_eq!(sample.at, f64::from(i));
            if i % 7 == 3 {
                assert_eq!((sample.data.is_none(), sample.error.as_deref()), (true, Some("timed out")));
            } else {
                assert_eq!(data_of(std::slice::from_ref(sample)), [json!({"v": i})]);
            }
        }
        assert_eq!(history.newest(3).len(), 3);
        assert_eq!(history.newest(0).len(), 0);
        assert_eq!((history.last_received, history.spacing.expected), (99.0, 1.0));
    }

    /// A full history takes each new sample in one rewrite of its one block
    /// (inline, no list allocated); a layout change makes two blocks until
    /// the old one has aged out, and then it is one again.
    #[test]
    fn a_full_history_stays_one_exact_block() {
        let (mut history, mut layouts) = (History::default(), Layouts::default());
        let keep = 10;
        let sample = |i: u32| json!({"load": [f64::from(i) / 8.0, i], "ok": i % 3 == 0});
        store(&mut history, &mut layouts, keep, &(0..25).map(sample).collect::<Vec<_>>());
        assert!(matches!(history.blocks, Blocks::One(_)));
        assert_eq!(history.rows, keep);
        assert_eq!(data_of(&history.newest(keep)), (15..25).map(sample).collect::<Vec<_>>());

        history.push(&mut layouts, keep, (30.0, 30.0), Some(&json!({"other": 1})), None).unwrap();
        assert!(matches!(&history.blocks, Blocks::Many(blocks) if blocks.len() == 2));
        for i in 31..31 + keep as u32 {
            history.push(&mut layouts, keep, (f64::from(i), f64::from(i)), Some(&json!({"other": i})), None).unwrap();
        }
        assert!(matches!(history.blocks, Blocks::One(_)), "back inline once the old layout aged out");
        let back = history.newest(keep);
        assert_eq!(back.len(), keep);
        assert_eq!(back[0].at, 31.0);
    }

    #[test]
    fn an_info_series_keeps_its_latest_sample() {
        let mut layouts = Layouts::default();
        let mut info = Series::new(PluginKind::Info);
        for (i, data) in [json!({"os": "linux", "cpus": 2}), json!({"os": "linux", "cpus": 4}), json!({"os": "bsd"})]
            .iter()
            .enumerate()
        {
            let text = Json::from(Arc::<str>::from(data.to_string()));
            let sample = Sample { at: i as f64, received: 10.0 + i as f64, data: Some(text), error: None };
            info.push(&mut layouts, 50, &sample, Some(data)).unwrap();
            let newest = info.newest(50, 50);
            assert_eq!(newest.len(), 1);
            assert_eq!(data_of(&newest), std::slice::from_ref(data));
            assert_eq!((newest[0].at, newest[0].received), (i as f64, 10.0 + i as f64));
            assert_eq!(info.latest().unwrap().value().as_ref(), Some(data));
        }
        let failed = Sample { at: 5.0, received: 15.0, data: None, error: Some("no /etc/os-release".into()) };
        info.push(&mut layouts, 50, &failed, None).unwrap();
        assert_eq!(info.newest(50, 50), [failed]);
        assert_eq!(info.latest().unwrap().value(), None);
    }

    #[test]
    fn numbers_read_back_in_one_pass_equal_numbers_pushed() {
        let mut layouts = Layouts::default();
        let points: Vec<[f64; 2]> =
            (0..150).map(|i| [1_780_000_000.0 + f64::from(i) * 30.001, 0.25 + f64::from(i % 7) / 8.0]).collect();
        let mut pushed = History::default();
        for [at, ms] in &points {
            pushed.push_number(&mut layouts, 1000, *at, *ms).unwrap();
        }
        let read = History::from_numbers(&mut layouts, &points).unwrap();
        assert_eq!(read.numbers(), pushed.numbers());
        assert_eq!(Vec::from(read.numbers()), points);
        assert_eq!(History::from_numbers(&mut layouts, &[]).unwrap().numbers().len(), 0);
    }

    #[test]
    fn layouts_are_shared_and_unused_ones_forgotten() {
        let mut layouts = Layouts::default();
        let mut hosts: Vec<History> = (0..50).map(|_| History::default()).collect();
        for h in &mut hosts {
            store(h, &mut layouts, 50, &[json!({"cpu": 1, "load": [1, 2, 3]}), json!({"cpu": 2, "load": [1, 2, 4]})]);
        }
        assert_eq!(layouts.len(), 1);
        let mut hostile = History::default();
        for i in 0..1000 {
            store(&mut hostile, &mut layouts, 5, &[json!({ format!("key{i}"): i })]);
        }
        assert!(layouts.len() < 200, "{} layouts kept", layouts.len());
    }

    /// Random nested documents with changing keys and kinds.
    #[test]
    fn random_documents_round_trip() {
        fn doc(rng: &mut XorShift, depth: u32) -> Value {
            match rng.below(if depth > 3 { 6 } else { 9 }) {
                0 => json!(rng.next() as i64),
                1 => json!(rng.below(100_000) as f64 / 100.0),
                2 => json!(f64::from_bits(rng.next() >> 2)),
                3 => json!(["NaN", "-Infinity", "1e999", "OK"][rng.below(4) as usize]),
                4 => json!(rng.below(2) == 0),
                5 => Value::Null,
                6 | 7 => {
                    let mut map = Map::new();
                    for _ in 0..rng.below(5) {
                        map.insert(format!("k{}", rng.below(6)), doc(rng, depth + 1));
                    }
                    Value::Object(map)
                }
                _ => Value::Array((0..rng.below(4)).map(|_| doc(rng, depth + 1)).collect()),
            }
        }
        let mut rng = XorShift(42);
        let mut layouts = Layouts::default();
        for _ in 0..200 {
            let keep = 1 + rng.below(40) as usize;
            let samples: Vec<Value> = (0..1 + rng.below(60))
                .map(|_| {
                    let mut map = Map::new();
                    map.insert("x".into(), doc(&mut rng, 0));
                    Value::Object(map)
                })
                .collect();
            let mut history = History::default();
            store(&mut history, &mut layouts, keep, &samples);
            let n = samples.len().min(keep);
            assert_eq!(data_of(&history.newest(keep)), samples[samples.len() - n..]);
        }
    }
}
