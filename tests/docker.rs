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
        start_daemon(&mut lab, &plugin.0, "d");
        let docker = Dockerd::start(&lab, "sw");
        docker.import_busybox();
        Setup {
            docker,
            plugin,
            lab,
        }
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
    lab.daemon_uplinked(label, &[&format!("--docker-plugin={plugin}")])
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
