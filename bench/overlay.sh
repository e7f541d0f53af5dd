#!/usr/bin/env bash
# bench/overlay.sh -- container to container across two hosts on one overlay network (VXLAN,
# VNI 42, UDP 4789, MTU 1450): switchyard's own encapsulation vs the kernel's (a vxlan device
# enslaved to a bridge on each host, static FDB), in one invocation, so the ratios compare.
#
# Everything lives in throw-away network namespaces; the root namespace is never touched.
#
#   ns H1 (<prefix>a)  u1 = 10.99.0.1/24  <-veth (underlay, MTU 1500)->  u2 = 10.99.0.2/24  ns H2
#   container A1 10.98.0.1/24 on host1                      container A2 10.98.0.2/24 on host2
#
#   Phase 1 (kernel): per host a bridge br0 with the container's veth and vx0 (vxlan id 42,
#     dstport 4789, nolearning, MTU 1450, all-zeros FDB entry toward the other host).
#   Phase 2 (switchyard): per host a daemon with --advertise-addr and an overlay network with the
#     other host as its static peer (no etcd: the data path is what is measured).
#   Phase 3 (floor, unless FLOOR=0): per host `relay` (bench/src/bin/relay.rs) between the
#     container's veth and a VXLAN port of switchyard's, with nothing else: what the sockets
#     themselves cost (UDP GSO out, UDP GRO in, the merge back into a super-frame), the most a
#     userspace VTEP built on them can reach.
#   Phase 4 (interoperation, unless INTEROP=0): host1 as in phase 1 (a kernel vxlan device with
#     its default offloads, whose TCP super-frames cross the veth underlay whole and
#     checksum-partial), host2 as in phase 2 (a daemon, its network's static peer host1); iperf3
#     both ways.
#   Each: iperf3 A1 -> A2 (one TCP stream, default offloads) ROUNDS times, then PINGS pings for
#   the average round-trip time.
#
# Usage:  sudo bench/overlay.sh [--quick] [-h|--help] [-- EXTRA_DAEMON_ARGS...]
#   --quick            DURATION=3, ROUNDS=1, PINGS=100 (smoke run)
#   -- ARGS...         appended to both `switchyard daemon` command lines
#
# Environment:
#   DURATION=10        seconds per iperf3 run
#   ROUNDS=3           iperf3 runs per side
#   PINGS=500          pings per side (10 ms apart)
#   CPU1=0 CPU2=1      the engines' CPUs (`--cpu`): two daemons under `auto` would share one
#   FLOOR=1            run phase 3 (the relay); RELAY=path its binary (default
#                      <repo>/target/release/relay, built with `cargo build --release -p bench`)
#   INTEROP=1          run phase 4 (a kernel vxlan device against a switchyard daemon)
#   KERNEL_TX=on       phase 4's kernel VTEP tx offload (`off`: `ethtool -K vx0 tx off`, no TSO
#                      and complete checksums, what interoperating needed before switchyard took
#                      offloaded frames; for an A/B)
#   SWITCHYARD=path    switchyard binary (default: <repo>/target/release/switchyard; built with
#                      `cargo build --release -p control` if missing)
#   READY_TIMEOUT=15   seconds to wait for "daemon ready" and for a path to work
#   STOP_TIMEOUT=10    seconds to wait for a daemon to exit after SIGTERM
#   KEEP_LOGS=1        keep the temp dir with logs (it is always kept when the run fails)
#
# Output: header, one line per run, a table (TCP Gbit/s and RTT, kernel and switchyard, ratios),
# and a line starting with "RESULT ".
#
# Exit codes: 0 ok, 1 measurement / switchyard failure, 2 usage or missing prerequisite.
set -euo pipefail

SCRIPT_NAME=overlay.sh
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$SCRIPT_DIR/lib.sh"

parse_args "$@"
if ((QUICK)); then
    DURATION=3 ROUNDS=1 PINGS=100
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
PINGS=${PINGS:-500}
CPU1=${CPU1:-0}
CPU2=${CPU2:-1}
common_env_defaults
require_positive_int DURATION ROUNDS PINGS READY_TIMEOUT STOP_TIMEOUT

