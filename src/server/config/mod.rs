//! The server's configuration: YAML → [`Config`] (strict, every key optional,
//! built-in defaults) → [`Config::check`], which reports every semantic
//! problem in plain words and is the only way to the typed [`Settings`], one
//! section per component.
//!
//! Key names and meanings of the Python hbd are kept so its `.hb.yaml` files keep
//! working. An unknown key is an error naming the key, never silently ignored:
//! a typo must not turn a setting off. Keys of features this version does not
//! have yet are unknown keys too, with a message that says so.

pub mod alertmanager;
pub mod maintenance;
pub mod parents;
pub mod peers;
pub mod tags;
pub mod thresholds;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::logging::LogFormat;
use crate::server::alertmanager::AlertmanagerSettings;
use crate::server::core::CoreSettings;
use crate::server::dns::{self, DnsSettings};
use crate::server::http::auth::{self, Tokens};
use crate::server::http::HttpSettings;
use crate::server::journal::{JournalFiles, JournalSettings};
use crate::server::notify::{self, config::redact_block, config::NotifySettings};
use crate::server::peers::PeerSettings;
use crate::server::udp::UdpSettings;
use crate::server::ws::WsSettings;
use crate::wire::auth::{HostPattern, Key, Keyring};
use crate::wire::decode::PluginLimits;
use crate::wire::is_valid_host_name;
use crate::yaml::{self, redact, yaml11_bool, ConfigError, ConfigFile, KeySpec, Range};
use alertmanager::AlertmanagerConfig;
use peers::PeerConfig;

/// Every top-level key `hbd.yaml` accepts, in the order of `man 5 hbd.yaml`,
/// with the range of each number: [`Config::settings`] checks the values
/// against them, and an integration test keeps the man page's keys and
/// ranges equal to these. A unit test keeps the names equal to the fields
/// of [`Config`].
pub const KEY_SPECS: &[KeySpec] = &[
    KeySpec::new("hb_host"),
    KeySpec::new("hb_port").range(Range::int(0, 65535)),
    KeySpec::new("recv_buffer_size"),
    KeySpec::new("max_message_size").range(Range::int(1024, 64 << 20)).unit("bytes"),
    KeySpec::new("hbd_host"),
    KeySpec::new("hbd_port").range(Range::int(0, 65535)),
    KeySpec::new("cors_origins"),
    KeySpec::new("http_max_connections").range(Range::int(1, 100_000)),
    KeySpec::new("api_tokens_file"),
    KeySpec::new("api_reads_need_token"),
    KeySpec::new("ws_port").range(Range::int(0, 65535)),
    KeySpec::new("ws_max_clients").range(Range::int(1, 10_000)),
    KeySpec::new("wss_port").range(Range::int(0, 65535)),
    KeySpec::new("cert_path"),
    KeySpec::new("wss_pem"),
    KeySpec::new("wss_key"),
    KeySpec::new("templates_dir"),
    KeySpec::new("interval").range(Range::number(0.0, 86400.0).above()).unit("seconds"),
    KeySpec::new("grace").range(Range::number(0.0, 86400.0)).unit("seconds"),
    KeySpec::new("host_expire_after").range(Range::number(0.0, 10.0 * 365.0 * 86400.0)).unit("seconds"),
    KeySpec::new("hbd_name"),
    KeySpec::new("peers"),
    KeySpec::new("peer_interval").range(Range::int(1, 86400)).unit("seconds"),
    KeySpec::new("standby_for"),
    KeySpec::new("parents"),
    KeySpec::new("tags"),
    KeySpec::new("keys"),
    KeySpec::new("auth_window").range(Range::at_least(1)),
    KeySpec::new("max_hosts").range(Range::int(1, 100_000_000)),
    KeySpec::new("plugin_history").range(Range::int(1, 10_000)),
    KeySpec::new("max_plugins_per_host").range(Range::int(1, 1000)),
    KeySpec::new("max_plugin_keys").range(Range::int(1, 1_000_000)),
    KeySpec::new("max_plugin_size").range(Range::int(1, 64 << 20)).unit("bytes"),
    KeySpec::new("thresholds"),
    KeySpec::new("threshold_renotify_interval").range(Range::number(0.0, 7.0 * 86400.0)).unit("seconds"),
    KeySpec::new("plugin_stale_intervals").range(Range::number(0.0, 1000.0)).unit("intervals"),
    KeySpec::new("maintenance"),
    KeySpec::new("pushsrv"),
    KeySpec::new("email"),
    KeySpec::new("pushover"),
    KeySpec::new("mattermost"),
    KeySpec::new("signal"),
    KeySpec::new("alertmanager"),
    KeySpec::new("notify_group_window").range(Range::number(0.0, 3600.0)).unit("seconds"),
    KeySpec::new("notify_queue_max").range(Range::int(1, 1_000_000)),
    KeySpec::new("notify_max_age").range(Range::number(60.0, 30.0 * 86400.0)).unit("seconds"),
    KeySpec::new("notify_queue_file"),
    KeySpec::new("pickfile"),
    KeySpec::new("state_save_interval").range(Range::int(1, 86400)).unit("seconds"),
    KeySpec::new("pidfile"),
    KeySpec::new("logfile"),
    KeySpec::new("logfmt"),
    KeySpec::new("journal_enabled"),
    KeySpec::new("journal_dir"),
    KeySpec::new("journal_file"),
    KeySpec::new("journal_events_file"),
    KeySpec::new("journal_max_size"),
    KeySpec::new("journal_max_backups"),
    KeySpec::new("dyndomains"),
    KeySpec::new("nsupdate_bin"),
    KeySpec::new("dns_server"),
    KeySpec::new("dns_port").range(Range::int(1, 65535)),
    KeySpec::new("dns_key_file"),
    KeySpec::new("dns_ttl").range(Range::int(0, i32::MAX as u64)).unit("seconds"),
    KeySpec::new("dns_timeout").range(Range::number(0.0, 3600.0).above()).unit("seconds"),
];

