#!/usr/bin/env bash
# switchyard demo: a docker-like session on the userspace switch.
#
#   sudo tools/demo.sh
#
# Starts `switchyard daemon` inside a namespace that plays the host (sydemo-host), so the root
# namespace's addresses and routes are never touched. Then, as you would with docker: a second
# network, three lightweight containers (network namespaces sy-web, sy-db, sy-cache), pings by
# address and by name through the switch (the embedded DNS resolver, also asked by the host),
# `network inspect`, and the MAC table the switch holds. It kills the
# daemon with SIGKILL and starts it again to show that traffic resumes by itself. Everything is
# removed on exit, also on Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $EUID -eq 0 ]] || { echo "demo.sh: run as root (it creates network namespaces): sudo $0" >&2; exit 2; }
for tool in ip ping cargo; do
    command -v "$tool" >/dev/null || { echo "demo.sh: '$tool' is missing (apt-get install iproute2 iputils-ping; Rust from rustup.rs)" >&2; exit 2; }
done

echo "== building switchyard (release)"
cargo build --release -q -p control
BIN=$PWD/target/release/switchyard

HOST=sydemo-host
CONTAINERS=(sy-web sy-db sy-cache)
WORK=$(mktemp -d)
export SWITCHYARD_SOCKET=$WORK/switchyard.sock
DAEMON_PID=
remove_all() {
    for ns in "${CONTAINERS[@]}" $HOST; do
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns" # the containers' hosts files, written by the daemon
    done
}
cleanup() {
    [[ -n $DAEMON_PID ]] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
    remove_all
    rm -rf "$WORK"
}
remove_all # leftovers of an interrupted earlier run
trap cleanup EXIT INT TERM

STARTS=0
start_daemon() {
    STARTS=$((STARTS + 1))
    local log=$WORK/daemon-$STARTS.log
    ip netns exec $HOST "$BIN" daemon --state-dir "$WORK/state" 2>"$log" &
    DAEMON_PID=$!
    for _ in $(seq 200); do grep -q "daemon ready" "$log" 2>/dev/null && return; sleep 0.05; done
    cat "$log"; exit 1
}
run() { echo "\$ switchyard $*"; "$BIN" "$@"; }
ping_from() {
    printf '   %-8s -> %-12s ' "$1" "$2"
    ip netns exec "$1" ping -c 3 -i 0.2 -q "$2" | grep -E 'packet loss' | tr '\n' ' '
    echo
}

echo "== starting the daemon in namespace $HOST (state in $WORK/state)"
ip netns add $HOST
ip -n $HOST link set lo up
start_daemon
run network ls
echo
run network create backend --subnet 10.20.0.0/24 --ip-range 10.20.0.128/25
run container create sy-web
run container create sy-db --ip 172.17.0.10
run container create sy-cache --network backend
run network connect backend sy-db
run container ls
echo
echo "== ping by address through the switch"
ping_from sy-web 172.17.0.10
ping_from sy-db 10.20.0.128
ping_from sy-web 172.17.0.1
echo
run network inspect backend
echo
echo "== names: each network's resolver on its gateway; sy-db (on bridge and backend) finds sy-cache"
run container exec sy-db -- getent hosts sy-cache
ping_from sy-db sy-cache.backend
echo "== the host resolves container names too: point its resolver at a gateway"
echo "   (here the demo's host namespace: /etc/netns/$HOST/resolv.conf = nameserver 10.20.0.1)"
mkdir -p /etc/netns/$HOST
echo "nameserver 10.20.0.1" >/etc/netns/$HOST/resolv.conf
echo "\$ getent hosts sy-cache.backend   # on the host"
ip netns exec $HOST getent hosts sy-cache.backend
run trace dns
echo
echo "== what would happen to a packet from sy-web to sy-db port 80? (a what-if trace: nothing is sent)"
run trace packet --in sy-web 'tcp,src=172.17.0.2,dst=172.17.0.10,dport=80' --explain
echo "== and the live path of pings from sy-web to sy-cache's network (routed by the host, dropped by isolation)"
run trace add sy-web 1 --filter icmp
run trace add backend 1 --filter icmp
ip netns exec sy-web ping -c 1 -W 1 -q 10.20.0.128 >/dev/null || true
run trace show --explain
echo
run container exec sy-db -- ip -br addr
echo
echo "== kill -9 the daemon, start it again: state, veths and taps are restored"
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
start_daemon
ping_from sy-web 172.17.0.10
echo
run status
echo "== done (namespaces removed)"
