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
        Err(e) => {
            // clap prints help/version to stdout with success, usage errors with its own formatting.
            let code = if e.use_stderr() { EXIT_BAD_INPUT } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
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
