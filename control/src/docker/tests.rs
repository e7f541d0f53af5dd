//! Each call of the protocol against a fake daemon that records the requests and answers from a
//! script: what dockerd sends becomes these `api` requests, and the daemon's answers become
//! these replies.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::api::{
    ApiError, ClientError, ContainerConfigInspect, ContainerEndpointInspect, ContainerInspect,
    HostConfigInspect, IpamInspect, NetworkInspect, NetworkSettingsInspect,
};
use ApiRequest as Request;
use ApiResponse as Response;

const NET: &str = "5bbd9ce6b533930b85592b502f329610041abd00c32d3a07e95bad7a0499074d";
const EP: &str = "c93b005b8bd6c7e4a4f3a3b0de5d1e1f0e3c7c6f5f4e4d3c2b1a0f9e8d7c6b5a";
const EP2: &str = "10f6b73140820000000000000000000000000000000000000000000000000000";

/// Answers by request kind; records every request.
#[derive(Default)]
struct Fake {
    seen: RefCell<Vec<Request>>,
    /// Refuse requests whose debug text contains this.
    refuse: Option<(&'static str, &'static str)>,
    internal: bool,
}

impl Daemon for Fake {
    fn call(&self, request: Request) -> Result<Response, ClientError> {
        let text = format!("{request:?}");
        self.seen.borrow_mut().push(request.clone());
        if let Some((needle, message)) = self.refuse {
            if text.contains(needle) {
                return Err(ClientError::Api(ApiError::bad_input(message)));
            }
        }
        Ok(match request {
            Request::ContainerInspect { names } => {
                Response::ContainerDetails(names.iter().map(|n| endpoint_of(n)).collect())
            }
            Request::NetworkInspect { names } => {
                Response::NetworkDetails(names.iter().map(|n| network(n, self.internal)).collect())
            }
            _ => Response::Done,
        })
    }
}

fn endpoint_of(name: &str) -> ContainerInspect {
    let mut networks = BTreeMap::new();
    networks.insert(
        NET[..12].to_string(),
        ContainerEndpointInspect {
            network_id: NET.into(),
            endpoint_id: "e".into(),
            gateway: "10.77.0.1".into(),
            ip_address: "10.77.0.2".into(),
            ip_prefix_len: 24,
            mac_address: "3a:00:50:fb:92:58".into(),
            interface_name: handoff_name(name),
            host_interface: "veth1234567".into(),
            ..Default::default()
        },
    );
    ContainerInspect {
        id: EP.into(),
        name: format!("/{name}"),
        created: String::new(),
        config: ContainerConfigInspect {
            exposed_ports: BTreeMap::new(),
            ..Default::default()
        },
        host_config: HostConfigInspect {
            network_mode: "handoff".into(),
            port_bindings: BTreeMap::new(),
            links: Vec::new(),
            allow_spoofing: false,
            ..Default::default()
        },
        network_settings: NetworkSettingsInspect {
            sandbox_key: String::new(),
            ports: BTreeMap::new(),
            networks,
        },
    }
}

fn network(name: &str, internal: bool) -> NetworkInspect {
    NetworkInspect {
        name: name.into(),
        id: NET.into(),
        created: String::new(),
        scope: "local".into(),
        driver: "switchyard".into(),
        enable_ipv6: false,
        ipam: IpamInspect {
            driver: "default".into(),
            options: BTreeMap::new(),
            config: Vec::new(),
        },
        internal,
        attachable: true,
        ingress: false,
        containers: BTreeMap::new(),
        config_from: Default::default(),
        config_only: false,
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
    }
}

fn post(fake: &Fake, call: &str, body: Value) -> Answer {
    answer(fake, &format!("/{call}"), body.to_string().as_bytes())
}

