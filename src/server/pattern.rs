//! Host name patterns with `*` and `?`, as hbd.yaml writes them for the
//! per-host overrides of `thresholds.hosts` (core) and the `hosts` filter
//! of a notification service (notify): one matcher, below both.
//!
//! Not `wire::auth::HostPattern`: a key's `hosts` are a name or
//! `*.domain`, checked as host names, while these patterns put `*` and `?`
//! anywhere (`db*`, `web?.example.com`).

/// `*` any run of characters, `?` one; host names are compared in lower case.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative wildcard matching with one backtrack point.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether a host with `tags` is one a filter of `wanted` tags lets
/// through: any tag in common, or no filter (`wanted` empty).
pub fn any_of(wanted: &[String], tags: &[String]) -> bool {
    wanted.is_empty() || wanted.iter().any(|w| tags.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_tag_in_common_or_no_filter() {
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert!(any_of(&[], &[]));
        assert!(any_of(&s(&["db", "x"]), &s(&["db"])));
        assert!(!any_of(&s(&["db"]), &s(&["eu"])));
    }
}
