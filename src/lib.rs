//! hbd, the heartbeat monitoring daemon, as a library of components; the
//! programs in `src/bin/` only parse their command lines and call in here.
//! ARCHITECTURE.md maps the threads and channels; start reading at
//! `server::run`.

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod core;
pub mod daemon;
pub mod http;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod nagios;
pub mod plugins;
pub mod protocol;
pub mod sender;
pub mod server;
pub mod state;
pub mod udp;
pub mod ws;
pub mod www;
