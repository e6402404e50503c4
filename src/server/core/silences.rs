//! The silences core keeps, the maintenance windows in force, and the
//! alerts whose notifications they held.
//!
//! Pure: time (and the local time zone's offset) in, events out. Core asks
//! [`Silences::covering`] before it hands an alert change to the notifier;
//! a change it holds is remembered with the level last notified
//! ([`Silences::hold`]), and once nothing covers that alert any more core
//! sends one notification if its level is not that one any more
//! ([`Silences::uncovered`]). Both the silences and those levels are in the
//! state file, so a restart in the middle of a silence keeps holding.

use std::collections::BTreeMap;

use crate::server::model::{AlertKey, Event, Level, Silence, Silenced};
use crate::server::silence::{self, Held, NewSilence, SilenceList, Window};

/// What `by` a maintenance window's `silenced` names.
const MAINTENANCE: &str = "maintenance";

#[derive(Debug, Default)]
pub struct Silences {
    /// Not ended yet (holding or to come), by start.
    silences: Vec<Silence>,
    windows: Vec<Window>,
    /// Each window's current or next occurrence, as of the last tick.
    occurrences: Vec<Option<(f64, f64)>>,
    /// Whether each window was in force at the last tick (for its events).
    in_force: Vec<bool>,
    /// Alerts whose changes were held, with the level last notified.
    held: BTreeMap<AlertKey, Level>,
    /// The last id given, in milliseconds since the epoch (ids grow).
    last_id: u64,
}

impl Silences {
    pub fn new(saved: Vec<Silence>, held: Vec<Held>, windows: Vec<Window>) -> Silences {
        let last_id = saved.iter().filter_map(|s| u64::from_str_radix(&s.id, 16).ok()).max().unwrap_or(0);
        let n = windows.len();
        let mut silences = Silences {
            silences: saved,
            occurrences: vec![None; n],
            in_force: vec![false; n],
            windows,
            held: silence::held_map(held),
            last_id,
        };
        silences.silences.sort_by(|a, b| a.starts_at.total_cmp(&b.starts_at));
        silences
    }

    /// Adds a silence (checked by `silence::parse_new`), giving it an id.
    pub fn add(&mut self, new: NewSilence, now: f64) -> Silence {
        // Hex milliseconds: unique, growing, and unlike any earlier id
        // after a restart.
        self.last_id = ((now * 1000.0) as u64).max(self.last_id.saturating_add(1));
        let silence = Silence {
            id: format!("{:x}", self.last_id),
            host: new.host,
            plugin: new.plugin,
            metric_path: new.metric_path,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            comment: new.comment,
            by: new.by,
            created_at: now,
        };
        let at = self.silences.partition_point(|s| s.starts_at <= silence.starts_at);
        self.silences.insert(at, silence.clone());
        silence
    }

    /// Ends a silence early (or one still to come): it is gone.
    pub fn end(&mut self, id: &str) -> Option<Silence> {
        let at = self.silences.iter().position(|s| s.id == id)?;
        Some(self.silences.remove(at))
    }

    /// Expires silences that ran out and follows the windows: the events
    /// to journal (`silence_ended` by `expired`, `maintenance_started`,
    /// `maintenance_ended`).
    pub fn tick(&mut self, now: f64, offset: &dyn Fn(i64) -> i64) -> Vec<Event> {
        let mut events = Vec::new();
        let (ended, kept): (Vec<Silence>, Vec<Silence>) =
            std::mem::take(&mut self.silences).into_iter().partition(|s| s.ends_at <= now);
        self.silences = kept;
        events.extend(ended.into_iter().map(|silence| Event::SilenceEnded { silence, by: "expired".into() }));
        for (i, window) in self.windows.iter().enumerate() {
            let occurrence = window.occurrence(now, offset);
            let active = occurrence.filter(|(start, end)| *start <= now && now < *end);
            match (self.in_force[i], active) {
                (false, Some((starts_at, ends_at))) => events.push(Event::MaintenanceStarted {
                    name: window.name.clone(),
                    starts_at,
                    ends_at,
                    comment: window.comment.clone(),
                }),
                (true, None) => events.push(Event::MaintenanceEnded { name: window.name.clone() }),
                _ => {}
            }
            self.in_force[i] = active.is_some();
            self.occurrences[i] = occurrence;
        }
        events
    }

