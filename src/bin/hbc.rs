//! `hbc`: parses the command line, loads `hbc.yaml`, and runs the client
//! (`hbd::client`). Exit status as in `hbd::cli`; with `--once`, 1 when a
//! server did not acknowledge.

use std::process::ExitCode;

use hbd::cli::{self, EX_CONFIG};
use hbd::client;
use hbd::client::config::{ClientConfig, Servers};
use hbd::logging::{self, LogFormat};
use hbd::yaml::ConfigFile;

const USAGE: &str = "\
usage: hbc [-c FILE] [-s|--server HOST[:PORT]]... [-p|--port N] [-i|--interval SECS] [--name NAME]
           [--enable-plugin NAME]... [--disable-plugin NAME]... [--once] [--print] [--check-config]
           [-v]... [-V] [-h]

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
      --check-config        check the configuration, print it with defaults filled in, exit
  -v, --verbose             log more: once for debug, twice for trace
  -V, --version             print the version and exit
  -h, --help                print this help and exit

See hbc(8) and hbc.yaml(5).";

struct Options {
    common: cli::Common,
    servers: Vec<String>,
    port: Option<u16>,
    interval: Option<u64>,
    name: Option<String>,
    enable: Vec<String>,
    disable: Vec<String>,
    once: bool,
    print: bool,
    check_config: bool,
}

fn parse_args() -> Result<Option<Options>, pico_args::Error> {
    let mut args = pico_args::Arguments::from_env();
    let Some(common) = cli::common(&mut args, "hbc", USAGE)? else {
        return Ok(None);
    };
    let options = Options {
        common,
        servers: args.values_from_str(["-s", "--server"])?,
        port: cli::opt_parsed(&mut args, ["-p", "--port"], "a port number (1 to 65535)")?,
        interval: cli::opt_parsed(&mut args, ["-i", "--interval"], "a number of seconds")?,
        name: args.opt_value_from_str("--name")?,
        enable: args.values_from_str("--enable-plugin")?,
        disable: args.values_from_str("--disable-plugin")?,
        once: args.contains("--once"),
        print: args.contains("--print"),
        check_config: args.contains("--check-config"),
    };
    cli::no_leftovers(args)?;
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return cli::usage_error("hbc", USAGE, cli::explain(&e)),
    };
    let _ = logging::init(None, LogFormat::Text, logging::level(options.common.verbosity));
    let path = cli::config_path(options.common.config.clone(), ".hbc.yaml");
    let mut config = match path.as_deref().map_or_else(|| Ok(ClientConfig::default()), ClientConfig::load) {
        Ok(config) => config,
        Err(e) => return cli::fail("hbc", EX_CONFIG, e),
    };
    // The command line wins over the file; the result is checked as a whole.
    if !options.servers.is_empty() {
        config.server = Servers::Many(options.servers.clone());
    }
    config.port = options.port.unwrap_or(config.port);
    config.interval = options.interval.unwrap_or(config.interval);
    config.name = options.name.clone().or(config.name);
    let settings = match config.check("command line") {
        Ok(settings) => settings,
        Err(e) => return cli::fail("hbc", EX_CONFIG, e),
    };
    let plugins = match config.plugins.build(&options.enable, &options.disable) {
        Ok(plugins) => plugins,
        Err(e) => return cli::fail("hbc", EX_CONFIG, e),
    };
    if options.check_config {
        let origin = path.as_ref().map_or_else(|| "built-in defaults".to_string(), |p| p.display().to_string());
        match serde_yaml::to_string(&config) {
            Ok(yaml) => print!("# effective configuration from {origin} and the command line\n{yaml}"),
            Err(e) => eprintln!("hbc: print configuration: {e}"),
        }
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    if settings.targets.is_empty() && !options.print {
        return cli::usage_error("hbc", USAGE, "no server to send to: give -s HOST or set `server` in hbc.yaml");
    }
    let result = if options.once {
        client::run_once(&settings, plugins, options.print)
    } else {
        client::run(&settings, plugins, options.print)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::fail("hbc", 1, e),
    }
}
