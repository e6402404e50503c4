//! Wire protocol version 1: turns one UDP datagram into an [`Accepted`]
//! message or a [`Rejection`] with a counted reason; reads ACKs for hbc.
//!
//! Only the wire area knows the bytes on the wire (docs/PROTOCOL.md). Order of
//! checks, cheapest and safest first: size, signature (before anything is
//! inflated or parsed), inflate with a cap, UTF-8, JSON, fields, host name,
//! key binding, replay. No input can make it panic or allocate beyond
//! `max_message_size`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flate2::{Decompress, FlushDecompress, Status};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::auth::{AuthError, Key, Keyring, ReplayGuard, MAGIC};
use super::MAX_TAGS;
use super::{
    encode, is_valid_host_name, is_valid_plugin_name, is_valid_tag, tail_chars, truncate_chars, PluginKind,
    PluginSample,
};
use super::{JobEvent, JobSignal, JOB_MESSAGE_MAX, JOB_OUTPUT_MAX};
use super::{ACK_ID, HBD_CLIENT_PREFIX, HEARTBEAT_ID, JOB_ID, PLUGIN_DATA_ID};

/// First byte of a zlib stream with the default window (RFC 1950).
const ZLIB_FIRST_BYTE: u8 = 0x78;
/// Longest interval a heartbeat may announce: a week.
const MAX_INTERVAL_S: f64 = 7.0 * 86400.0;
/// The interval of a job whose first signal declares none: a day, the
/// cron job's usual period (a later signal's `interval` replaces it).
pub const DEFAULT_JOB_INTERVAL_S: f64 = 86400.0;

/// Why a datagram was not accepted; each has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    TooLarge,
    NotJson,
    BadZlib,
    NotUtf8,
    BadJson,
    BadField,
    UnknownId,
    BadName,
    BadInterval,
    Unsigned,
    UnexpectedSignature,
    BadSignature,
    Stale,
    Replayed,
    HostNotAllowed,
}

impl RejectReason {
    pub const ALL: [RejectReason; 15] = [
        RejectReason::TooLarge,
        RejectReason::NotJson,
        RejectReason::BadZlib,
        RejectReason::NotUtf8,
        RejectReason::BadJson,
        RejectReason::BadField,
        RejectReason::UnknownId,
        RejectReason::BadName,
        RejectReason::BadInterval,
        RejectReason::Unsigned,
        RejectReason::UnexpectedSignature,
        RejectReason::BadSignature,
        RejectReason::Stale,
        RejectReason::Replayed,
        RejectReason::HostNotAllowed,
    ];

    /// The counter's name, as logged and (later) exported.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::NotJson => "not_json",
            RejectReason::BadZlib => "bad_zlib",
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::BadJson => "bad_json",
            RejectReason::BadField => "bad_field",
            RejectReason::UnknownId => "unknown_id",
            RejectReason::BadName => "bad_name",
            RejectReason::BadInterval => "bad_interval",
            RejectReason::Unsigned => "unsigned",
            RejectReason::UnexpectedSignature => "unexpected_signature",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::Stale => "stale",
            RejectReason::Replayed => "replayed",
            RejectReason::HostNotAllowed => "host_not_allowed",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Rejection {
    Rejection { reason, detail: detail.into() }
}

/// A message that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted<'a> {
    /// Host name, lower case (DNS names are case-insensitive).
    pub name: String,
    pub interval: f64,
    /// Echoed in the ACK so the client can pair it with what it sent.
    pub seq: Option<u64>,
    /// The message as one line of compact JSON, for the journal: the
    /// datagram's own bytes unless it had to be inflated or re-encoded.
    pub json: Cow<'a, [u8]>,
    pub signed: Option<Signature>,
    /// False for `PLG` messages, which carry plugin data only.
    pub heartbeat: bool,
    /// The client's last measured round trip to us.
    pub latency_ms: Option<f64>,
    /// Sent by another hbd (`peers:`), not by hbc: its `client` says `hbd …`.
    pub from_hbd: bool,
    pub plugins: Vec<PluginSample>,
    /// Plugin entries left out, with why; the rest of the message counts.
    pub dropped_plugins: Vec<String>,
    /// The client's `tags`, checked, sorted, at most [`MAX_TAGS`]; empty
    /// when it sends none (the Python hbc, older hbcs).
    pub tags: Vec<String>,
    /// A job's signal (`JOB`): then `heartbeat` is false and `plugins` empty.
    pub job: Option<JobSignal>,
}

/// Bounds on what one message may make hbd store.
#[derive(Debug, Clone, Copy)]
pub struct PluginLimits {
    pub max_plugins: usize,
    /// Object keys and array elements in one plugin's data, at every depth.
    pub max_keys: usize,
    /// Bytes of one plugin's data as compact JSON.
    pub max_bytes: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePlugin<'a> {
    kind: PluginKind,
    at: f64,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub key_id: String,
    pub timestamp_us: u64,
}

