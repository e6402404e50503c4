//! Fuzz target `compress`: hbc's zlib encoder (`wire::encode::compress`)
//! on any text; what it returns must inflate to that text again (or be the
//! text itself, when compressing would not make it smaller).
#![no_main]

use std::io::Read;

use hbd::wire::encode::compress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &[u8]| {
    let payload = compress(text);
    if payload == text {
        return;
    }
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(payload.as_slice()).read_to_end(&mut inflated).expect("a valid zlib stream");
    assert!(inflated == text, "inflates to another text");
});
