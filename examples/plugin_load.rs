//! Fills hbd's plugin store: sends `--samples` rounds of a template message
//! (what `hbc --once --print` wrote: all built-in plugins) for `--hosts`
//! hosts, zlib-compressed as hbc sends it, pacing itself on ACKs so that
//! nothing is lost. Prints what it sent.
//!
//!     hbc --once --print > template.json
//!     cargo run --release --example plugin_load -- --target 127.0.0.1:50003 --template template.json --hosts 10000 --samples 50

use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn main() {
    let mut args = pico_args::Arguments::from_env();
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
                "plugin_load: {e}\nusage: plugin_load --target HOST:PORT --template FILE [--hosts N] [--samples N]"
            );
            std::process::exit(2);
        }
    };
    let text = std::fs::read_to_string(&template).unwrap_or_else(|e| panic!("{template}: {e}"));
    let mut message: Value =
        serde_json::from_str(text.lines().next().unwrap_or("")).expect("template is one JSON line");
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let started = Instant::now();
    let (mut sent, mut bytes, mut plain_bytes, mut seq) = (0u64, 0u64, 0u64, 0u64);
    for sample in 0..samples {
        for host in 0..hosts {
            seq += 1;
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
            message["name"] = Value::from(format!("host-{host:05}"));
            message["seq"] = Value::from(seq);
            if let Some(plugins) = message["plugins"].as_object_mut() {
                for plugin in plugins.values_mut() {
                    plugin["at"] = Value::from(now + sample as f64);
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
        "sent {sent} messages ({hosts} hosts x {samples} samples), {:.1} MiB compressed, {:.1} MiB of JSON, in {:.1} s",
        bytes as f64 / 1048576.0,
        plain_bytes as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
}
