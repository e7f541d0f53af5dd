#!/usr/bin/env bash
# switchyard demo: three "containers" (network namespaces) plugged into a userspace switch through veth
# pairs, pinging each other; then the switch's learned MAC table and counters.
#
#   sudo tools/demo.sh
#
# Everything lives in namespaces named sydemo-*; the root namespace's addresses and routes are not
# touched. Everything is removed on exit, also on Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $EUID -eq 0 ]] || { echo "demo.sh: run as root (it creates network namespaces): sudo $0" >&2; exit 2; }
for tool in ip ping cargo; do
    command -v "$tool" >/dev/null || { echo "demo.sh: '$tool' is missing (apt-get install iproute2 iputils-ping; Rust from rustup.rs)" >&2; exit 2; }
done

echo "== building switchyard (release)"
cargo build --release -q -p control
BIN=$PWD/target/release/switchyard

P=sydemo
SW=$P-switch
SY_PID=
remove_namespaces() {
    for ns in $SW $P-web $P-db $P-cache; do ip netns del "$ns" 2>/dev/null || true; done
}
cleanup() {
    [[ -n $SY_PID ]] && kill "$SY_PID" 2>/dev/null && wait "$SY_PID" 2>/dev/null || true
    remove_namespaces
    rm -rf "$LOG"
}
remove_namespaces # leftovers of an interrupted earlier run
LOG=$(mktemp -d)
trap cleanup EXIT INT TERM

echo "== topology: web, db, cache <-veth-> switchyard (namespace $SW)"
ip netns add "$SW"
i=2
for c in web db cache; do
    ip netns add "$P-$c"
    ip -n "$SW" link add "v-$c" type veth peer name eth0 netns "$P-$c"
    ip -n "$P-$c" addr add "172.30.0.$i/24" dev eth0
    ip -n "$P-$c" link set eth0 up
    ip -n "$P-$c" link set lo up
    printf '   %-6s 172.30.0.%d  %s\n' "$c" "$i" "$(ip netns exec "$P-$c" cat /sys/class/net/eth0/address)"
    i=$((i + 1))
done

echo "== starting: switchyard bridge --port v-web --port v-db --port v-cache"
ip netns exec "$SW" "$BIN" bridge --port v-web --port v-db --port v-cache >"$LOG/out" 2>"$LOG/err" &
SY_PID=$!
for _ in $(seq 100); do grep -q forwarding "$LOG/err" && break; sleep 0.05; done
grep -q forwarding "$LOG/err" || { cat "$LOG/err"; exit 1; }

echo "== ping through the switch"
for pair in "web 172.30.0.3" "web 172.30.0.4" "db 172.30.0.4"; do
    set -- $pair
    printf '   %-5s -> %-11s ' "$1" "$2"
    ip netns exec "$P-$1" ping -c 3 -i 0.2 -q "$2" | grep -E 'packet loss|rtt'| tr '\n' ' '
    echo
done

echo "== what the switch learned (SIGUSR1 prints its MAC table and counters)"
kill -USR1 "$SY_PID"
sleep 0.3
cat "$LOG/out"
echo "== done (namespaces removed)"
