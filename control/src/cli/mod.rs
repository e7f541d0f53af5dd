//! Command-line entry: `switchyard <command>`. Errors are one line on stderr; bad input exits 2,
//! an unexpected failure (or an unreachable daemon) exits 1.
//!
//! `bridge` and `daemon` run in the foreground; every other command is a client of the daemon's
//! socket (`--socket`, else `$SWITCHYARD_SOCKET`, else the default path) and prints its answer.

mod bridge;
mod container;
mod format;
mod network;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::api::{self, ClientError, ErrorKind, Request, Response};
use crate::process::{end_quietly_on_closed_pipe, fail, EXIT_BAD_INPUT};

#[derive(Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "A userspace virtual switch that replaces Docker's docker0 bridge"
)]
pub struct Cli {
    /// The daemon's API socket [env: SWITCHYARD_SOCKET; default: /run/switchyard/switchyard.sock]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a standalone learning switch in the foreground over existing interfaces.
    Bridge(bridge::BridgeArgs),
    /// Run the daemon: the data plane, networks and containers, served on the API socket.
    Daemon(crate::daemon::DaemonArgs),
    /// Manage networks (like `docker network`).
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage lightweight containers: network namespaces plugged into networks.
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// Show the data plane's ports, MAC table and counters.
    Status,
    /// List a container's published ports, like `docker port`.
    Port {
        name: String,
        #[arg(value_name = "PORT[/PROTO]")]
        filter: Option<String>,
    },
    /// Trace packets through the pipeline, live or what-if.
    #[command(subcommand)]
    Trace(trace::TraceCommand),
    /// Capture frames of a port (both directions) or a network (where they enter) as pcap with
    /// nanosecond timestamps: `-w FILE`, or `-w -` for a pipe (`... -w - | tshark -r -`).
    Capture {
        /// A container (web, web:eth1), a network, host:NETWORK, uplink, or an interface.
        target: String,
        #[arg(short = 'w', value_name = "FILE")]
        write: String,
        /// Stop after N frames.
        #[arg(short = 'c', value_name = "N")]
        count: Option<u64>,
        /// Only frames matching this tcpdump-like expression.
        #[arg(long, value_name = "EXPR")]
        filter: Option<String>,
    },
    /// Plug an existing network namespace into a network, as pipework does: a container started
    /// by another runtime (--pid) or a named namespace (--netns). It persists, and ends when the
    /// namespace does.
    Attach {
        #[arg(long)]
        network: String,
        #[arg(
            long,
            value_name = "NAME|PATH",
            required_unless_present = "pid",
            conflicts_with = "pid"
        )]
        netns: Option<String>,
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// The interface name inside the namespace (default eth1, as pipework).
        #[arg(long, value_name = "NAME")]
        ifname: Option<String>,
        #[arg(long, value_name = "IP")]
        ip: Option<String>,
        #[arg(long, value_name = "MAC")]
        mac: Option<String>,
    },
    /// Unplug a namespace plugged in with `attach`; its address goes back to the pool.
    Detach {
        #[arg(long)]
        network: String,
        #[arg(
            long,
            value_name = "NAME|PATH",
            required_unless_present = "pid",
            conflicts_with = "pid"
        )]
        netns: Option<String>,
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
    },
    /// Run as a CNI plugin: the command in CNI_COMMAND and friends, the configuration on stdin
    /// (what a runtime does when `switchyard` is installed in its CNI plugin directory).
    Cni,
    /// Counters per port (named by container and network) and drops per stage and reason.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// The MAC table: MAC, port, VLAN, age, static.
    Fdb {
        network: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Draw networks, host ports, containers, the uplink and published ports.
    Topology {
        #[arg(long, value_enum, default_value = "text")]
        format: TopologyFormat,
    },
    /// List tracked NAT connections (published ports, masquerade, hairpin).
    Conntrack {
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// Whether the command is a client that prints and ends, rather than a server that must
    /// outlive its peers (see `end_quietly_on_closed_pipe`). Exhaustive: a new command says which.
    fn is_client(&self) -> bool {
        match self {
            Command::Bridge(_) | Command::Daemon(_) => false,
            Command::Network(_)
            | Command::Container(_)
            | Command::Status
            | Command::Port { .. }
            | Command::Trace(_)
            | Command::Capture { .. }
            | Command::Attach { .. }
            | Command::Detach { .. }
            | Command::Stats { .. }
            | Command::Fdb { .. }
            | Command::Topology { .. }
            | Command::Conntrack { .. }
            | Command::Cni => true,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum TopologyFormat {
    Text,
    Dot,
    Svg,
}

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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    if cli.command.is_client() {
        end_quietly_on_closed_pipe();
    }
    let socket = cli.socket.as_deref();
    match cli.command {
        Command::Bridge(args) => bridge::run(args),
        Command::Daemon(args) => crate::daemon::run(args, socket),
        Command::Network(cmd) => network::run(cmd, &api::socket_path(socket)),
        Command::Container(cmd) => container::run(cmd, &api::socket_path(socket)),
        Command::Port { name, filter } => finish(
            api::call(
                &api::socket_path(socket),
                Request::ContainerPort { name, filter },
            ),
            &[],
            |r| match r {
                Response::Lines(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    Ok(())
                }
                other => Err(other),
            },
        ),
        Command::Conntrack { json } => finish(
            api::call(&api::socket_path(socket), Request::Conntrack),
            &[],
            |r| match r {
                Response::Conntrack(list) if json => {
                    println!("{}", pretty(&list));
                    Ok(())
                }
                Response::Conntrack(list) => {
                    print_conntrack(&list);
                    Ok(())
                }
                other => Err(other),
            },
        ),
        Command::Trace(cmd) => trace::run(cmd, &api::socket_path(socket)),
        Command::Cni => crate::cni::main(),
        Command::Attach {
            network,
            netns,
            pid,
            ifname,
            ip,
            mac,
        } => finish(
            api::call(
                &api::socket_path(socket),
                Request::Attach {
                    network,
                    netns,
                    pid,
                    ifname,
                    ip,
                    mac,
                },
            ),
            &[],
            Err,
        ),
        Command::Detach {
            network,
            netns,
            pid,
        } => finish(
            api::call(
                &api::socket_path(socket),
                Request::Detach {
                    network,
                    netns,
                    pid,
                },
            ),
            &[],
            Err,
        ),
        Command::Stats { json } => finish(
            api::call(&api::socket_path(socket), Request::Stats),
            &[],
            |r| match r {
                Response::Stats(st) if json => {
                    println!("{}", pretty(&st));
                    Ok(())
                }
                Response::Stats(st) => {
                    print!("{}", crate::render::stats::render_stats(&st));
                    Ok(())
                }
                other => Err(other),
            },
        ),
        Command::Fdb { network, json } => finish(
            api::call(&api::socket_path(socket), Request::Fdb { network }),
            &[],
            |r| match r {
                Response::Fdb(entries) if json => {
                    println!("{}", pretty(&entries));
                    Ok(())
                }
                Response::Fdb(entries) => {
                    let rows: Vec<Vec<String>> = entries
                        .into_iter()
                        .map(|e| {
                            vec![
                                e.network,
                                e.mac,
                                e.port,
                                e.vlan.to_string(),
                                if e.is_static {
                                    "-".into()
                                } else {
                                    format!("{:.1}s", e.age_s)
                                },
                                if e.is_static { "static" } else { "learned" }.into(),
                            ]
                        })
                        .collect();
                    print_table(&["NETWORK", "MAC", "PORT", "VLAN", "AGE", "TYPE"], &rows);
                    Ok(())
                }
                other => Err(other),
            },
        ),
        Command::Topology { format } => finish(
            api::call(&api::socket_path(socket), Request::Topology),
            &[],
            |r| match r {
                Response::Topology(t) => {
                    let out = match format {
                        TopologyFormat::Text => crate::render::topology::render_text(&t),
                        TopologyFormat::Dot => crate::render::topology::render_dot(&t),
                        TopologyFormat::Svg => crate::render::topology::render_svg(&t),
                    };
                    print!("{out}");
                    if !out.ends_with('\n') {
                        println!();
                    }
                    Ok(())
                }
                other => Err(other),
            },
        ),
        Command::Capture {
            target,
            write,
            count,
            filter,
        } => capture(&api::socket_path(socket), target, &write, count, filter),
        Command::Status => match api::call(&api::socket_path(socket), Request::Status) {
            Ok(Response::Status { report }) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Ok(other) => unexpected(other),
            Err(e) => client_fail(e),
        },
    }
}

/// `switchyard capture`: the daemon answers, then streams pcap until done; we copy it out.
fn capture(
    socket: &std::path::Path,
    target: String,
    write: &str,
    count: Option<u64>,
    filter: Option<String>,
) -> ExitCode {
    let mut out: Box<dyn std::io::Write> = if write == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        match std::fs::File::create(write) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                return fail(
                    EXIT_BAD_INPUT,
                    &anyhow::anyhow!("cannot write '{write}': {e}"),
                )
            }
        }
    };
    let request = Request::Capture {
        target,
        count,
        filter,
    };
    let mut stream = match api::call_stream(socket, request) {
        Ok((Response::CaptureStarted, stream)) => stream,
        Ok((other, _)) => return unexpected(other),
        Err(e) => return client_fail(e),
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match std::io::Read::read(&mut stream, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // A reader that went away (`| head`) ends the capture quietly.
                if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    return ExitCode::SUCCESS;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return fail(1, &anyhow::anyhow!("reading the capture: {e}")),
        }
    }
    ExitCode::SUCCESS
}

