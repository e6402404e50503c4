//! What the command lines of hbd and hbc share: help, version, verbosity,
//! `-c FILE` with its `~/.NAME` fallback, and the exit-status policy
//! (0 success, 1 failure, 2 usage error, 78 bad configuration).

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pico_args::Arguments;

pub const EX_USAGE: u8 = 2;
/// EX_CONFIG of sysexits(3).
pub const EX_CONFIG: u8 = 78;

/// The options both programs take.
#[derive(Debug)]
pub struct Common {
    pub config: Option<PathBuf>,
    pub verbosity: u8,
}

/// Handles `-h`/`--help` and `-V`/`--version` (printing and returning
/// None), else reads `-c FILE` and counts `-v`s. pico-args has no bundled
/// flags, so `-vv` and `-vvv` are spelt out.
pub fn common(args: &mut Arguments, program: &str, usage: &str) -> Result<Option<Common>, pico_args::Error> {
    if args.contains(["-h", "--help"]) {
        println!("{usage}");
        return Ok(None);
    }
    if args.contains(["-V", "--version"]) {
        println!("{program} {}", env!("CARGO_PKG_VERSION"));
        return Ok(None);
    }
    let mut verbosity = 0;
    while args.contains("-vvv") {
        verbosity += 3;
    }
    while args.contains("-vv") {
        verbosity += 2;
    }
    while args.contains(["-v", "--verbose"]) {
        verbosity += 1;
    }
    Ok(Some(Common { config: args.opt_value_from_str(["-c", "--config"])?, verbosity }))
}

/// The arguments pico-args did not consume, as a usage error.
pub fn no_leftovers(args: Arguments) -> Result<(), pico_args::Error> {
    match args.finish().first() {
        Some(arg) => Err(pico_args::Error::ArgumentParsingFailed {
            cause: format!("unexpected argument {}", arg.to_string_lossy()),
        }),
        None => Ok(()),
    }
}

/// The configuration file to read: `-c FILE` as given (it must exist), else
/// `~/DOT_NAME` if it exists, else none (built-in defaults).
pub fn config_path(explicit: Option<PathBuf>, dot_name: &str) -> Option<PathBuf> {
    explicit.or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(dot_name)).filter(|p| p.exists()))
}

/// Says what went wrong, once, and gives the exit status for it.
pub fn fail(program: &str, status: u8, error: impl Display) -> ExitCode {
    eprintln!("{program}: {error}");
    ExitCode::from(status)
}

/// A command line that did not parse: the error, the usage, status 2.
pub fn usage_error(program: &str, usage: &str, error: impl Display) -> ExitCode {
    fail(program, EX_USAGE, format!("{error}\n{usage}"))
}
