//! Overlay networks: VXLAN across hosts.
//!
//! Interoperation first: a Linux kernel vxlan device, set up by hand in another namespace (static
//! FDB entries, the same VNI and port) with its default offloads, and a container on a switchyard
//! overlay network whose remote host is given statically (`--opt peers=`) exchange ping and TCP,
//! with the overlay's MTU visible in the container.

mod common;

use std::time::Duration;

use common::*;

/// Host "kh" with a kernel VTEP: eth0 on the underlay (192.168.77.2/24; the daemon's namespace
/// is 192.168.77.1), `vx0` (VNI 42, port 4789, no learning) holding 10.99.0.100/24, every unknown
/// or broadcast frame sent to the daemon's host (the all-zeros FDB entry).
fn kernel_vtep(lab: &mut Lab) {
    underlay(lab, "kh", "192.168.77.2/24", "192.168.77.1/24");
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
    // Default offloads (tx checksum and TSO on): over the lab's veth underlay the kernel hands
    // switchyard's UDP socket its inner frames as its stack left them, TCP and UDP checksums
    // holding only the pseudo-header sum, and a TCP super-frame whole in one datagram of up to
    // 64 KiB. switchyard recovers both (`offload::recover_offloads`).
    lab.exec_ok("kh", &["ip", "link", "set", "vx0", "mtu", "1450", "up"]);
    lab.exec_ok("kh", &["ip", "addr", "add", "10.99.0.100/24", "dev", "vx0"]);
    static_fdb(lab, "append", "00:00:00:00:00:00");
}

