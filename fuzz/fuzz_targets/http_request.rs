//! Fuzz target `http_request`: the first bytes anyone can send hbd over
//! TCP. The http front's head check and rewrite, then the routes' target
//! parsing (path segments, percent-decoding, `limit`).
#![no_main]

use hbd::server::http::front::{check_head, Head, MAX_BODY, MAX_HEADERS, MAX_HEADER_BYTES, MAX_REQUEST_LINE};
use hbd::server::http::{history_limit, split_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match check_head(data) {
        Head::Complete(forward) => {
            // The rewritten head is within the limits and ends the head;
            // the body after it, within its own.
            let end = b"Connection: close\r\n\r\n";
            let at = forward.windows(end.len()).position(|w| w == end).expect("the head ends the same way");
            assert!(at + end.len() <= MAX_REQUEST_LINE + MAX_HEADER_BYTES + MAX_HEADERS * 2 + 96);
            assert!(forward.len() - at - end.len() <= MAX_BODY);
            let line = forward.split(|&b| b == b'\n').next().unwrap_or_default();
            let text = String::from_utf8_lossy(line);
            if let Some(target) = text.split(' ').nth(1) {
                if let Some((_, query)) = split_target(target) {
                    let _ = history_limit(query);
                }
            }
        }
        Head::Incomplete | Head::Refused(..) => {}
    }
    let text = String::from_utf8_lossy(data);
    if let Some((_, query)) = split_target(&text) {
        let _ = history_limit(query);
    }
});
