//! `/api/0/hosts` with a query: the part of the host list a user needs.
//! At 100,000 hosts the whole list is ~30 MB; filters (`status`, `name`,
//! `tag`, `alert_level`, `silenced`), a projection (`fields`) and pages with a stable
//! cursor (`limit`, `after`) keep an answer to what is asked. Without any
//! of these parameters the shared, cached body is served unchanged (the
//! Python users' scripts get exactly what they always got).
//!
//! Pages are in name order and the cursor is the last name of a page:
//! hosts that appear or go between two requests shift nothing, so a client
//! that follows `next` sees every host that existed throughout, once.

use serde_json::{Map, Value};

use crate::server::host_filter::{HostFilter, HostPage};
use crate::server::model::{Level, Status};
use crate::server::views::host_json;

/// The parameters this module takes; a query without them is the plain list.
const PARAMETERS: [&str; 8] = ["status", "name", "tag", "alert_level", "silenced", "fields", "limit", "after"];
/// Most hosts one page may hold.
pub const MAX_PAGE: usize = 10_000;

/// What a query asks for: which hosts and pages (core applies that to its
/// table, [`HostFilter`]) and which of their fields (shown here).
#[derive(Debug, Default, PartialEq)]
pub struct HostQuery {
    pub filter: HostFilter,
    fields: Option<Vec<String>>,
}

