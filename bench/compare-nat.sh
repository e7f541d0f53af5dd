#!/usr/bin/env bash
# bench/compare-nat.sh -- port publishing (Docker's `-p 8080:80`) benchmark: kernel bridge +
# iptables DNAT/MASQUERADE (what docker0 does) vs switchyard's own NAT.
#
# Both phases run in ONE invocation over the SAME topology, so the ratios are comparable even on
# a noisy VM. Everything lives in throw-away network namespaces; the root namespace is never
# touched (no links, addresses, routes, sysctls or iptables rules are changed there).
#
#     ns OUT (<prefix>o)              ns HOST (<prefix>h)                    ns CT (<prefix>c)
#   eth0 192.0.2.1/24  <-veth->  up0 192.0.2.10  [br0 + iptables | switchyard]  eth0 (container)
#
#   Phase 1 (kernel): in HOST a Linux bridge br0 172.31.0.1/24; CT's eth0 172.31.0.2/24 (default
#     route via 172.31.0.1) hangs off br0 through a veth; up0 holds 192.0.2.10/24; ip_forward=1
#     in HOST only; iptables -t nat PREROUTING -d 192.0.2.10 -p tcp --dport 8080 -j DNAT
#     --to-destination 172.31.0.2:80, POSTROUTING -s 172.31.0.0/24 ! -o br0 -j MASQUERADE,
#     FORWARD policy ACCEPT. Kernel default offloads everywhere.
#   Phase 2 (switchyard): all namespaces recreated with the same names, up0 WITHOUT a kernel IPv4
#     address; `ip netns exec HOST switchyard daemon --state-dir TMP/state --socket TMP/sock
#     --uplink up0 --uplink-ip 192.0.2.10/24 --uplink-gateway 192.0.2.1 [EXTRA_ARGS]`, then
#     `switchyard container create <prefix>c -p 8080:80` (the container namespace CT is created by
#     switchyard and gets 172.17.0.2).
#   FLOOR=1 runs, in place of phase 2, the floor of a userspace switch on this topology: CT's
#     eth0 holds the published address 192.0.2.10/24 itself and its servers listen on 8080, and
#     `relay bridge --port up0 --port vc0 [EXTRA_ARGS]` (bench/src/bin/relay.rs) moves frames
#     between the uplink and the container's veth through switchyard's own AF_PACKET ports and does
#     nothing else: no NAT, no tables. Its column is what the sockets alone cost; switchyard's own
#     column can come close to it, never pass it. EXTRA_ARGS such as `--workers 2` reach the relay.
#
# Per phase it measures, from OUT against the published port 192.0.2.10:8080 (each test in
# TESTS, each point of its list, in this order):
#   tcp   iperf3 -s -p 80 -1 in CT; iperf3 -c 192.0.2.10 -p 8080 -t DURATION -P STREAMS -J from
#         OUT; Gbit/s = end.sum_received (all streams together). One run per value of STREAMS.
#   conn  new TCP connections per second: `connrate serve 80` in CT, `connrate connect
#         192.0.2.10:8080 DURATION --parallel N` in OUT for each N in PARALLEL (connect, write
#         1 byte, read until the server closes, close; 1 s connect timeout). OUT gets
#         ip_local_port_range "1024 65535" and tcp_tw_reuse=1 (namespace-local sysctls) so the
#         client never runs out of ports.
#
# Usage:  sudo bench/compare-nat.sh [--quick] [-h|--help] [-- EXTRA_DAEMON_ARGS...]
#   --quick            DURATION=3 (smoke run)
#   -- ARGS...         appended verbatim to the `switchyard daemon` command line
#
# Environment:
#   DURATION=10        seconds per iperf3 / connrate run
#   TESTS="tcp conn"   which tests to run (a subset, spaces or commas)
#   STREAMS=1          iperf3 parallel streams (-P); a list ("1 2 4") runs one TCP test per value
#   PARALLEL=4         connrate client threads; a list ("1 4 16 64") runs one test per value
#   SWITCHYARD=path    switchyard binary (default: <repo>/target/release/switchyard; built with
#                      `cargo build --release -p control` if missing)
#   CONNRATE=path      connrate binary (default: <repo>/target/release/connrate; built with
#                      `cargo build --release -p bench --bin connrate` if missing)
#   SKIP_SWITCHYARD=1  run only the kernel phase (switchyard columns print NA)
#   READY_TIMEOUT=15   seconds to wait for "daemon ready" and then for the published port to work
#   STOP_TIMEOUT=10    seconds to wait for switchyard to exit after SIGTERM
#   KEEP_LOGS=1        keep the temp dir with logs (it is always kept when the run fails)
#   FLOOR=1            phase 2 is the relay (see above), not switchyard; RELAY=path its binary
#                      (default <repo>/target/release/relay, built with `cargo build --release -p
#                      bench --bin relay` if missing)
#
# Output: header (date, kernel, nproc, CPU model, load average), a table
#   metric | kernel (bridge+iptables) | switchyard | ratio (switchyard/kernel)
# with one row per point, one machine-readable line per point starting with "POINT " (see
# report_points in lib.sh; bench/sweep.sh reads them) and one starting with "RESULT " (the first
# point of each test: with the defaults above, the only one).
#
# Exit codes: 0 ok, 1 measurement / switchyard failure, 2 usage or missing prerequisite.
set -euo pipefail