/// The fields hbd reads; everything else rides along untouched. Read by
/// [`super::scan::fields`] when the message has the common shape, else by
/// serde_json through this derive.
#[derive(Deserialize)]
pub(super) struct WireMessage<'a> {
    #[serde(rename = "ID", borrow)]
    pub(super) id: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) name: Cow<'a, str>,
    #[serde(default)]
    pub(super) interval: Option<f64>,
    #[serde(default)]
    pub(super) seq: Option<u64>,
    #[serde(default)]
    pub(super) latency_ms: Option<f64>,
    /// The sending program and its version (`hbc 0.1.0`, `hbd 0.1.0`).
    #[serde(borrow, default)]
    pub(super) client: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) plugins: Option<BTreeMap<Cow<'a, str>, &'a RawValue>>,
    /// Plugin name → seconds between its samples. Outside the plugin
    /// entries, whose members are closed: older hbds ignore it.
    #[serde(borrow, default)]
    pub(super) plugin_intervals: Option<&'a RawValue>,
    /// The client's tags (`tags: [db, eu]` in hbc.yaml). A member of its
    /// own, read leniently: older hbds ignore it.
    #[serde(borrow, default)]
    pub(super) tags: Option<&'a RawValue>,
    // A job's signal (`JOB`); other messages ignore them.
    #[serde(default)]
    pub(super) event: Option<JobEvent>,
    #[serde(default)]
    pub(super) exit_code: Option<i32>,
    #[serde(default)]
    pub(super) signal: Option<i32>,
    #[serde(default)]
    pub(super) duration_s: Option<f64>,
    #[serde(borrow, default)]
    pub(super) output: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) message: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) grace: Option<f64>,
    #[serde(default)]
    pub(super) timeout: Option<f64>,
}

impl WireMessage<'_> {
    /// Every field's name on the wire, as the derive above reads them.
    pub(super) const FIELDS: [&'static str; 17] = [
        "ID",
        "name",
        "interval",
        "seq",
        "latency_ms",
        "client",
        "plugins",
        "plugin_intervals",
        "tags",
        "event",
        "exit_code",
        "signal",
        "duration_s",
        "output",
        "message",
        "grace",
        "timeout",
    ];

    /// No field given, `ID` and `name` empty: for the fast path to fill in.
    pub(super) fn empty() -> Self {
        WireMessage {
            id: Cow::Borrowed(""),
            name: Cow::Borrowed(""),
            interval: None,
            seq: None,
            latency_ms: None,
            client: None,
            plugins: None,
            plugin_intervals: None,
            tags: None,
            event: None,
            exit_code: None,
            signal: None,
            duration_s: None,
            output: None,
            message: None,
            grace: None,
            timeout: None,
        }
    }
}

/// The job fields of a `JOB` message, checked: a number out of range is a
/// bad field (the whole signal is refused, as a bad interval is); output
/// and message are cut to their bounds.
fn job_signal(message: &WireMessage) -> Result<JobSignal, Rejection> {
    let event = message.event.ok_or_else(|| reject(RejectReason::BadField, "JOB without `event`"))?;
    let seconds = |name: &str, value: Option<f64>, min_exclusive: bool| match value {
        Some(v) if !(v.is_finite() && (v > 0.0 || (!min_exclusive && v == 0.0)) && v <= MAX_INTERVAL_S) => {
            Err(reject(RejectReason::BadField, format!("{name} {v} is not a number of seconds up to 604800")))
        }
        _ => Ok(value),
    };
    if let Some(signal) = message.signal.filter(|s| !(1..=64).contains(s)) {
        return Err(reject(RejectReason::BadField, format!("signal {signal} is not from 1 to 64")));
    }
    Ok(JobSignal {
        event,
        exit_code: message.exit_code,
        signal: message.signal,
        duration_s: seconds("duration_s", message.duration_s, false)?,
        output: message.output.as_deref().map(|o| tail_chars(o, JOB_OUTPUT_MAX).to_string()),
        message: message.message.as_deref().map(|m| truncate_chars(m, JOB_MESSAGE_MAX).to_string()),
        interval_given: message.interval.is_some(),
        grace: seconds("grace", message.grace, false)?,
        timeout: seconds("timeout", message.timeout, true)?,
        seq: message.seq,
    })
}

/// The tags a heartbeat declares: a list of tag names, each valid one kept
/// (sorted, once each, at most [`MAX_TAGS`]); anything else is passed over,
/// never the message.
fn declared_tags(raw: &RawValue) -> Vec<String> {
    let Ok(listed) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else { return Vec::new() };
    let mut tags: Vec<String> = listed
        .iter()
        .filter_map(|value| serde_json::from_str::<Cow<str>>(value.get()).ok())
        .filter(|tag| is_valid_tag(tag))
        .map(Cow::into_owned)
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags.truncate(MAX_TAGS);
    tags
}

