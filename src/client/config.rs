//! hbc's configuration: `hbc.yaml` → [`ClientConfig`] (strict, every key
//! optional, the Python client's keys kept) → [`ClientConfig::check`], the
//! only way to the [`ClientSettings`] the sender runs on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::plugins::PluginsConfig;
use crate::client::sender::{ClientSettings, Target};
use crate::wire::auth::Key;
use crate::wire::{is_valid_host_name, is_valid_tag, MAX_TAGS};
use crate::yaml::{self, redact, ConfigError, ConfigFile, KeySpec, Range};

/// Every top-level key `hbc.yaml` accepts, in the order of `man 5 hbc.yaml`,
/// with the range of each number: [`ClientConfig::check`] checks the values
/// against them, and an integration test keeps the man page's keys and
/// ranges equal to these.
pub const KEY_SPECS: &[KeySpec] = &[
    KeySpec::new("server"),
    KeySpec::new("port").range(Range::int(0, 65535)),
    KeySpec::new("interval").range(Range::int(1, 86400)).unit("seconds"),
    KeySpec::new("name"),
    KeySpec::new("key"),
    KeySpec::new("max_datagram_size").range(Range::int(512, 65000)).unit("bytes"),
    KeySpec::new("tags"),
    KeySpec::new("plugins"),
];

/// The names of [`KEY_SPECS`].
pub const KEYS: &[&str] = &yaml::names::<{ KEY_SPECS.len() }>(KEY_SPECS);

/// `server:` takes one name or a list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Servers {
    One(String),
    Many(Vec<String>),
}

impl Servers {
    pub fn list(&self) -> Vec<String> {
        match self {
            Servers::One(s) => vec![s.clone()],
            Servers::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKey {
    pub id: String,
    #[serde(serialize_with = "redact")]
    pub secret: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    pub server: Servers,
    pub port: u16,
    pub interval: u64,
    pub name: Option<String>,
    pub key: Option<ClientKey>,
    pub max_datagram_size: usize,
    /// Groups the host belongs to (`[db, eu]`), sent in each heartbeat.
    pub tags: Vec<String>,
    pub plugins: PluginsConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            server: Servers::Many(Vec::new()),
            port: 50003,
            interval: 30,
            name: None,
            key: None,
            max_datagram_size: 1400,
            tags: Vec::new(),
            plugins: PluginsConfig::default(),
        }
    }
}

impl ConfigFile for ClientConfig {
    const KEYS: yaml::Keys = yaml::Keys { keys: KEYS, later: &[] };

    fn problems(&self) -> Vec<String> {
        self.settings().err().unwrap_or_default()
    }
}

impl ClientConfig {
    /// The checked settings (after the command line changed what it changes);
    /// `origin` names the configuration in messages.
    pub fn check(&self, origin: &str) -> Result<ClientSettings, ConfigError> {
        self.settings().map_err(|problems| ConfigError::invalid(origin, problems))
    }

    fn settings(&self) -> Result<ClientSettings, Vec<String>> {
        let mut problems: Vec<String> =
            yaml::range_problems(self, KEY_SPECS).into_iter().map(|(key, text)| format!("{key}: {text}")).collect();
        let name = self.host_name().map_err(|problem| problems.push(problem)).unwrap_or_default();
        let key = match &self.key {
            Some(key) => Key::new(&key.id, key.secret.as_bytes(), Vec::new())
                .map_err(|problem| problems.push(format!("key: {problem}")))
                .ok(),
            None => None,
        };
        let mut targets = Vec::new();
        for server in self.server.list() {
            match parse_server(&server, self.port) {
                Ok(target) => targets.push(target),
                Err(problem) => problems.push(format!("server: {problem}")),
            }
        }
        problems.extend(self.plugins.check());
        let tags = self.checked_tags().map_err(|p| problems.extend(p)).unwrap_or_default();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ClientSettings {
            name,
            targets,
            interval: Duration::from_secs(self.interval),
            key,
            max_datagram_size: self.max_datagram_size,
            tags,
        })
    }

    /// `tags`, sorted: each a tag name as hbd accepts it, at most
    /// `MAX_TAGS` of them (hbd would pass over the rest).
    fn checked_tags(&self) -> Result<Vec<String>, Vec<String>> {
        let mut problems: Vec<String> = self
            .tags
            .iter()
            .filter(|t| !is_valid_tag(t))
            .map(|t| format!("tags: `{t}` is not a tag (1 to 32 of a-z 0-9 _ - .)"))
            .collect();
        let mut tags = self.tags.clone();
        tags.sort_unstable();
        tags.dedup();
        if tags.len() > MAX_TAGS {
            problems.push(format!("tags: {} tags, more than {MAX_TAGS}", tags.len()));
        }
        if problems.is_empty() {
            Ok(tags)
        } else {
            Err(problems)
        }
    }

