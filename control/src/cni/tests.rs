//! The front end against a scripted daemon: which requests each command makes, the results in
//! each version, and the error codes. `tests/cni.rs` runs the same against a real daemon.

use std::cell::RefCell;
use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::api::{ApiError, NetworkSummary};

fn env(command: &str) -> Env {
    Env {
        command: Some(command.into()),
        container_id: Some("c0ffee".into()),
        netns: Some("/run/netns/x".into()),
        ifname: Some("eth0".into()),
        args: None,
        path: Some("/opt/cni/bin".into()),
    }
}

fn conf(version: &str, extra: Value) -> Vec<u8> {
    let mut c = json!({"cniVersion": version, "name": "pods", "type": "switchyard"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    serde_json::to_vec(&c).unwrap()
}

fn view() -> EndpointView {
    EndpointView {
        container: "c0ffee".into(),
        network: "pods".into(),
        netns: "/run/netns/x".into(),
        interface: "eth0".into(),
        host_interface: "veth1234567".into(),
        mac: "02:42:0a:58:00:02".into(),
        ip: "10.88.0.2".parse().unwrap(),
        prefix: 24,
        gateway: "10.88.0.1".parse().unwrap(),
        mtu: 1500,
        default_route: true,
        aliases: vec![],
        owner: Some("cni:pods".into()),
        published: vec![],
    }
}

/// A daemon that knows network `pods` and answers every request from `answer`; records requests.
struct Fake {
    requests: RefCell<Vec<Request>>,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            requests: RefCell::new(Vec::new()),
        }
    }

    fn run(
        &self,
        env: &Env,
        stdin: &[u8],
        mut answer: impl FnMut(&Request) -> Result<Response, ClientError>,
    ) -> (String, Result<Option<Value>, CniError>) {
        run(env, stdin, &mut |_: &Path, r: Request| {
            let a = answer(&r);
            self.requests.borrow_mut().push(r);
            a
        })
    }

    fn names(&self) -> Vec<String> {
        self.requests
            .borrow()
            .iter()
            .map(|r| {
                serde_json::to_value(r).unwrap()["command"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
}

fn pods() -> Response {
    Response::Networks(vec![NetworkSummary {
        id: "n".into(),
        name: "pods".into(),
        driver: "switchyard".into(),
        scope: "local".into(),
        subnet: "10.88.0.0/24".into(),
        gateway: "10.88.0.1".into(),
        host_interface: "sy-pods".into(),
        containers: 0,
        mode: "nat".into(),
    }])
}

fn daemon(r: &Request) -> Result<Response, ClientError> {
    Ok(match r {
        Request::NetworkLs => pods(),
        Request::EndpointAttach(_) => Response::Endpoint(Box::new(view())),
        Request::EndpointCheck { .. } => Response::EndpointCheck {
            endpoint: Some(Box::new(view())),
            problems: vec![],
        },
        Request::EndpointLs { .. } => Response::Endpoints(vec![view()]),
        Request::Version => Response::Version {
            daemon: "x".into(),
            protocol: 1,
        },
        _ => Response::Done,
    })
}

fn code(outcome: &Result<Option<Value>, CniError>) -> u32 {
    outcome.as_ref().unwrap_err().code.number()
}

#[test]
fn version_lists_every_supported_version_in_the_version_asked() {
    let fake = Fake::new();
    let (v, out) = fake.run(&env("VERSION"), br#"{"cniVersion":"0.4.0"}"#, daemon);
    assert_eq!(v, "0.4.0");
    let out = out.unwrap().unwrap();
    assert_eq!(out["cniVersion"], "0.4.0");
    assert_eq!(
        out["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    assert!(fake.names().is_empty(), "VERSION asks the daemon nothing");
}

#[test]
fn add_results_follow_the_version_asked() {
    for (version, with_ip_version, with_mtu) in [
        ("0.4.0", true, false),
        ("1.0.0", false, false),
        ("1.1.0", false, true),
    ] {
        let fake = Fake::new();
        let (_, out) = fake.run(&env("ADD"), &conf(version, json!({})), daemon);
        let r = out.unwrap().unwrap();
        assert_eq!(r["cniVersion"], version);
        assert_eq!(r["ips"][0]["address"], "10.88.0.2/24");
        assert_eq!(r["ips"][0]["gateway"], "10.88.0.1");
        assert_eq!(r["ips"][0]["interface"], 1);
        assert_eq!(r["ips"][0].get("version").is_some(), with_ip_version, "{r}");
        assert_eq!(r["interfaces"][1]["mtu"].is_u64(), with_mtu, "{r}");
        assert_eq!(r["interfaces"][1]["name"], "eth0");
        assert_eq!(r["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(r["interfaces"][1]["mac"], "02:42:0a:58:00:02");
        assert_eq!(r["routes"][0], json!({"dst":"0.0.0.0/0","gw":"10.88.0.1"}));
        assert_eq!(r["dns"]["nameservers"], json!(["10.88.0.1"]));
        assert_eq!(fake.names(), ["network-ls", "endpoint-attach"]);
    }
}

#[test]
fn add_passes_pins_ports_and_aliases_to_the_daemon() {
    let fake = Fake::new();
    let mut e = env("ADD");
    e.args = Some("IgnoreUnknown=1;K8S_POD_NAME=web;MAC=02:00:00:00:00:09;FOO=bar".into());
    let stdin = conf(
        "0.4.0",
        json!({"runtimeConfig": {
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                             {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.10"}],
            "ips": ["10.88.0.9/24"],
            "aliases": {"pods": ["web", "www"], "other": ["x"]}
        }}),
    );
    let (_, out) = fake.run(&e, &stdin, daemon);
    out.unwrap();
    let requests = fake.requests.borrow();
    let Request::EndpointAttach(a) = &requests[1] else {
        panic!("{requests:?}")
    };
    assert_eq!(a.ip.as_deref(), Some("10.88.0.9"));
    assert_eq!(a.mac.as_deref(), Some("02:00:00:00:00:09"));
    assert_eq!(a.publish, ["8080:80/tcp", "192.0.2.10:5353:53/udp"]);
    assert_eq!(
        a.aliases,
        ["web", "www"],
        "K8S_POD_NAME web is one of them already"
    );
    assert_eq!(a.owner.as_deref(), Some("cni:pods"));
    assert!(a.default_route);
    assert_eq!(
        (a.container.as_str(), a.ifname.as_str()),
        ("c0ffee", "eth0")
    );
}

#[test]
fn the_pod_name_is_an_alias() {
    let fake = Fake::new();
    let mut e = env("ADD");
    e.args = Some("IgnoreUnknown=1;K8S_POD_NAME=db".into());
    let stdin = conf(
        "0.4.0",
        json!({"runtimeConfig": {"aliases": {"pods": ["3752b82a76e7"]}}}),
    );
    fake.run(&e, &stdin, daemon).1.unwrap();
    let Request::EndpointAttach(a) = &fake.requests.borrow()[1] else {
        panic!()
    };
    assert_eq!(a.aliases, ["3752b82a76e7", "db"]);
}

#[test]
fn add_creates_the_network_on_first_use_or_says_why_it_cannot() {
    let fake = Fake::new();
    let stdin = conf(
        "1.0.0",
        json!({"network": "fresh", "subnet": "10.99.0.0/24"}),
    );
    let (_, out) = fake.run(&env("ADD"), &stdin, daemon);
    out.unwrap();
    assert_eq!(
        fake.names(),
        ["network-ls", "network-create", "endpoint-attach"]
    );
    let (_, out) = Fake::new().run(
        &env("ADD"),
        &conf("1.0.0", json!({"network": "fresh"})),
        daemon,
    );
    assert_eq!(code(&out), 7);
    assert!(out.unwrap_err().msg.contains("no network 'fresh'"));
    // An existing network with another subnet than the configuration's.
    let (_, out) = Fake::new().run(
        &env("ADD"),
        &conf("1.0.0", json!({"subnet": "10.1.0.0/24"})),
        daemon,
    );
    assert_eq!(code(&out), 7);
}

#[test]
fn errors_carry_the_specs_codes() {
    let cases: Vec<(&str, Env, Vec<u8>, u32)> = vec![
        ("version", env("ADD"), conf("0.2.0", json!({})), 1),
        (
            "check before 0.4.0",
            env("CHECK"),
            conf("0.3.1", json!({})),
            1,
        ),
        ("gc before 1.1.0", env("GC"), conf("1.0.0", json!({})), 1),
        (
            "ipam",
            env("ADD"),
            conf("1.0.0", json!({"ipam": {"type": "host-local"}})),
            2,
        ),
        (
            "ipv6 pin",
            env("ADD"),
            conf("1.0.0", json!({"runtimeConfig": {"ips": ["fd00::2/64"]}})),
            2,
        ),
        (
            "sctp",
            env("ADD"),
            conf(
                "1.0.0",
                json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 1, "protocol": "sctp"}]}}),
            ),
            2,
        ),
        (
            "no ifname",
            Env {
                ifname: None,
                ..env("ADD")
            },
            conf("1.0.0", json!({})),
            4,
        ),
        (
            "no netns",
            Env {
                netns: None,
                ..env("ADD")
            },
            conf("1.0.0", json!({})),
            4,
        ),
        (
            "bad id",
            Env {
                container_id: Some("-x".into()),
                ..env("DEL")
            },
            conf("1.0.0", json!({})),
            4,
        ),
        ("bad command", env("FLY"), conf("1.0.0", json!({})), 4),
        ("not json", env("ADD"), b"{nope".to_vec(), 6),
        (
            "wrong type",
            env("ADD"),
            conf("1.0.0", json!({"mtu": "big"})),
            6,
        ),
        ("empty", env("DEL"), Vec::new(), 6),
        (
            "no name",
            env("ADD"),
            br#"{"cniVersion":"1.0.0","type":"switchyard"}"#.to_vec(),
            7,
        ),
    ];
    for (what, e, stdin, want) in cases {
        let (_, out) = Fake::new().run(&e, &stdin, daemon);
        let err = out.expect_err(what);
        assert_eq!(err.code.number(), want, "{what}: {err}");
        assert!(!err.msg.is_empty());
    }
    let mut e = env("ADD");
    e.args = Some("FOO=bar".into());
    let (_, out) = Fake::new().run(&e, &conf("1.0.0", json!({})), daemon);
    assert_eq!(code(&out), 2, "unknown CNI_ARGS without IgnoreUnknown");
}

#[test]
fn daemon_answers_map_to_codes() {
    let gone = |_: &Request| {
        Err(ClientError::NotRunning {
            path: "/x.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    };
    for command in ["ADD", "DEL", "CHECK", "GC"] {
        let (_, out) = Fake::new().run(&env(command), &conf("1.1.0", json!({})), gone);
        assert_eq!(code(&out), 11, "{command}");
    }
    let (v, out) = Fake::new().run(&env("STATUS"), &conf("1.1.0", json!({})), gone);
    assert_eq!(code(&out), 51);
    let err = out.unwrap_err().to_json(&v);
    assert_eq!(err["cniVersion"], "1.1.0");
    assert_eq!(err["code"], 51);
    let (_, out) = Fake::new().run(
        &env("STATUS"),
        &conf("1.1.0", json!({"network": "nope"})),
        daemon,
    );
    assert_eq!(code(&out), 50);
    let refused = |r: &Request| match r {
        Request::EndpointAttach(_) => Err(ClientError::Api(ApiError::bad_input(
            "address 10.88.0.2 is already in use",
        ))),
        other => daemon(other),
    };
    let (_, out) = Fake::new().run(&env("ADD"), &conf("1.0.0", json!({})), refused);
    assert_eq!(code(&out), 101);
    let unknown = |r: &Request| match r {
        Request::EndpointCheck { .. } => Ok(Response::EndpointCheck {
            endpoint: None,
            problems: vec![],
        }),
        other => daemon(other),
    };
    let (_, out) = Fake::new().run(&env("CHECK"), &conf("1.0.0", json!({})), unknown);
    assert_eq!(code(&out), 3);
    let broken = |r: &Request| match r {
        Request::EndpointCheck { .. } => Ok(Response::EndpointCheck {
            endpoint: Some(Box::new(view())),
            problems: vec!["eth0 is down".into()],
        }),
        other => daemon(other),
    };
    let (_, out) = Fake::new().run(&env("CHECK"), &conf("1.0.0", json!({})), broken);
    assert_eq!(code(&out), 100);
    assert!(out.unwrap_err().msg.contains("eth0 is down"));
}

#[test]
fn check_compares_with_the_previous_result() {
    let prev = json!({"prevResult": {"ips": [{"address": "10.88.0.7/24"}]}});
    let (_, out) = Fake::new().run(&env("CHECK"), &conf("1.0.0", prev), daemon);
    assert_eq!(code(&out), 100);
    let prev = json!({"prevResult": {"ips": [{"address": "10.88.0.2/24"}]}});
    let (_, out) = Fake::new().run(&env("CHECK"), &conf("1.0.0", prev), daemon);
    assert_eq!(out.unwrap(), None);
}

#[test]
fn del_and_gc_remove_what_is_not_valid() {
    let fake = Fake::new();
    let mut e = env("DEL");
    e.netns = None;
    let (_, out) = fake.run(&e, &conf("0.4.0", json!({})), daemon);
    assert_eq!(out.unwrap(), None);
    assert_eq!(fake.names(), ["endpoint-detach"]);

    let fake = Fake::new();
    let keep = json!({"cni.dev/valid-attachments": [{"containerID": "c0ffee", "ifname": "eth0"}]});
    let (_, out) = fake.run(&env("GC"), &conf("1.1.0", keep), daemon);
    assert_eq!(out.unwrap(), None);
    assert_eq!(fake.names(), ["endpoint-ls"]);
    let fake = Fake::new();
    let (_, out) = fake.run(&env("GC"), &conf("1.1.0", json!({})), daemon);
    assert_eq!(out.unwrap(), None);
    assert_eq!(fake.names(), ["endpoint-ls", "endpoint-detach"]);
}

/// A refusal whose message holds a newline still makes a one-line error (found by the `cni`
/// fuzz target: the daemon's message was passed on as it came).
#[test]
fn a_refusal_over_two_lines_is_one_line() {
    let refused = |_: &Request| {
        Err(ClientError::Api(ApiError::bad_input(
            "address 10.88.0.2 is taken\nby c0ffee",
        )))
    };
    let (_, out) = Fake::new().run(&env("ADD"), &conf("1.0.0", json!({})), refused);
    let err = out.unwrap_err();
    assert_eq!(err.msg, "address 10.88.0.2 is taken by c0ffee");
    assert_eq!(err.to_string().lines().count(), 1);
}
