//! Names after every change: the resolver's table rebuilt from the state (and the other hosts'
//! containers on overlay networks, as the cluster thread last read them) and swapped in whole,
//! and each container's resolv.conf, both from the daemon's own resolv.conf (read each time, so a
//! changed host file is followed) unless `--dns` replaced its servers.

use crate::model::dns::{NameTable, ResolvConf};

use super::Daemon;

/// The daemon namespace's resolver configuration (under `ip netns exec`, the namespace's own).
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

impl Daemon {
    /// Publishes a new name table to the resolver and rewrites the containers' resolv.conf.
    pub(super) fn sync_names(&mut self) {
        let host =
            ResolvConf::parse(&std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default());
        let upstreams = if self.dns_servers.is_empty() {
            &host.nameservers
        } else {
            &self.dns_servers
        };
        let table = NameTable::build(&self.state, upstreams, &self.cluster_view.remote_names);
        for (ip, e) in self.resolver.publish(table) {
            tracing::warn!(%ip, "the resolver cannot listen on {ip}:53: {e}");
        }
        self.system.sync_resolv_conf(&self.state, &host);
    }
}
