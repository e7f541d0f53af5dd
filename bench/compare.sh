#!/usr/bin/env bash
# bench/compare.sh -- side-by-side throughput benchmark: Linux kernel bridge vs switchyard.
#
# Both phases run in ONE invocation over the SAME veth topology, so the ratios are comparable
# even on a noisy VM. Everything lives in three throw-away network namespaces; the root
# namespace is never touched (no links, addresses, routes or sysctls are changed there).
#
#     ns A (<prefix>a)             ns S (<prefix>s)                ns B (<prefix>b)
#   eth0 10.77.0.1/24  <-veth->  vA  [br0 | switchyard]  vB  <-veth->  eth0 10.77.0.2/24
#
#   Phase 1: kernel bridge br0 in S, enslaving vA and vB.
#   Phase 2: br0 deleted; `ip netns exec S switchyard bridge --port vA --port vB [EXTRA_ARGS]`.
#
# Per phase it measures (each test in TESTS, each point of its lists, in this order):
#   tcp   iperf3 -c 10.77.0.2 -t DURATION -P STREAMS [-M MSS] -J from A (server in B); Gbit/s =
#         end.sum_received (all streams together). One run per STREAMS x TCP_MSS pair.
#   udp   trafgen (--cpus 1) in A blasting one UDP frame of each size in UDP_SIZES (64 bytes: 64
#         on the wire incl. the 4-byte FCS, i.e. 60 bytes handed to the device -- the RFC 2544 /
#         pktgen convention; veth has no FCS) to 10.77.0.2:9 for DURATION s. Delivered pps =
#         delta of B's eth0 rx_packets / DURATION. The sender side (delta of A's eth0 tx_packets =
#         frames the switch's port vA accepted) and trafgen's own count are printed so the
#         delivery fraction is visible.
#   rtt   ping -c PINGS -i 0.01 from A to B; avg of the rtt line, median and 99th percentile of
#         the replies (reported in microseconds).
#   conn  new TCP connections per second from A to B (not run unless asked for): `connrate
#         serve 80` in B, `connrate connect 10.77.0.2:80 DURATION --parallel N` in A for each N in
#         PARALLEL (connect, write 1 byte, read until the server closes, close). The same client
#         and server as compare-nat.sh's, without the published port: with a switch that only
#         moves frames (SWITCHYARD=target/release/relay) this is the sockets' floor for a
#         connection rate.
#
# Usage:  sudo bench/compare.sh [--quick] [-h|--help] [-- EXTRA_SWITCHYARD_ARGS...]
#   --quick            DURATION=3, PINGS=50 (smoke run)
#   -- ARGS...         appended verbatim to the switchyard command line (e.g. -- --busy-poll)
#
# Environment:
#   DURATION=10        seconds per iperf3 / trafgen run
#   PINGS=200          echo requests per RTT measurement
#   TESTS="tcp udp rtt"  which tests to run (a subset of tcp udp rtt conn, spaces or commas)
#   STREAMS=1          iperf3 parallel streams (-P); a list ("1 2 4") runs one TCP test per value
#   TCP_MSS=default    iperf3 -M (88-9000, or default: no -M); a list runs one test per value
#   UDP_SIZES=64       UDP frame sizes on the wire, 64-1518; a list runs one trafgen per size
#   PARALLEL=4         connrate client threads; a list ("4 64") runs one conn test per value
#   CONNRATE=path      connrate binary (default: <repo>/target/release/connrate; built with
#                      `cargo build --release -p bench --bin connrate` if missing)
#   RTT_SAMPLES=file   append every ping reply to this file as "<phase> <rtt_us>" (for plots)
#   SWITCHYARD=path    switchyard binary (default: <repo>/target/release/switchyard; built with
#                      `cargo build --release -p control` if missing)
#   SKIP_SWITCHYARD=1  run only the kernel-bridge phase (switchyard columns print NA)
#   READY_TIMEOUT=15   seconds to wait for switchyard to start forwarding
#   STOP_TIMEOUT=10    seconds to wait for switchyard to exit after SIGTERM
#   KEEP_LOGS=1        keep the temp dir with logs (it is always kept when the run fails)
#
# Output: header (date, kernel, nproc, CPU model, load average), a table
#   metric | kernel bridge | switchyard | ratio (switchyard/kernel)
# with one row per point, one machine-readable line per point starting with "POINT " (see
# report_points in lib.sh; bench/sweep.sh reads them) and one starting with "RESULT " (the first
# point of each test: with the defaults above, the only one).
#
# Exit codes: 0 ok, 1 measurement / switchyard failure, 2 usage or missing prerequisite.
set -euo pipefail