/// Gives each plugin the interval `plugin_intervals` declares for it. A
/// member that is not a number of seconds above 0 and at most a week is
/// passed over (the data still counts, and hbd estimates that plugin's
/// spacing itself); so is the whole member if it is not an object.
fn declared_intervals(raw: &RawValue, plugins: &mut [PluginSample]) {
    // Borrowed from the datagram: keys as they are, values parsed one by one.
    let Ok(declared) = serde_json::from_str::<BTreeMap<Cow<str>, &RawValue>>(raw.get()) else { return };
    for plugin in plugins {
        plugin.interval = declared
            .get(plugin.name.as_str())
            .and_then(|value| serde_json::from_str::<f64>(value.get()).ok())
            .filter(|s| *s > 0.0 && *s <= MAX_INTERVAL_S);
    }
}

/// Decodes datagrams for the UDP thread; owns the replay memory.
#[derive(Debug)]
pub struct Decoder {
    max_message_size: usize,
    default_interval: f64,
    keyring: Option<Keyring>,
    replay: ReplayGuard,
    limits: PluginLimits,
}

impl Decoder {
    pub fn new(
        max_message_size: usize,
        default_interval: f64,
        keyring: Option<Keyring>,
        replay: ReplayGuard,
        limits: PluginLimits,
    ) -> Decoder {
        Decoder { max_message_size, default_interval, keyring, replay, limits }
    }

