//! `tags:` of hbd.yaml: tag → host name patterns (one or a list), checked
//! and compiled into the core's [`TagRules`].

use serde_yaml::Value;

use crate::server::tags::TagRules;
use crate::wire::{is_valid_host_name, is_valid_tag};

/// Compiles `tags:`; every problem goes to `problems`, naming the entry.
pub fn compile(value: &Value, problems: &mut Vec<String>) -> TagRules {
    let map = match value {
        Value::Null => return TagRules::default(),
        Value::Mapping(map) => map,
        _ => {
            problems.push("tags: must be a map from a tag to a host name pattern or a list of them".into());
            return TagRules::default();
        }
    };
    let mut entries = Vec::new();
    for (key, patterns) in map {
        let Some(tag) = key.as_str().filter(|t| is_valid_tag(t)) else {
            problems.push(format!("tags: `{}` is not a tag (1 to 32 of a-z 0-9 _ - .)", shown(key)));
            continue;
        };
        let listed: Vec<Option<&str>> = match patterns {
            Value::String(one) => vec![Some(one.as_str())],
            Value::Sequence(list) if !list.is_empty() => list.iter().map(Value::as_str).collect(),
            _ => {
                problems.push(format!("tags.{tag}: a host name pattern, or a non-empty list of them"));
                continue;
            }
        };
        let mut checked = Vec::new();
        for pattern in listed {
            // A pattern is a host name with `*` and `?` in it.
            match pattern.map(str::to_ascii_lowercase) {
                Some(p) if is_valid_host_name(&p.replace(['*', '?'], "a")) => checked.push(p),
                Some(p) => problems.push(format!(
                    "tags.{tag}: `{p}` is not a host name or a pattern of one (letters, digits, -, ., * and ?)"
                )),
                None => problems.push(format!("tags.{tag}: a pattern must be text")),
            }
        }
        entries.push((tag.to_string(), checked));
    }
    TagRules::new(entries)
}

/// A YAML key as a person wrote it, for a message.
fn shown(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str) -> Result<TagRules, Vec<String>> {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let rules = compile(&value, &mut problems);
        if problems.is_empty() {
            Ok(rules)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn the_man_pages_example() {
        let rules = compiled("db: ['db*', 'Backup-DB*']\neu: '*.eu'\n").unwrap();
        assert_eq!(rules.of("backup-db1.eu", &[]), ["db", "eu"]);
        assert!(compiled("~").unwrap().is_empty());
    }

    #[test]
    fn bad_entries_are_named() {
        for (yaml, expected) in [
            ("[db]", "tags: must be a map"),
            ("DB: 'db*'", "tags: `DB` is not a tag"),
            ("'<b>x</b>': 'db*'", "tags: `<b>x</b>` is not a tag"),
            ("db: []", "tags.db: a host name pattern, or a non-empty list"),
            ("db: 'a b'", "tags.db: `a b` is not a host name"),
            ("db: [1]", "tags.db: a pattern must be text"),
        ] {
            let problems = compiled(yaml).unwrap_err().join("\n");
            assert!(problems.contains(expected), "{yaml}: {problems}");
        }
    }
}