    /// What covers the alert `key` now, the one lasting longest when
    /// several do: a silence that holds, or a window in force.
    pub fn covering(&self, key: &AlertKey, now: f64) -> Option<Silenced> {
        self.find(
            now,
            |s| silence::covers(&s.host, s.plugin.as_deref(), s.metric_path.as_deref(), key),
            |w| w.covers(key),
        )
    }

    /// What covers the whole host `name` now (a silence or window without a plugin).
    pub fn covering_host(&self, name: &str, now: f64) -> Option<Silenced> {
        self.find(now, |s| silence::covers_host(&s.host, s.plugin.as_deref(), name), |w| w.covers_host(name))
    }

    fn find(
        &self,
        now: f64,
        silence_covers: impl Fn(&Silence) -> bool,
        window_covers: impl Fn(&Window) -> bool,
    ) -> Option<Silenced> {
        let silences = self
            .silences
            .iter()
            .filter(|s| s.starts_at <= now && now < s.ends_at && silence_covers(s))
            .map(|s| Silenced { id: s.id.clone(), until: s.ends_at, comment: s.comment.clone(), by: s.by.clone() });
        let windows = self.windows.iter().zip(&self.occurrences).zip(&self.in_force).filter_map(|((w, o), on)| {
            let (_, end) = o.filter(|_| *on && window_covers(w))?;
            Some(Silenced {
                id: format!("maintenance:{}", w.name),
                until: end,
                comment: w.comment.clone(),
                by: MAINTENANCE.into(),
            })
        });
        silences.chain(windows).max_by(|a, b| a.until.total_cmp(&b.until))
    }

    /// A change of `key` was held, the alert having been notified at
    /// `from` (unless an earlier hold remembers an older level).
    pub fn hold(&mut self, key: &AlertKey, from: Level) {
        self.held.entry(key.clone()).or_insert(from);
    }

    /// A change of `key` was notified: no held level to make up for.
    pub fn sent(&mut self, key: &AlertKey) {
        self.held.remove(key);
    }

    /// Held alerts nothing covers any more, with their last notified level.
    pub fn uncovered(&self, now: f64) -> Vec<(AlertKey, Level)> {
        self.held
            .iter()
            .filter(|(key, _)| self.covering(key, now).is_none())
            .map(|(key, level)| (key.clone(), *level))
            .collect()
    }

    /// A forgotten host's alerts are gone: nothing of them to make up for.
    pub fn forget_host(&mut self, host: &str) {
        self.held.retain(|key, _| &*key.host != host);
    }

    /// How many silences hold now, how many are to come.
    pub fn counts(&self, now: f64) -> (usize, usize) {
        silence::counts(&self.silences, now)
    }

    pub fn list(&self) -> SilenceList {
        SilenceList {
            silences: self.silences.clone(),
            maintenance: self.windows.iter().cloned().zip(self.occurrences.iter().copied()).collect(),
        }
    }

