//! What the command lines of hbd and hbc share: help, version and verbosity.

use pico_args::Arguments;

/// Handles `-h`/`--help` and `-V`/`--version` (printing and returning None),
/// else counts `-v`s. pico-args has no bundled flags, so `-vv` and `-vvv`
/// are spelt out.
pub fn common(args: &mut Arguments, program: &str, usage: &str) -> Option<u8> {
    if args.contains(["-h", "--help"]) {
        println!("{usage}");
        return None;
    }
    if args.contains(["-V", "--version"]) {
        println!("{program} {}", env!("CARGO_PKG_VERSION"));
        return None;
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
    Some(verbosity)
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
