//! udp_sink: the ingest reference for `benches/ingest.sh`, a bare
//! `recv_from` loop that counts datagrams and does nothing else.
//!
//! The socket is set up as hbd's is: SO_RCVBUF requested before bind, 4 MiB
//! by default (hbd's `recv_buffer_size`), so the only difference from hbd is
//! everything hbd does with a datagram after receiving it. It answers no
//! ACKs unless `--ack` asks for a fixed one per datagram, which separates
//! the cost of the protocol's ACK (one `sendto(2)`) from hbd's own work. It
//! stops after `--idle` seconds without a datagram once the first
//! one arrived, or after `--seconds`, and prints the count and the rate
//! between the first and the last datagram.
//!
//! `--mmsg` is the honest ceiling for an ACKed protocol (issue 25): it
//! receives with `recvmmsg(2)` up to 64 at a time, as hbd does, and with
//! `--ack` answers each batch with one `sendmmsg(2)`, hbd's own pattern
//! without any of its work.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

const USAGE: &str = "\
usage: udp_sink [--bind ADDR] [--rcvbuf BYTES] [--idle S] [--seconds S] [--ack]
                [-h|--help]

  --bind ADDR      where to listen (default 127.0.0.1:50003)
  --rcvbuf BYTES   SO_RCVBUF to request (default 4194304, as hbd)
  --idle S         stop after S seconds without a datagram, once one has
                   arrived (default 2)
  --seconds S      stop after S seconds in all (default: no limit)
  --ack            answer each datagram with an ACK of hbd's size
  --mmsg           receive in batches of 64 with recvmmsg(2) and ACK each
                   batch with one sendmmsg(2), as hbd does
  -h, --help       print this help and exit";

const EX_USAGE: u8 = 2;
/// How often a blocked `recv_from` wakes to look at the clock.
const POLL: Duration = Duration::from_millis(100);
/// What `--ack` sends: as long as hbd's ACK to `host-00042` with a 6-digit seq.
const ACK: &[u8] = br#"{"ID":"ACK","name":"host-00042","seq":123456}"#;

struct Options {
    bind: SocketAddr,
    rcvbuf: usize,
    idle: f64,
    seconds: Option<f64>,
    ack: bool,
    mmsg: bool,
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
        bind: opt(&mut args, "--bind")?.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50003))),
        rcvbuf: opt(&mut args, "--rcvbuf")?.unwrap_or(4 << 20),
        idle: opt(&mut args, "--idle")?.unwrap_or(2.0),
        seconds: opt(&mut args, "--seconds")?,
        ack: args.contains("--ack"),
        mmsg: args.contains("--mmsg"),
    };
    let rest = args.finish();
    if let Some(arg) = rest.first() {
        return Err(format!("unexpected argument {}", arg.to_string_lossy()));
    }
    if !(options.idle > 0.0 && options.idle.is_finite()) {
        return Err(format!("--idle {} is not above 0", options.idle));
    }
    if let Some(s) = options.seconds.filter(|s| !(*s > 0.0 && s.is_finite())) {
        return Err(format!("--seconds {s} is not above 0"));
    }
    Ok(Some(options))
}

