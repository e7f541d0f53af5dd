//! L2 uplinks with VLANs across hosts: two "hosts" (namespaces, each running its own daemon) are
//! joined by a veth wire; networks extended onto it with --parent/--vlan become one network.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn one_network_across_two_hosts_on_a_vlan_and_another_vlan_stays_apart() {
    let mut lab = Lab::new("vl");
    // The wire: host1 (the lab's switch namespace) <-> host2 ("h2"), eth0 on host2's side.
    lab.host("h2", "192.0.2.99/32");
    let wire1 = lab.port("h2");
    lab.exec_ok("h2", &["ip", "addr", "flush", "dev", "eth0"]);
    let d1 = lab.daemon("d1", &[]);
    let host2 = lab.other_daemon("h2", &[]);
    let cli2 = |args: &[&str]| host2.cli_ok(args);

    // blue: VLAN 10 on both hosts, one gateway each, ip-ranges that never overlap.
    lab.cli_ok(&[
        "network",
        "create",
        "blue",
        "--subnet",
        "10.88.0.0/24",
        "--gateway",
        "10.88.0.1",
        "--aux-address",
        "gw2=10.88.0.2",
        "--ip-range",
        "10.88.0.0/25",
        "--parent",
        &wire1,
        "--vlan",
        "10",
    ]);
    cli2(&[
        "network",
        "create",
        "blue",
        "--subnet",
        "10.88.0.0/24",
        "--gateway",
        "10.88.0.2",
        "--aux-address",
        "gw1=10.88.0.1",
        "--ip-range",
        "10.88.0.128/25",
        "--parent",
        "eth0",
        "--vlan",
        "10",
    ]);
    // red: VLAN 20 over the same wire, only on host2.
    cli2(&[
        "network",
        "create",
        "red",
        "--subnet",
        "10.89.0.0/24",
        "--parent",
        "eth0",
        "--vlan",
        "20",
    ]);
    let c1 = lab.container("c1", &["--network", "blue"]);
    let c2 = lab.adopt("c2");
    cli2(&["container", "create", &c2, "--network", "blue"]);
    let r2 = lab.adopt("r2");
    cli2(&[
        "container",
        "create",
        &r2,
        "--network",
        "red",
        "--allow-spoofing",
    ]);
    // r2 claims an address of blue's subnet: only VLANs keep it apart from blue.
    lab.exec_ok(
        "r2",
        &["ip", "addr", "add", "10.88.0.200/24", "dev", "eth0"],
    );
    let c2_ip = "10.88.0.128";

    // The wire carries 802.1Q tags.
    lab.spawn(
        "h2",
        "wire",
        &["tcpdump", "-l", "-n", "-e", "-i", "eth0", "icmp"],
    );
    lab.wait_log("wire", "listening on", Duration::from_secs(5));
    lab.ping_ok("c1", c2_ip);
    std::thread::sleep(Duration::from_millis(300));
    let wire = lab.log("wire", "out");
    assert!(
        wire.contains("vlan 10") && wire.contains(c2_ip),
        "tags on the wire: {wire}"
    );
    // MACs of the other host are learned behind the parent port.
    let c2_mac = lab.mac("c2", "eth0");
    let fdb = lab.cli_ok(&["fdb", "blue"]);
    let line = fdb
        .lines()
        .find(|l| l.contains(&c2_mac))
        .unwrap_or_else(|| panic!("{fdb}"));
    assert!(
        line.contains(&format!("parent:{wire1}.10")) && line.contains("learned"),
        "{line}"
    );
    // iperf3 with default offloads across the tagged wire.
    let bytes = lab.iperf("c2", "c1", c2_ip, 2);
    assert!(bytes > 1e6, "iperf3 across hosts: {bytes}");
    // A broadcast crosses the wire exactly once (no loop, no copy per sibling VLAN port).
    let c1_mac = lab.mac("c1", "eth0");
    let filter = format!("arp and ether src {c1_mac}");
    lab.spawn(
        "c1",
        "sent",
        &["tcpdump", "-l", "-n", "-i", "eth0", &filter],
    );
    lab.spawn(
        "h2",
        "crossed",
        &["tcpdump", "-l", "-n", "-e", "-i", "eth0", &filter],
    );
    lab.wait_log("sent", "listening on", Duration::from_secs(5));
    lab.wait_log("crossed", "listening on", Duration::from_secs(5));
    lab.exec("c1", &["ping", "-c", "2", "-W", "1", "10.88.0.99"]);
    std::thread::sleep(Duration::from_millis(500));
    let count = |label: &str| {
        lab.log(label, "out")
            .lines()
            .filter(|l| l.contains("Request who-has 10.88.0.99"))
            .count()
    };
    assert!(count("sent") >= 1, "c1 asked: {}", lab.log("sent", "out"));
    assert_eq!(
        count("crossed"),
        count("sent"),
        "{}",
        lab.log("crossed", "out")
    );
    // The other VLAN cannot reach them, even with an address in their subnet.
    lab.ping_fails("c1", "10.88.0.200");
    lab.ping_fails("r2", c2_ip);
    lab.ping_ok("c1", c2_ip);

    // Parent ports come back after kill -9 like everything else.
    lab.signal(d1, libc::SIGKILL);
    while lab.running(d1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    lab.ping_fails("c1", c2_ip);
    lab.daemon("d1b", &[]);
    lab.ping_ok("c1", c2_ip);

    // Host2 hands out c1's address again (a static --ip outside its range): its gratuitous ARP
    // reaches host1, which drops the claim and reports the conflict.
    let c1_ip = "10.88.0.3";
    let dup = lab.adopt("dup");
    cli2(&[
        "container",
        "create",
        &dup,
        "--network",
        "blue",
        "--ip",
        c1_ip,
    ]);
    let start = std::time::Instant::now();
    let stats = loop {
        let st = lab.cli_ok(&["stats"]);
        if st.contains("Address conflict") || start.elapsed() > Duration::from_secs(5) {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        stats.contains(&format!(
            "Address conflict: {c1_ip} of {c1} is claimed by {}",
            lab.mac("dup", "eth0")
        )),
        "{stats}"
    );
    assert!(stats.contains("ip-conflict=1"), "{stats}");
    lab.wait_log("d1b", "address conflict", Duration::from_secs(5));
    // The local container keeps its address: host1's own hosts still reach c1.
    lab.ping_ok("sw", c1_ip);
}