impl HostQuery {
    /// The query of `pairs` (decoded `key=value`s), None when it has none of
    /// this module's parameters; an error names the parameter and what it takes.
    pub fn parse<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> Result<Option<HostQuery>, String> {
        let mut query = HostQuery::default();
        let mut any = false;
        for (key, value) in pairs {
            if !PARAMETERS.contains(&key) {
                continue;
            }
            any = true;
            let values = || value.split(',').map(str::trim).filter(|v| !v.is_empty());
            match key {
                "status" => {
                    for v in values() {
                        query.filter.statuses.push(match v.to_ascii_lowercase().as_str() {
                            "up" => Status::Up,
                            "down" => Status::Down,
                            "unreachable" => Status::Unreachable,
                            _ => return Err(format!("status {v:?} is not up, down or unreachable")),
                        });
                    }
                }
                "name" => query.filter.names.extend(values().map(str::to_ascii_lowercase)),
                "tag" => {
                    for v in values() {
                        if !crate::wire::is_valid_tag(v) {
                            return Err(format!("tag {v:?} is not a tag (1 to 32 of a-z 0-9 _ - .)"));
                        }
                        query.filter.tags.push(v.to_string());
                    }
                }
                "alert_level" => {
                    for v in values() {
                        query.filter.levels.push(match v.to_ascii_uppercase().as_str() {
                            "OK" => Level::Ok,
                            "WARNING" => Level::Warning,
                            "CRITICAL" => Level::Critical,
                            "UNKNOWN" => Level::Unknown,
                            _ => return Err(format!("alert_level {v:?} is not ok, warning, critical or unknown")),
                        });
                    }
                }
                "silenced" => {
                    query.filter.silenced = Some(match value.trim().to_ascii_lowercase().as_str() {
                        "yes" | "true" | "1" => true,
                        "no" | "false" | "0" => false,
                        _ => return Err(format!("silenced {:?} is not yes or no", truncate(&value))),
                    });
                }
                "fields" => query.fields.get_or_insert_with(Vec::new).extend(values().map(String::from)),
                "limit" => {
                    let limit = value.parse::<usize>().ok().filter(|n| (1..=MAX_PAGE).contains(n));
                    query.filter.limit = Some(limit.ok_or_else(|| {
                        format!("limit must be an integer from 1 to {MAX_PAGE}, not {:?}", truncate(&value))
                    })?);
                }
                "after" => query.filter.after = Some(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        Ok(any.then_some(query))
    }

    /// The answer: `{"hosts": […], "count": N, "total": M}` with `"next"`
    /// (the cursor of the next page) when more match.
    pub fn answer(&self, page: &HostPage, now: f64) -> Result<Value, String> {
        let mut shown = Vec::with_capacity(page.hosts.len());
        for host in &page.hosts {
            shown.push(self.project(host_json(host, now))?);
        }
        let mut answer = Map::new();
        answer.insert("count".into(), Value::from(shown.len()));
        answer.insert("hosts".into(), Value::Array(shown));
        answer.insert("total".into(), Value::from(page.total));
        if page.more {
            answer.insert("next".into(), Value::from(page.hosts.last().map(|h| h.name.as_str())));
        }
        Ok(Value::Object(answer))
    }

    /// Only the `fields` asked for; a field hosts do not have is an error
    /// naming the ones they do.
    fn project(&self, host: Value) -> Result<Value, String> {
        let (Some(fields), Value::Object(mut all)) = (&self.fields, host.clone()) else { return Ok(host) };
        let mut kept = Map::new();
        for field in fields {
            if kept.contains_key(field) {
                continue;
            }
            match all.remove(field) {
                Some(value) => {
                    kept.insert(field.clone(), value);
                }
                // Members shown only when they apply (`tags`, `peer`, …) are null when absent.
                None if OPTIONAL_FIELDS.contains(&field.as_str()) => {
                    kept.insert(field.clone(), Value::Null);
                }
                None => {
                    return Err(format!("no field {:?}: hosts have {}", truncate(field), host_fields(&host).join(", ")))
                }
            }
        }
        Ok(Value::Object(kept))
    }
}

/// Members of a host object that are there only when they apply.
const OPTIONAL_FIELDS: [&str; 7] = ["tags", "peer", "parents", "unreachable_via", "silenced", "kind", "job"];

fn host_fields(host: &Value) -> Vec<String> {
    let mut fields: Vec<String> = host.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    fields.extend(OPTIONAL_FIELDS.iter().map(|f| f.to_string()));
    fields.sort();
    fields.dedup();
    fields
}

fn truncate(text: &str) -> &str {
    crate::wire::truncate_chars(text, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::model::Host;

    /// What core answers: the page of `hosts` the query's filter selects.
    fn answer_of(query: &HostQuery, hosts: &[Host], now: f64) -> Result<Value, String> {
        let (page, total, more) = query.filter.select(hosts.iter(), |h| h.silenced.is_some());
        query.answer(&HostPage { hosts: page.into_iter().cloned().collect(), total, more }, now)
    }

    fn host(name: &str, status: Status, level: Level) -> Host {
        let mut host: Host = serde_json::from_value(serde_json::json!({
            "name": name, "address": "192.0.2.1", "port": 4000, "interval": 30.0, "first_seen": 1.0,
            "last_seen": 2.0, "count": 3, "status": status, "status_since": 1.0,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        host.alert_level = level;
        host
    }

    fn parse(query: &str) -> Result<Option<HostQuery>, String> {
        HostQuery::parse(query.split('&').filter(|p| !p.is_empty()).map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k, v.to_string())
        }))
    }

    fn names(answer: &Value) -> Vec<&str> {
        answer["hosts"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect()
    }

    fn hosts() -> Vec<Host> {
        vec![
            host("db1", Status::Down, Level::Critical),
            host("db2", Status::Up, Level::Warning),
            host("shop1", Status::Unreachable, Level::Ok),
            Host {
                silenced: Some(Box::new(crate::server::model::Silenced {
                    id: "s1".into(),
                    until: 9.0,
                    comment: "moving racks".into(),
                    by: "alice".into(),
                })),
                ..host("web1", Status::Up, Level::Ok)
            },
        ]
    }

    #[test]
    fn without_its_parameters_a_query_is_the_plain_list() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("_=1796000000").unwrap(), None, "a cache-buster changes nothing");
    }

    #[test]
    fn filters_combine_and_values_within_one_are_alternatives() {
        let hosts = hosts();
        let answer = |q: &str| answer_of(&parse(q).unwrap().unwrap(), &hosts, 10.0).unwrap();
        assert_eq!(names(&answer("status=down")), ["db1"]);
        assert_eq!(names(&answer("status=down,unreachable")), ["db1", "shop1"]);
        assert_eq!(names(&answer("name=db*")), ["db1", "db2"]);
        assert_eq!(names(&answer("name=db*&status=up")), ["db2"]);
        assert_eq!(names(&answer("alert_level=critical,WARNING")), ["db1", "db2"]);
        assert_eq!(names(&answer("silenced=yes")), ["web1"]);
        assert_eq!(names(&answer("silenced=no&status=up")), ["db2"]);
        let shown = answer("status=up&fields=name,status,last_seen");
        assert_eq!(shown["hosts"][0], serde_json::json!({"name": "db2", "status": "up", "last_seen": 2.0}));
        assert_eq!((&shown["count"], &shown["total"]), (&serde_json::json!(2), &serde_json::json!(2)));
        assert_eq!(answer("fields=name,tags")["hosts"][0], serde_json::json!({"name": "db1", "tags": null}));
    }

    #[test]
    fn pages_follow_a_cursor_that_host_changes_do_not_shift() {
        let mut hosts = hosts();
        let first = answer_of(&parse("limit=2").unwrap().unwrap(), &hosts, 10.0).unwrap();
        assert_eq!(
            (names(&first), &first["next"], &first["total"]),
            (vec!["db1", "db2"], &serde_json::json!("db2"), &serde_json::json!(4))
        );
        // A host that sorts before the cursor appears meanwhile: the next page is unmoved.
        hosts.insert(0, host("app1", Status::Up, Level::Ok));
        let second = answer_of(&parse("limit=2&after=db2").unwrap().unwrap(), &hosts, 10.0).unwrap();
        assert_eq!(names(&second), ["shop1", "web1"]);
        assert!(second.get("next").is_none(), "the last page has no next");
    }

    #[test]
    fn bad_values_name_what_is_wrong() {
        assert_eq!(parse("status=sleeping").unwrap_err(), "status \"sleeping\" is not up, down or unreachable");
        assert_eq!(parse("silenced=maybe").unwrap_err(), "silenced \"maybe\" is not yes or no");
        assert!(parse("alert_level=bad").unwrap_err().starts_with("alert_level \"bad\""));
        assert!(parse("limit=0").unwrap_err().starts_with("limit must be an integer from 1 to 10000"));
        assert!(parse("tag=Not%20A%20Tag").unwrap_err().starts_with("tag "));
        let error = answer_of(&parse("fields=name,colour").unwrap().unwrap(), &hosts(), 1.0).unwrap_err();
        assert!(error.starts_with("no field \"colour\": hosts have "), "{error}");
        assert!(error.contains("last_seen"), "{error}");
    }
}
