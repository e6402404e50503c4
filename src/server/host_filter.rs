//! Which hosts a query of `/api/0/hosts` asks for (`status`, `name`, `tag`,
//! `alert_level`, `silenced`) and which page of them (`limit`, `after`).
//!
//! Core applies it to its own table ([`HostFilter::select`]) and copies
//! only the page: at 100,000 hosts a copy of every host, sorted, cost the
//! core half a second for each such query, even one asking for one host.
//! The HTTP side parses the query and shows the page (`http/host_query`).

use crate::server::model::{Host, Level, Status};
use crate::server::pattern::{any_of, glob_matches};

/// Every filter given must hold (values within one filter: any of them).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HostFilter {
    pub statuses: Vec<Status>,
    /// Name patterns (`*`, `?`), lower case.
    pub names: Vec<String>,
    pub tags: Vec<String>,
    pub levels: Vec<Level>,
    /// Only hosts a silence covers now (or only those none does).
    pub silenced: Option<bool>,
    /// Hosts per page; None: every host that matches.
    pub limit: Option<usize>,
    /// The cursor: only hosts whose names sort after it.
    pub after: Option<String>,
}

/// The hosts of one page, in name order, and what the client needs to go on.
#[derive(Debug, Default)]
pub struct HostPage {
    pub hosts: Vec<Host>,
    /// Hosts that match the filters, on every page.
    pub total: usize,
    /// Whether more match after this page (its last name is the next cursor).
    pub more: bool,
}

impl HostFilter {
    /// Whether `host` passes the filters; `silenced` is asked only when the
    /// query filters on it (finding a host's silence is a search).
    pub fn wants(&self, host: &Host, silenced: impl FnOnce() -> bool) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&host.status))
            && (self.names.is_empty() || self.names.iter().any(|p| glob_matches(p, &host.name)))
            && any_of(&self.tags, &host.tags)
            && (self.levels.is_empty() || self.levels.contains(&host.alert_level))
            && self.silenced.is_none_or(|wanted| wanted == silenced())
    }

    /// The page of `hosts` (in any order) the query asks for, in name
    /// order, with the number that match and whether more follow. Only the
    /// page is sorted: O(n) for the walk, O(limit log limit) for the page.
    pub fn select<'a>(
        &self,
        hosts: impl Iterator<Item = &'a Host>,
        silenced: impl Fn(&Host) -> bool,
    ) -> (Vec<&'a Host>, usize, bool) {
        let mut total = 0;
        let mut page: Vec<&Host> = hosts
            .filter(|h| self.wants(h, || silenced(h)))
            .inspect(|_| total += 1)
            .filter(|h| self.after.as_deref().is_none_or(|after| h.name.as_str() > after))
            .collect();
        let by_name = |a: &&Host, b: &&Host| a.name.cmp(&b.name);
        let more = self.limit.is_some_and(|limit| page.len() > limit);
        if let Some(limit) = self.limit.filter(|_| more) {
            page.select_nth_unstable_by(limit, by_name);
            page.truncate(limit);
        }
        page.sort_unstable_by(by_name);
        (page, total, more)
    }
}
