//! The dns thread: keeps `NAME.DOMAIN` pointing at each host's address for
//! every domain of `dyndomains`, by running `nsupdate_bin`. It is the only
//! owner of nsupdate processes.
//!
//! Receives [`DnsMsg`]s from `core` (a host's address and the domains whose
//! record does not hold it yet) and sends one [`CoreMsg::DnsResult`] back
//! for every nsupdate that ended, so core records what DNS holds (and saves
//! it with the state) and journals a `dns_update` line.
//!
//! Invariants:
//! - Per record (host, domain) at most one nsupdate runs and at most one
//!   update waits: a newer address replaces the waiting one (only the newest
//!   matters), and one that is already being set is not queued again.
//! - Up to [`MAX_RUNNING`] nsupdates run at once, each in its own process
//!   group, killed with its group at `dns_timeout`; the loop never waits for
//!   one, so a hung nsupdate delays neither other hosts nor `core`.
//! - A failed update is retried with exponential backoff (5 s doubling to
//!   10 min) until it succeeds or a newer address replaces it.
//! - nsupdate's script is built only from valid host names, validated
//!   domains and parsed addresses ([`script`]): nothing a client sends can
//!   add a command to it.
//! - When the inbox disconnects (core ended), every nsupdate still running is
//!   killed and the thread ends at once. What was not confirmed is pending in
//!   core's state and is sent again after a restart.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::{fs, io};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{debug, info, warn};

use crate::process::{self, Finished, Running};
use crate::server::model::DnsOutcome;
use crate::server::msg::{CoreMsg, DnsMsg};
use crate::wire::{is_valid_host_name, truncate_chars};

/// nsupdates running at the same time: enough that a few hung ones leave
/// room for the rest; each costs a process and two small reader threads.
pub const MAX_RUNNING: usize = 8;
/// How often running nsupdates are checked for their end.
const POLL: Duration = Duration::from_millis(20);
const BACKOFF_FIRST: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(600);
/// nsupdate's error text kept for the log and the journal.
const ERROR_CHARS: usize = 300;

/// The dns thread's section of the configuration, made by `Config::check`.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsSettings {
    pub nsupdate_bin: PathBuf,
    /// `dyndomains`: valid DNS names, lower case, without a trailing dot.
    pub domains: Vec<String>,
    /// `dns_server` and `dns_port`: where updates go; None lets nsupdate
    /// find the zone's primary server.
    pub server: Option<(String, u16)>,
    /// `dns_key_file`, given to nsupdate as `-k` (TSIG).
    pub key_file: Option<PathBuf>,
    pub ttl: u32,
    pub timeout: Duration,
}

/// Starts the dns thread; it ends when `inbox` disconnects.
pub fn spawn(settings: DnsSettings, inbox: Receiver<DnsMsg>, to_core: Sender<CoreMsg>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("dns".into()).spawn(move || run(settings, inbox, to_core))
}

/// True for a file someone may execute (`nsupdate_bin` is checked at start).
pub fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// nsupdate's script for one record: replace the A (IPv4) or AAAA (IPv6)
/// records of `name.domain` with `address`, then send. The other family's
/// record is left alone, so a dual-stack host may keep both.
///
/// Every word is checked here again, although the wire decoder and
/// `Config::check` already did: a name or domain with anything but letters,
/// digits, hyphens and dots (a newline, a space, a semicolon) is refused, so
/// no text can become a command of its own.
pub fn script(settings: &DnsSettings, name: &str, domain: &str, address: IpAddr) -> Result<String, String> {
    let (mut script, fqdn) = script_start(settings, name, domain)?;
    let record = if address.is_ipv4() { "A" } else { "AAAA" };
    let _ = writeln!(script, "update delete {fqdn}. {record}");
    let _ = writeln!(script, "update add {fqdn}. {} {record} {address}", settings.ttl);
    script.push_str("send\n");
    Ok(script)
}

