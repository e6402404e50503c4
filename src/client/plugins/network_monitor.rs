//! `network_monitor`: per-interface byte and packet rates, error and drop
//! counters (from /proc/net/dev), and TCP connections by state (from
//! /proc/net/tcp and tcp6). Rates need two samples; the first call is the
//! baseline.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{default_true, Common, Kind, Plugin, Rates};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(flatten)]
    pub common: Common,
    /// Interfaces to report; empty: all but loopback.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Count TCP connections by state.
    #[serde(default = "default_true", deserialize_with = "crate::yaml::yaml11_bool")]
    pub connections: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { common: Common::default(), interfaces: Vec::new(), connections: true }
    }
}

/// One interface's counters from /proc/net/dev.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

pub fn parse_net_dev(text: &str) -> BTreeMap<String, Counters> {
    let mut interfaces = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, fields)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<u64> = fields.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() < 16 {
            continue;
        }
        interfaces.insert(
            name.trim().to_string(),
            Counters {
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            },
        );
    }
    interfaces
}

const TCP_STATES: [&str; 12] = [
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];

/// Adds the connections of one /proc/net/tcp-style table to `counts`.
pub fn count_tcp_states(table: impl BufRead, counts: &mut BTreeMap<&'static str, u64>) {
    for line in table.lines().skip(1).map_while(Result::ok) {
        let Some(state) = line.split_whitespace().nth(3) else {
            continue;
        };
        let Ok(code) = u8::from_str_radix(state, 16) else {
            continue;
        };
        if let Some(name) = TCP_STATES.get(usize::from(code).wrapping_sub(1)) {
            *counts.entry(name).or_default() += 1;
        }
    }
}

pub struct NetworkMonitor {
    interfaces: Vec<String>,
    connections: bool,
    rates: Rates,
}

impl NetworkMonitor {
    pub fn new(options: &Options) -> NetworkMonitor {
        NetworkMonitor {
            interfaces: options.interfaces.clone(),
            connections: options.connections,
            rates: Rates::default(),
        }
    }
}

impl Plugin for NetworkMonitor {
    fn name(&self) -> &str {
        "network_monitor"
    }

    fn kind(&self) -> Kind {
        Kind::Monitor
    }

    fn collect(&mut self) -> Result<Option<Value>, String> {
        let text = std::fs::read_to_string("/proc/net/dev").map_err(|e| format!("read /proc/net/dev: {e}"))?;
        let now = Instant::now();
        let mut interfaces = Map::new();
        let (mut errors_total, mut dropped_total, mut complete) = (0u64, 0u64, true);
        for (name, c) in parse_net_dev(&text) {
            let wanted = if self.interfaces.is_empty() { name != "lo" } else { self.interfaces.contains(&name) };
            if !wanted {
                continue;
            }
            errors_total += c.rx_errors + c.tx_errors;
            dropped_total += c.rx_dropped + c.tx_dropped;
            let mut rate = |what: &str, total: u64| self.rates.per_second(&format!("{name}/{what}"), now, total);
            let rates = [
                rate("rx_bytes", c.rx_bytes),
                rate("tx_bytes", c.tx_bytes),
                rate("rx_packets", c.rx_packets),
                rate("tx_packets", c.tx_packets),
            ];
            let [Some(rx_b), Some(tx_b), Some(rx_p), Some(tx_p)] = rates else {
                complete = false;
                continue;
            };
            interfaces.insert(
                name,
                json!({
                    "rx_bytes_per_s": rx_b, "tx_bytes_per_s": tx_b,
                    "rx_packets_per_s": rx_p, "tx_packets_per_s": tx_p,
                    "rx_errors": c.rx_errors, "tx_errors": c.tx_errors,
                    "rx_dropped": c.rx_dropped, "tx_dropped": c.tx_dropped,
                }),
            );
        }
        if !complete {
            return Ok(None);
        }
        let mut data = json!({"interfaces": interfaces, "errors_total": errors_total, "dropped_total": dropped_total});
        if self.connections {
            let mut counts = BTreeMap::new();
            for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
                if let Ok(file) = File::open(table) {
                    count_tcp_states(BufReader::new(file), &mut counts);
                }
            }
            let total: u64 = counts.values().sum();
            if let Some(map) = data.as_object_mut() {
                map.insert("connections".into(), json!(counts));
                map.insert("connections_total".into(), json!(total));
            }
        }
        Ok(Some(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 5000000   4000    2    3    0     0          0         0  200000    1500    1    4    0     0       0          0
";

    #[test]
    fn parses_proc_net_dev() {
        let all = parse_net_dev(NET_DEV);
        let eth0 = &all["eth0"];
        assert_eq!(
            (eth0.rx_bytes, eth0.rx_errors, eth0.rx_dropped, eth0.tx_bytes, eth0.tx_dropped),
            (5000000, 2, 3, 200000, 4)
        );
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn counts_tcp_states() {
        let table =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 1\n\
            1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  0 0 2\n\
            2: 0100007F:1F90 0100007F:C351 01 00000000:00000000 00:00000000 00000000  0 0 3\n\
            3: garbage\n";
        let mut counts = BTreeMap::new();
        count_tcp_states(table.as_bytes(), &mut counts);
        assert_eq!(counts.get("LISTEN"), Some(&1));
        assert_eq!(counts.get("ESTABLISHED"), Some(&2));
    }

    #[test]
    fn live_sample_has_the_python_metric_names() {
        let mut net = NetworkMonitor::new(&Options { interfaces: vec!["lo".into()], ..Options::default() });
        assert_eq!(net.collect().unwrap(), None);
        let v = net.collect().unwrap().unwrap();
        assert!(v["interfaces"]["lo"]["rx_bytes_per_s"].as_f64().is_some(), "{v}");
        assert!(v["errors_total"].as_u64().is_some());
        assert!(v["connections_total"].as_u64().is_some());
    }
}
