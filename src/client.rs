//! hbc's configuration and its parent: loads `hbc.yaml`, starts one thread
//! per plugin and the `sender`, and implements `--once`.
//!
//! Plugins never talk to the network: they send [`SenderMsg::Plugin`] results
//! to the sender, which alone owns the socket.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, Receiver, Sender};
use log::{debug, warn};
use serde::{Deserialize, Serialize};

use crate::auth::Key;
use crate::config::{explain_yaml_error, ConfigError};
use crate::core::unix_seconds;
use crate::plugins::{PluginsConfig, Scheduled};
use crate::protocol::is_valid_host_name;
use crate::sender::{self, PluginReport, SenderMsg, SenderSettings, Target};

/// Every top-level key `hbc.yaml` accepts, in the order of `man 5 hbc.yaml`.
pub const KEYS: &[&str] = &["server", "port", "interval", "name", "key", "max_datagram_size", "plugins"];

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
    #[serde(serialize_with = "redacted")]
    pub secret: String,
}

fn redacted<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
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
            plugins: PluginsConfig::default(),
        }
    }
}

impl ClientConfig {
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        ClientConfig::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<ClientConfig, ConfigError> {
        let config: ClientConfig = if text.trim().lines().all(|l| l.trim_start().starts_with('#')) {
            ClientConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
                path: origin.to_string(),
                message: explain_yaml_error(&e.to_string(), KEYS, &[]),
            })?
        };
        config.check(origin)?;
        Ok(config)
    }

    pub fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, problem: String| ConfigError::Invalid { path: origin.to_string(), key: key.into(), problem };
        if self.interval == 0 || self.interval > 86400 {
            return Err(invalid("interval", format!("{} is not from 1 to 86400 seconds", self.interval)));
        }
        if let Some(name) = &self.name {
            if !is_valid_host_name(name) {
                return Err(invalid("name", format!("`{name}` is not an RFC 1123 host name")));
            }
        }
        if !(512..=65000).contains(&self.max_datagram_size) {
            return Err(invalid(
                "max_datagram_size",
                format!("{} is outside 512 to 65000 bytes", self.max_datagram_size),
            ));
        }
        if let Some(key) = &self.key {
            Key::new(&key.id, key.secret.as_bytes(), Vec::new()).map_err(|problem| invalid("key", problem))?;
        }
        for server in self.server.list() {
            parse_server(&server, self.port).map_err(|problem| invalid("server", problem))?;
        }
        self.plugins.check().map_err(|problem| ConfigError::Parse { path: origin.to_string(), message: problem })
    }

    /// The name hbc reports: `name`, else the system's host name.
    pub fn host_name(&self) -> Result<String, String> {
        // hbd keeps (and acknowledges) host names in lower case.
        if let Some(name) = &self.name {
            return Ok(name.to_ascii_lowercase());
        }
        let name = sysinfo::System::host_name().unwrap_or_default().to_ascii_lowercase();
        if is_valid_host_name(&name) {
            Ok(name)
        } else {
            Err(format!("the system's host name `{name}` is not an RFC 1123 host name; set `name` or --name"))
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

fn sender_settings(config: &ClientConfig, name: String, targets: Vec<Target>, print: bool) -> SenderSettings {
    SenderSettings {
        name,
        interval: Duration::from_secs(config.interval),
        targets,
        key: config.key.as_ref().and_then(|k| Key::new(&k.id, k.secret.as_bytes(), Vec::new()).ok()),
        max_datagram_size: config.max_datagram_size,
        print,
    }
}

/// Runs hbc until SIGTERM/SIGINT; returns when the sender has stopped.
pub fn run(
    config: &ClientConfig,
    name: String,
    targets: Vec<Target>,
    plugins: Vec<Scheduled>,
    print: bool,
) -> Result<(), String> {
    let (to_sender, inbox) = bounded(64);
    let (stop_tx, stop) = bounded::<()>(0);
    for scheduled in plugins {
        spawn_plugin(scheduled, to_sender.clone(), stop.clone())?;
    }
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(|e| format!("signals: {e}"))?;
    let to_sender_on_signal = to_sender.clone();
    std::thread::Builder::new()
        .name("signal".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = to_sender_on_signal.send(SenderMsg::Shutdown);
            }
        })
        .map_err(|e| format!("spawn signal thread: {e}"))?;
    let settings = sender_settings(config, name, targets, print);
    let sender = sender::spawn(settings, inbox, to_sender).map_err(|e| format!("start sender: {e}"))?;
    let result = sender.join().map_err(|_| "the sender thread panicked".to_string());
    drop(stop_tx);
    result
}

/// A plugin's thread: sample, report, wait for the next turn. A plugin that
/// needs a baseline is sampled again after [`WARM_UP`], so its first report
/// comes at once rather than an interval later.
fn spawn_plugin(scheduled: Scheduled, to_sender: Sender<SenderMsg>, stop: Receiver<()>) -> Result<(), String> {
    let name = scheduled.plugin.name().to_string();
    std::thread::Builder::new()
        .name(format!("plugin:{name}"))
        .stack_size(256 << 10)
        .spawn(move || {
            let Scheduled { mut plugin, interval } = scheduled;
            loop {
                let report = collect_once(plugin.as_mut());
                if to_sender.send(SenderMsg::Plugin(report)).is_err() {
                    return;
                }
                match stop.recv_timeout(interval) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("spawn plugin {name}: {e}"))
}

const WARM_UP: Duration = Duration::from_secs(1);

/// One report from `plugin`, taking a second sample after [`WARM_UP`] when
/// the first was only a baseline.
pub fn collect_once(plugin: &mut dyn crate::plugins::Plugin) -> PluginReport {
    let started = Instant::now();
    let mut result = plugin.collect();
    if let Ok(None) = result {
        std::thread::sleep(WARM_UP);
        result = plugin.collect();
    }
    let result = match result {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Err("no sample after the warm-up".to_string()),
        Err(e) => {
            warn!("plugin {}: {e}", plugin.name());
            Err(e)
        }
    };
    debug!("plugin {}: collected in {:?}", plugin.name(), started.elapsed());
    PluginReport { name: plugin.name().to_string(), kind: plugin.kind(), at: unix_seconds(SystemTime::now()), result }
}

/// `--once`: every enabled plugin once (in parallel, so their warm-ups and
/// timeouts overlap), one message, then wait for the ACKs.
pub fn run_once(
    config: &ClientConfig,
    name: String,
    targets: Vec<Target>,
    plugins: Vec<Scheduled>,
    print: bool,
) -> Result<(), String> {
    let reports: Vec<PluginReport> = std::thread::scope(|scope| {
        let handles: Vec<_> = plugins
            .into_iter()
            .map(|mut scheduled| scope.spawn(move || collect_once(scheduled.plugin.as_mut())))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let settings = sender_settings(config, name, targets, print);
    sender::send_once(settings, reports)
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
    fn keys_list_matches_config_fields() {
        let message = serde_yaml::from_str::<ClientConfig>("no_such_key: 1").unwrap_err().to_string();
        let listed: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        assert_eq!(listed, KEYS);
    }
}
