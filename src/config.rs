//! The server's configuration: YAML → [`Config`] (strict, every key optional,
//! built-in defaults) → [`Config::check`] (semantic problems in plain words) →
//! one section per component ([`Config::udp`], [`Config::journal`], ...).
//!
//! Key names and meanings of the Python hbd are kept so its `.hb.yaml` files keep
//! working. An unknown key is an error naming the key, never silently ignored:
//! a typo must not turn a setting off. Keys of features this version does not
//! have yet are unknown keys too, with a message that says so.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::auth::{HostPattern, Key, Keyring};
use crate::http::HttpSettings;
use crate::protocol::PluginLimits;
use crate::ws::WsSettings;

/// Every top-level key `hbd.yaml` accepts, in the order of `man 5 hbd.yaml`.
/// A unit test keeps this list equal to the fields of [`Config`], and an
/// integration test keeps the man page equal to this list.
pub const KEYS: &[&str] = &[
    "hb_host",
    "hb_port",
    "recv_buffer_size",
    "max_message_size",
    "hbd_host",
    "hbd_port",
    "cors_origins",
    "ws_port",
    "ws_max_clients",
    "wss_port",
    "cert_path",
    "wss_pem",
    "wss_key",
    "templates_dir",
    "interval",
    "grace",
    "keys",
    "auth_window",
    "max_hosts",
    "plugin_history",
    "max_plugins_per_host",
    "max_plugin_keys",
    "max_plugin_size",
    "pickfile",
    "state_save_interval",
    "pidfile",
    "logfile",
    "logfmt",
    "journal_enabled",
    "journal_dir",
    "journal_file",
    "journal_max_size",
    "journal_max_backups",
];

/// Keys of the Python hbd that belong to features this version does not have
/// yet; named in the error so a user switching over knows why their file fails.
const NOT_YET_SUPPORTED: &[(&str, &str)] = &[
    ("pushsrv", "notifications"),
    ("dyndomains", "dynamic DNS updates"),
    ("nsupdate_bin", "dynamic DNS updates"),
    ("thresholds", "threshold alerting"),
    ("threshold_renotify_interval", "threshold alerting"),
];

/// Where the log goes and how each line looks (`logfmt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Time stamp, level, source and message: for a log file.
    Text,
    /// Level, source and message only: for a service manager that stamps lines
    /// itself (systemd's journal).
    Msg,
}

/// One shared key for signed datagrams (docs/PROTOCOL.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Names the key inside each signed datagram, so keys can be rotated.
    pub id: String,
    #[serde(serialize_with = "redact")]
    pub secret: String,
    /// Host names (or `*.domain` patterns) this key may speak for; empty: any.
    #[serde(default)]
    pub hosts: Vec<String>,
}

fn redact<S: Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

/// The whole server configuration, defaults included; `hbd --check-config`
/// prints it back as YAML.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub hb_host: String,
    pub hb_port: u16,
    pub recv_buffer_size: usize,
    pub max_message_size: usize,
    pub hbd_host: String,
    pub hbd_port: u16,
    pub cors_origins: Vec<String>,
    pub ws_port: u16,
    pub ws_max_clients: usize,
    pub wss_port: Option<u16>,
    pub cert_path: PathBuf,
    pub wss_pem: PathBuf,
    pub wss_key: PathBuf,
    pub templates_dir: Option<PathBuf>,
    pub interval: f64,
    pub grace: f64,
    pub keys: Vec<KeyConfig>,
    pub auth_window: u64,
    pub max_hosts: usize,
    pub plugin_history: usize,
    pub max_plugins_per_host: usize,
    pub max_plugin_keys: usize,
    pub max_plugin_size: usize,
    pub pickfile: PathBuf,
    pub state_save_interval: u64,
    pub pidfile: PathBuf,
    pub logfile: Option<PathBuf>,
    pub logfmt: LogFormat,
    pub journal_enabled: bool,
    pub journal_dir: PathBuf,
    pub journal_file: String,
    pub journal_max_size: u64,
    pub journal_max_backups: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hb_host: "::".into(),
            hb_port: 50003,
            recv_buffer_size: 4 << 20,
            max_message_size: 1 << 20,
            hbd_host: "127.0.0.1".into(),
            hbd_port: 50004,
            cors_origins: Vec::new(),
            ws_port: 50005,
            ws_max_clients: 64,
            wss_port: None,
            cert_path: "/usr/local/etc/ssl/".into(),
            wss_pem: "fullchain.pem".into(),
            wss_key: "privkey.pem".into(),
            templates_dir: None,
            interval: 30.0,
            grace: 30.0,
            keys: Vec::new(),
            auth_window: 300,
            max_hosts: 100_000,
            plugin_history: 50,
            max_plugins_per_host: 32,
            max_plugin_keys: 1000,
            max_plugin_size: 65536,
            pickfile: "hbd-state.json".into(),
            state_save_interval: 60,
            pidfile: "hbd.pid".into(),
            logfile: None,
            logfmt: LogFormat::Text,
            journal_enabled: true,
            journal_dir: "journal".into(),
            journal_file: "messages.journal".into(),
            journal_max_size: 100 << 20,
            journal_max_backups: 10,
        }
    }
}

