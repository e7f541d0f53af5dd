//! Published ports (`-p`, `-P`) and `docker port`, with Docker's rules, so that scripts and
//! habits written against Docker keep working unchanged on switchyard.
//!
//! The `-p` grammar and its checks are those of docker/go-connections `nat.ParsePortSpec`: an
//! optional host address, an optional host port (range), a container port (range) and a protocol
//! suffix. A host range paired with a single container port is not an error there: Docker reads it
//! as "any one free port of this range", so we do the same. Where Docker is looser than it is
//! useful (host port 0, `80/`, an IPv6 address on an IPv4-only switch) we refuse with one line
//! that names the spec, because a silently odd binding is worse than an early clear error.
//!
//! Host ports that are not given come from the kernel's ephemeral range
//! (`net.ipv4.ip_local_port_range`, 49153-65535 when unreadable), as Docker's port allocator
//! takes them, so `-P` ports land where Docker users expect them. Docker's allocator keeps a
//! moving cursor; here allocation is a pure function of what is already published, so we take the
//! lowest free port, which is what Docker gives on a fresh daemon.
//!
//! Two bindings clash when they share protocol and host port and their host addresses overlap:
//! `0.0.0.0` means every address of the host, so it overlaps every specific address, and tcp and
//! udp are separate port spaces. Docker only finds such clashes when `bind()` fails at start; we
//! refuse them when the container is created, naming who holds the port.
//!
//! `docker port` prints `80/tcp -> 0.0.0.0:49153` per binding, and only `0.0.0.0:49153` when asked
//! about one port; both forms are reproduced so that output parsers keep working.

use super::bad;
use super::links::Protocol;
use crate::api::ApiError;

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Docker's port allocator falls back to this when the kernel's range cannot be read.
const FALLBACK_EPHEMERAL: (u16, u16) = (49153, 65535);

/// One published port, as persisted. host_ip 0.0.0.0 means every host address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// The host side, `0.0.0.0:49153`, as `docker port NAME PORT` prints it.
    fn host_side(&self) -> String {
        format!("{}:{}", self.host_ip, self.host_port)
    }

    /// Whether both cannot be bound at once: same port space and overlapping host addresses.
    fn clashes_with(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }

    /// `0.0.0.0:8080 -> 80/tcp`, host first, for conflict messages.
    fn binding(&self) -> String {
        format!(
            "{} -> {}/{}",
            self.host_side(),
            self.container_port,
            self.protocol
        )
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}",
            self.container_port,
            self.protocol,
            self.host_side()
        )
    }
}

/// A parsed `-p` spec before host ports are chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishSpec {
    pub host_ip: Option<Ipv4Addr>,
    /// Inclusive range; `None` = choose from the ephemeral range.
    pub host_ports: Option<(u16, u16)>,
    pub container_ports: (u16, u16),
    pub protocol: Protocol,
}

/// The canonical `-p` form, which `parse_publish` reads back to the same spec.
impl fmt::Display for PublishSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host_ip, self.host_ports) {
            (Some(ip), Some(h)) => write!(f, "{ip}:{}:", Range(h))?,
            (Some(ip), None) => write!(f, "{ip}::")?,
            (None, Some(h)) => write!(f, "{}:", Range(h))?,
            (None, None) => {}
        }
        write!(f, "{}/{}", Range(self.container_ports), self.protocol)
    }
}

/// `80` or `80-90`.
struct Range((u16, u16));

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = self.0;
        if a == b {
            write!(f, "{a}")
        } else {
            write!(f, "{a}-{b}")
        }
    }
}

/// `port 80 (1 port)` or `range 80-85 (6 ports)`, for the length mismatch message.
fn describe(side: &str, (a, b): (u16, u16)) -> String {
    if a == b {
        format!("{side} port {a} (1 port)")
    } else {
        format!("{side} range {a}-{b} ({} ports)", u32::from(b - a) + 1)
    }
}

fn spec_error(spec: &str, what: impl fmt::Display) -> ApiError {
    bad(format!("invalid port spec '{spec}': {what}"))
}

const HOST_PORT_ZERO: &str =
    "host port 0 is not allowed: leave the host port out to have one chosen";

/// One port, 1-65535; `host` only changes the message for 0.
fn parse_port(s: &str, host: bool) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port '{s}'"));
    }
    match s.parse::<u32>() {
        Ok(0) if host => Err(HOST_PORT_ZERO.to_string()),
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(format!("invalid port '{s}': expected 1-65535")),
    }
}

/// `80` or `80-90`, in order.
fn parse_range(s: &str, host: bool) -> Result<(u16, u16), String> {
    let Some((a, b)) = s.split_once('-') else {
        let p = parse_port(s, host)?;
        return Ok((p, p));
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return Err(format!("invalid port range '{s}'"));
    }
    let (a, b) = (parse_port(a, host)?, parse_port(b, host)?);
    if a > b {
        return Err(format!("range {a}-{b} is reversed"));
    }
    Ok((a, b))
}

