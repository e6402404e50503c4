//! Signed datagrams: the `HBS1` envelope, the keyring and replay protection.
//!
//! Layout (docs/PROTOCOL.md has a worked example):
//!
//! ```text
//! "HBS1" | key id length (1 byte) | key id | timestamp (u64 BE, µs since epoch) | payload | HMAC-SHA256 tag (32 bytes)
//! ```
//!
//! The tag covers every byte before it and is checked in constant time before
//! the payload is inflated or parsed, so an unauthenticated sender costs one
//! HMAC and nothing more. Replays are stopped twice: the timestamp must lie
//! within `auth_window` of our clock, and per host name [`ReplayGuard`] accepts
//! each timestamp once (senders keep theirs strictly increasing).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::is_valid_host_name;

pub const MAGIC: &[u8; 4] = b"HBS1";
pub const TAG_LEN: usize = 32;
const MIN_SECRET_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Which host names a key may speak for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: any host.
    Any,
    /// `name.example.com`: that host only.
    Exact(String),
    /// `*.example.com`: any host below that domain.
    Below(String),
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let lower = text.to_ascii_lowercase();
        if lower == "*" {
            return Ok(HostPattern::Any);
        }
        let (pattern, name) = match lower.strip_prefix("*.") {
            Some(domain) => (HostPattern::Below(format!(".{domain}")), domain),
            None => (HostPattern::Exact(lower.clone()), lower.as_str()),
        };
        if is_valid_host_name(name) {
            Ok(pattern)
        } else {
            Err(format!("hosts: `{text}` is not a host name or *.domain pattern"))
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => exact == name,
            HostPattern::Below(suffix) => name.ends_with(suffix.as_str()),
        }
    }
}

#[derive(Clone)]
pub struct Key {
    pub id: String,
    mac: HmacSha256,
    hosts: Vec<HostPattern>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Key").field("id", &self.id).field("hosts", &self.hosts).finish_non_exhaustive()
    }
}

impl Key {
    pub fn new(id: &str, secret: &[u8], hosts: Vec<HostPattern>) -> Result<Key, String> {
        let id_ok = (1..=MAX_KEY_ID_LEN).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(format!("id `{id}` must be 1 to 64 of A-Z a-z 0-9 . _ -"));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!("secret of key `{id}` is shorter than {MIN_SECRET_LEN} bytes"));
        }
        let mac = HmacSha256::new_from_slice(secret).map_err(|e| e.to_string())?;
        Ok(Key { id: id.to_string(), mac, hosts })
    }

    /// Whether this key may sign for `name` (already lower case).
    pub fn allows(&self, name: &str) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|p| p.matches(name))
    }

    /// Wraps `payload` in a signed envelope stamped `timestamp_us`.
    pub fn seal(&self, timestamp_us: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + self.id.len() + 8 + payload.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(self.id.len() as u8);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&timestamp_us.to_be_bytes());
        out.extend_from_slice(payload);
        let mut mac = self.mac.clone();
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
        out
    }
}

/// Why a signed envelope was not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Unsigned,
    Malformed,
    UnknownKey(String),
    BadTag(String),
    Stale { key: String, skew_s: i64 },
}

/// What a valid envelope tells about its sender.
#[derive(Debug)]
pub struct Opened<'a> {
    pub key: &'a Key,
    pub timestamp_us: u64,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<Key>,
    window: Duration,
}

impl Keyring {
    pub fn new(keys: Vec<Key>, window: Duration) -> Keyring {
        Keyring { keys, window }
    }

