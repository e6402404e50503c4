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
use serde::{Serialize, Serializer};

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

/// A top-level key of a configuration file: its name and, for a number,
/// the range its value must lie in and what it counts. Each program lists
/// its keys as `KEY_SPECS`, in the order of its man page: the loader's key
/// names ([`names`]), the range checks ([`range_problems`]) and the man
/// page's test (which looks for [`KeySpec::sentence`]) all read that list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeySpec {
    pub name: &'static str,
    pub range: Option<Range>,
    /// What the number counts (`seconds`, `bytes`), in messages and the man page.
    pub unit: Option<&'static str>,
}

impl KeySpec {
    /// A key with no range.
    pub const fn new(name: &'static str) -> KeySpec {
        KeySpec { name, range: None, unit: None }
    }

    pub const fn range(self, range: Range) -> KeySpec {
        KeySpec { range: Some(range), ..self }
    }

    pub const fn unit(self, unit: &'static str) -> KeySpec {
        KeySpec { unit: Some(unit), ..self }
    }

    /// What is wrong with `value`, the key's value as the configuration
    /// serializes it: `0 is not a number of seconds from above 0 to 86400`,
    /// `0 is outside 1 to 100000`. None when it is in range, when the key
    /// has no range, or when it has no number (an optional key not given).
    pub fn problem(&self, value: &serde_yaml::Value) -> Option<String> {
        let (range, serde_yaml::Value::Number(number)) = (self.range?, value) else { return None };
        // A whole number is shown as it was written, even past 2^53.
        let (shown, value) = match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(n), _, _) => (n.to_string(), n as f64),
            (None, Some(n), _) => (n.to_string(), n as f64),
            (None, None, Some(x)) => (x.to_string(), x),
            (None, None, None) => return None,
        };
        if range.contains(value) {
            return None;
        }
        let unit = self.unit.map(|u| format!(" {u}")).unwrap_or_default();
        let of_unit = self.unit.map(|u| format!(" of {u}")).unwrap_or_default();
        Some(match range.form() {
            Form::IntegerBetween => format!("{shown} is outside {} to {}{unit}", range.min, range.max),
            Form::Unbounded if range.min_inclusive => format!("{shown} is less than {}{unit}", range.min),
            Form::Unbounded => format!("{shown} is not above {}{unit}", range.min),
            Form::Between => format!("{shown} is not {}{of_unit} {}", range.kind(), range.words()),
        })
    }

    /// The sentence a man page states the key's range in, None without a
    /// range: `An integer from 1 to 100000.`, `A number of seconds from
    /// above 0 to 86400.`, `An integer, at least 1.`
    pub fn sentence(&self) -> Option<String> {
        let range = self.range?;
        let unit = self.unit.map(|u| format!(" {u}")).unwrap_or_default();
        let of_unit = self.unit.map(|u| format!(" of {u}")).unwrap_or_default();
        let mut kind = range.kind().to_string();
        kind[..1].make_ascii_uppercase();
        Some(match range.form() {
            Form::IntegerBetween => format!("{kind} {}{unit}.", range.words()),
            Form::Unbounded => format!("{kind}, {}{unit}.", range.words()),
            Form::Between => format!("{kind}{of_unit} {}.", range.words()),
        })
    }
}

/// The numbers a key accepts: from `min` to `max`, each end included or
/// not; `integer` when the key takes whole numbers only (its field is an
/// integer type, so serde has already refused anything else).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    /// `f64::INFINITY` for no upper end.
    pub max: f64,
    pub min_inclusive: bool,
    pub max_inclusive: bool,
    pub integer: bool,
}

/// How a range is put in words: whole numbers between two included ends
/// (`outside 1 to 100000`, as most messages always said it), a lower end
/// only (`at least 1`), or anything else (`a number from above 0 to 86400`).
enum Form {
    IntegerBetween,
    Unbounded,
    Between,
}

impl Range {
    /// Whole numbers from `min` to `max`, both included.
    pub const fn int(min: u64, max: u64) -> Range {
        Range { min: min as f64, max: max as f64, min_inclusive: true, max_inclusive: true, integer: true }
    }

    /// Whole numbers from `min` up.
    pub const fn at_least(min: u64) -> Range {
        Range { max: f64::INFINITY, ..Range::int(min, 0) }
    }

    /// Numbers from `min` to `max`, both included.
    pub const fn number(min: f64, max: f64) -> Range {
        Range { min, max, min_inclusive: true, max_inclusive: true, integer: false }
    }

    /// The same range without `min` itself: "from above 0".
    pub const fn above(self) -> Range {
        Range { min_inclusive: false, ..self }
    }

    /// The same range without `max` itself: "to below 1".
    pub const fn below(self) -> Range {
        Range { max_inclusive: false, ..self }
    }

    /// Whether `value` is in the range; NaN never is.
    pub fn contains(&self, value: f64) -> bool {
        let above_min = if self.min_inclusive { value >= self.min } else { value > self.min };
        let below_max = if self.max_inclusive { value <= self.max } else { value < self.max };
        above_min && below_max
    }

    fn form(&self) -> Form {
        if self.max.is_infinite() {
            Form::Unbounded
        } else if self.integer && self.min_inclusive && self.max_inclusive {
            Form::IntegerBetween
        } else {
            Form::Between
        }
    }

