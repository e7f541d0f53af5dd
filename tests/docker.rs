//! switchyard as the network driver of a real dockerd (Debian's docker.io 20.10). Each test has its
//! own lab: a switch namespace where `switchyard daemon --docker-plugin=...` runs with an uplink
//! toward an "outside" namespace (192.0.2.1; switchyard owns 192.0.2.10), and a dockerd in the same
//! namespace (see `common/docker.rs`) with its own roots. The plugin socket is unique to the test,
//! so the driver's name is too (`-d sy-<tag>`).

mod common;

use std::time::{Duration, Instant};

use common::docker::Dockerd;
use common::*;

struct Setup {
    // Field order is drop order: dockerd first (its containers leave through the plugin), then
    // the socket file, then the lab (the daemon, the namespaces).
    docker: Dockerd,
    plugin: PluginSocket,
    lab: Lab,
    /// The lab's index of the running switchyard daemon.
    daemon: usize,
}

/// Removes the plugin socket a killed daemon leaves behind.
struct PluginSocket(String);

impl Drop for PluginSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Setup {
    fn new(short: &str) -> Setup {
        let mut lab = Lab::new(short);
        lab.host("out", "192.0.2.1/24");
        let plugin = PluginSocket(format!("/run/docker/plugins/sy-{}.sock", lab.tag));
        let daemon = start_daemon(&mut lab, &plugin.0, "d");
        let docker = Dockerd::start(&lab, "sw");
        docker.import_busybox();
        Setup {
            docker,
            plugin,
            lab,
            daemon,
        }
    }

