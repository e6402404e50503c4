//! hbd's parent: opens everything that can fail at start-up (socket, journal,
//! state directory) while errors still reach the terminal, detaches, spawns
//! the components, turns signals into messages and shuts down in order.
//!
//! The server area: this parent, `config`, the data `model`, the `views`
//! http and ws share, and one module per thread (`udp`, `core`, `journal`,
//! `state`, `dns`, `http`, `ws`).
//!
//! Shutdown follows the flow of data: the http threads are unblocked and
//! dropping `stop_listeners` ends `udp` and the ws acceptors; once `udp` is
//! joined, the parent tells `core` [`CoreMsg::Shutdown`] (its inbox has other
//! senders, so it cannot end by disconnection), and core's final snapshot
//! and dropped senders end the ws hub, `state` and `journal`. Each drains
//! its inbox before it exits.

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, never, select, Sender};
use log::{error, info, warn};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::logging;
use crate::wire::auth::ReplayGuard;
use config::Settings;
use core::CoreOutputs;
use daemon::PidFile;
use journal::Journal;
use msg::{
    CoreMsg, JournalMsg, Query, ALERTMANAGER_CAPACITY, ALIVE_CAPACITY, CORE_CAPACITY, DNS_CAPACITY, JOURNAL_CAPACITY,
    NOTIFY_CAPACITY, QUERY_CAPACITY, STATE_CAPACITY, UPGRADE_CAPACITY, WS_CAPACITY,
};
use systemd::Systemd;
use udp::UdpOutputs;

pub mod alertmanager;
pub mod config;
pub mod core;
pub mod ctl;
pub mod daemon;
pub mod dns;
pub mod files;
pub mod host_filter;
pub mod http;
pub mod journal;
pub mod model;
pub mod msg;
pub mod notify;
pub mod pattern;
pub mod peers;
pub mod silence;
pub mod state;
pub mod store;
pub mod systemd;
pub mod tags;
pub mod udp;
pub mod views;
pub mod ws;

// Capacities are in messages; udp's carry batches of up to 64 datagrams.
// A bounded channel allocates all its slots up front: they are idle memory.

/// How often the parent checks that every component is still alive.
const SUPERVISE_EVERY: Duration = Duration::from_secs(1);

/// What the signal thread tells the parent.
#[derive(Debug)]
enum Control {
    /// SIGTERM or SIGINT: stop receiving, drain, save, exit 0.
    Shutdown(i32),
    /// SIGHUP: reopen the log and journal files.
    Reopen,
}

