//! Isolation end to end with real traffic: icc=false with links, network isolation through host
//! routing, anti-spoofing, live changes, and a randomized run of link and container changes
//! checked against a model while traffic flows.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::probe::{self, Servers};
use common::*;

const DENY_TIMEOUT: Duration = Duration::from_millis(150);
const ALLOW_TIMEOUT: Duration = Duration::from_secs(2);

/// A container's address and host-side interface on `network`.
fn endpoint(lab: &Lab, container: &str, network: &str) -> (Ipv4Addr, String) {
    let c = lab.inspect("container", container);
    let e = &c["NetworkSettings"]["Networks"][network];
    (
        e["IPAddress"].as_str().unwrap().parse().unwrap(),
        e["HostInterface"].as_str().unwrap().to_string(),
    )
}

/// A drop counter of one port, read from `switchyard status`.
fn drops(lab: &Lab, port: &str, reason: &str) -> u64 {
    let status = lab.cli_ok(&["status"]);
    let mut lines = status.lines();
    while let Some(line) = lines.next() {
        if line.split_whitespace().nth(1) == Some(port) {
            let Some(extra) = lines.next().filter(|l| l.starts_with("       ")) else {
                return 0;
            };
            return extra
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{reason}=")))
                .map(|n| n.parse().unwrap())
                .unwrap_or(0);
        }
    }
    panic!("port {port} not in status:\n{status}");
}

fn nc_ok(lab: &Lab, host: &str, addr: &str, port: &str) -> bool {
    lab.exec(host, &["nc", "-z", "-w", "1", addr, port])
        .status
        .success()
}

#[test]
fn icc_false_opens_exactly_what_links_allow() {
    let mut lab = Lab::new("ic");
    lab.daemon("d", &[]);
    lab.cli_ok(&[
        "network",
        "create",
        "closed",
        "--subnet",
        "10.90.0.0/24",
        "--opt",
        "icc=false",
    ]);
    let db = lab.container(
        "db",
        &[
            "--network",
            "closed",
            "--expose",
            "5432",
            "--expose",
            "53/udp",
            "--expose",
            "5201",
        ],
    );
    let link = format!("{db}:db");
    let web = lab.container("web", &["--network", "closed", "--link", &link]);
    let cache = lab.container("cache", &["--network", "closed", "--expose", "5432"]);
    let (db_ip, _) = endpoint(&lab, &db, "closed");
    let (web_ip, web_port) = endpoint(&lab, &web, "closed");
    let (cache_ip, _) = endpoint(&lab, &cache, "closed");
    let mut servers = Servers::new();
    for c in [&db, &web, &cache] {
        servers.tcp(c, 5432);
        servers.tcp(c, 80);
    }
    servers.udp(&db, 53);

    // What the link opens, both ways for replies: web -> db on each exposed port.
    assert!(probe::tcp_ok(&web, db_ip, 5432, ALLOW_TIMEOUT));
    assert!(
        nc_ok(&lab, "web", &db_ip.to_string(), "5432"),
        "nc web -> db:5432"
    );
    assert!(probe::udp_ok(&web, db_ip, 53, ALLOW_TIMEOUT));
    let bytes = lab.iperf("db", "web", &db_ip.to_string(), 2);
    assert!(bytes > 1e6, "iperf3 through the link: {bytes}");
    // And nothing else.
    assert!(!probe::tcp_ok(&web, db_ip, 80, DENY_TIMEOUT), "not exposed");
    assert!(
        !nc_ok(&lab, "web", &db_ip.to_string(), "80"),
        "nc: not exposed"
    );
    assert!(
        !probe::tcp_ok(&db, web_ip, 5432, DENY_TIMEOUT),
        "links are one-way"
    );
    assert!(!probe::tcp_ok(&cache, db_ip, 5432, DENY_TIMEOUT), "no link");
    assert!(
        !probe::tcp_ok(&web, cache_ip, 5432, DENY_TIMEOUT),
        "no link to cache"
    );
    lab.ping_fails("web", &db_ip.to_string());
    // The host port is always allowed, both ways; ARP between containers still resolves.
    lab.ping_ok("web", "10.90.0.1");
    lab.ping_ok("sw", &db_ip.to_string());
    lab.ping_ok("sw", &cache_ip.to_string());
    let neigh = lab.exec_ok("web", &["ip", "neigh", "show", &db_ip.to_string()]);
    assert!(
        neigh.contains(&lab.mac("db", "eth0")),
        "ARP resolved: {neigh}"
    );
    assert!(drops(&lab, &web_port, "icc") > 0, "icc drops are counted");

    // Docker's link variables and hosts entry.
    let env = lab.cli_ok(&["container", "env", &web]);
    for want in [
        format!("DB_NAME=/{web}/db"),
        format!("DB_PORT=udp://{db_ip}:53"),
        format!("DB_PORT_5432_TCP=tcp://{db_ip}:5432"),
        format!("DB_PORT_5432_TCP_ADDR={db_ip}"),
        "DB_PORT_5432_TCP_PORT=5432".to_string(),
        "DB_PORT_5432_TCP_PROTO=tcp".to_string(),
        format!("DB_PORT_53_UDP=udp://{db_ip}:53"),
    ] {
        assert!(env.lines().any(|l| l == want), "missing {want} in:\n{env}");
    }
    let hosts = lab.cli_ok(&["container", "exec", &web, "--", "cat", "/etc/hosts"]);
    let short_id =
        |name: &str| lab.inspect("container", name)["Id"].as_str().unwrap()[..12].to_string();
    let (db_host, web_host) = (short_id(&db), short_id(&web));
    assert!(
        hosts.contains(&format!("{db_ip}\tdb {db_host} {db}\n")),
        "{hosts}"
    );
    assert!(
        hosts.ends_with(&format!("{web_ip}\t{web_host}\n")),
        "{hosts}"
    );
    let via_ip = lab.exec_ok("web", &["cat", "/etc/hosts"]);
    assert_eq!(via_ip, hosts, "ip netns exec shows the same file");
    let resolved = lab.cli_ok(&["container", "exec", &web, "--", "getent", "hosts", "db"]);
    assert!(resolved.starts_with(&db_ip.to_string()), "{resolved}");

    // Live: removing the link closes an established connection at once, adding it reopens.
    let conn = probe::tcp_connect(&web, db_ip, 5432, ALLOW_TIMEOUT).expect("connected");
    lab.cli_ok(&["container", "unlink", &web, "db"]);
    assert!(!probe::echo(&conn, DENY_TIMEOUT), "no stale permission");
    assert!(!probe::tcp_ok(&web, db_ip, 5432, DENY_TIMEOUT));
    assert!(!lab.cli_ok(&["container", "env", &web]).contains("DB_"));
    lab.cli_ok(&["container", "link", &web, &link]);
    assert!(probe::tcp_ok(&web, db_ip, 5432, ALLOW_TIMEOUT));
    // Removing the child removes the link with it.
    drop(servers);
    lab.cli_ok(&["container", "rm", &db]);
    assert!(!lab.cli_ok(&["container", "env", &web]).contains("DB_"));
    let hosts = lab.exec_ok("web", &["cat", "/etc/hosts"]);
    assert!(!hosts.contains("\tdb "), "{hosts}");
    // Exposed ports show in inspect as Docker shows them (links across restarts: daemon.rs).
    let cache_json = lab.inspect("container", &cache);
    assert!(
        cache_json["Config"]["ExposedPorts"]
            .get("5432/tcp")
            .is_some(),
        "{cache_json}"
    );
}

