//! `hbd`'s subcommands (`hbd forget HOST`, `hbd silence add|list|expire`): an operator's requests to
//! the running daemon, over its HTTP API on `hbd_host:hbd_port`, with the
//! first admin token of `api_tokens_file`. Not a thread of the daemon: a
//! client of it, as any script would be, so a subcommand does exactly what
//! the API documents and nothing more.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::server::config::Config;
use crate::server::http::auth;

/// How long a subcommand waits for the daemon.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Forget a host: its state, history and alerts; with `dns`, its DNS records.
    Forget { host: String, dns: bool },
    /// Acknowledge an alert of `target` (`HOST`: its host-down alert;
    /// `HOST/PLUGIN[/METRIC_PATH]`), or with `comment` None remove the
    /// acknowledgement.
    Ack { target: String, comment: Option<String> },
    /// Add a silence: `until` and `start` as the operator wrote them
    /// (Unix seconds, `HH:MM` or `YYYY-MM-DD HH:MM` local time), or `duration`.
    SilenceAdd {
        host: String,
        plugin: Option<String>,
        metric: Option<String>,
        duration: Option<String>,
        until: Option<String>,
        start: Option<String>,
        comment: String,
    },
    /// The silences not ended and the maintenance windows.
    SilenceList,
    /// End a silence now.
    SilenceExpire { id: String },
}

/// Why a subcommand did not do what it was asked; each says what to do.
#[derive(Debug)]
pub enum CtlError {
    /// The configuration does not let a subcommand write (exit 78).
    Config(String),
    /// The daemon is not reachable or not answering (exit 1).
    Unreachable(String),
    /// The daemon refused (exit 1): its status and error text.
    Refused(u16, String),
    /// The subcommand's own arguments are wrong (exit 2).
    Usage(String),
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CtlError::Config(why) | CtlError::Unreachable(why) | CtlError::Usage(why) => f.write_str(why),
            CtlError::Refused(status, why) => write!(f, "hbd answered {status}: {why}"),
        }
    }
}

/// Runs `command` against the daemon `config` describes; what to print on success.
pub fn run(config: &Config, cwd: &Path, command: &Command) -> Result<String, CtlError> {
    // The subcommand's own mistakes first: nothing is sent for them.
    let silence = match command {
        Command::SilenceAdd { .. } => {
            Some(silence_body(command, crate::wire::unix_seconds(std::time::SystemTime::now()))?)
        }
        _ => None,
    };
    let tokens = config.api_tokens_file.as_deref().ok_or_else(|| {
        CtlError::Config("api_tokens_file is not set: hbd takes writes only from an admin token (hbd.yaml(5))".into())
    })?;
    let tokens = if tokens.is_relative() { cwd.join(tokens) } else { tokens.to_path_buf() };
    let secret = auth::admin_secret(&tokens).map_err(CtlError::Config)?;
    let base = format!("http://{}", api_address(config)?);
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().into();
    let bearer = format!("Bearer {secret}");
    let request = |method: &str, path: &str, body: Option<String>| -> Result<Value, CtlError> {
        let url = format!("{base}{path}");
        let unreachable =
            |e: ureq::Error| CtlError::Unreachable(format!("cannot reach hbd at {base}: {e}; is it running?"));
        let mut response = match (method, body) {
            ("POST", Some(body)) => agent
                .post(&url)
                .header("Authorization", &bearer)
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
                .map_err(unreachable)?,
            ("GET", _) => agent.get(&url).header("Authorization", &bearer).call().map_err(unreachable)?,
            _ => agent.delete(&url).header("Authorization", &bearer).call().map_err(unreachable)?,
        };
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        answer(status, body)
    };
    match command {
        Command::Forget { host, dns: false } => {
            request("DELETE", &format!("/api/0/hosts/{}", encode(host)), None).map(|_| format!("forgot {host}"))
        }
        Command::Forget { host, dns: true } => request("DELETE", &format!("/api/0/hosts/{}?dns=1", encode(host)), None)
            .map(|_| format!("forgot {host}; its DNS records are being removed")),
        Command::Ack { target, comment } => {
            let (host, plugin, metric_path) = split_ack_target(target)?;
            let path = format!("/api/0/hosts/{}/ack", encode(host));
            let what = match plugin {
                None => format!("{host} (host down)"),
                Some(_) => target.clone(),
            };
            match comment {
                Some(comment) => {
                    let mut body = serde_json::json!({"comment": comment});
                    if let Some(plugin) = plugin {
                        body["plugin"] = plugin.into();
                        body["metric_path"] = metric_path.unwrap_or_default().into();
                    }
                    request("POST", &path, Some(body.to_string())).map(|_| format!("acknowledged {what}"))
                }
                None => {
                    let query = match plugin {
                        None => String::new(),
                        Some(plugin) => format!(
                            "?plugin={}&metric_path={}",
                            encode(plugin),
                            encode(metric_path.unwrap_or_default())
                        ),
                    };
                    request("DELETE", &format!("{path}{query}"), None)
                        .map(|_| format!("removed the acknowledgement of {what}"))
                }
            }
        }
        Command::SilenceAdd { .. } => {
            let body = silence.unwrap_or_default();
            let added = request("POST", "/api/0/silences", Some(body.to_string()))?;
            Ok(format!("silence {}", silence_line(&added)))
        }
        Command::SilenceList => request("GET", "/api/0/silences", None).map(|list| list_text(&list)),
        Command::SilenceExpire { id } => request("DELETE", &format!("/api/0/silences/{}", encode(id)), None)
            .map(|ended| format!("silence {} ended", ended.get("id").and_then(Value::as_str).unwrap_or(id))),
    }
}

