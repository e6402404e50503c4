//! The notification keys of hbd.yaml: `pushsrv` (the Python meaning:
//! `pushover`, `mattermost`, `all`, or `none`), one block per service
//! (`email`, `pushover`, `mattermost`, `signal`) and the `notify_*` keys,
//! checked into [`NotifySettings`] by [`compile`]. Secrets may come from the
//! YAML, a file (`password_file`) or an environment variable
//! (`password_env`); the YAML as `--check-config` prints it never shows them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

use crate::server::model::Level;
use crate::server::pattern::glob_matches;

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

/// Which messages a service gets: a minimum level and host patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub min_level: Level,
    /// Host name patterns (`*`, `?`); empty: every host.
    pub hosts: Vec<String>,
}

impl Filter {
    pub fn wants(&self, level: Level, host: &str) -> bool {
        level >= self.min_level && (self.hosts.is_empty() || self.hosts.iter().any(|p| glob_matches(p, host)))
    }
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

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub services: Vec<ServiceSettings>,
    /// Events arriving within this long of the first are sent as one message.
    pub group_window: Duration,
    /// Undelivered messages kept per service; beyond, the oldest is dropped.
    pub queue_max: usize,
    /// Undelivered messages older than this are dropped.
    pub max_age: Duration,
    /// Where undelivered messages wait across restarts.
    pub queue_file: PathBuf,
}

