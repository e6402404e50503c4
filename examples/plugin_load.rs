//! Fills hbd's plugin store: sends `--samples` rounds of a template message
//! (what `hbc --once --print` wrote: all built-in plugins) for `--hosts`
//! hosts, zlib-compressed as hbc sends it, pacing itself on ACKs so that
//! nothing is lost. Prints what it sent.
//!
//! Values vary as a real machine's do, so that no compression is flattered
//! by one template repeated: each host starts from the template with its
//! gauges scattered (a zero rate gets a random one on half the hosts' leaves:
//! idle interfaces exist, but not everywhere), then every sample moves each
//! gauge by a uniform random step, relative, as volatile as such a figure is
//! between two samples of a real machine (see `volatility`: rates and CPU
//! ±30 %, load averages ±10/4/1.5 %, memory and disk sizes ±0.5 %, anything
//! else ±5 %), rounded to the decimals the template shows (two at least for
//! rates), percentages within 0–100; counters (`*_total`, errors, drops)
//! only grow, by a random amount that is often zero; sizes and counts of
//! things (`total_*`, `cpu_count`) stay put.
//! Plugin times are sixty seconds apart with a random jitter of up to 50 ms,
//! in milliseconds as hbc sends them; from the second message on, each
//! carries a round trip (`latency_ms`) as hbc's do (`--no-latency`: not).
//! A seeded xorshift makes every run send the same data.
//!
//!     hbc --once --print > template.json
//!     cargo run --release --example plugin_load -- --target 127.0.0.1:50003 --template template.json --hosts 10000 --samples 50

use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde_json::Value;

