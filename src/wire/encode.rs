//! Building datagrams: hbc's messages (JSON, compressed, signed) and hbd's
//! ACKs. The decoder's counterpart; docs/PROTOCOL.md is the format.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::auth::{Key, TAG_LEN};
use super::deflate;
use super::{push_decimal, unix_micros, PluginKind, ACK_ID, HEARTBEAT_ID, PLUGIN_DATA_ID};

/// Messages smaller than this are sent uncompressed: zlib would not pay.
const COMPRESS_ABOVE: usize = 256;

/// What one message carries besides its plugin data.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// True for the `HTB` heartbeat; false for a `PLG` message with plugin data only.
    pub heartbeat: bool,
    pub name: &'a str,
    pub interval_s: u64,
    pub seq: u64,
    pub latency_ms: Option<f64>,
    /// The sending program (`HBC_CLIENT`, or `HBD_CLIENT` to a peer).
    pub client: &'a str,
}

/// A message as a JSON object; `plugins` are `(name, entry)` pairs built by
/// [`plugin_entry`], `intervals` the seconds between samples of those
/// plugins that have one (sent as `plugin_intervals`).
pub fn message(header: Header, plugins: &[(String, Value)], intervals: &BTreeMap<String, f64>) -> Value {
    let mut m = Map::new();
    m.insert("ID".into(), json!(if header.heartbeat { HEARTBEAT_ID } else { PLUGIN_DATA_ID }));
    m.insert("name".into(), json!(header.name));
    if header.heartbeat {
        m.insert("interval".into(), json!(header.interval_s));
    }
    m.insert("seq".into(), json!(header.seq));
    if let (true, Some(latency)) = (header.heartbeat, header.latency_ms) {
        m.insert("latency_ms".into(), json!(latency));
    }
    if header.heartbeat {
        m.insert("client".into(), json!(header.client));
    }
    if !plugins.is_empty() {
        m.insert("plugins".into(), Value::Object(plugins.iter().cloned().collect()));
        let declared: Map<String, Value> =
            plugins.iter().filter_map(|(name, _)| Some((name.clone(), json!(intervals.get(name)?)))).collect();
        if !declared.is_empty() {
            m.insert("plugin_intervals".into(), Value::Object(declared));
        }
    }
    Value::Object(m)
}

/// Adds the client's `tags` to a heartbeat built by [`message`] (not to
/// `PLG` messages, and not when there are none): a member of its own, which
/// older hbds ignore.
pub fn add_tags(message: &mut Value, tags: &[String]) {
    if let (Some(m), false) = (message.as_object_mut(), tags.is_empty()) {
        if m.get("ID").and_then(Value::as_str) == Some(HEARTBEAT_ID) {
            m.insert("tags".into(), json!(tags));
        }
    }
}

/// One plugin's entry: its data object, or the error it reported instead.
pub fn plugin_entry(kind: PluginKind, at: f64, result: &Result<Value, String>) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!(kind));
    m.insert("at".into(), json!((at * 1000.0).round() / 1000.0));
    match result {
        Ok(data) => m.insert("data".into(), data.clone()),
        Err(e) => m.insert("error".into(), json!(e)),
    };
    Value::Object(m)
}

/// `text` zlib-compressed when that makes it smaller, else as it is: the
/// decoder tells the two apart by the first byte.
pub fn compress(text: &[u8]) -> Vec<u8> {
    if text.len() <= COMPRESS_ABOVE {
        return text.to_vec();
    }
    let zipped = deflate::zlib(text);
    if zipped.len() < text.len() {
        zipped
    } else {
        text.to_vec()
    }
}

/// Bytes the signed envelope adds around a payload.
pub fn envelope_len(key: Option<&Key>) -> usize {
    key.map_or(0, |k| 4 + 1 + k.id.len() + 8 + TAG_LEN)
}

/// The datagram for `payload`: sealed with `key` at `timestamp_us`, or as it is.
pub fn datagram(payload: Vec<u8>, key: Option<&Key>, timestamp_us: u64) -> Vec<u8> {
    match key {
        Some(key) => key.seal(timestamp_us, &payload),
        None => payload,
    }
}

/// The acknowledgement of a message from `name`, echoing its `seq`: signed
/// with the message's key when it was signed, so a client can trust the
/// round trip it measures.
pub fn ack(name: &str, seq: Option<u64>, key: Option<&Key>, now: SystemTime) -> Vec<u8> {
    let mut out = Vec::new();
    ack_into(&mut out, name, seq, key, now);
    out
}

/// [`ack`] written into `out`, which is cleared first. Built without `fmt`
/// and, unsigned, without allocating: hbd sends one per heartbeat. `name`
/// is a checked host name, so it needs no JSON escaping.
pub fn ack_into(out: &mut Vec<u8>, name: &str, seq: Option<u64>, key: Option<&Key>, now: SystemTime) {
    out.clear();
    out.extend_from_slice(b"{\"ID\":\"");
    out.extend_from_slice(ACK_ID.as_bytes());
    out.extend_from_slice(b"\",\"name\":\"");
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
    if let Some(seq) = seq {
        out.extend_from_slice(b",\"seq\":");
        push_decimal(out, seq);
    }
    out.push(b'}');
    if let Some(key) = key {
        let sealed = key.seal(unix_micros(now), out);
        *out = sealed;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn inflate(bytes: &[u8]) -> Vec<u8> {
        let mut text = Vec::new();
        flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut text).unwrap();
        text
    }

    #[test]
    fn only_what_gets_smaller_is_compressed() {
        let small = b"{\"ID\":\"HTB\",\"name\":\"h\"}";
        assert_eq!(compress(small), small);
        let text = "{\"plugins\":{}}".replace("{}", &"{\"cpu_percent\":12.5,\"load_1min\":0.25},".repeat(20));
        let zipped = compress(text.as_bytes());
        assert!(zipped.len() < text.len() / 4);
        assert_eq!(inflate(&zipped), text.as_bytes());
        // Incompressible: as it is.
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert_eq!(compress(&noise), noise);
    }
}
