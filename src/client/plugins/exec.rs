//! `exec`: the user's own plugins without recompiling. Any executable that
//! prints one JSON object; that object becomes the plugin's data. A failure
//! (exit status, timeout, no JSON) is reported as the plugin's error and
//! touches nothing else.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::command::{self, split_words};
use super::{default_true, out_of_range, Kind, Plugin, MAX_INTERVAL, MAX_TIMEOUT};
use crate::wire::truncate_chars;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The plugin's name in messages, hbd's store and the command line.
    pub name: String,
    pub command: String,
    #[serde(default = "default_interval")]
    pub interval: u64,
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default = "default_true", deserialize_with = "crate::yaml::yaml11_bool")]
    pub enabled: bool,
    /// `info` for data kept until replaced, `monitor` (default) for samples with history.
    #[serde(default = "default_kind")]
    pub kind: Kind,
}

fn default_interval() -> u64 {
    300
}

fn default_timeout() -> u64 {
    30
}

fn default_kind() -> Kind {
    Kind::Monitor
}

impl Options {
    pub fn check(&self) -> Result<(), String> {
        let name_ok = (1..=64).contains(&self.name.len())
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
        if !name_ok {
            return Err(format!("name `{}` must be 1 to 64 of a-z 0-9 _ - .", self.name));
        }
        if let Some(problem) = out_of_range(self.interval, MAX_INTERVAL) {
            return Err(format!("interval: {problem}"));
        }
        if let Some(problem) = out_of_range(self.timeout, MAX_TIMEOUT) {
            return Err(format!("timeout: {problem}"));
        }
        split_words(&self.command).map(|_| ())
    }
}

pub struct Exec {
    name: String,
    kind: Kind,
    words: Vec<String>,
    timeout: Duration,
}

impl Exec {
    pub fn new(options: &Options) -> Exec {
        Exec {
            name: options.name.clone(),
            kind: options.kind,
            words: split_words(&options.command).unwrap_or_default(),
            timeout: Duration::from_secs(options.timeout),
        }
    }
}

/// The first line of `text`, shortened, for an error message.
fn excerpt(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("");
    let short = truncate_chars(line, 200);
    if short.len() < line.len() {
        format!("{short}…")
    } else {
        line.to_string()
    }
}

impl Plugin for Exec {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        let done = command::run(&self.words, self.timeout)?;
        if done.timed_out {
            return Err(format!("timed out after {} s", self.timeout.as_secs()));
        }
        if done.exit_code != Some(0) {
            let status = done.exit_code.map_or("killed by a signal".to_string(), |c| format!("exit status {c}"));
            return Err(format!(
                "{status}: {}",
                excerpt(if done.stderr.trim().is_empty() { &done.stdout } else { &done.stderr })
            ));
        }
        parse_output(&done.stdout).map(Some)
    }
}

/// The data of a plugin's standard output: one JSON object, or why not.
/// Public for the fuzz target `exec_json`: this reads whatever a
/// user's script prints.
pub fn parse_output(stdout: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(stdout.trim()) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(format!("printed JSON that is not an object: {}", excerpt(stdout))),
        Err(e) => Err(format!("printed no JSON object ({e}): {}", excerpt(stdout))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(command: &str, timeout: u64) -> Exec {
        let options: Options =
            serde_yaml::from_str(&format!("{{name: t, command: {command:?}, timeout: {timeout}}}")).unwrap();
        options.check().unwrap();
        Exec::new(&options)
    }

    #[test]
    fn json_object_becomes_the_data() {
        let value = exec(r#"echo '{"queue": 5, "ok": true}'"#, 5).collect().unwrap().unwrap();
        assert_eq!(value, serde_json::json!({"queue": 5, "ok": true}));
    }

    #[test]
    fn failures_are_errors_of_the_plugin() {
        assert!(exec("echo garbage", 5).collect().unwrap_err().starts_with("printed no JSON object"));
        assert!(exec("echo [1]", 5).collect().unwrap_err().contains("not an object"));
        assert!(exec("sh -c 'echo broken >&2; exit 4'", 5).collect().unwrap_err().contains("exit status 4: broken"));
        assert_eq!(exec("sleep 10", 1).collect().unwrap_err(), "timed out after 1 s");
        assert!(exec("/nonexistent/x", 1).collect().unwrap_err().contains("cannot run /nonexistent/x"));
    }

    #[test]
    fn names_are_checked() {
        let bad: Options = serde_yaml::from_str("{name: 'Bad Name', command: x}").unwrap();
        assert!(bad.check().is_err());
    }
}