    /// The name hbc reports: `name`, else the system's host name.
    fn host_name(&self) -> Result<String, String> {
        if let Some(name) = &self.name {
            return if is_valid_host_name(name) {
                Ok(name.to_ascii_lowercase())
            } else {
                Err(format!("name: `{name}` is not an RFC 1123 host name"))
            };
        }
        let name = sysinfo::System::host_name().unwrap_or_default().to_ascii_lowercase();
        if is_valid_host_name(&name) {
            Ok(name)
        } else {
            Err(format!("name: the system's host name `{name}` is not an RFC 1123 host name; set `name` or --name"))
        }
    }
}

/// Splits `HOST[:PORT]`, `[V6]:PORT` or a bare IPv6 address.
pub fn parse_server(text: &str, default_port: u16) -> Result<Target, String> {
    let bad_port = |p: &str| format!("`{p}` in server `{text}` is not a port number");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("server `{text}` lacks the closing ]"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad_port(p))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("unexpected `{after}` after ] in server `{text}`")),
        };
        (host.to_string(), port)
    } else if text.matches(':').count() == 1 {
        let (host, p) = text.split_once(':').unwrap_or((text, ""));
        (host.to_string(), p.parse().map_err(|_| bad_port(p))?)
    } else {
        (text.to_string(), default_port)
    };
    if host.is_empty() {
        return Err(format!("server `{text}` has no host"));
    }
    Ok(Target { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_client_yaml_is_accepted() {
        let c = ClientConfig::parse(
            "server: hbd.example.com\nport: 50003\ninterval: 30\nplugins:\n  cpu_monitor:\n    interval: 300\n    per_core: true\n\
             \x20 memory_monitor:\n    interval: 300\n  nagios_runner:\n    interval: 300\n    commands:\n\
             \x20     - /usr/lib/nagios/plugins/check_load -w 5,4,3 -c 10,8,6\n      - /usr/lib/nagios/plugins/check_disk -w 20% -c 10% -p /\n",
            "hbc.yaml",
        )
        .unwrap();
        assert_eq!(c.server.list(), ["hbd.example.com"]);
        assert!(c.plugins.cpu_monitor.per_core);
        assert_eq!(c.plugins.nagios_runner.commands.len(), 2);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            ("sever: x\n", "unknown key `sever` (did you mean `server`?)"),
            ("plugins:\n  cpu_monitor:\n    per_cor: true\n", "per_cor"),
            ("plugins:\n  nosuch: {}\n", "nosuch"),
            ("name: 'bad name'\n", "name: `bad name` is not an RFC 1123 host name"),
            ("server: 'h:notaport'\n", "`notaport` in server"),
            (
                "plugins:\n  memory_monitor:\n    interval: 18446744073709551615\n",
                "plugins.memory_monitor.interval: 18446744073709551615 is outside",
            ),
            (
                "plugins:\n  exec:\n    - {name: x, command: y, timeout: 99999999}\n",
                "plugins.exec[0]: timeout: 99999999 is outside",
            ),
            ("dyndomains: [a]\n", "unknown key `dyndomains`"),
            ("tags: [db, 'Bad Tag']\n", "tags: `Bad Tag` is not a tag"),
            ("tags: db\n", "tags"),
            ("interval: 0\n", "interval: 0 is outside 1 to 86400 seconds"),
            ("max_datagram_size: 65001\n", "max_datagram_size: 65001 is outside 512 to 65000 bytes"),
            (
                "plugins:\n  nagios_runner:\n    commands:\n      - {name: x, command: y, timout: 5}\n",
                "plugins.nagios_runner.commands: unknown key `timout`",
            ),
            ("key: {id: k, secret: short}\n", "key: secret of key `k` is shorter than 16 bytes"),
            ("plugins:\n  exec:\n    - {name: cpu_monitor, command: x}\n", "`cpu_monitor` is already a plugin's name"),
        ] {
            let e = ClientConfig::parse(text, "hbc.yaml").unwrap_err().to_string();
            assert!(e.contains(expected), "{text:?} gave {e}");
        }
    }

    #[test]
    fn server_forms() {
        let t = |s: &str| parse_server(s, 50003).map(|t| (t.host, t.port));
        assert_eq!(t("hbd.lan"), Ok(("hbd.lan".into(), 50003)));
        assert_eq!(t("hbd.lan:6000"), Ok(("hbd.lan".into(), 6000)));
        assert_eq!(t("[::1]:6000"), Ok(("::1".into(), 6000)));
        assert_eq!(t("[::1]"), Ok(("::1".into(), 50003)));
        assert_eq!(t("2001:db8::1"), Ok(("2001:db8::1".into(), 50003)));
        assert!(t("[::1").is_err());
        assert!(t(":5").is_err());
    }

    #[test]
    fn every_key_with_a_range_is_a_number_in_range_by_default() {
        let values = serde_yaml::to_value(ClientConfig::default()).unwrap();
        for spec in KEY_SPECS.iter().filter(|s| s.range.is_some()) {
            let value = &values[spec.name];
            assert!(value.is_number(), "{} has a range but is {value:?}, never checked", spec.name);
            assert_eq!(spec.problem(value), None, "the default of {}", spec.name);
        }
    }

    #[test]
    fn keys_list_matches_config_fields() {
        let message = serde_yaml::from_str::<ClientConfig>("no_such_key: 1").unwrap_err().to_string();
        let listed: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        assert_eq!(listed, KEYS);
    }
}
