//! The notification keys of hbd.yaml: `pushsrv` (the Python meaning:
//! `pushover`, `mattermost`, `all`, or `none`), one block per service
//! (`email`, `pushover`, `mattermost`, `signal`) and the `notify_*` keys,
//! checked into [`NotifySettings`] by [`compile`]. Secrets may come from the
//! YAML, a file (`password_file`) or an environment variable
//! (`password_env`), and Pushover's and Mattermost's from [`DEFAULT_ENV`]
//! when their block names none; the YAML as `--check-config` prints it
//! never shows them. A named service that lacks what it needs is not an
//! error but [`Unusable`], with a warning (see [`compile`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

use super::severity;
use crate::server::model::{AlertChange, Level, ServiceState};
use crate::server::pattern::any_of;
use crate::server::pattern::glob_matches;
use crate::wire::is_valid_tag;

/// Keys of service blocks whose values are secrets.
const SECRET_KEYS: [&str; 4] = ["password", "token", "user", "webhook_url"];

/// The services, in the order messages and reports name them.
pub const SERVICES: [&str; 4] = ["email", "pushover", "mattermost", "signal"];

/// Prints a service block with its secrets as `<redacted>`.
pub fn redact_block<S: Serializer>(block: &serde_yaml::Value, s: S) -> Result<S::Ok, S::Error> {
    let mut shown = block.clone();
    if let serde_yaml::Value::Mapping(map) = &mut shown {
        for (key, value) in map.iter_mut() {
            if key.as_str().is_some_and(|k| SECRET_KEYS.contains(&k)) {
                *value = serde_yaml::Value::String("<redacted>".into());
            }
        }
    }
    shown.serialize(s)
}

/// Which messages a service gets: a minimum level, host patterns and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub min_level: Level,
    /// Host name patterns (`*`, `?`); empty: every host.
    pub hosts: Vec<String>,
    /// Tags (`tags: [db]`): only hosts with one of them; empty: every host.
    pub tags: Vec<String>,
}

impl Filter {
    /// Whether a message of `level` about `host`, whose tags are `tags`, is one for the service.
    pub fn wants(&self, level: Level, host: &str, tags: &[String]) -> bool {
        level >= self.min_level
            && (self.hosts.is_empty() || self.hosts.iter().any(|p| glob_matches(p, host)))
            && any_of(&self.tags, tags)
    }

    /// The events of a group window (each with its host's tags) the service wants.
    pub fn wanted<'a>(&self, events: &'a [(AlertChange, Vec<String>)]) -> Vec<&'a AlertChange> {
        events.iter().filter(|(c, tags)| self.wants(severity(c), &c.key.host, tags)).map(|(c, _)| c).collect()
    }
}

/// A service's `tags:`, checked as tag names (none: every host).
fn route_tags(name: &str, tags: Option<Vec<String>>, problems: &mut Vec<String>) -> Vec<String> {
    let tags = tags.unwrap_or_default();
    for tag in tags.iter().filter(|t| !is_valid_tag(t)) {
        problems.push(format!("{name}.tags: `{tag}` is not a tag (1 to 32 of a-z 0-9 _ - .)"));
    }
    tags
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required), port 587.
    #[default]
    Starttls,
    /// TLS from the first byte, port 465.
    Tls,
    /// No encryption, port 25: only for a relay on the same host.
    None,
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub server: String,
    pub port: u16,
    pub security: Security,
    pub login: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
    /// PEM certificates to trust besides the system's roots (a private CA).
    pub ca_pem: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct PushoverSettings {
    pub url: String,
    pub token: String,
    pub user: String,
    pub device: Option<String>,
    pub sound: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MattermostSettings {
    pub webhook_url: String,
    pub channel: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SignalSettings {
    /// The signal-cli REST API's base URL; messages go to `URL/v2/send`.
    pub url: String,
    pub number: String,
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum ServiceKind {
    Email(EmailSettings),
    Pushover(PushoverSettings),
    Mattermost(MattermostSettings),
    Signal(SignalSettings),
}

/// One configured service.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub name: &'static str,
    pub kind: ServiceKind,
    pub filter: Filter,
    /// Messages at most per hour; the excess is folded into one summary.
    pub max_per_hour: usize,
    /// How long one attempt may take (connect, send, answer).
    pub timeout: Duration,
}

/// A service that is named (by `pushsrv` or its block) but lacks what it
/// needs to deliver: nothing is sent to it; what it would have got is counted.
#[derive(Debug, Clone)]
pub struct Unusable {
    pub name: &'static str,
    /// What it lacks and how to give it, in plain words.
    pub problem: String,
    /// Which messages it would have got.
    pub filter: Filter,
}

#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// The services hbd delivers to.
    pub services: Vec<ServiceSettings>,
    /// The named services it cannot deliver to.
    pub unusable: Vec<Unusable>,
    /// Events arriving within this long of the first are sent as one message.
    pub group_window: Duration,
    /// Undelivered messages kept per service; beyond, the oldest is dropped.
    pub queue_max: usize,
    /// Undelivered messages older than this are dropped.
    pub max_age: Duration,
    /// Where undelivered messages wait across restarts.
    pub queue_file: PathBuf,
}

impl NotifySettings {
    /// No service is named: the notifier need not run.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.unusable.is_empty()
    }

    /// Every named service, usable or not, in the order of [`SERVICES`].
    pub fn states(&self) -> Vec<ServiceState> {
        let mut states: Vec<ServiceState> = self
            .services
            .iter()
            .map(|s| ServiceState { name: s.name, problem: None })
            .chain(self.unusable.iter().map(|u| ServiceState { name: u.name, problem: Some(u.problem.clone()) }))
            .collect();
        states.sort_by_key(|s| SERVICES.iter().position(|n| *n == s.name));
        states
    }
}

