//! Fuzz target `nagios`: a Nagios plugin's output (status line, long
//! output, perfdata) and threshold ranges, as hbc's nagios_runner reads them.
#![no_main]

use hbd::client::nagios::{parse_perfdata, PluginOutput, Range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = PluginOutput::parse(&text);
    let _ = parse_perfdata(&text);
    if let Some(range) = Range::parse(&text) {
        let _ = range.alerts(0.0);
        let _ = range.alerts(f64::NAN);
    }
});