/// Host `host` on a veth underlay to the switch namespace: `host_addr` on its eth0, `sw_addr`
/// on the switch side, where the daemon runs.
fn underlay(lab: &mut Lab, host: &str, host_addr: &str, sw_addr: &str) {
    lab.host(host, host_addr);
    let wire = lab.port(host);
    lab.exec_ok("sw", &["ip", "addr", "add", sw_addr, "dev", &wire]);
    lab.exec_ok("sw", &["ip", "link", "set", &wire, "up"]);
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

    // TCP both ways, with default offloads on both sides: the switch segments before
    // encapsulating, and takes the kernel VTEP's checksum-partial frames and whole super-frames
    // (one datagram each: far fewer than the 1398-byte segments the bytes make) on to the
    // container within its MTU. 32 MiB each way arrive intact (SHA-256 end to end), each
    // within a deadline (`transfer`).
    let bytes = lab.iperf("kh", "c1", "10.99.0.100", 2);
    assert!(bytes > 1e6, "iperf3 c1 -> kernel: {bytes}");
    let bytes = lab.iperf("c1", "kh", &c1_ip, 2);
    assert!(bytes > 1e6, "iperf3 kernel -> c1: {bytes}");
    let mib = 32;
    let rx = |lab: &Lab| vxlan_rx_packets(&lab.cli_ok(&["stats", "--json"]), "192.168.77.2");
    transfer_in_super_frames(&mut lab, ("c1", "kh", &c1_ip), mib, rx);
    let (sent, received) = transfer(&mut lab, "kh", "c1", "10.99.0.100", mib);
    assert_eq!(sent, received, "c1 -> kernel");
    let stats = lab.cli_ok(&["stats"]);
    assert!(!stats.contains("offload-error"), "{stats}");
    oversize_datagrams_from_the_kernel_host_are_counted(&mut lab, &c1_mac, &kh_mac, &c1_ip);
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

/// Datagrams from the kernel VTEP's host, sent by hand, whose frames are above the overlay MTU
/// and cannot be cut into frames within it (UDP, TCP with a wrong checksum, TCP whose IPv4
/// length is not the frame's): each is counted by reason in `stats` and none reaches c1.
fn oversize_datagrams_from_the_kernel_host_are_counted(
    lab: &mut Lab,
    c1_mac: &str,
    kh_mac: &str,
    c1_ip: &str,
) {
    let mac = |m: &str| -> [u8; 6] {
        let b: Vec<u8> = m
            .split(':')
            .map(|x| u8::from_str_radix(x, 16).unwrap())
            .collect();
        b.try_into().unwrap()
    };
    let dst: std::net::Ipv4Addr = c1_ip.parse().unwrap();
    let ip = || {
        etherparse::PacketBuilder::ethernet2(mac(kh_mac), mac(c1_mac)).ipv4(
            [10, 99, 0, 100],
            dst.octets(),
            64,
        )
    };
    let payload = vec![0x5a; 3000];
    let mut udp = Vec::new();
    ip().udp(40000, 7777).write(&mut udp, &payload).unwrap();
    let mut tcp = Vec::new();
    ip().tcp(40000, 7777, 1, 64000)
        .ack(1)
        .write(&mut tcp, &payload)
        .unwrap();
    let mut bad_checksum = tcp.clone();
    bad_checksum[14 + 20 + 16] ^= 0xff;
    let mut short_len = tcp.clone();
    short_len[14 + 3] -= 1; // IPv4 total length, low byte
    let datagram = |frame: &[u8]| -> String {
        let mut d = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        d.extend_from_slice(frame);
        d.iter().map(|b| format!("{b:02x}")).collect()
    };
    // Above the underlay's MTU too: sent fragmented (no DF), reassembled by the daemon's host.
    const SEND: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER: IP_PMTUDISC_DONT
for d in sys.argv[1:]:
    s.sendto(bytes.fromhex(d), ("192.168.77.1", 4789))
"#;
    let drops = |lab: &Lab| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&lab.cli_ok(&["stats", "--json"])).unwrap()
            ["vxlan"]
            .clone()
    };
    let before = drops(lab);
    let dump = lab.spawn(
        "c1",
        "c1-dump",
        &["tcpdump", "-i", "eth0", "-nn", "-l", "port", "7777"],
    );
    lab.wait_log("c1-dump", "listening on", Duration::from_secs(10));
    let args = [
        datagram(&udp),
        datagram(&bad_checksum),
        datagram(&short_len),
    ];
    let mut cmd = vec!["/usr/bin/python3", "-c", SEND];
    cmd.extend(args.iter().map(String::as_str));
    lab.exec_ok("kh", &cmd);
    deadline("every oversize reason counted", || {
        let after = drops(lab);
        let rise = |r: &str| after[r].as_u64().unwrap() - before[r].as_u64().unwrap();
        rise("oversize-not-tcp") == 1
            && rise("oversize-bad-checksum") == 1
            && rise("oversize-malformed") == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    lab.stop(dump);
    let seen = lab.log("c1-dump", "out");
    assert!(
        seen.trim().is_empty(),
        "an oversize frame reached c1: {seen}"
    );
    let text = lab.cli_ok(&["stats"]);
    assert!(text.contains("oversize-not-tcp=1"), "{text}");
}

/// Sends `mib` MiB of seeded pseudo-random bytes from `client` to `server` (listening on `addr`)
/// over one TCP connection; returns what each side computed: (bytes, SHA-256) sent and received.
/// The client gives up after 60 s (a stalled connection fails the test, it does not hang it).
fn transfer(lab: &mut Lab, server: &str, client: &str, addr: &str, mib: u32) -> (String, String) {
    let label = format!("sink-{server}");
    lab.spawn(
        server,
        &label,
        &[
            "/usr/bin/python3",
            "-c",
            "import hashlib, socket, sys\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind((sys.argv[1], 7000)); s.listen(1); print('listening', file=sys.stderr, flush=True)\n\
             c, _ = s.accept(); h = hashlib.sha256(); n = 0\n\
             while True:\n\
             \x20   b = c.recv(1 << 20)\n\
             \x20   if not b: break\n\
             \x20   h.update(b); n += len(b)\n\
             print(n, h.hexdigest(), flush=True)",
            addr,
        ],
    );
    lab.wait_log(&label, "listening", Duration::from_secs(10));
    let sent = lab.exec_ok(
        client,
        &[
            "timeout",
            "60",
            "/usr/bin/python3",
            "-c",
            "import hashlib, random, socket, sys\n\
             r = random.Random(19); h = hashlib.sha256(); n = 0\n\
             c = socket.create_connection((sys.argv[1], 7000), timeout=30)\n\
             for _ in range(int(sys.argv[2])):\n\
             \x20   b = r.randbytes(1 << 20); c.sendall(b); h.update(b); n += len(b)\n\
             c.close(); print(n, h.hexdigest())",
            addr,
            &mib.to_string(),
        ],
    );
    let mut received = String::new();
    poll("the receiver's digest", Duration::from_millis(50), || {
        received = lab.log(&label, "out");
        received.ends_with('\n')
    });
    (sent.trim().to_string(), received.trim().to_string())
}

/// `transfer` of `mib` MiB from `client` to `server` (at `addr`), which must arrive intact and in
/// super-frames: the receiving VXLAN port (its `rx_packets` read by `rx`) counts far fewer frames
/// than the 1398-byte segments the bytes make.
fn transfer_in_super_frames(
    lab: &mut Lab,
    (server, client, addr): (&str, &str, &str),
    mib: u32,
    rx: impl Fn(&Lab) -> u64,
) {
    let before = rx(lab);
    let (sent, received) = transfer(lab, server, client, addr, mib);
    assert_eq!(sent, received, "{client} -> {server}");
    assert!(sent.starts_with(&format!("{} ", mib << 20)), "{sent}");
    let frames = rx(lab) - before;
    let segments = u64::from(mib << 20) / 1398;
    assert!(
        frames < segments / 4,
        "{frames} frames for {segments} segments: super-frames did not cross whole"
    );
}

/// `rx_packets` of the VXLAN port toward `remote` in a daemon's `stats --json`.
fn vxlan_rx_packets(stats: &str, remote: &str) -> u64 {
    let stats: serde_json::Value = serde_json::from_str(stats).unwrap();
    let name = format!("vxlan:{remote}");
    stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no port {name}: {stats}"))["rx_packets"]
        .as_u64()
        .unwrap()
}

/// Two switchyard hosts with static peers: 64 MiB each way between containers arrive intact
/// (SHA-256 end to end), with the containers' default offloads, so the senders' TCP super-frames
/// leave in UDP GSO batches and are merged back (UDP GRO) on the other host: the receiving VXLAN
/// port counts far fewer frames than the 1398-byte segments the bytes make.
#[test]
fn large_tcp_transfers_cross_hosts_intact_as_super_frames() {
    let mut lab = Lab::new("ovg");
    underlay(&mut lab, "h2", "192.168.79.2/24", "192.168.79.1/24");
    lab.daemon("d1", &["--advertise-addr", "192.168.79.1"]);
    let h2 = lab.other_daemon("h2", &["--advertise-addr", "192.168.79.2"]);
    let network = |peer: &str| {
        [
            "network",
            "create",
            "ov",
            "--driver",
            "overlay",
            "--subnet",
            "10.98.0.0/24",
            "--opt",
            "vni=42",
            "--opt",
            &format!("peers={peer}"),
        ]
        .map(String::from)
    };
    let args = network("192.168.79.2");
    lab.cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let args = network("192.168.79.1");
    h2.cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    lab.container("c1", &["--network", "ov", "--ip", "10.98.0.11"]);
    h2.container(&mut lab, "c2", &["--network", "ov", "--ip", "10.98.0.12"]);
    lab.ping_ok("c1", "10.98.0.12");

    let mib = 64;
    let rx = |_: &Lab| vxlan_rx_packets(&h2.cli_ok(&["stats", "--json"]), "192.168.79.1");
    transfer_in_super_frames(&mut lab, ("c2", "c1", "10.98.0.12"), mib, rx);
    let (sent, received) = transfer(&mut lab, "c1", "c2", "10.98.0.11", mib);
    assert_eq!(sent, received, "host2 -> host1");
    let stats = lab.cli_ok(&["stats"]);
    assert!(!stats.contains("offload-error"), "{stats}");
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

/// A cluster lab: host1 is the lab's switch namespace, h2 and h3 are hosts with daemons of their
/// own, and etcd runs in "et"; all four on an underlay bridge (192.168.78.0/24) in host1.
struct Cluster {
    lab: Lab,
    etcd: usize,
    daemons: [Option<usize>; 3],
}

/// Waits until `f` holds, 25 s at most.
fn deadline(what: &str, f: impl FnMut() -> bool) {
    poll(what, Duration::from_millis(200), f);
}

/// Checks `f` every `every` until it holds (25 s at most); how long that took.
fn poll(what: &str, every: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "timed out: {what}"
        );
        std::thread::sleep(every);
    }
    start.elapsed()
}

const ETCD_URL: &str = "etcd://192.168.78.9:2379";

fn host_ip(i: usize) -> String {
    format!("192.168.78.{}", i + 1)
}

impl Cluster {
    fn new(short: &str) -> Cluster {
        let mut lab = Lab::new(short);
        for cmd in [
            "ip link add ulbr type bridge",
            "ip link set ulbr up",
            "ip addr add 192.168.78.1/24 dev ulbr",
        ] {
            let args: Vec<&str> = cmd.split(' ').collect();
            lab.exec_ok("sw", &args);
        }
        for (h, ip) in [("h2", "2"), ("h3", "3"), ("et", "9")] {
            lab.host(h, &format!("192.168.78.{ip}/24"));
            let port = lab.port(h);
            lab.exec_ok("sw", &["ip", "link", "set", &port, "master", "ulbr", "up"]);
        }
        let mut c = Cluster {
            etcd: 0,
            lab,
            daemons: [None; 3],
        };
        c.start_etcd();
        for i in 0..3 {
            c.start_daemon(i);
        }
        c
    }