    pub fn key(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Checks tag and freshness of `datagram`; the payload it returns is still
    /// untrusted as to content, but comes from a key holder and is recent.
    pub fn open<'a>(&'a self, datagram: &'a [u8], now: SystemTime) -> Result<Opened<'a>, AuthError> {
        let rest = datagram.strip_prefix(MAGIC.as_slice()).ok_or(AuthError::Unsigned)?;
        let (&id_len, rest) = rest.split_first().ok_or(AuthError::Malformed)?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + 8 + TAG_LEN {
            return Err(AuthError::Malformed);
        }
        let id = &rest[..id_len];
        let key = self
            .keys
            .iter()
            .find(|k| k.id.as_bytes() == id)
            .ok_or_else(|| AuthError::UnknownKey(String::from_utf8_lossy(id).into_owned()))?;
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let mut mac = key.mac.clone();
        mac.update(signed);
        mac.verify_slice(tag).map_err(|_| AuthError::BadTag(key.id.clone()))?;

        let ts_bytes: [u8; 8] = rest[id_len..id_len + 8].try_into().map_err(|_| AuthError::Malformed)?;
        let timestamp_us = u64::from_be_bytes(ts_bytes);
        let now_us = now.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i128).unwrap_or(0);
        let skew_us = timestamp_us as i128 - now_us;
        if skew_us.unsigned_abs() > self.window.as_micros() {
            return Err(AuthError::Stale { key: key.id.clone(), skew_s: (skew_us / 1_000_000) as i64 });
        }
        let payload_start = MAGIC.len() + 1 + id_len + 8;
        Ok(Opened { key, timestamp_us, payload: &datagram[payload_start..datagram.len() - TAG_LEN] })
    }
}

/// How many recent timestamps per host are remembered, so that datagrams
/// reordered in the network are still accepted once.
const REPLAY_MEMORY: usize = 32;

#[derive(Debug, Default, Clone)]
struct SeenTimestamps {
    /// Ascending; at most [`REPLAY_MEMORY`] entries.
    recent: Vec<u64>,
}

/// Remembers, per host name, which signed timestamps were accepted.
///
/// A timestamp is accepted once, and only if it is newer than the oldest one
/// remembered: a captured datagram replayed later is always older than that.
///
/// Across restarts, and crashes above all, nothing needs to be saved: every
/// timestamp up to the moment this process started (`floor_us`) is refused
/// for every host. A datagram captured before hbd went down carries a
/// timestamp from before the restart, so it cannot be replayed after it,
/// even when the state file is a minute old or lost.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    hosts: HashMap<String, SeenTimestamps>,
    floor_us: u64,
}

impl ReplayGuard {
    /// Starts from each host's newest timestamp of a previous run (from the
    /// state file) and refuses every timestamp up to `floor_us`, the start
    /// of this process.
    pub fn with_newest(newest: impl IntoIterator<Item = (String, u64)>, floor_us: u64) -> ReplayGuard {
        let hosts = newest.into_iter().map(|(name, ts)| (name, SeenTimestamps { recent: vec![ts] })).collect();
        ReplayGuard { hosts, floor_us }
    }

    /// Records `timestamp_us` for `name`; false if it was seen or is too old.
    pub fn accept(&mut self, name: &str, timestamp_us: u64) -> bool {
        if timestamp_us <= self.floor_us {
            return false;
        }
        let seen = match self.hosts.get_mut(name) {
            Some(seen) => seen,
            None => self.hosts.entry(name.to_string()).or_default(),
        };
        let recent = &mut seen.recent;
        let position = match recent.binary_search(&timestamp_us) {
            Ok(_) => return false,
            Err(position) => position,
        };
        if position == 0 && !recent.is_empty() {
            return false;
        }
        recent.insert(position, timestamp_us);
        if recent.len() > REPLAY_MEMORY {
            recent.remove(0);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hosts: &[&str]) -> Key {
        let hosts = hosts.iter().map(|h| HostPattern::parse(h).unwrap()).collect();
        Key::new("k1", b"0123456789abcdef", hosts).unwrap()
    }

    fn at(us: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(us)
    }

    #[test]
    fn sealed_datagram_opens_with_same_key() {
        let ring = Keyring::new(vec![key(&[])], Duration::from_secs(60));
        let sealed = key(&[]).seal(1_000_000_000, b"{\"x\":1}");
        let opened = ring.open(&sealed, at(1_000_000_000)).unwrap();
        assert_eq!(opened.payload, b"{\"x\":1}");
        assert_eq!(opened.key.id, "k1");
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        let ring = Keyring::new(vec![key(&[])], Duration::from_secs(60));
        let sealed = key(&[]).seal(1_000_000_000, b"{\"x\":1}");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(ring.open(&bad, at(1_000_000_000)).is_err(), "byte {i}");
        }
    }

