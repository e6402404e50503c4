//! WebSocket fan-out benchmark: N clients on hbd's WebSocket while heartbeats
//! arrive at a fixed rate; reports the time from sending a datagram to its
//! `heartbeat` update reaching each client (p50/p99/max over all clients).
//!
//! Each client matches updates to sends by the host's heartbeat `count`,
//! found by a text search (see the reading loop);
//! the host has a name of its own per run.
//!
//!     cargo run --release --example ws_fanout -- --udp 127.0.0.1:50003 --ws 127.0.0.1:50005 --clients 100 --rate 1000 --seconds 10

use std::net::{TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tungstenite::Message;

struct Args {
    udp: String,
    ws: String,
    clients: usize,
    rate: u64,
    seconds: u64,
}

fn parse() -> Result<Args, pico_args::Error> {
    let mut a = pico_args::Arguments::from_env();
    Ok(Args {
        udp: a.value_from_str("--udp")?,
        ws: a.value_from_str("--ws")?,
        clients: a.opt_value_from_str("--clients")?.unwrap_or(100),
        rate: a.opt_value_from_str("--rate")?.unwrap_or(1000),
        seconds: a.opt_value_from_str("--seconds")?.unwrap_or(10),
    })
}

fn main() {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("ws_fanout: {e}\nusage: ws_fanout --udp HOST:PORT --ws HOST:PORT [--clients N] [--rate N] [--seconds N]");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let (to_main, latencies) = mpsc::channel::<Vec<f64>>();
    let (ready_tx, ready) = mpsc::channel::<()>();
    let total = args.rate * args.seconds;
    // A name of its own per run, so that counts start at 1.
    let name = format!("fanout-{}", std::process::id());
    // Send times by heartbeat number, shared read-only after sending: each
    // client receives them over its own channel once sending is done.
    let mut send_time_senders = Vec::new();
    for _ in 0..args.clients {
        let (tx, rx) = mpsc::channel::<Vec<Instant>>();
        send_time_senders.push(tx);
        let (to_main, ready_tx, ws, name) = (to_main.clone(), ready_tx.clone(), args.ws.clone(), name.clone());
        std::thread::spawn(move || {
            let stream = TcpStream::connect(&ws).expect("connect");
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let (mut socket, _) = tungstenite::client(format!("ws://{ws}/"), stream).expect("handshake");
            // Steady state: measure from when this client has its snapshot.
            while let Ok(message) = socket.read() {
                if matches!(&message, Message::Text(text) if text.starts_with("{\"type\":\"snapshot\"")) {
                    break;
                }
            }
            let _ = ready_tx.send(());
            let mut arrivals: Vec<(u64, Instant)> = Vec::new();
            while let Ok(message) = socket.read() {
                if let Message::Text(text) = message {
                    let at = Instant::now();
                    // Only this run's host sends, so each `"count":` of a
                    // message naming it is one of its heartbeats (a burst
                    // comes as one batch of updates). Found by search, not
                    // parsed: parsing each update into a tree cost the
                    // clients three times hbd's CPU, on the same two cores.
                    if !text.contains(name.as_str()) {
                        continue;
                    }
                    let mut done = false;
                    for (at_count, _) in text.match_indices("\"count\":") {
                        let digits = &text[at_count + 8..];
                        let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
                        if let Ok(count @ 1..) = digits[..end].parse::<u64>() {
                            arrivals.push((count, at));
                            done |= count >= total;
                        }
                    }
                    if done {
                        break;
                    }
                }
            }
            let sent = rx.recv().unwrap_or_default();
            let ms: Vec<f64> = arrivals
                .iter()
                .filter_map(|(count, at)| {
                    sent.get(*count as usize - 1).map(|s| at.duration_since(*s).as_secs_f64() * 1e3)
                })
                .collect();
            let _ = to_main.send(ms);
        });
    }
    for _ in 0..args.clients {
        ready.recv().expect("a client failed to connect");
    }
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    let mut sent = Vec::with_capacity(total as usize);
    let begin = Instant::now();
    for n in 0..total {
        // Sleep, not spin: on a small machine a spinning sender takes a core
        // from hbd and the clients being measured. The send time is taken
        // after waking, so a late wake-up does not count as hbd's latency.
        let due = begin + Duration::from_secs_f64(n as f64 / args.rate as f64);
        if let Some(ahead) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(ahead);
        }
        let message = format!("{{\"ID\":\"HTB\",\"name\":\"{name}\",\"interval\":30,\"seq\":{n}}}");
        sent.push(Instant::now());
        udp.send_to(message.as_bytes(), &args.udp).unwrap();
    }
    for tx in &send_time_senders {
        let _ = tx.send(sent.clone());
    }
    drop(to_main);
    let mut all: Vec<f64> = latencies.iter().flatten().collect();
    all.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
    };
    let expected = total as usize * args.clients;
    println!(
        "clients {} rate {}/s seconds {}: {} of {} updates delivered; datagram to browser p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({:.1} s)",
        args.clients,
        args.rate,
        args.seconds,
        all.len(),
        expected,
        pick(0.5),
        pick(0.99),
        all.last().copied().unwrap_or(f64::NAN),
        start.elapsed().as_secs_f64()
    );
}