/// nsupdate's script that removes the A and AAAA records of `name.domain`
/// (its host was forgotten), checked as [`script`]'s.
pub fn removal_script(settings: &DnsSettings, name: &str, domain: &str) -> Result<String, String> {
    let (mut script, fqdn) = script_start(settings, name, domain)?;
    let _ = writeln!(script, "update delete {fqdn}. A");
    let _ = writeln!(script, "update delete {fqdn}. AAAA");
    script.push_str("send\n");
    Ok(script)
}

/// The checked name and the script's `server` line, if one is configured.
fn script_start(settings: &DnsSettings, name: &str, domain: &str) -> Result<(String, String), String> {
    let fqdn = format!("{name}.{domain}");
    if !is_valid_host_name(name) || !is_valid_host_name(domain) || !is_valid_host_name(&fqdn) {
        return Err(format!("`{}` is not a valid DNS name", truncate_chars(&fqdn, 300).escape_debug()));
    }
    let mut script = String::with_capacity(256);
    if let Some((server, port)) = &settings.server {
        if server.parse::<IpAddr>().is_err() && !is_valid_host_name(server) {
            return Err(format!("dns_server `{}` is not a valid server", server.escape_debug()));
        }
        let _ = writeln!(script, "server {server} {port}");
    }
    Ok((script, fqdn))
}

