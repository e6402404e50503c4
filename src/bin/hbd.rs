//! `hbd`: parses the command line, loads and checks the configuration, and
//! hands over to `hbd::server::run`. Exit status as in `hbd::cli`.

use std::process::ExitCode;

use hbd::cli::{self, EX_CONFIG};
use hbd::server::config::Config;
use hbd::server::ctl::{self, CtlError};
use hbd::yaml::ConfigFile;
use hbd::{logging, server};

const USAGE: &str = "\
usage: hbd [-c|--config FILE] [-f|--foreground] [-v|--verbose]... [--check-config]
           [--test-notify] [-V|--version] [-h|--help]
       hbd [-c|--config FILE] forget [--dns] HOST
       hbd [-c|--config FILE] ack HOST[/PLUGIN[/METRIC_PATH]] --comment TEXT | --remove
       hbd [-c|--config FILE] silence add --host PATTERN [--plugin P] [--metric M]
           (--for DURATION | --until TIME) [--start TIME] --comment TEXT
       hbd [-c|--config FILE] silence list
       hbd [-c|--config FILE] silence expire ID

  -c, --config FILE   read FILE (default: ~/.hb.yaml if it exists, else built-in defaults)
  -f, --foreground    stay in the foreground; log to standard error unless logfile is set
  -v, --verbose       log more: once for debug, twice for trace
      --check-config  check the configuration, print it with defaults filled in, exit
      --test-notify   send a test message through each notification service, print
                      each result, exit 0 when all were delivered
  -V, --version       print the version and exit
  -h, --help          print this help and exit

Subcommands ask the running hbd, through its API with an admin token of
api_tokens_file:
  forget [--dns] HOST forget the host: its state, history and alerts (--dns: and
                      its DNS records in every domain of dyndomains)
  ack TARGET --comment TEXT
                      acknowledge an alert: no reminders until it recovers or
                      changes level (HOST alone: its host-down alert)
  ack TARGET --remove remove the acknowledgement
  silence add         hold the notifications of the hosts PATTERN names (* and ?),
                      or only of plugin P (and metric path M), for DURATION (90m,
                      2h, 1d, 1h30m) or until TIME (Unix seconds, HH:MM or
                      YYYY-MM-DD HH:MM, local time), from --start (default now)
  silence list        the silences not ended and the maintenance windows
  silence expire ID   end a silence now

See hbd(8) and hbd.yaml(5).";

struct Options {
    common: cli::Common,
    foreground: bool,
    check_config: bool,
    test_notify: bool,
    /// A subcommand for the running daemon.
    command: Option<ctl::Command>,
    /// `forget --dns`: remove the host's DNS records too.
    dns: bool,
    /// `ack --comment TEXT`, and `ack --remove`.
    comment: Option<String>,
    remove: bool,
    /// `silence add`'s options.
    silence: SilenceOptions,
}

#[derive(Default)]
struct SilenceOptions {
    host: Option<String>,
    plugin: Option<String>,
    metric: Option<String>,
    duration: Option<String>,
    until: Option<String>,
    start: Option<String>,
}

fn silence_options(args: &mut pico_args::Arguments) -> Result<SilenceOptions, pico_args::Error> {
    Ok(SilenceOptions {
        host: args.opt_value_from_str("--host")?,
        plugin: args.opt_value_from_str("--plugin")?,
        metric: args.opt_value_from_str("--metric")?,
        duration: args.opt_value_from_str("--for")?,
        until: args.opt_value_from_str("--until")?,
        start: args.opt_value_from_str("--start")?,
    })
}

fn failed(cause: impl Into<String>) -> pico_args::Error {
    pico_args::Error::ArgumentParsingFailed { cause: cause.into() }
}

/// `silence add|list|expire …`.
fn silence_command(
    args: &mut pico_args::Arguments,
    o: SilenceOptions,
    comment: Option<String>,
) -> Result<ctl::Command, pico_args::Error> {
    let adding = args.opt_free_from_str::<String>()?;
    match adding.as_deref() {
        Some("add") => {
            let host = o.host.ok_or_else(|| failed("silence add needs --host PATTERN"))?;
            let comment = comment.ok_or_else(|| failed("silence add needs --comment TEXT (say why)"))?;
            if o.metric.is_some() && o.plugin.is_none() {
                return Err(failed("--metric needs --plugin"));
            }
            if o.duration.is_some() == o.until.is_some() {
                return Err(failed("silence add needs --for DURATION or --until TIME (one of them)"));
            }
            Ok(ctl::Command::SilenceAdd {
                host,
                plugin: o.plugin,
                metric: o.metric,
                duration: o.duration,
                until: o.until,
                start: o.start,
                comment,
            })
        }
        Some("list") => Ok(ctl::Command::SilenceList),
        Some("expire") => match args.opt_free_from_str()? {
            Some(id) => Ok(ctl::Command::SilenceExpire { id }),
            None => Err(failed("silence expire needs an ID (see hbd silence list)")),
        },
        Some(other) => Err(failed(format!("unknown silence command {other} (add, list or expire)"))),
        None => Err(failed("silence needs add, list or expire")),
    }
}