/// The raw keys, as `Config` holds them.
pub struct Raw<'a> {
    /// None when not given: each of Pushover and Mattermost that has a block.
    pub pushsrv: Option<&'a str>,
    pub email: &'a serde_yaml::Value,
    pub pushover: &'a serde_yaml::Value,
    pub mattermost: &'a serde_yaml::Value,
    pub signal: &'a serde_yaml::Value,
    pub group_window: f64,
    pub queue_max: usize,
    pub max_age: f64,
    pub queue_file: PathBuf,
    /// hbd's environment (a variable that is not set, or not UTF-8, is None).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// The environment variables a named service's credentials come from when
/// its block gives none: (key, variable).
pub const DEFAULT_ENV: [(&str, &str); 3] = [
    ("pushover.token", "PUSHOVER_TOKEN"),
    ("pushover.user", "PUSHOVER_USER"),
    ("mattermost.webhook_url", "MATTERMOST_WEBHOOK_URL"),
];

fn default_env(key: &str) -> Option<&'static str> {
    DEFAULT_ENV.iter().find(|(k, _)| *k == key).map(|(_, var)| *var)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EmailBlock {
    server: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    security: Security,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    from: Option<String>,
    to: Option<Recipients>,
    ca_file: Option<PathBuf>,
    min_level: Option<String>,
    hosts: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    max_per_hour: Option<usize>,
    timeout: Option<f64>,
}

/// `to:` takes one address or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Recipients {
    One(String),
    Many(Vec<String>),
}

