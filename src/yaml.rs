//! The configuration loader both programs share: YAML text → a strict serde
//! struct (`deny_unknown_fields`, every key optional), with every problem of
//! a file reported in one run and in the user's words.
//!
//! serde stops at the first error, so [`parse`] blanks out the top-level key
//! at fault (keeping line numbers) and tries again until the rest parses;
//! each program's own check then adds the problems serde cannot see.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned, Deserializer, Unexpected};
use serde::Serializer;

/// A configuration that cannot be used; the programs exit with status 78.
#[derive(Debug)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found, each naming its key (`grace: …`), in file order.
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

impl ConfigError {
    pub fn invalid(origin: &str, problems: Vec<String>) -> ConfigError {
        ConfigError::Invalid { origin: origin.to_string(), problems }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(f, "{}: {}", path.display(), source),
            ConfigError::Invalid { origin, problems } => {
                // One line per problem, each naming the file, as compilers do.
                for (i, problem) in problems.iter().enumerate() {
                    let newline = if i > 0 { "\n" } else { "" };
                    write!(f, "{newline}{origin}: {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The keys of one file format, for messages: `keys` lists every top-level
/// key (for "did you mean"), `later` the Python hbd's keys of features this
/// version lacks, with the feature.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    pub keys: &'static [&'static str],
    pub later: &'static [(&'static str, &'static str)],
}

/// A configuration file format: its keys and the checks serde cannot make.
/// Loading reports serde's problems and the checks' in one run.
pub trait ConfigFile: DeserializeOwned + Default {
    /// The file's keys, for messages about it.
    const KEYS: Keys;

    /// What is wrong beyond what serde sees, each problem naming its key.
    fn problems(&self) -> Vec<String>;

    /// Reads `path`, reporting every problem of the file at once.
    fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses YAML text; `origin` names it in messages.
    fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let parsed: Parsed<Self> = parse(text, origin, Self::KEYS)?;
        let more = parsed.value.problems();
        parsed.finish(origin, more)
    }
}

/// A file parsed as far as it goes: `value` has every key that parsed (the
/// others at their defaults) and `problems` says what was wrong with the rest.
#[derive(Debug)]
pub struct Parsed<T> {
    pub value: T,
    pub problems: Vec<String>,
}

/// Parses YAML text into `T`; an empty file (or comments only) is all
/// defaults. A key at fault is reported and left at its default, so the
/// caller's own checks run on the rest in the same run. Fails only when the
/// file cannot be read as YAML at all.
pub fn parse<T: DeserializeOwned + Default>(text: &str, origin: &str, keys: Keys) -> Result<Parsed<T>, ConfigError> {
    if text.trim().lines().all(|l| l.trim_start().starts_with('#')) {
        return Ok(Parsed { value: T::default(), problems: Vec::new() });
    }
    let mut text = text.to_string();
    let mut problems = Vec::new();
    // Each round blanks out one top-level key, so this ends.
    for _ in 0..=text.lines().count() {
        let error = match serde_yaml::from_str::<T>(&text) {
            Ok(value) => return Ok(Parsed { value, problems }),
            Err(e) => e.to_string(),
        };
        let (top_key, problem) = explain(&error, keys);
        problems.push(problem);
        match top_key.and_then(|key| blank_out(&text, &key)) {
            Some(rest) => text = rest,
            None => break,
        }
    }
    Err(ConfigError::invalid(origin, problems))
}

impl<T> Parsed<T> {
    /// The value when nothing, including `more` from the caller's checks, was wrong.
    pub fn finish(self, origin: &str, more: Vec<String>) -> Result<T, ConfigError> {
        let mut problems = self.problems;
        problems.extend(more);
        if problems.is_empty() {
            Ok(self.value)
        } else {
            Err(ConfigError::invalid(origin, problems))
        }
    }
}

/// The top-level key an error is about (if it names one) and the error in
/// the user's words: unknown keys get "did you mean", Rust type names become
/// plain words.
fn explain(message: &str, keys: Keys) -> (Option<String>, String) {
    let (path, rest) = match message.split_once(": ") {
        Some((path, rest)) if is_known_path(path, keys.keys) => (Some(path), rest),
        _ => (None, message),
    };
    let top = |p: &str| p.split(['.', '[']).next().unwrap_or(p).to_string();
    if let Some(unknown) = rest.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        let text = match path {
            None => unknown_top_level_key(unknown, keys),
            Some(path) => format!("{path}: unknown key `{unknown}`"),
        };
        return (Some(path.map_or_else(|| unknown.to_string(), top)), text);
    }
    let words = plain_words(rest);
    match path {
        Some(path) => (Some(top(path)), format!("{path}: {words}")),
        None => (None, words),
    }
}

fn is_known_path(path: &str, keys: &[&str]) -> bool {
    let top = path.split(['.', '[']).next().unwrap_or(path);
    keys.contains(&top)
}

fn unknown_top_level_key(key: &str, keys: Keys) -> String {
    if let Some((_, feature)) = keys.later.iter().find(|(k, _)| *k == key) {
        return format!("key `{key}` configures {feature}, which this version of hbd does not have yet; remove it");
    }
    match keys.keys.iter().min_by_key(|k| edit_distance(k, key)).filter(|k| edit_distance(k, key) <= 2) {
        Some(near) => format!("unknown key `{key}` (did you mean `{near}`?)"),
        None => format!("unknown key `{key}`"),
    }
}

/// serde's words for types, as a user would say them.
fn plain_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number from 0 to 4294967295"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping of keys to values"),
        ("expected a boolean", "expected true or false"),
    ];
    let mut text = message.to_string();
    for (rust, words) in WORDS {
        text = text.replace(rust, words);
    }
    // `expected struct KeyConfig` names a Rust type: say what it is instead.
    while let Some(start) = text.find("expected struct ") {
        let name_end =
            text[start + 16..].find(|c: char| !c.is_alphanumeric() && c != '_').map_or(text.len(), |i| start + 16 + i);
        text.replace_range(start..name_end, "expected a mapping of keys to values");
    }
    text
}

