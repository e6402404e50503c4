//! `parents:` of hbd.yaml: child host name or pattern → one parent host
//! name or a list, checked (names, patterns, no host its own parent, no
//! cycle) and compiled into the core's [`Parents`].

use serde_yaml::Value;

use crate::server::core::deps::Parents;
use crate::wire::is_valid_host_name;

/// Compiles `parents:`; every problem goes to `problems`, naming the entry.
pub fn compile(value: &Value, problems: &mut Vec<String>) -> Parents {
    let map = match value {
        Value::Null => return Parents::default(),
        Value::Mapping(map) => map,
        _ => {
            problems.push("parents: must be a map from a host name or pattern to a parent or a list of parents".into());
            return Parents::default();
        }
    };
    let before = problems.len();
    let mut entries = Vec::new();
    for (key, parents) in map {
        let Some(child) = key.as_str().map(str::to_ascii_lowercase) else {
            problems.push("parents: a host name or pattern must be text".into());
            continue;
        };
        // A pattern is a host name with `*` and `?` in it.
        let example = child.replace(['*', '?'], "a");
        if !is_valid_host_name(&example) {
            problems.push(format!("parents: `{child}` is not a host name or pattern (letters, digits, -, ., * and ?)"));
            continue;
        }
        let names: Vec<Option<&str>> = match parents {
            Value::String(one) => vec![Some(one.as_str())],
            Value::Sequence(list) if !list.is_empty() => list.iter().map(Value::as_str).collect(),
            _ => {
                problems.push(format!("parents.{child}: a parent's host name, or a non-empty list of them"));
                continue;
            }
        };
        let mut checked = Vec::new();
        for name in names {
            match name.map(str::to_ascii_lowercase) {
                Some(name) if is_valid_host_name(&name) => {
                    if !checked.contains(&name) {
                        checked.push(name);
                    }
                }
                Some(name) => problems.push(format!(
                    "parents.{child}: `{name}` is not a host name (a parent is one host, never a pattern)"
                )),
                None => problems.push(format!("parents.{child}: a parent must be a host name")),
            }
        }
        if checked.contains(&child) {
            problems.push(format!("parents.{child}: a host is not its own parent"));
            continue;
        }
        entries.push((child, checked));
    }
    let parents = Parents::new(entries);
    if problems.len() == before {
        if let Some(cycle) = parents.cycle() {
            problems.push(format!("parents: a cycle: {}", cycle.join(" -> ")));
        }
    }
    parents
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str) -> Result<Parents, Vec<String>> {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let parents = compile(&value, &mut problems);
        if problems.is_empty() {
            Ok(parents)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn the_man_pages_example() {
        let p = compiled("\"site1-*\": site1-router\nsite1-router: core-router\nDual-Homed: [router-a, Router-B]\n")
            .unwrap();
        assert_eq!(p.of("site1-web3"), ["site1-router"]);
        assert_eq!(p.of("site1-router"), ["core-router"], "site1-* does not make it its own parent");
        assert_eq!(p.of("dual-homed"), ["router-a", "router-b"], "names in lower case, as hbd keeps them");
        assert!(p.of("core-router").is_empty());
        assert!(compiled("").unwrap().is_empty());
    }

    #[test]
    fn a_cycle_is_an_error_naming_it() {
        let problems = compiled("a: b\nb: [x, c]\nc: a\n").unwrap_err();
        assert_eq!(problems, ["parents: a cycle: a -> b -> c -> a"]);
        // Through a pattern: r1 is behind r2 by `r?`, r2 behind r1 by name.
        let problems = compiled("\"r?\": r2\nr2: r1\n").unwrap_err();
        assert_eq!(problems, ["parents: a cycle: r2 -> r1 -> r2"]);
    }

    #[test]
    fn bad_entries_are_named() {
        for (yaml, expected) in [
            ("[a, b]", "parents: must be a map"),
            ("a: a", "parents.a: a host is not its own parent"),
            ("a: [b, a]", "parents.a: a host is not its own parent"),
            ("a: 'r*'", "parents.a: `r*` is not a host name (a parent is one host, never a pattern)"),
            ("a: []", "parents.a: a parent's host name, or a non-empty list of them"),
            ("a: {b: c}", "parents.a: a parent's host name"),
            ("a: [5]", "parents.a: a parent must be a host name"),
            ("'bad name': b", "parents: `bad name` is not a host name or pattern"),
            ("'<script>': b", "parents: `<script>` is not a host name or pattern"),
            ("5: b", "parents: a host name or pattern must be text"),
        ] {
            let problems = compiled(yaml).unwrap_err();
            assert!(problems.iter().any(|p| p.starts_with(expected)), "{yaml}: {problems:?}");
        }
    }
}
