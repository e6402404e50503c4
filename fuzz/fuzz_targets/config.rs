//! Fuzz target `config`: the YAML config loader for hbd.yaml (with the
//! `thresholds:` rules compiled by `check`) and hbc.yaml; the first byte
//! picks which.
#![no_main]

use std::path::Path;

use hbd::client::config::ClientConfig;
use hbd::server::config::Config;
use hbd::yaml::ConfigFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    if mode & 1 == 0 {
        if let Ok(config) = Config::parse(&text, "fuzz") {
            // hbd_host may be a name, which check() resolves: that is
            // network I/O, not parsing, so such inputs stop here.
            if !config.hbd_host.parse::<std::net::IpAddr>().is_ok() && config.hbd_host != "localhost" {
                return;
            }
            let _ = config.check("fuzz", Path::new("/"));
        }
    } else if let Ok(config) = ClientConfig::parse(&text, "fuzz") {
        let _ = config.check("fuzz");
    }
});
