#!/usr/bin/env bash
# bench/ab-order.sh -- does a build keep a flow's packets in order across engine workers?
# A/B two switchyard builds, alternating: one TCP stream h1 -> h2 through
# `switchyard bridge --workers 2` (iperf3 -J: Gbit/s and the sender's retransmissions, which
# reordering inflates), then the average RTT of 200 pings 10 ms apart. Namespaces abs, abh1, abh2
# (removed before and after); the root namespace is not touched.
#
# Usage: sudo bench/ab-order.sh A_BINARY B_BINARY   (env: ROUNDS=3, DUR=5 seconds)
set -u
(($# == 2)) || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
ROUNDS=${ROUNDS:-3} DUR=${DUR:-5}
setup() {
    local h
    ip netns add abs && ip netns add abh1 && ip netns add abh2
    for h in 1 2; do
        ip -n abs link add p$h type veth peer name eth0 netns abh$h
        ip -n abs link set p$h up
        ip -n abh$h link set eth0 up
        ip -n abh$h link set lo up
        ip -n abh$h addr add 10.77.0.$h/24 dev eth0
    done
}
teardown() {
    local n
    for n in abs abh1 abh2; do
        ip netns pids $n 2>/dev/null | xargs -r kill -9
        ip netns del $n 2>/dev/null
    done
    return 0
}
trap teardown EXIT
teardown
for ((r = 1; r <= ROUNDS; r++)); do
    for bin in "$1" "$2"; do
        setup
        ip netns exec abs "$bin" bridge --port p1 --port p2 --workers 2 >/dev/null 2>&1 &
        sleep 1
        ip netns exec abh1 ping -c 3 -i 0.2 -q 10.77.0.2 >/dev/null
        ip netns exec abh2 iperf3 -s -1 -D
        sleep 0.3
        tcp=$(ip netns exec abh1 iperf3 -c 10.77.0.2 -t "$DUR" -J | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)["end"]
print("%.2f Gbit/s, %d retransmits" % (d["sum_received"]["bits_per_second"] / 1e9, d["sum_sent"]["retransmits"]))')
        rtt=$(ip netns exec abh1 ping -q -c 200 -i 0.01 10.77.0.2 | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
        echo "round $r $bin: $tcp, RTT $rtt ms, load $(cut -d' ' -f1 /proc/loadavg)"
        teardown
    done
done
