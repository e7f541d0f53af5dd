//! The Docker plugin's calls (`docker::answer`): the input is `CALL\nBODY`, a call name as
//! dockerd puts it in the URL and the JSON body it posts (a leading `!` makes the daemon refuse
//! every request, with a two-line message). Checked on every input:
//! - no panic, and the status is 200, 400 (a body dockerd never sends) or 404 (an unknown call);
//! - the answer is a JSON object; an `Err` is one non-empty line, and every 400/404 has one;
//! - each request the driver sends the daemon is one the daemon decodes back to itself (what
//!   Docker's JSON turns into survives the API's wire format);
//! - the driver keeps no state: the same call answered again gives the same answer and the same
//!   requests.
//!
//! Seeds: `seeds/docker`, the bodies dockerd 24 sends (as control/src/docker/tests.rs has them).
#![no_main]

use std::cell::RefCell;

use control::api::{ApiError, ClientError, ContainerInspect, NetworkInspect, Request, Response};
use control::docker::{answer, handoff_name, Answer, Daemon};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

mod sent;

/// Answers inspects with a container or network of the asked name, everything else with `Done`
/// (or refuses everything); records what it was asked, as the wire carries it.
struct Fake {
    refuse: bool,
    seen: RefCell<Vec<String>>,
}

impl Daemon for Fake {
    fn call(&self, request: Request) -> Result<Response, ClientError> {
        self.seen
            .borrow_mut()
            .push(sent::as_the_daemon_reads_it(&request));
        if self.refuse {
            return Err(ClientError::Api(ApiError::bad_input(
                "refused\nover two lines",
            )));
        }
        Ok(match request {
            Request::ContainerInspect { names } => {
                Response::ContainerDetails(names.iter().map(|n| container(n)).collect())
            }
            Request::NetworkInspect { names } => {
                Response::NetworkDetails(names.iter().map(|n| network(n)).collect())
            }
            _ => Response::Done,
        })
    }
}

/// `container inspect NAME` as the daemon answers it for a handed-off endpoint.
fn container(name: &str) -> ContainerInspect {
    serde_json::from_value(json!({
        "Id": name, "Name": format!("/{name}"), "Created": "",
        "Config": {"ExposedPorts": {}},
        "HostConfig": {"NetworkMode": "handoff", "PortBindings": {}, "Links": [],
                       "AllowSpoofing": false},
        "NetworkSettings": {"SandboxKey": "", "Ports": {}, "Networks": {"5bbd9ce6b533": {
            "NetworkID": "5bbd9ce6b533930b85592b502f329610041abd00c32d3a07e95bad7a0499074d",
            "EndpointID": "e", "Gateway": "10.77.0.1", "IPAddress": "10.77.0.2",
            "IPPrefixLen": 24, "MacAddress": "3a:00:50:fb:92:58",
            "InterfaceName": handoff_name(name), "HostInterface": "veth1234567"}}}
    }))
    .expect("a container inspect")
}

/// `network inspect NAME`: internal when the name's length is even.
fn network(name: &str) -> NetworkInspect {
    serde_json::from_value(json!({
        "Name": name, "Id": name, "Created": "", "Scope": "local", "Driver": "switchyard",
        "EnableIPv6": false, "IPAM": {"Driver": "default", "Options": {}, "Config": []},
        "Internal": name.len() % 2 == 0, "Attachable": true, "Ingress": false,
        "Containers": {}, "Options": {}, "Labels": {}
    }))
    .expect("a network inspect")
}

fn post(call: &str, body: &[u8], refuse: bool) -> (Answer, Vec<String>) {
    let fake = Fake {
        refuse,
        seen: RefCell::new(Vec::new()),
    };
    let a = answer(&fake, call, body);
    (a, fake.seen.into_inner())
}

fuzz_target!(|data: &[u8]| {
    let (call, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(call) = std::str::from_utf8(call) else {
        return;
    };
    let (call, refuse) = match call.strip_prefix('!') {
        Some(c) => (c, true),
        None => (call, false),
    };
    let path = format!("/{call}");
    let (a, seen) = post(&path, body, refuse);
    assert!(
        [200, 400, 404].contains(&a.status),
        "status {}: {a:?}",
        a.status
    );
    let object = a.body.as_object().expect("the answer is a JSON object");
    match object.get("Err") {
        Some(err) => {
            let line = err.as_str().expect("Err is a string");
            assert!(!line.is_empty() && !line.contains('\n'), "Err {line:?}");
        }
        None => assert_eq!(a.status, 200, "a {} without Err: {a:?}", a.status),
    }
    let (again, seen_again) = post(&path, body, refuse);
    assert_eq!(a, again, "the same call answered twice differently");
    assert_eq!(seen, seen_again, "the same call sent different requests");
});
