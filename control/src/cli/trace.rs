//! `switchyard trace ...`: live traces and what-if traces, printed compact (default), as numbered
//! explanations (`--explain`) or as JSON (`--json`).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{finish, pretty};
use crate::api::trace::{DnsQueryView, TraceView};
use crate::api::{self, Request, Response};
use crate::render;

#[derive(Args, Debug, Clone, Copy)]
pub struct Form {
    /// Numbered plain-language steps, for teaching.
    #[arg(long, conflicts_with = "json")]
    explain: bool,
    /// JSON, for tools.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Trace the next COUNT packets entering TARGET: a container (web, web:eth1), a network,
    /// host:NETWORK, uplink, or an interface name.
    Add {
        target: String,
        count: u32,
        /// Only packets matching this tcpdump-like expression (host, port, tcp, arp, ether host, and/or/not).
        #[arg(long, value_name = "EXPR")]
        filter: Option<String>,
    },
    /// Print the traced packets, oldest first.
    Show {
        #[command(flatten)]
        form: Form,
    },
    /// Disarm every trace and forget the records.
    Clear,
    /// Run a synthetic packet through the real tables without sending it or changing anything,
    /// e.g. `--in web 'tcp,src=172.17.0.2,dst=172.17.0.3,dport=80'`.
    Packet {
        #[arg(long = "in", value_name = "PORT")]
        input: String,
        #[arg(value_name = "FLOW")]
        flow: String,
        #[command(flatten)]
        form: Form,
    },
    /// The embedded DNS resolver's recent queries (the last 256): who asked which network's
    /// resolver for what, and what it answered (local, forwarded, failed), with the time taken.
    Dns {
        #[command(flatten)]
        form: Form,
    },
}

pub fn run(cmd: TraceCommand, socket: &Path) -> ExitCode {
    let (request, form) = match cmd {
        TraceCommand::Add {
            target,
            count,
            filter,
        } => (
            Request::TraceAdd {
                target,
                count,
                filter,
            },
            None,
        ),
        TraceCommand::Show { form } => (Request::TraceShow, Some(form)),
        TraceCommand::Clear => (Request::TraceClear, None),
        TraceCommand::Packet { input, flow, form } => {
            (Request::TracePacket { input, flow }, Some(form))
        }
        TraceCommand::Dns { form } => (Request::DnsLog, Some(form)),
    };
    finish(api::call(socket, request), &[], |r| match r {
        Response::Traces(traces) => {
            print_traces(
                &traces,
                form.unwrap_or(Form {
                    explain: false,
                    json: false,
                }),
            );
            Ok(())
        }
        Response::DnsLog(queries) => {
            print_dns(&queries, form.expect("trace dns has a form"));
            Ok(())
        }
        other => Err(other),
    })
}

fn print_dns(queries: &[DnsQueryView], form: Form) {
    if form.json {
        println!("{}", pretty(&queries));
        return;
    }
    if queries.is_empty() {
        println!("no DNS queries yet");
    }
    for q in queries {
        if form.explain {
            println!("query #{}:", q.seq);
            for (i, s) in render::dns::explain(q).iter().enumerate() {
                println!("  {}. {s}", i + 1);
            }
        } else {
            println!("{}", render::dns::line(q));
        }
    }
}

fn print_traces(traces: &[TraceView], form: Form) {
    if form.json {
        println!("{}", pretty(&traces));
        return;
    }
    if traces.is_empty() {
        println!("no packets traced (arm with `switchyard trace add TARGET COUNT`)");
        return;
    }
    for t in traces {
        let kind = if t.what_if { "what-if" } else { "packet" };
        if form.explain {
            println!("{kind} #{}: {}, entering at {}", t.seq, t.packet, t.ingress);
            for (i, s) in t.steps.iter().enumerate() {
                println!("  {}. {}", i + 1, s.explain);
            }
        } else {
            println!("{kind} #{} in {}: {}", t.seq, t.ingress, t.packet);
            for s in &t.steps {
                println!("  {:<10} {}", s.stage, s.line);
            }
        }
        if t.truncated {
            println!("  (more steps than a record holds)");
        }
        println!();
    }
}
