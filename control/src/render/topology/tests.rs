//! The renderers' tests: golden files, the cases around them (missing networks and containers,
//! hostile names, long names), and small checkers for dot and XML (plus Graphviz and xmllint when
//! installed, as tools/test.sh does).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::svg::canvas::{text_width, FS};
use super::{render_dot, render_svg, render_text};
use crate::api::topology::{
    ContainerView, EndpointView, LinkView, NetView, PublishedPort, Topology, UplinkView,
};
use crate::api::{ContainerCreate, NetworkCreate, Protocol};
use crate::model::tests::Counter;
use crate::model::{PublishContext, State};
use crate::render::golden;

fn ep(network: &str, interface: &str, address: &str, mac: &str, veth: &str) -> EndpointView {
    let (ip, prefix) = address.split_once('/').unwrap();
    EndpointView {
        network: network.into(),
        interface: interface.into(),
        ip: ip.parse().unwrap(),
        prefix: Some(prefix.parse().unwrap()),
        mac: crate::model::mac::parse_interface_mac(mac).unwrap().0,
        host_interface: veth.into(),
    }
}

fn net(name: &str, subnet: &str, gateway: &str, host_port: &str) -> NetView {
    let (subnet, prefix) = subnet.split_once('/').unwrap();
    NetView {
        name: name.into(),
        subnet: subnet.parse().unwrap(),
        prefix: prefix.parse().unwrap(),
        gateway: gateway.parse().unwrap(),
        host_port: host_port.into(),
        icc: true,
        internal: false,
        routed: false,
        resolver: None,
    }
}

/// `host_port/protocol -> container_port` on every host address.
fn port(protocol: Protocol, host_port: u16, container_port: u16) -> PublishedPort {
    PublishedPort {
        protocol,
        host_ip: Ipv4Addr::UNSPECIFIED,
        host_port,
        container_port,
    }
}

fn link(container: &str, alias: &str) -> LinkView {
    LinkView {
        container: container.into(),
        alias: alias.into(),
    }
}

fn container(name: &str, endpoints: Vec<EndpointView>) -> ContainerView {
    ContainerView {
        name: name.into(),
        endpoints,
        published: vec![],
        links: vec![],
    }
}

/// bridge + private (icc=false); web on bridge, pg on private, app on both (linked to pg as
/// db); an uplink publishing one port of web and one of app. Deliberately not in name order.
fn fixture() -> Topology {
    let mut web = container(
        "web",
        vec![ep(
            "bridge",
            "eth0",
            "172.17.0.2/16",
            "02:42:ac:11:00:02",
            "sy-web-0",
        )],
    );
    web.published.push(port(Protocol::Tcp, 8080, 80));
    let pg = container(
        "pg",
        vec![ep(
            "private",
            "eth0",
            "10.30.0.2/24",
            "02:42:0a:1e:00:02",
            "sy-pg-0",
        )],
    );
    let mut app = container(
        "app",
        vec![
            ep(
                "bridge",
                "eth0",
                "172.17.0.3/16",
                "02:42:ac:11:00:03",
                "sy-app-0",
            ),
            ep(
                "private",
                "eth1",
                "10.30.0.3/24",
                "02:42:0a:1e:00:03",
                "sy-app-1",
            ),
        ],
    );
    app.published.push(port(Protocol::Udp, 5353, 53));
    app.links.push(link("pg", "db"));
    Topology {
        networks: vec![
            NetView {
                icc: false,
                resolver: Some("10.30.0.1:53".into()),
                ..net("private", "10.30.0.0/24", "10.30.0.1", "sy-private")
            },
            net("bridge", "172.17.0.0/16", "172.17.0.1", "switchyard0"),
        ],
        containers: vec![web, pg, app],
        uplink: Some(UplinkView {
            interface: "ens3".into(),
            ip: "192.0.2.10".parse().unwrap(),
            prefix: 24,
            gateway: Some("192.0.2.1".parse().unwrap()),
        }),
    }
}

const HOSTILE: &str = "x\"<&>'\\y\u{1b}[31m";