/// The rules a spec must follow whether it was parsed or built: ports 1-65535, ranges in order,
/// equal lengths unless the container side is a single port.
fn check_spec(spec: &PublishSpec) -> Result<(), String> {
    let (c0, c1) = spec.container_ports;
    if c0 == 0 || c1 == 0 {
        return Err("invalid port '0': expected 1-65535".to_string());
    }
    if c0 > c1 {
        return Err(format!("range {c0}-{c1} is reversed"));
    }
    if let Some((h0, h1)) = spec.host_ports {
        if h0 == 0 || h1 == 0 {
            return Err(HOST_PORT_ZERO.to_string());
        }
        if h0 > h1 {
            return Err(format!("range {h0}-{h1} is reversed"));
        }
        if h1 - h0 != c1 - c0 && c0 != c1 {
            return Err(format!(
                "{} and {} differ in length",
                describe("host", (h0, h1)),
                describe("container", (c0, c1))
            ));
        }
    }
    Ok(())
}

/// The host address part: empty means every address; IPv6 (bracketed or not) is refused.
fn parse_host_ip(spec: &str, ip: &str) -> Result<Option<Ipv4Addr>, ApiError> {
    if ip.is_empty() {
        return Ok(None);
    }
    let ipv6 = || {
        bad(format!(
            "IPv6 host addresses are not supported yet: '{spec}'"
        ))
    };
    if let Some(inner) = ip.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        // Docker strips the brackets of any address.
        if inner.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(ipv6());
        }
        return inner
            .parse()
            .map(Some)
            .map_err(|_| spec_error(spec, format_args!("invalid host address '{ip}'")));
    }
    if ip.contains(':') {
        if ip.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(ipv6());
        }
        return Err(spec_error(spec, "too many colons"));
    }
    ip.parse()
        .map(Some)
        .map_err(|_| spec_error(spec, format_args!("invalid host address '{ip}'")))
}

/// Forms: `containerPort`, `hostPort:containerPort`, `ip:hostPort:containerPort`,
/// `ip::containerPort`; each port may be a range `a-b`; suffix `/tcp` (default) or `/udp`.
/// An empty host address or host port means "any" / "choose", as in Docker (`:80`, `::80`).
pub fn parse_publish(spec: &str) -> Result<PublishSpec, ApiError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let n = parts.len();
    // As Docker's splitParts: the last two parts are ports, everything before is the address.
    let (ip, host, container) = match n {
        1 => ("".to_string(), "", parts[0]),
        2 => ("".to_string(), parts[0], parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let host_ip = parse_host_ip(spec, &ip)?;
    let host_ports = if host.is_empty() {
        None
    } else {
        Some(parse_range(host, true).map_err(|e| spec_error(spec, e))?)
    };
    let (ports, protocol) = match container.split_once('/') {
        Some((ports, proto)) => (ports, Some(proto)),
        None => (container, None),
    };
    if ports.is_empty() {
        return Err(spec_error(spec, "missing container port"));
    }
    let container_ports = parse_range(ports, false).map_err(|e| spec_error(spec, e))?;
    let protocol = match protocol {
        Some(p) => p
            .parse::<Protocol>()
            .map_err(|e| spec_error(spec, e.message))?,
        None => Protocol::Tcp,
    };
    let parsed = PublishSpec {
        host_ip,
        host_ports,
        container_ports,
        protocol,
    };
    check_spec(&parsed).map_err(|e| spec_error(spec, e))?;
    Ok(parsed)
}

/// Reads the ephemeral range Docker uses for -P and unspecified host ports:
/// `net.ipv4.ip_local_port_range` as text "32768\t60999\n"; on any problem the fallback
/// 49153-65535.
pub fn ephemeral_range(proc_text: Option<&str>) -> (u16, u16) {
    let parse = |text: &str| -> Option<(u16, u16)> {
        let mut fields = text.split_whitespace();
        let lo: u16 = fields.next()?.parse().ok()?;
        let hi: u16 = fields.next()?.parse().ok()?;
        (fields.next().is_none() && lo >= 1 && lo <= hi).then_some((lo, hi))
    };
    proc_text.and_then(parse).unwrap_or(FALLBACK_EPHEMERAL)
}

/// Everything already published on the host, with the holder's name, to check conflicts and pick
/// free ports.
pub struct Taken<'a> {
    pub mappings: &'a [(String /*container*/, PortMapping)],
}

/// The mappings of one `allocate` call, checked against each other and what is taken.
struct Allocation<'a> {
    container: &'a str,
    taken: &'a [(String, PortMapping)],
    new: Vec<PortMapping>,
}

