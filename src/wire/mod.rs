//! The wire area: the datagram format hbd and hbc share (docs/PROTOCOL.md).
//!
//! [`decode`] turns a datagram into a checked message or a counted rejection
//! (and reads ACKs for hbc), [`encode`] builds messages, ACKs and signed
//! envelopes, [`auth`] owns the HMAC envelope and replay memory. This module
//! holds what both directions need: message IDs, plugin kinds, the name
//! rules and time helpers.
//!
//! Invariant: the wire area imports neither the server nor the client.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub mod auth;
pub mod decode;
mod deflate;
pub mod encode;
mod scan;

/// `ID` of a heartbeat, as the Python hbc sends it.
pub const HEARTBEAT_ID: &str = "HTB";
/// `ID` of a message that carries only plugin data: the part of a client's
/// plugin data that did not fit into its heartbeat's datagram.
pub const PLUGIN_DATA_ID: &str = "PLG";
/// `ID` of the server's acknowledgement.
pub const ACK_ID: &str = "ACK";
/// How a heartbeat's `client` member starts when another hbd sends it
/// (`peers:`): hbd tells peer hbds from hosts by it.
pub const HBD_CLIENT_PREFIX: &str = "hbd ";
/// The `client` member of hbc's heartbeats.
pub const HBC_CLIENT: &str = concat!("hbc ", env!("CARGO_PKG_VERSION"));
/// The `client` member of the heartbeats hbd sends its peers.
pub const HBD_CLIENT: &str = concat!("hbd ", env!("CARGO_PKG_VERSION"));

/// Info plugins are kept until replaced; monitor plugins keep a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Info,
    Monitor,
}

pub fn unix_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

pub fn is_valid_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
}

/// Most tags one host may carry from its client (`tags` of a heartbeat);
/// hbd passes over the rest.
pub const MAX_TAGS: usize = 16;

/// A tag (`tags: [db, eu]`): 1 to 32 of a-z 0-9 _ - . as plugin names, so
/// it is safe in URLs, metric labels, SVG and HTML without escaping.
pub fn is_valid_tag(tag: &str) -> bool {
    tag.len() <= 32 && is_valid_plugin_name(tag)
}

/// RFC 1123 host name: dot-separated labels of 1 to 63 letters, digits and
/// hyphens, not starting or ending with a hyphen, 253 characters at most.
/// Such a name is safe in DNS updates, file names and HTML.
pub fn is_valid_host_name(name: &str) -> bool {
    // On bytes: a '.' is never part of a multi-byte character, and any
    // non-ASCII byte fails the label check, as its character would.
    !name.is_empty()
        && name.len() <= 253
        && name.as_bytes().split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with(b"-")
                && !label.ends_with(b"-")
                && label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `s` cut to at most `n` characters, for putting untrusted text into
/// messages and logs.
pub fn truncate_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Appends `n` in decimal, without `fmt`: for the lines and datagrams
/// written once per heartbeat.
/// Two digits at a time (a u64 has at most 20, so `i` stays in range):
/// half the divisions of one at a time.
pub fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

/// "00" to "99", for [`push_decimal`].
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// One plugin's report inside a message, checked by the decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSample {
    pub name: String,
    pub kind: PluginKind,
    /// When the client took the sample (Unix seconds, client's clock).
    pub at: f64,
    /// The plugin's data object as compact JSON, or None when it reported `error`.
    pub data: Option<Arc<str>>,
    pub error: Option<String>,
    /// Seconds between the plugin's samples, as its client declares them
    /// (`plugin_intervals`); None: hbd estimates the spacing itself.
    pub interval: Option<f64>,
}

/// `ID` of a job's signal (`hbc run`, `hbc signal`, or a shell script with
/// `nc -u`): a run started, succeeded or failed (docs/PROTOCOL.md).
pub const JOB_ID: &str = "JOB";
/// Bytes of a run's output a signal may carry: its tail, what a person
/// reads first when a job fails. Longer output is cut at the front.
pub const JOB_OUTPUT_MAX: usize = 4096;
/// Characters of a signal's `message`.
pub const JOB_MESSAGE_MAX: usize = 512;

/// What a job's signal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobEvent {
    Start,
    Ok,
    Fail,
}

impl JobEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            JobEvent::Start => "start",
            JobEvent::Ok => "ok",
            JobEvent::Fail => "fail",
        }
    }
}

/// A job's signal, checked by the decoder: every number in range, the
/// output and message bounded and valid UTF-8.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSignal {
    pub event: JobEvent,
    /// The command's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Its run time, as the sender measured it.
    pub duration_s: Option<f64>,
    /// The tail of its output, at most [`JOB_OUTPUT_MAX`] bytes.
    pub output: Option<String>,
    /// A short text from the sender (`hbc signal --message`).
    pub message: Option<String>,
    /// Whether the signal declared `interval` (else the job keeps its own).
    pub interval_given: bool,
    /// Seconds after `interval` before the job counts as down; None: hbd's `grace`.
    pub grace: Option<f64>,
    /// A started run not finished this long (plus grace) after its start is CRITICAL.
    pub timeout: Option<f64>,
    /// The message's `seq`: a repeat of the last signal (its ACK was lost)
    /// carries the same and is taken once.
    pub seq: Option<u64>,
}

/// The last at most `max` bytes of `s`, cut at a character boundary.
pub fn tail_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_decimal_writes_what_display_does() {
        let mut samples = vec![0, 1, 9, 10, 99, 100, 101, 999, 1000, 65535, 1_780_000_000, u64::MAX - 1, u64::MAX];
        samples.extend((0..64).map(|shift| 1u64 << shift).flat_map(|p| [p - 1, p, p + 1]));
        for n in samples {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }
}
