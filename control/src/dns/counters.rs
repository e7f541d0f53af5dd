//! The resolver's counters, generated from one list: each has a stable name (used by
//! `switchyard stats`, the JSON view and Prometheus) and an explanation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! dns_counters {
    ($($field:ident => $name:literal, $help:literal;)*) => {
        /// One atomic per counter: the resolver's threads count without a lock.
        #[derive(Debug, Default)]
        pub struct Counters {
            $(pub $field: AtomicU64,)*
        }

        /// Every counter's name and explanation, in the order `switchyard stats` shows them.
        pub const COUNTERS: &[(&str, &str)] = &[$(($name, $help),)*];

        impl Counters {
            /// Every counter by name, zeros included (tools get a stable shape).
            pub fn snapshot(&self) -> BTreeMap<String, u64> {
                let mut out = BTreeMap::new();
                $(out.insert($name.to_string(), self.$field.load(Ordering::Relaxed));)*
                out
            }
        }
    };
}

dns_counters! {
    queries_udp => "queries-udp", "Queries received over UDP.";
    queries_tcp => "queries-tcp", "Queries received over TCP.";
    answer_a => "answer-a", "Local names answered with addresses.";
    answer_ptr => "answer-ptr", "Local addresses answered with their name.";
    answer_nodata => "answer-nodata", "Local names without records of the type asked (AAAA, MX, ...): empty NOERROR.";
    answer_nxdomain => "answer-nxdomain", "NXDOMAIN without asking upstream (a local network's name space or subnet, or an internal network).";
    forwarded => "forwarded", "Queries forwarded to an upstream server and answered by it.";
    forward_failed => "forward-failed", "Forwarded queries no upstream answered in time (or none configured): SERVFAIL.";
    forward_overload => "forward-overload", "Queries refused because 1024 forwards were already waiting: SERVFAIL.";
    truncated => "truncated", "UDP answers too big for the asker, sent with TC set (it retries over TCP).";
    malformed => "malformed", "Queries that do not parse or ask not exactly one question: FORMERR (dropped below 12 bytes).";
    bad_class => "bad-class", "Queries of a class other than IN: FORMERR.";
    not_implemented => "not-implemented", "Queries of another opcode than QUERY: NOTIMP.";
    oversized => "oversized", "Queries longer than 4096 bytes: dropped.";
    not_query => "not-query", "Messages that are responses, not queries: dropped.";
    listen_failed => "listen-failed", "Gateway addresses the resolver could not listen on (logged).";
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_in_the_snapshot_under_its_name() {
        let c = Counters::default();
        Counters::add(&c.malformed);
        let s = c.snapshot();
        assert_eq!(s.len(), COUNTERS.len());
        assert_eq!(s["malformed"], 1);
        assert_eq!(s["queries-udp"], 0);
    }
}