/// The names of [`KEY_SPECS`].
pub const KEYS: &[&str] = &yaml::names::<{ KEY_SPECS.len() }>(KEY_SPECS);

/// Keys of the Python hbd that belong to features this version does not have
/// yet; named in the error so a user switching over knows why their file fails.
/// Keys of the Python hbd for features this version lacks: none now; a
/// later one is listed here with its feature until it is built.
const NOT_YET_SUPPORTED: &[(&str, &str)] = &[];

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
    pub http_max_connections: usize,
    /// `NAME ROLE SECRET` lines: who may read and write the API.
    pub api_tokens_file: Option<PathBuf>,
    #[serde(deserialize_with = "yaml11_bool")]
    pub api_reads_need_token: bool,
    pub ws_port: u16,
    pub ws_max_clients: usize,
    pub wss_port: Option<u16>,
    pub cert_path: PathBuf,
    pub wss_pem: PathBuf,
    pub wss_key: PathBuf,
    pub templates_dir: Option<PathBuf>,
    pub interval: f64,
    pub grace: f64,
    /// Seconds of silence after which a host is forgotten; 0: never.
    pub host_expire_after: f64,
    /// This hbd's name as a host (its peers', and its own pages'); None: the system's host name.
    pub hbd_name: Option<String>,
    pub peers: Vec<PeerConfig>,
    pub peer_interval: u64,
    /// The primary hbd's name: hold notifications while it is up here.
    pub standby_for: Option<String>,
    /// Child host name or pattern → parent host name(s); compiled by check().
    pub parents: serde_yaml::Value,
    /// Tag → host name patterns; compiled by check().
    pub tags: serde_yaml::Value,
    pub keys: Vec<KeyConfig>,
    pub auth_window: u64,
    pub max_hosts: usize,
    pub plugin_history: usize,
    pub max_plugins_per_host: usize,
    pub max_plugin_keys: usize,
    pub max_plugin_size: usize,
    /// Plugin → metric path → rule, plus `hosts:` overrides; compiled by check().
    pub thresholds: serde_yaml::Value,
    pub threshold_renotify_interval: f64,
    pub plugin_stale_intervals: f64,
    /// Recurring maintenance windows; compiled by check().
    pub maintenance: serde_yaml::Value,
    /// Push services to use: `pushover`, `mattermost`, `all` or `none`;
    /// not given, each of the two that has a block.
    pub pushsrv: Option<String>,
    #[serde(serialize_with = "redact_block")]
    pub email: serde_yaml::Value,
    #[serde(serialize_with = "redact_block")]
    pub pushover: serde_yaml::Value,
    #[serde(serialize_with = "redact_block")]
    pub mattermost: serde_yaml::Value,
    #[serde(serialize_with = "redact_block")]
    pub signal: serde_yaml::Value,
    pub alertmanager: Option<AlertmanagerConfig>,
    pub notify_group_window: f64,
    pub notify_queue_max: usize,
    pub notify_max_age: f64,
    pub notify_queue_file: PathBuf,
    pub pickfile: PathBuf,
    pub state_save_interval: u64,
    pub pidfile: PathBuf,
    pub logfile: Option<PathBuf>,
    pub logfmt: LogFormat,
    #[serde(deserialize_with = "yaml11_bool")]
    pub journal_enabled: bool,
    pub journal_dir: PathBuf,
    pub journal_file: String,
    pub journal_events_file: String,
    pub journal_max_size: u64,
    pub journal_max_backups: u32,
    pub dyndomains: Vec<String>,
    pub nsupdate_bin: PathBuf,
    pub dns_server: Option<String>,
    pub dns_port: u16,
    pub dns_key_file: Option<PathBuf>,
    pub dns_ttl: u32,
    pub dns_timeout: f64,
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
            http_max_connections: 512,
            api_tokens_file: None,
            api_reads_need_token: false,
            ws_port: 50005,
            ws_max_clients: 64,
            wss_port: None,
            cert_path: "/usr/local/etc/ssl/".into(),
            wss_pem: "fullchain.pem".into(),
            wss_key: "privkey.pem".into(),
            templates_dir: None,
            interval: 30.0,
            grace: 30.0,
            host_expire_after: 0.0,
            hbd_name: None,
            peers: Vec::new(),
            peer_interval: 30,
            standby_for: None,
            parents: serde_yaml::Value::Null,
            tags: serde_yaml::Value::Null,
            keys: Vec::new(),
            auth_window: 300,
            max_hosts: 100_000,
            plugin_history: 50,
            max_plugins_per_host: 32,
            max_plugin_keys: 1000,
            max_plugin_size: 65536,
            thresholds: serde_yaml::Value::Null,
            threshold_renotify_interval: 3600.0,
            plugin_stale_intervals: 3.0,
            maintenance: serde_yaml::Value::Null,
            pushsrv: None,
            email: serde_yaml::Value::Null,
            pushover: serde_yaml::Value::Null,
            mattermost: serde_yaml::Value::Null,
            signal: serde_yaml::Value::Null,
            alertmanager: None,
            notify_group_window: 10.0,
            notify_queue_max: 1000,
            notify_max_age: 86400.0,
            notify_queue_file: "hbd-notify.json".into(),
            pickfile: "hbd-state.json".into(),
            state_save_interval: 60,
            pidfile: "hbd.pid".into(),
            logfile: None,
            logfmt: LogFormat::Text,
            journal_enabled: true,
            journal_dir: "journal".into(),
            journal_file: "messages.journal".into(),
            journal_events_file: "events.journal".into(),
            journal_max_size: 100 << 20,
            journal_max_backups: 10,
            dyndomains: Vec::new(),
            nsupdate_bin: "/usr/bin/nsupdate".into(),
            dns_server: None,
            dns_port: 53,
            dns_key_file: None,
            dns_ttl: 60,
            dns_timeout: 30.0,
        }
    }
}

