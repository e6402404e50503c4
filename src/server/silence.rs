//! Silences and maintenance windows, the pure part: what a silence covers,
//! the checks of a `POST /api/0/silences` body, durations (`90m`, `1h30m`),
//! and the maintenance calendar (`maintenance:` of hbd.yaml, compiled by
//! `config/maintenance.rs` into [`Window`]s).
//!
//! The calendar works over a function `utc_offset_at(unix seconds) ->
//! seconds east of UTC`, so that its tests run on a zone written in the
//! test; hbd passes [`local_utc_offset`] (libc's `localtime_r`, which
//! honours `TZ`). Daylight saving time, as hbd.yaml(5) says:
//! - a start (or end) time that does not exist that day (spring forward)
//!   is the instant the clock jumps over it;
//! - one that exists twice (fall back) is its first occurrence;
//! - `end: 2h` lasts two hours of real time; `end: "04:00"` lasts until the
//!   first instant the clock shows 04:00 (the next day's when it is not
//!   after the start).
//!
//! Core keeps the silences and asks this module what they cover
//! (`core/silences.rs`); http checks bodies here; ctl parses durations here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::server::model::{AlertKey, Level, Silence};
use crate::server::pattern::glob_matches;

/// The longest a silence may last, and the farthest ahead it may start: a
/// year. Larger numbers are nearly always milliseconds sent for seconds.
pub const MAX_AHEAD: f64 = 366.0 * 86400.0;
/// The longest comment kept, in characters.
pub const MAX_COMMENT: usize = 1000;
/// The longest host, plugin or metric path pattern, in characters.
const MAX_PATTERN: usize = 255;
/// The longest window: a week (its occurrences are looked for that far back).
pub const MAX_WINDOW: f64 = 7.0 * 86400.0;

/// Whether a silence for `host` (and `plugin`, `metric_path`, each a
/// pattern; None for any) covers the alert `key`. Without a plugin it
/// covers the host's every alert, its host-down alert included.
pub fn covers(host: &str, plugin: Option<&str>, metric_path: Option<&str>, key: &AlertKey) -> bool {
    glob_matches(host, &key.host)
        && plugin.is_none_or(|p| glob_matches(p, &key.plugin))
        && metric_path.is_none_or(|m| glob_matches(m, &key.metric_path))
}

/// Whether it covers the whole host `name` (no plugin named).
pub fn covers_host(host: &str, plugin: Option<&str>, name: &str) -> bool {
    plugin.is_none() && glob_matches(host, name)
}

/// A level an alert was last notified at before a silence held it, saved in
/// the state file (`silence_held`): when nothing covers the alert any more
/// and its level differs, one notification goes out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    #[serde(flatten)]
    pub key: AlertKey,
    pub notified: Level,
}

/// A silence as asked for, checked; core gives it its id and creation time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSilence {
    pub host: String,
    pub plugin: Option<String>,
    pub metric_path: Option<String>,
    pub starts_at: f64,
    pub ends_at: f64,
    pub comment: String,
    pub by: String,
}

/// The JSON of a silence as the API shows it; with `now`, `active` too.
pub fn silence_json(s: &Silence, now: Option<f64>) -> Value {
    let mut value = json!({
        "id": s.id,
        "host": s.host,
        "plugin": s.plugin,
        "metric_path": s.metric_path,
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "comment": s.comment,
        "by": s.by,
        "created_at": s.created_at,
    });
    if let (Some(now), Some(map)) = (now, value.as_object_mut()) {
        map.insert("active".into(), json!(s.starts_at <= now && now < s.ends_at));
    }
    value
}