impl Allocation<'_> {
    fn is_free(&self, m: &PortMapping) -> bool {
        !self.taken.iter().any(|(_, t)| t.clashes_with(m))
            && !self.new.iter().any(|t| t.clashes_with(m))
    }

    /// Adds a mapping whose host port was given; an identical repeat is harmless and dropped.
    fn add(&mut self, m: PortMapping) -> Result<(), ApiError> {
        if self.new.contains(&m) {
            return Ok(());
        }
        if let Some((holder, t)) = self.taken.iter().find(|(_, t)| t.clashes_with(&m)) {
            return Err(bad(format!(
                "host port {}/{} is already published by '{holder}' ({})",
                m.host_port,
                m.protocol,
                t.binding()
            )));
        }
        if let Some(t) = self.new.iter().find(|t| t.clashes_with(&m)) {
            return Err(bad(format!(
                "host port {}/{} is published twice by '{}': {} and {}",
                m.host_port,
                m.protocol,
                self.container,
                t.binding(),
                m.binding()
            )));
        }
        self.new.push(m);
        Ok(())
    }

    /// Publishes `container_port` on the lowest free host port of `range`.
    fn choose(
        &mut self,
        host_ip: Ipv4Addr,
        range: (u16, u16),
        container_port: u16,
        protocol: Protocol,
    ) -> Result<(), ApiError> {
        let found = (range.0.max(1)..=range.1)
            .map(|host_port| PortMapping {
                host_ip,
                host_port,
                container_port,
                protocol,
            })
            .find(|m| self.is_free(m));
        match found {
            Some(m) => {
                self.new.push(m);
                Ok(())
            }
            None => Err(bad(format!(
                "no free host port left in {}-{} for {container_port}/{protocol}",
                range.0, range.1
            ))),
        }
    }
}

/// Turns specs (and, with publish_all, every exposed (port, protocol) not already covered by a
/// spec: -P) into concrete mappings, choosing host ports from `ephemeral` where none is given.
///
/// Given host ports are placed first, then host ranges (first free port of the range), then
/// ephemeral choices, so a chosen port never takes one that another spec of the same call names.
/// Pure: returns the mappings sorted, or the first error.
pub fn allocate(
    container: &str,
    specs: &[PublishSpec],
    publish_all: bool,
    exposed: &[(u16, Protocol)],
    taken: &Taken<'_>,
    ephemeral: (u16, u16),
) -> Result<Vec<PortMapping>, ApiError> {
    for spec in specs {
        check_spec(spec).map_err(|e| spec_error(&spec.to_string(), e))?;
    }
    let mut alloc = Allocation {
        container,
        taken: taken.mappings,
        new: Vec::new(),
    };
    let ip = |spec: &PublishSpec| spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let pairwise = |spec: &PublishSpec| {
        let (c0, c1) = spec.container_ports;
        matches!(spec.host_ports, Some((h0, h1)) if h1 - h0 == c1 - c0)
    };

    for spec in specs.iter().filter(|s| pairwise(s)) {
        let (h0, _) = spec.host_ports.unwrap_or_default();
        let (c0, c1) = spec.container_ports;
        for container_port in c0..=c1 {
            alloc.add(PortMapping {
                host_ip: ip(spec),
                host_port: h0 + (container_port - c0),
                container_port,
                protocol: spec.protocol,
            })?;
        }
    }
    for spec in specs.iter().filter(|s| !pairwise(s)) {
        if let Some(range) = spec.host_ports {
            alloc.choose(ip(spec), range, spec.container_ports.0, spec.protocol)?;
        }
    }
    for spec in specs.iter().filter(|s| s.host_ports.is_none()) {
        let (c0, c1) = spec.container_ports;
        for container_port in c0..=c1 {
            alloc.choose(ip(spec), ephemeral, container_port, spec.protocol)?;
        }
    }
    if publish_all {
        let mut exposed = exposed.to_vec();
        exposed.sort();
        exposed.dedup();
        for (port, protocol) in exposed {
            let covered = specs.iter().any(|s| {
                s.protocol == protocol
                    && (s.container_ports.0..=s.container_ports.1).contains(&port)
            });
            if port != 0 && !covered {
                alloc.choose(Ipv4Addr::UNSPECIFIED, ephemeral, port, protocol)?;
            }
        }
    }
    let mut mappings = alloc.new;
    mappings.sort();
    Ok(mappings)
}

/// `PORT[/PROTO]` of `docker port`.
fn parse_filter(filter: &str) -> Result<(u16, Protocol), ApiError> {
    let invalid = |what: String| bad(format!("invalid port filter '{filter}': {what}"));
    let (port, protocol) = match filter.split_once('/') {
        Some((port, proto)) => (
            port,
            proto.parse().map_err(|e: ApiError| invalid(e.message))?,
        ),
        None => (filter, Protocol::Tcp),
    };
    Ok((parse_port(port, false).map_err(invalid)?, protocol))
}

