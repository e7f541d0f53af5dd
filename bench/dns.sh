#!/usr/bin/env bash
# bench/dns.sh -- the embedded DNS resolver against dnsmasq, in one run, over the same path.
#
# A client container on a switchyard network asks, through the switch and the network's host
# tap, either switchyard's resolver (gateway:53) or a dnsmasq listening on the same gateway
# address (port 5353) in the daemon's namespace. Both answer the same local names (five
# containers: switchyard from its table, dnsmasq from --host-record) and forward everything else
# to the same upstream dnsmasq in an "outside" namespace. dnsmasq runs with --cache-size=0 so its
# forwards really go upstream, as switchyard's do (switchyard has no cache). Nothing in the root
# namespace is touched.
#
#     ns OUT (<prefix>o)               ns HOST (<prefix>h)                       ns CT (<prefix>c)
#   eth0 192.0.2.1 dnsmasq  <-veth->  up0 192.0.2.10, switchyard daemon,   <-switch->  dnsperf
#   (*.bench.example)                 dnsmasq on 10.77.0.1:5353              (container)
#
# Per server and kind (local names, forwarded names) it measures with dnsperf from CT:
#   qps   the most queries per second (-c 1 -q 100, DURATION s, no rate limit)
#   p50, p99, max latency at RATE queries per second (-Q RATE, -v: one latency per answer)
#
# Usage:  sudo bench/dns.sh [--quick] [-h|--help]
#   --quick            DURATION=3
#
# Environment:
#   DURATION=10        seconds per dnsperf run
#   RATE=10000         queries per second of the latency runs
#   SWITCHYARD=path    switchyard binary (default: <repo>/target/release/switchyard; built with
#                      `cargo build --release -p control` if missing)
#   READY_TIMEOUT=15   seconds to wait for "daemon ready"
#   STOP_TIMEOUT=10    seconds to wait for switchyard to exit after SIGTERM
#   KEEP_LOGS=1        keep the temp dir with logs (it is always kept when the run fails)
#
# Output: header (date, kernel, nproc, CPU model), a table
#   kind | server | qps | p50 ms | p99 ms | max ms | answers (rcode) at RATE
# and one machine-readable line starting with "RESULT ".
#
# Exit codes: 0 ok, 1 measurement / switchyard failure, 2 usage or missing prerequisite.
set -euo pipefail

SCRIPT_NAME=dns.sh
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$SCRIPT_DIR/lib.sh"

parse_args "$@"
common_env_defaults
DURATION=${DURATION:-10}
RATE=${RATE:-10000}
((QUICK)) && DURATION=3
require_positive_int DURATION RATE READY_TIMEOUT STOP_TIMEOUT
require_root "it creates network namespaces"
require_tools ip dnsperf dnsmasq awk sort
DEFAULT_SWITCHYARD=$REPO_ROOT/target/release/switchyard
SWITCHYARD=${SWITCHYARD:-$DEFAULT_SWITCHYARD}
build_if_missing switchyard "$SWITCHYARD" "$DEFAULT_SWITCHYARD" build --release -p control

PREFIX=dnsb$$
NS_OUT=${PREFIX}o NS_HOST=${PREFIX}h
CT=${PREFIX}c
NAMES=(web1 web2 web3 web4 web5)
TMP=$(mktemp -d /tmp/switchyard-dns-bench.XXXXXX)
CLEANED=0 FAILED=1
SY_LOG=$TMP/switchyard.log
teardown_namespaces() {
    if [[ -n ${SY_PID:-} ]] && kill -0 "$SY_PID" 2>/dev/null; then stop_switchyard >/dev/null; fi
    # Containers are namespaces the daemon made for this run; they stay after it stops.
    kill_namespaces "$CT" "${NAMES[@]/#/$PREFIX-}" "$NS_HOST" "$NS_OUT"
    rm -rf /etc/netns/"$CT" /etc/netns/"$PREFIX"-*
}
install_traps

sy() { "$SWITCHYARD" --socket "$TMP/sock" "$@"; }

# ---------------------------------------------------------------- set-up
ip netns add "$NS_OUT"
ip netns add "$NS_HOST"
ip -n "$NS_HOST" link add up0 type veth peer name eth0 netns "$NS_OUT"
ip -n "$NS_OUT" addr add 192.0.2.1/24 dev eth0
ip -n "$NS_OUT" link set eth0 up
ip -n "$NS_OUT" link set lo up
ip -n "$NS_HOST" addr add 192.0.2.10/24 dev up0
ip -n "$NS_HOST" link set up0 up
ip -n "$NS_HOST" link set lo up
ip netns exec "$NS_OUT" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address 192.0.2.1 --pid-file --user=root --address=/bench.example/192.0.2.99 \
    >"$TMP/upstream.log" 2>&1 &

ip netns exec "$NS_HOST" "$SWITCHYARD" daemon --state-dir "$TMP/state" --socket "$TMP/sock" \
    --dns 192.0.2.1 >"$SY_LOG" 2>&1 &