impl Recipients {
    fn into_vec(self) -> Vec<String> {
        match self {
            Recipients::One(one) => vec![one],
            Recipients::Many(many) => many,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PushoverBlock {
    url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    user: Option<String>,
    user_file: Option<PathBuf>,
    user_env: Option<String>,
    device: Option<String>,
    sound: Option<String>,
    min_level: Option<String>,
    hosts: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    max_per_hour: Option<usize>,
    timeout: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MattermostBlock {
    webhook_url: Option<String>,
    webhook_url_file: Option<PathBuf>,
    webhook_url_env: Option<String>,
    channel: Option<String>,
    username: Option<String>,
    min_level: Option<String>,
    hosts: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    max_per_hour: Option<usize>,
    timeout: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SignalBlock {
    url: Option<String>,
    number: Option<String>,
    recipients: Option<Recipients>,
    min_level: Option<String>,
    hosts: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    max_per_hour: Option<usize>,
    timeout: Option<f64>,
}

pub const PUSHOVER_URL: &str = "https://api.pushover.net/1/messages.json";

/// What checking one service gave.
enum Built {
    Usable(ServiceSettings),
    Unusable(Unusable),
    /// A mistake in its keys, among the problems.
    Wrong,
}

/// Checks the notification keys; each problem names its key.
///
/// The rule: a service is named by `pushsrv` (Pushover, Mattermost) or by
/// its block (every service). A named service that lacks what it needs to
/// deliver (its block, a credential, its recipients, or a secret whose
/// `*_env` variable is not set or whose `*_file` cannot be read) is not
/// usable: a warning says what it lacks, and hbd runs without it. What is
/// given but wrong (an unknown key, a wrong type, a malformed URL, address
/// or number) is a problem, as is a `pushsrv` that names no service.
pub fn compile(raw: Raw, cwd: &Path, problems: &mut Vec<String>, warnings: &mut Vec<String>) -> NotifySettings {
    let (want_pushover, want_mattermost) = match raw.pushsrv {
        None => (!raw.pushover.is_null(), !raw.mattermost.is_null()),
        Some("all") => (true, true),
        Some("pushover") => (true, false),
        Some("mattermost") => (false, true),
        Some("none") => (false, false),
        Some(other) => {
            problems.push(format!("pushsrv: `{other}` is not one of pushover, mattermost, all, none"));
            (false, false)
        }
    };
    let mut check = Check { cwd, env: raw.env, problems, lacks: Vec::new() };
    let mut built = Vec::new();
    if !raw.email.is_null() {
        built.push(email(raw.email, &mut check));
    }
    if want_pushover {
        built.push(pushover(raw.pushover, &mut check));
    }
    if want_mattermost {
        built.push(mattermost(raw.mattermost, &mut check));
    }
    if !raw.signal.is_null() {
        built.push(signal(raw.signal, &mut check));
    }
    let (mut services, mut unusable) = (Vec::new(), Vec::new());
    for service in built {
        match service {
            Built::Usable(service) => services.push(service),
            Built::Unusable(service) => {
                warnings.push(format!("{}: not usable, nothing will be sent to it: {}", service.name, service.problem));
                unusable.push(service);
            }
            Built::Wrong => {}
        }
    }
    // notify_group_window, notify_queue_max and notify_max_age are checked
    // against their ranges with hbd's other keys (config::KEY_SPECS).
    let queue_file = if raw.queue_file.is_relative() { cwd.join(&raw.queue_file) } else { raw.queue_file };
    NotifySettings {
        services,
        unusable,
        group_window: clamped_seconds(raw.group_window, 0.0, 3600.0),
        queue_max: raw.queue_max,
        max_age: clamped_seconds(raw.max_age, 60.0, 30.0 * 86400.0),
        queue_file,
    }
}

/// A service's block as its strict struct: an empty one when absent (a
/// service `pushsrv` names without a block), None when wrong.
fn block<T: DeserializeOwned + Default>(
    name: &str,
    value: &serde_yaml::Value,
    problems: &mut Vec<String>,
) -> Option<T> {
    if value.is_null() {
        return Some(T::default());
    }
    serde_yaml::from_value(value.clone())
        .map_err(|e| {
            let text = e.to_string().replace("unknown field", "unknown key").replace("missing field", "missing key");
            problems.push(format!("{name}: {text}"));
        })
        .ok()
}

/// The checking of one service: mistakes go to `problems`, what it lacks
/// to `lacks`.
struct Check<'a> {
    cwd: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: &'a mut Vec<String>,
    lacks: Vec<String>,
}

impl Check<'_> {
    /// A secret given inline, in a file or in an environment variable (at
    /// most one of them), or else in the key's default variable
    /// ([`DEFAULT_ENV`]). `key` is `service.name`.
    fn secret(
        &mut self,
        key: &str,
        inline: Option<String>,
        file: Option<PathBuf>,
        env: Option<String>,
    ) -> Option<String> {
        let (service, name) = key.split_once('.').unwrap_or(("", key));
        let given = [inline.is_some(), file.is_some(), env.is_some()].iter().filter(|g| **g).count();
        if given > 1 {
            self.problems.push(format!("{key}: give only one of {name}, {name}_file and {name}_env"));
            return None;
        }
        if let Some(value) = inline {
            return Some(value);
        }
        if let Some(path) = file {
            let path = if path.is_relative() { self.cwd.join(path) } else { path };
            match std::fs::read_to_string(&path) {
                Ok(text) if !text.trim().is_empty() => return Some(text.trim().to_string()),
                Ok(_) => self.lacks.push(format!("{name}_file {} is empty", path.display())),
                Err(e) => self.lacks.push(format!("{name}_file {}: {e}", path.display())),
            }
            return None;
        }
        if let Some(var) = env {
            match (self.env)(&var).filter(|v| !v.is_empty()) {
                Some(value) => return Some(value),
                None => self.lacks.push(format!("{name}_env names {var}, which is not set in hbd's environment")),
            }
            return None;
        }
        let fallback = default_env(key);
        if let Some(value) = fallback.and_then(|var| (self.env)(var)).filter(|v| !v.is_empty()) {
            return Some(value);
        }
        let hint = match fallback {
            Some(var) => format!("set {var} in hbd's environment or give "),
            None => "give ".to_string(),
        };
        self.lacks.push(format!("no {name} ({hint}{name}, {name}_file or {name}_env in the {service}: block)"));
        None
    }

    /// A key the service cannot do without.
    fn needs<T>(&mut self, service: &str, key: &str, what: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.lacks.push(format!("no {what} (give {key} in the {service}: block)"));
        }
        value
    }

    /// The outcome once a service's keys are checked: wrong when a problem
    /// was found since `before`, else usable when `settings` could be made
    /// and nothing is lacking.
    fn finish(
        &mut self,
        name: &'static str,
        before: usize,
        filter: Filter,
        settings: Option<ServiceSettings>,
    ) -> Built {
        let lacks = std::mem::take(&mut self.lacks);
        if self.problems.len() > before {
            return Built::Wrong;
        }
        match settings {
            Some(settings) if lacks.is_empty() => Built::Usable(settings),
            _ => Built::Unusable(Unusable { name, problem: lacks.join("; "), filter }),
        }
    }
}

fn common(
    name: &'static str,
    min_level: Option<String>,
    hosts: Option<Vec<String>>,
    max_per_hour: Option<usize>,
    timeout: Option<f64>,
    default_per_hour: usize,
    problems: &mut Vec<String>,
) -> (Filter, usize, Duration) {
    let min_level = match min_level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("unknown") => Level::Unknown,
        Some("warning") => Level::Warning,
        Some("critical") => Level::Critical,
        Some(other) => {
            problems.push(format!("{name}.min_level: `{other}` is not one of unknown, warning, critical"));
            Level::Unknown
        }
    };
    let hosts = hosts.unwrap_or_default();
    for pattern in &hosts {
        if pattern.is_empty() || !pattern.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*?".contains(&b)) {
            problems.push(format!("{name}.hosts: `{pattern}` is not a host name or a pattern of one with * and ?"));
        }
    }
    let max_per_hour = max_per_hour.unwrap_or(default_per_hour);
    if !(1..=100_000).contains(&max_per_hour) {
        problems.push(format!("{name}.max_per_hour: {max_per_hour} is outside 1 to 100000"));
    }
    let timeout = timeout.unwrap_or(10.0);
    if !(timeout > 0.0 && timeout <= 300.0) {
        problems.push(format!("{name}.timeout: {timeout} is not a number of seconds from above 0 to 300"));
    }
    let hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
    (Filter { min_level, hosts, tags: Vec::new() }, max_per_hour, clamped_seconds(timeout, 0.001, 300.0))
}