fn hostile() -> Topology {
    let mut t = fixture();
    t.networks[1].name = format!("net{HOSTILE}");
    t.networks[1].host_port = format!("tap{HOSTILE}");
    for c in &mut t.containers {
        for e in &mut c.endpoints {
            if e.network == "bridge" {
                e.network = format!("net{HOSTILE}");
            }
        }
    }
    t.containers[0].name = format!("web{HOSTILE}");
    t.containers[2]
        .links
        .push(link("pg", &format!("al{HOSTILE}")));
    t
}

fn sometimes_missing(t: &Topology) -> Topology {
    let mut t = t.clone();
    let mut loner = container("loner", vec![]);
    loner.published.push(PublishedPort {
        host_ip: Ipv4Addr::LOCALHOST,
        ..port(Protocol::Tcp, 9000, 9000)
    });
    loner.links.push(link("ghost", "ghost"));
    t.containers.push(loner);
    let mut stray = container(
        "stray",
        vec![ep(
            "nowhere",
            "eth0",
            "10.99.0.2/24",
            "02:00:00:00:00:01",
            "sy-stray-0",
        )],
    );
    stray.published.push(port(Protocol::Udp, 5300, 53));
    t.containers.push(stray);
    t.networks.push(NetView {
        internal: true,
        ..net("island", "10.40.0.0/24", "10.40.0.1", "sy-island")
    });
    t.networks.push(NetView {
        routed: true,
        ..net("routed", "172.31.0.0/16", "172.31.0.1", "sy-routed")
    });
    t
}

// ---- golden files ----

/// The topologies whose renderings are kept, byte for byte, in `src/render/testdata/`.
fn goldens() -> Vec<(&'static str, Topology)> {
    let mut no_uplink = fixture();
    no_uplink.uplink = None;
    let mut odd = sometimes_missing(&fixture());
    odd.containers[0].name =
        "a-container-with-a-rather-long-name-that-would-overflow-a-fixed-box".into();
    odd.containers[0]
        .published
        .push(port(Protocol::Udp, 65535, 65535));
    // A published range, as Docker expands it: one mapping per port.
    for host_port in 7000..=7002 {
        odd.containers[2]
            .published
            .push(port(Protocol::Tcp, host_port, host_port - 6000));
    }
    odd.networks[0].name = "a-network-whose-name-is-longer-than-the-header-column-was".into();
    odd.networks[0].host_port = "漢字のホストポート".into();
    let hostile = hostile();
    let mut uplink = fixture().uplink;
    if let Some(u) = &mut uplink {
        u.gateway = None;
    }
    vec![
        ("basic", fixture()),
        ("odd", odd),
        ("no-uplink", no_uplink),
        ("hostile", hostile),
        ("empty", Topology::default()),
        (
            "uplink-only",
            Topology {
                uplink,
                ..Topology::default()
            },
        ),
    ]
}

#[test]
fn renderings_match_the_golden_files() {
    for (name, t) in goldens() {
        golden(&format!("topology-{name}.txt"), &render_text(&t));
        golden(&format!("topology-{name}.dot"), &render_dot(&t));
        golden(&format!("topology-{name}.svg"), &render_svg(&t));
    }
}

// ---- a State, as the daemon sees it ----

/// bridge, private (icc=false) and island (internal); web publishes on the uplink address, a
/// udp range and a plain port; app is on bridge and private, linked to pg as db, and publishes
/// a udp port; pg is on private; q on island; lone has no network.
fn state() -> State {
    let mut e = Counter(0);
    let mut s = State::initial(&[], &mut e).unwrap();
    let net = |name: &str, subnet: &str| NetworkCreate {
        name: name.into(),
        subnet: Some(subnet.into()),
        ..Default::default()
    };
    s.create_network(
        &NetworkCreate {
            options: vec!["icc=false".into()],
            ..net("private", "10.30.0.0/24")
        },
        &[],
        &mut e,
    )
    .unwrap();
    s.create_network(
        &NetworkCreate {
            internal: true,
            ..net("island", "10.40.0.0/24")
        },
        &[],
        &mut e,
    )
    .unwrap();
    let ctx = PublishContext {
        uplink: Some("192.0.2.10".parse().unwrap()),
        ..PublishContext::default()
    };
    let ctr = |name: &str, network: &str| ContainerCreate {
        name: name.into(),
        network: network.into(),
        ..Default::default()
    };
    for req in [
        ContainerCreate {
            publish: vec![
                "192.0.2.10:8080:80".into(),
                "7000-7002:7000-7002/udp".into(),
                "9090:90".into(),
            ],
            ..ctr("web", "bridge")
        },
        ContainerCreate {
            expose: vec!["5432".into()],
            ..ctr("pg", "private")
        },
        ContainerCreate {
            publish: vec!["5353:53/udp".into()],
            ..ctr("app", "bridge")
        },
        ctr("q", "island"),
        ctr("lone", "none"),
    ] {
        s.create_container_with(&req, &ctx, &mut e).unwrap();
    }
    s.connect("private", "app", None, &mut e).unwrap();
    s.add_link("app", "pg:db").unwrap();
    s
}