/// Everything hbd's threads need, checked and in their own types; made only
/// by [`Config::check`], so no component can run on an unchecked value.
#[derive(Debug, Clone)]
pub struct Settings {
    pub udp: UdpSettings,
    pub core: CoreSettings,
    /// None with `journal_enabled: false`.
    pub journal: Option<JournalSettings>,
    /// `ws_port` in it is the configured one; the parent puts in the bound one.
    pub http: HttpSettings,
    pub ws: WsSettings,
    /// None without `dyndomains`: no DNS worker runs.
    pub dns: Option<DnsSettings>,
    pub pickfile: PathBuf,
    pub pidfile: PathBuf,
    pub logfile: Option<PathBuf>,
    pub logfmt: LogFormat,
    pub notify: NotifySettings,
    /// None without `peers:`: no peers thread runs.
    pub peers: Option<PeerSettings>,
    /// None without `alertmanager:`.
    pub alertmanager: Option<AlertmanagerSettings>,
    /// Not wrong, but worth saying at start-up (a threshold path no built-in
    /// plugin has, a notification service that is not usable).
    pub warnings: Vec<String>,
}

impl ConfigFile for Config {
    const KEYS: yaml::Keys = yaml::Keys { keys: KEYS, later: NOT_YET_SUPPORTED };

