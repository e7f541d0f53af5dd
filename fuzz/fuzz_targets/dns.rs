//! The embedded resolver's query handling: arbitrary bytes as a DNS message, over UDP and TCP,
//! from a container of a user network, from an address nobody holds and from the host, through
//! the real name table. It may answer, forward or drop, never panic.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Duration;

use control::api::{ContainerCreate, NetworkCreate};
use control::dns::answer::{handle, Action, Asker};
use control::dns::counters::Counters;
use control::model::dns::{NameTable, RemoteName};
use control::model::{Mint, State};
use libfuzzer_sys::fuzz_target;

struct Fixed(u64);

impl Mint for Fixed {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0 += 1;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (self.0 as u8).wrapping_mul(31) ^ i as u8;
        }
    }

    fn now(&mut self) -> Duration {
        Duration::from_secs(1_800_000_000)
    }
}

/// front (10.1.0.0/24): web, and a and b sharing the alias `pool`; web links to a as `cache`.
fn table() -> &'static NameTable {
    static TABLE: OnceLock<NameTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = Fixed(0);
        let mut s = State::initial(&[], &mut m).unwrap();
        s.create_network(
            &NetworkCreate {
                name: "front".into(),
                subnet: Some("10.1.0.0/24".into()),
                ..Default::default()
            },
            &[],
            &mut m,
        )
        .unwrap();
        for (name, alias) in [("a", "pool"), ("b", "pool"), ("web", "www")] {
            s.create_container(
                &ContainerCreate {
                    name: name.into(),
                    network: "front".into(),
                    aliases: vec![alias.into()],
                    hostname: Some(format!("{name}-host")),
                    ..Default::default()
                },
                &mut m,
            )
            .unwrap();
        }
        s.add_link("web", "a:cache").unwrap();
        // A container on another host of the network, as the cluster names it.
        let far = RemoteName {
            network: "front".into(),
            container: "far".into(),
            ip: Ipv4Addr::new(10, 1, 0, 90),
            names: vec!["far".into(), "pool".into()],
        };
        NameTable::build(&s, &["192.0.2.53".parse().unwrap()], &[far])
    })
}

fuzz_target!(|data: &[u8]| {
    let counters = Counters::default();
    let gw = Ipv4Addr::new(10, 1, 0, 1);
    for src in [[10, 1, 0, 4], [10, 1, 0, 200], [10, 1, 0, 1]] {
        for tcp in [false, true] {
            let asker = Asker {
                listen: gw,
                src: IpAddr::V4(Ipv4Addr::from(src)),
                tcp,
            };
            match handle(table(), asker, data, data.len(), &counters) {
                Action::Reply(b) => {
                    assert!(b.len() >= 12, "an answer has a header");
                    assert!(tcp || b.len() <= 65535);
                }
                Action::Forward { upstreams, .. } => assert!(!upstreams.is_empty()),
                Action::Drop => {}
            }
        }
    }
});