require_tools ip iperf3 ping bridge /usr/bin/python3 timeout ss
require_root "network namespaces"
SWITCHYARD_DEFAULT="$REPO_ROOT/target/release/switchyard"
SWITCHYARD=${SWITCHYARD:-$SWITCHYARD_DEFAULT}
build_if_missing binary "$SWITCHYARD" "$SWITCHYARD_DEFAULT" --release -p control
FLOOR=${FLOOR:-1}
INTEROP=${INTEROP:-1}
KERNEL_TX=${KERNEL_TX:-on}
[[ $KERNEL_TX == on || $KERNEL_TX == off ]] || { echo "$SCRIPT_NAME: KERNEL_TX must be on or off" >&2; exit 2; }
if [[ $KERNEL_TX == off ]]; then require_tools ethtool; fi
RELAY_DEFAULT="$REPO_ROOT/target/release/relay"
RELAY=${RELAY:-$RELAY_DEFAULT}
if ((FLOOR)); then
    build_if_missing "relay binary" "$RELAY" "$RELAY_DEFAULT" --release -p bench --bin relay
fi

PFX="syov$$"
NS_H1="${PFX}a" NS_H2="${PFX}b"
NS_A1="${PFX}a1" NS_A2="${PFX}a2"
ALL_NS=("$NS_H1" "$NS_H2" "$NS_A1" "$NS_A2")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-overlay.XXXXXX")
# shellcheck disable=SC2034  # CLEANED and FAILED are read by cleanup (lib.sh)
CLEANED=0 FAILED=1
PIDS=()

teardown_namespaces() {
    kill_namespaces "${ALL_NS[@]}"
    local ns
    for ns in "$NS_A1" "$NS_A2"; do
        if [[ -d /etc/netns/$ns ]]; then rm -rf -- "/etc/netns/$ns" || true; fi
    done
    return 0
}
install_traps

# shellcheck source=twohosts.sh source-path=SCRIPTDIR
source "$SCRIPT_DIR/twohosts.sh"

print_env_header "container to container across two hosts on one overlay network (VXLAN): switchyard vs the kernel (vxlan device + bridge per host)"
echo "iperf3:     $(iperf3 --version 2>/dev/null | head -n1)"
echo "duration:   ${DURATION}s per run, $ROUNDS rounds"
print_switchyard_header "daemon --advertise-addr 10.99.0.N --cpu $CPU1|$CPU2 ${EXTRA_ARGS[*]}; network --driver overlay --opt vni=42 --opt peers=(the other)"
echo "namespaces: ${ALL_NS[*]}   temp dir: $TMP"
echo

# The underlay: u1 in H1 <-> u2 in H2, created inside H1 (nothing in the root namespace).
underlay() {
    new_ns "$NS_H1" "$NS_H2"
    ip -n "$NS_H1" link add u1 type veth peer name u2 netns "$NS_H2"
    ip -n "$NS_H1" link set u1 up
    ip -n "$NS_H2" link set u2 up
    ip -n "$NS_H1" addr add 10.99.0.1/24 dev u1
    ip -n "$NS_H2" addr add 10.99.0.2/24 dev u2
}

# Average round-trip time in microseconds of PINGS pings from CLIENT_NS to ADDR.
rtt() {   # client_ns addr
    inns "$1" ping -q -c "$PINGS" -i 0.01 -W 1 "$2" | /usr/bin/python3 -c '
import re, sys
m = re.search(r"= ([0-9.]+)/([0-9.]+)/", sys.stdin.read())
print("%.1f" % (float(m.group(2)) * 1000) if m else "ERR:no ping summary")'
}

# ROUNDS iperf3 runs CLIENT_NS -> ADDR (server in SERVER_NS), each printed and appended to the
# array named OUT.
tcp_rounds() {   # out server_ns client_ns addr label
    local -n out=$1
    local v r
    for ((r = 1; r <= ROUNDS; r++)); do
        v=$(iperf "$2" 5201 "$3" "$4" 5201 "$5-$r"); check "$v" "$5 round $r"
        printf '  round %d %-11s %s Gbit/s\n' "$r" "$5:" "$v"
        out+=("$v")
    done
}

# Stops every daemon or relay in PIDS.
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        SY_PID=$pid SY_LOG=/dev/null
        stop_switchyard >/dev/null
    done
}