fn run(settings: DnsSettings, inbox: Receiver<DnsMsg>, to_core: Sender<CoreMsg>) {
    info!("dns: updating {} with {}", settings.domains.join(", "), settings.nsupdate_bin.display());
    let mut worker = Worker { settings, queue: Queue::default(), running: Vec::new(), to_core };
    loop {
        let now = Instant::now();
        worker.reap(now);
        worker.start_due(now);
        // Poll while nsupdates run; otherwise sleep until the next retry or message.
        let wait = if worker.running.is_empty() {
            worker.queue.next_time().map_or(Duration::from_secs(3600), |t| t.saturating_duration_since(now))
        } else {
            POLL
        };
        match inbox.recv_timeout(wait) {
            Ok(msg) => worker.handle(msg, Instant::now()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let killed = worker.running.len();
    // Dropping a `Running` kills its process group and reaps it.
    worker.running.clear();
    info!("dns: stopped ({killed} nsupdate killed, {} updates not sent)", worker.queue.slots.len());
}

/// The record an update is for: host name and domain.
type Record = (String, String);

/// What a record is to hold: an address, or nothing (its host was forgotten).
type Wanted = Option<IpAddr>;

struct Job {
    record: Record,
    address: Wanted,
    attempt: u32,
    child: Running,
}

struct Worker {
    settings: DnsSettings,
    queue: Queue<Wanted>,
    running: Vec<Job>,
    to_core: Sender<CoreMsg>,
}

impl Worker {
    fn handle(&mut self, msg: DnsMsg, now: Instant) {
        match msg {
            DnsMsg::Update { name, address, domains } => self.handle_update(name, Some(address), domains, now),
            DnsMsg::Remove { name, domains } => self.handle_update(name, None, domains, now),
        }
    }

    fn handle_update(&mut self, name: String, address: Wanted, domains: Vec<String>, now: Instant) {
        for domain in domains {
            self.queue.update((name.clone(), domain), address, now);
        }
    }

    /// Starts waiting updates that are due, as long as there is room.
    fn start_due(&mut self, now: Instant) {
        while self.running.len() < MAX_RUNNING {
            let Some((record, address, attempt)) = self.queue.next_due(now) else { break };
            let script = match address {
                Some(address) => script(&self.settings, &record.0, &record.1, address),
                None => removal_script(&self.settings, &record.0, &record.1),
            };
            let started = script.and_then(|script| {
                let mut args: Vec<&std::ffi::OsStr> = Vec::new();
                if let Some(key_file) = &self.settings.key_file {
                    args.extend(["-k".as_ref(), key_file.as_os_str()]);
                }
                process::spawn(&self.settings.nsupdate_bin, &args, Some(script.as_bytes()), self.settings.timeout)
            });
            match started {
                Ok(child) => self.running.push(Job { record, address, attempt, child }),
                Err(error) => self.report(record, address, attempt, Err(error), now),
            }
        }
    }

    /// Takes every nsupdate that has ended (or was killed at its deadline).
    fn reap(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.running.len() {
            match self.running[i].child.poll() {
                Some(finished) => {
                    let job = self.running.swap_remove(i);
                    let result = outcome(&finished, self.settings.timeout);
                    self.report(job.record, job.address, job.attempt, result, now);
                }
                None => i += 1,
            }
        }
    }

    /// Logs the end of one update, schedules its retry and tells core.
    fn report(&mut self, record: Record, address: Wanted, attempt: u32, result: Result<(), String>, now: Instant) {
        let (name, domain) = &record;
        let what = address.map_or_else(|| "removal of its records".to_string(), |a| format!("update to {a}"));
        let outcome = match result {
            Ok(()) => {
                self.queue.finished(&record, true, now);
                // core logs the event at info; this only adds the attempt.
                debug!("dns: {name}.{domain}: {what} done (attempt {attempt})");
                DnsOutcome::Updated
            }
            Err(error) => {
                let retry_in = self.queue.finished(&record, false, now);
                let then = match retry_in {
                    Some(delay) => format!("retrying in {} s", delay.as_secs()),
                    None => "a newer address replaces it".into(),
                };
                warn!("dns: host {name}, domain {domain}: {what} failed (attempt {attempt}): {error}; {then}");
                DnsOutcome::Failed { error, retry_in: retry_in.map(|d| d.as_secs_f64()) }
            }
        };
        let (name, domain) = record;
        let result = match address {
            Some(address) => CoreMsg::DnsResult { name, domain, address, outcome },
            None => CoreMsg::DnsRemoved { name, domain, outcome },
        };
        // Core gone means hbd is stopping; the loop ends on its disconnection.
        let _ = self.to_core.send(result);
    }
}

/// Success, or the error in nsupdate's own words (trimmed, one line).
fn outcome(finished: &Finished, timeout: Duration) -> Result<(), String> {
    if finished.timed_out {
        return Err(format!("nsupdate did not finish within {} s (dns_timeout); killed", timeout.as_secs_f64()));
    }
    if finished.exit_code == Some(0) {
        return Ok(());
    }
    let text = if finished.stderr.trim().is_empty() { &finished.stdout } else { &finished.stderr };
    let lines: Vec<&str> =
        text.lines().map(|l| l.trim().trim_start_matches(';').trim()).filter(|l| !l.is_empty()).collect();
    let status = match finished.exit_code {
        Some(code) => format!("nsupdate exited with status {code}"),
        None => "nsupdate was killed by a signal".into(),
    };
    if lines.is_empty() {
        return Err(status);
    }
    Err(truncate_chars(&lines.join("; "), ERROR_CHARS).to_string())
}

/// One record's waiting and running update: `T` is what the record is to
/// hold (an address, or nothing once its host is forgotten).
#[derive(Debug)]
struct Slot<T> {
    /// The newest address to set, and when it may start.
    pending: Option<(T, Instant)>,
    /// The address an nsupdate is setting now.
    running: Option<T>,
    /// Failed attempts at the pending address in a row.
    failures: u32,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot { pending: None, running: None, failures: 0 }
    }
}

/// The coalescing queue and its retry schedule; it knows nothing of
/// processes and takes the time as an argument, so it is tested without sleeps.
#[derive(Debug)]
struct Queue<T> {
    slots: HashMap<Record, Slot<T>>,
    /// Records with a pending update and nothing running, by start time.
    due: BTreeSet<(Instant, Record)>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue { slots: HashMap::new(), due: BTreeSet::new() }
    }
}

impl<T: Copy + PartialEq> Queue<T> {
    /// A newer address for `record`: it replaces the waiting one.
    fn update(&mut self, record: Record, address: T, now: Instant) {
        let slot = self.slots.entry(record.clone()).or_default();
        let mut at = now;
        if let Some((waiting, since)) = slot.pending.take() {
            self.due.remove(&(since, record.clone()));
            if waiting == address {
                // Asked again for what waits for its retry: keep the backoff.
                at = since;
            } else {
                slot.failures = 0;
            }
        }
        if slot.running == Some(address) {
            // Being set right now; a failure schedules its own retry.
            return;
        }
        slot.pending = Some((address, at));
        if slot.running.is_none() {
            self.due.insert((at, record));
        }
    }

    /// The next update due at `now`, marked as running, with its attempt number.
    fn next_due(&mut self, now: Instant) -> Option<(Record, T, u32)> {
        if self.due.first().is_none_or(|(at, _)| *at > now) {
            return None;
        }
        let (_, record) = self.due.pop_first()?;
        let slot = self.slots.get_mut(&record)?;
        let (address, _) = slot.pending.take()?;
        slot.running = Some(address);
        Some((record, address, slot.failures + 1))
    }

    /// When the next waiting update is due.
    fn next_time(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The running update of `record` ended. A failure is retried after the
    /// returned delay, unless a newer address waits (then None: that one goes next).
    fn finished(&mut self, record: &Record, ok: bool, now: Instant) -> Option<Duration> {
        let slot = self.slots.get_mut(record)?;
        let address = slot.running.take()?;
        let mut retry_in = None;
        if ok {
            slot.failures = 0;
        } else if slot.pending.is_none() {
            slot.failures += 1;
            let delay = backoff(slot.failures);
            slot.pending = Some((address, now + delay));
            retry_in = Some(delay);
        } else {
            slot.failures = 0;
        }
        match slot.pending {
            Some((_, at)) => {
                self.due.insert((at, record.clone()));
            }
            None => {
                self.slots.remove(record);
            }
        }
        retry_in
    }
}

/// 5 s after the first failure, doubling up to 10 min.
fn backoff(failures: u32) -> Duration {
    BACKOFF_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(nsupdate_bin: &Path) -> DnsSettings {
        DnsSettings {
            nsupdate_bin: nsupdate_bin.to_path_buf(),
            domains: vec!["example.com".into()],
            server: Some(("127.0.0.1".into(), 5353)),
            key_file: Some("/etc/hbd/dns.key".into()),
            ttl: 60,
            timeout: Duration::from_secs(10),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn record(name: &str) -> Record {
        (name.into(), "example.com".into())
    }

    #[test]
    fn script_replaces_the_record_of_the_address_family() {
        let s = settings(Path::new("/usr/bin/nsupdate"));
        assert_eq!(
            script(&s, "web1", "example.com", ip("192.0.2.7")).unwrap(),
            "server 127.0.0.1 5353\nupdate delete web1.example.com. A\nupdate add web1.example.com. 60 A 192.0.2.7\nsend\n"
        );
        let no_server = DnsSettings { server: None, ..s };
        assert_eq!(
            script(&no_server, "web1", "dyn.example.com", ip("2001:db8::1")).unwrap(),
            "update delete web1.dyn.example.com. AAAA\nupdate add web1.dyn.example.com. 60 AAAA 2001:db8::1\nsend\n"
        );
    }

    #[test]
    fn nothing_but_a_valid_name_reaches_the_script() {
        let s = settings(Path::new("/usr/bin/nsupdate"));
        for name in [
            "web1\nupdate delete example.com",
            "web1 example.com",
            "web1;update",
            "update delete example.com. A",
            "web1\n",
            "",
            ".",
            "a..b",
            "-web1",
        ] {
            let e = script(&s, name, "example.com", ip("192.0.2.7")).unwrap_err();
            assert!(e.contains("is not a valid DNS name") && !e.contains('\n'), "{name:?}: {e}");
            assert!(script(&s, "web1", name, ip("192.0.2.7")).is_err(), "domain {name:?}");
        }
        let long = "a".repeat(63);
        let name = [long.as_str(); 4].join(".");
        assert!(script(&s, &name[..241], "example.com", ip("192.0.2.7")).is_ok(), "253 in all");
        assert!(script(&s, &name[..242], "example.com", ip("192.0.2.7")).is_err(), "over 253 in all");
        let bad_server = DnsSettings { server: Some(("ns1\nupdate delete x".into(), 53)), ..s };
        assert!(script(&bad_server, "web1", "example.com", ip("192.0.2.7")).is_err());
    }

    #[test]
    fn removal_scripts_delete_both_families_and_check_the_name() {
        let s = settings(Path::new("/usr/bin/nsupdate"));
        assert_eq!(
            removal_script(&s, "gone", "example.com").unwrap(),
            "server 127.0.0.1 5353\nupdate delete gone.example.com. A\nupdate delete gone.example.com. AAAA\nsend\n"
        );
        assert!(removal_script(&s, "a\nsend", "example.com").is_err());
    }

    #[test]
    fn newest_address_wins_and_runs_once() {
        let (mut q, t0) = (Queue::default(), Instant::now());
        q.update(record("a"), ip("10.0.0.1"), t0);
        q.update(record("a"), ip("10.0.0.2"), t0);
        q.update(record("b"), ip("10.0.0.9"), t0);
        let (r, address, attempt) = q.next_due(t0).unwrap();
        assert_eq!((r, address, attempt), (record("a"), ip("10.0.0.2"), 1), "coalesced to the newest");
        // While a's update runs, two more arrive: only the newest waits.
        q.update(record("a"), ip("10.0.0.3"), t0);
        q.update(record("a"), ip("10.0.0.4"), t0);
        assert_eq!(q.next_due(t0).unwrap().0, record("b"), "a is running; b does not wait for it");
        assert!(q.next_due(t0).is_none());
        assert_eq!(q.finished(&record("a"), true, t0), None);
        assert_eq!(q.next_due(t0).unwrap().1, ip("10.0.0.4"));
        // Asked again for the address being set: not queued twice.
        q.update(record("a"), ip("10.0.0.4"), t0);
        assert!(q.next_due(t0).is_none());
        q.finished(&record("a"), true, t0);
        q.finished(&record("b"), true, t0);
        assert!(q.slots.is_empty() && q.due.is_empty(), "nothing kept once done");
    }

    #[test]
    fn failures_back_off_and_a_new_address_starts_at_once() {
        let (mut q, t0) = (Queue::default(), Instant::now());
        let s = Duration::from_secs;
        q.update(record("a"), ip("10.0.0.1"), t0);
        q.next_due(t0).unwrap();
        assert_eq!(q.finished(&record("a"), false, t0), Some(s(5)));
        assert!(q.next_due(t0 + s(4)).is_none(), "not before the backoff");
        assert_eq!(q.next_time(), Some(t0 + s(5)));
        // The same address asked again (core after a restart of the worker) keeps the backoff.
        q.update(record("a"), ip("10.0.0.1"), t0 + s(1));
        assert!(q.next_due(t0 + s(4)).is_none());
        let (_, _, attempt) = q.next_due(t0 + s(5)).unwrap();
        assert_eq!(attempt, 2);
        assert_eq!(q.finished(&record("a"), false, t0 + s(5)), Some(s(10)));
        for (attempt, delay) in [(3, 20), (4, 40), (5, 80), (6, 160), (7, 320), (8, 600), (9, 600)] {
            let (_, _, n) = q.next_due(t0 + s(100_000)).unwrap();
            assert_eq!(n, attempt);
            assert_eq!(q.finished(&record("a"), false, t0), Some(s(delay)));
        }
        // A new address does not wait for the old one's backoff.
        q.update(record("a"), ip("10.0.0.2"), t0 + s(1));
        assert_eq!(q.next_due(t0 + s(1)).unwrap(), (record("a"), ip("10.0.0.2"), 1));
        // And a failure while a newer address waits is not retried.
        q.update(record("a"), ip("10.0.0.3"), t0 + s(1));
        assert_eq!(q.finished(&record("a"), false, t0 + s(2)), None);
        assert_eq!(q.next_due(t0 + s(2)).unwrap().1, ip("10.0.0.3"));
    }

    #[test]
    fn nsupdates_error_text_is_kept_in_one_line() {
        let failed = |code, stderr: &str| Finished {
            exit_code: code,
            stdout: String::new(),
            stderr: stderr.into(),
            duration: Duration::ZERO,
            timed_out: false,
        };
        let timeout = Duration::from_secs(30);
        assert_eq!(outcome(&failed(Some(0), ""), timeout), Ok(()));
        assert_eq!(
            outcome(
                &failed(Some(2), "; TSIG error with server: tsig indicates error\nupdate failed: NOTAUTH(BADSIG)\n"),
                timeout
            ),
            Err("TSIG error with server: tsig indicates error; update failed: NOTAUTH(BADSIG)".into())
        );
        assert_eq!(outcome(&failed(Some(1), "  \n"), timeout), Err("nsupdate exited with status 1".into()));
        assert_eq!(outcome(&failed(Some(1), &"x".repeat(5000)), timeout).unwrap_err().len(), ERROR_CHARS);
        let hung = Finished { timed_out: true, ..failed(None, "") };
        assert_eq!(outcome(&hung, timeout), Err("nsupdate did not finish within 30 s (dns_timeout); killed".into()));
    }

    /// The worker through its channels, with a stand-in nsupdate: a script
    /// that saves what it was given, fails for one host and hangs for another.
    #[test]
    fn worker_runs_nsupdate_reports_to_core_and_a_hung_one_delays_no_one() {
        let dir = std::env::temp_dir().join(format!("hbd-dns-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("nsupdate");
        let saved = dir.join("scripts");
        fs::write(
            &fake,
            format!(
                "#!/bin/sh\nscript=$(cat)\necho \"$* $script\" >> {}\ncase \"$script\" in\n  *hung.*) exec sleep 30 ;;\n  *bad.*) echo 'update failed: REFUSED' >&2; exit 2 ;;\nesac\n",
                saved.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let s = DnsSettings { timeout: Duration::from_millis(1500), ..settings(&fake) };
        let (to_dns, inbox) = crossbeam_channel::bounded(8);
        let (to_core, core) = crossbeam_channel::bounded(8);
        let handle = spawn(s, inbox, to_core).unwrap();
        let update = |name: &str, address: &str| DnsMsg::Update {
            name: name.into(),
            address: ip(address),
            domains: vec!["example.com".into()],
        };
        let started = Instant::now();
        to_dns.send(update("hung", "10.0.0.1")).unwrap();
        to_dns.send(update("bad", "10.0.0.2")).unwrap();
        to_dns.send(update("good", "10.0.0.3")).unwrap();
        let mut results = HashMap::new();
        while results.len() < 3 {
            match core.recv_timeout(Duration::from_secs(10)) {
                Ok(CoreMsg::DnsResult { name, outcome, .. }) => {
                    results.insert(name, (outcome, started.elapsed()));
                }
                other => panic!("expected a DNS result, got {other:?}"),
            }
        }
        assert_eq!(results["good"].0, DnsOutcome::Updated);
        assert!(results["good"].1 < Duration::from_millis(1400), "waited for the hung one: {:?}", results["good"].1);
        assert_eq!(
            results["bad"].0,
            DnsOutcome::Failed { error: "update failed: REFUSED".into(), retry_in: Some(5.0) }
        );
        match &results["hung"] {
            (DnsOutcome::Failed { error, retry_in: Some(_) }, after) => {
                assert!(error.contains("dns_timeout"), "{error}");
                assert!(*after >= Duration::from_millis(1500), "killed before its time: {after:?}");
            }
            other => panic!("hung: {other:?}"),
        }
        let scripts = fs::read_to_string(&saved).unwrap();
        assert!(
            scripts.contains("-k /etc/hbd/dns.key server 127.0.0.1 5353\nupdate delete good.example.com. A\nupdate add good.example.com. 60 A 10.0.0.3\nsend"),
            "{scripts}"
        );
        // A hung nsupdate at shutdown is killed, and does not hold the thread.
        to_dns.send(update("hung", "10.0.0.4")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fs::read_to_string(&saved).unwrap().contains("10.0.0.4") {
            assert!(Instant::now() < deadline, "second hung update not started");
            std::thread::sleep(Duration::from_millis(10));
        }
        let stopping = Instant::now();
        drop(to_dns);
        handle.join().unwrap();
        assert!(stopping.elapsed() < Duration::from_secs(1), "shutdown waited {:?}", stopping.elapsed());
        let _ = fs::remove_dir_all(&dir);
    }
}
