//! `maintenance:` of hbd.yaml compiled into the core's [`Window`]s: a list
//! of recurring windows, each `name`, `hosts` (a name or pattern, or a
//! list of them), optional `plugin` and `metric_path`, `days` (`mon` …
//! `sun`, or `daily`), `start` (`HH:MM`, local time), `end` (`HH:MM`, or a
//! duration such as `2h`) and `comment`. Every problem names its key path
//! (`maintenance[0].days`).

use serde_yaml::Value;

use crate::server::silence::{parse_duration, parse_time_of_day, Window, WindowEnd, DAYS, MAX_WINDOW};

const FIELDS: &[&str] = &["name", "hosts", "plugin", "metric_path", "days", "start", "end", "duration", "comment"];

pub fn compile(value: &Value, problems: &mut Vec<String>) -> Vec<Window> {
    let items = match value {
        Value::Null => return Vec::new(),
        Value::Sequence(items) => items,
        _ => {
            problems.push("maintenance: must be a list of windows (name, hosts, days, start, end, comment)".into());
            return Vec::new();
        }
    };
    let mut windows: Vec<Window> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("maintenance[{i}]");
        if let Some(window) = window(&at, item, problems) {
            if windows.iter().any(|w| w.name == window.name) {
                problems.push(format!("{at}.name: `{}` names another window too", window.name));
            }
            windows.push(window);
        }
    }
    windows
}