#[test]
fn networks_are_isolated_even_where_the_host_would_route() {
    let mut lab = Lab::new("is");
    lab.daemon("d", &[]);
    lab.cli_ok(&["network", "create", "a", "--subnet", "10.91.0.0/24"]);
    lab.cli_ok(&["network", "create", "b", "--subnet", "10.92.0.0/24"]);
    let a1 = lab.container("a1", &["--network", "a"]);
    let b1 = lab.container("b1", &["--network", "b"]);
    let both = lab.container("both", &["--network", "a"]);
    lab.cli_ok(&["network", "connect", "b", &both]);
    let (b1_ip, _) = endpoint(&lab, &b1, "b");
    let (a1_ip, _) = endpoint(&lab, &a1, "a");
    let (both_b, _) = endpoint(&lab, &both, "b");
    let host_b = lab.inspect("network", "b")["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    let mut servers = Servers::new();
    servers.tcp(&b1, 80);
    servers.tcp(&a1, 80);

    // The host routes between its networks (ip_forward is on), yet nothing crosses.
    lab.ping_fails("a1", &b1_ip.to_string());
    lab.ping_fails("b1", &a1_ip.to_string());
    assert!(!probe::tcp_ok(&a1, b1_ip, 80, DENY_TIMEOUT));
    assert!(!nc_ok(&lab, "b1", &a1_ip.to_string(), "80"));
    assert!(
        drops(&lab, &host_b, "isolation") > 0,
        "counted at b's host port"
    );
    // A container on both networks is reachable from both.
    lab.ping_ok("a1", &both_b.to_string());
    lab.ping_ok("both", &b1_ip.to_string());
    lab.ping_ok("both", &a1_ip.to_string());
    // The host and the world beyond it are not other networks.
    lab.ping_ok("sw", &b1_ip.to_string());
    lab.outside("10.0.0.0/8");
    lab.ping_ok("b1", "192.0.2.2");
    lab.ping_ok("a1", "192.0.2.2");
    // Disconnecting `both` from b ends its exception at once.
    lab.cli_ok(&["network", "disconnect", "b", &both]);
    lab.cli_ok(&["network", "connect", "b", &a1]);
    let (a1_b, _) = endpoint(&lab, &a1, "b");
    lab.ping_ok("b1", &a1_b.to_string());
}

#[test]
fn containers_send_only_from_their_own_mac_and_addresses() {
    let mut lab = Lab::new("sp");
    lab.daemon("d", &[]);
    let web = lab.container("web", &[]);
    let db = lab.container("db", &[]);
    let router = lab.container("router", &["--allow-spoofing"]);
    let (db_ip, _) = endpoint(&lab, &db, "bridge");
    let (_, web_port) = endpoint(&lab, &web, "bridge");
    let (_, router_port) = endpoint(&lab, &router, "bridge");
    let db_ip = db_ip.to_string();
    lab.ping_ok("web", &db_ip);

    // Another address on web's interface: dropped and counted.
    lab.exec_ok(
        "web",
        &["ip", "addr", "add", "172.17.0.99/16", "dev", "eth0"],
    );
    let out = lab.exec(
        "web",
        &["ping", "-c", "2", "-W", "1", "-I", "172.17.0.99", &db_ip],
    );
    assert!(!out.status.success(), "spoofed source address passed");
    assert!(drops(&lab, &web_port, "spoof-ip") > 0);
    lab.exec_ok(
        "web",
        &["ip", "addr", "del", "172.17.0.99/16", "dev", "eth0"],
    );
    lab.ping_ok("web", &db_ip);

    // Another MAC, even a neighbour's: dropped, and the neighbour keeps working.
    let own = lab.mac("web", "eth0");
    let db_mac = lab.mac("db", "eth0");
    for fake in ["02:00:00:00:99:99", db_mac.as_str()] {
        lab.exec_ok("web", &["ip", "neigh", "flush", "all"]);
        lab.exec_ok("web", &["ip", "link", "set", "eth0", "address", fake]);
        lab.ping_fails("web", &db_ip);
        lab.ping_ok("router", &db_ip);
    }
    assert!(drops(&lab, &web_port, "spoof-mac") > 0);
    lab.exec_ok("web", &["ip", "link", "set", "eth0", "address", &own]);
    lab.exec_ok("web", &["ip", "neigh", "flush", "all"]);
    lab.ping_ok("web", &db_ip);

    // --allow-spoofing: a router-like container may use other addresses.
    lab.exec_ok(
        "router",
        &["ip", "addr", "add", "172.17.0.98/16", "dev", "eth0"],
    );
    let out = lab.exec(
        "router",
        &["ping", "-c", "2", "-W", "1", "-I", "172.17.0.98", &db_ip],
    );
    assert!(out.status.success(), "allow-spoofing: {:?}", out);
    assert_eq!(drops(&lab, &router_port, "spoof-ip"), 0);
}

/// A tiny deterministic generator (xorshift64*), so a failing run can be replayed with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_link_and_container_changes_match_a_model_while_traffic_flows() {
    const CHANGES: usize = 250;
    const NAMES: usize = 5;
    const EXPOSED: u16 = 7000;
    const HIDDEN: u16 = 7002;
    let seed = std::env::var("SWITCHYARD_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let ctx = format!("SWITCHYARD_TEST_SEED={seed}");

    let mut lab = Lab::new("rn");
    lab.daemon("d", &[]);
    lab.cli_ok(&[
        "network",
        "create",
        "r",
        "--subnet",
        "10.93.0.0/24",
        "--opt",
        "icc=false",
    ]);
    let expose = format!("{EXPOSED}");
    // A steady flow between two containers the changes never touch.
    let s2 = lab.container("s2", &["--network", "r", "--expose", &expose]);
    let s1 = lab.container("s1", &["--network", "r", "--link", &format!("{s2}:s2")]);
    let mut steady = Servers::new();
    steady.tcp(&s2, EXPOSED);
    let (s2_ip, _) = endpoint(&lab, &s2, "r");
    let conn = probe::tcp_connect(&s1, s2_ip, EXPOSED, ALLOW_TIMEOUT).expect("steady flow");
    let stop = Arc::new(AtomicBool::new(false));
    let (echoes, broken) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flow = {
        let (stop, echoes, broken) = (stop.clone(), echoes.clone(), broken.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if probe::echo(&conn, ALLOW_TIMEOUT) {
                    echoes.fetch_add(1, Ordering::Relaxed);
                } else {
                    broken.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // The model: which containers exist (with their address) and which links (parent, child).
    let names: Vec<String> = (0..NAMES).map(|i| lab.adopt(&format!("c{i}"))).collect();
    let mut alive: Vec<Option<(Ipv4Addr, Servers)>> = (0..NAMES).map(|_| None).collect();
    let mut links: BTreeSet<(usize, usize)> = BTreeSet::new();
    let (mut allowed_probes, mut denied_probes) = (0, 0);
    let started = Instant::now();
    for step in 0..CHANGES {
        let live: Vec<usize> = (0..NAMES).filter(|&i| alive[i].is_some()).collect();
        let roll = rng.below(100);
        let what = if live.len() < 2 || (roll < 15 && live.len() < NAMES) {
            // Create a missing container.
            let i = (0..NAMES).find(|&i| alive[i].is_none()).unwrap();
            lab.cli_ok(&[
                "container",
                "create",
                &names[i],
                "--network",
                "r",
                "--expose",
                &expose,
            ]);
            let (ip, _) = endpoint(&lab, &names[i], "r");
            let mut servers = Servers::new();
            servers.tcp(&names[i], EXPOSED);
            servers.tcp(&names[i], HIDDEN);
            alive[i] = Some((ip, servers));
            format!("create c{i} ({ip})")
        } else if roll < 30 {
            let i = live[rng.below(live.len())];
            lab.cli_ok(&["container", "rm", &names[i]]);
            alive[i] = None;
            links.retain(|&(p, c)| p != i && c != i);
            format!("rm c{i}")
        } else if roll < 70 || links.is_empty() {
            let p = live[rng.below(live.len())];
            let c = live[rng.below(live.len())];
            if p == c || links.contains(&(p, c)) {
                "nothing".to_string()
            } else {
                lab.cli_ok(&[
                    "container",
                    "link",
                    &names[p],
                    &format!("{}:c{c}", names[c]),
                ]);
                links.insert((p, c));
                format!("link c{p} -> c{c}")
            }
        } else {
            let all: Vec<(usize, usize)> = links.iter().copied().collect();
            let (p, c) = all[rng.below(all.len())];
            lab.cli_ok(&["container", "unlink", &names[p], &format!("c{c}")]);
            links.remove(&(p, c));
            format!("unlink c{p} -> c{c}")
        };
        // Probe one ordered pair after every change, on the exposed or the hidden port.
        let live: Vec<usize> = (0..NAMES).filter(|&i| alive[i].is_some()).collect();
        if live.len() < 2 {
            continue;
        }
        // Half the probes go over an existing link (else nearly all would be denials).
        let (x, y) = if !links.is_empty() && rng.below(2) == 0 {
            let all: Vec<(usize, usize)> = links.iter().copied().collect();
            all[rng.below(all.len())]
        } else {
            let x = live[rng.below(live.len())];
            let y = loop {
                let y = live[rng.below(live.len())];
                if y != x {
                    break y;
                }
            };
            (x, y)
        };
        let port = if rng.below(4) == 0 { HIDDEN } else { EXPOSED };
        let expect = port == EXPOSED && links.contains(&(x, y));
        let ip = alive[y].as_ref().unwrap().0;
        let got = if expect {
            allowed_probes += 1;
            probe::tcp_ok(&names[x], ip, port, ALLOW_TIMEOUT)
        } else {
            denied_probes += 1;
            // Shorter than elsewhere: a local connect answers in well under a millisecond.
            probe::tcp_ok(&names[x], ip, port, Duration::from_millis(100))
        };
        assert_eq!(
            got, expect,
            "{ctx}: step {step} ({what}): c{x} -> c{y}:{port}, links {links:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    flow.join().unwrap();
    let (ok, bad) = (
        echoes.load(Ordering::Relaxed),
        broken.load(Ordering::Relaxed),
    );
    eprintln!(
        "{ctx}: {CHANGES} changes in {:?}, probes allowed={allowed_probes} denied={denied_probes}, steady flow echoes={ok} broken={bad}",
        started.elapsed()
    );
    assert!(
        allowed_probes > 10 && denied_probes > 10,
        "{ctx}: probes cover both outcomes"
    );
    assert_eq!(bad, 0, "{ctx}: the steady flow was interrupted");
    assert!(
        ok > 100,
        "{ctx}: the steady flow carried traffic throughout"
    );
}