#[test]
fn activation_and_capabilities_need_no_daemon() {
    let fake = Fake::default();
    let a = answer(&fake, "/Plugin.Activate", b"");
    assert_eq!(a, Answer::ok(json!({"Implements": ["NetworkDriver"]})));
    let c = answer(&fake, "/NetworkDriver.GetCapabilities", b"");
    assert_eq!(c.body["Scope"], "local");
    assert!(fake.seen.borrow().is_empty());
}

#[test]
fn unknown_calls_get_404_and_bad_bodies_400_each_with_one_line_err() {
    let fake = Fake::default();
    let a = answer(&fake, "/NetworkDriver.Fly", b"{}");
    assert_eq!(a.status, 404);
    assert!(a.body["Err"]
        .as_str()
        .unwrap()
        .contains("NetworkDriver.Fly"));
    let a = answer(&fake, "/NetworkDriver.CreateNetwork", b"{nonsense");
    assert_eq!(a.status, 400);
    let err = a.body["Err"].as_str().unwrap();
    assert!(
        err.contains("malformed JSON") && !err.contains('\n'),
        "{err}"
    );
    let a = post(
        &fake,
        "NetworkDriver.Join",
        json!({"NetworkID": "xyz", "EndpointID": EP}),
    );
    assert_eq!(a.status, 400);
    assert!(fake.seen.borrow().is_empty(), "nothing reached the daemon");
}

#[test]
fn create_network_carries_dockers_ipam_data_and_options() {
    let fake = Fake::default();
    let a = post(
        &fake,
        "NetworkDriver.CreateNetwork",
        json!({
            "NetworkID": NET,
            "Options": {
                "com.docker.network.enable_ipv6": false,
                "com.docker.network.internal": true,
                "com.docker.network.generic": {"icc": "false", "mtu": "1400", "com.docker.network.bridge.gateway_mode_ipv4": "routed", "parent": "eth9", "vlan": "20"}
            },
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.77.0.0/24",
                          "Gateway": "10.77.0.1/24", "AuxAddresses": {"router": "10.77.0.5/24"}}],
            "IPv6Data": []
        }),
    );
    assert_eq!(a, Answer::ok(json!({})));
    let seen = fake.seen.borrow();
    let Request::NetworkCreate(req) = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(req.name, &NET[..12]);
    assert_eq!(req.id.as_deref(), Some(NET));
    assert_eq!(req.subnet.as_deref(), Some("10.77.0.0/24"));
    assert_eq!(req.gateway.as_deref(), Some("10.77.0.1"));
    assert_eq!(req.aux_addresses, vec!["router=10.77.0.5"]);
    assert_eq!(
        req.options,
        vec![
            "com.docker.network.bridge.gateway_mode_ipv4=routed",
            "icc=false",
            "mtu=1400"
        ]
    );
    assert_eq!(req.parent.as_deref(), Some("eth9"));
    assert_eq!(req.vlan, Some(20));
    assert!(req.internal);
}

#[test]
fn create_network_refuses_ipv6_and_passes_the_daemons_refusal_on() {
    let fake = Fake::default();
    let v6 = post(
        &fake,
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": NET, "Options": {"com.docker.network.enable_ipv6": true},
               "IPv4Data": [{"Pool": "10.77.0.0/24", "Gateway": "10.77.0.1/24"}]}),
    );
    assert_eq!(v6.status, 200);
    assert!(v6.body["Err"].as_str().unwrap().contains("IPv4 only"));
    let fake = Fake {
        refuse: Some((
            "NetworkCreate",
            "subnet 10.77.0.0/24 overlaps network 'bridge'",
        )),
        ..Default::default()
    };
    let a = post(
        &fake,
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": NET, "IPv4Data": [{"Pool": "10.77.0.0/24", "Gateway": "10.77.0.1/24"}]}),
    );
    assert_eq!(
        a,
        Answer::err(200, "subnet 10.77.0.0/24 overlaps network 'bridge'")
    );
}