SY_PID=$!
deadline=$((SECONDS + READY_TIMEOUT))
until grep -q "daemon ready" "$SY_LOG"; do
    ((SECONDS < deadline)) || die "switchyard did not start; see $SY_LOG"
    sleep 0.1
done
sy network create bench --subnet 10.77.0.0/24 >/dev/null
host_records=()
for n in "${NAMES[@]}"; do
    sy container create "$PREFIX-$n" --network bench --alias "$n" >/dev/null
    ip=$(ip -n "$PREFIX-$n" -4 -o addr show eth0 | awk '{split($4, a, "/"); print a[1]}')
    host_records+=("--host-record=$n,$ip")
done
sy container create "$CT" --network bench >/dev/null
ip netns exec "$NS_HOST" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address 10.77.0.1 --port 5353 --pid-file --user=root --cache-size=0 \
    --server=192.0.2.1 --dns-forward-max=1000 "${host_records[@]}" >"$TMP/dnsmasq.log" 2>&1 &

for n in "${NAMES[@]}"; do echo "$n A"; done >"$TMP/local.txt"
for i in $(seq 1 1000); do echo "q$i.bench.example A"; done >"$TMP/forward.txt"

# The first answer from each server, or die.
for port in 53 5353; do
    deadline=$((SECONDS + READY_TIMEOUT))
    until ip netns exec "$CT" dig +short +time=1 +tries=1 -p "$port" @10.77.0.1 web1 | grep -q .; do
        ((SECONDS < deadline)) || die "no answer from 10.77.0.1:$port"
        sleep 0.2
    done
    ip netns exec "$CT" dig +short +time=2 +tries=1 -p "$port" @10.77.0.1 q0.bench.example \
        | grep -q 192.0.2.99 || die "no forwarded answer from 10.77.0.1:$port"
done

# ---------------------------------------------------------------- measurement
# qps PORT FILE: the most queries per second.
qps() {
    ip netns exec "$CT" dnsperf -s 10.77.0.1 -p "$1" -d "$2" -l "$DURATION" -c 1 -q 100 \
        >"$TMP/qps-$1-$(basename "$2").log" 2>&1
    awk '/Queries per second:/ {print int($4)}' "$TMP/qps-$1-$(basename "$2").log"
}

# latency PORT FILE: "p50 p99 max rcodes" in milliseconds at RATE queries per second.
latency() {
    local log=$TMP/lat-$1-$(basename "$2").log
    ip netns exec "$CT" dnsperf -s 10.77.0.1 -p "$1" -d "$2" -l "$DURATION" -c 1 -q 500 \
        -Q "$RATE" -v >"$log" 2>&1
    # Verbose lines: "> NOERROR web1 A 0.000123" (latency in seconds, last field).
    awk '/^> / {print $NF * 1000}' "$log" | sort -n >"$log.sorted"
    local n p50 p99 max rcodes
    n=$(wc -l <"$log.sorted")
    ((n > 0)) || die "no answers in $log"
    p50=$(awk -v n="$n" 'NR == int(n * 0.50) + 1 {printf "%.3f", $1}' "$log.sorted")
    p99=$(awk -v n="$n" 'NR == int(n * 0.99) + 1 {printf "%.3f", $1}' "$log.sorted")
    max=$(tail -n 1 "$log.sorted" | awk '{printf "%.3f", $1}')
    rcodes=$(awk '/^> / {c[$2]++} END {for (r in c) printf "%s=%d ", r, c[r]}' "$log")
    echo "$p50 $p99 $max ${rcodes% }"
}

print_env_header "DNS: switchyard's resolver vs dnsmasq (same path, same names, same upstream)"
print_switchyard_header "daemon --dns 192.0.2.1"
echo "dnsperf:    $(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null || echo unknown)"
echo "dnsmasq:    $(dnsmasq --version | awk 'NR == 1')  (--cache-size=0, --host-record per name)"
echo "duration:   ${DURATION}s per run; latency runs at $RATE queries/s"
printf '\n%-9s %-11s %9s %8s %8s %8s  %s\n' kind server qps p50_ms p99_ms max_ms "answers at $RATE/s"
result="RESULT"
for kind in local forward; do
    for server in switchyard:53 dnsmasq:5353; do
        port=${server#*:}
        q=$(qps "$port" "$TMP/$kind.txt")
        read -r p50 p99 max rcodes < <(latency "$port" "$TMP/$kind.txt")
        printf '%-9s %-11s %9s %8s %8s %8s  %s\n' "$kind" "${server%:*}" "$q" "$p50" "$p99" "$max" "$rcodes"
        result+=" ${kind}_${server%:*}_qps=$q ${kind}_${server%:*}_p99_ms=$p99"
    done
done
echo
echo "$result"
echo "switchyard dns counters: $(sy stats | grep '^DNS:' || true)"
FAILED=0
