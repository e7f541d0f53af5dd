//! Routed networks across hosts, the seed's two-host example: two "hosts" (the lab's switch
//! namespace and "h2"), each with its own daemon, joined by an underlay veth on which each daemon's
//! uplink owns an address (10.99.0.1 and 10.99.0.2). Each has a routed network (172.20.0.0/16 on
//! host1, 172.21.0.0/16 on host2) and one route to the other's subnet: its uplink gateway, the
//! other host's uplink address. Containers reach each other by their own addresses, with no NAT
//! either way, and a NAT network beside them behaves as before.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::probe::{self, Servers};
use common::*;

const T: Duration = Duration::from_secs(3);
const HOST1: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const HOST2: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// The two hosts and their daemons; host1's daemon is the lab's (returned: its child index).
fn two_hosts(lab: &mut Lab) -> (usize, OtherDaemon) {
    // The underlay: host1 (the switch namespace) <-> host2 ("h2", eth0), no kernel addresses:
    // each side's uplink address belongs to its daemon.
    lab.host("h2", "192.0.2.99/32");
    lab.exec_ok("h2", &["ip", "addr", "flush", "dev", "eth0"]);
    let d1 = host1_daemon(lab, "d1");
    let h2 = lab.other_daemon(
        "h2",
        &[
            "--uplink",
            "eth0",
            "--uplink-ip",
            "10.99.0.2/24",
            "--uplink-gateway",
            "10.99.0.1",
        ],
    );
    (d1, h2)
}

fn host1_daemon(lab: &mut Lab, label: &str) -> usize {
    let wire = lab.port("h2");
    lab.daemon(
        label,
        &[
            "--uplink",
            &wire,
            "--uplink-ip",
            "10.99.0.1/24",
            "--uplink-gateway",
            "10.99.0.2",
        ],
    )
}