fn bind(options: &Options) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(options.bind), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(options.rcvbuf)?;
    socket.bind(&options.bind.into())?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket.into())
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_sink: {e}\n{USAGE}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let socket = match bind(&options) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("udp_sink: bind udp {}: {e}", options.bind);
            return ExitCode::FAILURE;
        }
    };
    let effective = socket.try_clone().map(|s| Socket::from(s).recv_buffer_size().unwrap_or(0)).unwrap_or(0);
    // The same word as hbd's, so a script can wait for either.
    eprintln!("udp_sink: listening on {} (SO_RCVBUF {effective})", socket.local_addr().map_or(options.bind, |a| a));

    let idle = Duration::from_secs_f64(options.idle);
    let limit = options.seconds.map(Duration::from_secs_f64);
    let started = Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut count: u64 = 0;
    let mut bytes: u64 = 0;
    let mut first: Option<Instant> = None;
    let mut last = started;
    let mut ack_errors: u64 = 0;
    let mut batch = options.mmsg.then(MmsgBatch::new);
    loop {
        // Datagrams taken, their bytes, and ACKs that could not be sent.
        let received = match batch.as_mut() {
            Some(batch) => batch.receive(&socket).map(|n| {
                let unsent = if options.ack && batch.ack(&socket, n).is_err() { n } else { 0 };
                (n, batch.bytes(n), unsent)
            }),
            None => socket.recv_from(&mut buf).map(|(len, source)| {
                let unsent = usize::from(options.ack && socket.send_to(ACK, source).is_err());
                (1, len as u64, unsent)
            }),
        };
        match received {
            Ok((n, len, unsent)) => {
                let before = count;
                count += n as u64;
                bytes += len;
                ack_errors += unsent as u64;
                // The clock is read once every 256 datagrams, not on each:
                // precise enough for idling and the rate, and it keeps the
                // loop bare.
                if before == 0 || before / 256 != count / 256 {
                    last = Instant::now();
                    first.get_or_insert(last);
                }
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                eprintln!("udp_sink: receive: {e}");
                return ExitCode::FAILURE;
            }
        }
        let now = Instant::now();
        if first.is_some() && now - last >= idle {
            break;
        }
        if limit.is_some_and(|limit| now - started >= limit) {
            break;
        }
    }
    report(count, bytes, first, last);
    if ack_errors > 0 {
        eprintln!("udp_sink: {ack_errors} ACKs could not be sent");
    }
    ExitCode::SUCCESS
}

/// Datagrams in one `recvmmsg(2)`, as hbd's udp.rs takes them.
const MMSG_BATCH: usize = 64;
const MMSG_BUFFER: usize = 2048;

/// The buffers, addresses and headers of one batch, reused.
struct MmsgBatch {
    buffers: Vec<u8>,
    addresses: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    ack_iovecs: Vec<libc::iovec>,
    ack_headers: Vec<libc::mmsghdr>,
}

impl MmsgBatch {
    fn new() -> MmsgBatch {
        // SAFETY: all-zero bytes are valid values of these plain C structs.
        let (address, iovec, header) = unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        MmsgBatch {
            buffers: vec![0; MMSG_BATCH * MMSG_BUFFER],
            addresses: vec![address; MMSG_BATCH],
            iovecs: vec![iovec; MMSG_BATCH],
            headers: vec![header; MMSG_BATCH],
            ack_iovecs: vec![iovec; MMSG_BATCH],
            ack_headers: vec![header; MMSG_BATCH],
        }
    }

    fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        for i in 0..MMSG_BATCH {
            self.iovecs[i] =
                libc::iovec { iov_base: self.buffers[i * MMSG_BUFFER..].as_mut_ptr().cast(), iov_len: MMSG_BUFFER };
            let header = &mut self.headers[i].msg_hdr;
            header.msg_name = (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &mut self.iovecs[i];
            header.msg_iovlen = 1;
        }
        // SAFETY: each header points at its own address and one iovec over
        // its own part of `buffers`, all alive for the call. MSG_WAITFORONE:
        // block (SO_RCVTIMEO) for the first datagram, then take what waits.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                MMSG_BATCH as _,
                libc::MSG_WAITFORONE as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn bytes(&self, n: usize) -> u64 {
        self.headers[..n].iter().map(|h| u64::from(h.msg_len)).sum()
    }

    /// One ACK to each sender of the last `n` datagrams, in one `sendmmsg(2)`.
    fn ack(&mut self, socket: &UdpSocket, n: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        for i in 0..n {
            self.ack_iovecs[i] = libc::iovec { iov_base: ACK.as_ptr() as *mut libc::c_void, iov_len: ACK.len() };
            let header = &mut self.ack_headers[i].msg_hdr;
            header.msg_name = (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = self.headers[i].msg_hdr.msg_namelen;
            header.msg_iov = &mut self.ack_iovecs[i];
            header.msg_iovlen = 1;
        }
        // SAFETY: the first `n` headers point at the static ACK and at the
        // senders' addresses the kernel wrote; it only reads them.
        let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), self.ack_headers.as_mut_ptr(), n as _, 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

fn report(count: u64, bytes: u64, first: Option<Instant>, last: Instant) {
    let span = first.map_or(0.0, |first| (last - first).as_secs_f64());
    let rate = if span > 0.0 { count as f64 / span } else { 0.0 };
    println!("udp_sink: received {count} datagrams ({bytes} bytes) in {span:.3} s ({rate:.0}/s)");
}
