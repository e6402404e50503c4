//! Fuzz target `ack`: hbc's ACK parser, unsigned and signed (the first
//! byte picks; with a key, the rest is sealed so the JSON behind a valid
//! tag is reached).
#![no_main]

use hbd::wire::auth::{HostPattern, Key};
use hbd::wire::decode::parse_ack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(key) = Key::new("fuzz", b"0123456789abcdef", vec![HostPattern::Any]) else { return };
    if mode & 1 != 0 {
        let us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let sealed = if mode & 2 != 0 { key.seal(us, rest) } else { rest.to_vec() };
        let _ = parse_ack(&sealed, Some(&key), "host1");
    } else {
        let _ = parse_ack(rest, None, "host1");
    }
});
