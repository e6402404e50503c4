//! `hbd_name`, `peers:` and `peer_interval`: the other hbds this one sends
//! its own heartbeat to, so that each tracks the others like any host.

use serde::{Deserialize, Serialize};

use crate::server::peers::{Peer, PeerSettings};
use crate::wire::auth::Key;
use crate::wire::is_valid_host_name;
use crate::yaml::redact;

/// The port a peer's heartbeats go to when `port` is not given: hbd's own
/// default `hb_port`.
const DEFAULT_PEER_PORT: u16 = 50003;

/// One entry of `peers:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its name or address, looked up again at every send (as hbc's `server`).
    pub host: String,
    /// Its `hb_port`.
    #[serde(default = "default_peer_port")]
    pub port: u16,
    /// Signs the heartbeats, when the peer takes only signed ones.
    #[serde(default)]
    pub key: Option<PeerKeyConfig>,
}

fn default_peer_port() -> u16 {
    DEFAULT_PEER_PORT
}

/// A key of the peer's `keys:` (its `id` and `secret`), as hbc's `key`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerKeyConfig {
    pub id: String,
    #[serde(serialize_with = "redact")]
    pub secret: String,
}

/// This hbd's name as a host: `hbd_name`, else the system's host name.
pub fn hbd_name(configured: Option<&str>, system: Option<String>) -> Result<String, String> {
    match configured {
        Some(name) if is_valid_host_name(name) => Ok(name.to_ascii_lowercase()),
        Some(name) => Err(format!("`{name}` is not an RFC 1123 host name")),
        None => {
            let name = system.unwrap_or_default().to_ascii_lowercase();
            if is_valid_host_name(&name) {
                Ok(name)
            } else {
                Err(format!("the system's host name `{name}` is not an RFC 1123 host name; set hbd_name"))
            }
        }
    }
}

/// The peers' settings, or None without peers; problems are `(key, text)`.
pub fn compile(
    name: &str,
    peers: &[PeerConfig],
    interval: f64,
    problem: &mut dyn FnMut(&str, String),
) -> Option<PeerSettings> {
    let mut checked = Vec::with_capacity(peers.len());
    for (index, raw) in peers.iter().enumerate() {
        let at = format!("peers[{index}]");
        if raw.host.trim().is_empty() {
            problem(&format!("{at}.host"), "is empty: name the peer hbd's host or address".into());
            continue;
        }
        if raw.port == 0 {
            problem(&format!("{at}.port"), "must be from 1 to 65535 (the peer's hb_port)".into());
            continue;
        }
        let key = match &raw.key {
            Some(key) => match Key::new(&key.id, key.secret.as_bytes(), Vec::new()) {
                Ok(key) => Some(key),
                Err(why) => {
                    problem(&format!("{at}.key"), why);
                    continue;
                }
            },
            None => None,
        };
        if checked.iter().any(|p: &Peer| p.host == raw.host && p.port == raw.port) {
            problem(&at, format!("{}:{} is listed twice", raw.host, raw.port));
            continue;
        }
        checked.push(Peer { host: raw.host.clone(), port: raw.port, key });
    }
    (!checked.is_empty()).then(|| PeerSettings {
        name: name.to_string(),
        interval: std::time::Duration::from_secs_f64(interval),
        peers: checked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(peers: &str) -> Vec<String> {
        let peers: Vec<PeerConfig> = serde_yaml::from_str(peers).unwrap();
        let mut problems = Vec::new();
        compile("hbd1", &peers, 30.0, &mut |key, text| problems.push(format!("{key}: {text}")));
        problems
    }

    #[test]
    fn names_are_host_names() {
        assert_eq!(hbd_name(Some("HBD1"), None), Ok("hbd1".into()));
        assert!(hbd_name(Some("bad name"), None).unwrap_err().contains("`bad name` is not an RFC 1123"));
        assert_eq!(hbd_name(None, Some("Router".into())), Ok("router".into()));
        assert!(hbd_name(None, Some("my_box".into())).unwrap_err().contains("set hbd_name"));
    }

    #[test]
    fn bad_peers_are_named_by_their_place() {
        assert!(problems_of("- host: hbd2\n- host: hbd3\n  port: 6000\n").is_empty());
        assert_eq!(problems_of("- host: ''\n"), ["peers[0].host: is empty: name the peer hbd's host or address"]);
        assert_eq!(
            problems_of("- host: a\n  port: 0\n"),
            ["peers[0].port: must be from 1 to 65535 (the peer's hb_port)"]
        );
        assert_eq!(problems_of("- host: a\n- host: a\n"), ["peers[1]: a:50003 is listed twice"]);
        let short = problems_of("- host: a\n  key: {id: k, secret: tiny5}\n");
        assert_eq!(short.len(), 1);
        assert!(short[0].starts_with("peers[0].key: "), "{short:?}");
        assert!(!short[0].contains("tiny5"), "never the secret: {short:?}");
    }
}
