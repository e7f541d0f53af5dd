//! Command-line entry: `switchyard <command>`. Errors are one line on stderr and exit code 2; an
//! unexpected failure while running exits 1.

mod bridge;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "A userspace virtual switch that replaces Docker's docker0 bridge"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a standalone learning switch in the foreground over existing interfaces.
    Bridge(bridge::BridgeArgs),
}

/// Exit code for bad input: the user asked for something impossible; nothing was changed.
pub const EXIT_BAD_INPUT: u8 = 2;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // Help and version go to stdout as clap writes them.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // Usage errors: one line, like every other bad-input error.
        Err(e) => {
            let msg = one_line_usage_error(&e.render().to_string());
            return fail(EXIT_BAD_INPUT, &anyhow::anyhow!("{msg} (see --help)"));
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match cli.command {
        Command::Bridge(args) => bridge::run(args),
    }
}

/// Prints `switchyard: error: ...` as one line (causes joined with ": ").
pub(crate) fn fail(code: u8, err: &anyhow::Error) -> ExitCode {
    let msg = format!("{err:#}").replace('\n', " ");
    eprintln!("switchyard: error: {msg}");
    ExitCode::from(code)
}

/// Folds clap's multi-line usage error ("error: ...", details, a blank line, "Usage: ...", a hint)
/// into one line: the message and its details, without the usage block.
fn one_line_usage_error(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_fold_into_one_line() {
        let e = Cli::try_parse_from(["switchyard", "bridge"]).unwrap_err();
        let line = one_line_usage_error(&e.render().to_string());
        assert_eq!(
            line,
            "the following required arguments were not provided: --port <IFNAME>"
        );
        let e = Cli::try_parse_from(["switchyard", "bridge", "--port", "a", "--aging", "abc"])
            .unwrap_err();
        let line = one_line_usage_error(&e.render().to_string());
        assert!(
            line.starts_with("invalid value 'abc' for '--aging <SECONDS>'") && !line.contains('\n'),
            "{line}"
        );
    }
}