    fn problems(&self) -> Vec<String> {
        // Relative paths (api_tokens_file, templates_dir, ...) mean what they
        // will mean to `check`: the current directory's files.
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        self.settings(&cwd).err().unwrap_or_default()
    }
}

impl Config {
    /// The typed settings of a loaded configuration; `origin` names it in messages.
    pub fn check(&self, origin: &str, cwd: &Path) -> Result<Settings, ConfigError> {
        self.settings(cwd).map_err(|problems| ConfigError::invalid(origin, problems))
    }

    /// Checks what serde cannot and derives each component's settings.
    /// Every problem is reported, each naming its key. Relative paths are
    /// made absolute against `cwd`, so they keep meaning the same files
    /// after a daemon changes directory to `/`.
    fn settings(&self, cwd: &Path) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, text: String| problems.push(format!("{key}: {text}"));
        let hb_ip = self.hb_host.parse::<IpAddr>().unwrap_or_else(|_| {
            problem("hb_host", format!("`{}` is not an IP address (use :: for all addresses)", self.hb_host));
            IpAddr::from([0u16; 8])
        });
        let hbd_ip = resolve_listen_address(&self.hbd_host).unwrap_or_else(|why| {
            problem("hbd_host", why);
            IpAddr::from([127, 0, 0, 1])
        });
        if let Some(bad) =
            self.cors_origins.iter().find(|o| !(*o == "*" || o.starts_with("http://") || o.starts_with("https://")))
        {
            problem("cors_origins", format!("`{bad}` is neither * nor an http:// or https:// origin"));
        }
        let absolute = |path: &Path| if path.is_relative() { cwd.join(path) } else { path.to_path_buf() };
        let templates_dir = self.templates_dir.as_deref().map(absolute);
        if let Some(dir) = templates_dir.as_ref().filter(|d| !d.is_dir()) {
            problem("templates_dir", format!("{} is not a directory", dir.display()));
        }
        for (key, text) in yaml::range_problems(self, KEY_SPECS) {
            problem(key, text);
        }
        let tokens = match self.api_tokens_file.as_deref().map(absolute) {
            Some(path) => auth::load(&path).unwrap_or_else(|why| {
                problem("api_tokens_file", why);
                Vec::new()
            }),
            None => Vec::new(),
        };
        if self.api_reads_need_token && self.api_tokens_file.is_none() {
            problem("api_reads_need_token", "needs api_tokens_file (the tokens reads would need)".into());
        }
        for (key, name) in [("journal_file", &self.journal_file), ("journal_events_file", &self.journal_events_file)] {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                problem(key, format!("`{name}` must be a plain file name (the directory is journal_dir)"));
            }
        }
        let (messages, events) = (&self.journal_file, &self.journal_events_file);
        if messages == events || is_backup_of(messages, events) || is_backup_of(events, messages) {
            problem(
                "journal_events_file",
                format!("`{events}` would share a file with journal_file `{messages}` or its rotated copies"),
            );
        }
        let keyring = self.keyring().unwrap_or_else(|(index, why)| {
            problem(&format!("keys[{index}]"), why);
            None
        });
        let dyndomains = self.dns_problems(&absolute, &mut problem);
        // A system host name that is no host name matters only to peers.
        let hbd_name = match peers::hbd_name(self.hbd_name.as_deref(), sysinfo::System::host_name()) {
            Ok(name) => name,
            Err(why) if self.hbd_name.is_some() || !self.peers.is_empty() => {
                problem("hbd_name", why);
                String::new()
            }
            Err(_) => "hbd".into(),
        };
        let peers = peers::compile(&hbd_name, &self.peers, self.peer_interval as f64, &mut problem);
        let standby_for = self.standby_for.as_deref().map(str::to_ascii_lowercase);
        match standby_for.as_deref() {
            Some(primary) if !is_valid_host_name(primary) => {
                problem("standby_for", format!("`{primary}` is not an RFC 1123 host name (the primary's hbd_name)"))
            }
            Some(primary) if primary == hbd_name => {
                problem("standby_for", format!("`{primary}` is this hbd's own name: name the primary's hbd_name"))
            }
            _ => {}
        }
        let alertmanager = self.alertmanager.as_ref().and_then(|raw| {
            let console = format!("http://{hbd_name}:{}", self.hbd_port);
            alertmanager::compile(raw, console, &mut problems)
        });
        let mut warnings = Vec::new();
        let parents = parents::compile(&self.parents, &mut problems);
        let tags = tags::compile(&self.tags, &mut problems);
        let rules = thresholds::compile(
            &self.thresholds,
            self.threshold_renotify_interval,
            self.plugin_stale_intervals,
            &mut problems,
            &mut warnings,
        );
        let maintenance = maintenance::compile(&self.maintenance, &mut problems);
        let notify = notify::config::compile(
            notify::config::Raw {
                pushsrv: self.pushsrv.as_deref(),
                email: &self.email,
                pushover: &self.pushover,
                mattermost: &self.mattermost,
                signal: &self.signal,
                group_window: self.notify_group_window,
                queue_max: self.notify_queue_max,
                max_age: self.notify_max_age,
                queue_file: self.notify_queue_file.clone(),
                env: &|name| std::env::var(name).ok(),
            },
            cwd,
            &mut problems,
            &mut warnings,
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        let cert_path = absolute(&self.cert_path);
        let journal_files = self.journal_enabled.then(|| JournalFiles {
            messages: absolute(&self.journal_dir).join(&self.journal_file),
            events: absolute(&self.journal_dir).join(&self.journal_events_file),
        });
        // wss_pem and wss_key are relative to cert_path, unless absolute.
        let wss = self
            .wss_port
            .map(|port| (SocketAddr::new(hbd_ip, port), cert_path.join(&self.wss_pem), cert_path.join(&self.wss_key)));
        let api_tokens = Tokens::new(tokens, self.api_reads_need_token);
        Ok(Settings {
            udp: UdpSettings {
                bind: SocketAddr::new(hb_ip, self.hb_port),
                recv_buffer_size: self.recv_buffer_size,
                max_message_size: self.max_message_size,
                default_interval: self.interval,
                keyring,
                plugin_limits: PluginLimits {
                    max_plugins: self.max_plugins_per_host,
                    max_keys: self.max_plugin_keys,
                    max_bytes: self.max_plugin_size,
                },
            },
            core: CoreSettings {
                grace: Duration::from_secs_f64(self.grace),
                state_save_interval: Duration::from_secs(self.state_save_interval),
                max_hosts: self.max_hosts,
                plugin_history: self.plugin_history,
                max_plugins_per_host: self.max_plugins_per_host,
                rules,
                dyndomains: dyndomains.clone(),
                host_expire_after: (self.host_expire_after > 0.0).then_some(self.host_expire_after),
                standby_for,
                parents,
                tags,
                maintenance,
            },
            journal: journal_files.clone().map(|files| JournalSettings {
                files,
                max_size: self.journal_max_size,
                max_backups: self.journal_max_backups,
            }),
            http: HttpSettings {
                bind: SocketAddr::new(hbd_ip, self.hbd_port),
                cors_origins: self.cors_origins.clone(),
                www_dir: templates_dir,
                ws_port: self.ws_port,
                max_connections: self.http_max_connections,
                private_dir: private_dir(&absolute(&self.pickfile)),
                notify: notify.states(),
                tokens: api_tokens.clone(),
                journal: journal_files,
                name: hbd_name,
            },
            ws: WsSettings {
                bind: SocketAddr::new(hbd_ip, self.ws_port),
                max_clients: self.ws_max_clients,
                allowed_origins: self.cors_origins.clone(),
                // Filled in by the parent once the ports are bound.
                page_ports: Vec::new(),
                wss,
                tokens: api_tokens,
            },
            dns: (!dyndomains.is_empty()).then(|| DnsSettings {
                nsupdate_bin: absolute(&self.nsupdate_bin),
                domains: dyndomains,
                server: self.dns_server.clone().map(|server| (server, self.dns_port)),
                key_file: self.dns_key_file.as_deref().map(absolute),
                ttl: self.dns_ttl,
                timeout: Duration::from_secs_f64(self.dns_timeout),
            }),
            pickfile: absolute(&self.pickfile),
            pidfile: absolute(&self.pidfile),
            logfile: self.logfile.as_deref().map(absolute),
            logfmt: self.logfmt,
            notify,
            peers,
            alertmanager,
            warnings,
        })
    }

    /// Checks the dynamic DNS keys; returns `dyndomains` in canonical form
    /// (lower case, no trailing dot). The domains go into nsupdate's script,
    /// so nothing but a valid DNS name may pass.
    fn dns_problems(&self, absolute: &dyn Fn(&Path) -> PathBuf, problem: &mut dyn FnMut(&str, String)) -> Vec<String> {
        let mut domains: Vec<String> = Vec::new();
        for raw in &self.dyndomains {
            let domain = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
            if !is_valid_host_name(&domain) {
                problem("dyndomains", format!("`{raw}` is not a valid DNS name (dot-separated labels of letters, digits and inner hyphens, each at most 63 characters, 253 in all)"));
            } else if domains.contains(&domain) {
                problem("dyndomains", format!("`{raw}` is listed twice"));
            } else {
                domains.push(domain);
            }
        }
        if let Some(server) = self.dns_server.as_deref() {
            if server.parse::<IpAddr>().is_err() && !is_valid_host_name(server) {
                problem("dns_server", format!("`{server}` is neither an IP address nor a DNS name"));
            }
        }
        match (self.dns_port, &self.dns_server) {
            // Outside dns_port's range, said once by the range check.
            (0, _) => {}
            // Without a server nsupdate finds the zone's primary on port 53.
            (port, None) if port != 53 => {
                problem("dns_port", "needs dns_server (the server to send updates to)".into())
            }
            _ => {}
        }
        if let Some(key_file) = self.dns_key_file.as_deref().map(absolute) {
            if let Err(e) = std::fs::File::open(&key_file) {
                problem("dns_key_file", format!("cannot read {}: {e}", key_file.display()));
            }
        }
        if !domains.is_empty() {
            let nsupdate = absolute(&self.nsupdate_bin);
            if !dns::is_executable(&nsupdate) {
                problem(
                    "nsupdate_bin",
                    format!("{} is not an executable file (Debian: apt install bind9-dnsutils)", nsupdate.display()),
                );
            }
        }
        domains
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
}

