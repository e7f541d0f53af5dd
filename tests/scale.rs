//! Many containers on one daemon (issue 17): a daemon started with a small soft limit on open
//! files still serves 150 containers (about 3 descriptors each), which ping each other across the
//! range, and removing them all leaves nothing behind. bench/scale.sh measures 1,000 (times,
//! memory); this keeps the count small enough for the suite.

mod common;

use common::*;

const N: usize = 150;

#[test]
fn a_hundred_and_fifty_containers_on_a_small_open_files_limit() {
    let mut lab = Lab::new("sc");
    // 256 open files soft (below what N containers hold), the hard limit left high: the daemon
    // raises its soft limit to the hard one, as dockerd does; else it stops near 80 containers.
    let hard = run(&["sh", "-c", "ulimit -Hn"]);
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_string();
    assert!(
        hard == "unlimited" || hard.parse::<usize>().unwrap() >= 4 * N,
        "the hard limit ({hard}) leaves no room"
    );
    let mut args = vec!["prlimit".to_string(), format!("--nofile=256:{hard}")];
    args.extend(lab.daemon_command(&[]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.spawn("sw", "d", &args);
    lab.wait_log("d", "daemon ready", std::time::Duration::from_secs(20));
    assert!(
        lab.log("d", "err").contains("raised the open files limit"),
        "{}",
        lab.log("d", "err")
    );
    let names: Vec<String> = (0..N)
        .map(|i| lab.container(&format!("c{i}"), &[]))
        .collect();
    // Addresses in creation order from 172.17.0.2: first and last, and across the middle.
    let last = format!("172.17.0.{}", N + 1);
    lab.ping_ok("c0", &last);
    lab.ping_ok(&format!("c{}", N - 1), "172.17.0.2");
    lab.ping_ok(&format!("c{}", N / 2), &format!("172.17.0.{}", N / 3 + 2));
    let ls = lab.cli_ok(&["container", "ls"]);
    assert_eq!(ls.lines().count(), N + 1, "a header and every container");

    let mut rm = vec!["container", "rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    lab.cli_ok(&rm);
    assert_eq!(lab.cli_ok(&["container", "ls"]).lines().count(), 1);
    let left = run(&["ip", "netns", "list"]);
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !names
            .iter()
            .any(|n| left.lines().any(|l| l.split(' ').next() == Some(n))),
        "namespaces left: {left}"
    );
    let ports = lab.cli_ok(&["stats"]);
    assert_eq!(
        ports.lines().filter(|l| l.contains(" up ")).count(),
        1,
        "only the network's host port is left: {ports}"
    );
}