fn window(at: &str, item: &Value, problems: &mut Vec<String>) -> Option<Window> {
    let Value::Mapping(map) = item else {
        problems.push(format!("{at}: must be a mapping (name, hosts, days, start, end, comment)"));
        return None;
    };
    let before = problems.len();
    for key in map.keys() {
        match key.as_str() {
            Some(k) if FIELDS.contains(&k) => {}
            _ => problems.push(format!(
                "{at}: unknown key `{}`; a window has {}",
                serde_yaml::to_string(key).unwrap_or_default().trim(),
                FIELDS.join(", ")
            )),
        }
    }
    let text = |key: &str, problems: &mut Vec<String>| -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(_) => {
                problems.push(format!("{at}.{key}: must be non-empty text"));
                None
            }
        }
    };
    let name = text("name", problems);
    if name.is_none() && !map.contains_key("name") {
        problems.push(format!("{at}.name: missing (it names the window in the journal and the API)"));
    }
    let hosts = match map.get("hosts") {
        Some(Value::String(h)) if !h.trim().is_empty() => vec![h.trim().to_ascii_lowercase()],
        Some(Value::Sequence(list)) if !list.is_empty() => list
            .iter()
            .enumerate()
            .filter_map(|(j, h)| match h.as_str().map(str::trim).filter(|h| !h.is_empty()) {
                Some(h) => Some(h.to_ascii_lowercase()),
                None => {
                    problems.push(format!("{at}.hosts[{j}]: must be a host name or pattern"));
                    None
                }
            })
            .collect(),
        None => {
            problems.push(format!("{at}.hosts: missing (a host name or pattern, or a list of them; * for all)"));
            Vec::new()
        }
        Some(_) => {
            problems.push(format!("{at}.hosts: must be a host name or pattern, or a list of them"));
            Vec::new()
        }
    };
    let plugin = text("plugin", problems);
    let metric_path = text("metric_path", problems);
    if metric_path.is_some() && plugin.is_none() {
        problems.push(format!("{at}.metric_path: needs a plugin"));
    }
    let mut days = [false; 7];
    let mut day = |d: &Value, key: &str, problems: &mut Vec<String>| match d.as_str().map(str::to_ascii_lowercase) {
        Some(d) if d == "daily" => days = [true; 7],
        Some(d) if DAYS.contains(&d.as_str()) => days[DAYS.iter().position(|x| *x == d).unwrap_or(0)] = true,
        _ => problems.push(format!(
            "{at}.{key}: unknown day `{}`; the days are {} or daily",
            serde_yaml::to_string(d).unwrap_or_default().trim(),
            DAYS.join(", ")
        )),
    };
    match map.get("days") {
        Some(Value::Sequence(list)) if !list.is_empty() => {
            for (j, d) in list.iter().enumerate() {
                day(d, &format!("days[{j}]"), problems);
            }
        }
        Some(d @ Value::String(_)) => day(d, "days", problems),
        None => problems.push(format!("{at}.days: missing (a list of mon … sun, or daily)")),
        Some(_) => problems.push(format!("{at}.days: must be a list of mon … sun, or daily")),
    }
    let clock = |key: &str, problems: &mut Vec<String>| -> Option<u32> {
        let value = map.get(key)?;
        let parsed = value.as_str().and_then(parse_time_of_day);
        if parsed.is_none() {
            problems.push(format!(
                "{at}.{key}: `{}` is not a time of day HH:MM (00:00 to 23:59; quote it)",
                serde_yaml::to_string(value).unwrap_or_default().trim()
            ));
        }
        parsed
    };
    let start = clock("start", problems);
    if !map.contains_key("start") {
        problems.push(format!("{at}.start: missing (HH:MM, local time)"));
    }
    // `end` is a time of day, or a duration; `duration` is a duration.
    let duration = |key: &str, value: &Value, problems: &mut Vec<String>| -> Option<f64> {
        let seconds = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => parse_duration(s).ok(),
            _ => None,
        };
        match seconds {
            Some(s) if s > 0.0 && s <= MAX_WINDOW => Some(s),
            _ => {
                problems.push(format!(
                    "{at}.{key}: `{}` is neither HH:MM nor a duration up to a week (2h, 90m, 1h30m)",
                    serde_yaml::to_string(value).unwrap_or_default().trim()
                ));
                None
            }
        }
    };
    let end = match (map.get("end"), map.get("duration")) {
        (Some(_), Some(_)) => {
            problems.push(format!("{at}: give end or duration, not both"));
            None
        }
        (None, None) => {
            problems.push(format!("{at}.end: missing (HH:MM, or a duration such as 2h)"));
            None
        }
        (Some(Value::String(s)), None) if s.contains(':') => clock("end", problems).map(WindowEnd::At),
        (Some(v), None) => duration("end", v, problems).map(WindowEnd::For),
        (None, Some(v)) => duration("duration", v, problems).map(WindowEnd::For),
    };
    if let (Some(start), Some(WindowEnd::At(end))) = (start, end) {
        if start == end {
            problems.push(format!("{at}.end: equals start (for a whole day, write 24h)"));
        }
    }
    let comment = text("comment", problems);
    if comment.is_none() && !map.contains_key("comment") {
        problems.push(format!("{at}.comment: missing (say why: it goes with every alert the window holds)"));
    }
    if problems.len() > before {
        return None;
    }
    Some(Window { name: name?, hosts, plugin, metric_path, days, start: start?, end: end?, comment: comment? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str) -> Result<Vec<Window>, Vec<String>> {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let windows = compile(&value, &mut problems);
        if problems.is_empty() {
            Ok(windows)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn windows_compile() {
        let w = compiled(
            r#"
- name: db-kernel
  hosts: "DB*"
  plugin: disk_monitor
  days: [sun, Wed]
  start: "02:00"
  end: "04:00"
  comment: weekly kernel updates
- name: nightly
  hosts: [web1, "web?"]
  days: daily
  start: "23:30"
  end: 2h
  comment: backups
- name: short
  hosts: "*"
  days: [mon]
  start: "12:00"
  duration: 90
  comment: lunch
"#,
        )
        .unwrap();
        assert_eq!(w[0].hosts, ["db*"]);
        assert_eq!(w[0].days, [false, false, true, false, false, false, true]);
        assert_eq!((w[0].start, w[0].end), (7200, WindowEnd::At(14400)));
        assert_eq!(w[0].plugin.as_deref(), Some("disk_monitor"));
        assert_eq!((w[1].days, w[1].end), ([true; 7], WindowEnd::For(7200.0)));
        assert_eq!(w[2].end, WindowEnd::For(90.0));
        assert_eq!(compiled("").unwrap(), Vec::new());
    }

    #[test]
    fn each_problem_names_its_key() {
        let base = "name: w\n  hosts: db*\n  days: [sun]\n  start: \"02:00\"\n  end: \"04:00\"\n  comment: c";
        for (change, expected) in [
            ("days: [sun]", "days: [funday]"),
            ("start: \"02:00\"", "start: \"25:00\""),
            ("comment: c", "x: 1"),
            ("end: \"04:00\"", "end: \"04:00\"\n  duration: 2h"),
            ("end: \"04:00\"", "end: \"4pm\""),
            ("end: \"04:00\"", "end: \"02:00\""),
            ("hosts: db*", "hosts: []"),
            ("name: w", "name: \"\""),
        ] {
            let yaml = format!("- {}", base.replace(change, expected));
            let problems = compiled(&yaml).unwrap_err();
            let wanted = match expected {
                "days: [funday]" => "maintenance[0].days[0]: unknown day `funday`",
                "start: \"25:00\"" => "maintenance[0].start:",
                "x: 1" => "maintenance[0].comment: missing",
                "end: \"4pm\"" => "maintenance[0].end:",
                "end: \"02:00\"" => "maintenance[0].end: equals start",
                "hosts: []" => "maintenance[0].hosts:",
                "name: \"\"" => "maintenance[0].name:",
                _ => "maintenance[0]: give end or duration, not both",
            };
            assert!(problems.iter().any(|p| p.starts_with(wanted)), "{yaml}: {problems:?}");
        }
        let problems = compiled(&format!("- {base}\n- {base}")).unwrap_err();
        assert!(problems[0].starts_with("maintenance[1].name: `w` names another"), "{problems:?}");
        assert!(compiled("maintenance: 1").is_err() && compiled("- 1").is_err());
    }
}
