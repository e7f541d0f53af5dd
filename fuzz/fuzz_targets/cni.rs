//! The CNI plugin (`cni::run`): the input is five lines of environment (`CNI_COMMAND`,
//! `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`; empty means unset) and then the
//! network configuration a runtime writes on stdin. A daemon that knows the network answers every
//! request (a leading `!` on the command line makes it refuse them all). Checked on every input:
//! - no panic; the version answered in is one the plugin speaks;
//! - an error is one line with a code, and its JSON object carries that code, the message and
//!   the version;
//! - a result is a JSON object that names the version it is written in;
//! - each request the plugin sends is one the daemon decodes back to itself;
//! - the same command run again gives the same outcome and the same requests (no hidden state).
//!
//! Seeds: `seeds/cni`, the configurations and environments tests/cni.rs and podman pass.
#![no_main]

use std::path::Path;

use control::api::{ApiError, ClientError, EndpointView, Request, Response, PROTOCOL_VERSION};
use control::cni::{run, CniError, Env};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

mod sent;

/// The endpoint the daemon reports for every attachment.
fn view() -> EndpointView {
    serde_json::from_value(json!({
        "container": "c0ffee", "network": "pods", "netns": "/run/netns/x", "interface": "eth0",
        "host_interface": "veth1234567", "mac": "02:42:0a:58:00:02", "ip": "10.88.0.2",
        "prefix": 24, "gateway": "10.88.0.1", "mtu": 1500, "default_route": true,
        "aliases": ["web"], "owner": "cni:pods", "published": []
    }))
    .expect("an endpoint view")
}

fn daemon(r: &Request) -> Response {
    match r {
        Request::NetworkLs => Response::Networks(vec![serde_json::from_value(json!({
            "id": "n", "name": "pods", "driver": "switchyard", "scope": "local",
            "subnet": "10.88.0.0/24", "gateway": "10.88.0.1", "host_interface": "sy-pods",
            "containers": 1
        }))
        .expect("a network summary")]),
        Request::EndpointAttach(_) => Response::Endpoint(Box::new(view())),
        Request::EndpointCheck { .. } => Response::EndpointCheck {
            endpoint: Some(Box::new(view())),
            problems: vec![],
        },
        Request::EndpointLs { .. } => Response::Endpoints(vec![view()]),
        Request::Version => Response::Version {
            daemon: "x".into(),
            protocol: PROTOCOL_VERSION,
        },
        _ => Response::Done,
    }
}

type Outcome = (String, Result<Option<Value>, CniError>, Vec<String>);

fn command(env: &Env, stdin: &[u8], refuse: bool) -> Outcome {
    let mut seen = Vec::new();
    let (version, outcome) = run(env, stdin, &mut |_: &Path, request: Request| {
        seen.push(sent::as_the_daemon_reads_it(&request));
        if refuse {
            return Err(ClientError::Api(ApiError::bad_input(
                "address 10.88.0.2 is taken\nby c0ffee",
            )));
        }
        Ok(daemon(&request))
    });
    (version, outcome, seen)
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(6, |&b| b == b'\n');
    let mut var = || {
        let line = lines.next().unwrap_or_default();
        String::from_utf8_lossy(line).into_owned()
    };
    let (mut command_line, container_id, netns, ifname, args) = (var(), var(), var(), var(), var());
    let stdin = lines.next().unwrap_or_default();
    let refuse = command_line.starts_with('!');
    if refuse {
        command_line.remove(0);
    }
    let env = Env::from_vars(|name| {
        Some(match name {
            "CNI_COMMAND" => command_line.clone(),
            "CNI_CONTAINERID" => container_id.clone(),
            "CNI_NETNS" => netns.clone(),
            "CNI_IFNAME" => ifname.clone(),
            "CNI_ARGS" => args.clone(),
            "CNI_PATH" => "/opt/cni/bin".to_string(),
            _ => return None,
        })
    });
    let (version, outcome, seen) = command(&env, stdin, refuse);
    assert!(
        ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].contains(&version.as_str()),
        "answered in version {version:?}"
    );
    match &outcome {
        Ok(Some(result)) => {
            let object = result.as_object().expect("a result is a JSON object");
            assert_eq!(
                object.get("cniVersion"),
                Some(&Value::from(version.clone()))
            );
        }
        Ok(None) => {}
        Err(e) => {
            let line = e.to_string();
            assert!(!e.msg.is_empty() && !line.contains('\n'), "{line:?}");
            let json = e.to_json(&version);
            assert_eq!(json["code"], e.code.number());
            assert_eq!(json["msg"], e.msg.as_str());
            assert_eq!(json["cniVersion"], version.as_str());
        }
    }
    let (version_again, outcome_again, seen_again) = command(&env, stdin, refuse);
    assert_eq!(version, version_again);
    assert_eq!(outcome, outcome_again, "the same command, another outcome");
    assert_eq!(seen, seen_again, "the same command, other requests");
});