#[test]
fn create_endpoint_hands_off_a_veth_and_publishes_dockers_port_map() {
    let fake = Fake::default();
    let a = post(
        &fake,
        "NetworkDriver.CreateEndpoint",
        json!({
            "NetworkID": NET, "EndpointID": EP,
            "Interface": {"Address": "10.77.0.2/24", "AddressIPv6": "", "MacAddress": ""},
            "Options": {
                "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}, {"Proto": 17, "Port": 53}],
                "com.docker.network.portmap": [
                    {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
                    {"Proto": 6, "IP": "", "Port": 80, "HostIP": "::", "HostPort": 8080, "HostPortEnd": 8080},
                    {"Proto": 17, "IP": "", "Port": 53, "HostIP": "0.0.0.0", "HostPort": 0, "HostPortEnd": 0},
                    {"Proto": 6, "IP": "", "Port": 81, "HostIP": "", "HostPort": 9000, "HostPortEnd": 9010}
                ]
            }
        }),
    );
    // The MAC the daemon chose goes back, since Docker left it empty.
    assert_eq!(
        a,
        Answer::ok(json!({"Interface": {"MacAddress": "3a:00:50:fb:92:58"}}))
    );
    let seen = fake.seen.borrow();
    let Request::ContainerCreate(req) = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(req.name, &EP[..12]);
    assert_eq!(req.network, &NET[..12]);
    assert_eq!(req.id.as_deref(), Some(EP));
    assert_eq!(req.ip.as_deref(), Some("10.77.0.2"));
    assert_eq!(req.mac, None);
    assert_eq!(req.handoff.as_deref(), Some("sycc93b005b8bd6"));
    assert_eq!(req.expose, vec!["80/tcp", "53/udp"]);
    assert_eq!(
        req.publish,
        vec!["8080:80/tcp", "0.0.0.0::53/udp", "9000-9010:81/tcp"]
    );
}

#[test]
fn create_endpoint_with_dockers_mac_answers_no_interface_and_refuses_sctp() {
    let fake = Fake::default();
    let a = post(
        &fake,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": NET, "EndpointID": EP,
               "Interface": {"Address": "10.77.0.9/24", "MacAddress": "02:42:0a:4d:00:09"}}),
    );
    assert_eq!(a, Answer::ok(json!({})));
    let Request::ContainerCreate(req) = &fake.seen.borrow()[0] else {
        panic!()
    };
    assert_eq!(req.mac.as_deref(), Some("02:42:0a:4d:00:09"));
    let fake = Fake::default();
    let a = post(
        &fake,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.77.0.9/24"},
               "Options": {"com.docker.network.portmap": [{"Proto": 132, "Port": 9, "HostPort": 9}]}}),
    );
    assert!(a.body["Err"].as_str().unwrap().contains("sctp"), "{a:?}");
    assert!(fake.seen.borrow().is_empty());
}

#[test]
fn join_names_the_veth_and_the_gateway_and_links_what_docker_links() {
    let fake = Fake::default();
    let a = post(
        &fake,
        "NetworkDriver.Join",
        json!({"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/var/run/docker/netns/x",
               "Options": {"com.docker.network.generic": {"ChildEndpoints": [EP2]}}}),
    );
    assert_eq!(
        a,
        Answer::ok(json!({
            "InterfaceName": {"SrcName": "sycc93b005b8bd6", "DstPrefix": "eth"},
            "Gateway": "10.77.0.1"
        }))
    );
    let seen = fake.seen.borrow();
    assert!(
        matches!(&seen[2], Request::ContainerLink { name, link } if name == &EP[..12] && link == &EP2[..12]),
        "{seen:?}"
    );
    // On an internal network: no gateway, and Docker adds no gateway bridge.
    let fake = Fake {
        internal: true,
        ..Default::default()
    };
    let a = post(
        &fake,
        "NetworkDriver.Join",
        json!({"NetworkID": NET, "EndpointID": EP}),
    );
    assert_eq!(a.body["DisableGatewayService"], true);
    assert!(a.body.get("Gateway").is_none());
}

