//! switchyard as a CNI plugin: the `switchyard` binary called as a runtime calls it (CNI_*
//! environment, configuration on stdin), against a real daemon in the lab's switch namespace
//! with an uplink toward an "outside" namespace (192.0.2.1; switchyard owns 192.0.2.10).
//! Containers are plain named namespaces, as a runtime would make them.

mod common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::probe::{self, Servers};
use common::*;
use serde_json::{json, Value};

const UPLINK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const T: Duration = Duration::from_secs(3);

/// An empty named namespace (what a runtime makes before ADD); returns its path.
fn sandbox(lab: &mut Lab, host: &str) -> String {
    let ns = lab.adopt(host);
    let _ = run(&["ip", "netns", "del", &ns]);
    must(&["ip", "netns", "add", &ns]);
    must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    format!("/run/netns/{ns}")
}

/// The network configuration switchyard gets on stdin, for network `pods` on the lab's daemon.
fn conf(lab: &Lab, version: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": "pods",
        "type": "switchyard",
        "subnet": "10.89.0.0/24",
        "socket": lab.socket(),
    });
    for (k, v) in extra.as_object().expect("an object") {
        c[k] = v.clone();
    }
    c
}

struct Call {
    ok: bool,
    out: Value,
    stderr: String,
}

/// Runs the plugin: `vars` are CNI_* without the prefix (`COMMAND`, `CONTAINERID`, ...).
fn cni(vars: &[(&str, &str)], stdin: &[u8]) -> Call {
    let mut cmd = Command::new(switchyard_bin());
    cmd.env_remove("SWITCHYARD_SOCKET")
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(format!("CNI_{k}"), v);
    }
    let mut child = cmd.spawn().expect("running switchyard as a plugin");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Call {
        ok: out.status.success(),
        out: if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
        },
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn call(command: &str, id: &str, netns: &str, args: &str, conf: &Value) -> Call {
    let mut vars = vec![
        ("COMMAND", command),
        ("CONTAINERID", id),
        ("IFNAME", "eth0"),
    ];
    if !netns.is_empty() {
        vars.push(("NETNS", netns));
    }
    if !args.is_empty() {
        vars.push(("ARGS", args));
    }
    cni(&vars, &serde_json::to_vec(conf).unwrap())
}

fn ok(c: Call) -> Value {
    assert!(c.ok, "plugin failed: {} {}", c.out, c.stderr);
    c.out
}

/// The error code of a failed call, after checking its shape.
fn code(c: Call) -> u64 {
    assert!(!c.ok, "the call should have failed: {}", c.out);
    let msg = c.out["msg"].as_str().unwrap_or_default();
    assert!(!msg.is_empty(), "an error says why: {}", c.out);
    assert!(c.out["cniVersion"].is_string(), "{}", c.out);
    assert!(
        c.stderr.contains(msg),
        "stderr repeats the message: {}",
        c.stderr
    );
    c.out["code"].as_u64().expect("a numeric code")
}