SCRIPT_NAME=compare-nat.sh          # prefix of every message
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$SCRIPT_DIR/lib.sh"         # usage, parse_args, require_*, die, cleanup, ... (+ REPO_ROOT)

# ---------------------------------------------------------------- arguments
parse_args "$@"
if ((QUICK)); then
    DURATION=3
fi
DURATION=${DURATION:-10}
TESTS=${TESTS:-tcp conn}
STREAMS=${STREAMS:-1}
PARALLEL=${PARALLEL:-4}
FLOOR=${FLOOR:-0}
common_env_defaults                 # SKIP_SWITCHYARD READY_TIMEOUT STOP_TIMEOUT KEEP_LOGS
require_positive_int DURATION READY_TIMEOUT STOP_TIMEOUT
require_int_list FLOOR 0 1
require_word_list TESTS tcp conn
require_int_list STREAMS 1 128
require_int_list PARALLEL 1 1024
wants() { [[ " $TESTS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- prerequisites
require_tools ip iptables iperf3 ss python3 timeout
require_root "network namespaces, iptables"

CONNRATE_DEFAULT="$REPO_ROOT/target/release/connrate"
CONNRATE=${CONNRATE:-$CONNRATE_DEFAULT}
build_if_missing binary "$CONNRATE" "$CONNRATE_DEFAULT" --release -p bench --bin connrate
SWITCHYARD_DEFAULT="$REPO_ROOT/target/release/switchyard"
SWITCHYARD=${SWITCHYARD:-$SWITCHYARD_DEFAULT}
RELAY_DEFAULT="$REPO_ROOT/target/release/relay"
RELAY=${RELAY:-$RELAY_DEFAULT}
if ((SKIP_SWITCHYARD)); then
    :
elif ((FLOOR)); then
    build_if_missing "relay binary" "$RELAY" "$RELAY_DEFAULT" --release -p bench --bin relay
else
    build_if_missing binary "$SWITCHYARD" "$SWITCHYARD_DEFAULT" --release -p control
fi

# ---------------------------------------------------------------- topology names
PFX="synat$$"                       # namespace names; interface names inside are fixed & short
NS_O="${PFX}o" NS_H="${PFX}h" NS_C="${PFX}c"
IP_OUT=192.0.2.1 IP_PUB=192.0.2.10
PUB_PORT=8080 CT_PORT=80
SERVE_PORT=$CT_PORT                 # where CT's servers listen: the published port in the floor
K_BR_IP=172.31.0.1 K_CT_IP=172.31.0.2 K_SUBNET=172.31.0.0/24

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-compare-nat.XXXXXX")
SY_SOCK="$TMP/sock"
SY_PID=""
# shellcheck disable=SC2034  # CLEANED and FAILED are read by cleanup (lib.sh)
CLEANED=0 FAILED=1                # FAILED is cleared just before a successful exit

# Kills everything still running inside our namespaces (all started by this script or by the
# switchyard it started) and deletes the namespaces. Called between the phases (under set -e:
# nothing here may fail the script) and by cleanup (lib.sh).
teardown_namespaces() {
    kill_namespaces "$NS_O" "$NS_H" "$NS_C"
    # /etc/netns/<container> is written by switchyard for its container; the name is ours alone
    if [[ -d /etc/netns/$NS_C ]]; then rm -rf -- "/etc/netns/$NS_C" || true; fi
    return 0
}
install_traps                       # EXIT: cleanup; INT/TERM: message + exit 130/143

# Foreground helpers only: background jobs call `ip netns exec` directly so that $! is the real
# process (ip netns exec execs the command; a backgrounded shell function would be a subshell).
inO() { ip netns exec "$NS_O" "$@"; }
inH() { ip netns exec "$NS_H" "$@"; }
inC() { ip netns exec "$NS_C" "$@"; }
sy() { SWITCHYARD_SOCKET="$SY_SOCK" "$SWITCHYARD" "$@"; }

# ---------------------------------------------------------------- header
print_env_header "switchyard vs kernel bridge + iptables: published port ($IP_PUB:$PUB_PORT -> container:$CT_PORT)"
echo "iperf3:     $(iperf3 --version 2>/dev/null | head -n1)"
echo "iptables:   $(iptables --version 2>/dev/null | head -n1)"
echo "connrate:   $CONNRATE (--parallel $PARALLEL)"
echo "duration:   ${DURATION}s per test"
echo "tests:      $TESTS (tcp: streams $STREAMS; conn: clients $PARALLEL)"
if ((FLOOR)); then
    echo "floor:      $RELAY bridge --port up0 --port vc0 ${EXTRA_ARGS[*]} (in the switchyard column)"
else
    print_switchyard_header "daemon --uplink up0 --uplink-ip $IP_PUB/24 --uplink-gateway $IP_OUT ${EXTRA_ARGS[*]}"
fi
echo "namespaces: $NS_O $NS_H $NS_C   temp dir: $TMP"
echo

# ---------------------------------------------------------------- topology
# OUT and HOST with the up0 <-> eth0 veth; HOST's up0 gets no address here.
setup_outer() {
    local ns
    for ns in "$NS_O" "$NS_H"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # no IPv6 chatter (DAD/ND/MLD) on the test links; namespace-local sysctls only
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
    done
    # the client opens DURATION * (tens of thousands) connections: widen its port range and let
    # it reuse ports (namespace-local sysctls of the throw-away OUT namespace)
    inO sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
    # the veth is created inside HOST and its peer moved straight into OUT: nothing ever exists
    # in the root namespace. Kernel default offloads are left untouched.
    ip -n "$NS_H" link add up0 type veth peer name eth0 netns "$NS_O"
    ip -n "$NS_O" addr add "$IP_OUT/24" dev eth0
    ip -n "$NS_O" link set eth0 up
    ip -n "$NS_H" link set up0 up
}

# What Docker does for docker0 and `-p 8080:80`, in HOST only.
setup_kernel() {
    ip netns add "$NS_C"
    ip -n "$NS_C" link set lo up
    inC sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
    inH ip link add br0 type bridge
    inH ip addr add "$K_BR_IP/24" dev br0
    inH ip link set br0 up
    ip -n "$NS_H" link add vc0 type veth peer name eth0 netns "$NS_C"
    inH ip link set vc0 master br0
    inH ip link set vc0 up
    inC ip addr add "$K_CT_IP/24" dev eth0
    inC ip link set eth0 up
    inC ip route add default via "$K_BR_IP"
    inH ip addr add "$IP_PUB/24" dev up0
    inH sysctl -qw net.ipv4.ip_forward=1
    inH iptables -t nat -A PREROUTING -d "$IP_PUB" -p tcp --dport "$PUB_PORT" -j DNAT --to-destination "$K_CT_IP:$CT_PORT"
    inH iptables -t nat -A POSTROUTING -s "$K_SUBNET" ! -o br0 -j MASQUERADE
    inH iptables -P FORWARD ACCEPT
}

wait_listening() {   # port log
    local i
    for ((i = 0; i < 50; i++)); do
        if inC ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    cat "$2" >&2 || true
    die "[$PHASE] server in $NS_C did not start listening on port $1 (see $2)"
}

start_connrate_server() {
    CR_LOG="$TMP/connrate-server-$PHASE.log"
    ip netns exec "$NS_C" "$CONNRATE" serve "$SERVE_PORT" >>"$CR_LOG" 2>&1 &
    CR_PID=$!            # `ip netns exec` execs the command, so this is connrate itself
    wait_listening "$SERVE_PORT" "$CR_LOG"
}

stop_connrate_server() {
    kill -TERM "$CR_PID" 2>/dev/null || true
    wait "$CR_PID" 2>/dev/null || true
}

# One short connrate run from OUT through the published port; true when a connection completed.
published_port_works() {
    local out
    out=$(inO timeout 5 "$CONNRATE" connect "$IP_PUB:$PUB_PORT" 0.3 --parallel 1 2>/dev/null || true)
    [[ $out =~ connections=([0-9]+) ]] && ((BASH_REMATCH[1] > 0))
}

wait_published() {   # timeout [pid-that-must-stay-alive]
    local pid=${2:-} deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        if published_port_works; then return 0; fi
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- measurements
# Each measure_* records its points (record_point, lib.sh) for the current phase.
measure_tcp() {   # streams
    local streams=$1 out="$TMP/iperf3-$PHASE-P$1.json" err="$TMP/iperf3-$PHASE-P$1.err"
    local slog="$TMP/iperf3-server-$PHASE-P$1.log" rc=0 spid label="TCP throughput (Gbit/s)"
    ((streams == 1)) || label="TCP, $streams streams (Gbit/s)"
    ip netns exec "$NS_C" iperf3 -s -p "$SERVE_PORT" -1 >"$slog" 2>&1 &
    spid=$!
    wait_listening "$SERVE_PORT" "$slog"
    inO iperf3 -c "$IP_PUB" -p "$PUB_PORT" -t "$DURATION" -P "$streams" -J >"$out" 2>"$err" || rc=$?
    R_TCP=$(iperf3_gbps "$out")
    # the -1 server exits after its one test; make sure it is gone before port 80 is reused
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    if [[ $R_TCP == ERR:* || $rc -ne 0 ]]; then
        cat "$err" >&2 || true
        die "[$PHASE] iperf3 -P $streams failed (rc=$rc): ${R_TCP#ERR:}"
    fi
    printf '  tcp : %10s Gbit/s (%d streams)\n' "$R_TCP" "$streams"
    record_point tcp "streams=$streams" gbps "$R_TCP" "$label" "higher is better"
}

measure_conn() {   # clients
    local clients=$1 out="$TMP/connrate-$PHASE-$1.out" err="$TMP/connrate-$PHASE-$1.err" rc=0
    start_connrate_server
    published_port_works || die "[$PHASE] connrate server in $NS_C not reachable through $IP_PUB:$PUB_PORT"
    inO "$CONNRATE" connect "$IP_PUB:$PUB_PORT" "$DURATION" --parallel "$clients" >"$out" 2>"$err" || rc=$?
    stop_connrate_server
    record_connrate "$clients" "$rc" "$out" "$err" "$IP_PUB:$PUB_PORT"
}

run_measurements() {
    local streams clients
    if wants tcp; then
        for streams in $STREAMS; do measure_tcp "$streams"; sleep 1; done
    fi
    if wants conn; then
        for clients in $PARALLEL; do measure_conn "$clients"; sleep 1; done
    fi
}

# Runs the measurements through the phase's forwarder (SY_PID, logging to SY_LOG; LABEL names it
# in messages) once a connection through the published port works.
measure_through() {   # label
    local label=$1 rc=0
    start_connrate_server
    wait_published "$READY_TIMEOUT" "$SY_PID" || rc=$?
    ((rc == 0)) || not_ready "$rc" "$label" \
        "$IP_PUB:$PUB_PORT not reachable from OUT through $label within ${READY_TIMEOUT}s"
    stop_connrate_server
    run_measurements
    kill -0 "$SY_PID" 2>/dev/null || { tail -n 30 "$SY_LOG" >&2; die "$label died during the measurements"; }
}

# ---------------------------------------------------------------- run
# Phase 1: kernel bridge + iptables
PHASE=kernel
setup_outer
setup_kernel
echo "== phase 1: kernel bridge br0 + iptables DNAT/MASQUERADE in $NS_H (bridge-nf-call-iptables=$(inH cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo n/a))"
start_connrate_server
wait_published "$READY_TIMEOUT" || die "[kernel] OUT cannot reach $IP_PUB:$PUB_PORT through DNAT"
stop_connrate_server
run_measurements
teardown_namespaces

# Phase 2, or its floor: the relay between up0 and a container that holds the published address.
SY_RC=NA
if ((!SKIP_SWITCHYARD && FLOOR)); then
    PHASE=switchyard                # the column the floor is reported in
    echo
    echo "== phase 2 (floor): relay between up0 and vc0 in $NS_H; $NS_C holds $IP_PUB and serves on $PUB_PORT"
    setup_outer
    ip netns add "$NS_C"
    ip -n "$NS_C" link set lo up
    inC sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
    ip -n "$NS_H" link add vc0 type veth peer name eth0 netns "$NS_C"
    inC ip addr add "$IP_PUB/24" dev eth0
    inC ip link set eth0 up
    inH ip link set vc0 up
    SERVE_PORT=$PUB_PORT
    SY_LOG="$TMP/relay.log"
    ip netns exec "$NS_H" "$RELAY" bridge --port up0 --port vc0 "${EXTRA_ARGS[@]}" >"$SY_LOG" 2>&1 &
    SY_PID=$!            # `ip netns exec` execs the command, so this is the relay itself
    measure_through "the relay"
    stop_switchyard                 # sets SY_RC
    teardown_namespaces
elif ((!SKIP_SWITCHYARD)); then
    PHASE=switchyard
    echo
    echo "== phase 2: switchyard daemon in $NS_H (uplink up0 = $IP_PUB/24, container $NS_C -p $PUB_PORT:$CT_PORT)"
    setup_outer
    SY_LOG="$TMP/switchyard.log"
    ip netns exec "$NS_H" "$SWITCHYARD" daemon --state-dir "$TMP/state" --socket "$SY_SOCK" \
        --uplink up0 --uplink-ip "$IP_PUB/24" --uplink-gateway "$IP_OUT" "${EXTRA_ARGS[@]}" >"$SY_LOG" 2>&1 &
    SY_PID=$!            # `ip netns exec` execs the command, so this is switchyard itself
    deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q "daemon ready" "$SY_LOG" 2>/dev/null; do
        if ! kill -0 "$SY_PID" 2>/dev/null; then
            wait "$SY_PID" 2>/dev/null && r=0 || r=$?
            echo "$SCRIPT_NAME: switchyard daemon exited (rc=$r) before it was ready; log tail:" >&2
            tail -n 30 "$SY_LOG" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "$SCRIPT_NAME: no \"daemon ready\" from switchyard after ${READY_TIMEOUT}s; log tail:" >&2
            tail -n 30 "$SY_LOG" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    sy container create "$NS_C" -p "$PUB_PORT:$CT_PORT" >"$TMP/container-create.log" 2>&1 \
        || { cat "$TMP/container-create.log" >&2; tail -n 30 "$SY_LOG" >&2; die "[switchyard] container create $NS_C -p $PUB_PORT:$CT_PORT failed"; }
    measure_through switchyard
    # Where frames were lost, if anywhere (a lost SYN is a connection that waits 1 s).
    echo "  switchyard stats after the measurements:"
    sy stats 2>&1 | sed 's/^/    | /'
    sy container rm "$NS_C" >"$TMP/container-rm.log" 2>&1 \
        || echo "  switchyard container rm $NS_C failed: $(tail -n 1 "$TMP/container-rm.log")"
    stop_switchyard                 # sets SY_RC
    teardown_namespaces
fi

# ---------------------------------------------------------------- report
echo
report_points kernel "kernel (bridge+iptables)" \
    tcp:gbps:tcp_kernel:tcp_sy:tcp_ratio \
    conn:rate:conn_kernel:conn_sy:conn_ratio \
    conn:failures:conn_failures_kernel:conn_failures_sy \
    "duration_s=$DURATION" "parallel=${PARALLEL// /,}" "switchyard_exit=$SY_RC"

if [[ $SY_RC != NA && $SY_RC != 0 ]]; then
    echo "$SCRIPT_NAME: switchyard did not stop cleanly on SIGTERM (status $SY_RC); measurements above are still valid" >&2
    exit 1
fi
# shellcheck disable=SC2034  # read by cleanup (lib.sh)
FAILED=0
