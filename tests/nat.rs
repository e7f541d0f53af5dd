//! Port publishing end to end: an "outside" namespace plays the world behind the uplink veth
//! (192.0.2.1, also the uplink's gateway); switchyard owns 192.0.2.10 on the uplink. Real clients
//! (nc, ping, iperf3) and in-process probes.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::probe::{self, Servers};
use common::*;

const UPLINK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const WORLD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const T: Duration = Duration::from_secs(3);
const DENY: Duration = Duration::from_millis(300);

#[test]
fn published_ports_reach_containers_which_see_the_clients_address() {
    let (mut lab, _) = Lab::uplinked("np");
    let web = lab.container("web", &["-p", "8080:80"]);
    let dns = lab.container("dns", &["-p", "5353:53/udp"]);
    lab.container("perf", &["-p", "5201:5201"]);
    let mut servers = Servers::new();
    servers.tcp_whoami(&web, 80);
    servers.udp(&dns, 53);

    // switchyard answers ARP and ping for its uplink address.
    lab.ping_ok("out", "192.0.2.10");
    // TCP: the container sees the client's own address (docker-proxy would show its own).
    let seen = wait_for("whoami", || probe::whoami(&out(&lab), UPLINK_IP, 8080, T));
    assert!(seen.starts_with("192.0.2.1:"), "container saw {seen}");
    // The same with a real client.
    let nc = lab.exec_ok("out", &["sh", "-c", "nc -w 2 192.0.2.10 8080 </dev/null"]);
    assert!(nc.starts_with("192.0.2.1:"), "nc got {nc:?}");
    // UDP echo through the published UDP port.
    assert!(probe::udp_ok(&out(&lab), UPLINK_IP, 5353, T));
    // iperf3 through DNAT, default offloads (checksum-partial and GSO frames rewritten).
    let bytes = lab.iperf_to("perf", None, "out", "192.0.2.10", 3);
    assert!(bytes > 1e7, "iperf3 through DNAT moved {bytes} bytes");
    // Nothing else is open, and a client hears so at once, as from a host: a TCP reset, an
    // ICMP port unreachable for UDP (not silence until a timeout).
    assert!(probe::tcp_refused(&out(&lab), UPLINK_IP, 9999, DENY));
    assert!(probe::udp_refused(&out(&lab), UPLINK_IP, 9999, DENY));
    let nc = lab.exec("out", &["nc", "-z", "-w", "5", "192.0.2.10", "9999"]);
    assert!(!nc.status.success());
    // A protocol nothing publishes is still dropped and counted.
    let status = lab.cli_ok(&["status"]);
    assert!(status.contains("port relay"), "{status}");
    let ct = lab.cli_ok(&["conntrack"]);
    assert!(
        ct.contains("dnat") && ct.contains("dport=8080") && ct.contains("sport=80"),
        "{ct}"
    );
    // The nat stage explains itself: a what-if packet from the world to the published port.
    let what_if = lab.cli_ok(&[
        "trace",
        "packet",
        "--in",
        "uplink",
        "tcp,src=192.0.2.1,dst=192.0.2.10,sport=45000,dport=8080",
    ]);
    assert!(
        what_if
            .contains("dnat: 192.0.2.1:45000 > 192.0.2.10:8080 => 192.0.2.1:45000 > 172.17.0.2:80"),
        "{what_if}"
    );
    assert!(what_if.contains(&format!("out {web}")), "{what_if}");
    // And a live trace of the uplink shows the same for real packets.
    lab.cli_ok(&[
        "trace",
        "add",
        "uplink",
        "1",
        "--filter",
        "tcp dst port 8080",
    ]);
    assert!(probe::whoami(&out(&lab), UPLINK_IP, 8080, T).is_some());
    let live = lab.cli_ok(&["trace", "show", "--explain"]);
    assert!(
        live.contains("NAT (dnat)") && live.contains("new connection tracked"),
        "{live}"
    );
}

/// The daemon's threads at rest: the fewest seen over half a second (the API socket serves each
/// client on a short-lived thread of its own, which a single look may catch).
fn threads(pid: u32) -> usize {
    (0..25)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .count()
        })
        .min()
        .unwrap()
}

