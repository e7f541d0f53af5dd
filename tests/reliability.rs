//! Reliability: states the daemon accepts are states it starts from, restarts right after
//! `kill -9`, resources that go with what they belong to, clients that end quietly, hostile frames
//! dropped and counted. Each test reproduces a failure found by trying (issue 18) and
//! RELIABILITY.md lists them with what they measure.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::probe::{self, Servers};
use common::*;

/// switchyard's address on the uplink of `Lab::daemon_uplinked`.
const UPLINK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// A daemon whose uplink toward `out` has switchyard at 172.17.5.10/24 (gateway `out`,
/// 172.17.5.1): inside Docker's first default pool.
fn daemon_in_the_default_pool(lab: &mut Lab, label: &str) -> usize {
    let uplink = lab.port("out");
    lab.daemon(
        label,
        &[
            "--uplink",
            &uplink,
            "--uplink-ip",
            "172.17.5.10/24",
            "--uplink-gateway",
            "172.17.5.1",
        ],
    )
}

/// A MAC as trafgen's config bytes: `0x02, 0x42, ...`.
fn trafgen_mac(mac: &str) -> String {
    mac.split(':')
        .map(|b| format!("0x{b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// trafgen sending `count` frames of `conf` out of eth0, at full speed on one CPU.
fn trafgen(conf: &std::path::Path, count: u64) -> Vec<String> {
    let conf = conf.display().to_string();
    let count = count.to_string();
    [
        "trafgen",
        "--dev",
        "eth0",
        "--conf",
        &conf,
        "--num",
        &count,
        "--cpus",
        "1",
        "--no-sock-mem",
        "--notouch-irq",
    ]
    .map(String::from)
    .to_vec()
}

/// Starts trafgen in `host` in the background (`trafgen`) and gives it a moment to start.
fn flood(lab: &mut Lab, host: &str, conf: &std::path::Path, count: u64) -> usize {
    let args = trafgen(conf, count);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = lab.spawn(host, "trafgen", &args);
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// A refused request prints one line, exits 2 and leaves the state file as it was.
fn refused(lab: &Lab, args: &[&str], expected: &str) {
    let before = std::fs::read(lab.state_dir().join("state.json")).unwrap();
    let out = lab.cli(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(expected),
        "{args:?}: expected '{expected}' in {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let after = std::fs::read(lab.state_dir().join("state.json")).unwrap();
    assert_eq!(before, after, "{args:?} changed the state");
}

#[test]
fn networks_that_would_stop_the_daemon_from_starting_are_refused() {
    let mut lab = Lab::new("ru");
    lab.host("out", "172.17.5.1/24");
    // The uplink sits in Docker's first default pool: the default network moves out of its way.
    let d = daemon_in_the_default_pool(&mut lab, "d1");
    let subnet = |lab: &Lab, name: &str| {
        lab.inspect("network", name)["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(subnet(&lab, "bridge"), "172.18.0.0/16");
    let uplink = lab.port("out");
    let rows: &[(&[&str], &str)] = &[
        (
            &["--subnet", "172.17.5.0/28"],
            "holds the uplink address 172.17.5.10",
        ),
        (
            &["--subnet", "172.17.5.0/30"],
            "holds the uplink gateway 172.17.5.1",
        ),
        (
            &["--subnet", "10.9.0.0/24", "--parent", &uplink],
            "is the daemon's uplink",
        ),
        (&["--subnet", "127.1.0.0/16"], "loopback"),
        (&["--subnet", "239.1.0.0/16"], "multicast"),
    ];
    for (extra, expected) in rows {
        let mut args = vec!["network", "create", "x"];
        args.extend_from_slice(extra);
        refused(&lab, &args, expected);
    }
    // Networks picked from the default pools stay clear of the uplink's subnet too.
    lab.cli_ok(&["network", "create", "fine", "--subnet", "10.9.0.0/24"]);
    lab.cli_ok(&["network", "create", "auto"]);
    assert_eq!(subnet(&lab, "auto"), "172.19.0.0/16");
    // Whatever was accepted, the daemon starts from it.
    lab.stop(d);
    daemon_in_the_default_pool(&mut lab, "d2");
    lab.cli_ok(&["network", "inspect", "fine", "auto"]);
    // A changed --uplink-ip that lands in a network: one line saying what to do, exit code 2.
    let socket = lab.dir.join("other.sock").display().to_string();
    let other_state = lab.dir.join("other-state");
    std::fs::create_dir_all(&other_state).unwrap();
    std::fs::copy(
        lab.state_dir().join("state.json"),
        other_state.join("state.json"),
    )
    .unwrap();
    let out = lab.exec(
        "sw",
        &[
            "timeout",
            "20",
            switchyard_bin(),
            "daemon",
            "--state-dir",
            &other_state.display().to_string(),
            "--socket",
            &socket,
            "--uplink",
            &uplink,
            "--uplink-ip",
            "10.9.0.10/24",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("holds the uplink address 10.9.0.10") && err.contains("network rm fine"),
        "{err}"
    );
}

#[test]
fn a_restart_right_after_kill_9_waits_for_the_dead_daemons_lock() {
    let mut lab = Lab::new("rk");
    let d = lab.daemon("d1", &[]);
    // Enough ports that the kernel takes a while to close them after the kill.
    for i in 1..=12 {
        lab.container(&format!("c{i}"), &[]);
    }
    lab.signal(d, libc::SIGKILL);
    // No waiting for the process to be gone: this is what a supervisor restarting it does.
    let started = Instant::now();
    lab.daemon("d2", &[]);
    assert!(started.elapsed() < Duration::from_secs(15));
    lab.ping_ok("c1", "172.17.0.13");
}

/// `switchyard conntrack | head -1` panicked with "Broken pipe" (exit code 101). Every client
/// command ends quietly on a closed pipe: killed by SIGPIPE like any Unix tool, or exit 0.
#[test]
fn every_command_ends_quietly_on_a_closed_pipe() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let mut lab = Lab::new("rp");
    lab.daemon("d", &[]);
    lab.container("c", &[]);
    let commands: &[&[&str]] = &[
        &["conntrack"],
        &["status"],
        &["stats"],
        &["fdb"],
        &["topology"],
        &["network", "ls"],
        &["container", "ls"],
        &["network", "inspect", "bridge"],
        &["--help"],
    ];
    for args in commands {
        let mut child = Command::new(switchyard_bin())
            .args(*args)
            .env("SWITCHYARD_SOCKET", lab.socket())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the command has had its answer: its first write fails.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {err}",
            out.status
        );
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// Processes started with `container exec` kept running after `container rm`; removing a
/// container ends what runs in it (SIGKILL, as `docker rm -f`), children included.
#[test]
fn container_rm_ends_the_processes_started_in_it() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::Command;
    let mut lab = Lab::new("rx");
    lab.daemon("d", &[]);
    let c = lab.container("c", &[]);
    /// Ends the exec'd process group however the test ends.
    struct Group(std::process::Child);
    impl Drop for Group {
        fn drop(&mut self) {
            let _ = run(&["kill", "-KILL", "--", &format!("-{}", self.0.id())]);
            let _ = self.0.wait();
        }
    }
    let mut exec = Group(
        Command::new(switchyard_bin())
            .args([
                "container",
                "exec",
                &c,
                "--",
                "sh",
                "-c",
                "sleep 1000 & wait",
            ])
            .env("SWITCHYARD_SOCKET", lab.socket())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let pids = || {
        let out = run(&["ip", "netns", "pids", &c]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let inside = wait_for("sh and sleep in the container", || {
        let p = pids();
        (p.len() >= 2).then_some(p)
    });
    let ns_file = format!("/run/netns/{c}");
    lab.cli_ok(&["container", "rm", &c]);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = exec.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "container exec still running after container rm"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    // The backgrounded sleep too (reparented, then reaped by init).
    for pid in inside {
        wait_for("every process of the container gone", || {
            (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        });
    }
    assert!(!std::path::Path::new(&ns_file).exists());
    assert!(
        lab.log("d", "err")
            .contains("ended the container's processes"),
        "{}",
        lab.log("d", "err")
    );
}

/// The API socket's bounds: root only (0600), no network listener unless `--metrics`, an
/// oversized request refused, idle clients neither block others nor stay forever, and a bounded
/// number of clients at once.
#[test]
fn the_api_socket_is_bounded_and_idle_clients_block_nobody() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    let mut lab = Lab::new("ra");
    lab.daemon("d", &[]);
    let mode = std::fs::metadata(lab.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    // No TCP or UDP socket in the daemon's namespace (only the daemon runs there) but the DNS
    // resolver's, on the default network's gateway port 53 (172.17.0.1:53 is 010011AC:0035).
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let t = lab.exec_ok("sw", &["cat", &format!("/proc/net/{table}")]);
        let sockets: Vec<&str> = t
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        let expected: &[&str] = match table {
            "tcp" | "udp" => &["010011AC:0035"],
            _ => &[],
        };
        assert_eq!(sockets, expected, "/proc/net/{table}: {t}");
    }
    let answer = |conn: &UnixStream| {
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).unwrap();
        line
    };
    // An oversized request: refused with one line, the daemon unaffected.
    let big = UnixStream::connect(lab.socket()).unwrap();
    let writer = big.try_clone().unwrap();
    let feeding = std::thread::spawn(move || {
        let _ = (&writer).write_all(&vec![b'x'; (1 << 20) + 100]);
    });
    let refused = answer(&big);
    assert!(
        refused.contains("request larger than 1048576 bytes"),
        "{refused}"
    );
    let _ = feeding.join();
    // Idle clients that never send: others are served at once.
    let idle: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(lab.socket()).unwrap())
        .collect();
    let started = Instant::now();
    lab.cli_ok(&["status"]);
    let served_in = started.elapsed();
    // A daemon that served clients in turn would answer only once the idle ones timed out (5 s
    // after they connected); the margin below that is for a loaded CI machine, where starting
    // the CLI alone has taken over a second.
    assert!(
        served_in < Duration::from_secs(4),
        "status took {served_in:?} behind 20 idle clients"
    );
    // And each idle one is told off and closed after the client timeout (5 s), not kept.
    let told = answer(&idle[0]);
    assert!(told.contains("no request within 5 s"), "{told}");
    assert!(started.elapsed() < Duration::from_secs(12));
    drop(idle);
    // At most 64 clients at once: the 65th hears why and is closed. The idle clients' threads
    // end one by one after their timeouts, so the first of 64 new clients may still find some
    // of them counted and be refused, and the 65th then find a free place: hold 64 that were
    // all let in (none answered within 300 ms: a refusal is answered at once) before the 65th.
    let held = wait_for("64 clients let in at once", || {
        let held: Vec<UnixStream> = (0..64)
            .map(|_| UnixStream::connect(lab.socket()).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let refused = held.iter().any(|c| {
            c.set_nonblocking(true).unwrap();
            let heard = (&*c).read(&mut [0u8; 1]);
            c.set_nonblocking(false).unwrap();
            !matches!(heard, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
        (!refused).then_some(held)
    });
    let busy = lab.cli(&["status"]);
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(
        !busy.status.success() && err.contains("serving 64 clients"),
        "{err}"
    );
    drop(held);
    wait_for("served again once the clients went", || {
        lab.cli(&["status"]).status.success().then_some(())
    });
}

/// A client of a stopped daemon (SIGSTOP) gives up with one clear line within its timeout.
#[test]
fn a_client_of_a_stopped_daemon_gives_up_with_a_clear_message() {
    let mut lab = Lab::new("rs");
    let d = lab.daemon("d", &[]);
    lab.signal(d, libc::SIGSTOP);
    let started = Instant::now();
    let out = std::process::Command::new(switchyard_bin())
        .args(["network", "ls"])
        .env("SWITCHYARD_SOCKET", lab.socket())
        .env("SWITCHYARD_TIMEOUT", "2")
        .output()
        .unwrap();
    let took = started.elapsed();
    lab.signal(d, libc::SIGCONT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("did not answer within 2 s"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(took < Duration::from_secs(4), "gave up after {took:?}");
    lab.cli_ok(&["network", "ls"]);
}

/// The state directory on a full (then read-only) file system: a change is refused with one
/// clear line, and nothing changed: the state file is the same bytes, no network, namespace or interface
/// appeared. Once there is room again the same change succeeds.
#[test]
fn a_full_state_directory_refuses_changes_and_keeps_the_state() {
    /// Unmounts the small tmpfs however the test ends.
    struct Mount(std::path::PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = run(&["umount", "-l", &self.0.display().to_string()]);
        }
    }
    let mut lab = Lab::new("rf");
    let state = lab.state_dir();
    std::fs::create_dir_all(&state).unwrap();
    must(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=256k",
        "tmpfs",
        &state.display().to_string(),
    ]);
    let _mount = Mount(state.clone());
    let d = lab.daemon("d", &[]);
    lab.cli_ok(&["network", "create", "before", "--subnet", "10.91.0.0/24"]);
    let saved = std::fs::read(state.join("state.json")).unwrap();
    // Fill what is left (dd stops at ENOSPC).
    let filler = state.join("filler");
    let _ = run(&[
        "dd",
        "if=/dev/zero",
        &format!("of={}", filler.display()),
        "bs=4k",
    ]);
    let links_before = lab.exec_ok("sw", &["ip", "-br", "link"]);
    for args in [
        &["network", "create", "after", "--subnet", "10.92.0.0/24"][..],
        &["container", "create", &lab.ns("c")][..],
    ] {
        let out = lab.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded on a full disk");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("No space left on device") && err.contains("state.json"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(state.join("state.json")).unwrap(), saved);
    let ls = lab.cli_ok(&["network", "ls"]);
    assert!(ls.contains("before") && !ls.contains("after"), "{ls}");
    assert!(lab.cli_ok(&["container", "ls"]).lines().count() <= 1);
    assert!(!std::path::Path::new(&format!("/run/netns/{}", lab.ns("c"))).exists());
    assert_eq!(lab.exec_ok("sw", &["ip", "-br", "link"]), links_before);
    // Room again: the same change goes through.
    std::fs::remove_file(&filler).unwrap();
    lab.cli_ok(&["network", "create", "after", "--subnet", "10.92.0.0/24"]);
    // Read-only: the same refusal, in the same words the OS uses.
    let saved = std::fs::read(state.join("state.json")).unwrap();
    // (A read-only bind mount on top, made in the daemon's own mount namespace: it holds its
    // lock file open for writing, so the tmpfs itself cannot be remounted read-only.)
    let dir = state.display().to_string();
    let pid = lab.pid(d).to_string();
    let ro = format!("mount --bind {dir} {dir} && mount -o remount,bind,ro {dir}");
    must(&["nsenter", "-t", &pid, "-m", "sh", "-c", &ro]);
    let out = lab.cli(&["network", "create", "third", "--subnet", "10.93.0.0/24"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Read-only file system"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(state.join("state.json")).unwrap(), saved);
    assert!(!lab.cli_ok(&["network", "ls"]).contains("third"));
}

/// Malformed IPv4 from a container at full speed (trafgen): impossible total lengths and header
/// lengths to a destination behind the uplink. Before, each was translated, created a connection
/// entry and left by the uplink; now each is dropped at ingress and counted under its reason.
#[test]
fn malformed_ipv4_at_full_speed_is_dropped_before_nat_and_counted() {
    let (mut lab, _) = Lab::uplinked("rm");
    lab.container("c", &[]);
    lab.ping_ok("c", "172.17.0.1");
    let neigh = lab.exec_ok("c", &["ip", "neigh", "show", "172.17.0.1"]);
    let gw_mac = neigh
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_else(|| panic!("no gateway MAC in {neigh}"))
        .to_string();
    let own_mac = lab.mac("c", "eth0");
    // Two 60-byte frames from 172.17.0.2 to 192.0.2.1:9: total length 65535, then header length
    // 60 bytes in a 46-byte packet.
    let frame = |ver_ihl: &str, total: &str| {
        format!(
            "{{ {}, {}, c16(0x0800), {ver_ihl}, 0x00, c16({total}), c16(0), c16(0x4000), 64, 17, \
             csumip(14, 33), 172, 17, 0, 2, 192, 0, 2, 1, c16(40000), c16(9), c16(26), c16(0), \
             fill(0x00, 18) }}\n",
            trafgen_mac(&gw_mac),
            trafgen_mac(&own_mac)
        )
    };
    let conf = lab.dir.join("malformed.cfg");
    std::fs::write(&conf, frame("0x45", "65535") + &frame("0x4f", "46")).unwrap();
    let stats = |lab: &Lab| {
        let s = lab.cli_json(&["stats", "--json"]);
        let get = |r: &str| s["stages"]["ingress"][r].as_u64().unwrap();
        (
            get("bad-ip-length"),
            get("bad-ip-header"),
            get("rx-overrun"),
        )
    };
    let tx = |lab: &Lab| -> u64 {
        lab.exec_ok("c", &["cat", "/sys/class/net/eth0/statistics/tx_packets"])
            .trim()
            .parse()
            .unwrap()
    };
    let out_rx = |lab: &Lab| -> u64 {
        lab.exec_ok(
            "out",
            &[
                "cat",
                &format!("/sys/class/net/{}/statistics/rx_packets", "eth0"),
            ],
        )
        .trim()
        .parse()
        .unwrap()
    };
    let (len0, hdr0, over0) = stats(&lab);
    let (tx0, out0) = (tx(&lab), out_rx(&lab));
    let sent = 200_000;
    let started = Instant::now();
    lab.exec_ok(
        "c",
        &trafgen(&conf, sent)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    let (len1, hdr1, over1) = stats(&lab);
    let left = tx(&lab) - tx0;
    let counted = (len1 - len0) + (hdr1 - hdr0);
    eprintln!(
        "malformed flood: {left} frames left the container in {took:?}; bad-ip-length {}, \
         bad-ip-header {}, rx-overrun {}",
        len1 - len0,
        hdr1 - hdr0,
        over1 - over0
    );
    assert!(left >= sent, "{left} of {sent} frames sent");
    assert!(len1 - len0 > 0 && hdr1 - hdr0 > 0);
    // Every frame the container sent is counted: dropped for its reason, or (too fast for the
    // switch) as a kernel receive overrun. Nothing else (a ping or ARP at most) slipped by.
    assert!(
        counted + (over1 - over0) + 4 >= left && counted <= left,
        "{left} sent, {counted} counted, {} overruns",
        over1 - over0
    );
    // Nothing was translated, tracked or sent to the world.
    assert_eq!(
        lab.cli_ok(&["conntrack"])
            .lines()
            .filter(|l| l.contains("dport=9"))
            .count(),
        0
    );
    assert!(out_rx(&lab) - out0 < 10, "frames reached the world");
    // The flood grew the port's receive ring, which replaced its socket: the new one is polled.
    lab.ping_ok("c", "172.17.0.1");
}

/// A million random source MACs from one container at full speed (trafgen): the MAC table stays
/// within its bounds, the flooder's entries are evicted (counted) rather than known hosts',
/// the daemon's memory stays flat, and two other containers keep talking without loss.
#[test]
fn a_mac_flood_is_bounded_and_known_hosts_keep_talking() {
    let mut lab = Lab::new("rmf");
    let d = lab.daemon("d", &[]);
    lab.container("fl", &["--allow-spoofing"]);
    lab.container("a", &[]);
    lab.container("b", &[]);
    lab.ping_ok("a", "172.17.0.4");
    let own = lab.mac("fl", "eth0");
    // To the flooder's own MAC (a static entry on its own port: dropped as same-port after
    // learning), from 02:xx:xx:xx:xx:xx random: nothing but learning pressure.
    let conf = lab.dir.join("macflood.cfg");
    std::fs::write(
        &conf,
        format!(
            "{{ {}, 0x02, drnd(5), c16(0x88b5), fill(0x00, 46) }}\n",
            trafgen_mac(&own)
        ),
    )
    .unwrap();
    let rss_kib = |lab: &Lab| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", lab.pid(d))).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let rss0 = rss_kib(&lab);
    let sent = 1_000_000u64;
    let flood = flood(&mut lab, "fl", &conf, sent);
    let ping = lab.exec(
        "a",
        &["ping", "-c", "300", "-i", "0.01", "-q", "172.17.0.4"],
    );
    let ping = String::from_utf8_lossy(&ping.stdout).into_owned();
    let started = Instant::now();
    while lab.running(flood) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "trafgen still running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss1 = rss_kib(&lab);
    let s = lab.cli_json(&["stats", "--json"]);
    let (macs, evicted, learned) = (
        s["macs"].as_u64().unwrap(),
        s["mac_evicted"].as_u64().unwrap(),
        s["mac_learned"].as_u64().unwrap(),
    );
    eprintln!(
        "mac flood: {sent} frames; table {macs} entries, learned {learned}, evicted {evicted}; \
         daemon RSS {rss0} -> {rss1} KiB; ping a -> b: {}",
        ping.lines()
            .find(|l| l.contains("packet loss"))
            .unwrap_or("?")
    );
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    assert!(macs <= 8192, "{macs} entries");
    assert!(evicted > 100_000, "{evicted} evicted");
    assert!(rss1 < rss0 + 16 * 1024, "daemon RSS {rss0} -> {rss1} KiB");
    // The known hosts are still where they were.
    lab.ping_ok("b", "172.17.0.3");
}

/// 50 clients at once, each creating a container, then 50 at once removing them: every request
/// succeeds, every container is there (then gone) with its own address.
#[test]
fn fifty_concurrent_clients_are_all_served() {
    let mut lab = Lab::new("rc");
    lab.daemon("d", &[]);
    let names: Vec<String> = (0..50).map(|i| lab.adopt(&format!("k{i}"))).collect();
    let all = |lab: &Lab, verb: &str| {
        let started = Instant::now();
        std::thread::scope(|s| {
            let runs: Vec<_> = names
                .iter()
                .map(|n| s.spawn(move || lab.cli(&["container", verb, n])))
                .collect();
            for (n, r) in names.iter().zip(runs) {
                let out = r.join().unwrap();
                assert!(
                    out.status.success(),
                    "container {verb} {n}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        });
        started.elapsed()
    };
    let created = all(&lab, "create");
    let text = lab.cli_ok(&["container", "ls"]);
    assert!(names.iter().all(|n| text.contains(n.as_str())), "{text}");
    let mut ips: Vec<String> = names
        .iter()
        .map(|n| {
            lab.inspect("container", n)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
                .to_string()
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50, "{ips:?}");
    let removed = all(&lab, "rm");
    eprintln!("50 concurrent clients: create {created:?}, rm {removed:?}");
    assert!(lab.cli_ok(&["container", "ls", "-q"]).trim().is_empty());
}

/// A burst of new connections toward an idle container while the engine is not reading (stopped
/// here; on a busy host, serving other ports or asleep on another CPU): every SYN waits in the
/// ports' receive rings, none is dropped, and every connection completes without the 1 s SYN
/// retransmission. With rings of 128 slots (64 for a second worker's socket) 400 SYNs overran
/// them; an idle port's ring now holds 1,024 small frames in the same memory (512 a further
/// worker's socket). With two workers, 700 also need the flows spread over the port's sockets:
/// one host's connections all went to one of them (Linux gives `connect()` even source ports).
#[test]
fn an_idle_container_meeting_hundreds_of_new_clients_at_once_keeps_every_syn() {
    let mut lab = Lab::new("bst");
    let daemon = lab.daemon("d", &[]);
    lab.container("srv", &[]);
    lab.container("cli", &[]);
    let ip = lab.inspect("container", &lab.ns("srv"))["NetworkSettings"]["Networks"]["bridge"]
        ["IPAddress"]
        .as_str()
        .expect("srv's address")
        .to_string();
    let server = "import socket, time\n\
                  s = socket.socket()\n\
                  s.bind(('0.0.0.0', 8080))\n\
                  s.listen(1024)\n\
                  time.sleep(60)\n";
    lab.spawn("srv", "server", &["/usr/bin/python3", "-c", server]);
    wait_for("the server listens", || {
        let out = lab.exec_ok("srv", &["ss", "-Hltn", "sport = :8080"]);
        (!out.trim().is_empty()).then_some(())
    });
    // Both containers know each other's MAC, so the burst is SYNs only.
    lab.ping_ok("cli", &ip);
    let overruns = |lab: &Lab| {
        lab.cli_json(&["stats", "--json"])["stages"]["ingress"]["rx-overrun"]
            .as_u64()
            .expect("rx-overrun")
    };
    let before = overruns(&lab);
    // The client stops the daemon, opens 700 connections (700 SYNs into the switch's port), waits
    // 100 ms, lets the daemon go on and counts the connections that complete within 0.9 s of the
    // first SYN: a SYN the switch dropped is sent again only after 1 s.
    let client = "import os, select, signal, socket, sys, time\n\
                  addr, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n\
                  os.kill(pid, signal.SIGSTOP)\n\
                  try:\n\
                  \x20   start = time.monotonic()\n\
                  \x20   socks = {}\n\
                  \x20   for _ in range(n):\n\
                  \x20       s = socket.socket()\n\
                  \x20       s.setblocking(False)\n\
                  \x20       s.connect_ex((addr, 8080))\n\
                  \x20       socks[s.fileno()] = s\n\
                  \x20   time.sleep(0.1)\n\
                  finally:\n\
                  \x20   os.kill(pid, signal.SIGCONT)\n\
                  p = select.poll()\n\
                  for fd in socks:\n\
                  \x20   p.register(fd, select.POLLOUT)\n\
                  done = 0\n\
                  left = set(socks)\n\
                  while left and time.monotonic() - start < 0.9:\n\
                  \x20   for fd, _ in p.poll(20):\n\
                  \x20       p.unregister(fd)\n\
                  \x20       left.discard(fd)\n\
                  \x20       if socks[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:\n\
                  \x20           done += 1\n\
                  print(done, round(time.monotonic() - start, 3))\n";
    let pid = lab.pid(daemon).to_string();
    let out = lab.exec_ok("cli", &["/usr/bin/python3", "-c", client, &ip, "700", &pid]);
    let mut words = out.split_whitespace();
    let done: u32 = words.next().and_then(|w| w.parse().ok()).expect("count");
    let took = words.next().unwrap_or("?");
    let dropped = overruns(&lab) - before;
    eprintln!(
        "700 SYNs at once: {done} connected, the last {took} s after the first; {dropped} overruns"
    );
    assert_eq!(dropped, 0, "SYNs dropped by the switch's receive rings");
    assert_eq!(
        done, 700,
        "connections complete without a SYN retransmission"
    );
}

/// What a flood at a published port left: the rates during it and the table after it.
struct FloodFigures {
    sent: u64,
    time: Duration,
    tries: usize,
    fresh: usize,
    kept: usize,
    entries: u64,
    created: u64,
    evicted: u64,
}

/// A daemon with `--max-conntrack 2048` and an uplink toward `out`, and a container `srv`
/// publishing `publish`, whose server `serve` starts.
fn published(short: &str, publish: &str, serve: impl FnOnce(&mut Servers, &str)) -> (Lab, Servers) {
    let mut lab = Lab::new(short);
    lab.host("out", "192.0.2.1/24");
    lab.daemon_uplinked("d", &["--max-conntrack", "2048"]);
    let srv = lab.container("srv", &["-p", publish]);
    let mut servers = Servers::new();
    serve(&mut servers, &srv);
    (lab, servers)
}

/// trafgen in `out` sends 1 500 000 frames to the uplink: Ethernet, then `packet` (trafgen's
/// bytes from the IPv4 header on, random 10.200.x.x sources). While it runs, `probe` is asked
/// again and again whether a new flow and the established one got through. Asserts what must
/// hold whatever the load: trafgen finished, the table stayed at its bound by evicting.
fn flood_from_outside(
    lab: &mut Lab,
    packet: &str,
    mut probe: impl FnMut() -> (bool, bool),
) -> FloodFigures {
    let uplink_mac = lab.mac("sw", &lab.port("out"));
    let out_mac = lab.mac("out", "eth0");
    let conf = lab.dir.join("flood.cfg");
    let frame = format!(
        "{{ {}, {}, c16(0x0800), {packet} }}\n",
        trafgen_mac(&uplink_mac),
        trafgen_mac(&out_mac)
    );
    std::fs::write(&conf, frame).unwrap();
    let sent = 1_500_000u64;
    let flood = flood(lab, "out", &conf, sent);
    let (mut tries, mut fresh, mut kept) = (0, 0, 0);
    let started = Instant::now();
    // A guard against a hang, not a rate: 1.5M frames take 19-35 s alone and over 60 s beside
    // a whole test suite and parallel builds on 2 vCPUs.
    while lab.running(flood) && started.elapsed() < Duration::from_secs(180) {
        let (new, established) = probe();
        tries += 1;
        fresh += usize::from(new);
        kept += usize::from(established);
    }
    let time = started.elapsed();
    assert!(!lab.running(flood), "trafgen still running");
    let s = lab.cli_json(&["stats", "--json"]);
    let figures = FloodFigures {
        sent,
        time,
        tries,
        fresh,
        kept,
        entries: s["conntrack_entries"].as_u64().unwrap(),
        created: s["conntrack_created"].as_u64().unwrap(),
        evicted: s["conntrack_evicted"].as_u64().unwrap(),
    };
    let FloodFigures {
        entries,
        created,
        evicted,
        ..
    } = figures;
    // The rates during the flood depend on how much CPU the machine leaves the switch (they
    // are recorded in RELIABILITY.md, not asserted).
    assert!(entries <= 2048, "{entries}");
    assert!(
        evicted > 0 && created > 2048,
        "{created} created, {evicted} evicted"
    );
    figures
}

/// A SYN flood from the world at a published port (trafgen, random spoofed sources): the
/// connection table stays at its bound (entries that never saw a reply are evicted first), and
/// the established connection and new legitimate ones keep working; how many open during the
/// flood is measured and printed.
#[test]
fn a_syn_flood_at_a_published_port_leaves_real_connections_working() {
    let (mut lab, _servers) = published("rsy", "8080:80", |s, srv| s.tcp(srv, 80));
    let out = lab.ns("out");
    let t = Duration::from_secs(2);
    let established = wait_for("a first connection", || {
        probe::tcp_connect(&out, UPLINK_IP, 8080, t)
    });
    // SYNs from 10.200.x.x:random to 192.0.2.10:8080.
    let f = flood_from_outside(
        &mut lab,
        "0x45, 0x00, c16(40), drnd(2), c16(0x4000), 64, 6, csumip(14, 33), 10, 200, drnd(2), \
         192, 0, 2, 10, drnd(2), c16(8080), drnd(4), c32(0), 0x50, 0x02, c16(64240), \
         csumtcp(14, 34), c16(0), fill(0x00, 6)",
        || {
            (
                probe::tcp_ok(&out, UPLINK_IP, 8080, t),
                probe::echo(&established, t),
            )
        },
    );
    eprintln!(
        "syn flood: {} SYNs in {:?}; conntrack {} entries (max 2048), {} created, {} evicted; \
         during it: {}/{} new connections opened, {}/{} echoes on the established one",
        f.sent, f.time, f.entries, f.created, f.evicted, f.fresh, f.tries, f.kept, f.tries
    );
    // After the flood both work. Not within `t`: segments of the established connection lost
    // during the flood back its retransmission timer off (0.2, 0.4, 0.8, 1.6, 3.2 s), so its
    // next echo may come seconds after the flood ended (a landing beside two builds saw it).
    let after = Duration::from_secs(15);
    assert!(probe::echo(&established, after));
    assert!(probe::tcp_ok(&out, UPLINK_IP, 8080, after));
}

/// `kill -9` of the daemon in the middle of concurrent `container create`/`rm` bursts, three
/// times: after each restart every container is either fully there (its namespace, address and
/// route to the gateway) or fully gone, and no veth is left without a container.
#[test]
fn kill_9_during_bursts_leaves_each_container_whole_or_gone() {
    let mut lab = Lab::new("rk9");
    let mut d = lab.daemon("d0", &[]);
    let names: Vec<String> = (0..12).map(|i| lab.adopt(&format!("b{i}"))).collect();
    // Half of them exist before the first burst.
    for n in names.iter().step_by(2) {
        lab.cli_ok(&["container", "create", n]);
    }
    let present = |lab: &Lab| -> Vec<String> {
        let ls = lab.cli_ok(&["container", "ls"]);
        names
            .iter()
            .filter(|n| ls.split_whitespace().any(|w| w == n.as_str()))
            .cloned()
            .collect()
    };
    for (round, kill_after_ms) in [300u64, 700, 1200].into_iter().enumerate() {
        let before = present(&lab);
        std::thread::scope(|s| {
            for n in &names {
                let verb = if before.contains(n) { "rm" } else { "create" };
                let lab = &lab;
                s.spawn(move || lab.cli(&["container", verb, n]));
            }
            std::thread::sleep(Duration::from_millis(kill_after_ms));
            lab.signal(d, libc::SIGKILL);
        });
        d = lab.daemon(&format!("d{}", round + 1), &[]);
        let now = present(&lab);
        for n in &names {
            let ns_file = std::path::Path::new("/run/netns").join(n);
            if now.contains(n) {
                assert!(
                    ns_file.exists(),
                    "round {round}: {n} listed without namespace"
                );
                assert_addressed_and_reaching_its_gateway(n, &format!("round {round}"));
            } else {
                assert!(
                    !ns_file.exists(),
                    "round {round}: {n} gone but its namespace stays"
                );
            }
        }
        let veths = lab.exec_ok("sw", &["ip", "-o", "link", "show", "type", "veth"]);
        assert_eq!(
            veths.lines().count(),
            now.len(),
            "round {round}: veths without a container: {veths}"
        );
        eprintln!(
            "kill -9 round {round} after {kill_after_ms} ms: {} of 12 containers there, all whole",
            now.len()
        );
    }
}

/// A daemon killed inside a container's namespace being made or removed can leave its name file
/// with nothing mounted on it (between creating the file and mounting the namespace, or between
/// unmounting and removing it: the case `kill_9_during_bursts_...` once hit). The restarted
/// daemon makes the namespace again: the container is whole, not listed without an address.
#[test]
fn a_namespace_name_with_nothing_mounted_is_made_again_at_restart() {
    let mut lab = Lab::new("rnm");
    let d = lab.daemon("d0", &[]);
    let c = lab.adopt("c");
    lab.cli_ok(&["container", "create", &c]);
    lab.signal(d, libc::SIGKILL);
    wait_for("the daemon gone", || (!lab.running(d)).then_some(()));
    let path = format!("/run/netns/{c}");
    let umount = run(&["umount", &path]);
    assert!(umount.status.success(), "umount {path}: {umount:?}");
    assert!(std::path::Path::new(&path).exists());
    lab.daemon("d1", &[]);
    assert_addressed_and_reaching_its_gateway(&c, "after the restart");
}

/// Container `ns` on the default network has its address on eth0 and reaches its gateway;
/// `when` says at which point of the test, in the failure message.
fn assert_addressed_and_reaching_its_gateway(ns: &str, when: &str) {
    let addr = run(&["ip", "-n", ns, "-4", "-o", "addr", "show", "eth0"]);
    assert!(
        String::from_utf8_lossy(&addr.stdout).contains("inet 172.17."),
        "{when}: {ns} has no address: {addr:?}"
    );
    let ping = run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "172.17.0.1",
    ]);
    assert!(
        ping.status.success(),
        "{when}: {ns} cannot reach its gateway: {ping:?}"
    );
}

/// The host-side interface of a container's first endpoint.
fn host_interface(lab: &Lab, container: &str) -> String {
    let c = lab.inspect("container", container);
    let networks = c["NetworkSettings"]["Networks"].as_object().unwrap();
    let e = networks.values().next().expect("an endpoint");
    e["HostInterface"].as_str().unwrap().to_string()
}

/// `ping -c COUNT -i 0.01 -q ADDR` from `host`: its summary line.
fn ping_summary(lab: &Lab, host: &str, addr: &str, count: u32) -> String {
    let out = lab.exec(
        host,
        &[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.01",
            "-W",
            "1",
            "-q",
            addr,
        ],
    );
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    out.lines()
        .find(|l| l.contains("packet loss"))
        .unwrap_or_else(|| panic!("no summary: {out}"))
        .to_string()
}

/// The port a container's interface is attached by, from `stats --json`.
fn port_stats(lab: &Lab, interface: &str) -> Option<serde_json::Value> {
    let s = lab.cli_json(&["stats", "--json"]);
    s["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["interface"] == interface)
        .cloned()
}

/// Containers a, b and c (172.17.0.2-4); `a` pings `c` (`to_c` pings at 10 ms) in the
/// background and `b` (300 at 10 ms) while `fault` strikes `c` 1 s in. Returns the daemon, the
/// two ping summaries (to b, to c), `c`'s name and the switch end of its veth.
fn fault_under_traffic(
    lab: &mut Lab,
    to_c: u32,
    fault: impl Fn(&Lab, &str, &str) + Sync,
) -> (usize, String, String, String, String) {
    let d = lab.daemon("d", &[]);
    lab.container("a", &["--ip", "172.17.0.2"]);
    lab.container("b", &["--ip", "172.17.0.3"]);
    let c = lab.container("c", &["--ip", "172.17.0.4"]);
    lab.ping_ok("a", "172.17.0.3");
    lab.ping_ok("a", "172.17.0.4");
    let veth = host_interface(lab, &c);
    let count = to_c.to_string();
    let ping_c = lab.spawn(
        "a",
        "ping-c",
        &[
            "ping",
            "-c",
            &count,
            "-i",
            "0.01",
            "-W",
            "1",
            "-q",
            "172.17.0.4",
        ],
    );
    let lab_ref = &*lab;
    let to_b = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1000));
            fault(lab_ref, &c, &veth);
        });
        ping_summary(lab_ref, "a", "172.17.0.3", 300)
    });
    let started = Instant::now();
    while lab.running(ping_c) && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let to_c = std::fs::read_to_string(lab.dir.join("ping-c.out")).unwrap();
    let to_c = to_c
        .lines()
        .find(|l| l.contains("packet loss"))
        .unwrap_or("?")
        .to_string();
    (d, to_b, to_c, c, veth)
}

/// A port's interface deleted (`ip link del` of the veth's switch end) while `a` pings both the
/// container behind it and another one: the daemon keeps running and logs it, the port shows as
/// gone, `a` and `b` lose nothing, and the container can be removed and created again.
#[test]
fn a_ports_interface_deleted_under_traffic_leaves_the_others_forwarding() {
    let mut lab = Lab::new("rif");
    let (d, to_b, to_c, c, veth) = fault_under_traffic(&mut lab, 400, |lab, _, veth| {
        lab.exec_ok("sw", &["ip", "link", "del", veth]);
    });
    eprintln!("interface deleted under traffic: a -> b {to_b}; a -> c {to_c}");
    assert!(to_b.contains(" 0% packet loss"), "{to_b}");
    assert!(lab.running(d), "the daemon died");
    lab.wait_log("d", "interface disappeared", Duration::from_secs(2));
    let port = port_stats(&lab, &veth).expect("the port is still listed");
    assert_eq!(port["state"], "gone", "{port}");
    // Cleaned up as usual: removed, then created again under the same name and address.
    lab.cli_ok(&["container", "rm", &c]);
    assert!(!std::path::Path::new("/run/netns").join(&c).exists());
    let veths = lab.exec_ok("sw", &["ip", "-o", "link", "show", "type", "veth"]);
    assert_eq!(veths.lines().count(), 2, "{veths}");
    lab.container("c", &["--ip", "172.17.0.4"]);
    lab.ping_ok("a", "172.17.0.4");
    lab.ping_ok("a", "172.17.0.3");
}

/// A container's namespace removed (`ip netns del`) while `a` pings it and another container:
/// the daemon rebuilds it (the reaper's self-healing) with the same address and MAC, `a` and `b`
/// lose nothing, and how many pings the removed one missed is measured.
#[test]
fn a_namespace_removed_under_traffic_is_rebuilt_and_the_others_keep_forwarding() {
    let mut lab = Lab::new("rnd");
    let mac = std::sync::Mutex::new(String::new());
    let (d, to_b, to_c, c, _) = fault_under_traffic(&mut lab, 500, |lab, c, _| {
        *mac.lock().unwrap() = lab.mac("c", "eth0");
        must(&["ip", "netns", "del", c]);
    });
    eprintln!("namespace removed under traffic: a -> b {to_b}; a -> c (rebuilt) {to_c}");
    assert!(to_b.contains(" 0% packet loss"), "{to_b}");
    assert!(lab.running(d), "the daemon died");
    lab.wait_log("d", "rebuilding it", Duration::from_secs(5));
    wait_for("the namespace rebuilt", || {
        std::path::Path::new("/run/netns")
            .join(&c)
            .exists()
            .then_some(())
    });
    lab.ping_ok("a", "172.17.0.4");
    assert_eq!(lab.mac("c", "eth0"), *mac.lock().unwrap(), "same MAC");
    // One veth per container: the old one went with its namespace or was removed.
    let veths = lab.exec_ok("sw", &["ip", "-o", "link", "show", "type", "veth"]);
    assert_eq!(veths.lines().count(), 3, "{veths}");
}

/// A UDP flood from the world at a published port (trafgen, random spoofed sources, answered
/// by the server): the connection table stays at its bound by evicting, a flow that was
/// established before keeps echoing and new flows still get answers; the rates are printed.
#[test]
fn a_udp_flood_at_a_published_port_leaves_real_flows_working() {
    let (mut lab, _servers) = published("rud", "5353:53/udp", |s, srv| s.udp(srv, 53));
    let out = lab.ns("out");
    let t = Duration::from_secs(2);
    let established = probe::udp_socket(&out);
    wait_for("a first echo", || {
        probe::udp_echo(&established, UPLINK_IP, 5353, t).then_some(())
    });
    // "ping" from 10.200.x.x:random to 192.0.2.10:5353.
    let f = flood_from_outside(
        &mut lab,
        "0x45, 0x00, c16(32), drnd(2), c16(0x4000), 64, 17, csumip(14, 33), 10, 200, drnd(2), \
         192, 0, 2, 10, drnd(2), c16(5353), c16(12), csumudp(14, 34), 0x70, 0x69, 0x6e, 0x67, \
         fill(0x00, 14)",
        || {
            let fresh = probe::udp_socket(&out);
            (
                probe::udp_echo(&fresh, UPLINK_IP, 5353, t),
                probe::udp_echo(&established, UPLINK_IP, 5353, t),
            )
        },
    );
    eprintln!(
        "udp flood: {} datagrams in {:?} ({:.0}/s offered); conntrack {} entries (max 2048), \
         {} created, {} evicted; during it: {}/{} new flows answered, {}/{} echoes on the \
         established one",
        f.sent,
        f.time,
        f.sent as f64 / f.time.as_secs_f64(),
        f.entries,
        f.created,
        f.evicted,
        f.fresh,
        f.tries,
        f.kept,
        f.tries
    );
    assert!(probe::udp_echo(&established, UPLINK_IP, 5353, t));
    assert!(probe::udp_echo(
        &probe::udp_socket(&out),
        UPLINK_IP,
        5353,
        t
    ));
}
