//! `nagios_runner`: runs Nagios plugins and reports each check (state, text,
//! performance data) and the worst state of all, as `status`/`exit_code`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::command::{self, split_words};
use super::{out_of_range, Common, Kind, Plugin, MAX_TIMEOUT};
use crate::client::nagios::{PluginOutput, State};

const DEFAULT_TIMEOUT: u64 = 30;

/// A check: a command line, or a command with its own name and timeout.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum CheckConfig {
    Line(String),
    Named(NamedCheck),
}

/// By hand rather than `untagged`, so that a typo in a named check is
/// reported as the unknown key it is, not as "did not match any variant".
impl<'de> Deserialize<'de> for CheckConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_yaml::Value::deserialize(deserializer)? {
            serde_yaml::Value::String(line) => Ok(CheckConfig::Line(line)),
            other => NamedCheck::deserialize(other).map(CheckConfig::Named).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamedCheck {
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(flatten)]
    pub common: Common,
    /// Seconds a check may run before its process group is killed.
    #[serde(default)]
    pub timeout: Option<u64>,
    #[serde(default)]
    pub commands: Vec<CheckConfig>,
}

impl Options {
    pub fn check(&self) -> Result<(), String> {
        if let Some(problem) = self.timeout.and_then(|t| out_of_range(t, MAX_TIMEOUT)) {
            return Err(format!("plugins.nagios_runner.timeout: {problem}"));
        }
        for (i, check) in self.commands.iter().enumerate() {
            let line = match check {
                CheckConfig::Line(line) => line,
                CheckConfig::Named(NamedCheck { command, timeout, .. }) => {
                    if let Some(problem) = timeout.and_then(|t| out_of_range(t, MAX_TIMEOUT)) {
                        return Err(format!("plugins.nagios_runner.commands[{i}].timeout: {problem}"));
                    }
                    command
                }
            };
            split_words(line).map_err(|e| format!("plugins.nagios_runner.commands[{i}]: {e}"))?;
        }
        Ok(())
    }
}

struct Check {
    name: String,
    command: String,
    words: Vec<String>,
    timeout: Duration,
}

pub struct NagiosRunner {
    checks: Vec<Check>,
}

impl NagiosRunner {
    pub fn new(options: &Options) -> NagiosRunner {
        let default_timeout = options.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut checks: Vec<Check> = Vec::new();
        for config in &options.commands {
            let (name, command, timeout) = match config {
                CheckConfig::Line(line) => (None, line, None),
                CheckConfig::Named(NamedCheck { name, command, timeout }) => (Some(name.clone()), command, *timeout),
            };
            // Options::check has proven every command line splits.
            let words = split_words(command).unwrap_or_default();
            let base = name.unwrap_or_else(|| {
                let program = words.first().map(String::as_str).unwrap_or("check");
                program.rsplit('/').next().unwrap_or(program).to_string()
            });
            // check_disk twice becomes check_disk and check_disk_2.
            let mut name = base.clone();
            let mut n = 1;
            while checks.iter().any(|c| c.name == name) {
                n += 1;
                name = format!("{base}_{n}");
            }
            checks.push(Check {
                name,
                command: command.clone(),
                words,
                timeout: Duration::from_secs(timeout.unwrap_or(default_timeout)),
            });
        }
        NagiosRunner { checks }
    }
}

/// One check's report.
pub fn run_check(words: &[String], timeout: Duration) -> Value {
    let finished = match command::run(words, timeout) {
        Ok(finished) => finished,
        Err(e) => return json!({"status": "UNKNOWN", "exit_code": 3, "output": e}),
    };
    let (state, text) = if finished.timed_out {
        (State::Unknown, format!("timed out after {} s", timeout.as_secs()))
    } else {
        let state = State::from_exit_code(finished.exit_code);
        (state, String::new())
    };
    let output = if finished.stdout.trim().is_empty() { finished.stderr.clone() } else { finished.stdout.clone() };
    let parsed = PluginOutput::parse(&output);
    let perfdata: BTreeMap<String, Value> =
        parsed.perfdata.iter().map(|p| (p.label.clone(), serde_json::to_value(p).unwrap_or(Value::Null))).collect();
    let mut report = json!({
        "status": state,
        "exit_code": state.exit_code(),
        "output": if text.is_empty() { parsed.text } else { text },
        "duration_ms": (finished.duration.as_secs_f64() * 1e5).round() / 100.0,
        "perfdata": perfdata,
    });
    if let Some(map) = report.as_object_mut() {
        if !parsed.long_text.is_empty() {
            map.insert("long_output".into(), json!(parsed.long_text));
        }
        if !parsed.perfdata_errors.is_empty() {
            map.insert("perfdata_errors".into(), json!(parsed.perfdata_errors));
        }
        if finished.exit_code.is_some_and(|c| !(0..=3).contains(&c)) {
            map.insert("raw_exit_code".into(), json!(finished.exit_code));
        }
    }
    report
}

impl Plugin for NagiosRunner {
    fn name(&self) -> &str {
        "nagios_runner"
    }

    fn kind(&self) -> Kind {
        Kind::Monitor
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        let mut checks = serde_json::Map::new();
        let mut states = Vec::new();
        for check in &self.checks {
            let mut report = run_check(&check.words, check.timeout);
            let state = match report["exit_code"].as_i64() {
                Some(code) => State::from_exit_code(Some(code as i32)),
                None => State::Unknown,
            };
            states.push(state);
            if let Some(map) = report.as_object_mut() {
                map.insert("command".into(), json!(check.command));
            }
            checks.insert(check.name.clone(), report);
        }
        let worst = State::worst(states.iter().copied());
        let count = |s: State| states.iter().filter(|x| **x == s).count();
        Ok(Some(json!({
            "status": worst,
            "exit_code": worst.exit_code(),
            "ok": count(State::Ok),
            "warning": count(State::Warning),
            "critical": count(State::Critical),
            "unknown": count(State::Unknown),
            "checks": checks,
        })))
    }
}
