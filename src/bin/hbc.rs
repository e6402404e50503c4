//! `hbc`: parses the command line, loads `hbc.yaml`, and runs the client
//! (`hbd::client`). Exit status as in `hbd::cli`; with `--once`, 1 when a
//! server did not acknowledge.

use std::process::ExitCode;

use hbd::cli::{self, EX_CONFIG};
use std::ffi::OsString;

use hbd::client::config::{ClientConfig, Servers};
use hbd::client::{self, run};
use hbd::logging::{self, LogFormat};
use hbd::wire::JobEvent;
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

  hbc run [OPTIONS] CMD [ARGS...]  run CMD as a job hbd watches: hbc run --help
  hbc signal OPTIONS               send one signal of a job: hbc signal --help

See hbc(8) and hbc.yaml(5).";

const RUN_USAGE: &str = "\
usage: hbc run [--name NAME] [--interval S] [--grace S] [--timeout S] [-c FILE] [-s HOST[:PORT]]...
               [-p N] [-v]... [--] CMD [ARGS...]

  Tells hbd the job NAME started, runs CMD with its output passed through,
  tells hbd how it ended (exit code or signal, run time, the last 4 KiB of
  output) and exits with CMD's status (128+N for signal N, 124 for
  --timeout, 127 when CMD is not found). hbd being unreachable never stops
  the job: hbc says so on standard error.

      --name NAME           the job's name (default: CMD's file name up to its first dot)
      --interval S          seconds between runs: late (down) without a success within S + grace
      --grace S             seconds of grace after the interval (default: hbd's grace)
      --timeout S           kill CMD and its process group after S seconds; a failed run
  -c, --config FILE         read FILE for `server`, `port` and `key` (default: ~/.hbc.yaml)
  -s, --server HOST[:PORT]  report to this hbd; repeatable
  -p, --port N              port of servers given without one (default 50003)
  -v, --verbose             log more

See hbc(8), JOBS.";

const SIGNAL_USAGE: &str = "\
usage: hbc signal --name NAME --start|--ok|--fail[=CODE] [--message TEXT] [--interval S] [--grace S]
                  [--timeout S] [-c FILE] [-s HOST[:PORT]]... [-p N] [--print] [-v]...

  Sends one signal of the job NAME: a run started, succeeded or failed
  (with exit code CODE). Exit status 0 when every server acknowledged it,
  1 when one did not within 3 s.

      --message TEXT        a short text shown with the run (at most 512 characters)
      --print               write the signal's JSON to standard output instead of sending
  (other options as for hbc run)

See hbc(8), JOBS.";

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
    match std::env::args_os().nth(1).as_deref().and_then(|a| a.to_str()) {
        Some("run") => return job_main(true),
        Some("signal") => return job_main(false),
        _ => {}
    }
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

/// The command line of `hbc run` and `hbc signal`.
#[derive(Default)]
struct JobArgs {
    config: Option<std::path::PathBuf>,
    servers: Vec<String>,
    port: Option<u16>,
    name: Option<String>,
    interval: Option<f64>,
    grace: Option<f64>,
    timeout: Option<f64>,
    verbosity: u8,
    event: Option<JobEvent>,
    exit_code: Option<i32>,
    message: Option<String>,
    print: bool,
    help: bool,
    command: Vec<OsString>,
}

/// Seconds from the command line: a number above 0 (at least 0 for
/// `--grace`) and at most a week, as hbd takes them.
fn seconds(option: &str, value: &str, zero_ok: bool) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && (s > 0.0 || (zero_ok && s == 0.0)) && s <= 604800.0 => Ok(s),
        _ => Err(format!("{option} {value:?} is not a number of seconds up to 604800")),
    }
}