    #[test]
    fn truncated_and_foreign_envelopes_are_rejected() {
        let ring = Keyring::new(vec![key(&[])], Duration::from_secs(60));
        let sealed = key(&[]).seal(1_000_000_000, b"{}");
        for n in 0..sealed.len() {
            assert!(ring.open(&sealed[..n], at(1_000_000_000)).is_err());
        }
        let other = Key::new("k2", b"fedcba9876543210", vec![]).unwrap().seal(1_000_000_000, b"{}");
        assert_eq!(ring.open(&other, at(1_000_000_000)).unwrap_err(), AuthError::UnknownKey("k2".into()));
        assert_eq!(ring.open(b"{}", at(0)).unwrap_err(), AuthError::Unsigned);
    }

    #[test]
    fn wrong_secret_same_id_is_a_bad_tag() {
        let ring = Keyring::new(vec![key(&[])], Duration::from_secs(60));
        let forged = Key::new("k1", b"not-the-secret!!", vec![]).unwrap().seal(1_000_000_000, b"{}");
        assert_eq!(ring.open(&forged, at(1_000_000_000)).unwrap_err(), AuthError::BadTag("k1".into()));
    }

    #[test]
    fn timestamps_outside_the_window_are_stale() {
        let ring = Keyring::new(vec![key(&[])], Duration::from_secs(60));
        let now = 10_000_000_000;
        for (ts, ok) in [(now, true), (now - 60_000_000, true), (now - 61_000_000, false), (now + 61_000_000, false)] {
            let sealed = key(&[]).seal(ts, b"{}");
            assert_eq!(ring.open(&sealed, at(now)).is_ok(), ok, "ts {ts}");
        }
    }

    #[test]
    fn host_patterns() {
        let k = key(&["router1", "*.lan"]);
        assert!(k.allows("router1"));
        assert!(k.allows("pi.lan"));
        assert!(!k.allows("lan"));
        assert!(!k.allows("router2"));
        assert!(!k.allows("evil-lan"));
        assert!(key(&[]).allows("anything"));
        assert!(key(&["*"]).allows("anything"));
        assert!(HostPattern::parse("bad_name").is_err());
        assert!(HostPattern::parse("*.").is_err());
    }

    #[test]
    fn replay_guard_accepts_each_timestamp_once_and_tolerates_reordering() {
        let mut guard = ReplayGuard::default();
        assert!(guard.accept("a", 100));
        assert!(!guard.accept("a", 100));
        assert!(guard.accept("a", 102));
        assert!(guard.accept("a", 101), "reordered datagram is accepted once");
        assert!(!guard.accept("a", 101));
        assert!(guard.accept("b", 100), "hosts are independent");
        for ts in 200..300 {
            assert!(guard.accept("a", ts));
        }
        assert!(!guard.accept("a", 150), "older than everything remembered");
    }

    #[test]
    fn replay_guard_seeded_from_previous_run_rejects_older() {
        let mut guard = ReplayGuard::with_newest([("a".to_string(), 500)], 0);
        assert!(!guard.accept("a", 400));
        assert!(!guard.accept("a", 500));
        assert!(guard.accept("a", 501));
    }

    #[test]
    fn nothing_from_before_the_start_is_accepted_for_any_host() {
        let mut guard = ReplayGuard::with_newest([("a".to_string(), 500)], 1000);
        assert!(!guard.accept("a", 999), "sent before a crash, newer than the last save");
        assert!(!guard.accept("new", 1000), "hosts the state file never saw too");
        assert!(guard.accept("new", 1001));
        assert!(guard.accept("a", 1002));
    }
}
