//! `switchyard bridge`: a standalone learning switch over existing interfaces, in the foreground.
//!
//! Opens every port before starting anything, so bad input (unknown interface, no permission, an
//! interface already attached to another switchyard) fails with one line and exit code 2 and leaves
//! no tap behind. Signals are handled on the main thread with `sigwait`: SIGUSR1 prints the MAC table
//! and counters, SIGINT/SIGTERM stop the engine and print them a last time.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Args;
use dataplane::CamConfig;
use dataplane::DomainId;
use dataplane::{AfPacketPort, Port, TapPort};
use dataplane::{Engine, EngineConfig};

use crate::process::{block_signals, describe_cpu, fail, wait_signal, EngineArgs, EXIT_BAD_INPUT};
use crate::render::show;

#[derive(Args, Debug)]
pub struct BridgeArgs {
    /// An interface to attach (e.g. the host end of a veth), or `tap:NAME` to create a tap. Repeat.
    #[arg(long = "port", value_name = "IFNAME", required = true)]
    ports: Vec<String>,
    /// Seconds a learned MAC stays without being seen (0: never age).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    aging: u64,
    /// Most MAC entries in the table.
    #[arg(long, value_name = "N", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_macs: u32,
    /// Most MAC entries learned on one port.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_macs_per_port: u32,
    #[command(flatten)]
    engine: EngineArgs,
}

fn open_port(spec: &str) -> anyhow::Result<Box<dyn Port>> {
    Ok(match spec.strip_prefix("tap:") {
        Some(name) => Box::new(TapPort::create(name)?),
        None => Box::new(AfPacketPort::open(spec)?),
    })
}

pub fn run(args: BridgeArgs) -> ExitCode {
    let mut seen = HashSet::new();
    for p in &args.ports {
        if !seen.insert(p.as_str()) {
            return fail(EXIT_BAD_INPUT, &anyhow!("port '{p}' is given twice"));
        }
    }
    let config = match engine_config(&args) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_BAD_INPUT, &anyhow!(e)),
    };
    // Blocked before any thread starts, so every thread inherits the mask and only sigwait sees them.
    let signals = block_signals();
    let mut ports = Vec::with_capacity(args.ports.len());
    for spec in &args.ports {
        match open_port(spec) {
            Ok(p) => ports.push(p),
            Err(e) => return fail(EXIT_BAD_INPUT, &e),
        }
    }
    match serve(config, ports, &signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e),
    }
}

/// The engine configuration the flags ask for; a CPU this process may not use is refused.
fn engine_config(args: &BridgeArgs) -> Result<EngineConfig, String> {
    let cam = CamConfig {
        max_entries: args.max_macs as usize,
        max_per_port: args.max_macs_per_port as usize,
        aging_ms: if args.aging == 0 {
            u64::MAX
        } else {
            args.aging.saturating_mul(1000)
        },
    };
    args.engine.apply(EngineConfig {
        cam,
        ..EngineConfig::default()
    })
}

fn serve(
    config: EngineConfig,
    ports: Vec<Box<dyn Port>>,
    signals: &libc::sigset_t,
) -> anyhow::Result<()> {
    let (handle, thread) = Engine::spawn(config).context("starting the engine")?;
    let names: Vec<String> = ports.iter().map(|p| p.name().to_string()).collect();
    for port in ports {
        let name = port.name().to_string();
        handle
            .add_port(port, DomainId(0))
            .with_context(|| format!("attaching port '{name}'"))?;
    }
    tracing::info!(ports = %names.join(","), pid = std::process::id(), engine = %describe_cpu(&handle.cpus()), "switchyard bridge forwarding");
    loop {
        match wait_signal(signals) {
            libc::SIGUSR1 => print!("{}", show::report(&handle.snapshot()?)),
            libc::SIGHUP => {}
            _ => break,
        }
    }
    let last = handle.snapshot()?;
    handle.shutdown()?;
    thread
        .join()
        .map_err(|_| anyhow!("the engine thread panicked"))?;
    print!("{}", show::report(&last));
    tracing::info!("stopped");
    Ok(())
}
