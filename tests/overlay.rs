//! Overlay networks: VXLAN across hosts.
//!
//! Interoperation first: a Linux kernel vxlan device, set up by hand in another namespace (static
//! FDB entries, the same VNI and port), and a container on a switchyard overlay network whose
//! remote host is given statically (`--opt peers=`) exchange ping and TCP, with the overlay's MTU
//! visible in the container.

mod common;

use std::time::Duration;

use common::*;

/// Host "kh" with a kernel VTEP: eth0 on the underlay (192.168.77.2/24; the daemon's namespace
/// is 192.168.77.1), `vx0` (VNI 42, port 4789, no learning) holding 10.99.0.100/24, every unknown
/// or broadcast frame sent to the daemon's host (the all-zeros FDB entry).
fn kernel_vtep(lab: &mut Lab) {
    lab.host("kh", "192.168.77.2/24");
    let wire = lab.port("kh");
    lab.exec_ok(
        "sw",
        &["ip", "addr", "add", "192.168.77.1/24", "dev", &wire],
    );
    lab.exec_ok("sw", &["ip", "link", "set", &wire, "up"]);
    lab.exec_ok(
        "kh",
        &[
            "ip",
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            "42",
            "dstport",
            "4789",
            "local",
            "192.168.77.2",
            "dev",
            "eth0",
            "nolearning",
        ],
    );
    lab.exec_ok("kh", &["ip", "link", "set", "vx0", "mtu", "1450", "up"]);
    // The lab's underlay is a veth pair, which hands a checksum-partial packet to the other
    // namespace as it is: the kernel VTEP's inner TCP checksums would arrive uncomputed. A real
    // wire always carries complete checksums (the NIC computes them), and a UDP socket cannot
    // see the partial state, so the kernel side finishes them before encapsulating, as it would
    // for a NIC without checksum offload. (switchyard always sends complete frames.)
    lab.exec_ok("kh", &["ethtool", "-K", "vx0", "tx", "off"]);
    lab.exec_ok("kh", &["ip", "addr", "add", "10.99.0.100/24", "dev", "vx0"]);
    static_fdb(lab, "append", "00:00:00:00:00:00");
}

/// `bridge fdb OP MAC dev vx0 dst <the daemon's host> self permanent` on the kernel VTEP.
fn static_fdb(lab: &Lab, op: &str, mac: &str) {
    let args = [
        "bridge",
        "fdb",
        op,
        mac,
        "dev",
        "vx0",
        "dst",
        "192.168.77.1",
    ];
    let mut args = args.to_vec();
    args.extend(["self", "permanent"]);
    lab.exec_ok("kh", &args);
}

#[test]
fn a_linux_vxlan_device_and_a_switchyard_overlay_exchange_ping_and_tcp() {
    let mut lab = Lab::new("ovk");
    kernel_vtep(&mut lab);
    lab.daemon("d", &["--advertise-addr", "192.168.77.1"]);
    lab.cli_ok(&[
        "network",
        "create",
        "ov",
        "--driver",
        "overlay",
        "--subnet",
        "10.99.0.0/24",
        "--opt",
        "vni=42",
        "--opt",
        "peers=192.168.77.2",
    ]);
    let ov = lab.inspect("network", "ov");
    assert_eq!(ov["Driver"], "overlay");
    assert_eq!(ov["Options"]["vni"], "42");
    assert_eq!(ov["Options"]["vxlan_port"], "4789");
    let c1 = lab.container("c1", &["--network", "ov"]);
    let c1_ip = lab.inspect("container", &c1)["NetworkSettings"]["Networks"]["ov"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // The overlay's MTU (a 1500-byte underlay minus 50) inside the container.
    let link = lab.exec_ok("c1", &["ip", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1450"), "{link}");
    // The kernel side's static FDB entry for the container (learning is off there).
    let c1_mac = lab.mac("c1", "eth0");
    static_fdb(&lab, "add", &c1_mac);

    // What crosses the underlay is VXLAN on port 4789 with VNI 42.
    lab.spawn(
        "kh",
        "wire",
        &["tcpdump", "-l", "-n", "-i", "eth0", "udp", "port", "4789"],
    );
    lab.wait_log("wire", "listening on", Duration::from_secs(5));
    lab.ping_ok("c1", "10.99.0.100");
    lab.exec_ok("kh", &["ping", "-c", "2", "-W", "1", &c1_ip]);
    std::thread::sleep(Duration::from_millis(300));
    let wire = lab.log("wire", "out");
    assert!(wire.contains("VXLAN") && wire.contains("vni 42"), "{wire}");
    // Flows leave from hashed source ports, not from 4789 itself.
    assert!(
        wire.lines()
            .any(|l| l.contains("192.168.77.1.") && !l.contains("192.168.77.1.4789 >")),
        "{wire}"
    );

    // The kernel's MAC is learned behind the VXLAN port toward its host.
    let fdb = lab.cli_ok(&["fdb", "ov"]);
    let kh_mac = lab.mac("kh", "vx0");
    let line = fdb
        .lines()
        .find(|l| l.contains(&kh_mac))
        .unwrap_or_else(|| panic!("{fdb}"));
    assert!(line.contains("vxlan:192.168.77.2"), "{line}");

    // TCP both ways, with the kernel's default offloads on the container's veth (the switch
    // segments before encapsulating).
    let bytes = lab.iperf("kh", "c1", "10.99.0.100", 2);
    assert!(bytes > 1e6, "iperf3 c1 -> kernel: {bytes}");
    let bytes = lab.iperf("c1", "kh", &c1_ip, 2);
    assert!(bytes > 1e6, "iperf3 kernel -> c1: {bytes}");
    // A full-size ping (1450-byte packets) crosses without fragmenting on the underlay.
    lab.exec_ok(
        "c1",
        &[
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1422",
            "10.99.0.100",
        ],
    );
}

#[test]
fn overlay_networks_are_refused_in_one_line_without_an_underlay() {
    let mut lab = Lab::new("ovr");
    lab.daemon("d", &[]);
    let out = lab.cli(&["network", "create", "ov", "--driver", "overlay"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--advertise-addr"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = lab.cli(&["network", "create", "br", "--opt", "vni=5"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --driver overlay"));
    let out = lab.cli(&["network", "create", "x", "--driver", "vxlan"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown network driver"));
    let ls = lab.cli_ok(&["network", "ls"]);
    assert!(!ls.contains(" ov ") && !ls.contains(" br "), "{ls}");
}
