//! Core's side of dynamic DNS: which records should change, what the DNS
//! worker confirmed, and the updates it could not take yet.
//!
//! A record `name.domain` is pending while the host's `dns` map (saved with
//! the state) does not hold the host's current address for that domain; so
//! after a restart exactly the pending and failed updates are asked for
//! again, and confirmed ones are not. Pure bookkeeping, no I/O: the core only
//! `try_send`s to the worker, and a host whose update did not fit is kept in
//! `unsent` and offered again on every tick.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crossbeam_channel::Sender;

use super::table::HostTable;
use crate::server::model::{DnsOutcome, DnsStats, Host};
use crate::server::msg::DnsMsg;

#[derive(Debug)]
pub struct DnsWanted {
    /// `dyndomains`; empty when DNS updates are off.
    domains: Vec<String>,
    /// Hosts whose update the worker's inbox had no room for.
    unsent: BTreeSet<String>,
    updates: u64,
    failures: u64,
}

impl DnsWanted {
    pub fn new(domains: Vec<String>) -> DnsWanted {
        DnsWanted { domains, unsent: BTreeSet::new(), updates: 0, failures: 0 }
    }

    /// At start: forgets domains no longer in `dyndomains` and asks for
    /// every record that is not confirmed.
    pub fn start(&mut self, table: &mut HostTable, to_dns: &Option<Sender<DnsMsg>>) {
        if self.domains.is_empty() || to_dns.is_none() {
            return;
        }
        let mut names: Vec<String> = table.iter().map(|h| h.name.clone()).collect();
        names.sort_unstable();
        for name in &names {
            if let Some(host) = table.get_mut(name) {
                host.dns.retain(|domain, _| self.domains.contains(domain));
            }
        }
        for name in &names {
            self.want(table, name, to_dns);
        }
    }

    /// The host is new or has moved: asks the worker for its pending records.
    pub fn want(&mut self, table: &HostTable, name: &str, to_dns: &Option<Sender<DnsMsg>>) {
        let (Some(to_dns), Some(host)) = (to_dns, table.host(name)) else { return };
        let domains: Vec<String> = self.missing(host).cloned().collect();
        if domains.is_empty() {
            self.unsent.remove(name);
            return;
        }
        match to_dns.try_send(DnsMsg::Update { name: name.to_string(), address: host.address, domains }) {
            Ok(()) => {
                self.unsent.remove(name);
            }
            // Full, or the worker is gone (then the parent is shutting down):
            // keep it; the state file has it pending either way.
            Err(_) => {
                self.unsent.insert(name.to_string());
            }
        }
    }

    /// Offers the worker what it had no room for, until it is full again.
    pub fn retry_unsent(&mut self, table: &HostTable, to_dns: &Option<Sender<DnsMsg>>) {
        let mut names = std::mem::take(&mut self.unsent).into_iter();
        while let Some(name) = names.next() {
            self.want(table, &name, to_dns);
            if self.unsent.contains(&name) {
                self.unsent.extend(names);
                break;
            }
        }
    }

    /// Records what the worker reports; an update is confirmed in the host.
    pub fn result(&mut self, table: &mut HostTable, name: &str, domain: &str, address: IpAddr, outcome: &DnsOutcome) {
        self.count(outcome);
        if let (DnsOutcome::Updated, Some(host)) = (outcome, table.get_mut(name)) {
            host.dns.insert(domain.to_string(), address);
        }
    }

    /// Counts an nsupdate's outcome (an update or a removal).
    pub fn count(&mut self, outcome: &DnsOutcome) {
        match outcome {
            DnsOutcome::Updated => self.updates += 1,
            DnsOutcome::Failed { .. } => self.failures += 1,
        }
    }

    /// Asks the worker to remove a forgotten host's records in every
    /// domain; false when it had no room (the records then stay).
    pub fn remove(&mut self, name: &str, to_dns: &Option<Sender<DnsMsg>>) -> bool {
        self.unsent.remove(name);
        let Some(to_dns) = to_dns.as_ref().filter(|_| !self.domains.is_empty()) else { return false };
        to_dns.try_send(DnsMsg::Remove { name: name.to_string(), domains: self.domains.clone() }).is_ok()
    }

    pub fn stats(&self, table: &HostTable) -> DnsStats {
        let pending = table.iter().map(|host| self.missing(host).count() as u64).sum();
        DnsStats { updates: self.updates, failures: self.failures, pending }
    }

    /// The domains whose record does not hold the host's address.
    fn missing<'a>(&'a self, host: &'a Host) -> impl Iterator<Item = &'a String> + 'a {
        self.domains.iter().filter(move |domain| host.dns.get(*domain) != Some(&host.address))
    }
}

#[cfg(test)]
mod tests {
    use crossbeam_channel::{bounded, Receiver};

    use super::super::tests::settings;
    use super::*;
    use crate::server::model::Heartbeat;

    fn table() -> HostTable {
        let mut t = HostTable::new(Vec::new(), &settings(Vec::new()), 1000.0);
        for (name, ip) in [("a", "10.0.0.1"), ("b", "2001:db8::2")] {
            t.heartbeat(Heartbeat::for_test(name, ip, 1000.0), &mut Vec::new(), &mut Vec::new());
        }
        t
    }

    fn next(rx: &Receiver<DnsMsg>) -> (String, IpAddr, Vec<String>) {
        match rx.try_recv() {
            Ok(DnsMsg::Update { name, address, domains }) => (name, address, domains),
            Ok(other) => panic!("expected an update, not {other:?}"),
            Err(e) => panic!("expected an update: {e}"),
        }
    }

    #[test]
    fn only_unconfirmed_records_are_asked_for_and_a_full_inbox_loses_nothing() {
        let mut t = table();
        let mut dns = DnsWanted::new(vec!["x.test".into(), "y.test".into()]);
        let (tx, rx) = bounded(1);
        let to_dns = Some(tx);
        // "a" is confirmed in x.test (as if from the state file), and "gone.test" is no longer configured.
        let a = t.get_mut("a").unwrap();
        a.dns.insert("x.test".into(), a.address);
        a.dns.insert("gone.test".into(), a.address);
        dns.start(&mut t, &to_dns);
        assert_eq!(next(&rx), ("a".into(), "10.0.0.1".parse().unwrap(), vec!["y.test".into()]));
        assert!(!t.host("a").unwrap().dns.contains_key("gone.test"));
        assert_eq!(dns.stats(&t).pending, 3, "a in y.test, b in both");

        // "b" did not fit; the next tick offers it again.
        assert!(rx.try_recv().is_err());
        dns.retry_unsent(&t, &to_dns);
        assert_eq!(next(&rx).0, "b");

        let b: IpAddr = "2001:db8::2".parse().unwrap();
        dns.result(&mut t, "b", "x.test", b, &DnsOutcome::Updated);
        dns.result(&mut t, "b", "y.test", b, &DnsOutcome::Failed { error: "refused".into(), retry_in: Some(5.0) });
        assert_eq!(dns.stats(&t), DnsStats { updates: 1, failures: 1, pending: 2 });
        dns.want(&t, "b", &to_dns);
        assert_eq!(next(&rx).2, ["y.test"], "only what is not confirmed");
    }

    #[test]
    fn off_without_domains_or_worker() {
        let mut t = table();
        let (tx, rx) = bounded(8);
        DnsWanted::new(Vec::new()).start(&mut t, &Some(tx));
        assert!(rx.try_recv().is_err());
        let mut dns = DnsWanted::new(vec!["x.test".into()]);
        dns.start(&mut t, &None);
        dns.want(&t, "a", &None);
        assert!(dns.unsent.is_empty());
    }
}