fn parse_args() -> Result<Option<Options>, pico_args::Error> {
    let mut args = pico_args::Arguments::from_env();
    let Some(common) = cli::common(&mut args, "hbd", USAGE)? else {
        return Ok(None);
    };
    let mut options = Options {
        common,
        foreground: args.contains(["-f", "--foreground"]),
        check_config: args.contains("--check-config"),
        test_notify: args.contains("--test-notify"),
        command: None,
        dns: args.contains("--dns"),
        comment: args.opt_value_from_str("--comment")?,
        remove: args.contains("--remove"),
        silence: silence_options(&mut args)?,
    };
    let silence_option = {
        let o = &options.silence;
        [&o.host, &o.plugin, &o.metric, &o.duration, &o.until, &o.start].iter().any(|x| x.is_some())
    };
    // The subcommand and its operands come last, after every option.
    let command = match args.opt_free_from_str::<String>()?.as_deref() {
        None => None,
        Some("forget") => match args.opt_free_from_str()? {
            Some(host) => Some(ctl::Command::Forget { host, dns: options.dns }),
            None => return Err(pico_args::Error::ArgumentParsingFailed { cause: "forget needs a HOST".into() }),
        },
        Some("ack") => {
            let fail = |cause: &str| Err(pico_args::Error::ArgumentParsingFailed { cause: cause.into() });
            let Some(target) = args.opt_free_from_str::<String>()? else {
                return fail("ack needs a HOST or HOST/PLUGIN/METRIC_PATH");
            };
            match (&options.comment, options.remove) {
                (Some(_), true) => return fail("ack takes --comment TEXT or --remove, not both"),
                (None, false) => return fail("ack needs --comment TEXT (or --remove)"),
                _ => Some(ctl::Command::Ack { target, comment: options.comment.clone() }),
            }
        }
        Some("silence") => {
            Some(silence_command(&mut args, std::mem::take(&mut options.silence), options.comment.clone())?)
        }
        Some(option) if option.starts_with('-') && option.len() > 1 => {
            return Err(pico_args::Error::ArgumentParsingFailed { cause: format!("unknown option {option}") })
        }
        Some(other) => {
            return Err(pico_args::Error::ArgumentParsingFailed {
                cause: format!("unknown subcommand {other} (hbd takes: forget, ack, silence)"),
            })
        }
    };
    let acking = matches!(command, Some(ctl::Command::Ack { .. }));
    let silencing = matches!(command, Some(ctl::Command::SilenceAdd { .. }));
    if options.remove && !acking {
        return Err(failed("--remove goes with ack"));
    }
    if options.comment.is_some() && !acking && !silencing {
        return Err(failed("--comment goes with ack and silence add"));
    }
    if silence_option && !silencing {
        return Err(failed("--host, --plugin, --metric, --for, --until and --start go with silence add"));
    }
    if options.dns && !matches!(command, Some(ctl::Command::Forget { .. })) {
        return Err(failed("--dns is for forget"));
    }
    let options = Options { command, ..options };
    cli::no_leftovers(args)?;
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return cli::usage_error("hbd", USAGE, cli::explain(&e)),
    };
    let path = cli::config_path(options.common.config, ".hb.yaml");
    let origin = path.as_ref().map_or_else(|| "built-in defaults".to_string(), |p| p.display().to_string());
    let config = match path.as_deref().map_or_else(|| Ok(Config::default()), Config::load) {
        Ok(config) => config,
        Err(e) => return cli::fail("hbd", EX_CONFIG, e),
    };
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => return cli::fail("hbd", 1, format!("current directory: {e}")),
    };
    if let Some(command) = &options.command {
        return match ctl::run(&config, &cwd, command) {
            Ok(done) if *command == ctl::Command::SilenceList => {
                println!("{done}");
                ExitCode::SUCCESS
            }
            Ok(done) => {
                println!("hbd: {done}");
                ExitCode::SUCCESS
            }
            Err(e @ CtlError::Config(_)) => cli::fail("hbd", EX_CONFIG, format!("{origin}: {e}")),
            Err(CtlError::Usage(why)) => cli::usage_error("hbd", USAGE, why),
            Err(e) => cli::fail("hbd", 1, e),
        };
    }
    let settings = match config.check(&origin, &cwd) {
        Ok(settings) => settings,
        Err(e) => return cli::fail("hbd", EX_CONFIG, e),
    };
    if options.test_notify {
        let _ = logging::init(None, settings.logfmt, logging::level(options.common.verbosity));
        return if hbd::server::notify::test(&settings.notify) { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    if options.check_config {
        match serde_yaml::to_string(&config) {
            Ok(yaml) => print!("# effective configuration from {origin}\n{yaml}"),
            Err(e) => eprintln!("hbd: print configuration: {e}"),
        }
        for warning in &settings.warnings {
            eprintln!("hbd: warning: {origin}: {warning}");
        }
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    // Detached, standard error is gone: log to the file, hbd.log by default.
    let logfile = match (&settings.logfile, options.foreground) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => None,
        (None, false) => Some(settings.pickfile.with_file_name("hbd.log")),
    };
    if let Err(e) = logging::init(logfile.as_deref(), settings.logfmt, logging::level(options.common.verbosity)) {
        return cli::fail("hbd", 1, e);
    }
    log::info!("configuration from {origin}");
    for warning in &settings.warnings {
        log::warn!("{origin}: {warning}");
    }
    match server::run(settings, options.foreground) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Standard error gets it below; the log only when it is elsewhere.
            if logfile.is_some() {
                log::error!("{e}");
            }
            cli::fail("hbd", 1, e)
        }
    }
}
