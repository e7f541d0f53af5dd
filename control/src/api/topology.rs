//! `switchyard topology` as data: networks, containers with their endpoints, published ports and
//! links, and the uplink. Built by `model::topology`, carried in `Response::Topology`, drawn by
//! `render::topology`; nothing in it is text to be parsed again.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::Protocol;

/// Everything `switchyard topology` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub networks: Vec<NetView>,
    pub containers: Vec<ContainerView>,
    pub uplink: Option<UplinkView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetView {
    pub name: String,
    /// The subnet's network address; with `prefix`, `172.17.0.0/16`.
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The tap holding the gateway address, e.g. `switchyard0`.
    pub host_port: String,
    pub icc: bool,
    pub internal: bool,
    /// `gateway_mode=routed`: reached from beyond the uplink by its own addresses, no NAT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routed: bool,
    /// Where the network's DNS resolver listens (UDP and TCP), when it does: `10.30.0.1:53`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerView {
    pub name: String,
    /// In attachment order: the first one holds the default route.
    pub endpoints: Vec<EndpointView>,
    pub published: Vec<PublishedPort>,
    /// `--link`s to other containers.
    pub links: Vec<LinkView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointView {
    pub network: String,
    /// Inside the container: `eth0`.
    pub interface: String,
    pub ip: Ipv4Addr,
    /// The network's prefix length; `None` when the network is unknown.
    pub prefix: Option<u8>,
    pub mac: [u8; 6],
    /// The host end of the veth, a switch port.
    pub host_interface: String,
}

/// One published port: the uplink's `host_ip:host_port/protocol` leads to `container_port`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub protocol: Protocol,
    /// `0.0.0.0`: every address of the host.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
}

/// `--link CONTAINER:ALIAS`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    pub container: String,
    pub alias: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UplinkView {
    pub interface: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}