    fn kind(&self) -> &'static str {
        if self.integer {
            "an integer"
        } else {
            "a number"
        }
    }

    /// The ends in words: `from 1 to 100000`, `from above 0 to 86400`,
    /// `from 0 to below 1`, `at least 1`, `above 0`.
    fn words(&self) -> String {
        let above = if self.min_inclusive { "" } else { "above " };
        match (self.max.is_infinite(), self.min_inclusive) {
            (true, true) => format!("at least {}", self.min),
            (true, false) => format!("above {}", self.min),
            (false, _) => {
                let below = if self.max_inclusive { "" } else { "below " };
                format!("from {above}{} to {below}{}", self.min, self.max)
            }
        }
    }
}

/// The names of `specs`, for [`Keys`]:
/// `pub const KEYS: &[&str] = &yaml::names::<{ KEY_SPECS.len() }>(KEY_SPECS);`
pub const fn names<const N: usize>(specs: &[KeySpec]) -> [&'static str; N] {
    assert!(specs.len() == N, "N is the number of specs");
    let mut names = [""; N];
    let mut i = 0;
    while i < N {
        names[i] = specs[i].name;
        i += 1;
    }
    names
}

/// Every top-level value of `config` that lies outside its key's range,
/// as (key, what is wrong), in the order of `specs`. The values are read
/// from `config` serialized, so each is the one the file names with the key.
pub fn range_problems<T: Serialize>(config: &T, specs: &[KeySpec]) -> Vec<(&'static str, String)> {
    let values = match serde_yaml::to_value(config) {
        Ok(values) => values,
        Err(e) => return vec![("configuration", format!("cannot be checked: {e}"))],
    };
    specs
        .iter()
        .filter_map(|spec| {
            let value = values.get(spec.name)?;
            spec.problem(value).map(|text| (spec.name, text))
        })
        .collect()
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
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        port: u16,
        grace: f64,
        #[serde(deserialize_with = "yaml11_bool")]
        enabled: bool,
        nested: Nested,
    }

    #[derive(Debug, Default, Deserialize, Serialize)]
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
    fn ranges_in_messages_and_sentences() {
        let spec = |range, unit| KeySpec { name: "k", range: Some(range), unit };
        let problem = |spec: KeySpec, yaml: &str| spec.problem(&serde_yaml::from_str(yaml).unwrap());
        let count = spec(Range::int(1, 100_000), None);
        assert_eq!(problem(count, "0"), Some("0 is outside 1 to 100000".into()));
        assert_eq!((problem(count, "1"), problem(count, "100000")), (None, None));
        assert_eq!(count.sentence().as_deref(), Some("An integer from 1 to 100000."));
        let big = spec(Range::int(1, 86400), Some("seconds"));
        let huge = problem(big, "18446744073709551615");
        assert_eq!(huge.as_deref(), Some("18446744073709551615 is outside 1 to 86400 seconds"), "shown as written");
        assert_eq!(big.sentence().as_deref(), Some("An integer from 1 to 86400 seconds."));
        let interval = spec(Range::number(0.0, 86400.0).above(), Some("seconds"));
        assert_eq!(problem(interval, "0.0"), Some("0 is not a number of seconds from above 0 to 86400".into()));
        assert!(problem(interval, ".nan").is_some() && problem(interval, "86400.5").is_some());
        assert_eq!((problem(interval, "0.001"), problem(interval, "86400")), (None, None));
        assert_eq!(interval.sentence().as_deref(), Some("A number of seconds from above 0 to 86400."));
        let fraction = spec(Range::number(0.0, 1.0).below(), None);
        assert_eq!(problem(fraction, "1.0"), Some("1 is not a number from 0 to below 1".into()));
        assert_eq!(fraction.sentence().as_deref(), Some("A number from 0 to below 1."));
        let window = spec(Range::at_least(1), None);
        assert_eq!(problem(window, "0"), Some("0 is less than 1".into()));
        assert_eq!(problem(window, "18446744073709551615"), None);
        assert_eq!(window.sentence().as_deref(), Some("An integer, at least 1."));
        assert_eq!(problem(KeySpec::new("k"), "-1"), None, "no range, nothing to check");
        assert_eq!((problem(count, "null"), KeySpec::new("k").sentence()), (None, None));
    }

    #[test]
    fn range_problems_read_the_values_by_key() {
        const SPECS: &[KeySpec] = &[
            KeySpec::new("port").range(Range::int(1, 65535)),
            KeySpec::new("grace").range(Range::number(0.0, 10.0)).unit("seconds"),
            KeySpec::new("enabled"),
            KeySpec::new("nested"),
        ];
        const NAMES: [&str; 4] = names::<{ SPECS.len() }>(SPECS);
        assert_eq!(NAMES, KEYS.keys);
        let sample = Sample { port: 0, grace: 11.5, ..Sample::default() };
        assert_eq!(
            range_problems(&sample, SPECS),
            [
                ("port", "0 is outside 1 to 65535".to_string()),
                ("grace", "11.5 is not a number of seconds from 0 to 10".to_string())
            ]
        );
        assert_eq!(range_problems(&Sample { port: 1, ..Sample::default() }, SPECS), []);
    }

    #[test]
    fn syntax_errors_are_reported_once() {
        let found = problems("port: [1\n");
        assert_eq!(found.len(), 1, "{found:?}");
    }
}