fn state_uplink() -> UplinkView {
    UplinkView {
        interface: "ens3".into(),
        ip: "192.0.2.10".parse().unwrap(),
        prefix: 24,
        gateway: Some("192.0.2.1".parse().unwrap()),
    }
}

#[test]
fn renderings_of_a_state_match_the_golden_files() {
    let t = crate::model::topology::topology(&state(), Some(state_uplink()));
    golden("state.txt", &render_text(&t));
    golden("state.dot", &render_dot(&t));
    golden("state.svg", &render_svg(&t));
    let t = crate::model::topology::topology(&state(), None);
    golden("state-no-uplink.txt", &render_text(&t));
}

// ---- text ----

#[test]
fn text_of_the_fixture() {
    let expected = "\
uplink ens3  192.0.2.10/24  gateway 192.0.2.1
|-- 192.0.2.10:5353/udp -> app:53
`-- 192.0.2.10:8080/tcp -> web:80

network bridge  172.17.0.0/16  gateway 172.17.0.1  host port switchyard0
|-- app  eth0  172.17.0.3/16  02:42:ac:11:00:03  veth sy-app-0  (also on private)  (links: pg as db)
`-- web  eth0  172.17.0.2/16  02:42:ac:11:00:02  veth sy-web-0

network private  10.30.0.0/24  gateway 10.30.0.1  host port sy-private  dns 10.30.0.1:53  [icc=false]
|-- app  eth1  10.30.0.3/24  02:42:0a:1e:00:03  veth sy-app-1  (also on bridge)  (links: pg as db)
`-- pg   eth0  10.30.0.2/24  02:42:0a:1e:00:02  veth sy-pg-0
";
    assert_eq!(render_text(&fixture()), expected);
}

#[test]
fn text_of_odd_cases() {
    let text = render_text(&sometimes_missing(&fixture()));
    assert!(text.contains("network island  10.40.0.0/24  gateway 10.40.0.1  host port sy-island  [internal]\n`-- (no containers)\n"), "{text}");
    assert!(
        text.contains("network nowhere  (not in this topology)\n`-- stray  eth0"),
        "{text}"
    );
    assert!(
        text.contains("not attached to any network\n`-- loner  (links: ghost as ghost)\n"),
        "{text}"
    );
    // An explicit host address wins; the unspecified one is the uplink's.
    assert!(
        text.contains("|-- 127.0.0.1:9000/tcp -> loner:9000\n"),
        "{text}"
    );
    assert!(
        text.contains("|-- 192.0.2.10:5300/udp -> stray:53\n"),
        "{text}"
    );

    let mut t = fixture();
    t.uplink = None;
    let text = render_text(&t);
    assert!(text.starts_with("uplink: none (published ports are unreachable until there is one)\n|-- *:5353/udp -> app:53\n"), "{text}");
}

#[test]
fn text_cannot_drive_the_terminal() {
    let text = render_text(&hostile());
    assert!(!text.contains('\u{1b}'));
    assert!(
        text.contains("`-- webx\"<&>'\\y\u{fffd}[31m  eth0"),
        "{text}"
    );
}

// ---- order and determinism ----

#[test]
fn output_depends_on_content_not_order() {
    let t = sometimes_missing(&fixture());
    let mut r = t.clone();
    r.networks.reverse();
    r.containers.reverse();
    assert_eq!(render_text(&t), render_text(&r));
    assert_eq!(render_dot(&t), render_dot(&r));
    assert_eq!(render_svg(&t), render_svg(&r));
    assert_eq!(render_svg(&t), render_svg(&t));
    assert_eq!(render_dot(&t), render_dot(&t));
}