    pub fn decode<'a>(&mut self, datagram: &'a [u8], now: SystemTime) -> Result<Accepted<'a>, Rejection> {
        if datagram.len() > self.max_message_size {
            return Err(reject(
                RejectReason::TooLarge,
                format!("datagram of {} bytes exceeds max_message_size {}", datagram.len(), self.max_message_size),
            ));
        }
        let (payload, signature) = match &self.keyring {
            Some(keyring) => {
                let opened = keyring.open(datagram, now).map_err(auth_rejection)?;
                let signature = Signature { key_id: opened.key.id.clone(), timestamp_us: opened.timestamp_us };
                // The payload lies within the datagram; taken from it again
                // so that it borrows from the datagram, not the keyring.
                let start = (opened.payload.as_ptr() as usize).saturating_sub(datagram.as_ptr() as usize);
                (datagram.get(start..start + opened.payload.len()).unwrap_or_default(), Some(signature))
            }
            None if datagram.starts_with(MAGIC) => {
                return Err(reject(
                    RejectReason::UnexpectedSignature,
                    "signed datagram, but hbd has no keys configured",
                ))
            }
            None => (datagram, None),
        };

        let json: Cow<'a, [u8]> = match payload.first() {
            Some(b'{') => Cow::Borrowed(payload),
            Some(&ZLIB_FIRST_BYTE) => Cow::Owned(inflate_capped(payload, self.max_message_size)?),
            Some(other) => {
                return Err(reject(
                    RejectReason::NotJson,
                    format!("starts with byte 0x{other:02x}, neither JSON nor zlib"),
                ))
            }
            None => return Err(reject(RejectReason::NotJson, "empty payload")),
        };
        let text = std::str::from_utf8(&json)
            .map_err(|e| reject(RejectReason::NotUtf8, format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
        // The fast path reads no text with a line break (see scan.rs).
        let (message, line_break): (WireMessage, bool) = match super::scan::fields(text) {
            Some(message) => (message, false),
            None => (
                serde_json::from_str(text).map_err(|e| match e.classify() {
                    serde_json::error::Category::Data => reject(RejectReason::BadField, e.to_string()),
                    _ => reject(RejectReason::BadJson, e.to_string()),
                })?,
                has_line_break(&json),
            ),
        };

        let heartbeat = message.id == HEARTBEAT_ID;
        let is_job = message.id == JOB_ID;
        if !heartbeat && !is_job && message.id != PLUGIN_DATA_ID {
            return Err(reject(RejectReason::UnknownId, format!("unknown message ID {:?}", truncate(&message.id))));
        }
        if !is_valid_host_name(&message.name) {
            return Err(reject(
                RejectReason::BadName,
                format!("name {:?} is not an RFC 1123 host name", truncate(&message.name)),
            ));
        }
        let name = message.name.to_ascii_lowercase();
        let default_interval = if is_job { DEFAULT_JOB_INTERVAL_S } else { self.default_interval };
        let interval = message.interval.unwrap_or(default_interval);
        if !(interval > 0.0 && interval <= MAX_INTERVAL_S) {
            return Err(reject(
                RejectReason::BadInterval,
                format!("interval {interval} is not above 0 and at most 604800"),
            ));
        }
        if let Some(latency) = message.latency_ms {
            if !(0.0..=3_600_000.0).contains(&latency) {
                return Err(reject(RejectReason::BadField, format!("latency_ms {latency} is not from 0 to 3600000")));
            }
        }
        // Checked before the replay memory takes the timestamp: a refused
        // signal leaves the sender's next one acceptable.
        let job = if is_job { Some(job_signal(&message)?) } else { None };
        if let Some(signature) = &signature {
            let allowed =
                self.keyring.as_ref().and_then(|ring| ring.key(&signature.key_id)).is_some_and(|k| k.allows(&name));
            if !allowed {
                return Err(reject(
                    RejectReason::HostNotAllowed,
                    format!("key {} may not speak for host {name}", signature.key_id),
                ));
            }
            if !self.replay.accept(&name, signature.timestamp_us) {
                return Err(reject(
                    RejectReason::Replayed,
                    format!(
                        "timestamp {} of host {name} was seen before or is older than those seen",
                        signature.timestamp_us
                    ),
                ));
            }
        }
        let json = if line_break {
            // JSON Lines needs one line per message: re-encode compactly.
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| reject(RejectReason::BadJson, e.to_string()))?;
            Cow::Owned(serde_json::to_vec(&value).map_err(|e| reject(RejectReason::BadJson, e.to_string()))?)
        } else {
            json.clone()
        };
        let entries = if is_job { BTreeMap::new() } else { message.plugins.unwrap_or_default() };
        let (mut plugins, dropped_plugins) = self.plugins(entries);
        if let Some(raw) = message.plugin_intervals {
            declared_intervals(raw, &mut plugins);
        }
        Ok(Accepted {
            name,
            interval,
            seq: message.seq,
            json,
            signed: signature,
            heartbeat,
            latency_ms: message.latency_ms,
            from_hbd: message.client.is_some_and(|c| c.starts_with(HBD_CLIENT_PREFIX)),
            plugins,
            dropped_plugins,
            job,
            tags: message.tags.map(declared_tags).unwrap_or_default(),
        })
    }

    /// Checks each plugin entry on its own: a bad one is left out (and said
    /// why), the others and the heartbeat still count.
    fn plugins(&self, entries: BTreeMap<Cow<str>, &RawValue>) -> (Vec<PluginSample>, Vec<String>) {
        let mut samples = Vec::new();
        let mut dropped = Vec::new();
        for (name, raw) in entries {
            if samples.len() >= self.limits.max_plugins {
                dropped.push(format!(
                    "{}: more than {} plugins in one message",
                    truncate(&name),
                    self.limits.max_plugins
                ));
                continue;
            }
            match self.plugin(&name, raw) {
                Ok(sample) => samples.push(sample),
                Err(why) => dropped.push(format!("{}: {why}", truncate(&name))),
            }
        }
        (samples, dropped)
    }

    fn plugin(&self, name: &str, raw: &RawValue) -> Result<PluginSample, String> {
        if !is_valid_plugin_name(name) {
            return Err("a plugin name is 1 to 64 of a-z 0-9 _ - .".into());
        }
        let entry: WirePlugin = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
        if !entry.at.is_finite() {
            return Err("`at` is not a time".into());
        }
        let (data, error) = match (entry.data, entry.error) {
            (Some(data), None) => {
                let value: serde_json::Value = serde_json::from_str(data.get()).map_err(|e| e.to_string())?;
                if !value.is_object() {
                    return Err("`data` is not an object".into());
                }
                let keys = count_keys(&value);
                if keys > self.limits.max_keys {
                    return Err(format!("{keys} keys exceed max_plugin_keys {}", self.limits.max_keys));
                }
                let text = value.to_string();
                if text.len() > self.limits.max_bytes {
                    return Err(format!("{} bytes exceed max_plugin_size {}", text.len(), self.limits.max_bytes));
                }
                (Some(Arc::<str>::from(text)), None)
            }
            (None, Some(error)) => (None, Some(truncate_chars(&error, 1000).to_string())),
            _ => return Err("needs exactly one of `data` and `error`".into()),
        };
        Ok(PluginSample { name: name.to_string(), kind: entry.kind, at: entry.at, data, error, interval: None })
    }

    /// The acknowledgement for `accepted`, written into `out` (cleared
    /// first, so one buffer serves every ACK): signed with the same key when
    /// the message was signed, so a client can trust the round trip it measures.
    pub fn ack_into(&self, out: &mut Vec<u8>, accepted: &Accepted, now: SystemTime) {
        let key = accepted.signed.as_ref().and_then(|s| self.keyring.as_ref()?.key(&s.key_id));
        encode::ack_into(out, &accepted.name, accepted.seq, key, now);
    }

    /// [`Decoder::ack_into`] in a new buffer.
    pub fn ack(&self, accepted: &Accepted, now: SystemTime) -> Vec<u8> {
        let mut out = Vec::new();
        self.ack_into(&mut out, accepted, now);
        out
    }
}

/// The sequence number of a valid ACK for `name`, or None. With a key, the
/// ACK must be signed with it; a forged ACK cannot fake a round trip.
pub fn parse_ack(datagram: &[u8], key: Option<&Key>, name: &str) -> Option<u64> {
    let keyring;
    let payload = match key {
        Some(key) => {
            keyring = Keyring::new(vec![key.clone()], Duration::from_secs(300));
            keyring.open(datagram, SystemTime::now()).ok()?.payload
        }
        None => datagram,
    };
    let ack: Value = serde_json::from_slice(payload).ok()?;
    (ack["ID"] == ACK_ID && ack["name"] == name).then(|| ack["seq"].as_u64()).flatten()
}

