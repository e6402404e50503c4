//! hbd, the heartbeat monitoring daemon, and hbc, its client, as a library;
//! the programs in `src/bin/` only parse their command lines and call in here.
//!
//! Three areas with one-way dependencies: `wire` (the datagram format both
//! programs share) imports neither of the others; `server` (hbd, one module
//! per thread) and `client` (hbc) import `wire` and the shared helpers
//! (`cli`, `logging`, `yaml`) but never each other. ARCHITECTURE.md maps the
//! threads and channels; start reading at `server::run`.

pub mod cli;
pub mod client;
pub mod logging;
pub mod memory;
pub mod process;
pub mod server;
pub mod wire;
pub mod yaml;
