//! `switchyard network ...`: Docker's `docker network` commands, as clients of the daemon.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::{finish, print_table};
use crate::api::{self, NetworkCreate, Request, Response};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network: its own bridge domain, with a host port holding the gateway address.
    Create {
        name: String,
        /// IPv4 subnet in CIDR form (default: the next free subnet of Docker's default pools).
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// Gateway address, held by the host port (default: the subnet's first address).
        #[arg(long, value_name = "IP")]
        gateway: Option<String>,
        /// Allocate container addresses from this sub-range only.
        #[arg(long, value_name = "CIDR")]
        ip_range: Option<String>,
        /// An address never handed to containers. Repeat.
        #[arg(long = "aux-address", value_name = "NAME=IP")]
        aux_addresses: Vec<String>,
        /// Driver options: icc=true|false, mtu=N, or Docker's com.docker.network.* keys. Repeat.
        #[arg(long = "opt", short = 'o', value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// No outbound access and no published ports.
        #[arg(long)]
        internal: bool,
        /// MTU of the network's interfaces (default 1500).
        #[arg(long, value_name = "N")]
        mtu: Option<u32>,
        /// Extend the network onto this interface (an L2 uplink toward other hosts).
        #[arg(long, value_name = "IFNAME")]
        parent: Option<String>,
        /// Tag frames on the parent with this 802.1Q VLAN; only that VLAN is accepted from it.
        #[arg(long, value_name = "ID", requires = "parent")]
        vlan: Option<u16>,
        /// bridge (the default: this host only) or overlay (across hosts in VXLAN over the
        /// daemon's --advertise-addr; --opt vni=N, vxlan_port=P, peers=IP,...).
        #[arg(long, short = 'd', value_name = "DRIVER")]
        driver: Option<String>,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls,
    /// Show networks as JSON, with Docker's field names.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (refused while containers are attached, unless --force).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Disconnect attached containers first.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Connect a container to a network: it gets the next ethN.
    Connect {
        network: String,
        container: String,
        #[arg(long, value_name = "IP")]
        ip: Option<String>,
        /// Another DNS name of the container on this network (as Docker's --alias). Repeat.
        #[arg(long = "alias", value_name = "NAME")]
        aliases: Vec<String>,
    },
    /// Disconnect a container from a network; its address goes back to the pool.
    Disconnect { network: String, container: String },
}

pub fn run(cmd: NetworkCommand, socket: &Path) -> ExitCode {
    let request = match cmd {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
            ip_range,
            aux_addresses,
            options,
            internal,
            mtu,
            parent,
            vlan,
            driver,
        } => Request::NetworkCreate(NetworkCreate {
            name,
            subnet,
            gateway,
            ip_range,
            aux_addresses,
            options,
            internal,
            mtu,
            parent,
            vlan,
            id: None,
            driver,
        }),
        NetworkCommand::Ls => Request::NetworkLs,
        NetworkCommand::Inspect { names } => Request::NetworkInspect { names },
        NetworkCommand::Rm { names, force } => Request::NetworkRm { names, force },
        NetworkCommand::Connect {
            network,
            container,
            ip,
            aliases,
        } => Request::NetworkConnect {
            network,
            container,
            ip,
            aliases,
        },
        NetworkCommand::Disconnect { network, container } => {
            Request::NetworkDisconnect { network, container }
        }
    };
    let removed = match &request {
        Request::NetworkRm { names, .. } => names.clone(),
        _ => Vec::new(),
    };
    finish(api::call(socket, request), &removed, |response| {
        let Response::Networks(list) = response else {
            return Err(response);
        };
        let rows: Vec<Vec<String>> = list
            .into_iter()
            .map(|n| {
                vec![
                    n.id[..12].to_string(),
                    n.name,
                    n.driver,
                    n.scope,
                    n.subnet,
                    n.gateway,
                    n.mode,
                    n.host_interface,
                    n.containers.to_string(),
                ]
            })
            .collect();
        print_table(
            &[
                "NETWORK ID",
                "NAME",
                "DRIVER",
                "SCOPE",
                "SUBNET",
                "GATEWAY",
                "MODE",
                "HOST PORT",
                "CONTAINERS",
            ],
            &rows,
        );
        Ok(())
    })
}
