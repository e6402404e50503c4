//! Nagios plugin output, as the Nagios plugin development guidelines define
//! it: the status line, long output, performance data and threshold ranges.
//!
//! ```text
//! DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968
//! / 15272 MB (77%);
//! /boot 68 MB (69%); | /boot=68MB;88;93;0;98
//! /home=69357MB;253404;253409;0;253414
//! ```
//!
//! Everything here is pure parsing: plugin output is untrusted text, so
//! nothing in it can make this code panic, and malformed pieces are kept as
//! text rather than dropped.

use serde::Serialize;

/// The service states, by exit code 0 to 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl State {
    /// Exit codes beyond 0 to 3 (and death by signal) are UNKNOWN, as Nagios treats them.
    pub fn from_exit_code(code: Option<i32>) -> State {
        match code {
            Some(0) => State::Ok,
            Some(1) => State::Warning,
            Some(2) => State::Critical,
            _ => State::Unknown,
        }
    }

    pub fn exit_code(self) -> i32 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }

    /// Order for "the worst of several checks": CRITICAL, then UNKNOWN (a check
    /// that cannot tell may hide a problem), then WARNING, then OK.
    pub fn severity(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Unknown => 2,
            State::Critical => 3,
        }
    }

    pub fn worst(states: impl IntoIterator<Item = State>) -> State {
        states.into_iter().max_by_key(|s| s.severity()).unwrap_or(State::Ok)
    }
}

/// A threshold range: alert when the value is outside `start..=end` (or
/// inside, with `@`). `None` bounds are infinite (`~` or omitted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Range {
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub inside: bool,
}

impl Range {
    /// Parses `10`, `10:`, `~:10`, `10:20`, `@10:20`.
    pub fn parse(text: &str) -> Option<Range> {
        let text = text.trim();
        let (inside, body) = match text.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if body.is_empty() {
            return None;
        }
        let (start, end) = match body.split_once(':') {
            None => (Some(0.0), Some(parse_number(body)?)),
            Some((start, end)) => {
                let start = match start {
                    "~" => None,
                    "" => Some(0.0),
                    s => Some(parse_number(s)?),
                };
                let end = if end.is_empty() { None } else { Some(parse_number(end)?) };
                (start, end)
            }
        };
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return None;
            }
        }
        Some(Range { start, end, inside })
    }

    /// Whether `value` should raise an alert under this range.
    pub fn alerts(&self, value: f64) -> bool {
        let within = self.start.is_none_or(|s| value >= s) && self.end.is_none_or(|e| value <= e);
        within == self.inside
    }
}

fn parse_number(text: &str) -> Option<f64> {
    let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b"-+.eE".contains(&b));
    valid.then(|| text.parse::<f64>().ok()).flatten().filter(|v| v.is_finite())
}

/// One `'label'=value[UOM];[warn];[crit];[min];[max]` item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfValue {
    pub label: String,
    /// `None` for `U` (the plugin could not determine the value).
    pub value: Option<f64>,
    pub uom: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crit: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A whole plugin output, split as the guidelines describe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginOutput {
    /// The first line's text before `|`.
    pub text: String,
    /// Further lines' text before the `|` that starts their perfdata.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub long_text: String,
    pub perfdata: Vec<PerfValue>,
    /// Perfdata items that did not parse, kept so the user can see them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub perfdata_errors: Vec<String>,
}

impl PluginOutput {
    pub fn parse(output: &str) -> PluginOutput {
        let mut lines = output.lines();
        let first = lines.next().unwrap_or("");
        let (text, mut perf_text) = match first.split_once('|') {
            Some((text, perf)) => (text.trim().to_string(), perf.to_string()),
            None => (first.trim().to_string(), String::new()),
        };
        // In the long output, a `|` starts perfdata that runs to the end.
        let mut long_lines = Vec::new();
        let mut in_perf = false;
        for line in lines {
            if in_perf {
                perf_text.push(' ');
                perf_text.push_str(line);
            } else if let Some((text, perf)) = line.split_once('|') {
                long_lines.push(text.trim_end());
                perf_text.push(' ');
                perf_text.push_str(perf);
                in_perf = true;
            } else {
                long_lines.push(line.trim_end());
            }
        }
        let (perfdata, perfdata_errors) = parse_perfdata(&perf_text);
        PluginOutput { text, long_text: long_lines.join("\n").trim().to_string(), perfdata, perfdata_errors }
    }
}

/// Splits perfdata on spaces outside quotes and parses each item.
pub fn parse_perfdata(text: &str) -> (Vec<PerfValue>, Vec<String>) {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for item in split_items(text) {
        match parse_item(&item) {
            Some(value) => values.push(value),
            None => errors.push(item),
        }
    }
    (values, errors)
}

fn split_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                current.push_str("''");
                chars.next();
            }
            '\'' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    items.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items
}