/// A configuration that cannot be used; the daemon exits with status 78.
#[derive(Debug)]
pub enum ConfigError {
    Read { path: PathBuf, source: std::io::Error },
    Parse { path: String, message: String },
    Invalid { path: String, key: String, problem: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(f, "{}: {}", path.display(), source),
            ConfigError::Parse { path, message } => write!(f, "{path}: {message}"),
            ConfigError::Invalid { path, key, problem } => write!(f, "{path}: {key}: {problem}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The components' own sections, derived once from a checked [`Config`].
#[derive(Debug, Clone)]
pub struct UdpSettings {
    pub bind: SocketAddr,
    pub recv_buffer_size: usize,
    pub max_message_size: usize,
    pub default_interval: f64,
    pub keyring: Option<Keyring>,
    pub plugin_limits: PluginLimits,
}

#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub grace: Duration,
    pub state_save_interval: Duration,
    pub max_hosts: usize,
    pub plugin_history: usize,
    pub max_plugins_per_host: usize,
}

#[derive(Debug, Clone)]
pub struct JournalSettings {
    pub path: PathBuf,
    pub max_size: u64,
    pub max_backups: u32,
}

impl Config {
    /// Reads and checks `path`. `origin` names the file in messages.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and checks YAML text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        // An empty file (or one of comments only) means "all defaults".
        let config: Config = if text.trim().lines().all(|l| l.trim_start().starts_with('#')) {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
                path: origin.to_string(),
                message: explain_yaml_error(&e.to_string(), KEYS, NOT_YET_SUPPORTED),
            })?
        };
        config.check(origin)?;
        Ok(config)
    }

    /// The semantic checks serde cannot express, each naming its key.
    pub fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            path: origin.to_string(),
            key: key.to_string(),
            problem,
        };
        if self.hb_host.parse::<IpAddr>().is_err() {
            return Err(invalid(
                "hb_host",
                format!("`{}` is not an IP address (use :: for all addresses)", self.hb_host),
            ));
        }
        if self.hbd_host.parse::<IpAddr>().is_err() {
            return Err(invalid(
                "hbd_host",
                format!("`{}` is not an IP address (use :: for all addresses)", self.hbd_host),
            ));
        }
        if let Some(bad) =
            self.cors_origins.iter().find(|o| !(*o == "*" || o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(invalid("cors_origins", format!("`{bad}` is neither * nor an http:// or https:// origin")));
        }
        if let Some(dir) = self.templates_dir.as_ref().filter(|d| !d.is_dir()) {
            return Err(invalid("templates_dir", format!("{} is not a directory", dir.display())));
        }
        if !(1024..=64 << 20).contains(&self.max_message_size) {
            return Err(invalid(
                "max_message_size",
                format!("{} is outside 1024 to 67108864 bytes", self.max_message_size),
            ));
        }
        if !(self.interval > 0.0 && self.interval <= 86400.0) {
            return Err(invalid(
                "interval",
                format!("{} is not a number of seconds from above 0 to 86400", self.interval),
            ));
        }
        if !(self.grace >= 0.0 && self.grace <= 86400.0) {
            return Err(invalid("grace", format!("{} is not a number of seconds from 0 to 86400", self.grace)));
        }
        for (key, value, max) in [
            ("plugin_history", self.plugin_history, 10_000),
            ("max_plugins_per_host", self.max_plugins_per_host, 1000),
            ("max_plugin_keys", self.max_plugin_keys, 1_000_000),
            ("max_plugin_size", self.max_plugin_size, 64 << 20),
            ("max_hosts", self.max_hosts, 100_000_000),
            ("ws_max_clients", self.ws_max_clients, 10_000),
        ] {
            if !(1..=max).contains(&value) {
                return Err(invalid(key, format!("{value} is outside 1 to {max}")));
            }
        }
        if self.auth_window == 0 {
            return Err(invalid("auth_window", "must be at least 1 second".into()));
        }
        if !(1..=86400).contains(&self.state_save_interval) {
            return Err(invalid(
                "state_save_interval",
                format!("{} is outside 1 to 86400 seconds", self.state_save_interval),
            ));
        }
        if self.journal_file.is_empty() || self.journal_file.contains('/') {
            return Err(invalid(
                "journal_file",
                format!("`{}` must be a plain file name (the directory is journal_dir)", self.journal_file),
            ));
        }
        self.keyring().map_err(|(index, problem)| invalid(&format!("keys[{index}]"), problem))?;
        Ok(())
    }

    /// Makes every relative path absolute against `cwd`, so that they keep
    /// meaning the same files after a daemon changes directory to `/`.
    pub fn absolutize(&mut self, cwd: &Path) {
        for path in [&mut self.pickfile, &mut self.pidfile, &mut self.journal_dir, &mut self.cert_path] {
            if path.is_relative() {
                *path = cwd.join(&*path);
            }
        }
        for path in [self.logfile.as_mut(), self.templates_dir.as_mut()].into_iter().flatten() {
            if path.is_relative() {
                *path = cwd.join(&*path);
            }
        }
    }

    fn keyring(&self) -> Result<Option<Keyring>, (usize, String)> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::with_capacity(self.keys.len());
        for (index, raw) in self.keys.iter().enumerate() {
            if keys.iter().any(|k: &Key| k.id == raw.id) {
                return Err((index, format!("id `{}` is used twice", raw.id)));
            }
            let hosts = raw
                .hosts
                .iter()
                .map(|h| HostPattern::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (index, e))?;
            keys.push(Key::new(&raw.id, raw.secret.as_bytes(), hosts).map_err(|e| (index, e))?);
        }
        Ok(Some(Keyring::new(keys, Duration::from_secs(self.auth_window))))
    }

    pub fn udp(&self) -> UdpSettings {
        let ip: IpAddr = self.hb_host.parse().unwrap_or(IpAddr::from([0u16; 8]));
        UdpSettings {
            bind: SocketAddr::new(ip, self.hb_port),
            recv_buffer_size: self.recv_buffer_size,
            max_message_size: self.max_message_size,
            default_interval: self.interval,
            // check() has proven the keyring builds.
            keyring: self.keyring().ok().flatten(),
            plugin_limits: PluginLimits {
                max_plugins: self.max_plugins_per_host,
                max_keys: self.max_plugin_keys,
                max_bytes: self.max_plugin_size,
            },
        }
    }

    /// The address of the HTTP API and the WebSockets; check() has proven it parses.
    fn hbd_ip(&self) -> IpAddr {
        self.hbd_host.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    /// `ws_port` is the port the WebSocket listener got, which the pages need.
    pub fn http(&self, ws_port: u16) -> HttpSettings {
        HttpSettings {
            bind: SocketAddr::new(self.hbd_ip(), self.hbd_port),
            cors_origins: self.cors_origins.clone(),
            www_dir: self.templates_dir.clone(),
            ws_port,
        }
    }

    pub fn ws(&self) -> WsSettings {
        let ip = self.hbd_ip();
        // wss_pem and wss_key are relative to cert_path, unless absolute.
        let wss = self.wss_port.map(|port| {
            (SocketAddr::new(ip, port), self.cert_path.join(&self.wss_pem), self.cert_path.join(&self.wss_key))
        });
        WsSettings { bind: SocketAddr::new(ip, self.ws_port), max_clients: self.ws_max_clients, wss }
    }

    pub fn core(&self) -> CoreSettings {
        CoreSettings {
            grace: Duration::from_secs_f64(self.grace),
            state_save_interval: Duration::from_secs(self.state_save_interval),
            max_hosts: self.max_hosts,
            plugin_history: self.plugin_history,
            max_plugins_per_host: self.max_plugins_per_host,
        }
    }

    pub fn journal(&self) -> Option<JournalSettings> {
        self.journal_enabled.then(|| JournalSettings {
            path: self.journal_dir.join(&self.journal_file),
            max_size: self.journal_max_size,
            max_backups: self.journal_max_backups,
        })
    }
}