/// A 2xx answer's JSON, or the daemon's error.
fn answer(status: u16, body: String) -> Result<Value, CtlError> {
    if (200..300).contains(&status) {
        return Ok(serde_json::from_str(&body).unwrap_or(Value::Null));
    }
    let error = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or(body);
    Err(CtlError::Refused(status, error))
}

/// `HOST`, `HOST/PLUGIN` (its "stopped reporting" alert) or
/// `HOST/PLUGIN/METRIC_PATH`; a metric path may hold slashes itself
/// (`disk_monitor/partitions./.percent`).
fn split_ack_target(target: &str) -> Result<(&str, Option<&str>, Option<&str>), CtlError> {
    let mut parts = target.splitn(3, '/');
    let host = parts.next().unwrap_or_default();
    let (plugin, metric_path) = (parts.next(), parts.next());
    if host.is_empty() || plugin.is_some_and(str::is_empty) {
        return Err(CtlError::Usage(format!("ack takes HOST or HOST/PLUGIN/METRIC_PATH, not {target:?}")));
    }
    Ok((host, plugin, metric_path))
}

/// The `POST /api/0/silences` body of `hbd silence add`: times given as
/// `HH:MM` or dates are turned into Unix seconds here, in local time.
fn silence_body(command: &Command, now: f64) -> Result<Value, CtlError> {
    let Command::SilenceAdd { host, plugin, metric, duration, until, start, comment } = command else {
        return Ok(Value::Null);
    };
    let usage = |why: String| CtlError::Usage(why);
    let mut body = serde_json::json!({"host": host, "comment": comment});
    let mut put = |key: &str, value: Value| {
        if let Some(map) = body.as_object_mut() {
            map.insert(key.into(), value);
        }
    };
    if let Some(plugin) = plugin {
        put("plugin", Value::from(plugin.as_str()));
    }
    if let Some(metric) = metric {
        put("metric_path", Value::from(metric.as_str()));
    }
    let starts_at = match start {
        Some(start) => Some(parse_time(start, now).map_err(|e| usage(format!("--start: {e}")))?),
        None => None,
    };
    if let Some(at) = starts_at {
        put("starts_at", Value::from(at));
    }
    match (duration, until) {
        (Some(_), Some(_)) => return Err(usage("give --for or --until, not both".into())),
        (None, None) => return Err(usage("silence add needs --for DURATION or --until TIME".into())),
        (Some(d), None) => {
            crate::server::silence::parse_duration(d).map_err(|e| usage(format!("--for: {e}")))?;
            put("duration", Value::from(d.as_str()));
        }
        (None, Some(u)) => {
            // A time of day is the next one after the start.
            let after = starts_at.unwrap_or(now);
            put("ends_at", Value::from(parse_time(u, after).map_err(|e| usage(format!("--until: {e}")))?));
        }
    }
    Ok(body)
}