fn parse_item(item: &str) -> Option<PerfValue> {
    let (label, rest) = if let Some(quoted) = item.strip_prefix('\'') {
        // The label ends at the quote that is followed by `=`, `''` being a quote.
        let end = quoted.find("'=")?;
        (quoted[..end].replace("''", "'"), &quoted[end + 2..])
    } else {
        let (label, rest) = item.split_once('=')?;
        (label.to_string(), rest)
    };
    if label.is_empty() {
        return None;
    }
    let mut fields = rest.split(';');
    let value_field = fields.next()?;
    let unit_start =
        value_field.find(|c: char| !(c.is_ascii_digit() || "-+.eE".contains(c))).unwrap_or(value_field.len());
    let (number, uom) = value_field.split_at(unit_start);
    let value = if number.is_empty() && uom == "U" { None } else { Some(parse_number(number)?) };
    let uom = if value.is_none() { String::new() } else { uom.to_string() };
    let optional_range = |field: Option<&str>| -> Option<Option<Range>> {
        match field.map(str::trim) {
            None | Some("") => Some(None),
            Some(text) => Range::parse(text).map(Some),
        }
    };
    let warn = optional_range(fields.next())?;
    let crit = optional_range(fields.next())?;
    let optional_number = |field: Option<&str>| -> Option<Option<f64>> {
        match field.map(str::trim) {
            None | Some("") => Some(None),
            Some(text) => parse_number(text.trim_end_matches(|c: char| c.is_alphabetic() || c == '%')).map(Some),
        }
    };
    let min = optional_number(fields.next())?;
    let max = optional_number(fields.next())?;
    Some(PerfValue { label, value, uom, warn, crit, min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Range {
        Range::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn ranges_from_the_guidelines() {
        // (range, values that alert, values that do not)
        let cases: [(&str, &[f64], &[f64]); 6] = [
            ("10", &[-1.0, 11.0], &[0.0, 10.0, 5.0]),
            ("10:", &[9.9, -5.0], &[10.0, 1e9]),
            ("~:10", &[10.1], &[-1e9, 10.0]),
            ("10:20", &[9.0, 21.0], &[10.0, 15.0, 20.0]),
            ("@10:20", &[10.0, 15.0, 20.0], &[9.0, 21.0]),
            ("-5:-1", &[0.0, -6.0], &[-3.0]),
        ];
        for (text, alert, quiet) in cases {
            let r = range(text);
            for v in alert {
                assert!(r.alerts(*v), "{text} should alert at {v}");
            }
            for v in quiet {
                assert!(!r.alerts(*v), "{text} should not alert at {v}");
            }
        }
        for bad in ["", "@", "abc", "20:10", "1:2:3", "nan", "inf"] {
            assert!(Range::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn perfdata_items_with_units_ranges_min_max() {
        let (v, e) = parse_perfdata("time=0.897ms;20;40;; ok=1 /=2643MB;5948;5958;0;5968 load1=0.120;5.000;10.000;0;");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(v.len(), 4);
        assert_eq!((v[0].label.as_str(), v[0].value, v[0].uom.as_str()), ("time", Some(0.897), "ms"));
        assert_eq!(v[0].warn, Some(range("20")));
        assert_eq!((v[0].min, v[0].max), (None, None));
        assert_eq!((v[1].label.as_str(), v[1].value, v[1].warn.clone()), ("ok", Some(1.0), None));
        assert_eq!((v[2].label.as_str(), v[2].uom.as_str(), v[2].min, v[2].max), ("/", "MB", Some(0.0), Some(5968.0)));
        assert_eq!(v[3].crit, Some(range("10")));
    }

    #[test]
    fn quoted_labels_and_escaped_quotes() {
        let (v, e) = parse_perfdata("'a ''b'' = c'=5% 'disk /var'=1c;@1:2;~:3");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(v[0].label, "a 'b' = c");
        assert_eq!((v[0].value, v[0].uom.as_str()), (Some(5.0), "%"));
        assert_eq!(v[1].label, "disk /var");
        assert_eq!(v[1].warn, Some(Range { start: Some(1.0), end: Some(2.0), inside: true }));
        assert_eq!(v[1].crit, Some(Range { start: None, end: Some(3.0), inside: false }));
    }

    #[test]
    fn undetermined_value_is_null() {
        let (v, _) = parse_perfdata("users=U;5;10");
        assert_eq!(v[0].value, None);
    }

    #[test]
    fn malformed_items_are_kept_as_errors() {
        // An unterminated quote swallows the rest of the line into one bad item.
        let (v, e) = parse_perfdata("good=1 novalue= =5 x=abc y=1;zz 'unterminated=3 z=1");
        assert_eq!(v.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(), ["good"]);
        assert_eq!(e, ["novalue=", "=5", "x=abc", "y=1;zz", "'unterminated=3 z=1"]);
    }

    #[test]
    fn multi_line_output_with_perfdata_on_later_lines() {
        let out = PluginOutput::parse(
            "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n\
             / 15272 MB (77%);\n\
             /boot 68 MB (69%); | /boot=68MB;88;93;0;98\n\
             /home=69357MB;253404;253409;0;253414\n",
        );
        assert_eq!(out.text, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(out.long_text, "/ 15272 MB (77%);\n/boot 68 MB (69%);");
        let labels: Vec<&str> = out.perfdata.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["/", "/boot", "/home"]);
    }

    #[test]
    fn output_without_perfdata_and_empty_output() {
        let out = PluginOutput::parse("PING OK");
        assert_eq!((out.text.as_str(), out.perfdata.len()), ("PING OK", 0));
        let out = PluginOutput::parse("");
        assert_eq!(out.text, "");
    }

    #[test]
    fn hostile_output_never_panics() {
        for text in
            ["|||", "'", "''=''", "=;;;;;;", "a=1;@;@", "\u{0}=\u{0}", "x=1e999", "|'''''", "a=-", "a=1;;;;;;;;;"]
        {
            let _ = PluginOutput::parse(text);
        }
        let long = "x=1 ".repeat(10000);
        assert_eq!(PluginOutput::parse(&format!("T|{long}")).perfdata.len(), 10000);
    }

    #[test]
    fn worst_state() {
        use State::*;
        assert_eq!(State::worst([Ok, Warning, Unknown]), Unknown);
        assert_eq!(State::worst([Ok, Critical, Unknown]), Critical);
        assert_eq!(State::worst([]), Ok);
        assert_eq!(State::from_exit_code(Some(7)), Unknown);
        assert_eq!(State::from_exit_code(None), Unknown);
    }
}