/// Rewrites serde_yaml's "unknown field" message into one that names the key
/// and suggests the nearest real one; other messages pass through.
/// `later` lists keys of features this version lacks, with the feature.
pub fn explain_yaml_error(message: &str, keys: &[&str], later: &[(&str, &str)]) -> String {
    let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.find(": unknown field `").map(|i| &message[i + ": unknown field `".len()..]))
    else {
        return message.to_string();
    };
    let Some(end) = rest.find('`') else {
        return message.to_string();
    };
    let key = &rest[..end];
    let prefix = message.find(": unknown field").map(|i| &message[..i + 2]).unwrap_or("");
    let top_level = prefix.is_empty();
    if let Some((_, feature)) = later.iter().find(|(k, _)| top_level && *k == key) {
        return format!(
            "{prefix}key `{key}` configures {feature}, which this version of hbd does not have yet; remove it"
        );
    }
    match keys.iter().min_by_key(|k| edit_distance(k, key)).filter(|k| edit_distance(k, key) <= 2) {
        Some(near) if prefix.is_empty() => format!("unknown key `{key}` (did you mean `{near}`?)"),
        _ => format!("{prefix}unknown key `{key}`"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_list_matches_config_fields() {
        let message = serde_yaml::from_str::<Config>("no_such_key: 1").expect_err("unknown key must fail").to_string();
        let listed: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        assert_eq!(listed, KEYS, "config::KEYS is out of step with struct Config");
    }

    #[test]
    fn empty_and_comment_only_files_are_defaults() {
        for text in ["", "\n", "# nothing here\n"] {
            let c = Config::parse(text, "t.yaml").unwrap();
            assert_eq!(c.hb_port, 50003);
        }
    }

    #[test]
    fn python_keys_keep_their_meaning() {
        let c = Config::parse(
            "hb_port: 6000\ninterval: 10\ngrace: 5\npickfile: /tmp/s.json\nlogfmt: msg\n\
             journal_enabled: false\njournal_dir: /tmp/j\njournal_file: m.journal\n\
             journal_max_size: 2048\njournal_max_backups: 3\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(c.hb_port, 6000);
        assert_eq!(c.logfmt, LogFormat::Msg);
        assert!(c.journal().is_none());
        assert_eq!(c.core().grace, Duration::from_secs(5));
    }

    #[test]
    fn typo_is_named_with_a_suggestion() {
        let e = Config::parse("hb_prot: 1\n", "t.yaml").unwrap_err().to_string();
        assert_eq!(e, "t.yaml: unknown key `hb_prot` (did you mean `hb_port`?)");
    }

    #[test]
    fn later_feature_keys_say_why() {
        let e = Config::parse("dyndomains: [example.com]\n", "t.yaml").unwrap_err().to_string();
        assert!(e.contains("`dyndomains` configures dynamic DNS updates"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = Config::parse("hb_port: 1\ngrace: soon\n", "t.yaml").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml: grace: invalid type"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn semantic_problems_name_the_key() {
        for (text, key) in [
            ("hb_host: localhost\n", "hb_host"),
            ("interval: 0\n", "interval"),
            ("grace: -1\n", "grace"),
            ("journal_file: a/b\n", "journal_file"),
            ("max_message_size: 10\n", "max_message_size"),
            ("state_save_interval: 18446744073709551615\n", "state_save_interval"),
            ("max_hosts: 0\n", "max_hosts"),
            ("keys: [{id: a, secret: short}]\n", "keys[0]"),
            ("keys: [{id: a, secret: 0123456789abcdef}, {id: a, secret: 0123456789abcdef}]\n", "keys[1]"),
            ("keys: [{id: a, secret: 0123456789abcdef, hosts: ['bad name']}]\n", "keys[0]"),
        ] {
            let e = Config::parse(text, "t.yaml").unwrap_err().to_string();
            assert!(e.starts_with(&format!("t.yaml: {key}: ")), "{text:?} gave {e}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = Config::parse("keys: [{id: a, secret: 0123456789abcdef}]\n", "t.yaml").unwrap();
        let shown = serde_yaml::to_string(&c).unwrap();
        assert!(!shown.contains("0123456789abcdef"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn relative_paths_become_absolute() {
        let mut c = Config { logfile: Some("hbd.log".into()), ..Config::default() };
        c.absolutize(Path::new("/srv"));
        assert_eq!(c.pickfile, Path::new("/srv/hbd-state.json"));
        assert_eq!(c.logfile.as_deref(), Some(Path::new("/srv/hbd.log")));
        assert_eq!(c.journal().unwrap().path, Path::new("/srv/journal/messages.journal"));
    }
}
