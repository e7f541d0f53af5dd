//! Docker's network modes for lightweight containers: none, host and container:OTHER.

mod common;

use std::time::Duration;

use common::probe::Servers;
use common::*;

#[test]
fn none_host_and_container_modes() {
    let mut lab = Lab::new("md");
    let d = lab.daemon("d", &[]);

    // none: a namespace with only lo, up.
    let lonely = lab.container("lonely", &["--network", "none"]);
    let links = lab.exec_ok("lonely", &["ip", "-o", "link", "show"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    assert_eq!(
        lab.inspect("container", &lonely)["HostConfig"]["NetworkMode"],
        "none"
    );

    // host: no namespace of its own; exec runs in the daemon's namespace.
    let hosted = lab.adopt("hosted");
    lab.cli_ok(&["container", "create", &hosted, "--network", "host"]);
    let seen = lab.cli_ok(&[
        "container",
        "exec",
        &hosted,
        "--",
        "ip",
        "-o",
        "link",
        "show",
    ]);
    assert!(
        seen.contains("switchyard0"),
        "the daemon's interfaces: {seen}"
    );
    let i = lab.inspect("container", &hosted);
    assert_eq!(i["HostConfig"]["NetworkMode"], "host");
    assert!(i["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap()
        .starts_with("/proc/"));
    assert!(!std::path::Path::new(&format!("/run/netns/{hosted}")).exists());
    let out = lab.cli(&["container", "create", "x", "--network", "host", "-p", "80"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not possible with --network host"), "{err}");

    // container:OTHER: the same interfaces and addresses; reach OTHER on 127.0.0.1.
    let web = lab.container("web", &[]);
    let side = lab.adopt("side");
    let mode = format!("container:{web}");
    lab.cli_ok(&["container", "create", &side, "--network", &mode]);
    let mut servers = Servers::new();
    servers.tcp(&web, 7000);
    let addr = lab.cli_ok(&[
        "container",
        "exec",
        &side,
        "--",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(addr.contains("172.17.0.2/16"), "web's address: {addr}");
    let nc = lab.cli(&[
        "container",
        "exec",
        &side,
        "--",
        "nc",
        "-z",
        "-w",
        "2",
        "127.0.0.1",
        "7000",
    ]);
    assert!(nc.status.success(), "side reaches web on 127.0.0.1");
    assert_eq!(
        lab.inspect("container", &side)["HostConfig"]["NetworkMode"],
        mode.as_str()
    );
    let out = lab.cli(&["network", "connect", "bridge", &side]);
    assert_eq!(out.status.code(), Some(2));

    // Modes survive a restart.
    lab.kill_9(d);
    lab.daemon("d2", &[]);
    assert_eq!(
        lab.inspect("container", &side)["HostConfig"]["NetworkMode"],
        mode.as_str()
    );
    let nc = lab.cli(&[
        "container",
        "exec",
        &side,
        "--",
        "nc",
        "-z",
        "-w",
        "2",
        "127.0.0.1",
        "7000",
    ]);
    assert!(nc.status.success(), "after a restart too");

    // Removing OTHER while a joiner exists is refused unless --force; then, as in Docker, the
    // joiner stays in the namespace with only lo (and the host name it had).
    drop(servers);
    let out = lab.cli(&["container", "rm", &web]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&side), "names the joiner: {err}");
    let hostname = lab.cli_ok(&["container", "exec", &side, "--", "hostname"]);
    lab.cli_ok(&["container", "rm", "--force", &web]);
    let ls = lab.cli_ok(&["container", "ls"]);
    assert!(!ls.contains(&web) && ls.contains(&side), "{ls}");
    let links = lab.cli_ok(&["container", "exec", &side, "--", "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
    assert!(links.contains(": lo:"), "{links}");
    assert_eq!(
        lab.cli_ok(&["container", "exec", &side, "--", "hostname"]),
        hostname
    );
    assert!(!std::path::Path::new(&format!("/run/netns/{web}")).exists());
    assert!(std::path::Path::new(&format!("/run/netns/{side}")).exists());
    assert_eq!(
        lab.inspect("container", &side)["HostConfig"]["NetworkMode"],
        "none"
    );
    lab.cli_ok(&["container", "rm", &side, &hosted, &lonely]);
    assert!(!std::path::Path::new(&format!("/run/netns/{side}")).exists());
    assert!(!std::path::Path::new(&format!("/run/netns/{lonely}")).exists());
}

#[test]
fn attach_existing_namespaces_by_name_and_by_pid() {
    let mut lab = Lab::new("at");
    let d = lab.daemon("d", &[]);
    lab.container("web", &["--ip", "172.17.0.2"]);

    // By name: a namespace someone else made, plugged in as eth1 (pipework's default).
    let ext = lab.adopt("ext");
    must(&["ip", "netns", "add", &ext]);
    lab.cli_ok(&[
        "attach",
        "--network",
        "bridge",
        "--netns",
        &ext,
        "--ip",
        "172.17.0.50",
    ]);
    let a = lab.exec_ok("ext", &["ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(a.contains("172.17.0.50/16"), "{a}");
    lab.ping_ok("web", "172.17.0.50");
    assert!(lab
        .cli_ok(&["container", "ls"])
        .contains(&format!("netns-{ext}")));
    // Attachments persist and come back after kill -9.
    lab.kill_9(d);
    lab.daemon("d2", &[]);
    lab.ping_ok("web", "172.17.0.50");
    lab.cli_ok(&["detach", "--network", "bridge", "--netns", &ext]);
    assert!(!lab
        .exec("ext", &["ip", "link", "show", "eth1"])
        .status
        .success());
    assert!(
        std::path::Path::new(&format!("/run/netns/{ext}")).exists(),
        "never deleted"
    );

    // By PID: a process in a namespace of its own; the attachment ends with the process.
    let mut proc_ = std::process::Command::new("unshare")
        .args(["--net", "sleep", "600"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = proc_.id().to_string();
    lab.cli_ok(&[
        "attach",
        "--network",
        "bridge",
        "--pid",
        &pid,
        "--ip",
        "172.17.0.60",
        "--ifname",
        "sy0",
    ]);
    let a = must(&[
        "nsenter", "-t", &pid, "-n", "ip", "-o", "-4", "addr", "show", "sy0",
    ]);
    assert!(a.contains("172.17.0.60/16"), "{a}");
    lab.ping_ok("web", "172.17.0.60");
    let _ = proc_.kill();
    let _ = proc_.wait();
    let start = std::time::Instant::now();
    while lab
        .cli_ok(&["container", "ls"])
        .contains(&format!("pid-{pid}"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "attachment outlived its namespace"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its address went back to the pool.
    lab.container("again", &["--ip", "172.17.0.60"]);

    // Bad input.
    for (args, msg) in [
        (
            vec!["attach", "--network", "bridge", "--netns", "nope-such-ns"],
            "no network namespace named",
        ),
        (
            vec!["attach", "--network", "ghost", "--netns", &ext],
            "no such network",
        ),
        (
            vec!["detach", "--network", "bridge", "--netns", &ext],
            "is not attached",
        ),
    ] {
        let out = lab.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn a_namespace_deleted_behind_the_daemons_back_is_rebuilt() {
    let mut lab = Lab::new("hl");
    lab.daemon("d", &[]);
    lab.container("web", &[]);
    let db = lab.container("db", &["--ip", "172.17.0.9"]);
    lab.ping_ok("web", "172.17.0.9");
    let mac = lab.mac("db", "eth0");
    must(&["ip", "netns", "del", &db]);
    let start = std::time::Instant::now();
    while !std::path::Path::new(&format!("/run/netns/{db}")).exists() {
        assert!(start.elapsed() < Duration::from_secs(5), "not rebuilt");
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.ping_ok("web", "172.17.0.9");
    assert_eq!(lab.mac("db", "eth0"), mac, "same MAC");
    lab.wait_log("d", "rebuilding it", Duration::from_secs(1));
}
