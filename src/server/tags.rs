//! Groups of hosts (`tags`): a host's tags are those its client sends
//! (`tags:` of hbc.yaml, in each heartbeat) and those hbd.yaml's `tags:`
//! give it by name pattern. The host table (core) works them out; the API,
//! the console, `/metrics`, badges and the notifier's routes read them.

use crate::server::pattern::glob_matches;

/// `tags:` of hbd.yaml, compiled: tag → host name patterns, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagRules {
    entries: Vec<(String, Vec<String>)>,
}

impl TagRules {
    /// `entries` as `config::tags` checked them: lower-case tags and patterns.
    pub fn new(entries: Vec<(String, Vec<String>)>) -> TagRules {
        TagRules { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tags of host `name` whose client sent `sent`: the union of both,
    /// sorted, each once.
    pub fn of(&self, name: &str, sent: &[String]) -> Vec<String> {
        let mut tags: Vec<String> = sent.to_vec();
        for (tag, patterns) in &self.entries {
            if patterns.iter().any(|p| glob_matches(p, name)) {
                tags.push(tag.clone());
            }
        }
        tags.sort_unstable();
        tags.dedup();
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_sent_and_configured() {
        let rules = TagRules::new(vec![
            ("db".into(), vec!["db*".into(), "backup-db*".into()]),
            ("eu".into(), vec!["*.eu".into()]),
        ]);
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(rules.of("db1.eu", &s(&["prod", "db"])), s(&["db", "eu", "prod"]));
        assert_eq!(rules.of("backup-db2", &[]), s(&["db"]));
        assert_eq!(rules.of("web1", &[]), Vec::<String>::new());
    }
}
