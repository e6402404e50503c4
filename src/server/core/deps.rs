//! Dependencies between hosts (`parents:` of hbd.yaml, checked and compiled
//! by `config::parents`): which hosts a host is reached through, so that a
//! host gone silent behind a parent that is down is *unreachable*, not
//! down. The rules that use them are [`super::table::HostTable::expire`]'s.

use crate::server::pattern::glob_matches;

/// `parents:` compiled: child name or pattern → parent names, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parents {
    entries: Vec<(String, Vec<String>)>,
}

impl Parents {
    /// `entries` as `config::parents` checked them: lower-case, each parent
    /// a host name, no cycle.
    pub fn new(entries: Vec<(String, Vec<String>)>) -> Parents {
        Parents { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The parents of `host`: those of the entry naming it exactly, else of
    /// the first pattern in file order that matches it; an entry that
    /// names `host` itself among its parents does not apply to it (the
    /// router `site1-router` is not behind itself for `site1-*`).
    pub fn of(&self, host: &str) -> Vec<String> {
        let applies = |(_, parents): &&(String, Vec<String>)| !parents.iter().any(|p| p == host);
        let exact = self.entries.iter().filter(applies).find(|(key, _)| key == host);
        let entry = exact.or_else(|| self.entries.iter().filter(applies).find(|(key, _)| glob_matches(key, host)));
        entry.map(|(_, parents)| parents.clone()).unwrap_or_default()
    }

    /// Every host named as a parent or as an exact child, in file order
    /// without repeats: the hosts among which a cycle could lie (a cycle
    /// goes only through parents, and parents are names).
    pub fn named(&self) -> Vec<&str> {
        let mut named: Vec<&str> = Vec::new();
        let literal = |key: &str| !key.contains(['*', '?']);
        for (key, parents) in &self.entries {
            for name in std::iter::once(key.as_str()).filter(|k| literal(k)).chain(parents.iter().map(String::as_str)) {
                if !named.contains(&name) {
                    named.push(name);
                }
            }
        }
        named
    }

    /// A cycle among the named hosts, as the path that closes it
    /// (`a -> b -> a`), if there is one.
    pub fn cycle(&self) -> Option<Vec<String>> {
        // Depth-first from each named host, the path so far on a stack.
        fn visit(parents: &Parents, host: &str, path: &mut Vec<String>, done: &mut Vec<String>) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|h| h == host) {
                let mut cycle = path[at..].to_vec();
                cycle.push(host.to_string());
                return Some(cycle);
            }
            if done.iter().any(|h| h == host) {
                return None;
            }
            path.push(host.to_string());
            for parent in parents.of(host) {
                if let Some(cycle) = visit(parents, &parent, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            done.push(host.to_string());
            None
        }
        let mut done = Vec::new();
        self.named().into_iter().find_map(|host| visit(self, host, &mut Vec::new(), &mut done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parents(entries: &[(&str, &[&str])]) -> Parents {
        Parents::new(entries.iter().map(|(k, v)| (k.to_string(), v.iter().map(|p| p.to_string()).collect())).collect())
    }

    #[test]
    fn exact_names_win_then_the_first_pattern_and_never_oneself() {
        let p = parents(&[
            ("site1-*", &["site1-router"]),
            ("site1-router", &["core-router"]),
            ("site1-db", &["router-a", "router-b"]),
            ("*", &["core-router"]),
        ]);
        assert_eq!(p.of("site1-web"), ["site1-router"]);
        assert_eq!(p.of("site1-db"), ["router-a", "router-b"], "its own entry before the pattern");
        assert_eq!(p.of("site1-router"), ["core-router"], "site1-* would make it its own parent");
        assert_eq!(p.of("elsewhere"), ["core-router"]);
        assert!(p.of("core-router").is_empty(), "`*` names it: it does not apply to it");
        assert_eq!(p.named(), ["site1-router", "core-router", "site1-db", "router-a", "router-b"]);
        assert_eq!(p.cycle(), None);
    }

    #[test]
    fn cycles_through_names_and_patterns_are_found() {
        let p = parents(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        assert_eq!(p.cycle().unwrap(), ["a", "b", "c", "a"]);
        // r1 behind r2 by a pattern, r2 behind r1 by name.
        let p = parents(&[("r?", &["r2"]), ("r2", &["r1"])]);
        assert_eq!(p.cycle().unwrap(), ["r2", "r1", "r2"]);
        let p = parents(&[("edge-*", &["edge-1", "core"]), ("core", &["uplink"])]);
        assert_eq!(p.cycle(), None, "edge-1 is not behind itself");
    }
}
