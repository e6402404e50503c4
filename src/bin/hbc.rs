//! `hbc`: parses the command line, loads `hbc.yaml`, and runs the client
//! (`hbd::client`). Exit status: 0 success, 2 usage error, 78 (EX_CONFIG)
//! bad configuration, 1 any other failure (with `--once`: no ACK).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hbd::client::{self, parse_server, ClientConfig};
use hbd::config::LogFormat;
use hbd::{cli, logging};

const USAGE: &str = "\
usage: hbc [-c FILE] [-s|--server HOST[:PORT]]... [-p|--port N] [-i|--interval SECS] [--name NAME]
           [--enable-plugin NAME]... [--disable-plugin NAME]... [--once] [--print] [-v]... [-V] [-h]

  -c, --config FILE         read FILE (default: ~/.hbc.yaml if it exists, else built-in defaults)
  -s, --server HOST[:PORT]  send to this hbd; repeat for several (replaces `server` of the file)
  -p, --port N              port of servers given without one (default 50003)
  -i, --interval SECS       seconds between heartbeats (default 30)
      --name NAME           host name to report (default: this system's host name)
      --enable-plugin NAME  run plugin NAME even if the file disables it; repeatable
      --disable-plugin NAME do not run plugin NAME; repeatable
      --once                collect every enabled plugin once, send one heartbeat, exit
                            0 when every server acknowledged it
      --print               write each message's JSON to standard output instead of sending
  -v, --verbose             log more: once for debug, twice for trace
  -V, --version             print the version and exit
  -h, --help                print this help and exit

See hbc(8) and hbc.yaml(5).";

const EX_USAGE: u8 = 2;
const EX_CONFIG: u8 = 78;

struct Options {
    config: Option<PathBuf>,
    servers: Vec<String>,
    port: Option<u16>,
    interval: Option<u64>,
    name: Option<String>,
    enable: Vec<String>,
    disable: Vec<String>,
    once: bool,
    print: bool,
    verbosity: u8,
}

fn parse_args() -> Result<Option<Options>, pico_args::Error> {
    let mut args = pico_args::Arguments::from_env();
    let Some(verbosity) = cli::common(&mut args, "hbc", USAGE) else {
        return Ok(None);
    };
    let options = Options {
        config: args.opt_value_from_str(["-c", "--config"])?,
        servers: args.values_from_str(["-s", "--server"])?,
        port: args.opt_value_from_str(["-p", "--port"])?,
        interval: args.opt_value_from_str(["-i", "--interval"])?,
        name: args.opt_value_from_str("--name")?,
        enable: args.values_from_str("--enable-plugin")?,
        disable: args.values_from_str("--disable-plugin")?,
        once: args.contains("--once"),
        print: args.contains("--print"),
        verbosity,
    };
    cli::no_leftovers(args)?;
    Ok(Some(options))
}

fn load_config(options: &Options) -> Result<ClientConfig, String> {
    let path = match &options.config {
        Some(path) => Some(path.clone()),
        None => std::env::var_os("HOME").map(|home| Path::new(&home).join(".hbc.yaml")).filter(|p| p.exists()),
    };
    let mut config = match path {
        Some(path) => ClientConfig::load(&path).map_err(|e| e.to_string())?,
        None => ClientConfig::default(),
    };
    // The command line wins over the file; check the result as a whole.
    if !options.servers.is_empty() {
        config.server = client::Servers::Many(options.servers.clone());
    }
    if let Some(port) = options.port {
        config.port = port;
    }
    if let Some(interval) = options.interval {
        config.interval = interval;
    }
    if let Some(name) = &options.name {
        config.name = Some(name.clone());
    }
    config.check("command line").map_err(|e| e.to_string())?;
    Ok(config)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hbc: {e}\n{USAGE}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let _ = logging::init(None, LogFormat::Text, logging::level(options.verbosity));
    let config = match load_config(&options) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hbc: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let name = match config.host_name() {
        Ok(name) => name,
        Err(e) => {
            eprintln!("hbc: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let targets = config.server.list().iter().filter_map(|s| parse_server(s, config.port).ok()).collect::<Vec<_>>();
    if targets.is_empty() && !options.print {
        eprintln!("hbc: no server to send to: give -s HOST or set `server` in hbc.yaml\n{USAGE}");
        return ExitCode::from(EX_USAGE);
    }
    let plugins = match config.plugins.build(&options.enable, &options.disable) {
        Ok(plugins) => plugins,
        Err(e) => {
            eprintln!("hbc: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let result = if options.once {
        client::run_once(&config, name, targets, plugins, options.print)
    } else {
        client::run(&config, name, targets, plugins, options.print)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hbc: {e}");
            ExitCode::FAILURE
        }
    }
}