    /// For the state file: the silences and the held levels.
    pub fn snapshot(&self) -> (Vec<Silence>, Vec<Held>) {
        let held = self.held.iter().map(|(key, level)| Held { key: key.clone(), notified: *level }).collect();
        (self.silences.clone(), held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::silence::{WindowEnd, DAYS};

    fn new(host: &str, plugin: Option<&str>, from: f64, to: f64) -> NewSilence {
        NewSilence {
            host: host.into(),
            plugin: plugin.map(str::to_string),
            metric_path: None,
            starts_at: from,
            ends_at: to,
            comment: "why".into(),
            by: "alice".into(),
        }
    }

    fn key(host: &str, plugin: &str) -> AlertKey {
        AlertKey { host: host.into(), plugin: plugin.into(), metric_path: "m".into() }
    }

    #[test]
    fn silences_cover_while_they_hold_and_expire_by_themselves() {
        let mut s = Silences::default();
        let a = s.add(new("db*", None, 1000.0, 2000.0), 1000.0);
        let b = s.add(new("db1", Some("disk_monitor"), 1500.0, 3000.0), 1000.0);
        assert_ne!(a.id, b.id);
        assert_eq!(s.counts(1000.0), (1, 1));
        assert_eq!(s.covering(&key("db1", "heartbeat"), 1000.0).map(|c| c.id), Some(a.id.clone()));
        assert_eq!(s.covering_host("db1", 1000.0).map(|c| c.until), Some(2000.0));
        assert!(s.covering(&key("web1", "heartbeat"), 1000.0).is_none());
        // Both cover the disk alert at 1600: the longer one is shown.
        assert_eq!(s.covering(&key("db1", "disk_monitor"), 1600.0).map(|c| c.until), Some(3000.0));
        assert_eq!(s.covering_host("db1", 1600.0).map(|c| c.until), Some(2000.0), "b names a plugin");
        let events = s.tick(2000.0, &|_| 0);
        assert!(matches!(&events[..], [Event::SilenceEnded { silence, by }] if silence.id == a.id && by == "expired"));
        assert!(s.covering(&key("db1", "heartbeat"), 2000.0).is_none());
        assert_eq!(s.end(&b.id).map(|x| x.id), Some(b.id.clone()));
        assert!(s.end(&b.id).is_none());
        assert!(s.list().silences.is_empty());
    }

    #[test]
    fn held_levels_wait_until_nothing_covers_them() {
        let mut s = Silences::default();
        s.add(new("db1", None, 0.0, 100.0), 0.0);
        s.hold(&key("db1", "heartbeat"), Level::Ok);
        s.hold(&key("db1", "heartbeat"), Level::Critical);
        assert!(s.uncovered(50.0).is_empty());
        assert_eq!(s.uncovered(100.0), vec![(key("db1", "heartbeat"), Level::Ok)], "the first level held is kept");
        let (silences, held) = s.snapshot();
        let restored = Silences::new(silences, held, Vec::new());
        assert!(restored.uncovered(50.0).is_empty(), "a restart keeps holding");
        assert_eq!(restored.uncovered(100.0).len(), 1);
        s.sent(&key("db1", "heartbeat"));
        assert!(s.uncovered(100.0).is_empty());
        // Ids keep growing after a restart, even at the same millisecond.
        let mut again = Silences::new(restored.snapshot().0, Vec::new(), Vec::new());
        let id = again.add(new("x", None, 0.0, 1.0), 0.0).id;
        assert!(u64::from_str_radix(&id, 16).unwrap() > 0);
    }

    #[test]
    fn windows_start_and_end_with_events_and_cover_while_in_force() {
        let window = Window {
            name: "nightly".into(),
            hosts: vec!["db*".into()],
            plugin: None,
            metric_path: None,
            days: [true; 7],
            start: 3600,
            end: WindowEnd::For(1800.0),
            comment: "backups".into(),
        };
        assert_eq!(DAYS.len(), 7);
        let mut s = Silences::new(Vec::new(), Vec::new(), vec![window]);
        let day = 1_795_996_800.0;
        // In force at start-up: started at the first tick.
        let events = s.tick(day + 3700.0, &|_| 0);
        assert!(
            matches!(&events[..], [Event::MaintenanceStarted { name, ends_at, .. }] if name == "nightly" && *ends_at == day + 5400.0)
        );
        let covered = s.covering(&key("db3", "cpu"), day + 3700.0).unwrap();
        assert_eq!((covered.id.as_str(), covered.by.as_str()), ("maintenance:nightly", "maintenance"));
        assert!(s.tick(day + 3800.0, &|_| 0).is_empty());
        assert!(matches!(&s.tick(day + 5400.0, &|_| 0)[..], [Event::MaintenanceEnded { name }] if name == "nightly"));
        assert!(s.covering(&key("db3", "cpu"), day + 5400.0).is_none());
        assert_eq!(s.list().maintenance[0].1, Some((day + 86400.0 + 3600.0, day + 86400.0 + 5400.0)));
    }
}