/// Checks a `POST /api/0/silences` body (docs/API.md): a JSON object with
/// `host`, `comment`, exactly one of `ends_at` and `duration`, optionally
/// `plugin`, `metric_path` (with a plugin only) and `starts_at` (default
/// `now`). The error names the field.
pub fn parse_new(body: &[u8], by: &str, now: f64) -> Result<NewSilence, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(map) = value else { return Err("the body must be a JSON object".into()) };
    const FIELDS: &[&str] = &["host", "plugin", "metric_path", "starts_at", "ends_at", "duration", "comment"];
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field {:?}; the fields are {}", truncate(unknown), FIELDS.join(", ")));
    }
    let host = pattern(&map, "host")?.ok_or("host is required: a host name or a pattern with * and ?")?;
    let plugin = pattern(&map, "plugin")?;
    let metric_path = pattern(&map, "metric_path")?;
    if metric_path.is_some() && plugin.is_none() {
        return Err("metric_path needs a plugin".into());
    }
    let starts_at = match map.get("starts_at") {
        None | Some(Value::Null) => now,
        Some(v) => time(v, "starts_at")?,
    };
    if starts_at > now + MAX_AHEAD {
        return Err("starts_at is more than a year ahead (Unix seconds, not milliseconds)".into());
    }
    let ends_at = match (map.get("ends_at").filter(|v| !v.is_null()), map.get("duration").filter(|v| !v.is_null())) {
        (Some(_), Some(_)) => return Err("give ends_at or duration, not both".into()),
        (None, None) => return Err("ends_at or duration is required".into()),
        (Some(v), None) => time(v, "ends_at")?,
        (None, Some(v)) => {
            let seconds = match v {
                Value::Number(n) => n.as_f64().filter(|s| s.is_finite()).ok_or("duration is not a number")?,
                Value::String(s) => parse_duration(s).map_err(|e| format!("duration: {e}"))?,
                _ => return Err("duration must be seconds or a string like 90m, 2h, 1d, 1h30m".into()),
            };
            if seconds <= 0.0 {
                return Err("duration must be more than 0".into());
            }
            starts_at + seconds
        }
    };
    if ends_at <= now {
        return Err("ends_at is in the past".into());
    }
    if ends_at <= starts_at {
        return Err("ends_at must be after starts_at".into());
    }
    if ends_at - starts_at > MAX_AHEAD {
        return Err("a silence lasts at most a year (Unix seconds, not milliseconds)".into());
    }
    let comment = match map.get("comment") {
        Some(Value::String(c)) if !c.trim().is_empty() => c.trim(),
        Some(Value::String(_)) | None | Some(Value::Null) => return Err("comment is required: say why".into()),
        Some(_) => return Err("comment must be a string".into()),
    };
    if comment.chars().count() > MAX_COMMENT {
        return Err(format!("comment is longer than {MAX_COMMENT} characters"));
    }
    Ok(NewSilence { host, plugin, metric_path, starts_at, ends_at, comment: comment.to_string(), by: by.to_string() })
}

/// A pattern field: absent or null is None; else a non-empty string of
/// printable characters without spaces. Host patterns are kept in lower case.
fn pattern(map: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    let text = match map.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err(format!("{field} must be a string")),
    };
    if text.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if text.chars().count() > MAX_PATTERN {
        return Err(format!("{field} is longer than {MAX_PATTERN} characters"));
    }
    // Host names have no spaces; a metric path is made of the plugin's own
    // JSON keys, which may (a Nagios check's name, an interface's).
    if text.chars().any(|c| c.is_control() || (field == "host" && c.is_whitespace())) {
        return Err(format!(
            "{field} has {}",
            if field == "host" { "spaces or control characters" } else { "control characters" }
        ));
    }
    Ok(Some(if field == "host" { text.to_ascii_lowercase() } else { text.clone() }))
}

fn time(value: &Value, field: &str) -> Result<f64, String> {
    value
        .as_f64()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| format!("{field} must be a time in Unix seconds"))
}

fn truncate(s: &str) -> &str {
    crate::wire::truncate_chars(s, 100)
}

/// `90`, `90s`, `90m`, `2h`, `1d`, `1w`, `1h30m`: seconds. A bare number is
/// seconds; units are s, m, h, d and w, each at most once, largest first.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let bad = || format!("`{}` is not a duration like 90m, 2h, 1d or 1h30m", truncate(text));
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds.is_finite().then_some(seconds).ok_or_else(bad);
    }
    const UNITS: [(char, f64); 5] = [('w', 604_800.0), ('d', 86400.0), ('h', 3600.0), ('m', 60.0), ('s', 1.0)];
    let (mut total, mut number, mut next_unit) = (0.0, String::new(), 0);
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let at = UNITS.iter().position(|(u, _)| *u == c.to_ascii_lowercase()).ok_or_else(bad)?;
        if at < next_unit || number.is_empty() {
            return Err(bad());
        }
        total += number.parse::<f64>().map_err(|_| bad())? * UNITS[at].1;
        number.clear();
        next_unit = at + 1;
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// `HH:MM` (or `HH:MM:SS`), 00:00 to 23:59:59: seconds after midnight.
pub fn parse_time_of_day(text: &str) -> Option<u32> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let n: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
    let (h, m, s) = (n[0], n[1], n.get(2).copied().unwrap_or(0));
    (h < 24 && m < 60 && s < 60).then_some(h * 3600 + m * 60 + s)
}