#[test]
fn topology_round_trips_through_json() {
    let t = fixture();
    let back: Topology = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(render_text(&t), render_text(&back));
}

// ---- empty ----

#[test]
fn empty_topology() {
    let t = Topology::default();
    assert_eq!(
        render_text(&t),
        "uplink: none\n\nno networks, no containers\n"
    );
    let dot = render_dot(&t);
    check_dot(&dot).unwrap();
    assert!(dot.contains("no networks, no containers"));
    run_dot(&dot);
    let svg = render_svg(&t);
    check_xml(&svg).unwrap();
    run_xmllint(&svg);
    check_no_overflow(&svg);
    assert!(svg.contains("no networks, no containers"));
}

// ---- dot ----

#[test]
fn dot_of_the_fixture() {
    let dot = render_dot(&fixture());
    check_dot(&dot).unwrap();
    run_dot(&dot);
    for s in [
        "subgraph \"cluster_n0\"",
        "label=\"bridge\\n172.17.0.0/16  gateway 172.17.0.1\"",
        "label=\"private\\n10.30.0.0/24  gateway 10.30.0.1\\nicc=false\"",
        "\"n0_host\" [label=\"host port switchyard0\\n172.17.0.1\", shape=ellipse]",
        "\"n1_e0\" [label=\"app eth1\\n10.30.0.3/24\\n02:42:0a:1e:00:03\"",
        "\"n1_e0\" -- \"n1_switch\" [label=\"veth sy-app-1\"]",
        "\"c0\" [label=\"app\"",
        "\"c0\" -- \"n0_e0\";",
        "\"c0\" -- \"n1_e0\";",
        "\"uplink\" [label=\"uplink ens3\\n192.0.2.10/24\\ngateway 192.0.2.1\"",
        "\"uplink\" -- \"c0\" [label=\"5353/udp -> 53\", dir=forward",
        "\"uplink\" -- \"c2\" [label=\"8080/tcp -> 80\", dir=forward",
        "\"c0\" -- \"c1\" [label=\"link db\", style=dashed, dir=forward]",
    ] {
        assert!(dot.contains(s), "missing {s} in\n{dot}");
    }
    let odd = render_dot(&sometimes_missing(&fixture()));
    check_dot(&odd).unwrap();
    run_dot(&odd);
    assert!(
        odd.contains("[label=\"ghost\\n(not in this topology)\", style=dashed]"),
        "{odd}"
    );
}

#[test]
fn dot_escapes_names() {
    let dot = render_dot(&hostile());
    check_dot(&dot).unwrap();
    assert!(
        dot.contains("\"webx\\\"<&amp;>'\\\\y\u{fffd}[31m\""),
        "{dot}"
    );
    assert!(!dot.contains('\u{1b}'));
    if let Some(svg) = run_dot(&dot) {
        // Graphviz shows the names as they are (entities decoded once, backslash literal).
        check_xml(&svg).unwrap();
        assert!(
            svg.contains("webx&quot;&lt;&amp;&gt;&#39;\\y")
                || svg.contains("webx&quot;&lt;&amp;&gt;'\\y"),
            "{svg}"
        );
    }
}

// ---- svg ----

#[test]
fn svg_of_the_fixture() {
    let t = fixture();
    let svg = render_svg(&t);
    check_xml(&svg).unwrap();
    run_xmllint(&svg);
    check_no_overflow(&svg);
    for s in [
        "bridge",
        "private",
        "172.17.0.0/16",
        "gateway 10.30.0.1",
        "host port switchyard0",
        "host port sy-private",
        "icc=false",
        "web",
        "app",
        "pg",
        "bridge: eth0 172.17.0.3/16",
        "private: eth1 10.30.0.3/24",
        "mac 02:42:0a:1e:00:03",
        "veth sy-pg-0",
        "uplink ens3",
        "192.0.2.10/24",
        "gateway 192.0.2.1",
        ">8080/tcp -&gt; 80<",
        ">5353/udp -&gt; 53<",
        ">eth1 10.30.0.3/24<",
        ">link db<",
        "legend",
    ] {
        assert!(svg.contains(s), "missing {s}");
    }
    // Three containers, one box each; two published arrows, one link.
    assert_eq!(
        svg.matches("stroke=\"#333333\"/>").count(),
        3 + 1 /* legend */
    );
    assert_eq!(
        svg.matches("marker-end=\"url(#sy-publish)\"").count(),
        2 + 1
    );
    assert_eq!(svg.matches("marker-end=\"url(#sy-link)\"").count(), 1 + 1);
    // `TOPOLOGY_SVG=/tmp/t.svg cargo test svg_of_the_fixture` to look at it.
    if let Some(path) = std::env::var_os("TOPOLOGY_SVG") {
        std::fs::write(path, &svg).unwrap();
    }
}

