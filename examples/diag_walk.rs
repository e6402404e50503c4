//! diag_walk: the reference for hbc's TCP connection counts in
//! `benches/client.sh`. It asks the kernel for its TCP sockets by state
//! once a second over sock_diag, exactly as `network_monitor` does
//! (`connections: true`), and does nothing else: its CPU is the kernel's
//! walk of its established-connection hash table, which whoever counts
//! connections pays, plus one wake-up a second.
//!
//! usage: diag_walk [--seconds S]   (default: until killed)

use std::process::ExitCode;
use std::time::{Duration, Instant};

use hbd::client::plugins::network_monitor::diag::Diag;

fn main() -> ExitCode {
    let mut args = pico_args::Arguments::from_env();
    let seconds: Option<u64> = match args.opt_value_from_str("--seconds") {
        Ok(seconds) => seconds,
        Err(e) => {
            eprintln!("diag_walk: --seconds: {e}");
            return ExitCode::from(2);
        }
    };
    let mut diag = match Diag::open() {
        Ok(diag) => diag,
        Err(e) => {
            eprintln!("diag_walk: sock_diag: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    for second in 1.. {
        if let Err(e) = diag.tcp_states() {
            eprintln!("diag_walk: dump: {e}");
            return ExitCode::FAILURE;
        }
        if seconds.is_some_and(|s| second >= s) {
            break;
        }
        let next = start + Duration::from_secs(second);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    ExitCode::SUCCESS
}