/// `1796000000` (Unix seconds), `HH:MM` (the next such local time after
/// `after`) or `YYYY-MM-DD HH:MM` / `YYYY-MM-DDTHH:MM` (local time).
pub fn parse_time(text: &str, after: f64) -> Result<f64, String> {
    let bad = || format!("`{text}` is not a time: Unix seconds, HH:MM or YYYY-MM-DD HH:MM (local time)");
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds.is_finite().then_some(seconds).ok_or_else(bad);
    }
    let (date, clock) = match text.split_once([' ', 'T']) {
        Some((date, clock)) => (Some(date), clock),
        None => (None, text),
    };
    let of_day = crate::server::silence::parse_time_of_day(clock).ok_or_else(bad)?;
    let (h, m, sec) = ((of_day / 3600) as i32, (of_day / 60 % 60) as i32, (of_day % 60) as i32);
    let local = |year: i32, month: i32, day: i32| -> Option<f64> {
        // SAFETY: mktime reads and normalizes `tm`, which we own.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        (tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec) =
            (year - 1900, month - 1, day, h, m, sec);
        tm.tm_isdst = -1;
        let t = unsafe { libc::mktime(&mut tm) };
        (t != -1).then_some(t as f64)
    };
    match date {
        Some(date) => {
            let parts: Vec<i32> = date.split('-').filter_map(|p| p.parse().ok()).collect();
            match parts[..] {
                [y, mo, d] if (1..=12).contains(&mo) && (1..=31).contains(&d) => local(y, mo, d).ok_or_else(bad),
                _ => Err(bad()),
            }
        }
        None => {
            // Today's, else tomorrow's (mktime normalizes day 32 and the like).
            let t = after.floor() as i64 as _;
            // SAFETY: localtime_r writes only into `tm`, which we own.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
                return Err(bad());
            }
            let (y, mo, d) = (tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
            match local(y, mo, d) {
                Some(at) if at > after => Ok(at),
                _ => local(y, mo, d + 1).ok_or_else(bad),
            }
        }
    }
}

/// `ID host[/plugin[/metric]] from … until … by …: comment`.
fn silence_line(s: &Value) -> String {
    let text = |key: &str| s.get(key).and_then(Value::as_str).unwrap_or("");
    let time = |key: &str| {
        s.get(key)
            .and_then(Value::as_f64)
            .map_or_else(|| "?".into(), |t| crate::server::journal::local_datetime(t as i64))
    };
    let mut what = text("host").to_string();
    for key in ["plugin", "metric_path"] {
        if let Some(part) = s.get(key).and_then(Value::as_str) {
            what = format!("{what}/{part}");
        }
    }
    let state = if s.get("active").and_then(Value::as_bool) == Some(true) { "holding" } else { "to come" };
    format!(
        "{} {what} ({state}) from {} until {} by {}: {}",
        text("id"),
        time("starts_at"),
        time("ends_at"),
        text("by"),
        text("comment")
    )
}

/// `hbd silence list`: a line per silence, then per maintenance window.
fn list_text(list: &Value) -> String {
    let mut lines = Vec::new();
    let silences = list.get("silences").and_then(Value::as_array).cloned().unwrap_or_default();
    if silences.is_empty() {
        lines.push("no silences".to_string());
    }
    lines.extend(silences.iter().map(silence_line));
    for w in list.get("maintenance").and_then(Value::as_array).into_iter().flatten() {
        let text = |key: &str| w.get(key).and_then(Value::as_str).unwrap_or("");
        let hosts: Vec<&str> =
            w.get("hosts").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let (state, at) = match w.get("active").and_then(Value::as_bool) {
            Some(true) => ("in force", "until"),
            _ => ("next", "from"),
        };
        let key = if at == "until" { "ends_at" } else { "starts_at" };
        let when = w
            .get(key)
            .and_then(Value::as_f64)
            .map_or_else(|| "never".into(), |t| crate::server::journal::local_datetime(t as i64));
        lines.push(format!(
            "maintenance {} {} ({state}) {at} {when}: {}",
            text("name"),
            hosts.join(","),
            text("comment")
        ));
    }
    lines.join("\n")
}

/// Where to reach the API: `hbd_host`, or loopback when it listens on
/// every address.
fn api_address(config: &Config) -> Result<SocketAddr, CtlError> {
    let host = config.hbd_host.as_str();
    let ip = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        Ok(ip) => ip,
        Err(_) => {
            let found = (host, config.hbd_port).to_socket_addrs().ok().and_then(|mut a| a.next());
            return found.ok_or_else(|| CtlError::Config(format!("hbd_host `{host}` does not resolve")));
        }
    };
    Ok(SocketAddr::new(ip, config.hbd_port))
}