#[test]
fn add_check_del_as_a_runtime_calls_them() {
    let (mut lab, d) = Lab::uplinked("cn");
    let one = sandbox(&mut lab, "one");
    let two = sandbox(&mut lab, "two");
    let c04 = conf(&lab, "0.4.0", json!({}));

    // VERSION needs no daemon and lists what switchyard speaks.
    let v = ok(cni(&[("COMMAND", "VERSION")], br#"{"cniVersion":"1.0.0"}"#));
    assert_eq!(v["cniVersion"], "1.0.0");
    assert!(v["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("1.1.0")));

    // ADD: the network is created from the configuration's subnet on first use.
    let r = ok(call(
        "ADD",
        "pod-1",
        &one,
        "IgnoreUnknown=1;K8S_POD_NAME=one",
        &c04,
    ));
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(
        r["ips"][0]["version"], "4",
        "0.4.0 results say the IP version"
    );
    assert_eq!(r["ips"][0]["address"], "10.89.0.2/24");
    assert_eq!(r["ips"][0]["gateway"], "10.89.0.1");
    assert_eq!(r["interfaces"][1]["name"], "eth0");
    assert_eq!(r["interfaces"][1]["sandbox"], one.as_str());
    assert_eq!(r["routes"][0]["gw"], "10.89.0.1");
    assert_eq!(r["dns"]["nameservers"], json!(["10.89.0.1"]));
    let mac = lab.mac("one", "eth0");
    assert_eq!(r["interfaces"][1]["mac"], mac.as_str());
    let net = lab.inspect("network", "pods");
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.89.0.0/24");
    let addr = lab.exec_ok("one", &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains("10.89.0.2/24"), "{addr}");
    let route = lab.exec_ok("one", &["ip", "route", "show", "default"]);
    assert!(route.contains("via 10.89.0.1 dev eth0"), "{route}");

    // Pinned address (CNI_ARGS IP=), MAC (runtimeConfig.mac), a published port, 1.0.0 result.
    let c10 = conf(
        &lab,
        "1.0.0",
        json!({"runtimeConfig": {
            "mac": "02:42:0a:59:00:32",
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}],
            "aliases": {"pods": ["two", "web"]}
        }}),
    );
    let r = ok(call("ADD", "pod-2", &two, "IP=10.89.0.50", &c10));
    assert!(
        r["ips"][0].get("version").is_none(),
        "1.0.0 has no IP version: {r}"
    );
    assert_eq!(r["ips"][0]["address"], "10.89.0.50/24");
    assert_eq!(lab.mac("two", "eth0"), "02:42:0a:59:00:32");
    lab.ping_ok("one", "10.89.0.50");
    lab.ping_ok("two", "10.89.0.2");
    lab.ping_ok("two", "10.89.0.1");
    let mut servers = Servers::new();
    servers.tcp_whoami(&lab.ns("two"), 80);
    let seen = wait_for("published 8080", || {
        probe::whoami(&lab.ns("out"), UPLINK_IP, 8080, T)
    });
    assert!(seen.starts_with("192.0.2.1:"), "the container saw {seen}");
    // runtimeConfig.aliases are names on the network's resolver (the gateway, as the result's
    // dns says).
    for name in ["two", "web"] {
        let answer = lab.exec_ok("one", &["dig", "+short", "+time=2", "@10.89.0.1", name]);
        assert_eq!(answer.trim(), "10.89.0.50", "{name}");
    }
    let endpoints = lab.cli_ok(&["container", "inspect", "pod-2"]);
    assert!(endpoints.contains("attached:"), "{endpoints}");

    // CHECK: fine as added; the interface down is found; unknown containers are code 3.
    let prev = |c: &Value, r: &Value| {
        let mut c = c.clone();
        c["prevResult"] = r.clone();
        c
    };
    let c10_prev = prev(&c10, &r);
    ok(call("CHECK", "pod-2", &two, "", &c10_prev));
    lab.exec_ok("two", &["ip", "link", "set", "eth0", "down"]);
    let broken = call("CHECK", "pod-2", &two, "", &c10_prev);
    assert!(
        broken.out["msg"].as_str().unwrap().contains("eth0 is down"),
        "{}",
        broken.out
    );
    assert_eq!(code(broken), 100);
    lab.exec_ok("two", &["ip", "link", "set", "eth0", "up"]);
    assert_eq!(code(call("CHECK", "nobody", &two, "", &c10_prev)), 3);

    // Refusals by the daemon: the interface exists, the address is taken.
    let three = sandbox(&mut lab, "three");
    lab.exec_ok(
        "three",
        &[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
        ],
    );
    let exists = call("ADD", "pod-3", &three, "", &c04);
    assert!(
        exists.out["msg"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{}",
        exists.out
    );
    assert_eq!(code(exists), 101);
    lab.exec_ok("three", &["ip", "link", "del", "eth0"]);
    let taken = call("ADD", "pod-3", &three, "IP=10.89.0.50", &c04);
    assert!(
        taken.out["msg"].as_str().unwrap().contains("10.89.0.50"),
        "{}",
        taken.out
    );
    assert_eq!(code(taken), 101);
    let port = call(
        "ADD",
        "pod-3",
        &three,
        "",
        &conf(
            &lab,
            "1.0.0",
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 81}]}}),
        ),
    );
    assert_eq!(code(port), 101, "host port 8080 is c2's");
    assert!(
        !lab.cli_ok(&["container", "ls"]).contains("pod-3"),
        "a refused ADD leaves nothing"
    );

    // kill -9 and a new daemon: the attachments are state; CHECK and DEL still work.
    lab.kill_9(d);
    assert_eq!(
        code(call("ADD", "pod-3", &three, "", &c04)),
        11,
        "daemon down: try again later"
    );
    lab.uplink_daemon("d2");
    lab.ping_ok("one", "10.89.0.50");
    ok(call("CHECK", "pod-2", &two, "", &c10_prev));

    // DEL: removes the interface, the address and the published port; repeating it, or a DEL
    // without CNI_NETNS for a container switchyard never saw, succeeds too.
    assert_eq!(ok(call("DEL", "pod-2", &two, "", &c10_prev)), Value::Null);
    let links = lab.exec_ok("two", &["ip", "-o", "link"]);
    assert!(!links.contains("eth0"), "{links}");
    assert!(probe::whoami(&lab.ns("out"), UPLINK_IP, 8080, Duration::from_millis(500)).is_none());
    ok(call("DEL", "pod-2", &two, "", &c10_prev));
    ok(call("DEL", "never", "", "", &c10));
    // The address is free again.
    let r = ok(call("ADD", "pod-3", &three, "IP=10.89.0.50", &c04));
    assert_eq!(r["ips"][0]["address"], "10.89.0.50/24");
    ok(call("DEL", "pod-3", &three, "", &c04));
    ok(call("DEL", "pod-1", "", "", &c04));
    let state = lab.cli_ok(&["container", "ls"]);
    assert!(
        !state.contains("pod-1") && !state.contains("pod-3"),
        "{state}"
    );
    let sw = lab.exec_ok("sw", &["ip", "-o", "link"]);
    assert!(
        !sw.contains("veth"),
        "no veth left in the daemon's namespace: {sw}"
    );
}