    /// `kill -9` of the switchyard daemon; returns once it is gone.
    fn kill_daemon(&mut self) {
        self.lab.signal(self.daemon, libc::SIGKILL);
        while self.lab.running(self.daemon) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn start_daemon(&mut self, label: &str) {
        self.daemon = start_daemon(&mut self.lab, &self.plugin.0, label);
    }

    /// The driver's name: the socket's file name.
    fn driver(&self) -> String {
        format!("sy-{}", self.lab.tag)
    }

    fn network(&self, name: &str, opts: &[&str]) {
        let driver = self.driver();
        let mut args = vec!["network", "create", "-d", driver.as_str()];
        args.extend_from_slice(opts);
        args.push(name);
        self.docker.ok(&args);
    }

    /// An HTTP GET from the outside namespace to the uplink address; the answer's first line.
    fn get_from_outside(&self, port: u16) -> String {
        let script =
            format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 192.0.2.10 {port} | head -1");
        let out = self.lab.exec("out", &["sh", "-c", &script]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn plugin_call(&self, call: &str, body: &str) -> (String, String) {
        let out = run(&[
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            &self.plugin.0,
            "-X",
            "POST",
            "-d",
            body,
            &format!("http://plugin/{call}"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
        (code.to_string(), body.to_string())
    }
}

fn start_daemon(lab: &mut Lab, plugin: &str, label: &str) -> usize {
    let docker_api = Dockerd::socket_of(lab);
    lab.daemon_uplinked(
        label,
        &[
            &format!("--docker-plugin={plugin}"),
            &format!("--docker-api={}", docker_api.display()),
        ],
    )
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pings(docker: &Dockerd, from: &str, to: &str) -> bool {
    docker
        .exec(from, &["ping", "-c", "1", "-W", "2", to])
        .status
        .success()
}

/// Interfaces in the switch namespace that belong to endpoints (host ends and handed-off ends).
fn endpoint_links(lab: &Lab) -> Vec<String> {
    lab.exec_ok("sw", &["ip", "-o", "link"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with("veth") || n.starts_with("syc"))
        .collect()
}

#[test]
fn docker_containers_talk_by_name_publish_ports_and_leave_nothing() {
    let s = Setup::new("dk");
    let d = &s.docker;
    s.network("mynet", &["--subnet", "10.231.0.0/24"]);
    let net_id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "mynet"]);
    d.run("c1", &["--network", "mynet"], &["sleep", "1000"]);
    d.run(
        "web",
        &["--network", "mynet", "-p", "8080:80"],
        &["httpd", "-f", "-vv", "-p", "80"],
    );
    let (web_ip, web_ep) = d.endpoint("web", "mynet");
    assert!(web_ip.starts_with("10.231.0."), "{web_ip}");

    // By address, and by name through Docker's own resolver.
    eventually("c1 pings web's address", || pings(d, "c1", &web_ip));
    assert!(pings(d, "c1", "web"));
    // The default route is the network's gateway: switchyard's host port.
    let route = d.exec("c1", &["ip", "route"]);
    assert!(String::from_utf8_lossy(&route.stdout).contains("default via 10.231.0.1"));

    // switchyard shows Docker's network and endpoints.
    let nets = s.lab.cli_ok(&["network", "ls"]);
    assert!(nets.contains(&net_id[..12]), "{nets}");
    let ctrs = s.lab.cli_ok(&["container", "ls"]);
    assert!(
        ctrs.contains(&web_ep[..12]) && ctrs.contains(&web_ip),
        "{ctrs}"
    );
    // ... by Docker's names once read from dockerd's API (IDs until then).
    eventually("Docker's names in switchyard", || {
        let ctrs = s.lab.cli_ok(&["container", "ls"]);
        let web = ctrs.lines().find(|l| l.contains(&web_ip)).unwrap_or("");
        web.contains(" web ") && web.contains(" mynet ")
    });
    let nets = s.lab.cli_ok(&["network", "ls"]);
    assert!(nets.contains(" mynet "), "{nets}");
    let stats = s.lab.cli_ok(&["stats"]);
    assert!(
        stats.contains("web") && stats.contains("host:mynet"),
        "{stats}"
    );
    let topology = s.lab.cli_ok(&["topology"]);
    assert!(
        topology.contains("web") && topology.contains("mynet"),
        "{topology}"
    );

    // -p 8080:80 from outside, through the uplink; the container sees the client's address.
    eventually("outside reaches web:8080", || {
        s.get_from_outside(8080).starts_with("HTTP/1")
    });
    let logs = d.docker(&["logs", "web"]);
    let logs =
        String::from_utf8_lossy(&logs.stderr).into_owned() + &String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("192.0.2.1]:"), "web saw: {logs}");

    // -P: an ephemeral host port, which switchyard reports.
    d.run(
        "pub",
        &["--network", "mynet", "--expose", "90", "-P"],
        &["httpd", "-f", "-p", "90"],
    );
    let (_, pub_ep) = d.endpoint("pub", "mynet");
    let port_line = s.lab.cli_ok(&["port", &pub_ep[..12]]);
    let port: u16 = port_line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("switchyard port: {port_line}"));
    assert!(port >= 1024, "{port_line}");
    eventually("outside reaches pub's ephemeral port", || {
        s.get_from_outside(port).starts_with("HTTP/1")
    });

    // A taken host port: refused, with the reason in docker's own error.
    let err = d.fails(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "mynet",
        "-p",
        "8080:80",
        "local/busybox",
        "sleep",
        "100",
    ]);
    assert!(
        err.contains("8080") && err.contains("already published"),
        "{err}"
    );
    // The refused container left nothing (its endpoint was rolled back).
    d.ok(&["rm", "-f", "late"]);

    // A subnet switchyard already uses (its default network, 172.17.0.0/16): refused.
    let driver = s.driver();
    let err = d.fails(&[
        "network",
        "create",
        "-d",
        &driver,
        "--subnet",
        "172.17.5.0/24",
        "clash",
    ]);
    assert!(err.contains("overlaps"), "{err}");

    // Bad requests straight to the plugin socket: one-line {"Err": ...} answers.
    let (code, body) = s.plugin_call("NetworkDriver.CreateEndpoint", "{nonsense");
    assert_eq!(code, "400", "{body}");
    assert!(
        body.starts_with("{\"Err\":\"") && !body.contains("\\n"),
        "{body}"
    );
    let (code, body) = s.plugin_call("NetworkDriver.Fly", "{}");
    assert_eq!(code, "404", "{body}");
    assert!(body.contains("Err"), "{body}");
    let unknown = "ab".repeat(32);
    let (code, body) = s.plugin_call(
        "NetworkDriver.CreateEndpoint",
        &format!(
            r#"{{"NetworkID":"{unknown}","EndpointID":"{unknown}","Interface":{{"Address":"10.9.9.9/24"}}}}"#
        ),
    );
    assert_eq!(code, "200");
    assert!(body.contains("no such network"), "{body}");
    let (code, body) = s.plugin_call("Plugin.Activate", "");
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", r#"{"Implements":["NetworkDriver"]}"#)
    );

    // Stop and remove: no veth, no published port, no tracked connection, no endpoint remain.
    d.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(s.get_from_outside(8080), "", "stopped web still answers");
    d.ok(&["rm", "-f", "c1", "web", "pub"]);
    assert!(
        endpoint_links(&s.lab).is_empty(),
        "{:?}",
        endpoint_links(&s.lab)
    );
    let ctrs = s.lab.cli_ok(&["container", "ls"]);
    assert_eq!(ctrs.lines().count(), 1, "{ctrs}");
    let ct = s.lab.cli_ok(&["conntrack"]);
    assert!(!ct.contains("10.231.0."), "{ct}");
    d.ok(&["network", "rm", "mynet"]);
    let tap = format!("sy-{}", &net_id[..12]);
    let links = s.lab.exec_ok("sw", &["ip", "-o", "link"]);
    assert!(!links.contains(&tap), "{links}");
    assert!(!s.lab.cli_ok(&["network", "ls"]).contains(&net_id[..12]));
}

#[test]
fn dockers_network_options_isolate_as_on_docker0() {
    let s = Setup::new("dki");
    let d = &s.docker;
    s.network("iso", &["--subnet", "10.232.0.0/24", "-o", "icc=false"]);
    d.run("a1", &["--network", "iso"], &["sleep", "1000"]);
    d.run(
        "a2",
        &[
            "--network",
            "iso",
            "--ip",
            "10.232.0.50",
            "--mac-address",
            "02:42:0a:e8:00:32",
            "--expose",
            "80",
        ],
        &["httpd", "-f", "-p", "80"],
    );
    let (a2_ip, a2_ep) = d.endpoint("a2", "iso");
    let (_, a1_ep) = d.endpoint("a1", "iso");
    assert_eq!(a2_ip, "10.232.0.50");
    let mac = d.exec("a2", &["cat", "/sys/class/net/eth0/address"]);
    assert_eq!(
        String::from_utf8_lossy(&mac.stdout).trim(),
        "02:42:0a:e8:00:32"
    );
    // icc=false: containers do not reach each other; the gateway still answers.
    eventually("a1 reaches its gateway", || pings(d, "a1", "10.232.0.1"));
    assert!(!pings(d, "a1", "10.232.0.50"));
    let http = |from: &str| {
        d.exec(
            from,
            &[
                "sh",
                "-c",
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 10.232.0.50 80 | head -1",
            ],
        )
    };
    assert_eq!(String::from_utf8_lossy(&http("a1").stdout).trim(), "");
    // A link opens the child's exposed ports to the parent, nothing else.
    s.lab.cli_ok(&[
        "container",
        "link",
        &a1_ep[..12],
        &format!("{}:web", &a2_ep[..12]),
    ]);
    let seen = String::from_utf8_lossy(&http("a1").stdout)
        .trim()
        .to_string();
    assert!(seen.starts_with("HTTP/1"), "through the link: {seen:?}");
    assert!(!pings(d, "a1", "10.232.0.50"));
    // docker run --link: the same, read from Docker (which tells a driver about links only on
    // its default bridge network).
    d.run(
        "a3",
        &["--network", "iso", "--link", "a2:web"],
        &["sleep", "1000"],
    );
    eventually("a3 reaches a2:80 through its --link", || {
        String::from_utf8_lossy(&http("a3").stdout).starts_with("HTTP/1")
    });
    assert!(!pings(d, "a3", "10.232.0.50"));

    // --internal and -o mtu: a network with no way out, on its own MTU.
    s.network(
        "inner",
        &["--subnet", "10.233.0.0/24", "--internal", "-o", "mtu=1400"],
    );
    d.run("b1", &["--network", "inner"], &["sleep", "1000"]);
    d.run("b2", &["--network", "inner"], &["sleep", "1000"]);
    eventually("b1 pings b2 by name", || pings(d, "b1", "b2"));
    let route = d.exec("b1", &["ip", "route"]);
    let route = String::from_utf8_lossy(&route.stdout).into_owned();
    assert!(!route.contains("default"), "{route}");
    assert!(!pings(d, "b1", "192.0.2.1"));
    let mtu = d.exec("b1", &["cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(String::from_utf8_lossy(&mtu.stdout).trim(), "1400");
    // Docker itself publishes nothing on an internal network (it sends no port map): no way in.
    d.run(
        "b3",
        &["--network", "inner", "-p", "8081:80"],
        &["httpd", "-f", "-p", "80"],
    );
    let (_, b3_ep) = d.endpoint("b3", "inner");
    assert_eq!(s.lab.cli_ok(&["port", &b3_ep[..12]]).trim(), "");
    assert_eq!(s.get_from_outside(8081), "");
    d.ok(&["rm", "-f", "b3"]);

    // network connect / disconnect: a second interface, then gone again.
    d.ok(&["network", "connect", "inner", "a1"]);
    let (b2_ip, _) = d.endpoint("b2", "inner");
    eventually("a1 reaches b2 over its new interface", || {
        pings(d, "a1", &b2_ip)
    });
    let ctrs = s.lab.cli_ok(&["container", "ls"]);
    assert_eq!(
        ctrs.lines().count(),
        1 + 6,
        "a1 twice, a2, a3, b1, b2: {ctrs}"
    );
    d.ok(&["network", "disconnect", "inner", "a1"]);
    assert!(!pings(d, "a1", &b2_ip));
    let ctrs = s.lab.cli_ok(&["container", "ls"]);
    assert_eq!(ctrs.lines().count(), 1 + 5, "{ctrs}");
}

#[test]
fn running_containers_survive_restarts_of_switchyard_and_dockerd() {
    let mut s = Setup::new("dkr");
    s.network("mynet", &["--subnet", "10.234.0.0/24"]);
    s.docker
        .run("r1", &["--network", "mynet"], &["sleep", "1000"]);
    s.docker.run(
        "web",
        &["--network", "mynet", "-p", "8080:80"],
        &["httpd", "-f", "-p", "80"],
    );
    let (web_ip, _) = s.docker.endpoint("web", "mynet");
    let works = |s: &Setup, what: &str| {
        eventually(&format!("{what}: outside reaches web"), || {
            s.get_from_outside(8080).starts_with("HTTP/1")
        });
        eventually(&format!("{what}: r1 pings web"), || {
            pings(&s.docker, "r1", &web_ip)
        });
    };
    works(&s, "at first");

    // kill -9 of switchyard: nothing forwards, then a restart brings it all back.
    s.kill_daemon();
    assert_eq!(
        s.get_from_outside(8080),
        "",
        "the switch really carries this traffic"
    );
    s.start_daemon("d2");
    works(&s, "after kill -9 of switchyard");

    // A restart of dockerd (live restore): the containers keep running and connected.
    s.docker.restart();
    works(&s, "after a dockerd restart");
    assert!(
        pings(&s.docker, "r1", "web"),
        "Docker's resolver after its restart"
    );

    // Both: switchyard killed, dockerd restarted while it is away, then switchyard back.
    s.kill_daemon();
    s.docker.restart();
    s.start_daemon("d3");
    works(&s, "after both");

    // And everything still goes away when Docker removes it.
    s.docker.ok(&["rm", "-f", "r1", "web"]);
    assert!(
        endpoint_links(&s.lab).is_empty(),
        "{:?}",
        endpoint_links(&s.lab)
    );
    s.docker.ok(&["network", "rm", "mynet"]);
}