/// `seconds` brought into `min..=max`, as a Duration; NaN (`.nan` in YAML,
/// already reported as a problem) is `min`. The settings are built before
/// the problems end the check, so this must not panic on any value.
fn clamped_seconds(seconds: f64, min: f64, max: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.clamp(min, max)).unwrap_or(Duration::from_secs_f64(min))
}

/// An http:// or https:// URL with a host, as the services take them.
/// An http(s) URL with a host. A URL that is a secret (a Mattermost webhook
/// carries its key in the path) is never repeated in the message.
pub fn check_url(key: &str, url: &str, problems: &mut Vec<String>) {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    // `host[:port]`, the port (if any) a number from 1 to 65535.
    let port_ok = |h: &str| match h.rsplit_once(':') {
        Some((_, port)) if !h.ends_with(']') => port.parse::<u16>().is_ok_and(|p| p > 0),
        _ => true,
    };
    let ok = host.is_some_and(|h| !h.is_empty() && !h.contains(char::is_whitespace) && port_ok(h))
        && !url.contains(['\n', '\r', ' ']);
    if !ok {
        let field = key.rsplit('.').next().unwrap_or(key);
        match SECRET_KEYS.contains(&field) {
            true => problems.push(format!("{key}: the value given is not an http:// or https:// URL")),
            false => problems.push(format!("{key}: `{url}` is not an http:// or https:// URL")),
        }
    }
}

/// A mail address as `name@domain`, without anything that would break a header.
fn check_address(key: &str, address: &str, problems: &mut Vec<String>) {
    let ok = address.parse::<lettre::Address>().is_ok();
    if !ok {
        problems.push(format!("{key}: `{address}` is not an email address"));
    }
}

fn email(value: &serde_yaml::Value, check: &mut Check) -> Built {
    let Some(b) = block::<EmailBlock>("email", value, check.problems) else { return Built::Wrong };
    let before = check.problems.len();
    let (mut filter, max_per_hour, timeout) =
        common("email", b.min_level, b.hosts, b.max_per_hour, b.timeout, 60, check.problems);
    filter.tags = route_tags("email", b.tags, check.problems);
    let server = check.needs("email", "server", "SMTP server", b.server);
    if let Some(server) = server.as_ref().filter(|s| s.is_empty() || s.contains(char::is_whitespace)) {
        check.problems.push(format!("email.server: `{server}` is not a host name or address"));
    }
    let from = check.needs("email", "from", "sender address", b.from);
    if let Some(from) = &from {
        check_address("email.from", from, check.problems);
    }
    let to = check.needs("email", "to", "recipients", b.to.map(Recipients::into_vec).filter(|to| !to.is_empty()));
    for address in to.iter().flatten() {
        check_address("email.to", address, check.problems);
    }
    let password_given = b.password.is_some() || b.password_file.is_some() || b.password_env.is_some();
    let login = match b.username {
        Some(user) => check.secret("email.password", b.password, b.password_file, b.password_env).map(|p| (user, p)),
        None if password_given => {
            let _ = check.secret("email.password", b.password, b.password_file, b.password_env);
            check.lacks.push("no username for the password (give username in the email: block)".into());
            None
        }
        None => None,
    };
    let ca_pem = b.ca_file.and_then(|path| {
        let path = if path.is_relative() { check.cwd.join(path) } else { path };
        std::fs::read(&path).map_err(|e| check.problems.push(format!("email.ca_file: {}: {e}", path.display()))).ok()
    });
    let port = b.port.unwrap_or(match b.security {
        Security::Starttls => 587,
        Security::Tls => 465,
        Security::None => 25,
    });
    let settings = match (server, from, to) {
        (Some(server), Some(from), Some(to)) => Some(ServiceSettings {
            name: "email",
            kind: ServiceKind::Email(EmailSettings { server, port, security: b.security, login, from, to, ca_pem }),
            filter: filter.clone(),
            max_per_hour,
            timeout,
        }),
        _ => None,
    };
    check.finish("email", before, filter, settings)
}