#[test]
fn gc_status_and_error_codes() {
    let (mut lab, d) = Lab::uplinked("cg");
    let a = sandbox(&mut lab, "a");
    let b = sandbox(&mut lab, "b");
    let c11 = conf(&lab, "1.1.0", json!({}));
    ok(cni(
        &[("COMMAND", "STATUS")],
        &serde_json::to_vec(&c11).unwrap(),
    ));
    let r = ok(call("ADD", "pod-a", &a, "", &c11));
    assert!(
        r["interfaces"][1]["mtu"].is_u64(),
        "1.1.0 interfaces carry the MTU: {r}"
    );
    // containerd and CRI-O name namespaces under /var/run/netns (a link to /run).
    let var_b = b.replacen("/run/", "/var/run/", 1);
    ok(call("ADD", "pod-b", &var_b, "", &c11));
    lab.ping_ok("b", "10.89.0.2");
    // Attachments made otherwise (switchyard attach) are not this configuration's to collect.
    let other = sandbox(&mut lab, "o");
    lab.cli_ok(&["attach", "--network", "pods", "--netns", &other]);

    // GC keeps the valid attachments and removes the others of this configuration.
    let mut gc = c11.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "pod-a", "ifname": "eth0"}]);
    ok(cni(&[("COMMAND", "GC")], &serde_json::to_vec(&gc).unwrap()));
    let ls = lab.cli_ok(&["container", "ls"]);
    assert!(ls.contains("pod-a") && !ls.contains("pod-b"), "{ls}");
    assert!(ls.contains(&format!("netns-{}", lab.ns("o"))), "{ls}");
    lab.ping_ok("a", "10.89.0.1");

    // Error codes, each as a runtime would meet it.
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    let add = |netns: &str, args: &str, c: &Value| call("ADD", "pod-x", netns, args, c);
    let c04 = conf(&lab, "0.4.0", json!({}));
    assert_eq!(code(add(&b, "", &conf(&lab, "0.2.0", json!({})))), 1);
    assert_eq!(
        code(cni(&[("COMMAND", "GC")], &bytes(&c04))),
        1,
        "GC is 1.1.0"
    );
    assert_eq!(
        code(add(
            &b,
            "",
            &conf(&lab, "1.0.0", json!({"ipam": {"type": "host-local"}}))
        )),
        2
    );
    assert_eq!(code(add(&b, "FOO=1", &c04)), 2);
    assert_eq!(code(call("CHECK", "nobody", &b, "", &c04)), 3);
    assert_eq!(code(add("", "", &c04)), 4, "ADD without CNI_NETNS");
    assert_eq!(code(call("ADD", "-bad", &b, "", &c04)), 4);
    assert_eq!(
        code(cni(
            &[
                ("COMMAND", "ADD"),
                ("CONTAINERID", "pod-x"),
                ("NETNS", &b),
                ("IFNAME", "eth0")
            ],
            b"{not json"
        )),
        6
    );
    assert_eq!(
        code(add(
            &b,
            "",
            &conf(&lab, "1.0.0", json!({"subnet": null, "network": "nowhere"}))
        )),
        7
    );
    assert_eq!(
        code(add(
            &b,
            "",
            &conf(&lab, "1.0.0", json!({"subnet": "10.90.0.0/24"}))
        )),
        7,
        "pods has another subnet"
    );
    assert_eq!(
        code(cni(
            &[("COMMAND", "STATUS")],
            &bytes(&conf(
                &lab,
                "1.1.0",
                json!({"subnet": null, "network": "nowhere"})
            ))
        )),
        50
    );
    assert!(
        !lab.cli_ok(&["container", "ls"]).contains("pod-x"),
        "no error left anything"
    );
    lab.stop(d);
    assert_eq!(code(cni(&[("COMMAND", "STATUS")], &bytes(&c11))), 51);
    assert_eq!(code(call("DEL", "pod-a", &a, "", &c11)), 11);
}