/// The day names `days:` takes, Monday first (index 0).
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// How a window's occurrence ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowEnd {
    /// At this local time (seconds after midnight): the same day when
    /// after the start, else the next day.
    At(u32),
    /// After this many seconds of real time.
    For(f64),
}

/// A recurring maintenance window of `maintenance:`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub name: String,
    /// Host names or patterns; any of them.
    pub hosts: Vec<String>,
    pub plugin: Option<String>,
    pub metric_path: Option<String>,
    /// Monday first.
    pub days: [bool; 7],
    /// Local time, seconds after midnight.
    pub start: u32,
    pub end: WindowEnd,
    pub comment: String,
}

impl Window {
    pub fn covers(&self, key: &AlertKey) -> bool {
        self.hosts.iter().any(|h| covers(h, self.plugin.as_deref(), self.metric_path.as_deref(), key))
    }

    pub fn covers_host(&self, name: &str) -> bool {
        self.hosts.iter().any(|h| covers_host(h, self.plugin.as_deref(), name))
    }

    /// The occurrence in force at `now`, or else the next one: `(start,
    /// end)` in Unix seconds; None for a window without days.
    pub fn occurrence(&self, now: f64, offset: &dyn Fn(i64) -> i64) -> Option<(f64, f64)> {
        let now_s = now.floor() as i64;
        let today = (now_s + offset(now_s)).div_euclid(86400);
        // Back far enough for the longest window still in force.
        for day in today - 8..=today + 8 {
            if !self.days[(day + 3).rem_euclid(7) as usize] {
                continue;
            }
            let start = local_to_utc(day * 86400 + i64::from(self.start), offset) as f64;
            let end = match self.end {
                WindowEnd::For(seconds) => start + seconds,
                WindowEnd::At(end) => {
                    let end_day = if end > self.start { day } else { day + 1 };
                    local_to_utc(end_day * 86400 + i64::from(end), offset) as f64
                }
            };
            // Days go forward, so the first not over is the earliest.
            if end > now && end > start {
                return Some((start, end));
            }
        }
        None
    }

    /// The window as `GET /api/0/silences` lists it, with its current or
    /// next occurrence.
    pub fn json(&self, occurrence: Option<(f64, f64)>, now: f64) -> Value {
        let days: Vec<&str> = DAYS.iter().zip(self.days).filter(|(_, on)| *on).map(|(d, _)| *d).collect();
        let clock = |s: u32| format!("{:02}:{:02}", s / 3600, s % 3600 / 60);
        let end = match self.end {
            WindowEnd::At(s) => json!(clock(s)),
            WindowEnd::For(seconds) => json!(seconds),
        };
        let (starts_at, ends_at) = occurrence.map_or((None, None), |(s, e)| (Some(s), Some(e)));
        json!({
            "id": format!("maintenance:{}", self.name),
            "name": self.name,
            "hosts": self.hosts,
            "plugin": self.plugin,
            "metric_path": self.metric_path,
            "days": days,
            "start": clock(self.start),
            "end": end,
            "comment": self.comment,
            "active": occurrence.is_some_and(|(s, e)| s <= now && now < e),
            "starts_at": starts_at,
            "ends_at": ends_at,
        })
    }
}

