//! The daemon end to end: networks, lightweight containers, persistence across `kill -9`, and bad
//! input, through the real CLI, with the daemon inside its own namespace (`ip netns exec`).
//!
//! Container names are the lab's namespace names (`<tag>-web`), so parallel tests never collide
//! in /run/netns, and the lab deletes them even when a test fails.

mod common;

use std::time::{Duration, Instant};

use common::probe;
use common::*;

/// `ip -o -4 addr show dev IF` inside a namespace (IPv4 only: IPv6 link-local addresses change
/// flags while duplicate address detection runs, which would make comparisons flaky).
fn addresses(lab: &Lab, host: &str, ifname: &str) -> String {
    lab.exec_ok(host, &["ip", "-o", "-4", "addr", "show", "dev", ifname])
}

fn link_exists(lab: &Lab, host: &str, ifname: &str) -> bool {
    lab.exec(host, &["ip", "link", "show", "dev", ifname])
        .status
        .success()
}

#[test]
fn networks_are_created_inspected_and_removed_like_dockers() {
    let mut lab = Lab::new("dn");
    lab.daemon("d", &[]);
    let ls = lab.cli_ok(&["network", "ls"]);
    assert!(
        ls.starts_with("NETWORK ID") && ls.contains("bridge") && ls.contains("172.17.0.0/16"),
        "{ls}"
    );
    let bridge = lab.inspect("network", "bridge");
    assert_eq!(bridge["Name"], "bridge");
    assert_eq!(bridge["Id"].as_str().unwrap().len(), 64);
    assert_eq!(bridge["Scope"], "local");
    assert_eq!(bridge["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
    assert_eq!(bridge["IPAM"]["Config"][0]["Gateway"], "172.17.0.1");
    assert_eq!(
        bridge["Options"]["com.docker.network.bridge.name"],
        "switchyard0"
    );
    // The host port holds the gateway, as docker0 holds 172.17.0.1.
    assert!(addresses(&lab, "sw", "switchyard0").contains("inet 172.17.0.1/16"));

    let id = lab.cli_ok(&[
        "network",
        "create",
        "front",
        "--subnet",
        "10.30.0.0/16",
        "--gateway",
        "10.30.0.254",
        "--ip-range",
        "10.30.5.0/24",
        "--aux-address",
        "router=10.30.0.2",
        "--opt",
        "icc=false",
        "--mtu",
        "1400",
    ]);
    let front = lab.inspect("network", "front");
    assert_eq!(front["Id"], id.trim());
    let cfg = &front["IPAM"]["Config"][0];
    assert_eq!(cfg["Subnet"], "10.30.0.0/16");
    assert_eq!(cfg["Gateway"], "10.30.0.254");
    assert_eq!(cfg["IPRange"], "10.30.5.0/24");
    assert_eq!(cfg["AuxiliaryAddresses"]["router"], "10.30.0.2");
    assert_eq!(
        front["Options"]["com.docker.network.bridge.enable_icc"],
        "false"
    );
    assert_eq!(front["Options"]["com.docker.network.driver.mtu"], "1400");
    let host_port = front["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(host_port.len() <= 15, "{host_port}");
    let a = addresses(&lab, "sw", &host_port);
    assert!(a.contains("inet 10.30.0.254/16"), "{a}");
    let link = lab.exec_ok("sw", &["ip", "-o", "link", "show", "dev", &host_port]);
    assert!(link.contains("mtu 1400"), "{link}");

    // Without --subnet: Docker's pools, skipping what the daemon's namespace already routes.
    // (a veth pair: this kernel may lack the dummy driver)
    lab.exec_ok(
        "sw",
        &[
            "ip", "link", "add", "rt0", "type", "veth", "peer", "name", "rt1",
        ],
    );
    lab.exec_ok("sw", &["ip", "addr", "add", "172.18.0.1/16", "dev", "rt0"]);
    lab.exec_ok("sw", &["ip", "link", "set", "rt0", "up"]);
    lab.exec_ok("sw", &["ip", "link", "set", "rt1", "up"]);
    lab.cli_ok(&["network", "create", "auto"]);
    let auto = lab.inspect("network", "auto");
    assert_eq!(auto["IPAM"]["Config"][0]["Subnet"], "172.19.0.0/16");
    assert_eq!(auto["IPAM"]["Config"][0]["Gateway"], "172.19.0.1");

    let out = lab.cli_ok(&["network", "rm", "front", "auto"]);
    assert_eq!(out, "front\nauto\n");
    let ls = lab.cli_ok(&["network", "ls"]);
    assert!(!ls.contains("front") && !ls.contains("auto"), "{ls}");
    assert!(!link_exists(&lab, "sw", &host_port), "host port deleted");
}

#[test]
fn containers_reach_each_other_and_the_host() {
    let mut lab = Lab::new("ct");
    lab.daemon("d", &[]);
    let web = lab.container("web", &[]);
    let db = lab.container("db", &["--ip", "172.17.0.50", "--mac", "02:42:ac:11:00:32"]);

    let w = lab.inspect("container", &web);
    assert_eq!(w["Name"], format!("/{web}"));
    assert_eq!(
        w["NetworkSettings"]["SandboxKey"],
        format!("/run/netns/{web}")
    );
    let ep = &w["NetworkSettings"]["Networks"]["bridge"];
    assert_eq!(ep["IPAddress"], "172.17.0.2", "first free address");
    assert_eq!(ep["IPPrefixLen"], 16);
    assert_eq!(ep["Gateway"], "172.17.0.1");
    let web_mac = ep["MacAddress"].as_str().unwrap().to_string();
    let first = u8::from_str_radix(&web_mac[..2], 16).unwrap();
    assert_eq!(
        first & 0x03,
        0x02,
        "random, locally administered: {web_mac}"
    );
    assert_eq!(lab.mac("web", "eth0"), web_mac);
    assert_eq!(lab.mac("db", "eth0"), "02:42:ac:11:00:32");
    assert!(addresses(&lab, "web", "eth0").contains("inet 172.17.0.2/16"));
    let routes = lab.exec_ok("web", &["ip", "route"]);
    assert!(
        routes.contains("default via 172.17.0.1 dev eth0"),
        "{routes}"
    );
    assert!(lab
        .exec_ok("web", &["ip", "-o", "link", "show", "lo"])
        .contains("UP"));

    lab.ping_ok("web", "172.17.0.50");
    lab.ping_ok("db", "172.17.0.2");
    // Containers reach the host port, and the host reaches them.
    lab.ping_ok("web", "172.17.0.1");
    lab.ping_ok("sw", "172.17.0.2");
    // The gateway is the host port, not the host end of the container's veth (which the
    // daemon's IP stack must ignore, or routed traffic would bypass the switch).
    let tap_mac = lab.mac("sw", "switchyard0");
    let neigh = lab.exec_ok("web", &["ip", "neigh", "show", "172.17.0.1"]);
    assert!(
        neigh.contains(&tap_mac),
        "gateway resolved to {neigh}, not {tap_mac}"
    );
    // Beyond the host, through its routing: an outside namespace wired to the daemon's.
    lab.outside("172.17.0.0/16");
    lab.ping_ok("web", "192.0.2.2");

    // exec runs inside the namespace and returns the command's exit code.
    let out = lab.cli_ok(&[
        "container",
        "exec",
        &web,
        "--",
        "ip",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(out.contains("172.17.0.2/16"), "{out}");
    let out = lab.cli(&["container", "exec", &web, "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let ls = lab.cli_ok(&["container", "ls"]);
    assert!(
        ls.contains(&web) && ls.contains(&db) && ls.contains("172.17.0.50/16"),
        "{ls}"
    );

    // A second network: eth1, its own addresses, reachable there.
    lab.cli_ok(&["network", "create", "back", "--subnet", "10.40.0.0/24"]);
    lab.cli_ok(&["network", "connect", "back", &web]);
    lab.cli_ok(&["network", "connect", "back", &db, "--ip", "10.40.0.9"]);
    assert!(addresses(&lab, "web", "eth1").contains("inet 10.40.0.2/24"));
    lab.ping_ok("web", "10.40.0.9");
    let back = lab.inspect("network", "back");
    assert_eq!(back["Containers"].as_object().unwrap().len(), 2);

    lab.cli_ok(&["network", "disconnect", "back", &web]);
    assert!(!link_exists(&lab, "web", "eth1"));
    let back = lab.inspect("network", "back");
    assert_eq!(back["Containers"].as_object().unwrap().len(), 1);
    // The address went back to the pool.
    lab.cli_ok(&["network", "connect", "back", &web, "--ip", "10.40.0.2"]);
    lab.ping_ok("db", "10.40.0.2");

    let out = lab.cli_ok(&["container", "rm", &web]);
    assert_eq!(out.trim(), web);
    assert!(!std::path::Path::new(&format!("/run/netns/{web}")).exists());
    assert_ne!(
        lab.cli(&["container", "inspect", &web]).status.code(),
        Some(0)
    );
    lab.ping_fails("db", "172.17.0.2");
    lab.container("web2", &["--ip", "172.17.0.2"]);
    lab.ping_ok("web2", "172.17.0.50");
}

/// Captures on `ifname` inside `host` for `secs` seconds with a tcpdump filter; returns the lines.
fn capture(lab: &mut Lab, host: &str, label: &str, filter: &str) -> usize {
    lab.spawn(
        host,
        label,
        &["tcpdump", "-l", "-n", "-e", "-i", "eth0", filter],
    );
    lab.wait_log(label, "listening on", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    lab.children_len() - 1
}

#[test]
fn networks_are_separate_bridge_domains_and_attach_announces_itself() {
    let mut lab = Lab::new("bd");
    lab.daemon("d", &[]);
    lab.cli_ok(&["network", "create", "a", "--subnet", "10.50.0.0/24"]);
    lab.cli_ok(&["network", "create", "b", "--subnet", "10.51.0.0/24"]);
    lab.container("a1", &["--network", "a", "--mac", "02:00:00:00:50:01"]);
    lab.container("b1", &["--network", "b"]);
    lab.container("a2", &["--network", "a"]);

    // A gratuitous ARP announces a new container to its network.
    let t = capture(
        &mut lab,
        "a1",
        "garp",
        "arp and ether src 02:00:00:00:50:03",
    );
    lab.container(
        "a3",
        &[
            "--network",
            "a",
            "--ip",
            "10.50.0.33",
            "--mac",
            "02:00:00:00:50:03",
        ],
    );
    let start = Instant::now();
    while !lab.log("garp", "out").contains("10.50.0.33") && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.signal(t, libc::SIGINT);
    let garp = lab.log("garp", "out");
    assert!(
        garp.contains("ff:ff:ff:ff:ff:ff") && garp.matches("10.50.0.33").count() >= 2,
        "a gratuitous ARP (sender = target = 10.50.0.33, broadcast): {garp}"
    );

    // Broadcasts and unknown unicast flood within network a only.
    let in_a = capture(&mut lab, "a2", "in-a", "ether src 02:00:00:00:50:01");
    let in_b = capture(&mut lab, "b1", "in-b", "ether src 02:00:00:00:50:01");
    lab.exec(
        "a1",
        &["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.50.0.99"],
    );
    lab.exec(
        "a1",
        &[
            "ping",
            "-b",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "10.50.0.255",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    lab.signal(in_a, libc::SIGINT);
    lab.signal(in_b, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    let seen_a = lab
        .log("in-a", "out")
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    let seen_b = lab
        .log("in-b", "out")
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    assert!(seen_a >= 3, "network a floods to its members: {seen_a}");
    assert_eq!(
        seen_b,
        0,
        "no frame crosses into network b: {}",
        lab.log("in-b", "out")
    );
}

#[test]
fn restart_after_kill_9_restores_networks_containers_and_traffic() {
    let mut lab = Lab::new("rs");
    let d = lab.daemon("d1", &[]);
    lab.cli_ok(&["network", "create", "back", "--subnet", "10.60.0.0/24"]);
    let web = lab.container("web", &[]);
    let db = lab.container("db", &[]);
    lab.cli_ok(&["network", "connect", "back", &db]);
    lab.cli_ok(&["network", "connect", "back", &web]);
    lab.ping_ok("web", "172.17.0.3");
    lab.ping_ok("web", "10.60.0.2");
    // Policy is state too: an icc=false network with a link.
    lab.cli_ok(&[
        "network",
        "create",
        "closed",
        "--subnet",
        "10.61.0.0/24",
        "--opt",
        "icc=false",
    ]);
    let svc = lab.container("svc", &["--network", "closed", "--expose", "8080"]);
    let cli = lab.container(
        "cli",
        &["--network", "closed", "--link", &format!("{svc}:svc")],
    );
    let mut servers = probe::Servers::new();
    servers.tcp(&svc, 8080);
    let svc_ip: std::net::Ipv4Addr = "10.61.0.2".parse().unwrap();
    // A server on cli too: only icc (svc is not linked to cli) may keep svc from reaching it.
    servers.tcp(&cli, 8080);
    let open = || probe::tcp_ok(&cli, svc_ip, 8080, Duration::from_secs(2));
    assert!(open());
    let before = (
        lab.cli_ok(&["network", "inspect", "bridge", "back", "closed"]),
        lab.cli_ok(&["container", "inspect", &web, &db, &svc, &cli]),
        lab.cli_ok(&["container", "env", &cli]),
        lab.mac("web", "eth0"),
        addresses(&lab, "db", "eth1"),
    );

    lab.kill_9(d);
    // Nothing forwards while the daemon is down: the switch really carries this traffic.
    lab.ping_fails("web", "172.17.0.3");

    lab.daemon("d2", &[]);
    let ready = Instant::now();
    let out = lab.exec("web", &["ping", "-c", "1", "-W", "1", "172.17.0.3"]);
    assert!(
        out.status.success(),
        "traffic resumes within a second of the restart: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(ready.elapsed() < Duration::from_secs(2));
    lab.ping_ok("db", "10.60.0.3");
    assert!(
        lab.log("d2", "err").contains("failures=0"),
        "{}",
        lab.log("d2", "err")
    );
    let after = (
        lab.cli_ok(&["network", "inspect", "bridge", "back", "closed"]),
        lab.cli_ok(&["container", "inspect", &web, &db, &svc, &cli]),
        lab.cli_ok(&["container", "env", &cli]),
        lab.mac("web", "eth0"),
        addresses(&lab, "db", "eth1"),
    );
    assert_eq!(before, after, "same networks, addresses, MACs and links");
    assert!(open(), "the link still opens its port");
    assert!(
        !probe::tcp_ok(
            &svc,
            "10.61.0.3".parse().unwrap(),
            8080,
            Duration::from_millis(200)
        ),
        "and icc=false still closes the rest"
    );
    // And the restored daemon keeps working.
    lab.container("cache", &["--network", "back"]);
    lab.ping_ok("cache", "10.60.0.2");
}

#[test]
fn bad_input_is_refused_with_one_line_and_changes_nothing() {
    let mut lab = Lab::new("bi");
    lab.daemon("d", &[]);
    lab.cli_ok(&[
        "network",
        "create",
        "front",
        "--subnet",
        "10.70.0.0/24",
        "--ip-range",
        "10.70.0.128/25",
    ]);
    lab.cli_ok(&["network", "create", "tiny", "--subnet", "10.71.0.0/30"]);
    let web = lab.container("web", &["--network", "front"]);
    lab.container("t1", &["--network", "tiny"]);
    let db = lab.adopt("db");
    // A namespace of that name made by someone else is never taken over.
    let taken = lab.adopt("taken");
    must(&["ip", "netns", "add", &taken]);
    let state = lab.state_dir().join("state.json");
    let snapshot = |lab: &Lab| {
        let mut netns: Vec<String> = std::fs::read_dir("/run/netns")
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&lab.tag))
            .collect();
        netns.sort();
        (
            std::fs::read_to_string(&state).unwrap(),
            lab.cli_ok(&["network", "ls"]),
            lab.cli_ok(&["container", "ls"]),
            lab.exec_ok("sw", &["ip", "-o", "link", "show"]),
            netns,
        )
    };
    let rows: &[(&[&str], &str)] = &[
        (
            &["network", "create", "x", "--subnet", "10.0.0.0/33"],
            "10.0.0.0/33",
        ),
        (
            &["network", "create", "x", "--subnet", "10.0.0"],
            "'10.0.0'",
        ),
        (
            &["network", "create", "x", "--subnet", "10.3.0.1/16"],
            "10.3.0.0/16",
        ),
        (
            &[
                "network",
                "create",
                "x",
                "--subnet",
                "10.80.0.0/16",
                "--gateway",
                "10.81.0.1",
            ],
            "gateway 10.81.0.1 is outside subnet 10.80.0.0/16",
        ),
        (
            &[
                "network",
                "create",
                "x",
                "--subnet",
                "10.80.0.0/16",
                "--ip-range",
                "10.81.0.0/24",
            ],
            "ip-range 10.81.0.0/24 is outside subnet 10.80.0.0/16",
        ),
        (
            &["network", "create", "x", "--subnet", "10.70.0.0/16"],
            "overlaps 10.70.0.0/24",
        ),
        (
            &["network", "create", "front", "--subnet", "10.82.0.0/16"],
            "'front' already exists",
        ),
        (
            &["network", "create", "x", "--opt", "icc=perhaps"],
            "'perhaps'",
        ),
        (
            &["container", "create", &web, "--network", "front"],
            "already exists",
        ),
        (
            &[
                "container",
                "create",
                &db,
                "--network",
                "front",
                "--ip",
                "10.70.0.128",
            ],
            "10.70.0.128 is already in use",
        ),
        (
            &[
                "container",
                "create",
                &db,
                "--network",
                "front",
                "--ip",
                "10.99.0.5",
            ],
            "10.99.0.5 is outside subnet 10.70.0.0/24",
        ),
        (
            &["container", "create", &db, "--network", "nope"],
            "no such network: 'nope'",
        ),
        (
            &["container", "create", &db, "--network", "tiny"],
            "no free address",
        ),
        (&["container", "create", &taken], "network namespace '"),
        (&["container", "rm", "ghost"], "no such container: 'ghost'"),
        (
            &["network", "connect", "front", "ghost"],
            "no such container: 'ghost'",
        ),
        (&["network", "inspect", "ghost"], "no such network: 'ghost'"),
        (&["network", "rm", "front"], "has containers attached"),
        (&["network", "rm", "bridge"], "cannot be removed"),
    ];
    for (args, expected) in rows {
        let before = snapshot(&lab);
        let out = lab.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(
            err.starts_with("switchyard: error: ") && err.contains(expected),
            "{args:?}: expected '{expected}' in: {err}"
        );
        assert_eq!(before, snapshot(&lab), "{args:?} changed something");
    }

    // No daemon: say how to start one.
    let out = std::process::Command::new(switchyard_bin())
        .args(["network", "ls", "--socket", "/nonexistent/switchyard.sock"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("/nonexistent/switchyard.sock") && err.contains("switchyard daemon"),
        "{err}"
    );
    // A second daemon on the same state is refused.
    let state_dir = lab.state_dir().display().to_string();
    let other_sock = lab.dir.join("other.sock").display().to_string();
    let out = lab.exec(
        "sw",
        &[
            switchyard_bin(),
            "daemon",
            "--state-dir",
            &state_dir,
            "--socket",
            &other_sock,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("in use by another switchyard daemon"),
        "{err}"
    );

    // --force removes a network with containers attached, disconnecting them.
    lab.cli_ok(&["network", "rm", "--force", "front"]);
    let w = lab.inspect("container", &web);
    assert!(w["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .is_empty());
}