fn auth_rejection(e: AuthError) -> Rejection {
    match e {
        AuthError::Unsigned => reject(RejectReason::Unsigned, "unsigned datagram, but hbd requires a signature"),
        AuthError::Malformed => reject(RejectReason::BadSignature, "truncated signed envelope"),
        AuthError::UnknownKey(id) => reject(RejectReason::BadSignature, format!("unknown key id {:?}", truncate(&id))),
        AuthError::BadTag(id) => reject(RejectReason::BadSignature, format!("tag does not match key {id}")),
        AuthError::Stale { key, skew_s } => reject(
            RejectReason::Stale,
            format!("timestamp {skew_s:+} s from our clock (key {key}), outside auth_window"),
        ),
    }
}

/// Inflates a zlib stream, giving up as soon as the output would pass `cap`
/// bytes, so a zlib bomb costs at most `cap` bytes of memory and work.
pub fn inflate_capped(input: &[u8], cap: usize) -> Result<Vec<u8>, Rejection> {
    let too_large = || reject(RejectReason::TooLarge, format!("inflates beyond max_message_size {cap}"));
    let mut inflater = Decompress::new(true);
    let mut out: Vec<u8> = Vec::with_capacity(input.len().saturating_mul(4).clamp(256, cap + 1));
    loop {
        if out.len() == out.capacity() {
            if out.len() > cap {
                return Err(too_large());
            }
            out.reserve_exact(out.len().min(cap + 1 - out.len()).max(256));
        }
        let consumed = inflater.total_in() as usize;
        let produced = inflater.total_out();
        let status = inflater
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::None)
            .map_err(|e| reject(RejectReason::BadZlib, format!("corrupt zlib stream: {e}")))?;
        if out.len() > cap {
            return Err(too_large());
        }
        match status {
            Status::StreamEnd if inflater.total_in() as usize == input.len() => return Ok(out),
            Status::StreamEnd => return Err(reject(RejectReason::BadZlib, "bytes after the end of the zlib stream")),
            Status::Ok | Status::BufError => {
                let stalled = inflater.total_in() as usize == consumed && inflater.total_out() == produced;
                if stalled && out.len() < out.capacity() {
                    return Err(reject(RejectReason::BadZlib, "truncated zlib stream"));
                }
            }
        }
    }
}

/// Whether `bytes` holds a `\n` or `\r`: one pass, in blocks the compiler
/// turns into vector compares, instead of two byte searches; it runs on
/// every accepted message.
fn has_line_break(bytes: &[u8]) -> bool {
    let hits = |hits: u8, &b: &u8| hits | u8::from(b == b'\n') | u8::from(b == b'\r');
    let blocks = bytes.chunks_exact(32);
    let rest = blocks.remainder().iter().fold(0, hits);
    // Fixed-size blocks without an early exit: what vectorizes.
    rest != 0 || blocks.into_iter().any(|block| <&[u8; 32]>::try_from(block).is_ok_and(|b| b.iter().fold(0, hits) != 0))
}

/// Object keys and array elements at every depth: what a plugin makes hbd store.
fn count_keys(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(map) => map.len() + map.values().map(count_keys).sum::<usize>(),
        serde_json::Value::Array(items) => items.len() + items.iter().map(count_keys).sum::<usize>(),
        _ => 0,
    }
}