/// `docker port NAME [PORT[/PROTO]]`: the lines to print, sorted like Docker (by container port,
/// then protocol, then host ip/port). Without a filter, `80/tcp -> 0.0.0.0:49153`; with one, only
/// the host side `0.0.0.0:49153`, as Docker prints.
pub fn port_lines(
    container: &str,
    mappings: &[PortMapping],
    filter: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let mut sorted = mappings.to_vec();
    sorted.sort_by_key(|m| (m.container_port, m.protocol, m.host_ip, m.host_port));
    sorted.dedup();
    let Some(filter) = filter else {
        return Ok(sorted.iter().map(PortMapping::to_string).collect());
    };
    let (port, protocol) = parse_filter(filter)?;
    let lines: Vec<String> = sorted
        .iter()
        .filter(|m| m.container_port == port && m.protocol == protocol)
        .map(PortMapping::host_side)
        .collect();
    if lines.is_empty() {
        return Err(bad(format!(
            "no public port '{port}/{protocol}' published for '{container}'"
        )));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
    const EPH: (u16, u16) = (49153, 65535);

    fn spec(s: &str) -> PublishSpec {
        parse_publish(s).unwrap_or_else(|e| panic!("{s}: {}", e.message))
    }

    fn refused(s: &str) -> String {
        match parse_publish(s) {
            Ok(p) => panic!("{s} accepted as {p:?}"),
            Err(e) => e.message,
        }
    }

    fn pm(
        host_ip: Ipv4Addr,
        host_port: u16,
        container_port: u16,
        protocol: Protocol,
    ) -> PortMapping {
        PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
        }
    }

    fn tcp(host_port: u16, container_port: u16) -> PortMapping {
        pm(ANY, host_port, container_port, Protocol::Tcp)
    }

    fn alloc(
        specs: &[&str],
        publish_all: bool,
        exposed: &[(u16, Protocol)],
        taken: &[(String, PortMapping)],
        ephemeral: (u16, u16),
    ) -> Result<Vec<PortMapping>, String> {
        let specs: Vec<PublishSpec> = specs.iter().map(|s| spec(s)).collect();
        allocate(
            "web",
            &specs,
            publish_all,
            exposed,
            &Taken { mappings: taken },
            ephemeral,
        )
        .map_err(|e| e.message)
    }

    fn held(name: &str, m: PortMapping) -> (String, PortMapping) {
        (name.to_string(), m)
    }

    // ---- parse_publish: forms ----

    #[test]
    fn container_port_only() {
        assert_eq!(
            spec("80"),
            PublishSpec {
                host_ip: None,
                host_ports: None,
                container_ports: (80, 80),
                protocol: Protocol::Tcp
            }
        );
    }

    #[test]
    fn host_and_container_port() {
        let s = spec("8080:80/udp");
        assert_eq!(s.host_ports, Some((8080, 8080)));
        assert_eq!(s.container_ports, (80, 80));
        assert_eq!(s.protocol, Protocol::Udp);
        assert_eq!(s.host_ip, None);
    }

    #[test]
    fn ip_host_and_container_port() {
        let s = spec("127.0.0.1:8080:80/tcp");
        assert_eq!(s.host_ip, Some(LO));
        assert_eq!(s.host_ports, Some((8080, 8080)));
        assert_eq!(s.protocol, Protocol::Tcp);
    }

    #[test]
    fn ip_without_host_port() {
        let s = spec("10.1.2.3::80");
        assert_eq!(s.host_ip, Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(s.host_ports, None);
        assert_eq!(s.container_ports, (80, 80));
    }

    #[test]
    fn empty_host_parts_mean_choose_as_in_docker() {
        assert_eq!(spec(":80"), spec("80"));
        assert_eq!(spec("::80"), spec("80"));
    }

    #[test]
    fn ranges_and_protocol_case() {
        let s = spec("8000-8002:80-82/UDP");
        assert_eq!(s.host_ports, Some((8000, 8002)));
        assert_eq!(s.container_ports, (80, 82));
        assert_eq!(s.protocol, Protocol::Udp);
        assert_eq!(spec("80-85").container_ports, (80, 85));
        assert_eq!(spec("8000-8010:80").host_ports, Some((8000, 8010)));
        assert_eq!(spec("65535:1").host_ports, Some((65535, 65535)));
    }

    #[test]
    fn bracketed_ipv4_is_accepted_like_docker() {
        assert_eq!(spec("[127.0.0.1]:80:80").host_ip, Some(LO));
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(spec("80").to_string(), "80/tcp");
        assert_eq!(
            spec("8000-8001:80-81/udp").to_string(),
            "8000-8001:80-81/udp"
        );
        assert_eq!(spec("127.0.0.1::80").to_string(), "127.0.0.1::80/tcp");
        assert_eq!(spec("0.0.0.0:1:2").to_string(), "0.0.0.0:1:2/tcp");
    }

    // ---- parse_publish: errors ----

    #[test]
    fn too_many_colons() {
        assert_eq!(
            refused("1.2.3.4:8080:80:90"),
            "invalid port spec '1.2.3.4:8080:80:90': too many colons"
        );
        assert_eq!(
            refused(":::80"),
            "invalid port spec ':::80': too many colons"
        );
    }

    #[test]
    fn two_colons_means_a_host_address() {
        assert_eq!(
            refused("8080:80:90"),
            "invalid port spec '8080:80:90': invalid host address '8080'"
        );
    }

    #[test]
    fn reversed_ranges() {
        assert_eq!(
            refused("80-70:80-70"),
            "invalid port spec '80-70:80-70': range 80-70 is reversed"
        );
        assert_eq!(
            refused("8080-8090:90-80"),
            "invalid port spec '8080-8090:90-80': range 90-80 is reversed"
        );
    }

    #[test]
    fn range_lengths_differ() {
        assert_eq!(
            refused("8000-8010:80-85"),
            "invalid port spec '8000-8010:80-85': host range 8000-8010 (11 ports) and container range 80-85 (6 ports) differ in length"
        );
        assert_eq!(
            refused("8080:80-85"),
            "invalid port spec '8080:80-85': host port 8080 (1 port) and container range 80-85 (6 ports) differ in length"
        );
    }

    #[test]
    fn invalid_ports() {
        assert_eq!(
            refused("abc"),
            "invalid port spec 'abc': invalid port 'abc'"
        );
        assert_eq!(
            refused("+80"),
            "invalid port spec '+80': invalid port '+80'"
        );
        assert_eq!(
            refused("x:80"),
            "invalid port spec 'x:80': invalid port 'x'"
        );
        assert_eq!(
            refused("70000"),
            "invalid port spec '70000': invalid port '70000': expected 1-65535"
        );
        assert_eq!(
            refused("0"),
            "invalid port spec '0': invalid port '0': expected 1-65535"
        );
        assert_eq!(
            refused("99999999999999999999"),
            "invalid port spec '99999999999999999999': invalid port '99999999999999999999': expected 1-65535"
        );
        assert_eq!(
            refused("80-"),
            "invalid port spec '80-': invalid port range '80-'"
        );
        assert_eq!(
            refused("1-2-3"),
            "invalid port spec '1-2-3': invalid port range '1-2-3'"
        );
        assert_eq!(refused(""), "invalid port spec '': missing container port");
        assert_eq!(
            refused("8080:"),
            "invalid port spec '8080:': missing container port"
        );
        assert_eq!(
            refused("/udp"),
            "invalid port spec '/udp': missing container port"
        );
    }

    #[test]
    fn host_port_zero_is_refused_with_a_hint() {
        assert_eq!(
            refused("0:80"),
            "invalid port spec '0:80': host port 0 is not allowed: leave the host port out to have one chosen"
        );
        assert_eq!(
            refused("0-5:80"),
            "invalid port spec '0-5:80': host port 0 is not allowed: leave the host port out to have one chosen"
        );
    }

    #[test]
    fn invalid_host_addresses() {
        assert_eq!(
            refused("1.2.3:80:80"),
            "invalid port spec '1.2.3:80:80': invalid host address '1.2.3'"
        );
        assert_eq!(
            refused("[1.2.3]:80:80"),
            "invalid port spec '[1.2.3]:80:80': invalid host address '[1.2.3]'"
        );
        assert_eq!(
            refused("localhost:80:80"),
            "invalid port spec 'localhost:80:80': invalid host address 'localhost'"
        );
    }

    #[test]
    fn ipv6_is_refused() {
        assert_eq!(
            refused("[::1]:8080:80"),
            "IPv6 host addresses are not supported yet: '[::1]:8080:80'"
        );
        assert_eq!(
            refused("[2001:db8::1]::80/udp"),
            "IPv6 host addresses are not supported yet: '[2001:db8::1]::80/udp'"
        );
        // Docker also reads an unbracketed address this way.
        assert_eq!(
            refused("2001:db8::1:8080:80"),
            "IPv6 host addresses are not supported yet: '2001:db8::1:8080:80'"
        );
    }

    #[test]
    fn invalid_protocols() {
        assert_eq!(
            refused("80/icmp"),
            "invalid port spec '80/icmp': invalid protocol 'icmp': expected tcp or udp"
        );
        assert_eq!(
            refused("80/sctp"),
            "invalid port spec '80/sctp': protocol sctp is not supported by switchyard (tcp or udp)"
        );
        assert_eq!(
            refused("80/"),
            "invalid port spec '80/': invalid protocol '': expected tcp or udp"
        );
        assert_eq!(
            refused("80/tcp/udp"),
            "invalid port spec '80/tcp/udp': invalid protocol 'tcp/udp': expected tcp or udp"
        );
        assert_eq!(
            refused("80/tcp:80"),
            "invalid port spec '80/tcp:80': invalid port '80/tcp'"
        );
    }

    #[test]
    fn all_refusals_are_bad_input_and_one_line() {
        for s in ["abc", "80/icmp", "[::1]:1:1", "1:2:3:4", "0:80", "9-8"] {
            let e = parse_publish(s).unwrap_err();
            assert_eq!(e.kind, ApiError::bad_input("").kind);
            assert!(!e.message.contains('\n'));
        }
    }

    // ---- ephemeral_range ----

    #[test]
    fn ephemeral_range_reads_the_kernel_text() {
        assert_eq!(ephemeral_range(Some("32768\t60999\n")), (32768, 60999));
        assert_eq!(ephemeral_range(Some("1024 1024")), (1024, 1024));
    }

    #[test]
    fn ephemeral_range_falls_back() {
        for text in [
            "",
            "garbage",
            "32768",
            "32768\t",
            "60999\t32768\n",
            "0\t100\n",
            "32768\t70000\n",
            "32768\t60999\t5\n",
            "-1\t5\n",
        ] {
            assert_eq!(ephemeral_range(Some(text)), (49153, 65535), "{text:?}");
        }
        assert_eq!(ephemeral_range(None), (49153, 65535));
    }

    // ---- allocate ----

    #[test]
    fn given_ports_are_used_and_ranges_expand_pairwise() {
        assert_eq!(
            alloc(&["8000-8002:80-82"], false, &[], &[], EPH).unwrap(),
            vec![tcp(8000, 80), tcp(8001, 81), tcp(8002, 82)]
        );
        assert_eq!(
            alloc(&["127.0.0.1:8080:80/udp"], false, &[], &[], EPH).unwrap(),
            vec![pm(LO, 8080, 80, Protocol::Udp)]
        );
    }

    #[test]
    fn unspecified_host_ports_come_from_the_bottom_of_the_ephemeral_range() {
        assert_eq!(
            alloc(&["80", "443", "127.0.0.1::53/udp"], false, &[], &[], EPH).unwrap(),
            vec![
                pm(ANY, 49153, 80, Protocol::Tcp),
                pm(ANY, 49154, 443, Protocol::Tcp),
                pm(LO, 49153, 53, Protocol::Udp),
            ]
        );
        assert_eq!(
            alloc(&["80-82"], false, &[], &[], (32768, 60999)).unwrap(),
            vec![tcp(32768, 80), tcp(32769, 81), tcp(32770, 82)]
        );
    }

    #[test]
    fn chosen_ports_skip_taken_ones_of_the_same_protocol_only() {
        let taken = [
            held("db", tcp(49153, 5432)),
            held("dns", pm(ANY, 49154, 53, Protocol::Udp)),
        ];
        assert_eq!(
            alloc(&["80"], false, &[], &taken, EPH).unwrap(),
            vec![tcp(49154, 80)]
        );
    }

    #[test]
    fn chosen_ports_do_not_take_a_port_another_spec_names() {
        assert_eq!(
            alloc(&["80", "49153:81"], false, &[], &[], EPH).unwrap(),
            vec![tcp(49153, 81), tcp(49154, 80)]
        );
    }

    #[test]
    fn host_range_with_single_container_port_picks_one() {
        assert_eq!(
            alloc(&["8000-8010:80"], false, &[], &[], EPH).unwrap(),
            vec![tcp(8000, 80)]
        );
        let taken = [held("a", tcp(8000, 1)), held("b", tcp(8001, 1))];
        assert_eq!(
            alloc(&["8000-8010:80"], false, &[], &taken, EPH).unwrap(),
            vec![tcp(8002, 80)]
        );
        assert_eq!(
            alloc(&["8000-8001:80", "8000:81"], false, &[], &[], EPH).unwrap(),
            vec![tcp(8000, 81), tcp(8001, 80)]
        );
        assert_eq!(
            alloc(&["8000-8001:80"], false, &[], &taken, EPH).unwrap_err(),
            "no free host port left in 8000-8001 for 80/tcp"
        );
    }

    #[test]
    fn publish_all_covers_exposed_ports_not_already_published() {
        let exposed = [
            (80, Protocol::Tcp),
            (53, Protocol::Udp),
            (443, Protocol::Tcp),
            (80, Protocol::Tcp),
            (53, Protocol::Tcp),
        ];
        let taken = [held("db", tcp(49153, 5432))];
        assert_eq!(
            alloc(
                &["8080:80", "127.0.0.1::53/udp"],
                true,
                &exposed,
                &taken,
                EPH
            )
            .unwrap(),
            vec![
                tcp(8080, 80),
                tcp(49154, 53),
                tcp(49155, 443),
                pm(LO, 49153, 53, Protocol::Udp),
            ]
        );
        // Without -P, exposed ports are not published.
        assert_eq!(
            alloc(&[], false, &exposed, &taken, EPH).unwrap(),
            Vec::<PortMapping>::new()
        );
    }

    #[test]
    fn conflict_with_another_container() {
        let taken = [held("web", tcp(8080, 80))];
        assert_eq!(
            alloc(&["8080:8000"], false, &[], &taken, EPH).unwrap_err(),
            "host port 8080/tcp is already published by 'web' (0.0.0.0:8080 -> 80/tcp)"
        );
    }

    #[test]
    fn unspecified_address_overlaps_every_address() {
        let any = [held("web", tcp(8080, 80))];
        assert_eq!(
            alloc(&["127.0.0.1:8080:80"], false, &[], &any, EPH).unwrap_err(),
            "host port 8080/tcp is already published by 'web' (0.0.0.0:8080 -> 80/tcp)"
        );
        let lo = [held("db", pm(LO, 8080, 5432, Protocol::Tcp))];
        assert_eq!(
            alloc(&["8080:80"], false, &[], &lo, EPH).unwrap_err(),
            "host port 8080/tcp is already published by 'db' (127.0.0.1:8080 -> 5432/tcp)"
        );
        // Two different specific addresses do not overlap.
        assert_eq!(
            alloc(&["10.0.0.1:8080:80"], false, &[], &lo, EPH).unwrap(),
            vec![pm(Ipv4Addr::new(10, 0, 0, 1), 8080, 80, Protocol::Tcp)]
        );
    }

    #[test]
    fn tcp_and_udp_do_not_conflict() {
        let taken = [held("dns", pm(ANY, 53, 53, Protocol::Udp))];
        assert_eq!(
            alloc(
                &["53:53", "5353:53/udp", "5353:53/tcp"],
                false,
                &[],
                &taken,
                EPH
            )
            .unwrap(),
            vec![
                pm(ANY, 53, 53, Protocol::Tcp),
                pm(ANY, 5353, 53, Protocol::Tcp),
                pm(ANY, 5353, 53, Protocol::Udp),
            ]
        );
    }

    #[test]
    fn conflict_among_new_mappings() {
        assert_eq!(
            alloc(&["8080:80", "127.0.0.1:8080:81"], false, &[], &[], EPH).unwrap_err(),
            "host port 8080/tcp is published twice by 'web': 0.0.0.0:8080 -> 80/tcp and 127.0.0.1:8080 -> 81/tcp"
        );
        assert_eq!(
            alloc(&["8000-8002:80-82", "8002:90"], false, &[], &[], EPH).unwrap_err(),
            "host port 8002/tcp is published twice by 'web': 0.0.0.0:8002 -> 82/tcp and 0.0.0.0:8002 -> 90/tcp"
        );
        // The same binding twice is one binding; one container port on two host ports is fine.
        assert_eq!(
            alloc(&["8080:80", "8080:80", "8081:80"], false, &[], &[], EPH).unwrap(),
            vec![tcp(8080, 80), tcp(8081, 80)]
        );
    }

    #[test]
    fn pool_exhaustion() {
        let taken = [held("a", tcp(40000, 1))];
        assert_eq!(
            alloc(&["80", "81"], false, &[], &taken, (40000, 40001)).unwrap_err(),
            "no free host port left in 40000-40001 for 81/tcp"
        );
        assert_eq!(
            alloc(&[], true, &[(80, Protocol::Tcp)], &taken, (40000, 40000)).unwrap_err(),
            "no free host port left in 40000-40000 for 80/tcp"
        );
        // The last port of the range is used.
        assert_eq!(
            alloc(&["80"], false, &[], &taken, (40000, 40001)).unwrap(),
            vec![tcp(40001, 80)]
        );
        assert_eq!(
            alloc(&["80"], false, &[], &[], (65535, 65535)).unwrap(),
            vec![tcp(65535, 80)]
        );
    }

    #[test]
    fn built_specs_are_checked_too() {
        let bad_spec = PublishSpec {
            host_ip: None,
            host_ports: Some((10, 12)),
            container_ports: (80, 81),
            protocol: Protocol::Tcp,
        };
        let e = allocate(
            "web",
            &[bad_spec],
            false,
            &[],
            &Taken { mappings: &[] },
            EPH,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "invalid port spec '10-12:80-81/tcp': host range 10-12 (3 ports) and container range 80-81 (2 ports) differ in length"
        );
    }

    // ---- display, serde, port_lines ----

    #[test]
    fn mapping_display_is_docker_port_line() {
        assert_eq!(tcp(49153, 80).to_string(), "80/tcp -> 0.0.0.0:49153");
        assert_eq!(
            pm(LO, 5353, 53, Protocol::Udp).to_string(),
            "53/udp -> 127.0.0.1:5353"
        );
    }

    #[test]
    fn mapping_serde_round_trip() {
        let m = pm(LO, 5353, 53, Protocol::Udp);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"host_ip":"127.0.0.1","host_port":5353,"container_port":53,"protocol":"udp"}"#
        );
        assert_eq!(serde_json::from_str::<PortMapping>(&json).unwrap(), m);
    }

    fn published() -> Vec<PortMapping> {
        vec![
            pm(LO, 9000, 443, Protocol::Tcp),
            tcp(49154, 443),
            pm(ANY, 49153, 53, Protocol::Udp),
            tcp(8080, 80),
            tcp(49153, 53),
            tcp(8081, 80),
        ]
    }

    #[test]
    fn port_lines_lists_everything_sorted() {
        assert_eq!(
            port_lines("web", &published(), None).unwrap(),
            vec![
                "53/tcp -> 0.0.0.0:49153",
                "53/udp -> 0.0.0.0:49153",
                "80/tcp -> 0.0.0.0:8080",
                "80/tcp -> 0.0.0.0:8081",
                "443/tcp -> 0.0.0.0:49154",
                "443/tcp -> 127.0.0.1:9000",
            ]
        );
        assert!(port_lines("web", &[], None).unwrap().is_empty());
    }

    #[test]
    fn port_lines_filter_prints_host_sides() {
        assert_eq!(
            port_lines("web", &published(), Some("443")).unwrap(),
            vec!["0.0.0.0:49154", "127.0.0.1:9000"]
        );
        assert_eq!(
            port_lines("web", &published(), Some("53/udp")).unwrap(),
            vec!["0.0.0.0:49153"]
        );
        assert_eq!(
            port_lines("web", &published(), Some("80/tcp")).unwrap(),
            vec!["0.0.0.0:8080", "0.0.0.0:8081"]
        );
    }

    #[test]
    fn port_lines_filter_errors() {
        let err = |f: &str| {
            port_lines("web", &published(), Some(f))
                .unwrap_err()
                .message
        };
        assert_eq!(err("8080"), "no public port '8080/tcp' published for 'web'");
        assert_eq!(err("80/udp"), "no public port '80/udp' published for 'web'");
        assert_eq!(err("abc"), "invalid port filter 'abc': invalid port 'abc'");
        assert_eq!(
            err("0"),
            "invalid port filter '0': invalid port '0': expected 1-65535"
        );
        assert_eq!(
            err("80/icmp"),
            "invalid port filter '80/icmp': invalid protocol 'icmp': expected tcp or udp"
        );
        assert_eq!(
            err("80/sctp"),
            "invalid port filter '80/sctp': protocol sctp is not supported by switchyard (tcp or udp)"
        );
    }

    // ---- properties ----

    fn protocol() -> impl Strategy<Value = Protocol> {
        prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)]
    }

    fn address() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![Just(ANY), Just(LO), Just(Ipv4Addr::new(10, 0, 0, 1))]
    }

    /// Valid specs; given host ports live in 1000-1012, ephemeral ones in 2000-2005.
    fn publish_spec() -> impl Strategy<Value = PublishSpec> {
        (
            proptest::option::of(address()),
            0u8..3,
            1000u16..1010,
            0u16..3,
            1u16..20,
            0u16..3,
            protocol(),
        )
            .prop_map(|(host_ip, kind, h0, hlen, c0, clen, protocol)| {
                let (host_ports, container_ports) = match kind {
                    0 => (None, (c0, c0 + clen)),
                    1 => (Some((h0, h0 + clen)), (c0, c0 + clen)),
                    _ => (Some((h0, h0 + hlen)), (c0, c0)),
                };
                PublishSpec {
                    host_ip,
                    host_ports,
                    container_ports,
                    protocol,
                }
            })
    }

    fn taken_mapping() -> impl Strategy<Value = (String, PortMapping)> {
        (
            prop_oneof![Just("a"), Just("b")],
            address(),
            prop_oneof![1000u16..1013, 2000u16..2006],
            1u16..20,
            protocol(),
        )
            .prop_map(|(name, ip, hp, cp, proto)| (name.to_string(), pm(ip, hp, cp, proto)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn allocate_never_double_books_nor_leaves_the_range(
            specs in proptest::collection::vec(publish_spec(), 0..5),
            publish_all in any::<bool>(),
            exposed in proptest::collection::vec((1u16..20, protocol()), 0..5),
            taken in proptest::collection::vec(taken_mapping(), 0..8),
            width in 0u16..6,
        ) {
            let ephemeral = (2000, 2000 + width);
            let result = allocate("web", &specs, publish_all, &exposed, &Taken { mappings: &taken }, ephemeral);
            if let Ok(ms) = result {
                for (i, a) in ms.iter().enumerate() {
                    for b in &ms[i + 1..] {
                        prop_assert!(a < b, "not sorted or repeated: {:?} {:?}", a, b);
                        prop_assert!(!a.clashes_with(b), "{:?} clashes with {:?}", a, b);
                    }
                    for (_, t) in &taken {
                        prop_assert!(!a.clashes_with(t), "{:?} clashes with taken {:?}", a, t);
                    }
                    let given = specs.iter().any(|s| {
                        s.protocol == a.protocol
                            && (s.container_ports.0..=s.container_ports.1).contains(&a.container_port)
                            && matches!(s.host_ports, Some((h0, h1)) if (h0..=h1).contains(&a.host_port))
                    });
                    prop_assert!(given || (ephemeral.0..=ephemeral.1).contains(&a.host_port), "{:?}", a);
                }
                for s in &specs {
                    for cp in s.container_ports.0..=s.container_ports.1 {
                        prop_assert!(ms.iter().any(|m| m.container_port == cp && m.protocol == s.protocol));
                    }
                }
                if publish_all {
                    for (port, proto) in &exposed {
                        prop_assert!(ms.iter().any(|m| m.container_port == *port && m.protocol == *proto));
                    }
                }
            }
        }

        #[test]
        fn spec_display_parses_back(s in publish_spec()) {
            prop_assert_eq!(parse_publish(&s.to_string()).map_err(|e| e.message), Ok(s));
        }

        #[test]
        fn parse_publish_never_panics(s in "[0-9a-z:.\\[\\]/-]{0,20}") {
            if let Err(e) = parse_publish(&s) {
                prop_assert!(!e.message.contains('\n'));
            }
        }
    }
}