    fn start_etcd(&mut self) {
        let dir = self.lab.dir.join("etcd").display().to_string();
        self.etcd = self.lab.spawn(
            "et",
            "etcd",
            &[
                "etcd",
                "--data-dir",
                &dir,
                "--listen-client-urls",
                "http://192.168.78.9:2379",
                "--advertise-client-urls",
                "http://192.168.78.9:2379",
                "--listen-peer-urls",
                "http://127.0.0.1:2380",
            ],
        );
        self.lab.wait_log(
            "etcd",
            "ready to serve client requests",
            Duration::from_secs(20),
        );
    }

    fn socket(&self, i: usize) -> String {
        match i {
            0 => self.lab.socket().display().to_string(),
            _ => self
                .lab
                .dir
                .join(format!("h{}.sock", i + 1))
                .display()
                .to_string(),
        }
    }

    fn start_daemon(&mut self, i: usize) {
        let ip = host_ip(i);
        let extra = ["--advertise-addr", &ip, "--cluster", ETCD_URL];
        if i == 0 {
            self.daemons[0] = Some(self.lab.daemon("d1", &extra));
            return;
        }
        let host = format!("h{}", i + 1);
        let state = self
            .lab
            .dir
            .join(format!("{host}-state"))
            .display()
            .to_string();
        let socket = self.socket(i);
        let mut args = vec![
            switchyard_bin(),
            "daemon",
            "--state-dir",
            &state,
            "--socket",
            &socket,
        ];
        args.extend(extra);
        let label = format!("d{}-{}", i + 1, self.lab.children_len());
        let d = self.lab.spawn(&host, &label, &args);
        self.lab
            .wait_log(&label, "daemon ready", Duration::from_secs(20));
        self.daemons[i] = Some(d);
    }

