//! The reaper: once a second, attachments whose namespace is gone are removed (their addresses
//! released), containers whose namespace someone deleted are rebuilt, and address conflicts the
//! engine saw on parent ports are logged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::system;
use super::Daemon;
use crate::model::{Container, NetworkMode};
use crate::netns;

/// Starts the reaper thread.
pub(super) fn spawn(daemon: Arc<Mutex<Daemon>>) {
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || {
            let mut reported = 0u64;
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let mut daemon = daemon.lock().unwrap_or_else(|p| p.into_inner());
                daemon.reap_attachments();
                daemon.heal_containers();
                reported = daemon.report_conflicts(reported);
            }
        })
        .expect("spawning the reaper thread");
}

impl Daemon {
    /// Attachments whose namespace is gone (its process exited, its name was deleted): their
    /// endpoints are removed and their addresses released, as if detached.
    fn reap_attachments(&mut self) {
        let gone: Vec<String> = self
            .state
            .containers
            .values()
            .filter(|c| match &c.mode {
                NetworkMode::External { path, inode } => system::open_external(path)
                    .map(|ns| ns.inode() != *inode)
                    .unwrap_or(true),
                _ => false,
            })
            .map(|c| c.name.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut next = self.state.clone();
        if let Ok(removed) = next.remove_containers(&gone) {
            for c in &removed {
                self.system.container_down(c);
            }
            if self.commit(next).is_ok() {
                tracing::info!(attachments = ?gone, "namespaces gone: attachments removed, addresses released");
                let _ = self.system.sync_policy(&self.state);
                let _ = self.system.sync_nat(&self.state);
                self.sync_names();
            }
        }
    }

    /// Containers whose namespace someone deleted (`ip netns del`) are rebuilt with the same
    /// addresses and MACs: the state is the truth, also between restarts.
    fn heal_containers(&mut self) {
        // One look at /run/netns for all containers (not one per container).
        let Ok(present) = netns::list_named() else {
            return;
        };
        let lost: Vec<Container> = self
            .state
            .containers
            .values()
            .filter(|c| c.owns_netns() && !present.contains(c.netns()))
            .cloned()
            .collect();
        for c in lost {
            tracing::warn!(container = %c.name, "its namespace was deleted behind the daemon's back; rebuilding it");
            for e in &c.endpoints {
                self.system.endpoint_down(e);
            }
            if let Err(e) = self.system.container_up(&self.state, &c) {
                tracing::error!(container = %c.name, "rebuilding: {e:#}");
            }
        }
    }

    /// Logs address conflicts newer than engine time `since`; returns the newest time seen.
    fn report_conflicts(&self, since: u64) -> u64 {
        let Ok(conflicts) = self.system.conflicts() else {
            return since;
        };
        let fresh: Vec<_> = conflicts.iter().filter(|c| c.at_ms > since).collect();
        if fresh.is_empty() {
            return since;
        }
        let names = self.system.names(&self.state);
        let mut newest = since;
        for c in fresh {
            let owner = names
                .owners
                .get(&c.ip)
                .cloned()
                .unwrap_or_else(|| "?".into());
            tracing::warn!(
                ip = %c.ip, owner, claimant = %c.mac, port = names.port(c.port),
                "address conflict: another host claims a local container's address (see switchyard stats)"
            );
            newest = newest.max(c.at_ms);
        }
        newest
    }
}