/// Runs hbd until a signal stops it. An error before the components start is
/// a start-up failure; after, only a lost component is an error.
pub fn run(settings: Settings, foreground: bool) -> io::Result<()> {
    let Settings {
        udp: udp_settings,
        core: core_settings,
        journal,
        mut http,
        ws: mut ws_settings,
        notify,
        dns: dns_settings,
        peers: peer_settings,
        alertmanager: alertmanager_settings,
        ..
    } = settings;
    let socket = udp::bind(&udp_settings)?;
    let ws_listener = ws::bind(&ws_settings.bind)?;
    let wss = match &ws_settings.wss {
        Some((bind, cert, key)) => Some(ws::Tls { listener: ws::bind(bind)?, config: ws::load_tls(cert, key)? }),
        None => None,
    };
    http.ws_port = ws_listener.local_addr()?.port();
    let http_bound = http::bind(&http)?;
    let http_server = http_bound.server.clone();
    // hbd's own pages come from these ports; the ws handshake admits them.
    ws_settings.page_ports = [Some(&http_bound.listener), Some(&ws_listener), wss.as_ref().map(|t| &t.listener)]
        .into_iter()
        .flatten()
        .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
        .collect();
    let journal = journal.map(Journal::open).transpose()?;
    state::check_writable(&settings.pickfile)?;
    let _pidfile = if foreground {
        None
    } else {
        PidFile::check_not_running(&settings.pidfile)?;
        daemon::detach().map_err(|e| io::Error::new(e.kind(), format!("detach: {e}")))?;
        Some(PidFile::create(&settings.pidfile)?)
    };
    info!("hbd {} starting (pid {})", env!("CARGO_PKG_VERSION"), std::process::id());
    let saved = state::load(&settings.pickfile);
    // Nothing signed before this moment is accepted: see ReplayGuard.
    let started_us =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    let replay = ReplayGuard::with_newest(
        saved.hosts.iter().filter_map(|r| Some((r.host.name.clone(), r.host.last_signed_us?))),
        started_us,
    );

    let (to_control, control) = bounded(8);
    spawn_signal_thread(to_control)?;
    let (to_core, core_inbox) = bounded(CORE_CAPACITY);
    let (to_journal, journal_inbox) = bounded(JOURNAL_CAPACITY);
    let (to_state, state_inbox) = bounded(STATE_CAPACITY);
    let (stop_listeners, listeners_stop) = bounded::<()>(0);
    let (to_ws, ws_updates) = bounded(WS_CAPACITY);
    let (to_core_queries, core_queries) = bounded(QUERY_CAPACITY);
    let (to_ws_upgrades, ws_upgrades) = bounded(UPGRADE_CAPACITY);
    let to_journal = journal.is_some().then_some(to_journal);
    let (to_notify, notify_inbox) = bounded(NOTIFY_CAPACITY);
    let to_notify = (!notify.is_empty()).then_some(to_notify);

    // Upstream components first (see `shut_down` for the order they stop in).
    let mut inputs: Vec<(&str, JoinHandle<()>)> = Vec::new();
    let mut downstream: Vec<(&str, JoinHandle<()>)> = Vec::new();
    if let Some(journal) = journal {
        downstream.push(("journal", journal::spawn(journal, journal_inbox, to_core.clone())?));
    }
    downstream.push(("state", state::spawn(settings.pickfile.clone(), state_inbox)?));
    if to_notify.is_some() {
        downstream.push(("notify", notify::spawn(notify, notify_inbox, to_core.clone())?));
    }
    // DNS only with dyndomains; it ends when core drops `to_dns`.
    let to_dns = match dns_settings {
        Some(dns_settings) => {
            let (to_dns, dns_inbox) = bounded(DNS_CAPACITY);
            downstream.push(("dns", dns::spawn(dns_settings, dns_inbox, to_core.clone())?));
            Some(to_dns)
        }
        None => None,
    };
    // Alertmanager only with its block; it ends when core drops `to_alertmanager`.
    let to_alertmanager = match alertmanager_settings {
        Some(am_settings) => {
            let (to_alertmanager, am_inbox) = bounded(ALERTMANAGER_CAPACITY);
            downstream.push(("alertmanager", alertmanager::spawn(am_settings, am_inbox, to_core.clone())?));
            Some(to_alertmanager)
        }
        None => None,
    };
    let mut systemd = Systemd::from_env();
    let (to_parent, mut alive) = bounded(ALIVE_CAPACITY);
    let to_parent = systemd.is_some().then_some(to_parent);
    if to_parent.is_none() {
        alive = never();
    }
    let core_outputs = CoreOutputs {
        to_journal: to_journal.clone(),
        to_state,
        to_ws: Some(to_ws),
        to_notify,
        to_dns,
        to_parent,
        to_alertmanager,
    };
    downstream.push(("core", core::spawn(core_settings, saved, core_inbox, core_queries, core_outputs)?));
    let udp_outputs = UdpOutputs { to_core: to_core.clone(), to_journal: to_journal.clone() };
    inputs.push(("udp", udp::spawn(socket, udp_settings, replay, udp_outputs, listeners_stop.clone())?));
    if let Some(peer_settings) = peer_settings {
        inputs.push(("peers", peers::spawn(peer_settings, listeners_stop.clone())?));
    }
    let ws_links = ws::Links {
        updates: ws_updates,
        to_core: to_core.clone(),
        to_core_queries: to_core_queries.clone(),
        upgrades: ws_upgrades,
        stop: listeners_stop.clone(),
    };
    let ws_handles = ws::spawn(ws_listener, wss, ws_settings, ws_links)?;
    // The hub ends with core (its updates channel); the acceptors with the listeners.
    let mut ws_handles = ws_handles.into_iter();
    downstream.extend(ws_handles.next().map(|hub| ("ws", hub)));
    inputs.extend(ws_handles.map(|acceptor| ("ws", acceptor)));
    let ready_probe = to_core_queries.clone();
    for handle in http::spawn(http_bound, http, to_core_queries, to_ws_upgrades, listeners_stop)? {
        inputs.push(("http", handle));
    }
    if let Some(systemd) = &mut systemd {
        // Every port is bound and every thread spawned; the core answering
        // a question shows its loop runs.
        match msg::ask(&ready_probe, Query::HostCount) {
            Ok(_) => systemd.ready(),
            Err(_) => warn!("systemd: the core did not answer at start-up; not telling systemd we are ready"),
        }
    }
    drop(ready_probe);

    // Whether the pages start-up alone touched were let go (memory.rs):
    // done on the first turn, once every thread has had a second to start.
    let mut released = false;
    let lost = loop {
        select! {
            recv(control) -> msg => match msg {
                Ok(Control::Shutdown(signal)) => {
                    info!("received signal {signal}; shutting down");
                    break None;
                }
                Ok(Control::Reopen) => {
                    logging::request_reopen();
                    info!("received SIGHUP; reopening log and journal files");
                    if let Some(journal) = &to_journal {
                        let _ = journal.send(JournalMsg::Reopen);
                    }
                }
                Err(_) => break Some("signal"),
            },
            recv(alive) -> status => match (status, &mut systemd) {
                (Ok(status), Some(systemd)) => systemd.alive(&status),
                // The core has ended; the supervision below finds out.
                _ => alive = never(),
            },
            default(SUPERVISE_EVERY) => {
                if !std::mem::replace(&mut released, true) {
                    crate::memory::release_startup_pages();
                    // The state file's text and parse trees, freed by now.
                    crate::memory::return_free_heap();
                }
                // Upstream first: a dead core also ends state and journal, which
                // are downstream of it; the first one found is the cause.
                let all = inputs.iter().rev().chain(downstream.iter().rev());
                if let Some((name, _)) = all.into_iter().find(|(_, handle)| handle.is_finished()) {
                    break Some(*name);
                }
            }
        }
    };
    if let Some(name) = lost {
        error!("lost component: {name}; shutting down");
    }
    if let Some(systemd) = &mut systemd {
        systemd.stopping();
    }
    // http first, so no request waits on a core that is finishing.
    for _ in 0..http::THREADS {
        http_server.unblock();
    }
    drop(stop_listeners);
    drop(to_journal);
    join(inputs);
    // Everything udp sent is in core's inbox before this.
    let _ = to_core.send(CoreMsg::Shutdown);
    drop(to_core);
    // Then in the order the disconnections travel: ws hub, core, notify and dns, state, journal.
    join(downstream.into_iter().rev().collect());
    match lost {
        None => {
            info!("hbd stopped");
            Ok(())
        }
        Some(name) => Err(io::Error::other(format!("lost component: {name}"))),
    }
}

fn join(components: Vec<(&str, JoinHandle<()>)>) {
    for (name, handle) in components {
        if handle.join().is_err() {
            warn!("component {name} panicked");
        }
    }
}

fn spawn_signal_thread(to_control: Sender<Control>) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new().name("signal".into()).spawn(move || {
        for signal in signals.forever() {
            let msg = if signal == SIGHUP { Control::Reopen } else { Control::Shutdown(signal) };
            if to_control.send(msg).is_err() {
                break;
            }
        }
    })?;
    Ok(())
}
