//! `hbd`: parses the command line, loads the configuration, and hands over to
//! `hbd::server::run`. Holds the exit-status policy: 0 success, 2 usage error,
//! 78 (EX_CONFIG) bad configuration, 1 any other failure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hbd::config::Config;
use hbd::{cli, logging, server};

const USAGE: &str = "\
usage: hbd [-c|--config FILE] [-f|--foreground] [-v|--verbose]... [--check-config]
           [-V|--version] [-h|--help]

  -c, --config FILE   read FILE (default: ~/.hb.yaml if it exists, else built-in defaults)
  -f, --foreground    stay in the foreground; log to standard error unless logfile is set
  -v, --verbose       log more: once for debug, twice for trace
      --check-config  check the configuration, print it with defaults filled in, exit
  -V, --version       print the version and exit
  -h, --help          print this help and exit

See hbd(8) and hbd.yaml(5).";

const EX_USAGE: u8 = 2;
const EX_CONFIG: u8 = 78;

struct Options {
    config: Option<PathBuf>,
    foreground: bool,
    verbosity: u8,
    check_config: bool,
}

fn parse_args() -> Result<Option<Options>, pico_args::Error> {
    let mut args = pico_args::Arguments::from_env();
    let Some(verbosity) = cli::common(&mut args, "hbd", USAGE) else {
        return Ok(None);
    };
    let options = Options {
        config: args.opt_value_from_str(["-c", "--config"])?,
        foreground: args.contains(["-f", "--foreground"]),
        verbosity,
        check_config: args.contains("--check-config"),
    };
    cli::no_leftovers(args)?;
    Ok(Some(options))
}

/// `-c FILE` must exist; without `-c`, `~/.hb.yaml` is read if present.
fn load_config(explicit: Option<&Path>) -> Result<(Config, String), String> {
    let path = match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => std::env::var_os("HOME").map(|home| Path::new(&home).join(".hb.yaml")).filter(|p| p.exists()),
    };
    match path {
        Some(path) => Config::load(&path).map(|c| (c, path.display().to_string())).map_err(|e| e.to_string()),
        None => Ok((Config::default(), "built-in defaults".to_string())),
    }
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hbd: {e}\n{USAGE}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let (mut config, origin) = match load_config(options.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("hbd: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if options.check_config {
        match serde_yaml::to_string(&config) {
            Ok(yaml) => print!("# effective configuration from {origin}\n{yaml}"),
            Err(e) => eprintln!("hbd: print configuration: {e}"),
        }
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    match std::env::current_dir() {
        Ok(cwd) => config.absolutize(&cwd),
        Err(e) => {
            eprintln!("hbd: current directory: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Detached, standard error is gone: log to the file, hbd.log by default.
    let logfile = match (&config.logfile, options.foreground) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => None,
        (None, false) => Some(config.pickfile.with_file_name("hbd.log")),
    };
    if let Err(e) = logging::init(logfile.as_deref(), config.logfmt, logging::level(options.verbosity)) {
        eprintln!("hbd: {e}");
        return ExitCode::FAILURE;
    }
    log::info!("configuration from {origin}");
    match server::run(&config, options.foreground) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("hbd: {e}");
            ExitCode::FAILURE
        }
    }
}