/// Bounds what a hostile datagram can put into one log line.
fn truncate(s: &str) -> &str {
    truncate_chars(s, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::auth::Key;
    use flate2::{write::ZlibEncoder, Compression};
    use std::io::Write;
    use std::time::UNIX_EPOCH;

    const NOW_US: u64 = 1_800_000_000_000_000;
    const LIMITS: PluginLimits = PluginLimits { max_plugins: 3, max_keys: 20, max_bytes: 100 };

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(NOW_US)
    }

    fn plain() -> Decoder {
        Decoder::new(4096, 30.0, None, ReplayGuard::default(), LIMITS)
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn reason(d: &mut Decoder, datagram: &[u8]) -> RejectReason {
        d.decode(datagram, now()).unwrap_err().reason
    }

    /// A job's signal: fields checked, output cut to its tail, no plugins;
    /// what is out of range refuses the signal.
    #[test]
    fn job_signals() {
        let mut d = plain();
        let output = format!("{}end", "x".repeat(5000));
        let message = serde_json::json!({
            "ID": "JOB", "name": "Backup", "event": "fail", "exit_code": 3, "duration_s": 1.5,
            "output": output, "message": "disk full", "grace": 60, "timeout": 3600, "seq": 4,
            "plugins": {"cpu": {"kind": "monitor", "at": 1.0, "data": {}}},
        });
        let mut d4 = Decoder::new(8192, 30.0, None, ReplayGuard::default(), LIMITS);
        let text = message.to_string();
        let a = d4.decode(text.as_bytes(), now()).unwrap();
        assert_eq!((a.name.as_str(), a.seq, a.heartbeat, a.plugins.len()), ("backup", Some(4), false, 0));
        assert_eq!(a.interval, DEFAULT_JOB_INTERVAL_S, "no interval: a day");
        let job = a.job.unwrap();
        assert_eq!((job.event, job.exit_code, job.duration_s), (JobEvent::Fail, Some(3), Some(1.5)));
        assert_eq!((job.grace, job.timeout, job.interval_given), (Some(60.0), Some(3600.0), false));
        let output = job.output.unwrap();
        assert!(output.len() == JOB_OUTPUT_MAX && output.ends_with("end"), "{}", output.len());
        let ok = d.decode(br#"{"ID":"JOB","name":"b","event":"ok","interval":3600}"#, now()).unwrap();
        assert_eq!((ok.interval, ok.job.map(|j| j.interval_given)), (3600.0, Some(true)));
        assert!(d.decode(br#"{"ID":"HTB","name":"a","event":"ok"}"#, now()).unwrap().job.is_none());
        for bad in [
            r#"{"ID":"JOB","name":"b"}"#,
            r#"{"ID":"JOB","name":"b","event":"maybe"}"#,
            r#"{"ID":"JOB","name":"b","event":"fail","exit_code":"3"}"#,
            r#"{"ID":"JOB","name":"b","event":"fail","exit_code":99999999999}"#,
            r#"{"ID":"JOB","name":"b","event":"fail","signal":99}"#,
            r#"{"ID":"JOB","name":"b","event":"start","timeout":0}"#,
            r#"{"ID":"JOB","name":"b","event":"ok","duration_s":-1}"#,
            r#"{"ID":"JOB","name":"b","event":"ok","grace":1e300}"#,
            r#"{"ID":"JOB","name":"b","event":"ok","output":5}"#,
        ] {
            assert_eq!(reason(&mut d, bad.as_bytes()), RejectReason::BadField, "{bad}");
        }
        assert_eq!(reason(&mut d, br#"{"ID":"JOB","name":"<b>","event":"ok"}"#), RejectReason::BadName);
    }

    #[test]
    fn plain_heartbeat() {
        let a = plain().decode(br#"{"ID":"HTB","name":"WebServer1","interval":10,"seq":7,"x":[1]}"#, now()).unwrap();
        assert_eq!(a.name, "webserver1");
        assert_eq!(a.interval, 10.0);
        assert_eq!(a.seq, Some(7));
        assert_eq!(&*a.json, br#"{"ID":"HTB","name":"WebServer1","interval":10,"seq":7,"x":[1]}"#);
        assert!(a.signed.is_none());
    }

    #[test]
    fn line_breaks_are_found_wherever_they_are() {
        for len in [0, 1, 31, 32, 33, 64, 222] {
            let plain = vec![b'x'; len];
            assert!(!has_line_break(&plain));
            for at in 0..len {
                for b in [b'\n', b'\r'] {
                    let mut bytes = plain.clone();
                    bytes[at] = b;
                    assert!(has_line_break(&bytes), "{len} {at}");
                }
            }
        }
    }

    #[test]
    fn missing_interval_takes_the_default() {
        let a = plain().decode(br#"{"ID":"HTB","name":"a"}"#, now()).unwrap();
        assert_eq!(a.interval, 30.0);
    }

    #[test]
    fn zlib_heartbeat_and_multiline_json_become_one_line() {
        let datagram = zlib(b"{\"ID\": \"HTB\",\n \"name\": \"a\"}\n");
        let a = plain().decode(&datagram, now()).unwrap();
        assert_eq!(&*a.json, br#"{"ID":"HTB","name":"a"}"#);
    }

    #[test]
    fn bad_input_is_rejected_with_its_reason() {
        let mut d = plain();
        let cases: Vec<(Vec<u8>, RejectReason)> = vec![
            (vec![], RejectReason::NotJson),
            (b"hello".to_vec(), RejectReason::NotJson),
            (b"{\"ID\":\"HTB\"".to_vec(), RejectReason::BadJson),
            (b"{\"ID\":\"HTB\",\"name\":\"a\"} trailing".to_vec(), RejectReason::BadJson),
            (b"{\"ID\":\"HTB\",\"name\":\"\xff\"}".to_vec(), RejectReason::NotUtf8),
            (b"{\"ID\":\"HTB\"}".to_vec(), RejectReason::BadField),
            (b"{\"ID\":\"HTB\",\"name\":5}".to_vec(), RejectReason::BadField),
            (b"{\"ID\":\"HTB\",\"name\":\"a\",\"interval\":\"x\"}".to_vec(), RejectReason::BadField),
            (b"{\"ID\":\"HTB\",\"name\":\"a\",\"name\":\"b\"}".to_vec(), RejectReason::BadField),
            (b"{\"ID\":\"XYZ\",\"name\":\"a\"}".to_vec(), RejectReason::UnknownId),
            (b"{\"ID\":\"HTB\",\"name\":\"a\",\"interval\":0}".to_vec(), RejectReason::BadInterval),
            (b"{\"ID\":\"HTB\",\"name\":\"a\",\"interval\":-5}".to_vec(), RejectReason::BadInterval),
            (vec![b' '; 5000], RejectReason::TooLarge),
            (b"HBS1\x01k".to_vec(), RejectReason::UnexpectedSignature),
        ];
        for (datagram, expected) in cases {
            assert_eq!(reason(&mut d, &datagram), expected, "{:?}", String::from_utf8_lossy(&datagram));
        }
    }

    #[test]
    fn hostile_names_are_rejected() {
        let mut d = plain();
        for name in [
            "",
            "-a",
            "a-",
            "a..b",
            "a.",
            "a b",
            "a;update delete example.com",
            "<script>alert(1)</script>",
            "../../etc/passwd",
            "a\nb",
            "ä",
            &"a".repeat(64),
            &["a"; 128].join("."),
        ] {
            let datagram = serde_json::json!({"ID": "HTB", "name": name}).to_string();
            assert_eq!(reason(&mut d, datagram.as_bytes()), RejectReason::BadName, "{name:?}");
        }
        for name in ["a", "web-1", "1host", "a.b.example.com", &"a".repeat(63)] {
            assert!(is_valid_host_name(name), "{name}");
        }
    }

    #[test]
    fn zlib_bomb_stops_at_the_cap() {
        let bomb = zlib(&vec![b' '; 10 << 20]);
        assert!(bomb.len() < 20_000);
        let mut d = Decoder::new(1 << 20, 30.0, None, ReplayGuard::default(), LIMITS);
        let r = d.decode(&bomb, now()).unwrap_err();
        assert_eq!(r.reason, RejectReason::TooLarge);
        assert!(r.detail.contains("inflates beyond"), "{r}");
    }

    #[test]
    fn truncated_and_corrupt_zlib() {
        let mut d = plain();
        let good = zlib(br#"{"ID":"HTB","name":"a","pad":"0123456789012345678901234567890123456789"}"#);
        for n in 1..good.len() {
            assert_eq!(reason(&mut d, &good[..n]), RejectReason::BadZlib, "cut at {n}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(reason(&mut d, &trailing), RejectReason::BadZlib);
        assert_eq!(reason(&mut d, &[0x78, 0x9c, 0xff, 0xff, 0xff]), RejectReason::BadZlib);
        assert!(d.decode(&good, now()).is_ok());
    }

    fn signed_decoder(hosts: &[&str]) -> (Decoder, Key) {
        let hosts = hosts.iter().map(|h| crate::wire::auth::HostPattern::parse(h).unwrap()).collect();
        let key = Key::new("k1", b"0123456789abcdef", hosts).unwrap();
        let ring = Keyring::new(vec![key.clone()], Duration::from_secs(60));
        (Decoder::new(4096, 30.0, Some(ring), ReplayGuard::default(), LIMITS), key)
    }

    #[test]
    fn signed_heartbeats_and_their_failures() {
        let (mut d, key) = signed_decoder(&["*.lan"]);
        let body = br#"{"ID":"HTB","name":"pi.lan","seq":1}"#;
        let sealed = key.seal(NOW_US, body);
        let a = d.decode(&sealed, now()).unwrap();
        assert_eq!(a.signed, Some(Signature { key_id: "k1".into(), timestamp_us: NOW_US }));
        assert_eq!(reason(&mut d, &sealed), RejectReason::Replayed);
        assert_eq!(reason(&mut d, body), RejectReason::Unsigned);
        let mut forged = key.seal(NOW_US + 1, body);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(reason(&mut d, &forged), RejectReason::BadSignature);
        assert_eq!(reason(&mut d, &key.seal(NOW_US - 120_000_000, body)), RejectReason::Stale);
        let other_host = key.seal(NOW_US + 2, br#"{"ID":"HTB","name":"www.example.com"}"#);
        assert_eq!(reason(&mut d, &other_host), RejectReason::HostNotAllowed);
        let compressed = key.seal(NOW_US + 3, &zlib(body));
        assert!(d.decode(&compressed, now()).is_ok());
    }

    #[test]
    fn ack_echoes_seq_and_is_signed_like_the_message() {
        let mut d = plain();
        let a = d.decode(br#"{"ID":"HTB","name":"a","seq":42}"#, now()).unwrap();
        assert_eq!(d.ack(&a, now()), br#"{"ID":"ACK","name":"a","seq":42}"#);
        let (mut d, key) = signed_decoder(&[]);
        let datagram = key.seal(NOW_US, br#"{"ID":"HTB","name":"a"}"#);
        let a = d.decode(&datagram, now()).unwrap();
        let ack = d.ack(&a, now());
        let ring = Keyring::new(vec![key], Duration::from_secs(60));
        assert_eq!(ring.open(&ack, now()).unwrap().payload, br#"{"ID":"ACK","name":"a"}"#);
    }

    #[test]
    fn plugin_data_is_checked_entry_by_entry() {
        let mut d = plain();
        let message = serde_json::json!({
            "ID": "HTB", "name": "a", "latency_ms": 1.25,
            "plugins": {
                "cpu_monitor": {"kind": "monitor", "at": 1.5, "data": {"cpu_percent": 12.5}},
                "os_info": {"kind": "info", "at": 1.0, "data": {"os": "linux"}},
                "broken": {"kind": "monitor", "at": 2.0, "error": "timed out after 10 s"},
                "Bad Name": {"kind": "monitor", "at": 1.0, "data": {}},
            }
        });
        let text = message.to_string();
        let a = d.decode(text.as_bytes(), now()).unwrap();
        assert!(a.heartbeat);
        assert_eq!(a.latency_ms, Some(1.25));
        let names: Vec<&str> = a.plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["broken", "cpu_monitor", "os_info"]);
        assert_eq!(a.plugins[1].data.as_deref(), Some(r#"{"cpu_percent":12.5}"#));
        assert_eq!(a.plugins[0].error.as_deref(), Some("timed out after 10 s"));
        assert_eq!(a.plugins[2].kind, PluginKind::Info);
        assert_eq!(a.dropped_plugins.len(), 1, "{:?}", a.dropped_plugins);
        assert!(a.dropped_plugins[0].starts_with("Bad Name: "));
    }

    /// `plugin_intervals` gives plugins their declared interval; what is
    /// not a number of seconds is passed over, never the message.
    #[test]
    fn declared_plugin_intervals() {
        let mut d = plain();
        let entry = serde_json::json!({"kind": "monitor", "at": 1.0, "data": {}});
        let message = serde_json::json!({
            "ID": "HTB", "name": "a",
            "plugins": {"cpu": entry, "disk": entry, "mem": entry},
            "plugin_intervals": {"cpu": 10, "disk": "often", "mem": -1, "other": 5},
        });
        let text = message.to_string();
        let a = d.decode(text.as_bytes(), now()).unwrap();
        let declared: Vec<_> = a.plugins.iter().map(|p| (p.name.as_str(), p.interval)).collect();
        assert_eq!(declared, [("cpu", Some(10.0)), ("disk", None), ("mem", None)]);
        let message = serde_json::json!({"ID": "HTB", "name": "a", "plugins": {"cpu": entry}, "plugin_intervals": [1]});
        let text = message.to_string();
        let a = d.decode(text.as_bytes(), now()).unwrap();
        assert_eq!((a.plugins.len(), a.plugins[0].interval), (1, None));
    }

    /// `tags` keeps the valid tags, sorted and bounded; a bad member or
    /// a bad tag never costs the message.
    #[test]
    fn declared_tags_are_checked_one_by_one() {
        let mut d = plain();
        let many: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
        let cases = [
            (serde_json::json!(["eu", "db", "db", "Bad Tag", "<b>", 5, "x".repeat(33)]), vec!["db", "eu"]),
            (serde_json::json!("db"), vec![]),
            (serde_json::json!({"db": 1}), vec![]),
            (serde_json::json!(many), many.iter().take(MAX_TAGS).map(String::as_str).collect()),
        ];
        for (tags, expected) in cases {
            let text = serde_json::json!({"ID": "HTB", "name": "a", "tags": tags}).to_string();
            let a = d.decode(text.as_bytes(), now()).unwrap();
            assert_eq!(a.tags, expected, "{tags}");
        }
        let a = d.decode(br#"{"ID":"HTB","name":"a"}"#, now()).unwrap();
        assert!(a.tags.is_empty());
    }

    #[test]
    fn plugin_limits_and_bad_entries() {
        let mut d = plain();
        let entry = |data: serde_json::Value| serde_json::json!({"kind": "monitor", "at": 1.0, "data": data});
        let wide: serde_json::Map<String, serde_json::Value> =
            (0..30).map(|i| (format!("k{i}"), serde_json::json!(i))).collect();
        let message = serde_json::json!({
            "ID": "PLG", "name": "a",
            "plugins": {
                "a1": entry(serde_json::json!({"x": 1})),
                "a2": entry(serde_json::Value::Object(wide)),
                "a3": entry(serde_json::json!([1, 2])),
                "a4": {"kind": "monitor", "at": 1.0},
                "a5": {"kind": "sometimes", "at": 1.0, "data": {}},
                "a6": entry(serde_json::json!({"y": 2})),
                "a7": entry(serde_json::json!({"z": 3})),
                "a8": entry(serde_json::json!({"w": 4})),
                "a0": entry(serde_json::json!({"long": "x".repeat(100)})),
            }
        });
        let text = message.to_string();
        let a = d.decode(text.as_bytes(), now()).unwrap();
        assert!(!a.heartbeat, "PLG carries plugin data only");
        let names: Vec<&str> = a.plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a1", "a6", "a7"]);
        let why = a.dropped_plugins.join("\n");
        for expected in [
            "a2: 30 keys exceed max_plugin_keys 20",
            "a3: `data` is not an object",
            "a4: needs exactly one",
            "a5: unknown variant",
            "a8: more than 3 plugins",
            "a0: 111 bytes exceed max_plugin_size 100",
        ] {
            assert!(why.contains(expected), "{expected} in {why}");
        }
        let bad_latency = br#"{"ID":"HTB","name":"a","latency_ms":-1}"#;
        assert_eq!(reason(&mut d, bad_latency), RejectReason::BadField);
    }
}