SCRIPT_NAME=compare.sh              # prefix of every message
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$SCRIPT_DIR/lib.sh"         # usage, parse_args, require_*, die, cleanup, ... (+ REPO_ROOT)

# ---------------------------------------------------------------- arguments
parse_args "$@"
if ((QUICK)); then
    DURATION=3
    PINGS=${PINGS:-50}
fi
DURATION=${DURATION:-10}
PINGS=${PINGS:-200}
TESTS=${TESTS:-tcp udp rtt}
STREAMS=${STREAMS:-1}
TCP_MSS=${TCP_MSS:-default}
UDP_SIZES=${UDP_SIZES:-64}
PARALLEL=${PARALLEL:-4}
RTT_SAMPLES=${RTT_SAMPLES:-}
common_env_defaults                 # SKIP_SWITCHYARD READY_TIMEOUT STOP_TIMEOUT KEEP_LOGS
require_positive_int DURATION PINGS
require_word_list TESTS tcp udp rtt conn
require_int_list STREAMS 1 128
require_int_list TCP_MSS 88 9000 default
require_int_list UDP_SIZES 64 1518
require_int_list PARALLEL 1 1024
wants() { [[ " $TESTS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- prerequisites
require_tools ip iperf3 trafgen ping python3 timeout
require_root "network namespaces, trafgen"

SWITCHYARD_DEFAULT="$REPO_ROOT/target/release/switchyard"
SWITCHYARD=${SWITCHYARD:-$SWITCHYARD_DEFAULT}
if ((!SKIP_SWITCHYARD)); then
    build_if_missing "switchyard binary" "$SWITCHYARD" "$SWITCHYARD_DEFAULT" --release -p control
fi
CONNRATE_DEFAULT="$REPO_ROOT/target/release/connrate"
CONNRATE=${CONNRATE:-$CONNRATE_DEFAULT}
if wants conn; then
    build_if_missing binary "$CONNRATE" "$CONNRATE_DEFAULT" --release -p bench --bin connrate
fi

# ---------------------------------------------------------------- topology names
PFX="syb$$"                         # namespace names; interface names inside are fixed & short
NS_A="${PFX}a" NS_B="${PFX}b" NS_S="${PFX}s"
IP_A=10.77.0.1 IP_B=10.77.0.2
MAC_A=02:77:00:00:00:01 MAC_B=02:77:00:00:00:02   # locally administered, readable in MAC tables
UDP_DPORT=9 UDP_SPORT=9999
IPERF_PORT=5201
CONN_PORT=80

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-compare.XXXXXX")
SY_PID=""
# shellcheck disable=SC2034  # CLEANED and FAILED are read by cleanup (lib.sh)
CLEANED=0 FAILED=1                # FAILED is cleared just before a successful exit

# Called by cleanup (lib.sh): anything still running inside our own namespaces was started by
# this script.
teardown_namespaces() { kill_namespaces "$NS_A" "$NS_B" "$NS_S"; }
install_traps                       # EXIT: cleanup; INT/TERM: message + exit 130/143

# Foreground helpers only: background jobs call `ip netns exec` directly so that $! is the real
# process (ip netns exec execs the command; a backgrounded shell function would be a subshell).
inA() { ip netns exec "$NS_A" "$@"; }
inB() { ip netns exec "$NS_B" "$@"; }
inS() { ip netns exec "$NS_S" "$@"; }
stat_of() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }   # ns ifname counter

# ---------------------------------------------------------------- header
print_env_header "switchyard vs kernel bridge"
echo "iperf3:     $(iperf3 --version 2>/dev/null | head -n1)"
echo "trafgen:    $(trafgen --version 2>/dev/null | head -n1)"
echo "duration:   ${DURATION}s per test, ${PINGS} pings"
echo "tests:      $TESTS (tcp: streams $STREAMS x mss $TCP_MSS; udp: frame sizes $UDP_SIZES; conn: clients $PARALLEL)"
print_switchyard_header "bridge --port vA --port vB ${EXTRA_ARGS[*]}"
echo "namespaces: $NS_A $NS_S $NS_B   temp dir: $TMP"
echo

# ---------------------------------------------------------------- topology
setup_topology() {
    local ns
    for ns in "$NS_A" "$NS_B" "$NS_S"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # no IPv6 chatter (DAD/ND/MLD) on the test links; namespace-local sysctls only
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
    done
    # conn opens DURATION * (tens of thousands) connections from A: widen its port range and let
    # it reuse ports (namespace-local sysctls of the throw-away namespace A)
    inA sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
    # veths are created inside S and their peers moved straight into A/B: nothing ever exists
    # in the root namespace. Kernel default offloads are left untouched.
    ip -n "$NS_S" link add vA type veth peer name eth0 netns "$NS_A"
    ip -n "$NS_S" link add vB type veth peer name eth0 netns "$NS_B"
    ip -n "$NS_A" link set eth0 address "$MAC_A"
    ip -n "$NS_B" link set eth0 address "$MAC_B"
    ip -n "$NS_A" addr add "$IP_A/24" dev eth0
    ip -n "$NS_B" addr add "$IP_B/24" dev eth0
    ip -n "$NS_A" link set eth0 up
    ip -n "$NS_B" link set eth0 up
    ip -n "$NS_S" link set vA up
    ip -n "$NS_S" link set vB up
}

start_iperf_server() {
    ip netns exec "$NS_B" iperf3 -s -p "$IPERF_PORT" >"$TMP/iperf3-server.log" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do
        if inB ss -Hltn "sport = :$IPERF_PORT" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    cat "$TMP/iperf3-server.log" >&2
    die "iperf3 server in $NS_B did not start listening on port $IPERF_PORT"
}

wait_forwarding() {   # label timeout [pid-that-must-stay-alive]
    local label=$1 timeout=$2 pid=${3:-} deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        if inA ping -c 1 -W 1 -q "$IP_B" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    return 1
}

# trafgen config: one static frame of SIZE bytes on the wire (SIZE - 4 handed to the device, no
# FCS on veth), A -> B, UDP to port 9.
write_trafgen_cfg() {
    local macA=$1 macB=$2 f=$3 size=$4
    hexbytes() { local IFS=:; local b out=(); for b in $1; do out+=("0x$b"); done; local IFS=,; echo "${out[*]}"; }
    local ipA ipB
    ipA=${IP_A//./, } ipB=${IP_B//./, }
    cat >"$f" <<EOF
/* switchyard bench: $size-byte (incl. FCS) IPv4/UDP frame A -> B:$UDP_DPORT */
{
  /* Ethernet: dst = B's eth0, src = A's eth0, IPv4 */
  $(hexbytes "$macB"),
  $(hexbytes "$macA"),
  c16(0x0800),
  /* IPv4: v4 ihl5, tos 0, total length, id 0, DF, ttl 64, proto UDP, checksum */
  0x45, 0x00, c16($((size - 18))), c16(0), c16(0x4000), 64, 17, csumip(14, 33),
  $ipA,
  $ipB,
  /* UDP: sport, dport, length, checksum */
  c16($UDP_SPORT), c16($UDP_DPORT), c16($((size - 38))), csumudp(14, 34),
  /* payload: 14 + 20 + 8 + payload = SIZE - 4 bytes */
  fill(0x00, $((size - 46))),
}
EOF
}

# ---------------------------------------------------------------- measurements
# Each measure_* records its points (record_point, lib.sh) for the current phase.
measure_tcp() {   # streams mss
    local streams=$1 mss=$2 tag="$PHASE-P$1-M$2" rc=0 args=() label="TCP throughput (Gbit/s)"
    local out="$TMP/iperf3-$tag.json" err="$TMP/iperf3-$tag.err"
    args=(-P "$streams")
    [[ $mss == default ]] || args+=(-M "$mss")
    # the row label names what differs from the single default-MSS stream
    ((streams == 1)) || label="TCP, $streams streams (Gbit/s)"
    [[ $mss == default ]] || label="${label%% (*}, MSS $mss (Gbit/s)"
    inA iperf3 -c "$IP_B" -p "$IPERF_PORT" -t "$DURATION" "${args[@]}" -J >"$out" 2>"$err" || rc=$?
    R_TCP=$(iperf3_gbps "$out")
    if [[ $R_TCP == ERR:* || $rc -ne 0 ]]; then
        cat "$err" >&2 || true
        die "[$PHASE] iperf3 -P $streams (mss $mss) failed (rc=$rc): ${R_TCP#ERR:}"
    fi
    printf '  tcp : %8s Gbit/s (%d streams, mss %s)\n' "$R_TCP" "$streams" "$mss"
    record_point tcp "streams=$streams mss=$mss" gbps "$R_TCP" "$label" "higher is better"
}

measure_udp() {   # frame size on the wire
    local size=$1 cfg="$TMP/udp$1.cfg" log="$TMP/trafgen-$PHASE-$1.log"
    local macA macB rx0 rx1 tx0 tx1 drop0 drop1 rc=0
    macA=$(inA cat /sys/class/net/eth0/address)
    macB=$(inB cat /sys/class/net/eth0/address)
    write_trafgen_cfg "$macA" "$macB" "$cfg" "$size"
    rx0=$(stat_of "$NS_B" eth0 rx_packets)
    tx0=$(stat_of "$NS_A" eth0 tx_packets)
    drop0=$(stat_of "$NS_A" eth0 tx_dropped)
    # --no-sock-mem: leave the socket memory sysctls alone; --notouch-irq: leave IRQ affinity alone.
    # timeout sends SIGINT so trafgen exits cleanly and prints its counters.
    ip netns exec "$NS_A" timeout -s INT -k 5 "$DURATION" trafgen --dev eth0 --conf "$cfg" --cpus 1 --no-sock-mem --notouch-irq >"$log" 2>&1 &
    local tg=$!
    wait "$tg" || rc=$?
    # timeout exits 124 when it had to signal trafgen: that is the normal path here
    if ((rc != 0 && rc != 124)); then
        cat "$log" >&2
        die "[$PHASE] trafgen failed (rc=$rc)"
    fi
    sleep 0.5   # let in-flight frames drain before reading the counters
    rx1=$(stat_of "$NS_B" eth0 rx_packets)
    tx1=$(stat_of "$NS_A" eth0 tx_packets)
    drop1=$(stat_of "$NS_A" eth0 tx_dropped)
    R_UDP_RX=$((rx1 - rx0))
    R_UDP_TX=$((tx1 - tx0))
    R_UDP_TXDROP=$((drop1 - drop0))
    R_UDP_GEN=$({ grep -Eo '[0-9]+ packets outgoing' "$log" || true; } | awk '{s+=$1} END {print s+0}')
    R_UDP=$(python3 -c "print('%.1f' % ($R_UDP_RX / $DURATION / 1e3))")
    R_UDP_TXK=$(python3 -c "print('%.1f' % ($R_UDP_TX / $DURATION / 1e3))")
    R_UDP_FRAC=$(python3 -c "print('%.3f' % ($R_UDP_RX / $R_UDP_TX if $R_UDP_TX else 0))")
    printf '  udp : %8s kpps delivered at B (%d pkts of %d B); sender: trafgen %d pkts, A eth0 tx %d pkts (%s kpps), tx_dropped %d; delivered/sent %s\n' \
        "$R_UDP" "$R_UDP_RX" "$size" "$R_UDP_GEN" "$R_UDP_TX" "$R_UDP_TXK" "$R_UDP_TXDROP" "$R_UDP_FRAC"
    ((R_UDP_RX > 0)) || die "[$PHASE] no UDP packets arrived at B (see $log)"
    record_point udp "size=$size" kpps "$R_UDP" "UDP ${size}B delivered (kpps)" "higher is better"
    record_point udp "size=$size" offered_kpps "$R_UDP_TXK" "UDP ${size}B offered at vA (kpps)" "sender side"
    record_point udp "size=$size" frac "$R_UDP_FRAC" "UDP ${size}B delivered/offered" ""
}

measure_rtt() {
    local out="$TMP/ping-$PHASE.log" samples="$TMP/rtt-$PHASE.txt" rc=0 p50 p99
    inA ping -c "$PINGS" -i 0.01 "$IP_B" >"$out" 2>&1 || rc=$?
    # rtt min/avg/max/mdev = 0.031/0.045/0.120/0.010 ms
    R_RTT=$(awk -F'/' '/^(rtt|round-trip)/ {printf "%.1f", $5 * 1000}' "$out")
    R_LOSS=$(grep -Eo '[0-9.]+% packet loss' "$out" | cut -d% -f1 || true)
    if [[ -z $R_RTT ]]; then
        cat "$out" >&2
        die "[$PHASE] ping failed (rc=$rc)"
    fi
    # one line per reply: "64 bytes from 10.77.0.2: icmp_seq=1 ttl=64 time=0.045 ms"
    { grep -Eo 'time=[0-9.]+ ms' "$out" || true; } | awk '{sub("time=", "", $1); printf "%.1f\n", $1 * 1000}' >"$samples"
    read -r p50 p99 < <(/usr/bin/python3 - "$samples" <<'PY'
import math, sys
v = sorted(float(x) for x in open(sys.argv[1]))
rank = lambda q: v[max(0, math.ceil(q * len(v)) - 1)]   # nearest rank
print("%.1f %.1f" % (rank(0.5), rank(0.99)) if v else "NA NA")
PY
)
    if [[ -n $RTT_SAMPLES ]]; then sed "s/^/$PHASE /" "$samples" >>"$RTT_SAMPLES"; fi
    printf '  rtt : %8s us avg over %d pings (median %s, p99 %s; loss %s%%)\n' "$R_RTT" "$PINGS" "$p50" "$p99" "${R_LOSS:-?}"
    record_point rtt "" avg_us "$R_RTT" "ping RTT avg (us)" "LOWER is better"
    record_point rtt "" p50_us "$p50" "ping RTT median (us)" "LOWER is better"
    record_point rtt "" p99_us "$p99" "ping RTT p99 (us)" "LOWER is better"
}

measure_conn() {   # clients
    local clients=$1 out="$TMP/connrate-$PHASE-$1.out" err="$TMP/connrate-$PHASE-$1.err" rc=0 i
    local log="$TMP/connrate-server-$PHASE.log" server
    ip netns exec "$NS_B" "$CONNRATE" serve "$CONN_PORT" >>"$log" 2>&1 &
    server=$!            # `ip netns exec` execs the command, so this is connrate itself
    for ((i = 0; i < 50; i++)); do
        if inB ss -Hltn "sport = :$CONN_PORT" 2>/dev/null | grep -q .; then break; fi
        sleep 0.1
    done
    ((i < 50)) || { cat "$log" >&2; die "[$PHASE] connrate server in $NS_B did not listen on $CONN_PORT"; }
    inA "$CONNRATE" connect "$IP_B:$CONN_PORT" "$DURATION" --parallel "$clients" >"$out" 2>"$err" || rc=$?
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    record_connrate "$clients" "$rc" "$out" "$err" "$IP_B:$CONN_PORT"
}

run_measurements() {
    local streams mss size clients
    if wants tcp; then
        for streams in $STREAMS; do
            for mss in $TCP_MSS; do measure_tcp "$streams" "$mss"; sleep 1; done
        done
    fi
    if wants udp; then
        for size in $UDP_SIZES; do measure_udp "$size"; sleep 1; done
    fi
    if wants rtt; then measure_rtt; fi
    if wants conn; then
        for clients in $PARALLEL; do measure_conn "$clients"; sleep 1; done
    fi
}

# ---------------------------------------------------------------- run
setup_topology
start_iperf_server

# Phase 1: kernel bridge
PHASE=kernel
echo "== phase 1: kernel bridge (br0 in $NS_S; bridge-nf-call-iptables=$(inS cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo n/a))"
inS ip link add br0 type bridge
inS ip link set vA master br0
inS ip link set vB master br0
inS ip link set br0 up
wait_forwarding kernel 10 || die "[kernel] A cannot ping B through br0"
run_measurements
inS ip link del br0
inS ip link set vA up
inS ip link set vB up

# Phase 2: switchyard
SY_RC=NA
if ((!SKIP_SWITCHYARD)); then
    PHASE=switchyard
    echo
    echo "== phase 2: switchyard in $NS_S"
    # Flush learned neighbours so the first packets really have to cross the new switch.
    inA ip neigh flush dev eth0 || true
    inB ip neigh flush dev eth0 || true
    SY_LOG="$TMP/switchyard.log"
    ip netns exec "$NS_S" "$SWITCHYARD" bridge --port vA --port vB "${EXTRA_ARGS[@]}" >"$SY_LOG" 2>&1 &
    SY_PID=$!            # `ip netns exec` execs the command, so this is switchyard itself
    rc=0
    wait_forwarding switchyard "$READY_TIMEOUT" "$SY_PID" || rc=$?
    ((rc == 0)) || not_ready "$rc" switchyard \
        "switchyard not forwarding after ${READY_TIMEOUT}s (A cannot ping B)"
    run_measurements

    kill -0 "$SY_PID" 2>/dev/null || { tail -n 30 "$SY_LOG" >&2; die "switchyard died during the measurements"; }
    stop_switchyard                 # sets SY_RC
fi

# ---------------------------------------------------------------- report
echo
report_points kernel "kernel bridge" \
    tcp:gbps:tcp_gbps_kernel:tcp_gbps_switchyard:tcp_ratio \
    udp:kpps:udp_kpps_kernel:udp_kpps_switchyard:udp_ratio \
    udp:offered_kpps:udp_offered_kpps_kernel:udp_offered_kpps_switchyard \
    udp:frac:udp_delivered_frac_kernel:udp_delivered_frac_switchyard \
    rtt:avg_us:rtt_us_kernel:rtt_us_switchyard:rtt_ratio \
    conn:rate:conn_rate_kernel:conn_rate_switchyard:conn_ratio \
    conn:failures:conn_failures_kernel:conn_failures_switchyard \
    "duration_s=$DURATION" "pings=$PINGS" "switchyard_exit=$SY_RC"

if [[ $SY_RC != NA && $SY_RC != 0 ]]; then
    echo "$SCRIPT_NAME: switchyard did not stop cleanly on SIGTERM (status $SY_RC); measurements above are still valid" >&2
    exit 1
fi
# shellcheck disable=SC2034  # read by cleanup (lib.sh)
FAILED=0
