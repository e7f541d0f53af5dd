//! The `switchyard` binary. Parses the command line and hands off to `control::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    control::cli::main()
}