/// `text` with the block of top-level `key` (its line and the indented lines
/// under it) replaced by empty lines, so later errors keep their line
/// numbers; None when no such block is found.
fn blank_out(text: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let starts = |line: &str| {
        let line = line.strip_prefix('"').or_else(|| line.strip_prefix('\'')).unwrap_or(line);
        line.strip_prefix(key).is_some_and(|r| r.trim_start_matches(['"', '\'']).trim_start().starts_with(':'))
    };
    let first = lines.iter().position(|l| starts(l))?;
    let is_top_level = |l: &str| !l.is_empty() && !l.starts_with([' ', '\t', '#', '-']);
    let end = lines[first + 1..].iter().position(|l| is_top_level(l)).map_or(lines.len(), |i| first + 1 + i);
    let kept: Vec<&str> =
        lines.iter().enumerate().map(|(i, l)| if (first..end).contains(&i) { "" } else { l }).collect();
    Some(kept.join("\n"))
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

/// Serializes a secret as `<redacted>`: for `--check-config` output.
pub fn redact<S: Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

/// A boolean as YAML 1.1 (PyYAML, hence the Python hbd's users) writes it:
/// `yes`/`no`, `on`/`off`, `y`/`n` as well as `true`/`false`. serde_yaml
/// speaks YAML 1.2, where those are strings.
pub fn yaml11_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    // A visitor rather than an untagged enum: its errors keep the key's path and line.
    struct Flag;
    impl de::Visitor<'_> for Flag {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("true or false (or yes/no, on/off)")
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }

        fn visit_str<E: de::Error>(self, word: &str) -> Result<bool, E> {
            match word {
                "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" | "true" | "True" | "TRUE" => Ok(true),
                "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" | "false" | "False" | "FALSE" => Ok(false),
                _ => Err(E::invalid_value(Unexpected::Str(word), &self)),
            }
        }
    }
    deserializer.deserialize_any(Flag)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        port: u16,
        grace: f64,
        #[serde(deserialize_with = "yaml11_bool")]
        enabled: bool,
        nested: Nested,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Nested {
        size: u64,
    }

    const KEYS: Keys = Keys { keys: &["port", "grace", "enabled", "nested"], later: &[("pushsrv", "notifications")] };

    fn problems(text: &str) -> Vec<String> {
        match parse::<Sample>(text, "t.yaml", KEYS) {
            Ok(parsed) => parsed.problems,
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    #[test]
    fn every_problem_of_a_file_in_one_run() {
        let found = problems("prot: 1\ngrace: soon\nnested:\n  size: -1\n  colour: red\nport: 70000\npushsrv: all\n");
        assert_eq!(found.len(), 5, "{found:#?}");
        assert_eq!(found[0], "unknown key `prot` (did you mean `port`?)");
        assert!(found[1].starts_with("grace: invalid type: string \"soon\", expected a number at line 2"), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("nested: ") || p.starts_with("nested.")), "{found:?}");
        assert!(found.iter().any(|p| p.contains("`70000`, expected a whole number from 0 to 65535")), "{found:?}");
        assert!(found.iter().any(|p| p.contains("`pushsrv` configures notifications")), "{found:?}");
    }

    #[test]
    fn yaml_1_1_booleans() {
        for (word, value) in
            [("yes", true), ("on", true), ("True", true), ("no", false), ("off", false), ("false", false)]
        {
            let s: Sample = parse(&format!("enabled: {word}\n"), "t.yaml", KEYS).unwrap().value;
            assert_eq!(s.enabled, value, "{word}");
        }
        let found = problems("enabled: maybe\n");
        assert!(found[0].starts_with("enabled: invalid value: string \"maybe\", expected true or false"), "{found:?}");
    }

    #[test]
    fn a_good_file_and_an_empty_one_parse() {
        let s: Sample = parse("port: 5\nnested: {size: 3}\n", "t.yaml", KEYS).unwrap().value;
        assert_eq!((s.port, s.nested.size), (5, 3));
        let s: Sample = parse("# only a comment\n", "t.yaml", KEYS).unwrap().value;
        assert_eq!(s.port, 0);
    }

    #[test]
    fn syntax_errors_are_reported_once() {
        let found = problems("port: [1\n");
        assert_eq!(found.len(), 1, "{found:?}");
    }
}