#[test]
fn containers_on_routed_networks_reach_each_other_across_hosts_by_their_own_addresses() {
    let mut lab = Lab::new("ro");
    let (d1, h2) = two_hosts(&mut lab);
    lab.cli_ok(&[
        "network",
        "create",
        "r1",
        "--subnet",
        "172.20.0.0/16",
        "--opt",
        "gateway_mode=routed",
    ]);
    // Docker's spelling of the same option.
    h2.cli_ok(&[
        "network",
        "create",
        "r2",
        "--subnet",
        "172.21.0.0/16",
        "--opt",
        "com.docker.network.bridge.gateway_mode_ipv4=routed",
    ]);
    let c1 = lab.container("c1", &["--network", "r1"]);
    // On host1's NAT network (the default bridge): masqueraded as before.
    let n1 = lab.container("n1", &[]);
    let c2 = lab.adopt("c2");
    h2.cli_ok(&[
        "container",
        "create",
        &c2,
        "--network",
        "r2",
        "-p",
        "8080:80",
    ]);
    let (c1_ip, c2_ip) = ("172.20.0.2", "172.21.0.2");

    // ping both ways by address.
    lab.ping_ok("c1", c2_ip);
    lab.ping_ok("c2", c1_ip);

    // TCP: the server sees the client's own address, from a probe and from nc.
    let mut servers = Servers::new();
    servers.tcp_whoami(&c2, 80);
    servers.tcp_whoami(&c1, 80);
    let c2_addr: Ipv4Addr = c2_ip.parse().unwrap();
    let seen = wait_for("whoami c1 -> c2", || probe::whoami(&c1, c2_addr, 80, T));
    assert!(seen.starts_with("172.20.0.2:"), "c2 saw {seen}");
    let nc = lab.exec_ok("c1", &["sh", "-c", "nc -w 2 172.21.0.2 80 </dev/null"]);
    assert!(nc.starts_with("172.20.0.2:"), "nc got {nc:?}");
    let seen = wait_for("whoami c2 -> c1", || {
        probe::whoami(&c2, c1_ip.parse().unwrap(), 80, T)
    });
    assert!(seen.starts_with("172.21.0.2:"), "c1 saw {seen}");
    // A container on a NAT network beside it still leaves with its host's address.
    let seen = wait_for("whoami n1 -> c2", || probe::whoami(&n1, c2_addr, 80, T));
    assert!(
        seen.starts_with(&format!("{HOST1}:")),
        "c2 saw {seen} from the NAT network"
    );
    // A published port of a routed container still works (DNAT on host2's uplink address), and
    // its server sees the client's own address: c1's packets leave host1 untranslated.
    let seen = wait_for("whoami c1 -> host2:8080", || {
        probe::whoami(&c1, HOST2, 8080, T)
    });
    assert!(
        seen.starts_with("172.20.0.2:"),
        "c2 saw {seen} through 8080"
    );
    // Only NAT is tracked: host1 holds n1's masquerade, nothing of c1's routed connections;
    // host2 holds the published port's connection.
    let ct = lab.cli_ok(&["conntrack"]);
    assert!(ct.contains("src=172.17.0.2"), "{ct}");
    assert!(!ct.contains("src=172.20.0.2"), "{ct}");
    let ct2 = h2.cli_ok(&["conntrack"]);
    assert!(
        ct2.contains("src=172.20.0.2") && ct2.contains("dport=8080"),
        "{ct2}"
    );
    // The hosts' uplink addresses answer too, and the far network's gateway.
    lab.ping_ok("c1", "10.99.0.2");
    lab.ping_ok("c1", "172.21.0.1");

    // Bulk TCP across the hosts with the kernel's default offloads (GSO frames routed whole).
    let bytes = lab.iperf("c2", "c1", c2_ip, 2);
    assert!(bytes > 1e7, "iperf3 across hosts moved {bytes} bytes");

    // As a router: TTL 1 gets time exceeded from the gateway; an address no container holds
    // gets host unreachable from host2's uplink address.
    let out = lab.exec("c1", &["ping", "-c", "1", "-W", "2", "-t", "1", c2_ip]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("From 172.20.0.1") && text.contains("Time to live exceeded"),
        "{text}"
    );
    let out = lab.exec("c1", &["ping", "-c", "1", "-W", "2", "172.21.0.99"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("From 10.99.0.2") && text.contains("Destination Host Unreachable"),
        "{text}"
    );
    // Isolation holds: the routed network does not reach host1's NAT network.
    lab.ping_fails("c1", "172.17.0.2");
    // icc=false holds on a routed network: its containers do not talk to each other without a
    // link, while the other host still reaches each of them (icc is between containers).
    lab.cli_ok(&[
        "network",
        "create",
        "r3",
        "--subnet",
        "172.22.0.0/16",
        "--opt",
        "gateway_mode=routed",
        "--opt",
        "icc=false",
    ]);
    lab.container("x", &["--network", "r3"]);
    lab.container("y", &["--network", "r3"]);
    lab.ping_ok("c2", "172.22.0.2");
    lab.ping_ok("c2", "172.22.0.3");
    lab.ping_fails("x", "172.22.0.3");

    // The mode is shown: ls, inspect, topology; and a what-if trace shows the routing step.
    let ls = lab.cli_ok(&["network", "ls"]);
    let r1 = ls.lines().find(|l| l.contains(" r1 ")).unwrap_or(&ls);
    assert!(r1.contains("routed"), "{ls}");
    let inspect = lab.inspect("network", "r1");
    assert_eq!(
        inspect["Options"]["com.docker.network.bridge.gateway_mode_ipv4"],
        "routed"
    );
    let topology = lab.cli_ok(&["topology"]);
    assert!(topology.contains("[routed]"), "{topology}");
    let what_if = lab.cli_ok(&[
        "trace",
        "packet",
        "--in",
        "uplink",
        "tcp,src=172.21.0.2,dst=172.20.0.2,dport=80",
    ]);
    assert!(
        what_if.contains("route 172.21.0.2 > 172.20.0.2 via 172.20.0.2"),
        "{what_if}"
    );
    assert!(what_if.contains(&format!("out {c1}")), "{what_if}");

    // Bad input: one line, exit 2, nothing made.
    for opt in ["gateway_mode=bogus", "gateway_mode="] {
        let out = lab.cli(&["network", "create", "bad", "--opt", opt]);
        assert_eq!(out.status.code(), Some(2), "{opt}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("expected nat or routed"), "{err}");
    }
    let out = lab.cli(&[
        "network",
        "create",
        "bad",
        "--internal",
        "--opt",
        "gateway_mode=routed",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!lab.cli_ok(&["network", "ls"]).contains(" bad "));

    // kill -9 and restart: the mode is persisted, and routing resumes.
    lab.signal(d1, libc::SIGKILL);
    while lab.running(d1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    host1_daemon(&mut lab, "d1-again");
    assert!(lab.inspect("network", "r1")["Options"]
        .to_string()
        .contains("routed"));
    lab.ping_ok("c1", c2_ip);
    let seen = wait_for("whoami after restart", || {
        probe::whoami(&c1, c2_addr, 80, T)
    });
    assert!(seen.starts_with("172.20.0.2:"), "c2 saw {seen}");
}