fn pushover(value: &serde_yaml::Value, check: &mut Check) -> Built {
    let Some(b) = block::<PushoverBlock>("pushover", value, check.problems) else { return Built::Wrong };
    let before = check.problems.len();
    let (mut filter, max_per_hour, timeout) =
        common("pushover", b.min_level, b.hosts, b.max_per_hour, b.timeout, 60, check.problems);
    filter.tags = route_tags("pushover", b.tags, check.problems);
    let url = b.url.unwrap_or_else(|| PUSHOVER_URL.to_string());
    check_url("pushover.url", &url, check.problems);
    let token = check.secret("pushover.token", b.token, b.token_file, b.token_env);
    let user = check.secret("pushover.user", b.user, b.user_file, b.user_env);
    let settings = match (token, user) {
        (Some(token), Some(user)) => Some(ServiceSettings {
            name: "pushover",
            kind: ServiceKind::Pushover(PushoverSettings { url, token, user, device: b.device, sound: b.sound }),
            filter: filter.clone(),
            max_per_hour,
            timeout,
        }),
        _ => None,
    };
    check.finish("pushover", before, filter, settings)
}

fn mattermost(value: &serde_yaml::Value, check: &mut Check) -> Built {
    let Some(b) = block::<MattermostBlock>("mattermost", value, check.problems) else { return Built::Wrong };
    let before = check.problems.len();
    let (mut filter, max_per_hour, timeout) =
        common("mattermost", b.min_level, b.hosts, b.max_per_hour, b.timeout, 120, check.problems);
    filter.tags = route_tags("mattermost", b.tags, check.problems);
    let webhook_url = check.secret("mattermost.webhook_url", b.webhook_url, b.webhook_url_file, b.webhook_url_env);
    if let Some(url) = &webhook_url {
        check_url("mattermost.webhook_url", url, check.problems);
    }
    let settings = webhook_url.map(|webhook_url| ServiceSettings {
        name: "mattermost",
        kind: ServiceKind::Mattermost(MattermostSettings { webhook_url, channel: b.channel, username: b.username }),
        filter: filter.clone(),
        max_per_hour,
        timeout,
    });
    check.finish("mattermost", before, filter, settings)
}

