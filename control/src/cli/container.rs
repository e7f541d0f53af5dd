//! `switchyard container ...`: lightweight containers (named network namespaces), as clients of
//! the daemon. `exec` enters the namespace itself, as `ip netns exec` does.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::{client_fail, finish, print_table, unexpected};
use crate::api::{self, ContainerCreate, Request, Response};
use crate::process::fail;

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create a container: a network namespace named NAME with eth0 on NETWORK.
    Create {
        name: String,
        /// A network, or a mode: `none` (only lo), `host` (the daemon's namespace), or
        /// `container:OTHER` (OTHER's namespace: same interfaces and addresses).
        #[arg(long, value_name = "NETWORK", default_value = "bridge")]
        network: String,
        /// A fixed address (default: the next free one of the network).
        #[arg(long, value_name = "IP")]
        ip: Option<String>,
        /// A fixed MAC (default: random, locally administered).
        #[arg(long, value_name = "MAC")]
        mac: Option<String>,
        /// A port the container offers to linked containers: PORT[/tcp|udp] or START-END[/PROTO]. Repeat.
        #[arg(long, value_name = "PORT[/PROTO]")]
        expose: Vec<String>,
        /// Reach CONTAINER's exposed ports under ALIAS (env vars, /etc/hosts, and on an icc=false
        /// network, the only traffic allowed between the two). Repeat.
        #[arg(long = "link", value_name = "CONTAINER[:ALIAS]")]
        links: Vec<String>,
        /// Let the container send from any MAC and address (for router-like containers).
        #[arg(long)]
        allow_spoofing: bool,
        /// Publish a port on the uplink address (Docker's syntax: [IP:][HOSTPORT:]CONTAINERPORT[/PROTO],
        /// ranges allowed). Repeat.
        #[arg(long = "publish", short = 'p', value_name = "SPEC")]
        publish: Vec<String>,
        /// Publish every exposed port on a free host port of the ephemeral range.
        #[arg(long = "publish-all", short = 'P')]
        publish_all: bool,
        /// Make no namespace: leave the veth's container end in the daemon's namespace under
        /// this name (MAC and MTU set, no address, down) for another tool to move, as Docker's
        /// plugin and CNI runtimes do. Deleting the container deletes the veth wherever it is.
        #[arg(long, value_name = "IFNAME")]
        handoff: Option<String>,
    },
    /// Print the environment variables Docker would give the container for its links.
    Env { name: String },
    /// Add a link to an existing container (takes effect at once).
    Link {
        name: String,
        #[arg(value_name = "CONTAINER[:ALIAS]")]
        link: String,
    },
    /// Remove a link (takes effect at once, also for established connections).
    Unlink { name: String, alias: String },
    /// Remove containers: their namespace, veths and addresses.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Also remove containers that joined this one's namespace (--network container:NAME).
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// List containers, one line per network attachment.
    #[command(alias = "list")]
    Ls,
    /// Show containers as JSON, with Docker's field names.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Run a command inside the container's namespace (its /etc/netns/NAME files shown in /etc).
    Exec {
        name: String,
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<String>,
    },
}

pub fn run(cmd: ContainerCommand, socket: &Path) -> ExitCode {
    let request = match cmd {
        ContainerCommand::Create {
            name,
            network,
            ip,
            mac,
            expose,
            links,
            allow_spoofing,
            publish,
            publish_all,
            handoff,
        } => Request::ContainerCreate(ContainerCreate {
            name,
            network,
            ip,
            mac,
            expose,
            links,
            allow_spoofing,
            publish,
            publish_all,
            handoff,
            id: None,
        }),
        ContainerCommand::Env { name } => Request::ContainerEnv { name },
        ContainerCommand::Link { name, link } => Request::ContainerLink { name, link },
        ContainerCommand::Unlink { name, alias } => Request::ContainerUnlink { name, alias },
        ContainerCommand::Rm { names, force } => Request::ContainerRm { names, force },
        ContainerCommand::Ls => Request::ContainerLs,
        ContainerCommand::Inspect { names } => Request::ContainerInspect { names },
        ContainerCommand::Exec { name, command } => return exec(socket, &name, &command),
    };
    let removed = match &request {
        Request::ContainerRm { names, .. } => names.clone(),
        _ => Vec::new(),
    };
    finish(api::call(socket, request), &removed, |response| {
        let list = match response {
            Response::Containers(list) => list,
            Response::Env(vars) => {
                for (k, v) in vars {
                    println!("{k}={v}");
                }
                return Ok(());
            }
            other => return Err(other),
        };
        let mut rows = Vec::new();
        for c in list {
            if c.endpoints.is_empty() {
                rows.push(vec![c.id[..12].to_string(), c.name.clone()]);
            }
            for e in c.endpoints {
                rows.push(vec![
                    c.id[..12].to_string(),
                    c.name.clone(),
                    e.network,
                    e.interface,
                    e.address,
                    e.mac,
                ]);
            }
        }
        print_table(
            &[
                "CONTAINER ID",
                "NAME",
                "NETWORK",
                "INTERFACE",
                "ADDRESS",
                "MAC",
            ],
            &rows,
        );
        Ok(())
    })
}

/// Asks the daemon that the container exists, enters its namespace and replaces this process
/// with the command, so its exit code is the command's.
fn exec(socket: &Path, name: &str, command: &[String]) -> ExitCode {
    let names = vec![name.to_string()];
    let sandbox = match api::call(socket, Request::ContainerInspect { names }) {
        Ok(Response::ContainerDetails(d)) if !d.is_empty() => {
            d[0].network_settings.sandbox_key.clone()
        }
        Ok(other) => return unexpected(other),
        Err(e) => return client_fail(e),
    };
    // A named namespace (its own, or the one it joined) shows its /etc/netns files, as
    // `ip netns exec` does; `--network host` runs in the daemon's namespace as it is.
    let entered = match sandbox.strip_prefix("/run/netns/") {
        Some(ns) => crate::netns::enter_for_exec(ns),
        None => crate::netns::enter_path_for_exec(std::path::Path::new(&sandbox), None),
    };
    if let Err(e) = entered {
        return fail(1, &anyhow::Error::new(e));
    }
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .exec();
    fail(127, &anyhow::anyhow!("cannot run '{}': {err}", command[0]))
}
