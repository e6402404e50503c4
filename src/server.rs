//! hbd's parent: opens everything that can fail at start-up (socket, journal,
//! state directory) while errors still reach the terminal, detaches, spawns
//! the components, turns signals into messages and shuts down in order.
//!
//! Shutdown is by disconnection: the http threads are unblocked, dropping
//! `stop_listeners` ends `udp` and `ws-accept`, and `udp`'s
//! dropped senders end `core`, whose final snapshot and dropped senders end
//! `state` and `journal`. Each drains its inbox before it exits.

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, select, Sender};
use log::{error, info, warn};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::auth::ReplayGuard;
use crate::config::Config;
use crate::core::{self, CoreOutputs};
use crate::daemon::{self, PidFile};
use crate::journal::{self, Journal, JournalMsg};
use crate::udp::{self, UdpOutputs};
use crate::{http, ws};
use crate::{logging, state};

// Capacities are in messages; udp's carry batches of up to 64 datagrams.
// A bounded channel allocates all its slots up front: they are idle memory.

/// udp → core. Full: udp blocks and the kernel's socket buffer takes the
/// burst; the core only does in-memory work, so this clears in microseconds.
const CORE_CAPACITY: usize = 64;
/// udp, core → journal. Full: senders block, because no line may be lost;
/// a slow disk thereby shows as kernel drops on the UDP socket, counted there.
const JOURNAL_CAPACITY: usize = 256;
/// http → core. Full: the request waits (up to 5 s, then 503); queries
/// are answered in microseconds, so this only fills if the core is stuck.
const QUERY_CAPACITY: usize = 64;
/// core → ws. Full: the core drops the update and counts it
/// (`hbd_ws_updates_dropped_total`): live views must not slow monitoring.
const WS_CAPACITY: usize = 1024;
/// core → state. Full: the core skips that periodic save (the queued one is
/// as good); the final save at shutdown waits.
const STATE_CAPACITY: usize = 1;
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
pub fn run(config: &Config, foreground: bool) -> io::Result<()> {
    let udp_settings = config.udp();
    let socket = udp::bind(&udp_settings)?;
    let ws_settings = config.ws();
    let ws_listener = ws::bind(&ws_settings.bind)?;
    let wss = match &ws_settings.wss {
        Some((bind, cert, key)) => Some(ws::Tls { listener: ws::bind(bind)?, config: ws::load_tls(cert, key)? }),
        None => None,
    };
    let http_settings = config.http(ws_listener.local_addr()?.port());
    let http_server = http::bind(&http_settings)?;
    let journal = config.journal().map(Journal::open).transpose()?;
    state::check_writable(&config.pickfile)?;
    let _pidfile = if foreground {
        None
    } else {
        PidFile::check_not_running(&config.pidfile)?;
        daemon::detach().map_err(|e| io::Error::new(e.kind(), format!("detach: {e}")))?;
        Some(PidFile::create(&config.pidfile)?)
    };
    info!("hbd {} starting (pid {})", env!("CARGO_PKG_VERSION"), std::process::id());
    let hosts = state::load(&config.pickfile);
    let replay = ReplayGuard::with_newest(hosts.iter().filter_map(|h| Some((h.name.clone(), h.last_signed_us?))));

    let (to_control, control) = bounded(8);
    spawn_signal_thread(to_control)?;
    let (to_core, core_inbox) = bounded(CORE_CAPACITY);
    let (to_journal, journal_inbox) = bounded(JOURNAL_CAPACITY);
    let (to_state, state_inbox) = bounded(STATE_CAPACITY);
    let (stop_listeners, listeners_stop) = bounded::<()>(0);
    let (to_ws, ws_updates) = bounded(WS_CAPACITY);
    let (to_core_queries, core_queries) = bounded(QUERY_CAPACITY);
    let to_journal = journal.is_some().then_some(to_journal);

    let mut components: Vec<(&str, JoinHandle<()>)> = Vec::new();
    if let Some(journal) = journal {
        components.push(("journal", journal::spawn(journal, journal_inbox)?));
    }
    components.push(("state", state::spawn(config.pickfile.clone(), state_inbox)?));
    let core_outputs = CoreOutputs { to_journal: to_journal.clone(), to_state, to_ws: Some(to_ws) };
    components.push(("core", core::spawn(config.core(), hosts, core_inbox, core_queries, core_outputs)?));
    let udp_outputs = UdpOutputs { to_core, to_journal: to_journal.clone() };
    components.push(("udp", udp::spawn(socket, udp_settings, replay, udp_outputs, listeners_stop.clone())?));
    for handle in ws::spawn(ws_listener, wss, ws_settings, ws_updates, to_core_queries.clone(), listeners_stop)? {
        components.push(("ws", handle));
    }
    for handle in http::spawn(http_server.clone(), http_settings, to_core_queries)? {
        components.push(("http", handle));
    }

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
            default(SUPERVISE_EVERY) => {
                // Upstream first: a dead core also ends state and journal, which
                // are downstream of it; the first one found is the cause.
                if let Some((name, _)) = components.iter().rev().find(|(_, handle)| handle.is_finished()) {
                    break Some(*name);
                }
            }
        }
    };
    if let Some(name) = lost {
        error!("lost component: {name}; shutting down");
    }
    // http first, so no request waits on a core that is finishing.
    for _ in 0..http::THREADS {
        http_server.unblock();
    }
    drop(stop_listeners);
    drop(to_journal);
    // Join in the order the disconnections travel: http, ws, udp, core, state, journal.
    for (name, handle) in components.into_iter().rev() {
        if handle.join().is_err() {
            warn!("component {name} panicked");
        }
    }
    match lost {
        None => {
            info!("hbd stopped");
            Ok(())
        }
        Some(name) => Err(io::Error::other(format!("lost component: {name}"))),
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
