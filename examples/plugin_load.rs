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
//! A seeded xorshift makes every run send the same data. `--threads N`
//! splits the hosts between N senders, each with its own socket and seed
//! (one thread sends what this program always sent), for fleets whose
//! filling one thread would take most of an hour (100,000 hosts).
//! `--skip N` works out N rounds without sending them, then sends
//! `--samples` more: with the same `--hosts` and `--threads`, what a later
//! run sends continues each host's series where an earlier run of N
//! samples stopped (times, values and sequence numbers), as the next
//! message of a real fleet would.
//!
//!     hbc --once --print > template.json
//!     cargo run --release --example plugin_load -- --target 127.0.0.1:50003 --template template.json --hosts 10000 --samples 50

use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde_json::Value;

const USAGE: &str =
    "usage: plugin_load --target HOST:PORT --template FILE [--hosts N] [--samples N] [--skip N] [--threads N] [--no-latency]";

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
            args.opt_value_from_str("--threads")?.unwrap_or(1u64),
            args.opt_value_from_str("--skip")?.unwrap_or(0u64),
        ))
    })();
    let (target, template, hosts, samples, threads, skip) = match parsed {
        Ok(p) if (1..=16).contains(&p.4) => p,
        Ok(_) => {
            eprintln!("plugin_load: --threads must be from 1 to 16\n{USAGE}");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("plugin_load: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let text = std::fs::read_to_string(&template).unwrap_or_else(|e| panic!("{template}: {e}"));
    let template: Value = serde_json::from_str(text.lines().next().unwrap_or("")).expect("template is one JSON line");
    let started = Instant::now();
    // Each thread sends its own share of the hosts, every sample in turn,
    // from its own socket and with its own seeded random numbers (one
    // thread sends exactly what this program always sent).
    let totals: Vec<Totals> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let first = hosts * t / threads;
                let end = hosts * (t + 1) / threads;
                let (template, target) = (&template, &target);
                let rounds = Rounds { skip, samples };
                scope.spawn(move || send_hosts(template, target, first..end, rounds, with_latency, t))
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("sender thread")).collect()
    });
    let sum = totals.iter().fold(Totals::default(), |a, b| Totals {
        sent: a.sent + b.sent,
        bytes: a.bytes + b.bytes,
        plain_bytes: a.plain_bytes + b.plain_bytes,
        held_json: a.held_json + b.held_json,
        held_values: a.held_values + b.held_values,
    });
    println!(
        "sent {} messages ({hosts} hosts x {samples} samples), {:.1} MiB compressed, {:.1} MiB of JSON, in {:.1} s; held_json_bytes={} held_numbers={}",
        sum.sent,
        sum.bytes as f64 / 1048576.0,
        sum.plain_bytes as f64 / 1048576.0,
        started.elapsed().as_secs_f64(),
        sum.held_json,
        sum.held_values
    );
}

#[derive(Default)]
struct Totals {
    sent: u64,
    bytes: u64,
    plain_bytes: u64,
    held_json: u64,
    held_values: u64,
}

/// Which rounds a sender works out (`skip + samples`), and which of them
/// it sends (the last `samples`).
#[derive(Clone, Copy)]
struct Rounds {
    skip: u64,
    samples: u64,
}