#[test]
fn svg_escapes_names() {
    let svg = render_svg(&hostile());
    check_xml(&svg).unwrap();
    run_xmllint(&svg);
    check_no_overflow(&svg);
    let escaped = "x&quot;&lt;&amp;&gt;&apos;\\y\u{fffd}[31m";
    for s in ["web", "net", "host port tap", "link al"] {
        assert!(
            svg.contains(&format!("{s}{escaped}")),
            "missing {s}{escaped}"
        );
    }
    assert!(!svg.contains(HOSTILE) && !svg.contains('\u{1b}'));
}

#[test]
fn svg_of_odd_cases_and_long_names() {
    let mut t = sometimes_missing(&fixture());
    t.containers[0].name =
        "a-container-with-a-rather-long-name-that-would-overflow-a-fixed-box".into();
    t.containers[0]
        .published
        .push(port(Protocol::Udp, 65535, 65535));
    t.networks[0].name = "a-network-whose-name-is-longer-than-the-header-column-was".into();
    t.networks[0].host_port = "漢字のホストポート".into();
    let svg = render_svg(&t);
    check_xml(&svg).unwrap();
    run_xmllint(&svg);
    check_no_overflow(&svg);
    for s in [
        "loner",
        "stray",
        "nowhere",
        "not in this topology",
        "no network",
        "island",
        "internal",
    ] {
        assert!(svg.contains(s), "missing {s}");
    }
    let svg = render_svg(&Topology {
        uplink: fixture().uplink,
        ..Topology::default()
    });
    check_xml(&svg).unwrap();
    check_no_overflow(&svg);
    assert!(svg.contains("uplink ens3"));
}

#[test]
fn width_estimate() {
    assert_eq!(text_width("", 12), 0);
    assert_eq!(text_width("abcde", 10), 30);
    assert_eq!(text_width("漢字", 10), 24);
}

// ---- checkers ----