/// A path segment, percent-encoded (a host name needs none; anything else
/// is the daemon's to refuse, not the shell's to mangle).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_reached_on_loopback_when_hbd_listens_everywhere() {
        let config = |host: &str| Config { hbd_host: host.into(), hbd_port: 50004, ..Config::default() };
        assert_eq!(api_address(&config("0.0.0.0")).unwrap(), "127.0.0.1:50004".parse().unwrap());
        assert_eq!(api_address(&config("::")).unwrap(), "[::1]:50004".parse().unwrap());
        assert_eq!(api_address(&config("192.0.2.1")).unwrap(), "192.0.2.1:50004".parse().unwrap());
        assert!(api_address(&config("no-such-host.invalid")).is_err());
        assert_eq!(encode("db1.example.com"), "db1.example.com");
        assert_eq!(encode("a/../b c"), "a%2F..%2Fb%20c");
    }

    #[test]
    fn ack_targets() {
        assert_eq!(split_ack_target("db1").unwrap(), ("db1", None, None));
        assert_eq!(split_ack_target("db1/cpu_monitor").unwrap(), ("db1", Some("cpu_monitor"), None));
        assert_eq!(
            split_ack_target("db1/disk_monitor/partitions./.percent").unwrap(),
            ("db1", Some("disk_monitor"), Some("partitions./.percent"))
        );
        for bad in ["", "/cpu_monitor", "db1/", "db1//x"] {
            assert!(matches!(split_ack_target(bad), Err(CtlError::Usage(_))), "{bad:?}");
        }
    }

    #[test]
    fn times_are_unix_seconds_or_local_clock_times() {
        use crate::server::journal::local_datetime;
        assert_eq!(parse_time("1796000000", 0.0), Ok(1_796_000_000.0));
        let at = parse_time("2026-12-03 14:05", 0.0).unwrap();
        assert_eq!(local_datetime(at as i64), "2026-12-03T14:05:00");
        assert_eq!(parse_time("2026-12-03T14:05", 0.0), Ok(at));
        // A time of day is the next one: later today, or tomorrow.
        let next = parse_time("14:05", at - 60.0).unwrap();
        assert_eq!(next, at);
        let tomorrow = parse_time("14:05", at).unwrap();
        assert_eq!(local_datetime(tomorrow as i64), "2026-12-04T14:05:00");
        for bad in ["", "soon", "25:00", "2026-13-01 10:00", "2026-12 10:00", "14:05 tomorrow", "NaN"] {
            assert!(parse_time(bad, at).is_err(), "{bad}");
        }
    }

    #[test]
    fn silence_add_sends_the_documented_body() {
        let add = |duration: Option<&str>, until: Option<&str>| Command::SilenceAdd {
            host: "db*".into(),
            plugin: Some("disk_monitor".into()),
            metric: None,
            duration: duration.map(String::from),
            until: until.map(String::from),
            start: None,
            comment: "kernel".into(),
        };
        let body = silence_body(&add(Some("2h"), None), 1000.0).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"host": "db*", "plugin": "disk_monitor", "duration": "2h", "comment": "kernel"})
        );
        let body = silence_body(&add(None, Some("5000")), 1000.0).unwrap();
        assert_eq!(body["ends_at"], 5000.0);
        for (duration, until) in [(Some("2x"), None), (None, None), (Some("2h"), Some("5000")), (None, Some("later"))] {
            assert!(
                matches!(silence_body(&add(duration, until), 1000.0), Err(CtlError::Usage(_))),
                "{duration:?} {until:?}"
            );
        }
        let list = serde_json::json!({"silences": [], "maintenance": [{"name": "k", "hosts": ["db*"], "active": false, "starts_at": null, "comment": "c"}]});
        assert_eq!(list_text(&list), "no silences\nmaintenance k db* (next) from never: c");
    }

    #[test]
    fn without_a_tokens_file_nothing_is_sent() {
        let error =
            run(&Config::default(), Path::new("/"), &Command::Forget { host: "db1".into(), dns: false }).unwrap_err();
        assert!(matches!(error, CtlError::Config(ref why) if why.contains("api_tokens_file is not set")), "{error}");
    }
}
