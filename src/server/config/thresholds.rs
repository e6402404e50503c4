//! The compiler of `thresholds:` (hbd.yaml): the YAML tree, checked
//! rule by rule, becomes the [`Rules`] value the core's alert table runs
//! on. Configuration's work, not the core's: the core sees only compiled
//! rules and never a YAML value.
//!
//! A mapping with a rule field (`warning`, `critical`, `operator`,
//! `hysteresis`, `for`) is a rule, any other mapping a path segment into
//! the plugin's data; `hosts:` holds per-host overrides, where a rule may
//! be turned `off`. Every problem names its rule; paths that no built-in
//! plugin reports are warnings.

use crate::server::core::alerts::{Operator, Placed, Rule, Rules, ANY};

/// Reserved key under `thresholds:`: per-host overrides.
const HOSTS_KEY: &str = "hosts";
/// The fields that make a mapping a rule rather than a path segment.
const RULE_FIELDS: [&str; 5] = ["warning", "critical", "operator", "hysteresis", "for"];
/// Deepest rule path followed into plugin data.
const MAX_DEPTH: usize = 8;

/// Compiles the `thresholds:` mapping. Problems name the rule
/// (`thresholds.cpu_monitor.cpu_percent: …`); `warnings` get paths
/// that no built-in plugin reports (exec plugins have their own).
pub fn compile(
    thresholds: &serde_yaml::Value,
    renotify: f64,
    stale_intervals: f64,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Rules {
    let (mut global, mut overrides) = (Vec::new(), Vec::new());
    let root = match thresholds {
        serde_yaml::Value::Null => return Rules::new(global, overrides, renotify, stale_intervals),
        serde_yaml::Value::Mapping(map) => map,
        _ => {
            problems.push("thresholds: must be a mapping of plugin names to metrics".into());
            return Rules::new(global, overrides, renotify, stale_intervals);
        }
    };
    for (plugin, tree) in root {
        let Some(plugin) = key_text(plugin) else {
            problems.push("thresholds: a plugin name must be text".into());
            continue;
        };
        if plugin == HOSTS_KEY {
            overrides = compile_overrides(tree, problems, warnings);
            continue;
        }
        let mut placed = Vec::new();
        walk(&format!("thresholds.{plugin}"), &plugin, &mut Vec::new(), tree, false, &mut placed, problems);
        global.extend(placed);
    }
    for placed in &global {
        warn_unknown_path(placed, "thresholds", warnings);
    }
    Rules::new(global, overrides, renotify, stale_intervals)
}

fn parse_operator(text: &str) -> Option<Operator> {
    Some(match text {
        ">" => Operator::Above,
        ">=" => Operator::AtLeast,
        "<" => Operator::Below,
        "<=" => Operator::AtMost,
        "==" => Operator::Equal,
        "!=" => Operator::NotEqual,
        _ => return None,
    })
}

fn key_text(key: &serde_yaml::Value) -> Option<String> {
    match key {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_off(value: &serde_yaml::Value) -> bool {
    match value {
        serde_yaml::Value::Null | serde_yaml::Value::Bool(false) => true,
        serde_yaml::Value::String(s) => matches!(s.as_str(), "off" | "no" | "false" | "disabled"),
        _ => false,
    }
}

/// Follows `tree` down to its rules: a mapping with a rule field is a rule,
/// any other mapping a path segment. `allow_off`: in a host override, a
/// rule may be `off` (or `false`, or empty).
fn walk(
    name: &str,
    plugin: &str,
    path: &mut Vec<String>,
    tree: &serde_yaml::Value,
    allow_off: bool,
    out: &mut Vec<Placed>,
    problems: &mut Vec<String>,
) {
    if path.len() > MAX_DEPTH {
        problems.push(format!("{name}: deeper than {MAX_DEPTH} levels"));
        return;
    }
    if allow_off && !path.is_empty() && is_off(tree) {
        out.push(Placed { plugin: plugin.to_string(), path: path.clone(), rule: None });
        return;
    }
    let serde_yaml::Value::Mapping(map) = tree else {
        problems.push(format!(
            "{name}: expected a rule (warning, critical, operator, hysteresis, for) or a mapping of metric names"
        ));
        return;
    };
    let is_rule = map.keys().any(|k| key_text(k).is_some_and(|k| RULE_FIELDS.contains(&k.as_str())));
    if is_rule {
        if path.is_empty() {
            problems.push(format!("{name}: a rule needs a metric name under the plugin"));
            return;
        }
        if let Some(rule) = compile_rule(name, tree, problems) {
            out.push(Placed { plugin: plugin.to_string(), path: path.clone(), rule: Some(rule) });
        }
        return;
    }
    for (key, subtree) in map {
        let Some(key) = key_text(key) else {
            problems.push(format!("{name}: a metric name must be text"));
            continue;
        };
        path.push(key.clone());
        walk(&format!("{name}.{key}"), plugin, path, subtree, allow_off, out, problems);
        path.pop();
    }
}

/// One rule as written in hbd.yaml.
#[derive(Debug, Default)]
struct RuleConfig {
    warning: Option<f64>,
    critical: Option<f64>,
    operator: Option<String>,
    hysteresis: Option<f64>,
    for_samples: Option<u32>,
}

/// Reads a rule's fields by hand, so that each problem names its field.
fn read_rule(name: &str, tree: &serde_yaml::Value, problems: &mut Vec<String>) -> RuleConfig {
    let mut config = RuleConfig::default();
    let serde_yaml::Value::Mapping(map) = tree else { return config };
    for (key, value) in map {
        let key = key_text(key).unwrap_or_default();
        let number = || value.as_f64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()));
        let not_a = |what: &str| format!("{name}: {key}: `{}` is not {what}", show_yaml(value));
        match key.as_str() {
            "warning" | "critical" | "hysteresis" => match number() {
                Some(n) if key == "warning" => config.warning = Some(n),
                Some(n) if key == "critical" => config.critical = Some(n),
                Some(n) => config.hysteresis = Some(n),
                None => problems.push(not_a("a number")),
            },
            "operator" => match value.as_str() {
                Some(op) => config.operator = Some(op.to_string()),
                None => problems.push(not_a("one of >, >=, <, <=, ==, !=")),
            },
            "for" => match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => config.for_samples = Some(n),
                None => problems.push(not_a("a whole number of samples")),
            },
            _ => problems.push(format!(
                "{name}: unknown key `{key}` (a rule has warning, critical, operator, hysteresis and for)"
            )),
        }
    }
    config
}