# ---------------------------------------------------------------- phase 1: the kernel
echo "== phase 1: the kernel (vxlan device + bridge per host)"
underlay
new_ns "$NS_A1" "$NS_A2"
kernel_side() {   # host container container-ip/24 local-underlay other-underlay
    local h=$1 c=$2
    inns "$h" ip link add br0 type bridge
    inns "$h" ip link set br0 up
    inns "$h" ip link add vx0 type vxlan id 42 dstport 4789 local "$4" nolearning
    inns "$h" ip link set vx0 mtu 1450 master br0 up
    inns "$h" bridge fdb append 00:00:00:00:00:00 dev vx0 dst "$5" self permanent
    ip -n "$h" link add vc0 type veth peer name eth0 netns "$c"
    inns "$h" ip link set vc0 mtu 1450 master br0 up
    inns "$c" ip link set eth0 mtu 1450
    inns "$c" ip addr add "$3" dev eth0
    inns "$c" ip link set eth0 up
}
kernel_side "$NS_H1" "$NS_A1" 10.98.0.1/24 10.99.0.1 10.99.0.2
kernel_side "$NS_H2" "$NS_A2" 10.98.0.2/24 10.99.0.2 10.99.0.1
wait_path "$NS_A2" 5201 "$NS_A1" 10.98.0.2 5201 || die "[kernel] A1 cannot reach A2"
K_TCP=()
tcp_rounds K_TCP "$NS_A2" "$NS_A1" 10.98.0.2 kernel
K_RTT=$(rtt "$NS_A1" 10.98.0.2); check "$K_RTT" "kernel ping"
echo "  kernel RTT:         $K_RTT us (average of $PINGS)"
teardown_namespaces

# ---------------------------------------------------------------- phase 2: switchyard
echo
echo "== phase 2: switchyard (two daemons, one overlay network)"
underlay
start_daemon() {   # ns advertise cpu sock label
    ip netns exec "$1" "$SWITCHYARD" daemon --state-dir "$TMP/state-$5" --socket "$4" \
        --advertise-addr "$2" --cpu "$3" "${EXTRA_ARGS[@]}" >"$TMP/$5.log" 2>&1 &
    PIDS+=($!)
    local deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q "daemon ready" "$TMP/$5.log" 2>/dev/null; do
        ((SECONDS < deadline)) || { tail -n 30 "$TMP/$5.log" >&2; die "$5: no \"daemon ready\""; }
        sleep 0.1
    done
}
start_daemon "$NS_H1" 10.99.0.1 "$CPU1" "$TMP/h1.sock" h1
start_daemon "$NS_H2" 10.99.0.2 "$CPU2" "$TMP/h2.sock" h2
sy1 network create ov --driver overlay --subnet 10.98.0.0/24 --opt vni=42 --opt peers=10.99.0.2 >/dev/null
sy2 network create ov --driver overlay --subnet 10.98.0.0/24 --opt vni=42 --opt peers=10.99.0.1 >/dev/null
sy1 container create "$NS_A1" --network ov --ip 10.98.0.11 >/dev/null
sy2 container create "$NS_A2" --network ov --ip 10.98.0.12 >/dev/null
wait_path "$NS_A2" 5201 "$NS_A1" 10.98.0.12 5201 || die "[switchyard] A1 cannot reach A2"
S_TCP=()
tcp_rounds S_TCP "$NS_A2" "$NS_A1" 10.98.0.12 switchyard
S_RTT=$(rtt "$NS_A1" 10.98.0.12); check "$S_RTT" "switchyard ping"
echo "  switchyard RTT:     $S_RTT us (average of $PINGS)"
stop_all
teardown_namespaces

# ---------------------------------------------------------------- phase 3: the floor
R_TCP=() R_RTT=NA
if ((FLOOR)); then
    echo
    echo "== phase 3: the floor (relay: a container veth <-> a VXLAN port, nothing else)"
    underlay
    new_ns "$NS_A1" "$NS_A2"
    relay_side() {   # host container container-ip/24 local-underlay other-underlay cpu label
        ip -n "$1" link add vc0 type veth peer name eth0 netns "$2"
        inns "$1" ip link set vc0 mtu 1450 up
        inns "$2" ip link set eth0 mtu 1450
        inns "$2" ip addr add "$3" dev eth0
        inns "$2" ip link set eth0 up
        ip netns exec "$1" "$RELAY" bridge --port vc0 --vxlan "$4,$5,42" --cpu "$6" >"$TMP/$7.log" 2>&1 &
        PIDS+=($!)
    }
    PIDS=()
    relay_side "$NS_H1" "$NS_A1" 10.98.0.1/24 10.99.0.1 10.99.0.2 "$CPU1" relay1
    relay_side "$NS_H2" "$NS_A2" 10.98.0.2/24 10.99.0.2 10.99.0.1 "$CPU2" relay2
    wait_path "$NS_A2" 5201 "$NS_A1" 10.98.0.2 5201 || die "[relay] A1 cannot reach A2"
    tcp_rounds R_TCP "$NS_A2" "$NS_A1" 10.98.0.2 relay
    R_RTT=$(rtt "$NS_A1" 10.98.0.2); check "$R_RTT" "relay ping"
    echo "  relay RTT:          $R_RTT us (average of $PINGS)"
    stop_all
    teardown_namespaces
fi