/// Reports a failed call: bad input exits 2 (nothing changed), everything else 1.
pub(crate) fn client_fail(err: ClientError) -> ExitCode {
    let code = match &err {
        ClientError::Api(e) if e.kind == ErrorKind::BadInput => EXIT_BAD_INPUT,
        _ => 1,
    };
    fail(code, &anyhow::Error::new(err))
}

/// Prints the answers every client command shares (an ID for `create`, the names given for `rm`,
/// pretty JSON for `inspect`) and hands list answers to `list`, which returns what it does not
/// know.
pub(crate) fn finish(
    result: Result<Response, ClientError>,
    removed: &[String],
    list: impl FnOnce(Response) -> Result<(), Response>,
) -> ExitCode {
    let response = match result {
        Ok(r) => r,
        Err(e) => return client_fail(e),
    };
    match response {
        Response::Created { id } => println!("{id}"),
        Response::Done => {
            for name in removed {
                println!("{name}");
            }
        }
        Response::NetworkDetails(details) => println!("{}", pretty(&details)),
        Response::ContainerDetails(details) => println!("{}", pretty(&details)),
        other => {
            if let Err(other) = list(other) {
                return unexpected(other);
            }
        }
    }
    ExitCode::SUCCESS
}

/// `conntrack -L`-like lines, then the table's counters.
fn print_conntrack(list: &api::ConntrackList) {
    for e in &list.entries {
        println!(
            "{:<4} {:<11} {:<11} timeout={:<7} src={} dst={} sport={} dport={} | reply src={} dst={} sport={} dport={} packets={}/{} bytes={}/{}",
            e.protocol,
            e.kind,
            e.state,
            e.timeout_s,
            e.original.src,
            e.original.dst,
            e.original.sport,
            e.original.dport,
            e.reply.src,
            e.reply.dst,
            e.reply.sport,
            e.reply.dport,
            e.packets[0],
            e.packets[1],
            e.bytes[0],
            e.bytes[1],
        );
    }
    println!(
        "{} of {} entries; created={} expired={} evicted={} removed={}",
        list.count, list.max, list.created, list.expired, list.evicted, list.removed
    );
}

pub(crate) fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).expect("API types always serialize")
}

pub(crate) fn unexpected(response: Response) -> ExitCode {
    fail(
        1,
        &anyhow::anyhow!("the daemon answered with an unexpected {response:?}"),
    )
}

/// Prints rows under headers, columns padded to their widest cell.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
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
