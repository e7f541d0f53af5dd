//! Seeing the packet path: live traces with filters, what-if traces, and their three forms.

mod common;

use std::time::Duration;

use common::probe::{self, Servers};
use common::*;
use serde_json::Value;

fn stages(trace: &Value) -> Vec<(String, String)> {
    trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                s["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn live_traces_show_every_stage_of_matching_packets() {
    let mut lab = Lab::new("tl");
    lab.daemon("d", &[]);
    lab.cli_ok(&[
        "network",
        "create",
        "closed",
        "--subnet",
        "10.94.0.0/24",
        "--opt",
        "icc=false",
    ]);
    let db = lab.container("db", &["--network", "closed", "--expose", "5432"]);
    let web = lab.container(
        "web",
        &["--network", "closed", "--link", &format!("{db}:db")],
    );
    let mut servers = Servers::new();
    servers.tcp(&db, 5432);
    let db_ip = "10.94.0.2".parse().unwrap();
    // Resolve ARP first, so the traced packets are the TCP ones.
    assert!(probe::tcp_ok(&web, db_ip, 5432, Duration::from_secs(2)));

    lab.cli_ok(&[
        "trace",
        "add",
        &web,
        "3",
        "--filter",
        "tcp and dst port 5432",
    ]);
    assert!(probe::tcp_ok(&web, db_ip, 5432, Duration::from_secs(2)));
    lab.ping_fails("web", "10.94.0.2"); // not matched by the filter: not traced
    let traces = lab.cli_json(&["trace", "show", "--json"]);
    let traces = traces.as_array().unwrap();
    assert_eq!(traces.len(), 3, "the budget of 3 packets: {traces:?}");
    let first = &traces[0];
    assert_eq!(first["ingress"], web.as_str());
    assert!(
        first["packet"]
            .as_str()
            .unwrap()
            .contains("> 10.94.0.2:5432 [S]"),
        "{first}"
    );
    assert_eq!(
        stages(first),
        vec![
            ("ingress".into(), "parsed".into()),
            ("anti-spoof".into(), "pass".into()),
            ("l2-learn".into(), "known".into()),
            ("l2-fwd".into(), "hit".into()),
            ("icc".into(), "allow".into()),
            ("egress".into(), "out".into()),
        ]
    );
    let icc = &first["steps"][4]["line"];
    assert!(
        icc.as_str()
            .unwrap()
            .contains("link rule: tcp to port 5432"),
        "{icc}"
    );
    // The explained form reads as numbered sentences.
    let explain = lab.cli_ok(&["trace", "show", "--explain"]);
    assert!(
        explain.contains("  1. A frame arrives on port"),
        "{explain}"
    );
    assert!(explain.contains("a link allows it"), "{explain}");
    let compact = lab.cli_ok(&["trace", "show"]);
    assert!(
        compact.contains(&format!("packet #1 in {web}: TCP")),
        "{compact}"
    );

    lab.cli_ok(&["trace", "clear"]);
    assert!(lab
        .cli_json(&["trace", "show", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
    // Bad input: one line, exit 2.
    for (args, msg) in [
        (
            vec!["trace", "add", "ghost", "1"],
            "no port or network named 'ghost'",
        ),
        (
            vec!["trace", "add", &web, "1", "--filter", "port eighty"],
            "eighty",
        ),
        (vec!["trace", "add", &web, "0"], "at least 1"),
    ] {
        let out = lab.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(msg) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn what_if_traces_use_the_real_tables_and_change_nothing() {
    let mut lab = Lab::new("tw");
    lab.daemon("d", &[]);
    lab.cli_ok(&[
        "network",
        "create",
        "closed",
        "--subnet",
        "10.95.0.0/24",
        "--opt",
        "icc=false",
    ]);
    let db = lab.container("db", &["--network", "closed", "--expose", "5432"]);
    let web = lab.container(
        "web",
        &["--network", "closed", "--link", &format!("{db}:db")],
    );
    let status_before = lab.cli_ok(&["status"]);
    let allowed = lab.cli_json(&[
        "trace",
        "packet",
        "--in",
        &web,
        "tcp,src=10.95.0.3,dst=10.95.0.2,dport=5432",
        "--json",
    ]);
    let t = &allowed[0];
    assert_eq!(t["what_if"], true);
    assert_eq!(
        stages(t).last().unwrap(),
        &("egress".to_string(), "out".to_string())
    );
    let denied = lab.cli_ok(&[
        "trace",
        "packet",
        "--in",
        &web,
        "tcp,src=10.95.0.3,dst=10.95.0.2,dport=80",
        "--explain",
    ]);
    assert!(denied.contains("no link opens this traffic"), "{denied}");
    let spoofed = lab.cli_ok(&[
        "trace",
        "packet",
        "--in",
        &web,
        "udp,src=10.95.0.99,dst=10.95.0.2,dport=53",
    ]);
    assert!(spoofed.contains("drop: spoof-ip"), "{spoofed}");
    let arp = lab.cli_ok(&[
        "trace",
        "packet",
        "--in",
        &web,
        "arp,src=10.95.0.3,dst=10.95.0.77",
        "--explain",
    ]);
    assert!(arp.contains("so the frame goes to"), "{arp}");
    // Nothing was counted, learned or sent by any of that (the containers' own IPv6 chatter
    // changes packet counters meanwhile, so compare what the what-if packets would have changed).
    let status_after = lab.cli_ok(&["status"]);
    // The MAC table without its AGE column (entries age while the what-ifs run).
    let table = |s: &str| {
        s.split("Ports:")
            .next()
            .unwrap()
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .filter(|w| !(w.ends_with('s') && w[..w.len() - 1].parse::<f64>().is_ok()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        table(&status_after),
        table(&status_before),
        "no MAC learned"
    );
    assert!(
        !status_after.contains("spoof-ip="),
        "the spoofed what-if was not counted"
    );
    let out = lab.cli(&["trace", "packet", "--in", &web, "tcp,src=1.2.3"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn capture_writes_pcap_readable_by_tcpdump_and_tshark_also_through_a_pipe() {
    let mut lab = Lab::new("tc");
    lab.daemon("d", &[]);
    let web = lab.container("web", &[]);
    lab.container("db", &["--ip", "172.17.0.9"]);
    lab.ping_ok("web", "172.17.0.9");
    let file = lab.dir.join("web.pcap");
    let file_s = file.display().to_string();
    // Four ICMP frames on web's port: two requests in, two replies out.
    let mut cap = std::process::Command::new(switchyard_bin())
        .args([
            "capture", &web, "-w", &file_s, "-c", "4", "--filter", "icmp",
        ])
        .env("SWITCHYARD_SOCKET", lab.socket())
        .spawn()
        .unwrap();
    let mut piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} capture bridge -w - -c 2 --filter icmp | tshark -r - -T fields -e ip.src -e ip.dst 2>/dev/null",
            switchyard_bin()
        ))
        .env("SWITCHYARD_SOCKET", lab.socket())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = &mut piped;
    lab.exec_ok("web", &["ping", "-c", "2", "-i", "0.2", "172.17.0.9"]);
    let start = std::time::Instant::now();
    while cap.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "capture did not end after -c 4"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = must(&["tcpdump", "--nano", "-r", &file_s, "-nn"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(out.matches("ICMP echo request").count(), 2, "{out}");
    assert_eq!(out.matches("ICMP echo reply").count(), 2, "{out}");
    // Nanosecond timestamps: HH:MM:SS.nnnnnnnnn
    let ts = lines[0].split_whitespace().next().unwrap();
    assert_eq!(ts.split('.').nth(1).unwrap().len(), 9, "{ts}");
    let tshark = must(&["tshark", "-r", &file_s]);
    assert_eq!(tshark.lines().count(), 4, "{tshark}");
    let piped = piped.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(
        text.contains("172.17.0.2\t172.17.0.9"),
        "through a pipe: {text}"
    );
}

#[test]
fn stats_fdb_metrics_and_topology() {
    use std::io::{Read, Write};
    let mut lab = Lab::new("to");
    lab.daemon("d", &["--metrics", "127.0.0.1:9180"]);
    let web = lab.container("web", &[]);
    lab.container("db", &["--ip", "172.17.0.9"]);
    lab.ping_ok("web", "172.17.0.9");
    let web_mac = lab.mac("web", "eth0");

    let st = lab.cli_json(&["stats", "--json"]);
    let port = st["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == web.as_str())
        .unwrap_or_else(|| panic!("no port named {web}: {st}"))
        .clone();
    assert_eq!(port["network"], "bridge");
    assert!(port["rx_packets"].as_u64().unwrap() >= 2);
    assert_eq!(
        port["drops"]["spoof-ip"], 0,
        "every reason listed, zeros too"
    );
    assert!(st["stages"]["icc"].get("icc").is_some());
    let text = lab.cli_ok(&["stats"]);
    assert!(
        text.contains("Drops by stage:") && text.contains(&web),
        "{text}"
    );

    let fdb = lab.cli_ok(&["fdb", "bridge"]);
    let line = fdb
        .lines()
        .find(|l| l.contains(&web_mac))
        .unwrap_or_else(|| panic!("{fdb}"));
    assert!(line.contains(&web) && line.contains("static"), "{line}");
    assert_ne!(lab.cli(&["fdb", "ghost"]).status.code(), Some(0));

    // Prometheus, from inside the daemon's namespace.
    let ns = lab.ns("sw");
    let body = probe::in_netns(&ns, || {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9180").unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    });
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(
        body.contains("# TYPE switchyard_port_rx_packets_total counter"),
        "{body}"
    );
    assert!(
        body.contains(&format!("switchyard_port_rx_packets_total{{port=\"{web}\"")),
        "{body}"
    );

    let topo = lab.cli_ok(&["topology"]);
    assert!(
        topo.contains("bridge") && topo.contains(&web) && topo.contains("172.17.0.9"),
        "{topo}"
    );
    let dot = lab.cli_ok(&["topology", "--format", "dot"]);
    assert!(dot.contains("graph") && dot.contains(&web), "{dot}");
    let svg = lab.cli_ok(&["topology", "--format", "svg"]);
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>") && svg.contains(&web));
}
