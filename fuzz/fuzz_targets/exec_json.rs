//! Fuzz target `exec_json`: what an exec plugin prints, as hbc reads it.
#![no_main]

use hbd::client::plugins::exec::parse_output;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_output(&String::from_utf8_lossy(data));
});