/// Options first; `--` or the first word that is no option starts `run`'s
/// command, whose own options are its own.
fn parse_job_args(args: Vec<OsString>, run: bool) -> Result<JobArgs, String> {
    let mut parsed = JobArgs::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str().map(str::to_string) else {
            if run {
                parsed.command.push(arg);
                parsed.command.extend(args);
                break;
            }
            return Err(format!("unexpected argument {}", arg.to_string_lossy()));
        };
        let (option, inline) = match text.split_once('=') {
            Some((option, value)) if option.starts_with("--") => (option.to_string(), Some(value.to_string())),
            _ => (text.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().and_then(|v| v.into_string().ok()).ok_or_else(|| format!("{option} needs {what}")),
            }
        };
        match option.as_str() {
            "--" if run => {
                parsed.command.extend(args);
                break;
            }
            "-h" | "--help" => parsed.help = true,
            "-v" | "--verbose" => parsed.verbosity += 1,
            "-vv" => parsed.verbosity += 2,
            "-c" | "--config" => parsed.config = Some(value("a file")?.into()),
            "-s" | "--server" => parsed.servers.push(value("a server")?),
            "-p" | "--port" => {
                let port = value("a port")?;
                parsed.port =
                    Some(port.parse().ok().filter(|p| *p > 0).ok_or(format!("--port {port:?} is not a port number"))?);
            }
            "--name" => parsed.name = Some(value("a name")?),
            "--interval" => parsed.interval = Some(seconds(&option, &value("seconds")?, false)?),
            "--grace" => parsed.grace = Some(seconds(&option, &value("seconds")?, true)?),
            "--timeout" => parsed.timeout = Some(seconds(&option, &value("seconds")?, false)?),
            "--start" | "--ok" | "--fail" if !run => {
                if parsed.event.is_some() {
                    return Err("give one of --start, --ok and --fail".into());
                }
                parsed.event = Some(match option.as_str() {
                    "--start" => JobEvent::Start,
                    "--ok" => JobEvent::Ok,
                    _ => JobEvent::Fail,
                });
                match (option.as_str(), inline.as_deref()) {
                    ("--fail", Some(code)) => {
                        parsed.exit_code =
                            Some(code.parse().map_err(|_| format!("--fail={code}: the exit code is not a number"))?)
                    }
                    (_, Some(_)) => return Err(format!("{option} takes no value")),
                    _ => {}
                }
            }
            "--message" if !run => parsed.message = Some(value("a text")?),
            "--print" if !run => parsed.print = true,
            _ if text.starts_with('-') && text.len() > 1 => return Err(format!("unknown option {text}")),
            _ if run => {
                parsed.command.push(arg);
                parsed.command.extend(args);
                break;
            }
            _ => return Err(format!("unexpected argument {text}")),
        }
    }
    Ok(parsed)
}

/// `hbc run` (`run`) and `hbc signal`.
fn job_main(run: bool) -> ExitCode {
    let (program, usage) = if run { ("hbc run", RUN_USAGE) } else { ("hbc signal", SIGNAL_USAGE) };
    let args = match parse_job_args(std::env::args_os().skip(2).collect(), run) {
        Ok(args) if args.help => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Ok(args) => args,
        Err(e) => return cli::usage_error(program, usage, e),
    };
    // A job's standard error is often mailed (cron): hbc adds only what matters.
    let level = if args.verbosity == 0 { log::LevelFilter::Warn } else { logging::level(args.verbosity) };
    let _ = logging::init(None, LogFormat::Text, level);
    if run && args.command.is_empty() {
        return cli::usage_error(program, usage, "no command to run: hbc run [OPTIONS] -- CMD [ARGS...]");
    }
    let name = match args.name.clone().or_else(|| args.command.first().and_then(|c| run::default_name(c))) {
        Some(name) if hbd::wire::is_valid_host_name(&name) => name.to_ascii_lowercase(),
        Some(name) => return cli::usage_error(program, usage, format!("--name {name:?} is not an RFC 1123 host name")),
        None if run => return cli::usage_error(program, usage, "no name from the command: give --name"),
        None => return cli::usage_error(program, usage, "give --name"),
    };
    let job = run::JobOptions { name: name.clone(), interval: args.interval, grace: args.grace, timeout: args.timeout };
    let settings = job_settings(&args, &name);
    if run {
        // A broken configuration does not stop the job: it runs, unreported.
        let settings = match settings {
            Ok(settings) => Some(settings),
            Err(e) => {
                eprintln!("hbc: job {name}: not reported to hbd: {e}");
                None
            }
        };
        return ExitCode::from(run::run(settings.as_ref(), &job, &args.command));
    }
    let Some(event) = args.event else {
        return cli::usage_error(program, usage, "give one of --start, --ok and --fail");
    };
    let settings = match settings {
        Ok(settings) => settings,
        Err(e) => return cli::fail("hbc", EX_CONFIG, e),
    };
    match run::signal(&settings, &job, event, args.exit_code, args.message.as_deref(), args.print) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::fail("hbc", 1, format!("job {name}: {e}")),
    }
}

/// hbc's configuration for a job: the file's servers, port and key, the
/// command line's servers and port over them, the job's name.
fn job_settings(args: &JobArgs, name: &str) -> Result<hbd::client::sender::ClientSettings, String> {
    let path = cli::config_path(args.config.clone(), ".hbc.yaml");
    let mut config =
        path.as_deref().map_or_else(|| Ok(ClientConfig::default()), ClientConfig::load).map_err(|e| e.to_string())?;
    if !args.servers.is_empty() {
        config.server = Servers::Many(args.servers.clone());
    }
    config.port = args.port.unwrap_or(config.port);
    config.name = Some(name.to_string());
    let settings = config.check("command line").map_err(|e| e.to_string())?;
    if settings.targets.is_empty() && !args.print {
        return Err("no server to send to: give -s HOST or set `server` in hbc.yaml".into());
    }
    Ok(settings)
}