/// Whether `name` is one of the names `base` rotates to (`base.1`, `base.2`, …).
fn is_backup_of(name: &str, base: &str) -> bool {
    name.strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Where tiny_http's private socket lives: beside the state file, in the
/// one directory hbd is sure to own and be able to write.
fn private_dir(pickfile: &Path) -> PathBuf {
    pickfile.parent().unwrap_or(Path::new("/")).join(".hbd-http")
}

/// The address to listen on for `hbd_host`: an IP address, or a name such
/// as `localhost` (its first address, as the Python hbd's bind() took it).
fn resolve_listen_address(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let not_found = || format!("`{host}` is neither an IP address nor a name this host can resolve");
    let mut addrs = (host, 0).to_socket_addrs().map_err(|_| not_found())?;
    addrs.next().map(|a| a.ip()).ok_or_else(not_found)
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
    fn every_key_with_a_range_is_a_number_in_range_by_default() {
        // wss_port is None by default, which the check passes over.
        let values = serde_yaml::to_value(Config { wss_port: Some(0), ..Config::default() }).unwrap();
        for spec in KEY_SPECS.iter().filter(|s| s.range.is_some()) {
            let value = &values[spec.name];
            assert!(value.is_number(), "{} has a range but is {value:?}, never checked", spec.name);
            assert_eq!(spec.problem(value), None, "the default of {}", spec.name);
        }
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
        let settings = c.check("t.yaml", Path::new("/")).unwrap();
        assert!(settings.journal.is_none());
        assert_eq!(settings.core.grace, Duration::from_secs(5));
    }

    #[test]
    fn typo_is_named_with_a_suggestion() {
        let e = Config::parse("hb_prot: 1\n", "t.yaml").unwrap_err().to_string();
        assert_eq!(e, "t.yaml: unknown key `hb_prot` (did you mean `hb_port`?)");
    }

    #[test]
    fn dns_keys_are_checked_and_canonical() {
        let c = Config::parse(
            "dyndomains: [Example.COM., dyn.example.org]\nnsupdate_bin: /bin/sh\ndns_server: ns1.example.com\n",
            "t.yaml",
        )
        .unwrap();
        let settings = c.check("t.yaml", Path::new("/")).unwrap();
        let dns = settings.dns.unwrap();
        assert_eq!(dns.domains, ["example.com", "dyn.example.org"]);
        assert_eq!(settings.core.dyndomains, dns.domains);
        assert_eq!(dns.server, Some(("ns1.example.com".to_string(), 53)));
        assert_eq!((dns.ttl, dns.timeout), (60, Duration::from_secs(30)));
        assert!(Config::default().check("t.yaml", Path::new("/")).unwrap().dns.is_none(), "off by default");
        for (text, key, words) in [
            ("dyndomains: [\"example.com\\nupdate delete example.com\"]\n", "dyndomains", "is not a valid DNS name"),
            ("dyndomains: [\"a b.example\"]\n", "dyndomains", "`a b.example` is not a valid DNS name"),
            ("dyndomains: [\"a;b.example\"]\n", "dyndomains", "is not a valid DNS name"),
            ("dyndomains: [-a.example]\n", "dyndomains", "is not a valid DNS name"),
            ("dyndomains: [a.example, A.example]\n", "dyndomains", "`A.example` is listed twice"),
            ("dyndomains: [a.example]\nnsupdate_bin: /nonexistent/nsupdate\n", "nsupdate_bin", "bind9-dnsutils"),
            ("dns_server: \"ns1 ; x\"\n", "dns_server", "is neither an IP address nor a DNS name"),
            ("dns_port: 5353\n", "dns_port", "needs dns_server"),
            ("dns_port: 0\n", "dns_port", "0 is outside 1 to 65535"),
            ("dns_ttl: 2147483648\n", "dns_ttl", "outside 0 to 2147483647"),
            ("dns_timeout: 0\n", "dns_timeout", "from above 0 to 3600"),
            ("dns_key_file: /nonexistent/key\n", "dns_key_file", "cannot read /nonexistent/key"),
        ] {
            let e = Config::parse(text, "t.yaml").unwrap_err().to_string();
            assert!(e.starts_with(&format!("t.yaml: {key}: ")) && e.contains(words), "{text:?} gave {e}");
        }
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
            ("journal_events_file: \"\"\n", "journal_events_file"),
            ("journal_events_file: messages.journal\n", "journal_events_file"),
            ("journal_events_file: messages.journal.2\n", "journal_events_file"),
            ("journal_file: e\njournal_events_file: e.1\n", "journal_events_file"),
            ("journal_file: events.journal.10\n", "journal_events_file"),
            ("max_message_size: 10\n", "max_message_size"),
            ("state_save_interval: 18446744073709551615\n", "state_save_interval"),
            ("max_hosts: 0\n", "max_hosts"),
            ("auth_window: 0\n", "auth_window"),
            ("threshold_renotify_interval: 604801\n", "threshold_renotify_interval"),
            ("plugin_stale_intervals: -1\n", "plugin_stale_intervals"),
            ("notify_queue_max: 0\n", "notify_queue_max"),
            ("notify_group_window: .nan\n", "notify_group_window"),
            ("notify_max_age: .nan\n", "notify_max_age"),
            ("pushover: {timeout: .nan}\n", "pushover.timeout"),
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
        let c = Config { logfile: Some("hbd.log".into()), ..Config::default() };
        let settings = c.check("t.yaml", Path::new("/srv")).unwrap();
        assert_eq!(settings.pickfile, Path::new("/srv/hbd-state.json"));
        assert_eq!(settings.logfile.as_deref(), Some(Path::new("/srv/hbd.log")));
        let files = settings.journal.unwrap().files;
        assert_eq!(files.messages, Path::new("/srv/journal/messages.journal"));
        assert_eq!(files.events, Path::new("/srv/journal/events.journal"));
        assert_eq!(settings.http.journal, Some(files), "the http threads read the same files");
    }

    #[test]
    fn all_problems_of_a_file_in_one_run_each_once() {
        let e =
            Config::parse("hb_prot: 1\ngrace: soon\ninterval: 0\nmax_hosts: 0\n", "t.yaml").unwrap_err().to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "serde's and the semantic problems together: {e}");
        assert_eq!(lines[0], "t.yaml: unknown key `hb_prot` (did you mean `hb_port`?)", "{e}");
        assert!(lines[1].starts_with("t.yaml: grace: invalid type: string \"soon\", expected a number"), "{e}");
        let e = Config::parse("interval: 0\nmax_hosts: 0\nhb_port: 70000\n", "t.yaml").unwrap_err().to_string();
        assert!(e.contains("hb_port: invalid value: integer `70000`, expected a whole number from 0 to 65535"), "{e}");
        let e = Config::parse("interval: 0\nmax_hosts: 0\n", "t.yaml").unwrap_err().to_string();
        assert_eq!(e.lines().count(), 2, "{e}");
        assert!(e.contains("t.yaml: interval: ") && e.contains("t.yaml: max_hosts: "), "{e}");
    }

    #[test]
    fn python_users_booleans_and_host_names() {
        let c = Config::parse("journal_enabled: no\nhbd_host: localhost\n", "t.yaml").unwrap();
        let settings = c.check("t.yaml", Path::new("/")).unwrap();
        assert!(settings.journal.is_none());
        assert!(settings.http.bind.ip().is_loopback(), "{:?}", settings.http.bind);
        let e = Config::parse("hbd_host: no-such-host.invalid\n", "t.yaml").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml: hbd_host: `no-such-host.invalid` is neither an IP address"), "{e}");
    }
}