/// The first instant whose local time is `local` (seconds since the epoch
/// as if local time were UTC): in a spring-forward gap, the instant the
/// clock jumps over it; when it is shown twice, its first occurrence.
/// Assumes at most one change of offset within a day of it, as every zone has.
fn local_to_utc(local: i64, offset: &dyn Fn(i64) -> i64) -> i64 {
    let (before, after) = (offset(local - 86400), offset(local + 86400));
    let valid = [before, after].into_iter().map(|o| local - o).filter(|t| offset(*t) == local - t).min();
    if let Some(t) = valid {
        return t;
    }
    // A gap: local time jumps from below `local` to above it at some
    // instant between these two; find it.
    let (mut lo, mut hi) = ((local - after).min(local - before), (local - after).max(local - before));
    let at_lo = offset(lo);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset(mid) == at_lo {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Seconds east of UTC at `t` in hbd's local time zone (`TZ` or the
/// system's), from libc's `localtime_r`; 0 if it fails.
pub fn local_utc_offset(t: i64) -> i64 {
    // `as _`: time_t's type differs between libcs (see journal::local_datetime).
    let t = t as _;
    // SAFETY: localtime_r writes only into `tm`, which we own, and reads `t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff as i64
}

/// How many silences hold now and how many are still to come.
pub fn counts(silences: &[Silence], now: f64) -> (usize, usize) {
    let active = silences.iter().filter(|s| s.starts_at <= now && now < s.ends_at).count();
    let pending = silences.iter().filter(|s| s.starts_at > now).count();
    (active, pending)
}

/// What `GET /api/0/silences` answers: silences not ended, oldest start
/// first, and the windows with their current or next occurrences.
#[derive(Debug, Clone, Default)]
pub struct SilenceList {
    pub silences: Vec<Silence>,
    pub maintenance: Vec<(Window, Option<(f64, f64)>)>,
}

impl SilenceList {
    pub fn json(&self, now: f64) -> Value {
        let silences: Vec<Value> = self.silences.iter().map(|s| silence_json(s, Some(now))).collect();
        let windows: Vec<Value> = self.maintenance.iter().map(|(w, o)| w.json(*o, now)).collect();
        json!({"silences": silences, "maintenance": windows})
    }
}

/// Saved levels by alert, for the state file and back.
pub fn held_map(held: Vec<Held>) -> BTreeMap<AlertKey, Level> {
    held.into_iter().map(|h| (h.key, h.notified)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central European time as the EU has it, for 2026: +1 h, and +2 h
    /// from 29 March 01:00 UTC to 25 October 01:00 UTC.
    fn cet(t: i64) -> i64 {
        const SPRING: i64 = 1_774_746_000;
        const FALL: i64 = 1_792_890_000;
        if (SPRING..FALL).contains(&t) {
            7200
        } else {
            3600
        }
    }

    fn utc(_: i64) -> i64 {
        0
    }

    fn window(days: &[usize], start: &str, end: WindowEnd) -> Window {
        let mut on = [false; 7];
        for d in days {
            on[*d] = true;
        }
        Window {
            name: "w".into(),
            hosts: vec!["db*".into()],
            plugin: None,
            metric_path: None,
            days: on,
            start: parse_time_of_day(start).unwrap(),
            end,
            comment: "c".into(),
        }
    }

    const SUN: usize = 6;
    const MON: usize = 0;
    const WED: usize = 2;
    /// Monday 30 November 2026, 00:00 UTC.
    const MONDAY: f64 = 1_795_996_800.0;

    fn at(s: &str) -> WindowEnd {
        WindowEnd::At(parse_time_of_day(s).unwrap())
    }

    #[test]
    fn a_start_skipped_by_spring_forward_starts_when_the_clock_jumps() {
        // 29 March 2026: at 01:00 UTC, 02:00 CET becomes 03:00 CEST.
        let jump = 1_774_746_000.0;
        let w = window(&[SUN], "02:30", at("03:30"));
        assert_eq!(w.occurrence(jump - 3600.0, &cet), Some((jump, jump + 1800.0)), "03:30 CEST is 01:30 UTC");
        let w = window(&[SUN], "01:30", WindowEnd::For(3600.0));
        assert_eq!(w.occurrence(jump - 3600.0, &cet), Some((jump - 1800.0, jump + 1800.0)), "an hour of real time");
        // An end in the gap ends when the clock jumps past it.
        let w = window(&[SUN], "01:00", at("02:15"));
        assert_eq!(w.occurrence(jump - 7200.0, &cet), Some((jump - 3600.0, jump)));
    }

    #[test]
    fn a_time_shown_twice_at_fall_back_starts_at_its_first_occurrence() {
        // 25 October 2026: at 01:00 UTC, 03:00 CEST becomes 02:00 CET.
        let back = 1_792_890_000.0;
        let w = window(&[SUN], "02:30", WindowEnd::For(7200.0));
        assert_eq!(w.occurrence(back - 7200.0, &cet), Some((back - 1800.0, back + 5400.0)));
        // Until the first instant the clock shows 03:00: 03:00 CET, since
        // 03:00 CEST is the instant it goes back to 02:00.
        let w = window(&[SUN], "02:30", at("03:00"));
        assert_eq!(w.occurrence(back - 7200.0, &cet), Some((back - 1800.0, back + 3600.0)));
        // A whole night: 22:00 Saturday CEST to 06:00 Sunday CET is 9 hours.
        let w = window(&[5], "22:00", at("06:00"));
        let (start, end) = w.occurrence(back - 86400.0, &cet).unwrap();
        assert_eq!((start, end - start), (back - 5.0 * 3600.0, 9.0 * 3600.0));
    }

    #[test]
    fn windows_across_midnight_and_weekday_lists() {
        let w = window(&[MON], "23:00", at("01:00"));
        let monday_23 = MONDAY + 23.0 * 3600.0;
        assert_eq!(w.occurrence(MONDAY + 12.0 * 3600.0, &utc), Some((monday_23, monday_23 + 7200.0)));
        // Tuesday 00:30: Monday's occurrence still holds.
        assert_eq!(w.occurrence(monday_23 + 5400.0, &utc), Some((monday_23, monday_23 + 7200.0)));
        // Tuesday 01:00: over; the next is a week later.
        assert_eq!(
            w.occurrence(monday_23 + 7200.0, &utc),
            Some((monday_23 + 7.0 * 86400.0, monday_23 + 7.0 * 86400.0 + 7200.0))
        );
        // Monday and Wednesday, 02:00–04:00: on Tuesday noon, the next is Wednesday's.
        let w = window(&[MON, WED], "02:00", at("04:00"));
        let wednesday = MONDAY + 2.0 * 86400.0;
        assert_eq!(w.occurrence(MONDAY + 36.0 * 3600.0, &utc), Some((wednesday + 7200.0, wednesday + 4.0 * 3600.0)));
        // In local time: 02:00 CET on Monday is 01:00 UTC.
        assert_eq!(w.occurrence(MONDAY, &cet), Some((MONDAY + 3600.0, MONDAY + 3.0 * 3600.0)));
        let daily = window(&[0, 1, 2, 3, 4, 5, 6], "00:00", WindowEnd::For(60.0));
        assert_eq!(daily.occurrence(MONDAY + 86400.0 * 3.0 + 30.0, &utc).map(|o| o.0), Some(MONDAY + 86400.0 * 3.0));
        assert_eq!(window(&[], "00:00", WindowEnd::For(60.0)).occurrence(MONDAY, &utc), None);
    }

    #[test]
    fn a_window_in_force_at_start_up_is_found() {
        let w = window(&[MON], "00:00", at("06:00"));
        let (start, end) = w.occurrence(MONDAY + 3.0 * 3600.0, &utc).unwrap();
        assert!(start <= MONDAY + 3.0 * 3600.0 && MONDAY + 3.0 * 3600.0 < end);
        assert!(w.json(Some((start, end)), MONDAY + 3.0 * 3600.0)["active"].as_bool().unwrap());
    }

    #[test]
    fn matchers() {
        let key = |h: &str, p: &str, m: &str| AlertKey { host: h.into(), plugin: p.into(), metric_path: m.into() };
        assert!(covers("db*", None, None, &key("db1", "heartbeat", "silent_for_seconds")));
        assert!(covers("DB?", None, None, &key("db1", "disk_monitor", "x")));
        assert!(!covers("db*", None, None, &key("web1", "heartbeat", "")));
        assert!(covers("db1", Some("disk_*"), None, &key("db1", "disk_monitor", "partitions./.percent")));
        assert!(!covers("db1", Some("disk_monitor"), None, &key("db1", "heartbeat", "silent_for_seconds")));
        assert!(covers(
            "*",
            Some("disk_monitor"),
            Some("partitions.*.percent"),
            &key("a", "disk_monitor", "partitions./.percent")
        ));
        assert!(!covers(
            "*",
            Some("disk_monitor"),
            Some("partitions./.free"),
            &key("a", "disk_monitor", "partitions./.percent")
        ));
        assert!(covers_host("db*", None, "db2") && !covers_host("db*", Some("cpu"), "db2"));
        let w = Window { hosts: vec!["web1".into(), "db*".into()], ..window(&[MON], "00:00", WindowEnd::For(1.0)) };
        assert!(w.covers_host("web1") && w.covers_host("db7") && !w.covers_host("mail"));
    }

    #[test]
    fn durations_and_times_of_day() {
        for (text, seconds) in [("90", 90.0), ("90s", 90.0), ("90m", 5400.0), ("2h", 7200.0), ("1d", 86400.0)] {
            assert_eq!(parse_duration(text), Ok(seconds), "{text}");
        }
        assert_eq!(parse_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_duration("1w2d"), Ok(9.0 * 86400.0));
        assert_eq!(parse_duration("1.5h"), Ok(5400.0));
        for bad in ["", "h", "2x", "30m1h", "1h1h", "2 h", "1h30", "-", "inf", "NaN"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_time_of_day("02:00"), Some(7200));
        assert_eq!(parse_time_of_day("23:59:59"), Some(86399));
        for bad in ["24:00", "2:00", "02:60", "0200", "02:00:00:00", "aa:bb", ""] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn bodies_are_checked_field_by_field() {
        let now = 1000.0;
        let parse = |body: &str| parse_new(body.as_bytes(), "alice", now);
        let s = parse(r#"{"host":"DB*","duration":"2h","comment":" kernel update "}"#).unwrap();
        assert_eq!(
            (s.host.as_str(), s.starts_at, s.ends_at, s.comment.as_str()),
            ("db*", now, now + 7200.0, "kernel update")
        );
        let s = parse(r#"{"host":"db1","plugin":"disk_monitor","metric_path":"partitions./.percent","starts_at":2000,"ends_at":3000,"comment":"<b>x</b>"}"#).unwrap();
        assert_eq!((s.starts_at, s.ends_at, s.comment.as_str(), s.by.as_str()), (2000.0, 3000.0, "<b>x</b>", "alice"));
        assert_eq!(parse(r#"{"host":"a","duration":60,"comment":"c"}"#).unwrap().ends_at, 1060.0);
        for (body, names) in [
            ("not json", "JSON"),
            ("[1]", "object"),
            (r#"{"duration":"2h","comment":"c"}"#, "host"),
            (r#"{"host":"","duration":"2h","comment":"c"}"#, "host"),
            (r#"{"host":"a b","duration":"2h","comment":"c"}"#, "host"),
            (r#"{"host":7,"duration":"2h","comment":"c"}"#, "host"),
            (r#"{"host":"a","duration":"2h"}"#, "comment"),
            (r#"{"host":"a","duration":"2h","comment":"  "}"#, "comment"),
            (r#"{"host":"a","duration":"2h","comment":5}"#, "comment"),
            (r#"{"host":"a","comment":"c"}"#, "duration"),
            (r#"{"host":"a","duration":"2h","ends_at":5000,"comment":"c"}"#, "both"),
            (r#"{"host":"a","duration":"2 hours","comment":"c"}"#, "duration"),
            (r#"{"host":"a","duration":0,"comment":"c"}"#, "duration"),
            (r#"{"host":"a","duration":[],"comment":"c"}"#, "duration"),
            (r#"{"host":"a","ends_at":900,"comment":"c"}"#, "past"),
            (r#"{"host":"a","ends_at":"soon","comment":"c"}"#, "ends_at"),
            (r#"{"host":"a","starts_at":3000,"ends_at":2000,"comment":"c"}"#, "after starts_at"),
            (r#"{"host":"a","ends_at":1796000000000,"comment":"c"}"#, "year"),
            (r#"{"host":"a","metric_path":"x","duration":60,"comment":"c"}"#, "metric_path needs a plugin"),
            (r#"{"host":"a","duration":60,"comment":"c","by":"mallory"}"#, "unknown field \"by\""),
        ] {
            let error = parse(body).unwrap_err();
            assert!(error.contains(names), "{body}: {error}");
        }
        let long = format!(r#"{{"host":"a","duration":60,"comment":"{}"}}"#, "x".repeat(MAX_COMMENT + 1));
        assert!(parse(&long).unwrap_err().contains("comment"));
    }
}
