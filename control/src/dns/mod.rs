//! The embedded DNS resolver: a front end, like the CLI. It answers containers' queries on each
//! network's gateway address, UDP and TCP port 53 (as aardvark-dns does), from a `NameTable`
//! that the daemon rebuilds from the state after every change (`Resolver::publish`), and forwards
//! the rest to upstream servers from the daemon's namespace. It never reaches into the daemon:
//! the table is all it knows.
//!
//! Why the gateway and not Docker's 127.0.0.11: the gateway is already an address of the daemon's
//! namespace (the host tap), reachable by every container of the network through the switch, so
//! one socket pair per network serves them all, with no listener or DNAT inside each container,
//! and the address a query came to names the asker's network.
//!
//! `answer.rs` decides one query (pure; fuzzed), `server.rs` holds the sockets and forwards,
//! `counters.rs` the counters. The sockets are served by a current-thread tokio runtime on a
//! thread of the resolver's own (never the engine's packet path).

pub mod answer;
pub mod counters;
mod server;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use tokio::task::AbortHandle;

use crate::model::dns::NameTable;
use server::Shared;

pub use server::FORWARD_BUDGET;

pub struct Resolver {
    /// The runtime driven by the resolver's one thread (`dns`).
    runtime: tokio::runtime::Handle,
    shared: Arc<Shared>,
    /// The tasks serving each gateway address (UDP, TCP).
    listening: HashMap<Ipv4Addr, [AbortHandle; 2]>,
}

impl Resolver {
    pub fn start() -> std::io::Result<Resolver> {
        // A current-thread runtime on a thread of its own: exactly one thread, whatever the load
        // (a multi-thread runtime's pool may grow), driving every socket and forward.
        let (started, runtime) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || {
                let built = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build();
                match built {
                    Ok(rt) => {
                        let _ = started.send(Ok(rt.handle().clone()));
                        rt.block_on(std::future::pending::<()>());
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            })?;
        let runtime = runtime
            .recv()
            .map_err(|_| std::io::Error::other("the resolver's thread ended at start"))??;
        Ok(Resolver {
            runtime,
            shared: Arc::new(Shared::new()),
            listening: HashMap::new(),
        })
    }

    /// Answers from `table` from now on, and listens on exactly its gateway addresses. Returns
    /// the addresses it could not listen on, with why.
    pub fn publish(&mut self, table: NameTable) -> Vec<(Ipv4Addr, std::io::Error)> {
        let wanted = table.listen_addresses();
        *self.shared.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        self.listening.retain(|ip, tasks| {
            let keep = wanted.contains(ip);
            if !keep {
                tasks.iter().for_each(AbortHandle::abort);
            }
            keep
        });
        let mut failures = Vec::new();
        for ip in wanted {
            if self.listening.contains_key(&ip) {
                continue;
            }
            match self.listen(ip) {
                Ok(tasks) => {
                    self.listening.insert(ip, tasks);
                }
                Err(e) => {
                    counters::Counters::add(&self.shared.counters.listen_failed);
                    failures.push((ip, e));
                }
            }
        }
        failures
    }

    fn listen(&self, ip: Ipv4Addr) -> std::io::Result<[AbortHandle; 2]> {
        let (udp, tcp) = server::bind(ip)?;
        let _inside = self.runtime.enter();
        let udp = tokio::net::UdpSocket::from_std(udp)?;
        let tcp = tokio::net::TcpListener::from_std(tcp)?;
        let u = self
            .runtime
            .spawn(server::serve_udp(udp, ip, Arc::clone(&self.shared)));
        let t = self
            .runtime
            .spawn(server::serve_tcp(tcp, ip, Arc::clone(&self.shared)));
        Ok([u.abort_handle(), t.abort_handle()])
    }

    /// The addresses listened on now.
    pub fn listening(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self.listening.keys().copied().collect();
        v.sort();
        v
    }

    /// The recent queries, oldest first.
    pub fn log(&self) -> Vec<crate::api::trace::DnsQueryView> {
        self.shared.log()
    }

    /// Every counter by name.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.shared.counters.snapshot()
    }
}