fn signal(value: &serde_yaml::Value, check: &mut Check) -> Built {
    let Some(b) = block::<SignalBlock>("signal", value, check.problems) else { return Built::Wrong };
    let before = check.problems.len();
    let (mut filter, max_per_hour, timeout) =
        common("signal", b.min_level, b.hosts, b.max_per_hour, b.timeout, 30, check.problems);
    filter.tags = route_tags("signal", b.tags, check.problems);
    let url = check.needs("signal", "url", "signal-cli REST API url", b.url);
    if let Some(url) = &url {
        check_url("signal.url", url, check.problems);
    }
    let phone = |n: &str| n.starts_with('+') && n.len() > 4 && n[1..].bytes().all(|c| c.is_ascii_digit());
    let number = check.needs("signal", "number", "sending number", b.number);
    if let Some(number) = number.as_ref().filter(|n| !phone(n)) {
        check.problems.push(format!("signal.number: `{number}` is not a phone number as +CCNNNN…"));
    }
    let recipients = check.needs(
        "signal",
        "recipients",
        "recipients",
        b.recipients.map(Recipients::into_vec).filter(|r| !r.is_empty()),
    );
    for r in recipients.iter().flatten() {
        // Numbers, or group ids as signal-cli-rest-api takes them.
        if !(phone(r) || r.starts_with("group.")) {
            check
                .problems
                .push(format!("signal.recipients: `{r}` is neither a phone number as +CCNNNN… nor a group.… id"));
        }
    }
    let settings = match (url, number, recipients) {
        (Some(url), Some(number), Some(recipients)) => Some(ServiceSettings {
            name: "signal",
            kind: ServiceKind::Signal(SignalSettings {
                url: url.trim_end_matches('/').to_string(),
                number,
                recipients,
            }),
            filter: filter.clone(),
            max_per_hour,
            timeout,
        }),
        _ => None,
    };
    check.finish("signal", before, filter, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outcome for `yaml` with `pushsrv` (None: not given) in an
    /// environment holding `env`: settings, problems, warnings.
    fn compiled_in(
        yaml: &str,
        pushsrv: Option<&str>,
        env: &[(&str, &str)],
    ) -> (NotifySettings, Vec<String>, Vec<String>) {
        let map: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        let get = |k: &str| map.get(k).cloned().unwrap_or(serde_yaml::Value::Null);
        let (email, pushover, mattermost, signal) = (get("email"), get("pushover"), get("mattermost"), get("signal"));
        let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        let raw = Raw {
            pushsrv,
            email: &email,
            pushover: &pushover,
            mattermost: &mattermost,
            signal: &signal,
            group_window: 10.0,
            queue_max: 100,
            max_age: 86400.0,
            queue_file: "q.json".into(),
            env: &lookup,
        };
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let settings = compile(raw, Path::new("/srv"), &mut problems, &mut warnings);
        (settings, problems, warnings)
    }

    fn compiled(yaml: &str, pushsrv: &str) -> (NotifySettings, Vec<String>) {
        let (settings, problems, _) = compiled_in(yaml, Some(pushsrv), &[]);
        (settings, problems)
    }

    /// The named services as (name, problem), usable ones with None.
    fn states(settings: &NotifySettings) -> Vec<(&'static str, Option<String>)> {
        settings.states().into_iter().map(|s| (s.name, s.problem)).collect()
    }

    #[test]
    fn every_service_block() {
        let (s, problems) = compiled(
            "email: {server: mail.example.com, from: hbd@example.com, to: [a@example.com, b@example.com], username: u, password: p}\n\
             pushover: {token: t, user: u, sound: siren}\nmattermost: {webhook_url: 'https://mm.example.com/hooks/x', channel: ops}\n\
             signal: {url: 'http://127.0.0.1:8080/', number: '+4912345', recipients: ['+4954321']}\n",
            "all",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let names: Vec<&str> = s.services.iter().map(|s| s.name).collect();
        assert_eq!(names, ["email", "pushover", "mattermost", "signal"]);
        assert!(s.unusable.is_empty());
        let ServiceKind::Email(email) = &s.services[0].kind else { panic!() };
        assert_eq!((email.port, email.security, email.to.len()), (587, Security::Starttls, 2));
        let ServiceKind::Signal(signal) = &s.services[3].kind else { panic!() };
        assert_eq!(signal.url, "http://127.0.0.1:8080");
        assert_eq!(s.queue_file, Path::new("/srv/q.json"));
    }

    #[test]
    fn pushsrv_keeps_the_python_meaning() {
        let yaml = "pushover: {token: t, user: u}\nmattermost: {webhook_url: 'https://mm.example.com/h'}\n";
        let names = |pushsrv| compiled(yaml, pushsrv).0.services.iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names("pushover"), ["pushover"]);
        assert_eq!(names("mattermost"), ["mattermost"]);
        assert_eq!(names("all"), ["pushover", "mattermost"]);
        assert!(names("none").is_empty());
        let (_, problems) = compiled("", "pushbullet");
        assert!(problems[0].contains("pushsrv: `pushbullet` is not one of"), "{problems:?}");
        // Not given: each push service that has a block, and nothing named without one.
        let (s, problems, warnings) = compiled_in(yaml, None, &[]);
        assert_eq!(s.services.iter().map(|s| s.name).collect::<Vec<_>>(), ["pushover", "mattermost"]);
        let (s, _, _) = compiled_in("pushover: {token: t, user: u}\n", None, &[]);
        assert_eq!(states(&s), [("pushover", None)]);
        let (s, _, warnings_none) = compiled_in("", None, &[("PUSHOVER_TOKEN", "t"), ("PUSHOVER_USER", "u")]);
        assert!(s.is_empty() && warnings_none.is_empty(), "the environment alone names no service");
        assert!(problems.is_empty() && warnings.is_empty());
    }

    /// The Python README's minimal file: `pushsrv: pushover` and no block.
    #[test]
    fn a_named_service_without_what_it_needs_is_unusable_not_wrong() {
        let (s, problems, warnings) = compiled_in("", Some("pushover"), &[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(s.services.is_empty() && !s.is_empty());
        let [(name, Some(problem))] = &states(&s)[..] else { panic!("{:?}", states(&s)) };
        assert_eq!(*name, "pushover");
        assert_eq!(
            problem,
            "no token (set PUSHOVER_TOKEN in hbd's environment or give token, token_file or token_env in the pushover: block); \
             no user (set PUSHOVER_USER in hbd's environment or give user, user_file or user_env in the pushover: block)"
        );
        assert_eq!(warnings, [format!("pushover: not usable, nothing will be sent to it: {problem}")]);
        // The filter of its block still says what it would have got.
        let (s, _, _) = compiled_in("pushover: {min_level: critical}\n", Some("pushover"), &[]);
        assert_eq!(s.unusable[0].filter.min_level, Level::Critical);

        // `all` names both: the one without anything is named, not fatal.
        let (s, problems, warnings) =
            compiled_in("mattermost: {webhook_url: 'https://mm.example.com/h'}\n", Some("all"), &[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.services.iter().map(|s| s.name).collect::<Vec<_>>(), ["mattermost"]);
        assert_eq!(s.unusable.iter().map(|u| u.name).collect::<Vec<_>>(), ["pushover"]);
        assert!(warnings.len() == 1 && warnings[0].starts_with("pushover: not usable"), "{warnings:?}");
        let (s, _, _) = compiled_in("", Some("all"), &[]);
        let missing: Vec<_> = states(&s).into_iter().map(|(name, problem)| (name, problem.is_some())).collect();
        assert_eq!(missing, [("pushover", true), ("mattermost", true)]);
        assert!(s.unusable[1].problem.contains("set MATTERMOST_WEBHOOK_URL in hbd's environment"), "{:?}", s.unusable);

        // What a block lacks, or a secret hbd cannot read.
        for (yaml, pushsrv, lack) in [
            ("pushover: {token: t}\n", "pushover", "no user (set PUSHOVER_USER"),
            (
                "pushover: {token_env: HBD_NO_SUCH_VARIABLE, user: u}\n",
                "pushover",
                "token_env names HBD_NO_SUCH_VARIABLE, which is not set in hbd's environment",
            ),
            ("pushover: {token_file: /nonexistent/token, user: u}\n", "pushover", "token_file /nonexistent/token: "),
            ("mattermost: {channel: ops}\n", "mattermost", "no webhook_url (set MATTERMOST_WEBHOOK_URL"),
            ("email: {server: m, from: a@example.com}\n", "none", "no recipients (give to in the email: block)"),
            ("email: {server: m, from: a@example.com, to: []}\n", "none", "no recipients"),
            (
                "email: {server: m, from: a@example.com, to: b@example.com, username: u}\n",
                "none",
                "no password (give password, password_file or password_env in the email: block)",
            ),
            (
                "email: {server: m, from: a@example.com, to: b@example.com, password: p}\n",
                "none",
                "no username for the password",
            ),
            ("email: {}\n", "none", "no SMTP server (give server in the email: block); no sender address"),
            ("signal: {url: 'http://s', number: '+4912345'}\n", "none", "no recipients (give recipients"),
        ] {
            let (s, problems, _) = compiled_in(yaml, Some(pushsrv), &[]);
            assert!(problems.is_empty(), "{yaml:?} gave {problems:?}");
            assert!(s.services.is_empty(), "{yaml:?}");
            assert!(s.unusable.len() == 1 && s.unusable[0].problem.contains(lack), "{yaml:?} gave {:?}", s.unusable);
        }
    }

    #[test]
    fn credentials_come_from_the_environment_unless_the_block_names_them() {
        let env = [("PUSHOVER_TOKEN", "envtoken"), ("PUSHOVER_USER", "envuser"), ("MY_TOKEN", "mytoken")];
        let pushover = |yaml: &str| {
            let (s, problems, warnings) = compiled_in(yaml, Some("pushover"), &env);
            assert!(problems.is_empty() && warnings.is_empty(), "{yaml:?}: {problems:?} {warnings:?}");
            let ServiceKind::Pushover(p) = &s.services[0].kind else { panic!() };
            (p.token.clone(), p.user.clone())
        };
        assert_eq!(pushover(""), ("envtoken".to_string(), "envuser".to_string()));
        assert_eq!(pushover("pushover: {sound: siren}\n"), ("envtoken".to_string(), "envuser".to_string()));
        assert_eq!(pushover("pushover: {token: inline}\n"), ("inline".to_string(), "envuser".to_string()));
        assert_eq!(pushover("pushover: {token_env: MY_TOKEN}\n"), ("mytoken".to_string(), "envuser".to_string()));
        // An explicit variable that is unset does not fall back to the default one.
        let (s, _, _) = compiled_in("pushover: {token_env: UNSET_TOKEN}\n", Some("pushover"), &env);
        assert!(s.services.is_empty() && s.unusable[0].problem.contains("UNSET_TOKEN"), "{:?}", s.unusable);
        // An empty variable is an unset one.
        let (s, _, _) = compiled_in("", Some("pushover"), &[("PUSHOVER_TOKEN", ""), ("PUSHOVER_USER", "u")]);
        assert!(s.unusable[0].problem.starts_with("no token"), "{:?}", s.unusable);
        let (s, problems, _) =
            compiled_in("", Some("mattermost"), &[("MATTERMOST_WEBHOOK_URL", "https://mm.example.com/hooks/x")]);
        assert!(problems.is_empty());
        let ServiceKind::Mattermost(m) = &s.services[0].kind else { panic!() };
        assert_eq!(m.webhook_url, "https://mm.example.com/hooks/x");
        // A malformed URL from the environment is as wrong as one in the file.
        let (_, problems, _) = compiled_in("", Some("mattermost"), &[("MATTERMOST_WEBHOOK_URL", "mm.example.com")]);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("mattermost.webhook_url: the value given is not") && !p.contains("mm.example")),
            "the secret is not repeated: {problems:?}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (yaml, expected) in [
            (
                "email: {server: m, from: 'not an address', to: a@example.com}\n",
                "email.from: `not an address` is not an email address",
            ),
            (
                "email: {server: m, from: a@example.com, to: b@example.com, passwrd: x}\n",
                "email: unknown key `passwrd`",
            ),
            (
                "email: {server: m, from: a@example.com, to: b@example.com, port: 70000}\n",
                "email: invalid value: integer `70000`",
            ),
            ("email: {server: 'a b', from: a@example.com, to: b@example.com}\n", "email.server: `a b` is not"),
            ("pushover: {token: t, user: u, url: 'ftp://x'}\n", "pushover.url: `ftp://x` is not an http"),
            (
                "pushover: {token: t, user: u, url: 'https://x:99999/m'}\n",
                "pushover.url: `https://x:99999/m` is not an http",
            ),
            ("pushover: {tokn: t}\n", "pushover: unknown key `tokn`"),
            ("pushover: {token: [t], user: u}\n", "pushover: invalid type: sequence, expected a string"),
            ("pushover: yes\n", "pushover: invalid type"),
            ("mattermost: {webhook_url: 'not a url'}\n", "mattermost.webhook_url: the value given is not"),
            (
                "signal: {url: 'http://s', number: '12', recipients: ['+491']}\n",
                "signal.number: `12` is not a phone number",
            ),
            (
                "signal: {url: 'localhost:8080', number: '+4912345', recipients: ['+4954321']}\n",
                "signal.url: `localhost",
            ),
            ("pushover: {token: t, user: u, min_level: loud}\n", "pushover.min_level: `loud` is not one of"),
            ("pushover: {min_level: loud}\n", "pushover.min_level: `loud` is not one of"),
            ("pushover: {token: t, token_env: T, user: u}\n", "pushover.token: give only one of"),
        ] {
            let (s, problems) = compiled(yaml, "all");
            assert!(problems.iter().any(|p| p.contains(expected)), "{yaml:?} gave {problems:?}");
            assert!(!s.unusable.iter().any(|u| yaml.starts_with(u.name)), "{yaml:?} is wrong, not unusable");
        }
    }

    #[test]
    fn secrets_never_print() {
        let block: serde_yaml::Value = serde_yaml::from_str("{token: hunter2, user: ukey, sound: siren}").unwrap();
        let mut out = Vec::new();
        redact_block(&block, &mut serde_yaml::Serializer::new(&mut out)).unwrap();
        let shown = String::from_utf8(out).unwrap();
        assert!(!shown.contains("hunter2") && !shown.contains("ukey") && shown.contains("siren"), "{shown}");
        // Nor in the message about a webhook URL that is not one.
        let mut problems = Vec::new();
        check_url("mattermost.webhook_url", "hooks/xoxb-hunter2", &mut problems);
        assert_eq!(problems, ["mattermost.webhook_url: the value given is not an http:// or https:// URL"]);
    }

    #[test]
    fn filters_take_level_and_host_patterns() {
        let f = Filter { min_level: Level::Warning, hosts: vec!["web*".into()], tags: Vec::new() };
        assert!(f.wants(Level::Critical, "web1", &[]));
        assert!(!f.wants(Level::Unknown, "web1", &[]));
        assert!(!f.wants(Level::Critical, "db1", &[]));
        let f = Filter { min_level: Level::Unknown, hosts: Vec::new(), tags: vec!["db".into(), "backup".into()] };
        assert!(f.wants(Level::Critical, "x", &["backup".into()]));
        assert!(!f.wants(Level::Critical, "db1", &[]), "tags are the host's, not its name");
        assert!(!f.wants(Level::Critical, "x", &["web".into()]));
    }
}
