//! Fuzz target `datagram`: hbd's UDP decoder, as `udp` runs it, with and
//! without signing keys. The first byte picks how the rest is presented:
//! as sent, compressed with zlib, and/or sealed with the configured key (so
//! that the parser behind a valid signature is reached too).
#![no_main]

use std::io::Write;
use std::time::{Duration, SystemTime};

use hbd::wire::auth::{HostPattern, Key, Keyring, ReplayGuard};
use hbd::wire::decode::{Decoder, PluginLimits};
use libfuzzer_sys::fuzz_target;

const LIMITS: PluginLimits = PluginLimits { max_plugins: 8, max_keys: 64, max_bytes: 4096 };

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut payload = rest.to_vec();
    if mode & 1 != 0 {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        if e.write_all(&payload).is_err() {
            return;
        }
        payload = match e.finish() {
            Ok(z) => z,
            Err(_) => return,
        };
    }
    let now = SystemTime::now();
    let Ok(key) = Key::new("fuzz", b"0123456789abcdef", vec![HostPattern::Any]) else { return };
    if mode & 2 != 0 {
        let ring = Keyring::new(vec![key.clone()], Duration::from_secs(60));
        let mut decoder = Decoder::new(8192, 30.0, Some(ring), ReplayGuard::default(), LIMITS);
        let us = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let datagram = if mode & 4 != 0 { key.seal(us, &payload) } else { payload };
        if let Ok(accepted) = decoder.decode(&datagram, now) {
            let _ = decoder.ack(&accepted, now);
            // The same datagram again is a replay.
            assert!(decoder.decode(&datagram, now).is_err());
        }
    } else {
        let mut decoder = Decoder::new(8192, 30.0, None, ReplayGuard::default(), LIMITS);
        if let Ok(accepted) = decoder.decode(&payload, now) {
            let _ = decoder.ack(&accepted, now);
        }
    }
});
