//! `alertmanager:`: Prometheus Alertmanagers that get hbd's alerts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::server::alertmanager::AlertmanagerSettings;
use crate::server::notify::config::check_url;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Each Alertmanager's base URL (`http://am1:9093`); every one gets every
    /// alert, as Prometheus sends to each Alertmanager of a cluster.
    pub urls: Vec<String>,
    #[serde(default = "default_resend_interval")]
    pub resend_interval: f64,
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// The console's address as people reach it, for `generatorURL`.
    #[serde(default)]
    pub external_url: Option<String>,
}

fn default_resend_interval() -> f64 {
    60.0
}

fn default_timeout() -> f64 {
    10.0
}

/// The checked settings; `console` is where the console is by default
/// (`http://HBD_NAME:HBD_PORT`). Problems are pushed as `key: text`.
pub fn compile(raw: &AlertmanagerConfig, console: String, problems: &mut Vec<String>) -> Option<AlertmanagerSettings> {
    let before = problems.len();
    if raw.urls.is_empty() {
        problems.push("alertmanager.urls: name at least one Alertmanager (http://HOST:9093)".into());
    }
    for (index, url) in raw.urls.iter().enumerate() {
        check_url(&format!("alertmanager.urls[{index}]"), url, problems);
    }
    if !(10.0..=3600.0).contains(&raw.resend_interval) {
        problems.push(format!("alertmanager.resend_interval: {} is not from 10 to 3600 seconds", raw.resend_interval));
    }
    if !(raw.timeout > 0.0 && raw.timeout <= 300.0) {
        problems.push(format!("alertmanager.timeout: {} is not above 0 and at most 300 seconds", raw.timeout));
    }
    if let Some(url) = &raw.external_url {
        check_url("alertmanager.external_url", url, problems);
    }
    (problems.len() == before).then(|| AlertmanagerSettings {
        urls: raw.urls.iter().map(|u| u.trim_end_matches('/').to_string()).collect(),
        resend_interval: Duration::from_secs_f64(raw.resend_interval),
        timeout: Duration::from_secs_f64(raw.timeout),
        external_url: raw.external_url.clone().unwrap_or(console).trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(yaml: &str) -> Vec<String> {
        let raw: AlertmanagerConfig = serde_yaml::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        compile(&raw, "http://hbd1:50004".into(), &mut problems);
        problems
    }

    #[test]
    fn urls_intervals_and_timeouts_are_checked() {
        assert!(problems_of("urls: ['http://am1:9093/', 'https://am2.example.net']").is_empty());
        assert_eq!(problems_of("urls: []"), ["alertmanager.urls: name at least one Alertmanager (http://HOST:9093)"]);
        assert_eq!(
            problems_of("urls: ['am1:9093']"),
            ["alertmanager.urls[0]: `am1:9093` is not an http:// or https:// URL"]
        );
        assert_eq!(
            problems_of("urls: ['http://a']\nresend_interval: 1"),
            ["alertmanager.resend_interval: 1 is not from 10 to 3600 seconds"]
        );
        assert_eq!(problems_of("urls: ['http://a']\ntimeout: 0").len(), 1);
    }

    #[test]
    fn the_console_is_linked_where_hbd_serves_it_unless_told() {
        let raw: AlertmanagerConfig = serde_yaml::from_str("urls: ['http://am:9093/']").unwrap();
        let settings = compile(&raw, "http://hbd1:50004".into(), &mut Vec::new()).unwrap();
        assert_eq!(
            (settings.urls[0].as_str(), settings.external_url.as_str()),
            ("http://am:9093", "http://hbd1:50004")
        );
        let raw: AlertmanagerConfig =
            serde_yaml::from_str("urls: ['http://am:9093']\nexternal_url: 'https://monitor.example.net/'").unwrap();
        let settings = compile(&raw, "http://hbd1:50004".into(), &mut Vec::new()).unwrap();
        assert_eq!(settings.external_url, "https://monitor.example.net");
    }
}
