//! `hbd`'s subcommands (`hbd forget HOST`, ...): an operator's requests to
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
    /// The command line does not say what to do (exit 2).
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
    let tokens = config.api_tokens_file.as_deref().ok_or_else(|| {
        CtlError::Config("api_tokens_file is not set: hbd takes writes only from an admin token (hbd.yaml(5))".into())
    })?;
    let tokens = if tokens.is_relative() { cwd.join(tokens) } else { tokens.to_path_buf() };
    let secret = auth::admin_secret(&tokens).map_err(CtlError::Config)?;
    let base = format!("http://{}", api_address(config)?);
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().into();
    let bearer = format!("Bearer {secret}");
    let request = |method: &str, url: &str, body: Option<String>| {
        let sent = match (method, body) {
            ("POST", Some(body)) => agent
                .post(url)
                .header("Authorization", &bearer)
                .header("Content-Type", "application/json")
                .send(body.as_str()),
            _ => agent.delete(url).header("Authorization", &bearer).call(),
        };
        sent.map_err(|e| CtlError::Unreachable(format!("cannot reach hbd at {base}: {e}; is it running?")))
    };
    let (mut response, done) = match command {
        Command::Forget { host, dns: false } => {
            (request("DELETE", &format!("{base}/api/0/hosts/{}", encode(host)), None)?, format!("forgot {host}"))
        }
        Command::Forget { host, dns: true } => (
            request("DELETE", &format!("{base}/api/0/hosts/{}?dns=1", encode(host)), None)?,
            format!("forgot {host}; its DNS records are being removed"),
        ),
        Command::Ack { target, comment } => {
            let (host, plugin, metric_path) = split_ack_target(target)?;
            let url = format!("{base}/api/0/hosts/{}/ack", encode(host));
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
                    (request("POST", &url, Some(body.to_string()))?, format!("acknowledged {what}"))
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
                    (
                        request("DELETE", &format!("{url}{query}"), None)?,
                        format!("removed the acknowledgement of {what}"),
                    )
                }
            }
        }
    };
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if (200..300).contains(&status) {
        return Ok(done);
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
    fn without_a_tokens_file_nothing_is_sent() {
        let error =
            run(&Config::default(), Path::new("/"), &Command::Forget { host: "db1".into(), dns: false }).unwrap_err();
        assert!(matches!(error, CtlError::Config(ref why) if why.contains("api_tokens_file is not set")), "{error}");
    }
}