fn main() {
    let mut args = pico_args::Arguments::from_env();
    // Plugin data only, as the store issue's figure counts it.
    let with_latency = !args.contains("--no-latency");
    let parsed = (|| -> Result<_, pico_args::Error> {
        Ok((
            args.value_from_str::<_, String>("--target")?,
            args.value_from_str::<_, String>("--template")?,
            args.opt_value_from_str("--hosts")?.unwrap_or(10_000u64),
            args.opt_value_from_str("--samples")?.unwrap_or(50u64),
        ))
    })();
    let (target, template, hosts, samples) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "plugin_load: {e}\nusage: plugin_load --target HOST:PORT --template FILE [--hosts N] [--samples N] [--no-latency]"
            );
            std::process::exit(2);
        }
    };
    let text = std::fs::read_to_string(&template).unwrap_or_else(|e| panic!("{template}: {e}"));
    let template: Value = serde_json::from_str(text.lines().next().unwrap_or("")).expect("template is one JSON line");
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut hosts_state: Vec<Vec<f64>> = Vec::with_capacity(hosts as usize);
    let t0 = 1_780_000_000.0 + rng.unit() * 1000.0;
    let (mut held_json, mut held_values) = (0u64, 0u64);
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let started = Instant::now();
    let (mut sent, mut bytes, mut plain_bytes, mut seq) = (0u64, 0u64, 0u64, 0u64);
    for sample in 0..samples {
        for host in 0..hosts {
            seq += 1;
            // From the template each time: decimals and zeros as hbc wrote them.
            let mut message = template.clone();
            message["name"] = Value::from(format!("host-{host:05}"));
            message["seq"] = Value::from(seq);
            if sample > 0 && with_latency {
                // hbc's round trip to hbd, in ms to the microsecond, from its second message on.
                message["latency_ms"] = Value::from(((0.2 + rng.unit() * 1.5) * 1000.0).round() / 1000.0);
            }
            if hosts_state.len() <= host as usize {
                hosts_state.push(Vec::new());
            }
            let state = &mut hosts_state[host as usize];
            let mut leaf = 0;
            if let Some(plugins) = message["plugins"].as_object_mut() {
                for plugin in plugins.values_mut() {
                    plugin["at"] =
                        Value::from(((t0 + 60.0 * sample as f64 + rng.unit() * 0.05) * 1000.0).round() / 1000.0);
                    let monitor = plugin["kind"] == "monitor";
                    if let Some(data) = plugin.get_mut("data") {
                        vary(data, "", state, &mut leaf, &mut rng, sample == 0);
                        if monitor {
                            held_json += data.to_string().len() as u64;
                            held_values += count_numbers(data);
                        } else if sample + 1 == samples {
                            held_json += data.to_string().len() as u64;
                        }
                    }
                }
            }
            let json = message.to_string();
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(json.as_bytes()).unwrap();
            let datagram = z.finish().unwrap();
            socket.send_to(&datagram, &target).unwrap();
            sent += 1;
            bytes += datagram.len() as u64;
            plain_bytes += json.len() as u64;
            if sent % 100 == 0 {
                // Wait for this one's ACK (earlier ACKs are skipped).
                let deadline = Instant::now() + Duration::from_secs(2);
                let mut buf = [0u8; 256];
                while Instant::now() < deadline {
                    let Ok((n, _)) = socket.recv_from(&mut buf) else { break };
                    let ack: Value = serde_json::from_slice(&buf[..n]).unwrap_or(Value::Null);
                    if ack["seq"] == seq {
                        break;
                    }
                }
            }
        }
    }
    println!(
        "sent {sent} messages ({hosts} hosts x {samples} samples), {:.1} MiB compressed, {:.1} MiB of JSON, in {:.1} s; held_json_bytes={held_json} held_numbers={held_values}",
        bytes as f64 / 1048576.0,
        plain_bytes as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

enum Class {
    Constant,
    Counter,
    Gauge,
}

fn class(key: &str) -> Class {
    if key.starts_with("total") || key.ends_with("_count") || key == "count" || key.contains("total_") {
        Class::Constant
    } else if key.ends_with("_total") || key.ends_with("dropped") || key.ends_with("errors") {
        Class::Counter
    } else {
        Class::Gauge
    }
}

/// How far a gauge moves between two samples, relative, at most.
fn volatility(key: &str) -> f64 {
    match key {
        "cpu_percent" => 0.3,
        "load_1min" => 0.1,
        "load_5min" => 0.04,
        "load_15min" => 0.015,
        k if k.ends_with("_per_s") => 0.3,
        k if k.ends_with("_mb") || k.ends_with("_gb") || k == "percent" => 0.005,
        _ => 0.05,
    }
}

/// Moves every number of `value` one sample on; `state` holds this host's
/// current values in document order (filled on the first sample).
fn vary(value: &mut Value, key: &str, state: &mut Vec<f64>, leaf: &mut usize, rng: &mut XorShift, first: bool) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                vary(v, k, state, leaf, rng, first);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| vary(v, key, state, leaf, rng, first)),
        Value::Number(n) => {
            let integer = n.is_i64() || n.is_u64();
            let template = n.as_f64().unwrap_or(0.0);
            let decimals = if integer {
                0
            } else {
                let text = n.to_string();
                let shown = text.split('.').nth(1).map_or(0, |d| d.len() as i32);
                if key.ends_with("_per_s") {
                    shown.max(2)
                } else {
                    shown.max(1)
                }
            };
            if first {
                let start = match class(key) {
                    Class::Constant => template,
                    Class::Counter => (rng.unit() * 1000.0).floor(),
                    Class::Gauge if template == 0.0 && rng.unit() < 0.5 => 0.0,
                    Class::Gauge if template == 0.0 => rng.unit() * if integer { 50.0 } else { 5000.0 },
                    Class::Gauge => template * (0.5 + rng.unit()),
                };
                state.push(start);
            }
            let Some(current) = state.get_mut(*leaf) else { return };
            *leaf += 1;
            if !first {
                match class(key) {
                    Class::Constant => {}
                    Class::Counter => {
                        if rng.unit() < 0.3 {
                            *current += (rng.unit() * 20.0).floor();
                        }
                    }
                    Class::Gauge => {
                        let step = (rng.unit() - 0.5) * 2.0 * volatility(key);
                        *current = (*current * (1.0 + step)).max(0.0);
                        if key.contains("percent") {
                            *current = current.min(100.0);
                        }
                    }
                }
            }
            let scale = 10f64.powi(decimals);
            let shown = (*current * scale).round() / scale;
            *value = if integer { Value::from(shown as i64) } else { Value::from(shown) };
        }
        _ => {}
    }
}

fn count_numbers(value: &Value) -> u64 {
    match value {
        Value::Object(map) => map.values().map(count_numbers).sum(),
        Value::Array(items) => items.iter().map(count_numbers).sum(),
        Value::Number(_) => 1,
        _ => 0,
    }
}