    fn kill_daemon(&mut self, i: usize) {
        let d = self.daemons[i].take().unwrap();
        self.lab.signal(d, libc::SIGKILL);
        while self.lab.running(d) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn cli(&self, i: usize, args: &[&str]) -> std::process::Output {
        std::process::Command::new(switchyard_bin())
            .args(args)
            .env("SWITCHYARD_SOCKET", self.socket(i))
            .output()
            .unwrap()
    }

    fn cli_ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.cli(i, args);
        assert!(
            out.status.success(),
            "host{} {args:?}: {}",
            i + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Overlay network `name` on `subnet` with `extra` arguments, created on host1 and seen by
    /// every host.
    fn overlay_net(&self, name: &str, subnet: &str, extra: &[&str]) {
        let net = [
            "network", "create", name, "--driver", "overlay", "--subnet", subnet,
        ];
        self.cli_ok(0, &[&net[..], extra].concat());
        let listed = format!(" {name} ");
        for i in 1..3 {
            self.converge(i, &["network", "ls"], "on every host", |ls| {
                ls.contains(&listed)
            });
        }
    }

    /// Overlay network `ov` on `subnet`, as `overlay_net`.
    fn overlay(&self, subnet: &str) {
        self.overlay_net("ov", subnet, &[]);
    }

    /// Container `name` (a lab namespace) on host `i`'s `ov` with address `ip` and `extra`
    /// arguments; returns its name.
    fn on_ov(&mut self, i: usize, name: &str, ip: &str, extra: &[&str]) -> String {
        self.on(i, "ov", name, ip, extra)
    }

    /// Container `name` on host `i`'s `network`, as `on_ov`.
    fn on(&mut self, i: usize, network: &str, name: &str, ip: &str, extra: &[&str]) -> String {
        let ns = self.lab.adopt(name);
        let args = ["container", "create", &ns, "--network", network, "--ip", ip];
        self.cli_ok(i, &[&args[..], extra].concat());
        ns
    }

    /// Waits (25 s at most: a lease of 10 s, read once a second) until `f` holds on host `i`'s
    /// `args` output.
    fn converge(&self, i: usize, args: &[&str], what: &str, f: impl Fn(&str) -> bool) {
        deadline(what, || f(&self.cli_ok(i, args)));
    }
}

#[test]
fn three_hosts_share_overlay_networks_through_etcd_and_survive_its_faults() {
    let mut c = Cluster::new("ovc");
    c.cli_ok(
        0,
        &[
            "network",
            "create",
            "ov",
            "--driver",
            "overlay",
            "--subnet",
            "10.98.0.0/24",
        ],
    );
    for i in 1..3 {
        c.converge(i, &["network", "ls"], "ov on every host", |ls| {
            ls.contains(" ov ")
        });
    }
    let vni = |i: usize| {
        let v: serde_json::Value =
            serde_json::from_str(&c.cli_ok(i, &["network", "inspect", "ov"])).unwrap();
        (v[0]["Id"].clone(), v[0]["Options"]["vni"].clone())
    };
    assert_eq!(vni(0), vni(1), "one ID and VNI everywhere");
    assert_eq!(vni(0), vni(2));
    // Every host has a VXLAN port toward each other host.
    for i in 0..3 {
        c.converge(i, &["stats"], "ports toward the other hosts", |st| {
            (0..3)
                .filter(|&j| j != i)
                .all(|j| st.contains(&format!("vxlan:{}", host_ip(j))))
        });
    }
    // One container per host (addresses given: allocation is per host, not yet in etcd).
    let mut names = Vec::new();
    for i in 0..3 {
        let ns = c.lab.adopt(&format!("c{}", i + 1));
        let ip = format!("10.98.0.{}", 11 + i);
        c.cli_ok(
            i,
            &["container", "create", &ns, "--network", "ov", "--ip", &ip],
        );
        names.push(ns);
    }
    let link = c.lab.exec_ok("c2", &["ip", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1450"), "{link}");
    c.lab.ping_ok("c1", "10.98.0.12");
    c.lab.ping_ok("c1", "10.98.0.13");
    c.lab.ping_ok("c2", "10.98.0.13");
    let bytes = c.lab.iperf("c3", "c1", "10.98.0.13", 2);
    assert!(bytes > 1e6, "iperf3 host1 -> host3: {bytes}");

    // etcd down: traffic goes on, a change that needs the cluster fails in one line and leaves
    // nothing behind.
    c.lab.signal(c.etcd, libc::SIGKILL);
    std::thread::sleep(Duration::from_secs(2));
    c.lab.ping_ok("c1", "10.98.0.12");
    let out = c.cli(0, &["network", "create", "ov2", "--driver", "overlay"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "created without etcd");
    assert!(
        err.contains("unreachable") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(!c.cli_ok(0, &["network", "ls"]).contains("ov2"));
    // etcd back: changes work again and every host converges.
    c.start_etcd();
    c.converge(0, &["stats"], "host1 still sees both hosts", |st| {
        st.contains("vxlan:192.168.78.2") && st.contains("vxlan:192.168.78.3")
    });
    let create = || c.cli(0, &["network", "create", "ov2", "--driver", "overlay"]);
    wait_for("ov2 created once etcd answers", || {
        create().status.success().then_some(())
    });
    c.converge(2, &["network", "ls"], "ov2 on host3", |ls| {
        ls.contains(" ov2 ")
    });

    // Host3's daemon killed: when its lease ends it is gone for everyone; restarted, it is back
    // and its container reachable again.
    c.kill_daemon(2);
    c.converge(0, &["stats"], "host3 gone from host1", |st| {
        !st.contains("vxlan:192.168.78.3")
    });
    c.converge(1, &["stats"], "host3 gone from host2", |st| {
        !st.contains("vxlan:192.168.78.3")
    });
    c.lab.ping_ok("c1", "10.98.0.12");
    c.start_daemon(2);
    c.converge(0, &["stats"], "host3 back on host1", |st| {
        st.contains("vxlan:192.168.78.3")
    });
    c.lab.ping_ok("c1", "10.98.0.13");
    c.lab.ping_ok("c3", "10.98.0.12");

    // Two hosts creating containers at the same moment, addresses left to the cluster: every
    // address is claimed once in etcd, so none is handed out twice.
    let names: Vec<(usize, String)> = (0..6)
        .map(|k| (k % 2, c.lab.adopt(&format!("p{k}"))))
        .collect();
    let c = &c;
    std::thread::scope(|scope| {
        for (host, name) in &names {
            scope.spawn(move || {
                c.cli_ok(*host, &["container", "create", name, "--network", "ov"]);
            });
        }
    });
    let mut addresses: Vec<String> = names
        .iter()
        .map(|(host, name)| {
            let v: serde_json::Value =
                serde_json::from_str(&c.cli_ok(*host, &["container", "inspect", name])).unwrap();
            v[0]["NetworkSettings"]["Networks"]["ov"]["IPAddress"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), names.len(), "{addresses:?}");
    for taken in ["10.98.0.11", "10.98.0.12", "10.98.0.13"] {
        assert!(
            !addresses.iter().any(|a| a == taken),
            "{taken} handed out again"
        );
    }
    let (host, name) = &names[0];
    c.cli_ok(*host, &["container", "rm", name]);
    // An address asked for that another host holds is refused in one line.
    let out = c.cli(
        1,
        &[
            "container",
            "create",
            "dupip",
            "--network",
            "ov",
            "--ip",
            "10.98.0.11",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already taken in the cluster"), "{err}");
}

/// Every key under `prefix` in the lab's etcd with its value, read through etcd's JSON gateway
/// from the underlay.
fn etcd_range(c: &Cluster, prefix: &str) -> Vec<(String, String)> {
    const READ: &str = r#"
import base64, json, sys, urllib.request
p = sys.argv[1].encode()
e = p[:-1] + bytes([p[-1] + 1])
b64 = lambda x: base64.b64encode(x).decode()
body = json.dumps({"key": b64(p), "range_end": b64(e)}).encode()
r = json.load(urllib.request.urlopen("http://192.168.78.9:2379/v3/kv/range", body, timeout=5))
for kv in r.get("kvs", []):
    print(base64.b64decode(kv["key"]).decode() + " " + base64.b64decode(kv.get("value", "")).decode())
"#;
    c.lab
        .exec_ok("sw", &["/usr/bin/python3", "-c", READ, prefix])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The endpoint published for `ip` on network `ov`, if there is one.
fn endpoint(c: &Cluster, ip: &str) -> Option<serde_json::Value> {
    let k = format!("/switchyard/v1/endpoints/ov/{ip}");
    etcd_range(c, &k)
        .into_iter()
        .find(|(key, _)| *key == k)
        .map(|(_, v)| serde_json::from_str(&v).unwrap())
}

/// Endpoints published in etcd (create, connect, disconnect, rm, lease end, restart), ARP for a
/// remote container answered by the asker's host (none crosses the underlay), and `network rm`
/// of an overlay network: refused while another host has containers on it, else gone from etcd
/// and every host; refused in one line while etcd is down.
#[test]
fn endpoints_in_etcd_answer_arp_locally_and_network_rm_spans_hosts() {
    let mut c = Cluster::new("ove");
    let net = ["network", "create", "ov", "--driver", "overlay"];
    c.cli_ok(0, &[&net[..], &["--subnet", "10.97.0.0/24"]].concat());
    c.cli_ok(0, &["network", "create", "plain"]);
    for i in 1..3 {
        c.converge(i, &["network", "ls"], "ov on every host", |ls| {
            ls.contains(" ov ")
        });
    }
    let mut names = Vec::new();
    for (i, ip) in [(0, "10.97.0.11"), (1, "10.97.0.12")] {
        let ns = c.lab.adopt(&format!("c{}", i + 1));
        c.cli_ok(
            i,
            &["container", "create", &ns, "--network", "ov", "--ip", ip],
        );
        names.push(ns);
    }
    // Published by each host with its container, MAC and address.
    for (ip, host, ctr) in [("10.97.0.11", 0, "c1"), ("10.97.0.12", 1, "c2")] {
        deadline(&format!("endpoint {ip} in etcd"), || {
            endpoint(&c, ip).is_some()
        });
        let e = endpoint(&c, ip).unwrap();
        assert_eq!(e["host"], host_ip(host), "{e}");
        assert_eq!(e["ip"], ip, "{e}");
        assert_eq!(e["mac"], c.lab.mac(ctr, "eth0"), "{e}");
        assert!(e["container"].as_str().unwrap().ends_with(ctr), "{e}");
    }
    // Each host holds the other's MAC statically behind its VXLAN port.
    let c2_mac = c.lab.mac("c2", "eth0");
    c.converge(0, &["fdb"], "c2's MAC static toward host2", |fdb| {
        fdb.lines().any(|l| {
            l.contains(&c2_mac) && l.contains("vxlan:192.168.78.2") && l.contains("static")
        })
    });
    let c1_mac = c.lab.mac("c1", "eth0");
    c.converge(1, &["fdb"], "c1's MAC static toward host1", |fdb| {
        fdb.lines()
            .any(|l| l.contains(&c1_mac) && l.contains("vxlan:192.168.78.1"))
    });

    // ARP across hosts is answered locally: with empty neighbour caches on both sides, a ping
    // from c1 to c2 needs two ARP exchanges, and none crosses the underlay.
    let dump = c.lab.spawn(
        "sw",
        "underlay-dump",
        &["tcpdump", "-i", "ulbr", "-nn", "-l", "udp", "port", "4789"],
    );
    c.lab
        .wait_log("underlay-dump", "listening on", Duration::from_secs(10));
    for ctr in ["c1", "c2"] {
        c.lab.exec_ok(ctr, &["ip", "neigh", "flush", "all"]);
    }
    c.lab.ping_ok("c1", "10.97.0.12");
    let neigh = c.lab.exec_ok("c1", &["ip", "neigh", "show", "10.97.0.12"]);
    assert!(neigh.contains(&c2_mac), "c1 learned c2's MAC: {neigh}");
    std::thread::sleep(Duration::from_millis(300));
    c.lab.stop(dump);
    let seen = c.lab.log("underlay-dump", "out");
    assert!(
        seen.matches("ICMP echo request").count() >= 1,
        "the capture sees the ping cross: {seen}"
    );
    assert_eq!(seen.matches("ARP").count(), 0, "ARP crossed: {seen}");
    // A what-if trace shows who answered.
    let arp = "arp,src=10.97.0.11,dst=10.97.0.12";
    let trace = c.cli_ok(0, &["trace", "packet", "--in", &names[0], arp]);
    assert!(
        trace.contains("arp-proxy") && trace.contains(&c2_mac),
        "{trace}"
    );
    // Traces show the VXLAN step: a what-if on host1 of a packet for c2 ends encapsulated
    // toward host2 (VNI, underlay addresses, UDP ports); a live trace on host2 of c1's ping
    // starts with its decapsulation, from host1.
    let v: serde_json::Value =
        serde_json::from_str(&c.cli_ok(0, &["network", "inspect", "ov"])).unwrap();
    let vni = v[0]["Options"]["vni"].as_str().unwrap().to_string();
    let tcp = "tcp,src=10.97.0.11,dst=10.97.0.12,dport=5432";
    let trace = c.cli_ok(0, &["trace", "packet", "--in", &names[0], tcp]);
    let encap = format!("encap vni {vni}: udp 192.168.78.1:");
    let line = trace
        .lines()
        .find(|l| l.contains(&encap))
        .unwrap_or_else(|| panic!("no {encap:?} in {trace}"));
    assert!(line.contains("> 192.168.78.2:4789"), "{trace}");
    let sport: u16 = line
        .split(&encap)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no source port in {line}"));
    assert!((32768..=60999).contains(&sport), "{line}");
    c.cli_ok(1, &["trace", "add", "ov", "4"]);
    c.lab.ping_ok("c1", "10.97.0.12");
    let shown = c.cli_ok(1, &["trace", "show"]);
    assert!(
        shown.contains(&format!(
            "decap vni {vni} from 192.168.78.1 (udp port 4789)"
        )),
        "{shown}"
    );
    c.cli_ok(1, &["trace", "clear"]);

    // Connect and disconnect publish and withdraw.
    let c3 = c.lab.adopt("c3");
    c.cli_ok(0, &["container", "create", &c3, "--network", "plain"]);
    c.cli_ok(0, &["network", "connect", "ov", &c3, "--ip", "10.97.0.21"]);
    deadline("c3's endpoint published", || {
        endpoint(&c, "10.97.0.21").is_some()
    });
    // Its address is claimed in etcd like a created container's: another host's connect for
    // it is refused, and one without --ip gets a free one.
    let c4 = c.lab.adopt("c4");
    let a5 = c.lab.adopt("a5");
    let claim = |ip: &str| {
        let k = format!("/switchyard/v1/addresses/ov/{ip}");
        etcd_range(&c, &k).into_iter().find(|(key, _)| *key == k)
    };
    assert!(claim("10.97.0.21").is_some_and(|(_, v)| v.contains(&c3)));
    c.cli_ok(1, &["network", "create", "plain"]);
    c.cli_ok(1, &["container", "create", &c4, "--network", "plain"]);
    let out = c.cli(1, &["network", "connect", "ov", &c4, "--ip", "10.97.0.21"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already taken in the cluster"), "{err}");
    c.cli_ok(1, &["network", "connect", "ov", &c4]);
    let v: serde_json::Value =
        serde_json::from_str(&c.cli_ok(1, &["container", "inspect", &c4])).unwrap();
    let c4_ip = v[0]["NetworkSettings"]["Networks"]["ov"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !["10.97.0.11", "10.97.0.12", "10.97.0.21"].contains(&c4_ip.as_str()),
        "{c4_ip} handed out twice"
    );
    assert!(claim(&c4_ip).is_some_and(|(_, v)| v.contains(&c4)));
    c.cli_ok(1, &["container", "rm", &c4]);
    assert!(claim(&c4_ip).is_none(), "given back with the container");
    // A namespace attached (as pipework, CNI and the Docker plugin do) claims one too.
    let _ = run(&["ip", "netns", "del", &a5]);
    must(&["ip", "netns", "add", &a5]);
    let attach = ["attach", "--network", "ov", "--netns", &a5, "--ip"];
    let out = c.cli(2, &[&attach[..], &["10.97.0.11"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already taken in the cluster"), "{err}");
    c.cli_ok(2, &[&attach[..], &["10.97.0.31"]].concat());
    assert!(claim("10.97.0.31").is_some_and(|(_, v)| v.contains("192.168.78.3")));
    deadline("the attachment's endpoint published", || {
        endpoint(&c, "10.97.0.31").is_some()
    });
    c.cli_ok(2, &["detach", "--network", "ov", "--netns", &a5]);
    assert!(claim("10.97.0.31").is_none(), "given back on detach");
    c.cli_ok(0, &["network", "disconnect", "ov", &c3]);
    assert!(claim("10.97.0.21").is_none(), "given back on disconnect");
    deadline("c3's endpoint withdrawn", || {
        endpoint(&c, "10.97.0.21").is_none()
    });

    // Host2's daemon killed: its endpoints go with its lease, for everyone; restarted, they are
    // published again (a new lease).
    c.kill_daemon(1);
    deadline("host2's endpoint gone with its lease", || {
        endpoint(&c, "10.97.0.12").is_none()
    });
    assert!(endpoint(&c, "10.97.0.11").is_some(), "host1's stay");
    c.converge(0, &["fdb"], "c2's MAC gone from host1", |fdb| {
        !fdb.contains(&c2_mac)
    });
    c.start_daemon(1);
    deadline("host2's endpoint back", || {
        endpoint(&c, "10.97.0.12").is_some()
    });
    c.lab.ping_ok("c1", "10.97.0.12");
    // Removed: withdrawn.
    c.cli_ok(1, &["container", "rm", &names[1]]);
    deadline("c2's endpoint withdrawn", || {
        endpoint(&c, "10.97.0.12").is_none()
    });

    // Network removal across hosts: refused in one line while another host has a container on
    // it, and nothing changes.
    let out = c.cli(1, &["network", "rm", "ov"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "removed under host1's container");
    assert!(
        err.contains("still has containers on other hosts")
            && err.contains(&names[0])
            && err.trim().lines().count() == 1,
        "{err}"
    );
    let stored = |k: &str| etcd_range(&c, k).iter().any(|(key, _)| key == k);
    assert!(stored("/switchyard/v1/networks/ov"));
    assert!(c.cli_ok(1, &["network", "ls"]).contains(" ov "));
    // Once it has none, removed on one host: out of etcd (network, VNI, claims, endpoints) and
    // off every host, VXLAN ports and all.
    c.cli_ok(0, &["container", "rm", &names[0]]);
    deadline("c1's endpoint withdrawn", || {
        endpoint(&c, "10.97.0.11").is_none()
    });
    c.cli_ok(1, &["network", "rm", "ov"]);
    assert!(!stored("/switchyard/v1/networks/ov"));
    for prefix in ["vnis/", "addresses/ov/", "endpoints/ov/"] {
        let left = etcd_range(&c, &format!("/switchyard/v1/{prefix}"));
        assert!(left.is_empty(), "{prefix}: {left:?}");
    }
    for i in [0, 2] {
        c.converge(i, &["network", "ls"], "ov removed everywhere", |ls| {
            !ls.contains(" ov ")
        });
        c.converge(i, &["stats"], "its VXLAN ports gone", |st| {
            !st.contains("vxlan:")
        });
    }
    // etcd down: removing an overlay network fails in one line and changes nothing.
    c.cli_ok(
        0,
        &[
            "network",
            "create",
            "ov3",
            "--driver",
            "overlay",
            "--subnet",
            "10.96.0.0/24",
        ],
    );
    c.converge(2, &["network", "ls"], "ov3 on host3", |ls| {
        ls.contains(" ov3 ")
    });
    c.lab.signal(c.etcd, libc::SIGKILL);
    let out = c.cli(2, &["network", "rm", "ov3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "removed without etcd");
    assert!(
        err.contains("unreachable") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(c.cli_ok(2, &["network", "ls"]).contains(" ov3 "));
}

/// Changes reach the other hosts through etcd's watch, well under a second (the periodic read
/// runs every 10 s while the watch is in place): a network created on host1 appears on host2,
/// a container's MAC on host1 lands in host2's MAC table, and both again after etcd restarted
/// (the watch opened anew).
#[test]
fn cluster_changes_reach_other_hosts_through_a_watch_well_under_a_second() {
    let mut c = Cluster::new("ovw");
    // Every host has read the cluster (it sees the others) and its watch is in place.
    let all_hosts = |c: &Cluster| {
        for i in 0..3 {
            c.converge(i, &["stats"], "ports toward the other hosts", |st| {
                (0..3)
                    .filter(|&j| j != i)
                    .all(|j| st.contains(&format!("vxlan:{}", host_ip(j))))
            });
        }
    };
    // (No VXLAN port before an overlay network exists: one first.)
    c.cli_ok(0, &["network", "create", "base", "--driver", "overlay"]);
    all_hosts(&c);
    std::thread::sleep(Duration::from_secs(2));
    let timed = |what: &str, f: &dyn Fn() -> bool| -> Duration {
        let took = poll(what, Duration::from_millis(10), f);
        eprintln!("{what}: {} ms", took.as_millis());
        took
    };
    let mut took = Vec::new();
    for round in 0..2 {
        let net = format!("ow{round}");
        let subnet = format!("10.95.{round}.0/24");
        c.cli_ok(
            0,
            &[
                "network", "create", &net, "--driver", "overlay", "--subnet", &subnet,
            ],
        );
        took.push(timed(&format!("{net} on host2"), &|| {
            c.cli_ok(1, &["network", "ls"])
                .contains(&format!(" {net} "))
        }));
        let ns = c.lab.adopt(&format!("w{round}"));
        let ip = format!("10.95.{round}.11");
        c.cli_ok(
            0,
            &["container", "create", &ns, "--network", &net, "--ip", &ip],
        );
        let mac = c.lab.mac(&format!("w{round}"), "eth0");
        took.push(timed(&format!("{ip}'s MAC on host2"), &|| {
            c.cli_ok(1, &["fdb"])
                .lines()
                .any(|l| l.contains(&mac) && l.contains("static"))
        }));
        if round == 0 {
            // etcd restarted: the watches are opened again and changes flow as before.
            c.lab.signal(c.etcd, libc::SIGKILL);
            std::thread::sleep(Duration::from_secs(1));
            c.start_etcd();
            all_hosts(&c);
            std::thread::sleep(Duration::from_secs(3));
        }
    }
    for t in &took {
        assert!(*t < Duration::from_millis(900), "{took:?}");
    }
}

/// Names across hosts: a container's name, `NAME.NETWORK`, its aliases and hostname, and PTR,
/// resolve on every host of an overlay network (through the C library and dig; ping by name),
/// from the names each host publishes with its endpoints; gone when the container is removed,
/// and when its host's lease ends; back when that host's daemon is.
#[test]
fn names_of_containers_on_other_hosts_resolve_and_go_with_them() {
    let mut c = Cluster::new("ovn");
    c.overlay("10.94.0.0/24");
    let c1 = c.on_ov(0, "c1", "10.94.0.11", &[]);
    let c2 = c.on_ov(
        1,
        "c2",
        "10.94.0.12",
        &["--alias", "db", "--hostname", "dbhost"],
    );
    let c3 = c.on_ov(2, "c3", "10.94.0.13", &[]);
    // host1's resolver answers host2's container by every name, as soon as it is published.
    deadline("c2's name on host1", || {
        dig(&c.lab, "c1", &[&c2]).1 == ["10.94.0.12"]
    });
    for name in ["db", "DBHOST", &format!("{c2}.ov"), "db.ov."] {
        assert_eq!(dig(&c.lab, "c1", &[name]).1, ["10.94.0.12"], "{name}");
    }
    let hosts = c.lab.exec_ok("c1", &["getent", "hosts", &c2]);
    assert!(hosts.starts_with("10.94.0.12"), "{hosts}");
    assert_eq!(
        dig(&c.lab, "c1", &["-x", "10.94.0.12"]).1,
        [format!("{c2}.ov.")]
    );
    c.lab.ping_ok("c1", &c2);
    c.lab.ping_ok("c1", "db");
    // Every way round: host2 names host1's and host3's, host3 names host2's alias.
    deadline("c1 and c3 named on host2", || {
        dig(&c.lab, "c2", &[&c1]).1 == ["10.94.0.11"]
            && dig(&c.lab, "c2", &[&c3]).1 == ["10.94.0.13"]
    });
    c.lab.ping_ok("c2", &c3);
    deadline("db on host3", || {
        dig(&c.lab, "c3", &["db"]).1 == ["10.94.0.12"]
    });

    // Removed on its host: its names go everywhere (NXDOMAIN under the network).
    c.cli_ok(2, &["container", "rm", &c3]);
    for i in ["c1", "c2"] {
        deadline(&format!("c3's name gone from {i}"), || {
            dig(&c.lab, i, &[&format!("{c3}.ov")]).0 == "NXDOMAIN"
        });
    }
    assert_eq!(dig(&c.lab, "c1", &["-x", "10.94.0.13"]).0, "NXDOMAIN");

    // Host2's daemon killed: when its lease ends its names go for everyone; restarted, they
    // are back.
    c.kill_daemon(1);
    deadline("c2's names gone with host2's lease", || {
        dig(&c.lab, "c1", &["db.ov"]).0 == "NXDOMAIN"
    });
    assert_eq!(dig(&c.lab, "c1", &[&format!("{c2}.ov")]).0, "NXDOMAIN");
    c.start_daemon(1);
    deadline("c2's names back", || {
        dig(&c.lab, "c1", &["db"]).1 == ["10.94.0.12"]
    });
    c.lab.ping_ok("c1", "db");
}

/// VXLAN datagrams from the underlay that no port takes are counted per reason in `stats` and
/// go nowhere: too short, without the I flag, a VNI the host does not have, a known VNI from an
/// address that is not a host of the cluster. The same frame from a real host is delivered (so
/// the capture would have seen the others).
#[test]
fn malformed_vxlan_datagrams_are_counted_per_reason_and_go_nowhere() {
    let mut c = Cluster::new("ovx");
    c.overlay("10.93.0.0/24");
    c.on_ov(0, "c1", "10.93.0.11", &[]);
    c.on_ov(1, "c2", "10.93.0.12", &[]);
    c.lab.ping_ok("c1", "10.93.0.12");
    let v: serde_json::Value =
        serde_json::from_str(&c.cli_ok(1, &["network", "inspect", "ov"])).unwrap();
    let vni: u32 = v[0]["Options"]["vni"].as_str().unwrap().parse().unwrap();

    // A broadcast of a local experimental EtherType, behind a VXLAN header with `flags` and `vni`.
    let datagram = |flags: u8, vni: u32, inner: usize| -> String {
        let mut d = vec![flags, 0, 0, 0];
        d.extend_from_slice(&(vni << 8).to_be_bytes());
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0x77, 0x01, 0x88, 0xb5]);
        frame.resize(60, 0x5a);
        frame.truncate(inner);
        d.extend_from_slice(&frame);
        d.iter().map(|b| format!("{b:02x}")).collect()
    };
    const SEND: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for d in sys.argv[2:]:
    s.sendto(bytes.fromhex(d), (sys.argv[1], 4789))
"#;
    let send = |c: &Cluster, from: &str, datagrams: &[String]| {
        let mut args = vec!["/usr/bin/python3", "-c", SEND, "192.168.78.2"];
        args.extend(datagrams.iter().map(String::as_str));
        c.lab.exec_ok(from, &args);
    };
    let drops = |c: &Cluster| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&c.cli_ok(1, &["stats", "--json"])).unwrap()
            ["vxlan"]
            .clone()
    };
    let before = drops(&c);
    for reason in [
        "truncated",
        "bad-flags",
        "unknown-vni",
        "unknown-host",
        "stash-full",
    ] {
        assert!(before[reason].is_u64(), "{reason} in {before}");
    }
    let dump = c.lab.spawn(
        "c2",
        "c2-dump",
        &[
            "tcpdump", "-i", "eth0", "-nn", "-l", "ether", "proto", "0x88b5",
        ],
    );
    c.lab
        .wait_log("c2-dump", "listening on", Duration::from_secs(10));
    // From host1's own address: too short twice, no I flag, an unknown VNI.
    send(
        &c,
        "sw",
        &[
            "0800".to_string(),
            datagram(0x08, vni, 10),
            datagram(0x00, vni, 60),
            datagram(0x08, 0xfffff0, 60),
        ],
    );
    // From etcd's namespace: a known VNI, but not a host of the cluster.
    send(&c, "et", &[datagram(0x08, vni, 60)]);
    deadline("every reason counted", || {
        let after = drops(&c);
        let rise = |r: &str| after[r].as_u64().unwrap() - before[r].as_u64().unwrap();
        rise("truncated") == 2
            && rise("bad-flags") == 1
            && rise("unknown-vni") == 1
            && rise("unknown-host") == 1
    });
    // The same frame from host1, well formed: delivered, once.
    send(&c, "sw", &[datagram(0x08, vni, 60)]);
    deadline("the well-formed one delivered", || {
        c.lab.log("c2-dump", "out").contains("0x88b5")
    });
    std::thread::sleep(Duration::from_millis(300));
    c.lab.stop(dump);
    let seen = c.lab.log("c2-dump", "out");
    assert_eq!(
        seen.matches("ethertype Unknown (0x88b5)").count(),
        1,
        "only the well-formed frame: {seen}"
    );
    let after = drops(&c);
    assert_eq!(after["stash-full"], before["stash-full"]);
    let text = c.cli_ok(1, &["stats"]);
    assert!(text.contains("VXLAN drops: bad-flags="), "{text}");
}

/// A port's drop count for `reason` in host `i`'s `stats --json` (the port named `name`).
fn port_drops(c: &Cluster, i: usize, name: &str, reason: &str) -> u64 {
    let st: serde_json::Value = serde_json::from_str(&c.cli_ok(i, &["stats", "--json"])).unwrap();
    st["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name} in {st}"))["drops"][reason]
        .as_u64()
        .unwrap()
}

/// icc=false and anti-spoofing hold on overlay networks across hosts: on a closed network a
/// container reaches no container of another host (each host drops at its own container's
/// port); on an open one, a container sending from another address, or with another MAC (even
/// a remote container's), reaches nobody, is counted, and does not move that MAC.
#[test]
fn icc_false_and_anti_spoofing_hold_across_hosts() {
    let mut c = Cluster::new("ovi");
    c.overlay_net("closed", "10.91.0.0/24", &["--opt", "icc=false"]);
    c.overlay_net("open", "10.92.0.0/24", &[]);
    let k1 = c.on(0, "closed", "k1", "10.91.0.11", &[]);
    c.on(1, "closed", "k2", "10.91.0.12", &[]);
    let c1 = c.on(0, "open", "c1", "10.92.0.11", &[]);
    c.on(1, "open", "c2", "10.92.0.12", &[]);
    c.on(2, "open", "c3", "10.92.0.13", &[]);
    c.lab.ping_ok("c1", "10.92.0.12");
    // Closed: nothing between containers of two hosts, either way; the gateway still answers.
    c.lab.ping_fails("k1", "10.91.0.12");
    c.lab.ping_fails("k2", "10.91.0.11");
    assert!(!c
        .lab
        .exec("k1", &["nc", "-z", "-w", "1", "10.91.0.12", "80"])
        .status
        .success());
    assert!(
        port_drops(&c, 0, &k1, "icc") > 0,
        "host1 drops k1's at its port"
    );
    c.lab.ping_ok("k1", "10.91.0.1");

    // Another address on c1's interface: dropped at host1 and counted.
    c.lab
        .exec_ok("c1", &["ip", "addr", "add", "10.92.0.99/24", "dev", "eth0"]);
    let out = c.lab.exec(
        "c1",
        &[
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "-I",
            "10.92.0.99",
            "10.92.0.13",
        ],
    );
    assert!(!out.status.success(), "spoofed source address crossed");
    assert!(port_drops(&c, 0, &c1, "spoof-ip") > 0);
    c.lab
        .exec_ok("c1", &["ip", "addr", "del", "10.92.0.99/24", "dev", "eth0"]);
    // c2's MAC (a container on host2) on c1: dropped, and host1 still has it behind host2.
    let own = c.lab.mac("c1", "eth0");
    let c2_mac = c.lab.mac("c2", "eth0");
    c.lab.exec_ok("c1", &["ip", "neigh", "flush", "all"]);
    c.lab
        .exec_ok("c1", &["ip", "link", "set", "eth0", "address", &c2_mac]);
    c.lab.ping_fails("c1", "10.92.0.13");
    assert!(port_drops(&c, 0, &c1, "spoof-mac") > 0);
    let fdb = c.cli_ok(0, &["fdb"]);
    assert!(
        fdb.lines()
            .any(|l| l.contains(&c2_mac) && l.contains("vxlan:192.168.78.2")),
        "{fdb}"
    );
    c.lab.ping_ok("c3", "10.92.0.12");
    c.lab
        .exec_ok("c1", &["ip", "link", "set", "eth0", "address", &own]);
    c.lab.exec_ok("c1", &["ip", "neigh", "flush", "all"]);
    c.lab.ping_ok("c1", "10.92.0.13");
}

/// A host's underlay cut and restored: while cut, the others drop it when its lease ends and
/// keep talking; once restored, every host converges (hosts, endpoints, traffic both ways)
/// within the deadline. Then `network rm` across hosts: refused while other hosts have
/// containers on it, also a host that is down; `--force` removes it from the cluster anyway,
/// and every host that reads that disconnects its own containers, the one that was down too.
#[test]
fn an_underlay_cut_heals_and_network_rm_force_spans_hosts() {
    let mut c = Cluster::new("ovu");
    c.overlay("10.90.0.0/24");
    let c1 = c.on_ov(0, "c1", "10.90.0.11", &[]);
    let c2 = c.on_ov(1, "c2", "10.90.0.12", &[]);
    let c3 = c.on_ov(2, "c3", "10.90.0.13", &[]);
    c.lab.ping_ok("c1", "10.90.0.12");
    c.lab.ping_ok("c1", "10.90.0.13");
    let h2_port = c.lab.port("h2");
    let sees = |c: &Cluster, i: usize, j: usize| {
        c.cli_ok(i, &["stats"])
            .contains(&format!("vxlan:{}", host_ip(j)))
    };
    c.lab
        .exec_ok("sw", &["ip", "link", "set", &h2_port, "down"]);
    c.lab.ping_fails("c1", "10.90.0.12");
    deadline("host2 gone from host1 and host3", || {
        !sees(&c, 0, 1) && !sees(&c, 2, 1)
    });
    c.lab.ping_ok("c1", "10.90.0.13");
    c.lab.exec_ok("sw", &["ip", "link", "set", &h2_port, "up"]);
    let start = std::time::Instant::now();
    deadline("every host sees every other", || {
        (0..3).all(|i| (0..3).filter(|&j| j != i).all(|j| sees(&c, i, j)))
    });
    let c2_mac = c.lab.mac("c2", "eth0");
    c.converge(0, &["fdb"], "c2's MAC static toward host2 again", |fdb| {
        fdb.lines()
            .any(|l| l.contains(&c2_mac) && l.contains("vxlan:192.168.78.2"))
    });
    c.lab.ping_ok("c1", "10.90.0.12");
    c.lab.ping_ok("c2", "10.90.0.13");
    eprintln!(
        "converged {} ms after the underlay came back",
        start.elapsed().as_millis()
    );

    // Refused while other hosts have containers on it, naming them (host1's own are checked
    // first, as without a cluster: c1 goes).
    c.cli_ok(0, &["container", "rm", &c1]);
    let out = c.cli(0, &["network", "rm", "ov"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&c2) && err.contains(&c3) && err.contains("--force"),
        "{err}"
    );
    // Host3 down (its lease ended): its container still counts, said so.
    c.kill_daemon(2);
    deadline("host3's lease ended", || !sees(&c, 0, 2));
    let out = c.cli(0, &["network", "rm", "ov"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("{c3} on 192.168.78.3, which is down")),
        "{err}"
    );
    // --force: out of etcd, claims of the host that is down included, and off every host.
    c.cli_ok(0, &["network", "rm", "--force", "ov"]);
    assert!(etcd_range(&c, "/switchyard/v1/addresses/ov/").is_empty());
    assert!(!c.cli_ok(0, &["network", "ls"]).contains(" ov "));
    let on_ov = |c: &Cluster, i: usize, name: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&c.cli_ok(i, &["container", "inspect", name])).unwrap();
        !v[0]["NetworkSettings"]["Networks"]["ov"].is_null()
    };
    c.converge(1, &["network", "ls"], "ov removed on host2", |ls| {
        !ls.contains(" ov ")
    });
    assert!(!on_ov(&c, 1, &c2), "c2 disconnected on host2");
    // Host3 back: it reads the forced removal and follows.
    c.start_daemon(2);
    c.converge(2, &["network", "ls"], "ov removed on host3", |ls| {
        !ls.contains(" ov ")
    });
    assert!(!on_ov(&c, 2, &c3), "c3 disconnected on host3");
    assert!(etcd_range(&c, "/switchyard/v1/endpoints/ov/").is_empty());
}
