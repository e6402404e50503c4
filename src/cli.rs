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

/// The arguments pico-args did not consume, as a usage error that names
/// the first of them.
pub fn no_leftovers(args: Arguments) -> Result<(), pico_args::Error> {
    match args.finish().first().map(|arg| arg.to_string_lossy().into_owned()) {
        Some(arg) if arg.starts_with('-') && arg.len() > 1 => {
            Err(pico_args::Error::ArgumentParsingFailed { cause: format!("unknown option {arg}") })
        }
        Some(arg) => Err(pico_args::Error::ArgumentParsingFailed { cause: format!("unexpected argument {arg}") }),
        None => Ok(()),
    }
}

/// The value of option `keys` parsed as a `T`; a value that does not parse
/// is an error naming the option and the value (pico-args names neither).
pub fn opt_parsed<T: std::str::FromStr>(
    args: &mut Arguments,
    keys: [&'static str; 2],
    what: &str,
) -> Result<Option<T>, pico_args::Error> {
    let Some(text) = args.opt_value_from_str::<_, String>(keys)? else { return Ok(None) };
    text.parse()
        .map(Some)
        .map_err(|_| pico_args::Error::ArgumentParsingFailed { cause: format!("{} {text}: not {what}", keys[1]) })
}

/// A command line error in plain words.
pub fn explain(error: &pico_args::Error) -> String {
    match error {
        pico_args::Error::ArgumentParsingFailed { cause } => cause.clone(),
        pico_args::Error::OptionWithoutAValue(option) => format!("option {option} needs a value"),
        pico_args::Error::Utf8ArgumentParsingFailed { value, cause } => format!("{value}: {cause}"),
        pico_args::Error::NonUtf8Argument => "an argument is not valid UTF-8".to_string(),
        other => other.to_string(),
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

/// A command line that did not parse: what is wrong, the synopsis (the
/// usage up to its first blank line), where to read more, status 2.
pub fn usage_error(program: &str, usage: &str, error: impl Display) -> ExitCode {
    let synopsis = usage.split("\n\n").next().unwrap_or(usage);
    fail(program, EX_USAGE, format!("{error}\n{synopsis}\nRun '{program} --help' for every option."))
}