/// Sends `rounds` for the hosts numbered `hosts`, pacing on ACKs.
fn send_hosts(
    template: &Value,
    target: &str,
    hosts: std::ops::Range<u64>,
    rounds: Rounds,
    with_latency: bool,
    thread: u64,
) -> Totals {
    let Rounds { skip, samples } = rounds;
    let samples = skip + samples;
    let leaves = leaves(template);
    // One message is rewritten in place for every host and sample: every
    // number in it is set from the host's state (cloning the template per
    // message cost more than everything else here).
    let mut message = template.clone();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d ^ thread.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut hosts_state: Vec<Vec<f64>> = vec![Vec::new(); (hosts.end - hosts.start) as usize];
    let t0 = 1_780_000_000.0 + rng.unit() * 1000.0;
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut totals = Totals::default();
    // Sequence numbers are unique over all threads.
    let mut seq = hosts.start * samples;
    for sample in 0..samples {
        // Skipped rounds draw the same random numbers, so what is sent next
        // continues them; only the message is not made.
        let sending = sample >= skip;
        for host in hosts.clone() {
            seq += 1;
            message["name"] = Value::from(format!("host-{host:05}"));
            message["seq"] = Value::from(seq);
            if let Some(object) = message.as_object_mut() {
                if sample > 0 && with_latency {
                    // hbc's round trip to hbd, in ms to the microsecond, from its second message on.
                    let latency = ((0.2 + rng.unit() * 1.5) * 1000.0).round() / 1000.0;
                    object.insert("latency_ms".into(), Value::from(latency));
                } else {
                    object.remove("latency_ms");
                }
            }
            let state = &mut hosts_state[(host - hosts.start) as usize];
            let mut leaf = 0;
            if let Some(plugins) = message["plugins"].as_object_mut() {
                for plugin in plugins.values_mut() {
                    plugin["at"] =
                        Value::from(((t0 + 60.0 * sample as f64 + rng.unit() * 0.05) * 1000.0).round() / 1000.0);
                    let monitor = plugin["kind"] == "monitor";
                    if let Some(data) = plugin.get_mut("data") {
                        vary(data, &leaves, state, &mut leaf, &mut rng, sample == 0);
                        if !sending {
                            continue;
                        }
                        if monitor {
                            totals.held_json += data.to_string().len() as u64;
                            totals.held_values += count_numbers(data);
                        } else if sample + 1 == samples {
                            totals.held_json += data.to_string().len() as u64;
                        }
                    }
                }
            }
            if !sending {
                continue;
            }
            let json = message.to_string();
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(json.as_bytes()).unwrap();
            let datagram = z.finish().unwrap();
            socket.send_to(&datagram, target).unwrap();
            totals.sent += 1;
            totals.bytes += datagram.len() as u64;
            totals.plain_bytes += json.len() as u64;
            if totals.sent % 100 == 0 {
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
    totals
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

fn count_numbers(value: &Value) -> u64 {
    match value {
        Value::Object(map) => map.values().map(count_numbers).sum(),
        Value::Array(items) => items.iter().map(count_numbers).sum(),
        Value::Number(_) => 1,
        _ => 0,
    }
}

/// What the template says of one number: how it moves and how it is shown.
struct Leaf {
    class: Class,
    volatility: f64,
    percent: bool,
    integer: bool,
    decimals: i32,
    template: f64,
}

/// Every number of the template's plugin data, in the order [`vary`] walks them.
fn leaves(template: &Value) -> Vec<Leaf> {
    fn walk(value: &Value, key: &str, out: &mut Vec<Leaf>) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, k, out)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, key, out)),
            Value::Number(n) => {
                let integer = n.is_i64() || n.is_u64();
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
                out.push(Leaf {
                    class: class(key),
                    volatility: volatility(key),
                    percent: key.contains("percent"),
                    integer,
                    decimals,
                    template: n.as_f64().unwrap_or(0.0),
                });
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(plugins) = template["plugins"].as_object() {
        for plugin in plugins.values() {
            if let Some(data) = plugin.get("data") {
                walk(data, "", &mut out);
            }
        }
    }
    out
}

/// Moves every number of `value` one sample on; `state` holds this host's
/// current values in document order (filled on the first sample), `leaves`
/// what the template says of each.
fn vary(value: &mut Value, leaves: &[Leaf], state: &mut Vec<f64>, leaf: &mut usize, rng: &mut XorShift, first: bool) {
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                vary(v, leaves, state, leaf, rng, first);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| vary(v, leaves, state, leaf, rng, first)),
        Value::Number(_) => {
            let Some(info) = leaves.get(*leaf) else { return };
            if first {
                let template = info.template;
                let start = match info.class {
                    Class::Constant => template,
                    Class::Counter => (rng.unit() * 1000.0).floor(),
                    Class::Gauge if template == 0.0 && rng.unit() < 0.5 => 0.0,
                    Class::Gauge if template == 0.0 => rng.unit() * if info.integer { 50.0 } else { 5000.0 },
                    Class::Gauge => template * (0.5 + rng.unit()),
                };
                state.push(start);
            }
            let Some(current) = state.get_mut(*leaf) else { return };
            *leaf += 1;
            if !first {
                match info.class {
                    Class::Constant => {}
                    Class::Counter => {
                        if rng.unit() < 0.3 {
                            *current += (rng.unit() * 20.0).floor();
                        }
                    }
                    Class::Gauge => {
                        let step = (rng.unit() - 0.5) * 2.0 * info.volatility;
                        *current = (*current * (1.0 + step)).max(0.0);
                        if info.percent {
                            *current = current.min(100.0);
                        }
                    }
                }
            }
            let scale = 10f64.powi(info.decimals);
            let shown = (*current * scale).round() / scale;
            *value = if info.integer { Value::from(shown as i64) } else { Value::from(shown) };
        }
        _ => {}
    }
}
