//! loadgen: sends heartbeat datagrams to an hbd (or to `udp_sink`) at a
//! paced rate, for `benches/ingest.sh`.
//!
//! Each datagram is a protocol-1 heartbeat,
//! `{"ID":"HTB","name":"host-00042","interval":30,"seq":N,...}`, carrying a
//! small plugin-like payload and padded to `--size` bytes of JSON (222 by
//! default, the size of the reference figures in DESIGN.md). Host names cycle
//! through `--hosts` distinct RFC 1123 names.
//!
//! Pacing is by batch: the clock is read every [`BATCH`] datagrams and the
//! thread sleeps only when it is ahead of schedule, so the cost per datagram
//! is one `send(2)` and no timer. ACKs are never read: the socket's receive
//! buffer is set to the kernel's minimum so they are dropped there, on the
//! sender's own port, and never touch the receiver's counters.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress, Status};
use socket2::{Domain, Protocol, Socket, Type};

const USAGE: &str = "\
usage: loadgen [--target ADDR] [--hosts N] [--rate N] [--seconds S] [--count N]
               [--size BYTES] [--interval S] [--zlib] [--threads N] [-h|--help]

  --target ADDR   where to send (default 127.0.0.1:50003)
  --hosts N       distinct host names to cycle through (default 10000)
  --rate N        datagrams per second over all threads; 0: as fast as possible
                  (default 100000)
  --seconds S     stop after S seconds (default 10)
  --count N       stop after N datagrams in all (default: no limit)
  --size BYTES    bytes of JSON per heartbeat before compression (default 222)
  --interval S    the interval each heartbeat announces (default 30): hbd marks
                  a host down this long plus its grace after its last one
  --zlib          compress each datagram with zlib, as hbc can
  --plugins       carry cpu_monitor plugin data (stored by hbd) in each heartbeat
  --threads N     sending threads, each with its own socket (default 1)
  -h, --help      print this help and exit";

/// Datagrams sent between two looks at the clock.
const BATCH: u64 = 256;
const EX_USAGE: u8 = 2;

#[derive(Debug, Clone)]
struct Options {
    target: SocketAddr,
    hosts: u64,
    rate: u64,
    seconds: f64,
    count: Option<u64>,
    size: usize,
    interval: u64,
    zlib: bool,
    plugins: bool,
    threads: u64,
}

/// The value of option `key`, if given; a bad value is named by its option.
fn opt<T: std::str::FromStr>(args: &mut pico_args::Arguments, key: &'static str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    args.opt_value_from_str(key).map_err(|e| format!("{key}: {e}"))
}