/// Runs `dot -Tsvg` (Graphviz); its SVG output.
fn run_dot(dot: &str) -> Option<String> {
    let out = pipe("dot", &["-Tsvg"], dot)?;
    assert!(
        out.status.success(),
        "dot rejected:\n{}\n{dot}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "dot warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn run_xmllint(svg: &str) {
    if let Some(out) = pipe("xmllint", &["--noout", "-"], svg) {
        assert!(
            out.status.success(),
            "xmllint: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn pipe(program: &str, args: &[&str], input: &str) -> Option<std::process::Output> {
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        // tools/test.sh installs graphviz and libxml2-utils: a missing checker is a failure,
        // never a silently skipped check.
        Err(e) => {
            panic!("{program}: {e} (install graphviz and libxml2-utils, as tools/test.sh does)")
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    Some(child.wait_with_output().unwrap())
}

/// A small well-formedness check: one root, balanced tags, quoted attributes without `<`,
/// only the predefined or numeric entities, no raw `<` or `&` in text, no control characters.
fn check_xml(s: &str) -> Result<(), String> {
    fn entity(rest: &str) -> Result<usize, String> {
        let end = rest.find(';').ok_or("unterminated entity")?;
        let name = &rest[1..end];
        let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
            || name
                .strip_prefix("#x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || name
                .strip_prefix('#')
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if ok {
            Ok(end + 1)
        } else {
            Err(format!("bad entity &{name};"))
        }
    }
    fn is_name(c: char) -> bool {
        c.is_alphanumeric() || matches!(c, ':' | '_' | '-' | '.')
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(format!("control character {c:?}"));
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if let Some(r) = rest.strip_prefix("<?") {
            i += 2 + r.find("?>").ok_or("unterminated <?")? + 2;
        } else if let Some(r) = rest.strip_prefix("<!--") {
            i += 4 + r.find("-->").ok_or("unterminated comment")? + 3;
        } else if rest.starts_with("<!DOCTYPE") {
            i += rest.find('>').ok_or("unterminated doctype")? + 1;
        } else if let Some(r) = rest.strip_prefix("</") {
            let end = r.find('>').ok_or("unterminated end tag")?;
            let name = r[..end].trim_end();
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            i += 2 + end + 1;
        } else if let Some(r) = rest.strip_prefix('<') {
            let name_len = r.find(|c: char| !is_name(c)).unwrap_or(r.len());
            if name_len == 0 {
                return Err(format!("bad tag at {i}"));
            }
            let name = &r[..name_len];
            let mut j = name_len;
            let mut seen = Vec::new();
            loop {
                let t = &r[j..];
                let ws = t.len() - t.trim_start().len();
                let t = t.trim_start();
                j += ws;
                if t.starts_with("/>") {
                    j += 2;
                    if stack.is_empty() {
                        roots += 1;
                    }
                    break;
                }
                if t.starts_with('>') {
                    j += 1;
                    if stack.is_empty() {
                        roots += 1;
                    }
                    stack.push(name);
                    break;
                }
                if ws == 0 {
                    return Err(format!("attribute without space in <{name}>"));
                }
                let an = t.find(|c: char| !is_name(c)).unwrap_or(t.len());
                if an == 0 {
                    return Err(format!(
                        "bad attribute in <{name}>: {}",
                        &t[..t.len().min(20)]
                    ));
                }
                if seen.contains(&&t[..an]) {
                    return Err(format!("duplicate attribute {}", &t[..an]));
                }
                seen.push(&t[..an]);
                let t2 = t[an..].trim_start();
                let t2 = t2
                    .strip_prefix('=')
                    .ok_or("attribute without =")?
                    .trim_start();
                let q = t2.chars().next().ok_or("eof in tag")?;
                if q != '"' && q != '\'' {
                    return Err("unquoted attribute".into());
                }
                let vend = t2[1..].find(q).ok_or("unterminated attribute")?;
                let value = &t2[1..1 + vend];
                if value.contains('<') {
                    return Err("< in attribute".into());
                }
                let mut k = 0;
                while let Some(a) = value[k..].find('&') {
                    k += a + entity(&value[k + a..])?;
                }
                j += t.len() - t2.len() + 1 + vend + 1;
            }
            i += 1 + j;
        } else if rest.starts_with('&') {
            i += entity(rest)?;
        } else {
            if stack.is_empty() && !rest.starts_with(char::is_whitespace) {
                return Err(format!("text outside the root at {i}"));
            }
            i += rest.chars().next().unwrap().len_utf8();
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

#[test]
fn the_xml_checker_catches_mistakes() {
    check_xml("<a x=\"1\"><b/>t &amp; u</a>\n").unwrap();
    for bad in [
        "<a><b></a>",
        "<a>x & y</a>",
        "<a>x < y</a>",
        "<a x=\"<\"/>",
        "<a/><b/>",
        "<a",
        "<a x=1/>",
        "<a>\u{1b}</a>",
    ] {
        assert!(check_xml(bad).is_err(), "{bad}");
    }
}

/// Graphviz tokens: quoted strings (with `\` escapes), identifiers, `--`, punctuation.
fn dot_tokens(s: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '"' => {
                let mut t = String::from('"');
                loop {
                    match chars.next().ok_or("unterminated string")? {
                        '\\' => {
                            t.push('\\');
                            t.push(chars.next().ok_or("unterminated escape")?);
                        }
                        '"' => break,
                        '\n' => return Err("newline in string".into()),
                        c => t.push(c),
                    }
                }
                t.push('"');
                tokens.push(t);
            }
            '-' if chars.peek() == Some(&'-') => {
                chars.next();
                tokens.push("--".into());
            }
            '-' if chars.peek() == Some(&'>') => return Err("-> in an undirected graph".into()),
            '{' | '}' | '[' | ']' | ';' | ',' | '=' => tokens.push(c.to_string()),
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                let mut t = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' || n == '.' {
                        t.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(t);
            }
            c => return Err(format!("unexpected {c:?}")),
        }
    }
    Ok(tokens)
}

/// The structure Graphviz needs: `graph ID {`, balanced braces and brackets, `key=value` lists,
/// statements ended by `;`, and every edge between declared nodes.
fn check_dot(s: &str) -> Result<(), String> {
    let t = dot_tokens(s)?;
    if t.len() < 4 || t[0] != "graph" || t[2] != "{" || t.last().map(String::as_str) != Some("}") {
        return Err("not `graph ID { ... }`".into());
    }
    let mut depth = 0;
    let mut nodes = BTreeSet::new();
    let mut edges = Vec::new();
    let mut i = 2;
    while i < t.len() {
        match t[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced }".into());
                }
            }
            "[" => {
                let mut j = i + 1;
                while t.get(j).map(String::as_str) != Some("]") {
                    let (k, eq, v) = (t.get(j), t.get(j + 1), t.get(j + 2));
                    if eq.map(String::as_str) != Some("=")
                        || k.is_none()
                        || v.is_none_or(|v| "[]{};,=".contains(v.as_str()))
                    {
                        return Err(format!(
                            "bad attribute list at {:?}",
                            &t[i..(j + 3).min(t.len())]
                        ));
                    }
                    j += 3;
                    if t.get(j).map(String::as_str) == Some(",") {
                        j += 1;
                    }
                }
                i = j;
            }
            "--" => {
                edges.push((t[i - 1].clone(), t.get(i + 1).cloned().unwrap_or_default()));
            }
            tok if tok.starts_with('"')
                && t.get(i + 1).map(String::as_str) == Some("[")
                && t[i - 1] != "--" =>
            {
                nodes.insert(tok.to_string());
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return Err("unbalanced {".into());
    }
    for (a, b) in edges {
        for n in [&a, &b] {
            if !nodes.contains(n) {
                return Err(format!("edge {a} -- {b}: {n} not declared"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_dot_checker_catches_mistakes() {
    check_dot("graph g {\n \"a\" [label=\"x\\\"y\"];\n \"b\" [label=\"\"];\n \"a\" -- \"b\";\n}\n")
        .unwrap();
    for bad in [
        "graph g { \"a\" [label=\"x\"y\"]; }",
        "graph g { \"a\" [label=\"x\"]; ",
        "graph g { \"a\" [label=]; }",
        "graph g { \"a\" [label=\"x\"]; \"a\" -- \"c\"; }",
        "graph g { \"a\" [label=\"x\"]; \"a\" -> \"a\"; }",
    ] {
        assert!(check_dot(bad).is_err(), "{bad}");
    }
}

/// Every `<text>` of our own SVG fits, by the width estimate, inside the smallest rectangle
/// holding its anchor point (its container box, band, or the whole picture).
fn check_no_overflow(svg: &str) {
    fn attr(line: &str, name: &str) -> Option<i64> {
        let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
        line[start..].split('"').next()?.parse().ok()
    }
    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }
    let rects: Vec<(i64, i64, i64, i64)> = svg
        .lines()
        .filter(|l| l.starts_with("<rect"))
        .map(|l| {
            (
                attr(l, "x").unwrap(),
                attr(l, "y").unwrap(),
                attr(l, "width").unwrap(),
                attr(l, "height").unwrap(),
            )
        })
        .collect();
    for line in svg.lines().filter(|l| l.starts_with("<text")) {
        let (x, y) = (attr(line, "x").unwrap(), attr(line, "y").unwrap());
        let size = attr(line, "font-size").unwrap_or(FS);
        let content = unescape(&line[line.find('>').unwrap() + 1..line.rfind("</text>").unwrap()]);
        let w = text_width(&content, size);
        let (left, right) = if line.contains("text-anchor=\"end\"") {
            (x - w, x)
        } else if line.contains("text-anchor=\"middle\"") {
            (x - w / 2, x + w / 2)
        } else {
            (x, x + w)
        };
        let inside = rects
            .iter()
            .filter(|r| r.0 <= x && x <= r.0 + r.2 && r.1 <= y && y <= r.1 + r.3)
            .min_by_key(|r| r.2 * r.3)
            .unwrap_or_else(|| panic!("{line} outside the picture"));
        assert!(
            inside.0 <= left && right <= inside.0 + inside.2,
            "{content:?} ({left}..{right}) overflows {inside:?}"
        );
    }
}