/// Debian's podman 4.3 with its CNI backend: its own storage, run and config directories under
/// the lab's, a conflist whose plugin is switchyard (a symlink named as the plugin type), an
/// image imported from Debian's busybox-static. Everything it made is removed on drop.
struct Podman {
    dir: std::path::PathBuf,
}

/// Flags this machine needs for every `podman run` (rlimits podman cannot raise otherwise).
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=32768:32768",
];

impl Podman {
    /// Sets podman up to use network `pods` of the lab's daemon through the CNI plugin.
    fn new(lab: &Lab) -> Podman {
        let dir = lab.dir.join("podman");
        let plugins = dir.join("plugins");
        let netd = dir.join("net.d");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::create_dir_all(&netd).unwrap();
        std::os::unix::fs::symlink(switchyard_bin(), plugins.join("switchyard")).unwrap();
        let conflist = json!({
            "cniVersion": "0.4.0",
            "name": "pods",
            "plugins": [{
                "type": "switchyard",
                "subnet": "10.89.0.0/24",
                "socket": lab.socket(),
                "capabilities": {"portMappings": true, "aliases": true, "ips": true, "mac": true}
            }]
        });
        std::fs::write(netd.join("pods.conflist"), conflist.to_string()).unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n",
                plugins.display(),
                netd.display()
            ),
        )
        .unwrap();
        let podman = Podman { dir };
        let rootfs = busybox_rootfs(&podman.dir);
        let tar = podman.dir.join("rootfs.tar");
        must(&[
            "tar",
            "-C",
            &rootfs.display().to_string(),
            "-cf",
            &tar.display().to_string(),
            ".",
        ]);
        podman.ok(&["import", &tar.display().to_string(), "localhost/busybox"]);
        podman
    }

    fn command(&self, args: &[&str]) -> Command {
        let d = |sub: &str| self.dir.join(sub).display().to_string();
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .args([
                "--root",
                &d("root"),
                "--runroot",
                &d("run"),
                "--tmpdir",
                &d("tmp"),
            ])
            .args(["--storage-driver", "vfs", "--network-backend", "cni"])
            .args(["--cni-config-dir", &d("net.d")])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman {args:?}: {e}"))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `podman run -d --network pods ARGS... localhost/busybox CMD...`.
    fn start(&self, name: &str, extra: &[&str], cmd: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name, "--network", "pods"];
        args.extend_from_slice(&ULIMITS);
        args.extend_from_slice(extra);
        args.push("localhost/busybox");
        args.extend_from_slice(cmd);
        self.ok(&args);
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", name, "--format", format])
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["system", "reset", "-f"]);
        // A podman that failed half-way may leave conmon behind, and mounts below its roots.
        kill_processes_naming(&self.dir);
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn podman_containers_on_a_switchyard_network() {
    let (mut lab, d) = Lab::uplinked("cp");
    let podman = Podman::new(&lab);
    podman.start(
        "web",
        &["-p", "8080:80"],
        &["httpd", "-f", "-vv", "-p", "80"],
    );
    podman.start("db", &[], &["sleep", "1000"]);
    let ip = |name: &str| podman.inspect(name, "{{.NetworkSettings.Networks.pods.IPAddress}}");
    let (web_ip, db_ip) = (ip("web"), ip("db"));
    assert!(
        web_ip.starts_with("10.89.0.") && db_ip.starts_with("10.89.0."),
        "{web_ip} {db_ip}"
    );
    let sandboxes = [
        podman.inspect("web", "{{.NetworkSettings.SandboxKey}}"),
        podman.inspect("db", "{{.NetworkSettings.SandboxKey}}"),
    ];

    // The two containers reach each other by address, through the switch.
    podman.ok(&["exec", "db", "ping", "-c", "1", "-W", "2", &web_ip]);
    podman.ok(&["exec", "web", "ping", "-c", "1", "-W", "2", &db_ip]);
    // And by name: podman's container name (CNI_ARGS K8S_POD_NAME) and its aliases (the short
    // ID) are the interface's aliases, which the network's resolver on the gateway answers.
    let short = podman.inspect("web", "{{.Id}}")[..12].to_string();
    for name in ["web", short.as_str()] {
        let ping = podman.ok(&["exec", "db", "ping", "-c", "1", "-W", "2", name]);
        assert!(ping.contains(&format!("({web_ip})")), "{name}: {ping}");
    }
    let ping = podman.ok(&["exec", "web", "ping", "-c", "1", "-W", "2", "db"]);
    assert!(ping.contains(&format!("({db_ip})")), "{ping}");
    let ls = lab.cli_ok(&["container", "ls"]);
    assert!(ls.contains(&web_ip) && ls.contains(&db_ip), "{ls}");

    // -p 8080:80 from outside, with the client's own address seen inside.
    wait_for("published port 8080", || http_get(&lab));
    // busybox httpd logs to stderr, which `podman logs` keeps apart.
    let out = podman.run(&["logs", "web"]);
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(logs.contains("192.0.2.1]:"), "httpd saw: {logs}");

    // kill -9 the daemon while the containers run: forwarding stops, and a new daemon restores
    // their traffic from the state (veths and namespaces outlived the process).
    lab.kill_9(d);
    assert!(
        http_get(&lab).is_none(),
        "nothing is forwarded while the daemon is down"
    );
    lab.uplink_daemon("d2");
    wait_for("port after restart", || http_get(&lab));
    podman.ok(&["exec", "db", "ping", "-c", "1", "-W", "2", "web"]);

    // podman rm leaves nothing behind: no attachment, no address, no veth, no namespace.
    podman.ok(&["rm", "-f", "-t", "0", "web", "db"]);
    let ls = lab.cli_ok(&["container", "ls"]);
    assert!(!ls.contains("10.89.0."), "{ls}");
    let net = lab.inspect("network", "pods");
    assert_eq!(net["Containers"], json!({}), "{net}");
    let links = lab.exec_ok("sw", &["ip", "-o", "link"]);
    assert!(!links.contains("veth"), "{links}");
    for s in &sandboxes {
        assert!(!std::path::Path::new(s).exists(), "{s} is still there");
    }
    assert!(
        http_get(&lab).is_none(),
        "the published port went with the container"
    );
}

/// `GET /` from the outside namespace to port 8080 of the uplink address: the answer, if any.
fn http_get(lab: &Lab) -> Option<String> {
    let out = lab.exec(
        "out",
        &[
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 192.0.2.10 8080",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.starts_with("HTTP/1.").then_some(text)
}