fn parse_args() -> Result<Option<Options>, String> {
    let mut args = pico_args::Arguments::from_env();
    if args.contains(["-h", "--help"]) {
        println!("{USAGE}");
        return Ok(None);
    }
    let options = Options {
        target: opt(&mut args, "--target")?.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50003))),
        hosts: opt(&mut args, "--hosts")?.unwrap_or(10_000),
        rate: opt(&mut args, "--rate")?.unwrap_or(100_000),
        seconds: opt(&mut args, "--seconds")?.unwrap_or(10.0),
        count: opt(&mut args, "--count")?,
        size: opt(&mut args, "--size")?.unwrap_or(222),
        interval: opt(&mut args, "--interval")?.unwrap_or(30),
        zlib: args.contains("--zlib"),
        plugins: args.contains("--plugins"),
        threads: opt(&mut args, "--threads")?.unwrap_or(1),
    };
    let rest = args.finish();
    if let Some(arg) = rest.first() {
        return Err(format!("unexpected argument {}", arg.to_string_lossy()));
    }
    if options.hosts == 0 {
        return Err("--hosts must be at least 1".into());
    }
    if options.threads == 0 || options.threads > 64 {
        return Err("--threads must be from 1 to 64".into());
    }
    if !(options.seconds > 0.0 && options.seconds.is_finite()) {
        return Err(format!("--seconds {} is not above 0", options.seconds));
    }
    if options.size > 65_507 {
        return Err(format!("--size {} is larger than a UDP datagram can carry (65507)", options.size));
    }
    if options.count == Some(0) {
        return Err("--count must be at least 1".into());
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let sockets = match (0..options.threads).map(|_| open_socket(options.target)).collect::<io::Result<Vec<_>>>() {
        Ok(sockets) => sockets,
        Err(e) => {
            eprintln!("loadgen: {}: {e}", options.target);
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let results: Vec<Sent> = std::thread::scope(|scope| {
        let handles: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(index, socket)| {
                let options = &options;
                std::thread::Builder::new()
                    .name(format!("loadgen-{index}"))
                    .spawn_scoped(scope, move || send_loop(&socket, options, index as u64))
                    .expect("spawn sender thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("sender thread panicked")).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let sent: u64 = results.iter().map(|r| r.datagrams).sum();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let (min, max) = results.iter().fold((usize::MAX, 0), |(lo, hi), r| (lo.min(r.min_len), hi.max(r.max_len)));
    if let Some(e) = results.iter().find_map(|r| r.first_error.as_ref()) {
        eprintln!("loadgen: first send error: {e}");
    }
    println!(
        "loadgen: sent {sent} datagrams in {elapsed:.3} s ({:.0}/s) to {}, {} hosts, {min}-{max} bytes each{}, {errors} send errors",
        sent as f64 / elapsed,
        options.target,
        options.hosts,
        if options.zlib { " (zlib)" } else { "" },
    );
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A connected socket (one route lookup, not one per datagram) whose receive
/// buffer is as small as the kernel allows, so unread ACKs cost nothing.
fn open_socket(target: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(target), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(1)?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}

/// What one sending thread did.
struct Sent {
    datagrams: u64,
    errors: u64,
    first_error: Option<io::Error>,
    min_len: usize,
    max_len: usize,
}

fn send_loop(socket: &UdpSocket, options: &Options, index: u64) -> Sent {
    let threads = options.threads;
    // Split rate and count so the sum over threads is exact.
    let share = |total: u64| total / threads + u64::from(index < total % threads);
    let rate = share(options.rate);
    let limit = options.count.map(share).unwrap_or(u64::MAX);
    let deadline = Duration::from_secs_f64(options.seconds);
    let width = options.hosts.saturating_sub(1).to_string().len().max(5);
    let mut message = Message::new(options.size, options.interval, width, options.plugins);
    let mut deflater = options.zlib.then(|| Zlib::new(options.size));
    let mut result = Sent { datagrams: 0, errors: 0, first_error: None, min_len: usize::MAX, max_len: 0 };
    // Threads start at different hosts so that together they still cycle
    // through every name evenly.
    let mut host = index % options.hosts;
    let mut seq: u64 = 0;
    let started = Instant::now();
    while result.datagrams < limit {
        let elapsed = started.elapsed();
        if elapsed >= deadline {
            break;
        }
        if rate > 0 {
            let due = Duration::from_secs_f64(result.datagrams as f64 / rate as f64);
            if due > elapsed {
                std::thread::sleep((due - elapsed).min(deadline - elapsed));
                continue;
            }
        }
        for _ in 0..BATCH.min(limit - result.datagrams) {
            let json = message.build(host, seq);
            result.min_len = result.min_len.min(json.len());
            result.max_len = result.max_len.max(json.len());
            let datagram = match deflater.as_mut() {
                Some(zlib) => zlib.compress(json),
                None => json,
            };
            match socket.send(datagram) {
                Ok(_) => result.datagrams += 1,
                // On a connected socket, a receiver that is not (or no
                // longer) there shows as ECONNREFUSED on a later send.
                Err(e) => {
                    result.errors += 1;
                    result.first_error.get_or_insert(e);
                }
            }
            seq += 1;
            host += threads;
            if host >= options.hosts {
                host %= options.hosts;
            }
        }
    }
    result
}

/// Builds heartbeats into one reused buffer.
struct Message {
    size: usize,
    interval: u64,
    /// Real plugin data (`plugins` member) instead of a ride-along one.
    plugins: bool,
    width: usize,
    buf: Vec<u8>,
}

/// Rides along like a plugin's data: a realistic mix of strings and numbers.
const EXTRA: &str =
    r#""os":{"system":"Linux","release":"6.1.0-28-amd64","machine":"x86_64"},"uptime":864123,"load":[0.42,0.35,0.3]"#;

impl Message {
    fn new(size: usize, interval: u64, width: usize, plugins: bool) -> Message {
        Message { size, interval, width, plugins, buf: Vec::with_capacity(size.max(256)) }
    }

    /// The JSON of heartbeat `seq` from host number `host`, padded with a
    /// `"pad"` string to `size` bytes when there is room for one.
    fn build(&mut self, host: u64, seq: u64) -> &[u8] {
        use std::io::Write;
        self.buf.clear();
        if self.plugins {
            let at =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            let _ = write!(
                self.buf,
                r#"{{"ID":"HTB","name":"host-{host:0width$}","interval":{interval},"seq":{seq},"plugins":{{"cpu_monitor":{{"kind":"monitor","at":{at:.3},"data":{{"cpu_percent":{},"load_1min":{}}}}}}}"#,
                seq % 100,
                (seq % 7) as f64 / 2.0,
                interval = self.interval,
                width = self.width
            );
        } else {
            let _ = write!(
                self.buf,
                r#"{{"ID":"HTB","name":"host-{host:0width$}","interval":{interval},"seq":{seq},{EXTRA}"#,
                interval = self.interval,
                width = self.width
            );
        }
        const PAD_FRAME: usize = r#","pad":""}"#.len();
        if self.size >= self.buf.len() + PAD_FRAME {
            let pad = self.size - self.buf.len() - PAD_FRAME;
            self.buf.extend_from_slice(br#","pad":""#);
            self.buf.resize(self.buf.len() + pad, b'x');
            self.buf.push(b'"');
        }
        self.buf.push(b'}');
        &self.buf
    }
}

/// zlib (RFC 1950) with one reused compressor and output buffer.
struct Zlib {
    compress: Compress,
    out: Vec<u8>,
}

impl Zlib {
    fn new(size: usize) -> Zlib {
        Zlib { compress: Compress::new(Compression::fast(), true), out: Vec::with_capacity(size + 64) }
    }

    fn compress(&mut self, input: &[u8]) -> &[u8] {
        self.compress.reset();
        self.out.clear();
        self.out.reserve(input.len() + 64);
        loop {
            let consumed = self.compress.total_in() as usize;
            match self.compress.compress_vec(&input[consumed..], &mut self.out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return &self.out,
                Ok(_) => self.out.reserve(64),
                Err(e) => panic!("zlib compression failed: {e}"),
            }
        }
    }
}