/// The raw keys, as `Config` holds them.
pub struct Raw<'a> {
    pub pushsrv: &'a str,
    pub email: &'a serde_yaml::Value,
    pub pushover: &'a serde_yaml::Value,
    pub mattermost: &'a serde_yaml::Value,
    pub signal: &'a serde_yaml::Value,
    pub group_window: f64,
    pub queue_max: usize,
    pub max_age: f64,
    pub queue_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBlock {
    server: String,
    port: Option<u16>,
    #[serde(default)]
    security: Security,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    from: String,
    to: Recipients,
    ca_file: Option<PathBuf>,
    min_level: Option<String>,
    hosts: Option<Vec<String>>,
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

#[derive(Deserialize)]
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
    max_per_hour: Option<usize>,
    timeout: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MattermostBlock {
    webhook_url: Option<String>,
    webhook_url_file: Option<PathBuf>,
    webhook_url_env: Option<String>,
    channel: Option<String>,
    username: Option<String>,
    min_level: Option<String>,
    hosts: Option<Vec<String>>,
    max_per_hour: Option<usize>,
    timeout: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBlock {
    url: String,
    number: String,
    recipients: Recipients,
    min_level: Option<String>,
    hosts: Option<Vec<String>>,
    max_per_hour: Option<usize>,
    timeout: Option<f64>,
}

pub const PUSHOVER_URL: &str = "https://api.pushover.net/1/messages.json";

/// Checks the notification keys; each problem names its key.
pub fn compile(raw: Raw, cwd: &Path, problems: &mut Vec<String>) -> NotifySettings {
    let (want_pushover, want_mattermost) = match raw.pushsrv {
        "all" => (true, true),
        "pushover" => (true, false),
        "mattermost" => (false, true),
        "none" => (false, false),
        other => {
            problems.push(format!("pushsrv: `{other}` is not one of pushover, mattermost, all, none"));
            (false, false)
        }
    };
    if raw.pushsrv == "pushover" && raw.pushover.is_null() {
        problems.push("pushsrv: pushover needs a `pushover:` block with token and user".into());
    }
    if raw.pushsrv == "mattermost" && raw.mattermost.is_null() {
        problems.push("pushsrv: mattermost needs a `mattermost:` block with webhook_url".into());
    }
    let mut services = Vec::new();
    let mut add = |service: Option<ServiceSettings>| services.extend(service);
    add(block::<EmailBlock>("email", raw.email, problems).and_then(|b| email(b, cwd, problems)));
    if want_pushover {
        add(block::<PushoverBlock>("pushover", raw.pushover, problems).and_then(|b| pushover(b, cwd, problems)));
    }
    if want_mattermost {
        add(block::<MattermostBlock>("mattermost", raw.mattermost, problems).and_then(|b| mattermost(b, cwd, problems)));
    }
    add(block::<SignalBlock>("signal", raw.signal, problems).and_then(|b| signal(b, problems)));
    if !(raw.group_window >= 0.0 && raw.group_window <= 3600.0) {
        problems.push(format!("notify_group_window: {} is not a number of seconds from 0 to 3600", raw.group_window));
    }
    if !(1..=1_000_000).contains(&raw.queue_max) {
        problems.push(format!("notify_queue_max: {} is outside 1 to 1000000", raw.queue_max));
    }
    if !(raw.max_age >= 60.0 && raw.max_age <= 30.0 * 86400.0) {
        problems.push(format!("notify_max_age: {} is not a number of seconds from 60 to 2592000", raw.max_age));
    }
    let queue_file = if raw.queue_file.is_relative() { cwd.join(&raw.queue_file) } else { raw.queue_file };
    NotifySettings {
        services,
        group_window: Duration::from_secs_f64(raw.group_window.clamp(0.0, 3600.0)),
        queue_max: raw.queue_max,
        max_age: Duration::from_secs_f64(raw.max_age.clamp(60.0, 30.0 * 86400.0)),
        queue_file,
    }
}

/// A service's block as its strict struct; None when absent or wrong.
fn block<T: DeserializeOwned>(name: &str, value: &serde_yaml::Value, problems: &mut Vec<String>) -> Option<T> {
    if value.is_null() {
        return None;
    }
    serde_yaml::from_value(value.clone())
        .map_err(|e| {
            let text = e.to_string().replace("unknown field", "unknown key").replace("missing field", "missing key");
            problems.push(format!("{name}: {text}"));
        })
        .ok()
}

/// A secret given inline, in a file or in an environment variable: exactly one.
fn secret(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    env: Option<String>,
    cwd: &Path,
    problems: &mut Vec<String>,
) -> Option<String> {
    let given = [inline.is_some(), file.is_some(), env.is_some()].iter().filter(|g| **g).count();
    if given > 1 {
        problems.push(format!("{key}: give only one of {key}, {key}_file and {key}_env"));
        return None;
    }
    if let Some(value) = inline {
        return Some(value);
    }
    if let Some(path) = file {
        let path = if path.is_relative() { cwd.join(path) } else { path };
        return match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
            Ok(_) => {
                problems.push(format!("{key}_file: {} is empty", path.display()));
                None
            }
            Err(e) => {
                problems.push(format!("{key}_file: {}: {e}", path.display()));
                None
            }
        };
    }
    if let Some(var) = env {
        return match std::env::var(&var) {
            Ok(value) if !value.is_empty() => Some(value),
            _ => {
                problems.push(format!("{key}_env: the environment variable {var} is not set"));
                None
            }
        };
    }
    None
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
    (Filter { min_level, hosts }, max_per_hour, Duration::from_secs_f64(timeout.clamp(0.001, 300.0)))
}

/// An http:// or https:// URL with a host, as the services take them.
fn check_url(key: &str, url: &str, problems: &mut Vec<String>) {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let ok =
        host.is_some_and(|h| !h.is_empty() && !h.contains(char::is_whitespace)) && !url.contains(['\n', '\r', ' ']);
    if !ok {
        problems.push(format!("{key}: `{url}` is not an http:// or https:// URL"));
    }
}

/// A mail address as `name@domain`, without anything that would break a header.
fn check_address(key: &str, address: &str, problems: &mut Vec<String>) {
    let ok = address.parse::<lettre::Address>().is_ok();
    if !ok {
        problems.push(format!("{key}: `{address}` is not an email address"));
    }
}

fn email(b: EmailBlock, cwd: &Path, problems: &mut Vec<String>) -> Option<ServiceSettings> {
    let before = problems.len();
    let (filter, max_per_hour, timeout) =
        common("email", b.min_level, b.hosts, b.max_per_hour, b.timeout, 60, problems);
    if b.server.is_empty() || b.server.contains(char::is_whitespace) {
        problems.push(format!("email.server: `{}` is not a host name or address", b.server));
    }
    check_address("email.from", &b.from, problems);
    let to = match b.to {
        Recipients::One(one) => vec![one],
        Recipients::Many(many) => many,
    };
    if to.is_empty() {
        problems.push("email.to: needs at least one address".into());
    }
    for address in &to {
        check_address("email.to", address, problems);
    }
    let password = secret("email.password", b.password, b.password_file, b.password_env, cwd, problems);
    let login = match (b.username, password) {
        (Some(user), Some(password)) => Some((user, password)),
        (None, None) => None,
        (Some(_), None) => {
            problems.push("email.username: needs a password (password, password_file or password_env)".into());
            None
        }
        (None, Some(_)) => {
            problems.push("email.password: needs a username".into());
            None
        }
    };
    let ca_pem = b.ca_file.and_then(|path| {
        let path = if path.is_relative() { cwd.join(path) } else { path };
        std::fs::read(&path).map_err(|e| problems.push(format!("email.ca_file: {}: {e}", path.display()))).ok()
    });
    let port = b.port.unwrap_or(match b.security {
        Security::Starttls => 587,
        Security::Tls => 465,
        Security::None => 25,
    });
    (problems.len() == before).then_some(ServiceSettings {
        name: "email",
        kind: ServiceKind::Email(EmailSettings {
            server: b.server,
            port,
            security: b.security,
            login,
            from: b.from,
            to,
            ca_pem,
        }),
        filter,
        max_per_hour,
        timeout,
    })
}

fn pushover(b: PushoverBlock, cwd: &Path, problems: &mut Vec<String>) -> Option<ServiceSettings> {
    let before = problems.len();
    let (filter, max_per_hour, timeout) =
        common("pushover", b.min_level, b.hosts, b.max_per_hour, b.timeout, 60, problems);
    let url = b.url.unwrap_or_else(|| PUSHOVER_URL.to_string());
    check_url("pushover.url", &url, problems);
    let token = secret("pushover.token", b.token, b.token_file, b.token_env, cwd, problems);
    let user = secret("pushover.user", b.user, b.user_file, b.user_env, cwd, problems);
    if token.is_none() && problems.len() == before {
        problems.push("pushover.token: missing (token, token_file or token_env)".into());
    }
    if user.is_none() && problems.len() == before {
        problems.push("pushover.user: missing (user, user_file or user_env)".into());
    }
    let (token, user) = (token?, user?);
    (problems.len() == before).then_some(ServiceSettings {
        name: "pushover",
        kind: ServiceKind::Pushover(PushoverSettings { url, token, user, device: b.device, sound: b.sound }),
        filter,
        max_per_hour,
        timeout,
    })
}

fn mattermost(b: MattermostBlock, cwd: &Path, problems: &mut Vec<String>) -> Option<ServiceSettings> {
    let before = problems.len();
    let (filter, max_per_hour, timeout) =
        common("mattermost", b.min_level, b.hosts, b.max_per_hour, b.timeout, 120, problems);
    let webhook_url =
        secret("mattermost.webhook_url", b.webhook_url, b.webhook_url_file, b.webhook_url_env, cwd, problems);
    let Some(webhook_url) = webhook_url else {
        if problems.len() == before {
            problems.push("mattermost.webhook_url: missing (webhook_url, webhook_url_file or webhook_url_env)".into());
        }
        return None;
    };
    check_url("mattermost.webhook_url", &webhook_url, problems);
    (problems.len() == before).then_some(ServiceSettings {
        name: "mattermost",
        kind: ServiceKind::Mattermost(MattermostSettings { webhook_url, channel: b.channel, username: b.username }),
        filter,
        max_per_hour,
        timeout,
    })
}

fn signal(b: SignalBlock, problems: &mut Vec<String>) -> Option<ServiceSettings> {
    let before = problems.len();
    let (filter, max_per_hour, timeout) =
        common("signal", b.min_level, b.hosts, b.max_per_hour, b.timeout, 30, problems);
    check_url("signal.url", &b.url, problems);
    let phone = |n: &str| n.starts_with('+') && n.len() > 4 && n[1..].bytes().all(|c| c.is_ascii_digit());
    if !phone(&b.number) {
        problems.push(format!("signal.number: `{}` is not a phone number as +CCNNNN…", b.number));
    }
    let recipients = match b.recipients {
        Recipients::One(one) => vec![one],
        Recipients::Many(many) => many,
    };
    if recipients.is_empty() {
        problems.push("signal.recipients: needs at least one".into());
    }
    for r in &recipients {
        // Numbers, or group ids as signal-cli-rest-api takes them.
        if !(phone(r) || r.starts_with("group.")) {
            problems.push(format!("signal.recipients: `{r}` is neither a phone number as +CCNNNN… nor a group.… id"));
        }
    }
    (problems.len() == before).then_some(ServiceSettings {
        name: "signal",
        kind: ServiceKind::Signal(SignalSettings {
            url: b.url.trim_end_matches('/').to_string(),
            number: b.number,
            recipients,
        }),
        filter,
        max_per_hour,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str, pushsrv: &str) -> (NotifySettings, Vec<String>) {
        let map: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        let get = |k: &str| map.get(k).cloned().unwrap_or(serde_yaml::Value::Null);
        let (email, pushover, mattermost, signal) = (get("email"), get("pushover"), get("mattermost"), get("signal"));
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
        };
        let mut problems = Vec::new();
        let settings = compile(raw, Path::new("/srv"), &mut problems);
        (settings, problems)
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
        let (_, problems) = compiled("", "pushover");
        assert!(problems[0].contains("pushover needs a `pushover:` block"), "{problems:?}");
    }

    #[test]
    fn mistakes_are_named() {
        for (yaml, expected) in [
            (
                "email: {server: m, from: 'not an address', to: a@example.com}\n",
                "email.from: `not an address` is not an email address",
            ),
            ("email: {server: m, from: a@example.com}\n", "email: missing key `to`"),
            (
                "email: {server: m, from: a@example.com, to: b@example.com, passwrd: x}\n",
                "email: unknown key `passwrd`",
            ),
            (
                "email: {server: m, from: a@example.com, to: b@example.com, username: u}\n",
                "email.username: needs a password",
            ),
            ("pushover: {token: t}\n", "pushover.user: missing"),
            ("pushover: {token: t, user: u, url: 'ftp://x'}\n", "pushover.url: `ftp://x` is not an http"),
            ("mattermost: {webhook_url: 'not a url'}\n", "mattermost.webhook_url: `not a url` is not"),
            (
                "signal: {url: 'http://s', number: '12', recipients: ['+491']}\n",
                "signal.number: `12` is not a phone number",
            ),
            ("pushover: {token: t, user: u, min_level: loud}\n", "pushover.min_level: `loud` is not one of"),
            ("pushover: {token: t, token_env: T, user: u}\n", "pushover.token: give only one of"),
            (
                "pushover: {token_env: HBD_NO_SUCH_VARIABLE, user: u}\n",
                "the environment variable HBD_NO_SUCH_VARIABLE is not set",
            ),
            ("pushover: {token_file: /nonexistent/token, user: u}\n", "pushover.token_file: /nonexistent/token:"),
        ] {
            let (_, problems) = compiled(yaml, "all");
            assert!(problems.iter().any(|p| p.contains(expected)), "{yaml:?} gave {problems:?}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let block: serde_yaml::Value = serde_yaml::from_str("{token: hunter2, user: ukey, sound: siren}").unwrap();
        let mut out = Vec::new();
        redact_block(&block, &mut serde_yaml::Serializer::new(&mut out)).unwrap();
        let shown = String::from_utf8(out).unwrap();
        assert!(!shown.contains("hunter2") && !shown.contains("ukey") && shown.contains("siren"), "{shown}");
    }

    #[test]
    fn filters_take_level_and_host_patterns() {
        let f = Filter { min_level: Level::Warning, hosts: vec!["web*".into()] };
        assert!(f.wants(Level::Critical, "web1"));
        assert!(!f.wants(Level::Unknown, "web1"));
        assert!(!f.wants(Level::Critical, "db1"));
    }
}