#[test]
fn deletes_remove_what_exists_and_accept_what_is_gone() {
    let fake = Fake::default();
    let a = post(
        &fake,
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": NET, "EndpointID": EP}),
    );
    assert_eq!(a, Answer::ok(json!({})));
    assert!(
        matches!(&fake.seen.borrow()[1], Request::ContainerRm { names, .. } if names[0] == EP[..12])
    );
    let fake = Fake {
        refuse: Some(("Inspect", "no such network")),
        ..Default::default()
    };
    let a = post(
        &fake,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": NET}),
    );
    assert_eq!(a, Answer::ok(json!({})));
    assert_eq!(fake.seen.borrow().len(), 1, "only the look-up");
}

#[test]
fn the_other_calls_are_answered() {
    let fake = Fake::default();
    let ep = json!({"NetworkID": NET, "EndpointID": EP});
    for call in [
        "NetworkDriver.Leave",
        "NetworkDriver.ProgramExternalConnectivity",
        "NetworkDriver.RevokeExternalConnectivity",
        "NetworkDriver.FreeNetwork",
    ] {
        assert_eq!(
            post(&fake, call, ep.clone()),
            Answer::ok(json!({})),
            "{call}"
        );
    }
    let d = json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.1", "self": true}});
    assert_eq!(
        post(&fake, "NetworkDriver.DiscoverNew", d.clone()).status,
        200
    );
    assert_eq!(post(&fake, "NetworkDriver.DiscoverDelete", d).status, 200);
    let alloc = post(
        &fake,
        "NetworkDriver.AllocateNetwork",
        json!({"NetworkID": NET}),
    );
    assert_eq!(alloc.body, json!({"Options": {}}));
    let info = post(&fake, "NetworkDriver.EndpointOperInfo", ep);
    assert_eq!(info.body["Value"]["switchyard.ip"], "10.77.0.2");
}

#[test]
fn dockers_names_come_from_its_networks_and_containers_endpoints() {
    let networks = json!([
        {"Name": "mynet", "Id": NET, "Driver": "sy"},
        {"Name": "none", "Id": "ff00", "Driver": "null"}
    ]);
    let containers = json!([
        {"Id": "c1", "Names": ["/parent/db", "/web"],
         "NetworkSettings": {"Networks": {"mynet": {"EndpointID": EP}, "other": {"EndpointID": EP2}}}},
        {"Id": "c2", "Names": ["/stopped"],
         "NetworkSettings": {"Networks": {"mynet": {"EndpointID": ""}}}},
        {"Id": "c3"}
    ]);
    let names = docker_names(&networks, &containers);
    assert_eq!(names[NET], "mynet");
    assert_eq!(
        names[EP], "web",
        "a link's /PARENT/ALIAS name is not the container's"
    );
    assert_eq!(names[EP2], "web");
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
fn dockers_links_pair_the_parents_and_childs_endpoints_per_network() {
    let containers = json!([
        {"Names": ["/web"], "NetworkSettings": {"Networks": {
            "mynet": {"EndpointID": "p1"}, "other": {"EndpointID": "p2"}}}},
        {"Names": ["/db"], "NetworkSettings": {"Networks": {
            "mynet": {"EndpointID": "c1"}, "third": {"EndpointID": "c3"}}}}
    ]);
    let endpoints = container_endpoints(&containers);
    assert_eq!(endpoints["db"]["third"], "c3");
    let web = json!({"NetworkSettings": {"Networks": {
        "mynet": {"EndpointID": "p1", "Links": ["db:database", "gone:x"]},
        "other": {"EndpointID": "p2", "Links": ["db:database"]}}}});
    assert_eq!(
        docker_links(&web, &endpoints),
        vec![("p1".to_string(), "c1".to_string(), "database".to_string())]
    );
}