fn show_yaml(value: &serde_yaml::Value) -> String {
    serde_yaml::to_string(value).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn compile_rule(name: &str, tree: &serde_yaml::Value, problems: &mut Vec<String>) -> Option<Rule> {
    let before = problems.len();
    let config = read_rule(name, tree, problems);
    let operator = match config.operator.as_deref() {
        None => Operator::Above,
        Some(text) => parse_operator(text).unwrap_or_else(|| {
            problems.push(format!("{name}: operator `{text}` is not one of >, >=, <, <=, ==, !="));
            Operator::Above
        }),
    };
    if config.warning.is_none() && config.critical.is_none() {
        problems.push(format!("{name}: a rule needs a warning or a critical threshold"));
    }
    for (field, value) in [("warning", config.warning), ("critical", config.critical)] {
        if value.is_some_and(|v| !v.is_finite()) {
            problems.push(format!("{name}: {field} must be a finite number"));
        }
    }
    if let (Some(w), Some(c)) = (config.warning, config.critical) {
        let wrong = match operator.direction() {
            d if d > 0.0 => w > c,
            d if d < 0.0 => w < c,
            _ => false,
        };
        if wrong {
            let (op, order) = if operator.direction() > 0.0 { (">", "below") } else { ("<", "above") };
            problems.push(format!(
                "{name}: warning {w} and critical {c} are in the wrong order: with operator {op} the warning must be {order} the critical threshold"
            ));
        }
    }
    let hysteresis = config.hysteresis.unwrap_or(0.0);
    if !(0.0..1.0).contains(&hysteresis) {
        problems.push(format!("{name}: hysteresis {hysteresis} is not a fraction from 0 to below 1 (0.1 is 10 %)"));
    }
    let for_samples = config.for_samples.unwrap_or(1);
    if !(1..=1000).contains(&for_samples) {
        problems.push(format!("{name}: for: {for_samples} is not a number of samples from 1 to 1000"));
    }
    (problems.len() == before).then_some(Rule {
        warning: config.warning,
        critical: config.critical,
        operator,
        hysteresis,
        for_samples,
    })
}

fn compile_overrides(
    tree: &serde_yaml::Value,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<(String, Vec<Placed>)> {
    let serde_yaml::Value::Mapping(map) = tree else {
        problems.push("thresholds.hosts: expected a mapping of host names or patterns to rules".into());
        return Vec::new();
    };
    let mut overrides = Vec::new();
    for (pattern, plugins) in map {
        let Some(pattern) = key_text(pattern) else {
            problems.push("thresholds.hosts: a host pattern must be text".into());
            continue;
        };
        let name = format!("thresholds.hosts.{pattern}");
        let valid = pattern.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*?".contains(&b)) && !pattern.is_empty();
        if !valid {
            problems.push(format!("{name}: `{pattern}` is not a host name or a pattern of one with * and ?"));
            continue;
        }
        let serde_yaml::Value::Mapping(plugin_map) = plugins else {
            problems.push(format!("{name}: expected a mapping of plugin names to metrics"));
            continue;
        };
        let mut placed = Vec::new();
        for (plugin, subtree) in plugin_map {
            let Some(plugin) = key_text(plugin) else {
                problems.push(format!("{name}: a plugin name must be text"));
                continue;
            };
            walk(&format!("{name}.{plugin}"), &plugin, &mut Vec::new(), subtree, true, &mut placed, problems);
        }
        for p in &placed {
            warn_unknown_path(p, &name, warnings);
        }
        overrides.push((pattern.to_ascii_lowercase(), placed));
    }
    overrides
}

/// The metric paths each built-in plugin reports (`*` for names that vary:
/// partitions, interfaces, connection states), so that a rule naming none
/// of them is pointed out at start-up. docs and hbc(8) list the same.
const BUILT_IN_PATHS: &[(&str, &[&str])] = &[
    (
        "cpu_monitor",
        &[
            "cpu_percent",
            "cpu_count",
            "frequency_mhz",
            "load_1min",
            "load_5min",
            "load_15min",
            "processes_running",
            "processes_total",
            "per_core.*",
        ],
    ),
    (
        "memory_monitor",
        &["percent", "available_mb", "total_mb", "used_mb", "swap_percent", "swap_total_mb", "swap_used_mb"],
    ),
    (
        "disk_monitor",
        &[
            "partitions.*.percent",
            "partitions.*.free_gb",
            "partitions.*.free_mb",
            "partitions.*.total_gb",
            "partitions.*.used_gb",
            "io.read_bytes_per_s",
            "io.write_bytes_per_s",
        ],
    ),
    (
        "network_monitor",
        &[
            "errors_total",
            "dropped_total",
            "connections_total",
            "connections.*",
            "interfaces.*.rx_bytes_per_s",
            "interfaces.*.tx_bytes_per_s",
            "interfaces.*.rx_packets_per_s",
            "interfaces.*.tx_packets_per_s",
            "interfaces.*.rx_errors",
            "interfaces.*.tx_errors",
            "interfaces.*.rx_dropped",
            "interfaces.*.tx_dropped",
        ],
    ),
    ("filesystem_info", &["count"]),
    ("os_info", &["cpu_count", "boot_time"]),
    // hbd's own, for jobs (`hbc run`): each run's time.
    ("job", &["duration_seconds"]),
];

fn warn_unknown_path(placed: &Placed, section: &str, warnings: &mut Vec<String>) {
    let Some((_, known)) = BUILT_IN_PATHS.iter().find(|(plugin, _)| *plugin == placed.plugin) else {
        return; // exec and Nagios plugins have paths of their own
    };
    let fits = |pattern: &str| {
        let segments: Vec<&str> = pattern.split('.').collect();
        segments.len() == placed.path.len()
            && segments.iter().zip(&placed.path).all(|(s, p)| *s == ANY || p == ANY || s == p)
    };
    if !known.iter().any(|k| fits(k)) {
        warnings.push(format!(
            "{section}.{}.{}: {} reports no such metric; known: {}",
            placed.plugin,
            placed.path.join("."),
            placed.plugin,
            known.join(", ")
        ));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `thresholds:` as YAML text, compiled; it must have no problems.
    pub(crate) fn rules(yaml: &str) -> Rules {
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let rules = compile(&value, 3600.0, 3.0, &mut problems, &mut warnings);
        assert!(problems.is_empty(), "{problems:?}");
        rules
    }

    fn problems(yaml: &str) -> (Vec<String>, Vec<String>) {
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        compile(&value, 3600.0, 3.0, &mut problems, &mut warnings);
        (problems, warnings)
    }

    /// The Python hbd README's example rules.
    pub(crate) const README: &str = "
cpu_monitor:
  cpu_percent:
    warning: 80.0
    critical: 90.0
    operator: \">\"
    hysteresis: 0.1
memory_monitor:
  percent:
    warning: 85.0
    critical: 95.0
disk_monitor:
  partitions:
    /:
      percent:
        warning: 80.0
        critical: 90.0
      free_gb:
        warning: 10.0
        critical: 5.0
        operator: \"<\"
";

    #[test]
    fn rule_mistakes_are_named() {
        for (yaml, expected) in [
            ("p:\n  v: {warning: 1, operator: '=>'}\n", "thresholds.p.v: operator `=>` is not one of"),
            ("p:\n  v: {warning: high}\n", "thresholds.p.v: warning: `high` is not a number"),
            (
                "p:\n  v: {warning: 90, critical: 80}\n",
                "thresholds.p.v: warning 90 and critical 80 are in the wrong order",
            ),
            ("p:\n  v: {warning: 5, critical: 10, operator: '<'}\n", "warning must be above the critical"),
            ("p:\n  v: {operator: '>'}\n", "needs a warning or a critical threshold"),
            ("p:\n  v: {warning: 1, hysteresis: 2}\n", "hysteresis 2 is not a fraction"),
            ("p:\n  v: {warning: 1, for: 0}\n", "for: 0 is not a number of samples"),
            ("p:\n  v: {warning: 1, colour: red}\n", "unknown key `colour`"),
            ("p:\n  v: 5\n", "thresholds.p.v: expected a rule"),
            (
                "hosts:\n  'bad name':\n    p:\n      v: {warning: 1}\n",
                "thresholds.hosts.bad name: `bad name` is not a host name",
            ),
        ] {
            let (found, _) = problems(yaml);
            assert!(found.iter().any(|p| p.contains(expected)), "{yaml:?} gave {found:?}");
        }
    }

    #[test]
    fn unknown_paths_of_built_in_plugins_are_warnings() {
        let (found, warnings) =
            problems("cpu_monitor:\n  cpu_prcent: {warning: 1}\nmyexec:\n  anything: {warning: 1}\n");
        assert!(found.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("thresholds.cpu_monitor.cpu_prcent: cpu_monitor reports no such metric"));
        let (_, warnings) = problems(README);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