/// Fetches `url` with curl in `host`, retrying while the server starts; returns the body.
fn curl(lab: &Lab, host: &str, url: &str) -> String {
    let start = Instant::now();
    loop {
        let out = lab.exec(host, &["curl", "-sS", "--max-time", "2", url]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "curl {url} in {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn published_ports_from_the_host_itself() {
    let (mut lab, d) = Lab::uplinked("nh");
    let sw = lab.ns("sw");
    // One more address of the host, on an interface switchyard knows nothing of.
    lab.exec_ok("sw", &["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let web = lab.container("web", &["-p", "8080:80", "-p", "5353:53/udp"]);
    let threads_before = threads(lab.pid(d));
    let local = lab.container(
        "local",
        &["-p", "127.0.0.1:5001:5000", "-p", "127.0.0.1::5000"],
    );
    let lines = lab.cli_ok(&["port", &local]);
    assert_eq!(
        lines, "5000/tcp -> 127.0.0.1:5001\n5000/tcp -> 127.0.0.1:32768\n",
        "{lines}"
    );
    lab.container("only", &["-p", "10.99.0.1:7001:80"]);
    let page = lab.dir.join("www");
    std::fs::create_dir_all(&page).unwrap();
    std::fs::write(page.join("index.html"), "hello from web\n").unwrap();
    let page = page.display().to_string();
    for c in ["web", "only"] {
        lab.spawn(
            c,
            &format!("http-{c}"),
            &["busybox", "httpd", "-f", "-p", "80", "-h", &page],
        );
    }
    let mut servers = Servers::new();
    servers.tcp_whoami(&local, 5000);
    servers.udp(&web, 53);

    // From the host's own namespace: loopback, the gateway address, another host address.
    for url in [
        "http://127.0.0.1:8080/",
        "http://localhost:8080/",
        "http://172.17.0.1:8080/",
        "http://10.99.0.1:8080/",
        "http://10.99.0.1:7001/",
    ] {
        assert_eq!(curl(&lab, "sw", url), "hello from web\n", "{url}");
    }
    let seen = lab.exec_ok("sw", &["sh", "-c", "nc -w 2 127.0.0.1 5001 </dev/null"]);
    assert!(seen.starts_with("172.17.0.1:"), "local saw {seen:?}");
    assert!(probe::whoami(&sw, Ipv4Addr::LOCALHOST, 32768, T).is_some());
    assert!(probe::udp_ok(&sw, Ipv4Addr::LOCALHOST, 5353, T));
    assert!(probe::udp_ok(&sw, Ipv4Addr::new(172, 17, 0, 1), 5353, T));
    // A port published on one address only is not on the others.
    assert!(probe::tcp_refused(&sw, Ipv4Addr::LOCALHOST, 7001, T));

    // A container dialling its gateway address and a published port.
    lab.container("client", &[]);
    assert_eq!(
        curl(&lab, "client", "http://172.17.0.1:8080/"),
        "hello from web\n"
    );
    let client = lab.ns("client");
    assert!(probe::tcp_refused(
        &client,
        Ipv4Addr::new(172, 17, 0, 1),
        5001,
        T
    ));

    // From outside: the uplink address serves 8080, never the loopback-only ports.
    assert_eq!(
        curl(&lab, "out", "http://192.0.2.10:8080/"),
        "hello from web\n"
    );
    for port in [5001, 32768, 7001] {
        assert!(probe::tcp_refused(&out(&lab), UPLINK_IP, port, T), "{port}");
    }

    // No thread and no process per port: a hundred more ports change neither.
    lab.container(
        "range",
        &["-p", "9000-9099:9000-9099", "-p", "9000-9099:9000-9099/udp"],
    );
    assert_eq!(threads(lab.pid(d)), threads_before, "threads per port");
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", lab.pid(d)))
        .unwrap_or_default();
    assert_eq!(children.trim(), "", "no child processes");
    assert!(
        !probe::tcp_ok(&sw, Ipv4Addr::LOCALHOST, 9050, DENY),
        "nothing serves in range"
    );

    // A host port another program holds: refused, and nothing is left behind.
    let _holder = probe::in_netns(&sw, || {
        std::net::TcpListener::bind(("0.0.0.0", 7777)).unwrap()
    });
    let before = lab.cli_ok(&["container", "ls"]);
    let x = lab.adopt("x");
    let out = lab.cli(&["container", "create", &x, "-p", "7777:80"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot listen on 0.0.0.0:7777/tcp"), "{err}");
    assert_eq!(lab.cli_ok(&["container", "ls"]), before);

    // Removing the container stops its ports on the host too.
    lab.cli_ok(&["container", "rm", &local]);
    assert!(probe::tcp_refused(&sw, Ipv4Addr::LOCALHOST, 5001, T));
    let status = lab.cli_ok(&["status"]);
    assert!(status.contains("port relay"), "{status}");
}

fn out(lab: &Lab) -> String {
    lab.ns("out")
}

#[test]
fn masquerade_and_hairpin() {
    let (mut lab, _) = Lab::uplinked("nm");
    let mut servers = Servers::new();
    servers.tcp_whoami(&out(&lab), 9000);
    let web = lab.container("web", &["-p", "8080:80"]);
    servers.tcp_whoami(&web, 80);
    let client = lab.container("client", &[]);

    // A container's connection to the world leaves with the uplink address.
    let seen = wait_for("masquerade", || probe::whoami(&client, WORLD, 9000, T));
    assert!(seen.starts_with("192.0.2.10:"), "the world saw {seen}");
    lab.ping_ok("client", "192.0.2.1");
    // Hairpin: a neighbour's published port on the uplink address, and the container's own.
    let seen = wait_for("hairpin", || probe::whoami(&client, UPLINK_IP, 8080, T));
    assert!(seen.starts_with("192.0.2.10:"), "web saw {seen}");
    let own = wait_for("own port", || probe::whoami(&web, UPLINK_IP, 8080, T));
    assert!(own.starts_with("192.0.2.10:"), "{own}");
    lab.ping_ok("client", "192.0.2.10");
    // ICMP errors about tracked flows are translated both ways: "port unreachable" from the
    // world reaches the masqueraded container's socket, and the container's own reaches the
    // client of a published port.
    assert!(
        probe::udp_refused(&client, WORLD, 9999, T),
        "world -> container"
    );
    lab.container("silent", &["-p", "6001:6001/udp"]);
    assert!(
        probe::udp_refused(&out(&lab), UPLINK_IP, 6001, T),
        "container -> world"
    );

    // An internal network gets neither outbound access nor published ports.
    lab.cli_ok(&[
        "network",
        "create",
        "sealed",
        "--subnet",
        "10.77.0.0/24",
        "--internal",
    ]);
    let inside = lab.container("inside", &["--network", "sealed"]);
    lab.exec_ok(
        "inside",
        &["ip", "route", "add", "default", "via", "10.77.0.1"],
    );
    assert!(probe::whoami(&inside, WORLD, 9000, DENY).is_none());
    let out = lab.cli(&[
        "container",
        "create",
        "x",
        "--network",
        "sealed",
        "-p",
        "80",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("internal"), "{err}");
    let status = lab.cli_ok(&["status"]);
    assert!(status.contains("internal="), "{status}");
}

#[test]
fn publish_all_ranges_port_listing_and_bad_specs() {
    let (mut lab, _) = Lab::uplinked("nr");
    let auto = lab.container("auto", &["--expose", "80", "--expose", "53/udp", "-P"]);
    let lines = lab.cli_ok(&["port", &auto]);
    // A fresh namespace's ip_local_port_range starts at 32768: the first free port is chosen.
    assert_eq!(
        lines, "53/udp -> 0.0.0.0:32768\n80/tcp -> 0.0.0.0:32768\n",
        "docker port output"
    );
    assert_eq!(lab.cli_ok(&["port", &auto, "80"]), "0.0.0.0:32768\n");
    let mut servers = Servers::new();
    servers.tcp(&auto, 80);
    assert!(wait_for("-P", || probe::tcp_ok(
        &out(&lab),
        UPLINK_IP,
        32768,
        T
    )
    .then_some(true)));

    let range = lab.container("range", &["-p", "7000-7002:8000-8002"]);
    for p in 8000..=8002 {
        servers.tcp(&range, p);
    }
    for p in 7000..=7002 {
        assert!(probe::tcp_ok(&out(&lab), UPLINK_IP, p, T), "range port {p}");
    }

    let taken = lab.adopt("taken");
    let state = lab.state_dir().join("state.json");
    let rows: &[(&str, &str)] = &[
        ("7001:80", "already published by"),
        ("abc", "invalid port spec 'abc'"),
        ("80-70:80-70", "reversed"),
        ("8000-8010:80-85", "differ in length"),
        ("80/icmp", "invalid protocol 'icmp'"),
        ("[::1]:80:80", "IPv6"),
        ("1.2.3:80:80", "invalid host address '1.2.3'"),
        ("99999:80", "99999"),
        ("10.9.9.9:80:80", "not an address of this host"),
        ("1:2:3:4:5", "invalid port spec"),
    ];
    for (spec, expected) in rows {
        let before = (
            std::fs::read_to_string(&state).unwrap(),
            lab.cli_ok(&["container", "ls"]),
        );
        let out = lab.cli(&["container", "create", &taken, "-p", spec]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {err}");
        assert_eq!(err.lines().count(), 1, "{spec}: {err}");
        assert!(
            err.contains(expected),
            "{spec}: expected '{expected}' in {err}"
        );
        let after = (
            std::fs::read_to_string(&state).unwrap(),
            lab.cli_ok(&["container", "ls"]),
        );
        assert_eq!(before, after, "{spec} changed something");
    }
    let err = lab.cli(&["port", &auto, "8080"]);
    assert_ne!(err.status.code(), Some(0));

    // A daemon whose uplink address lies inside one of its networks is bad input (on a first
    // start the default network would move out of the way; this state already holds it).
    let other_state = lab.dir.join("other-state");
    std::fs::create_dir_all(&other_state).unwrap();
    std::fs::copy(&state, other_state.join("state.json")).unwrap();
    let state = other_state.display().to_string();
    let sock = lab.dir.join("other.sock").display().to_string();
    lab.host("other", "192.0.2.50/24");
    let out = lab.exec(
        "other",
        &[
            "timeout",
            "20",
            switchyard_bin(),
            "daemon",
            "--state-dir",
            &state,
            "--socket",
            &sock,
            "--uplink",
            "eth0",
            "--uplink-ip",
            "172.17.0.5/16",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("network 'bridge' holds the uplink address 172.17.0.5"),
        "{err}"
    );
}

/// Connections are not kept across a restart, and a published server may speak first after one
/// (a retransmission, or data it was sending): its segment leaves from the published port the
/// client knows, not masqueraded from its own port (which the client answered with a reset,
/// ending the connection), and the client's answer reaches it.
#[test]
fn a_published_server_speaking_first_after_a_restart_keeps_its_connection() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let (mut lab, d) = Lab::uplinked("nq");
    let web = lab.container("web", &["-p", "8080:80"]);
    let listener = probe::in_netns(&web, || {
        std::net::TcpListener::bind(("0.0.0.0", 80)).unwrap()
    });
    let mut client = probe::in_netns(&out(&lab), || {
        std::net::TcpStream::connect_timeout(&(UPLINK_IP, 8080).into(), T).unwrap()
    });
    let (mut server, _) = listener.accept().unwrap();
    lab.kill_9(d);
    lab.uplink_daemon("d2");
    // `msg` written on `from` arrives whole on `to` within T.
    let pass = |from: &mut TcpStream, to: &mut TcpStream, msg: &[u8], what: &str| {
        from.write_all(msg).unwrap();
        to.set_read_timeout(Some(T)).unwrap();
        let mut got = vec![0u8; msg.len()];
        to.read_exact(&mut got).expect(what);
        assert_eq!(got, msg, "{what}");
    };
    pass(
        &mut server,
        &mut client,
        b"first",
        "the server's segment reaches the client",
    );
    pass(
        &mut client,
        &mut server,
        b"back",
        "the client's answer reaches the server",
    );
    let ct = lab.cli_ok(&["conntrack"]);
    assert!(ct.contains("8080"), "{ct}");
}

#[test]
fn tcp_survives_a_restart_and_removal_cuts_flows() {
    let (mut lab, d) = Lab::uplinked("nk");
    let web = lab.container("web", &["-p", "8080:80"]);
    let mut servers = Servers::new();
    servers.tcp(&web, 80);
    let conn = wait_for("connect", || {
        probe::tcp_connect(&out(&lab), UPLINK_IP, 8080, T)
    });

    // kill -9 and start again: the established connection goes on (mid-stream pickup), whoever
    // speaks first after the restart (the server may, retransmitting its echo if the client's
    // ACK was lost with the daemon: `a_published_server_speaking_first_...`).
    lab.kill_9(d);
    lab.uplink_daemon("d2");
    assert!(probe::echo(&conn, T), "the connection survived the restart");
    let ct = lab.cli_ok(&["conntrack"]);
    assert!(ct.contains("ESTABLISHED"), "{ct}");

    // A UDP flow to a published port; remove the container and publish the port again on a
    // new one: the same client flow reaches the new container (no stale entry keeps sending
    // to the old address, docker0's stale-conntrack problem).
    let u1 = lab.container("u1", &["-p", "6000:6000/udp"]);
    let mut udp = Servers::new();
    udp.udp(&u1, 6000);
    let sock = probe::udp_socket(&out(&lab));
    assert!(wait_for("udp", || probe::udp_echo(
        &sock, UPLINK_IP, 6000, T
    )
    .then_some(true)));
    drop(udp);
    lab.cli_ok(&["container", "rm", &u1]);
    assert!(!lab.cli_ok(&["conntrack"]).contains("dport=6000"));
    let u2 = lab.container("u2", &["-p", "6000:6000/udp"]);
    let mut udp = Servers::new();
    udp.udp(&u2, 6000);
    assert!(
        probe::udp_echo(&sock, UPLINK_IP, 6000, T),
        "the flow reaches u2"
    );

    // Removing the container behind the TCP connection cuts it at once.
    drop(servers);
    lab.cli_ok(&["container", "rm", &web]);
    assert!(!lab.cli_ok(&["conntrack"]).contains("dport=8080"));
    assert!(!probe::echo(&conn, DENY));
}