# ---------------------------------------------------------------- phase 4: interoperation
I_TCP=() IB_TCP=() I_RTT=NA
if ((INTEROP)); then
    echo
    echo "== phase 4: interoperation (host1 a kernel vxlan device + bridge, tx offload $KERNEL_TX; host2 a switchyard daemon)"
    underlay
    new_ns "$NS_A1"
    kernel_side "$NS_H1" "$NS_A1" 10.98.0.1/24 10.99.0.1 10.99.0.2
    if [[ $KERNEL_TX == off ]]; then inns "$NS_H1" ethtool -K vx0 tx off >/dev/null; fi
    PIDS=()
    start_daemon "$NS_H2" 10.99.0.2 "$CPU2" "$TMP/h2.sock" h2-interop
    sy2 network create ov --driver overlay --subnet 10.98.0.0/24 --opt vni=42 --opt peers=10.99.0.1 >/dev/null
    sy2 container create "$NS_A2" --network ov --ip 10.98.0.12 >/dev/null
    wait_path "$NS_A2" 5201 "$NS_A1" 10.98.0.12 5201 || die "[interop] A1 cannot reach A2"
    for ((r = 1; r <= ROUNDS; r++)); do
        v=$(iperf "$NS_A2" 5201 "$NS_A1" 10.98.0.12 5201 "interop-$r"); check "$v" "interop round $r"
        echo "  round $r kernel -> switchyard: $v Gbit/s"
        I_TCP+=("$v")
        v=$(iperf "$NS_A1" 5201 "$NS_A2" 10.98.0.1 5201 "interop-back-$r"); check "$v" "interop back round $r"
        echo "  round $r switchyard -> kernel: $v Gbit/s"
        IB_TCP+=("$v")
    done
    I_RTT=$(rtt "$NS_A1" 10.98.0.12); check "$I_RTT" "interop ping"
    echo "  interop RTT:        $I_RTT us (average of $PINGS)"
    echo "  $(sy2 stats | grep "VXLAN drops" || echo "VXLAN drops: none")"
    stop_all
    teardown_namespaces
fi

echo
/usr/bin/python3 - "${K_TCP[*]}" "${S_TCP[*]}" "$K_RTT" "$S_RTT" "$DURATION" "${R_TCP[*]:-}" "$R_RTT" \
    "${I_TCP[*]:-}" "${IB_TCP[*]:-}" "$I_RTT" "$KERNEL_TX" <<'PY'
import statistics, sys
k, s = ([float(x) for x in a.split()] for a in sys.argv[1:3])
km, sm = statistics.median(k), statistics.median(s)
kr, sr = float(sys.argv[3]), float(sys.argv[4])
print("| path | TCP Gbit/s (median) | ratio | RTT us (avg of pings) | ratio |")
print("|---|---|---|---|---|")
print("| kernel: vxlan device + bridge per host | %.3f | | %.1f | |" % (km, kr))
print("| switchyard overlay network | %.3f | %.3f | %.1f | %.3f |" % (sm, sm / km, sr, sr / kr))
floor = ""
if sys.argv[6].strip():
    rm, rr = statistics.median(float(x) for x in sys.argv[6].split()), float(sys.argv[7])
    print("| floor: relay (veth <-> VXLAN port, no switch) | %.3f | %.3f | %.1f | %.3f |"
          % (rm, rm / km, rr, rr / kr))
    floor = " relay_tcp=%.3f relay_tcp_ratio=%.3f relay_rtt_us=%.1f" % (rm, rm / km, rr)
if sys.argv[8].strip():
    im = statistics.median(float(x) for x in sys.argv[8].split())
    bm = statistics.median(float(x) for x in sys.argv[9].split())
    ir, tx = float(sys.argv[10]), sys.argv[11]
    print("| kernel vxlan device (tx %s) -> switchyard | %.3f | %.3f | %.1f | %.3f |"
          % (tx, im, im / km, ir, ir / kr))
    print("| switchyard -> kernel vxlan device (tx %s) | %.3f | %.3f | | |" % (tx, bm, bm / km))
    floor += (" kernel_to_switchyard_tcp=%.3f switchyard_to_kernel_tcp=%.3f interop_rtt_us=%.1f"
              " kernel_tx=%s" % (im, bm, ir, tx))
print("RESULT kernel_tcp=%.3f switchyard_tcp=%.3f tcp_ratio=%.3f kernel_rtt_us=%.1f "
      "switchyard_rtt_us=%.1f rtt_ratio=%.3f duration_s=%s%s"
      % (km, sm, sm / km, kr, sr, sr / kr, sys.argv[5], floor))
PY
# shellcheck disable=SC2034  # read by cleanup (lib.sh)
FAILED=0
