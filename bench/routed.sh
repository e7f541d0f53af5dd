#!/usr/bin/env bash
# bench/routed.sh -- container to container across two hosts: a routed network (no NAT) vs the
# published-port path (masquerade on one host, DNAT on the other), with the kernel routing the
# same two subnets as the reference. One invocation, one topology, so the ratios compare.
#
# Everything lives in throw-away network namespaces; the root namespace is never touched.
#
#   ns H1 (<prefix>a)                                    ns H2 (<prefix>b)
#   switchyard daemon, uplink u1 = 10.99.0.1  <-veth->  u2 = 10.99.0.2, switchyard daemon
#   routed network 172.20.0.0/16: A1 172.20.0.2          routed network 172.21.0.0/16: A2 172.21.0.2
#   default bridge 172.17.0.0/16 (NAT): B1 172.17.0.2    default bridge (NAT): B2, -p 5202:5201
#   Each daemon's uplink gateway is the other's uplink address (the one route on each side).
#
#   Phase 1 (kernel): the same addresses with Linux bridges in H1/H2 holding the gateways,
#     ip_forward=1, one route on each side (172.21.0.0/16 via 10.99.0.2 and back): A1 -> A2.
#   Phase 2 (switchyard): both daemons; iperf3 A1 -> 172.21.0.2:5201 (routed: the server sees
#     172.20.0.2) and B1 -> 10.99.0.2:5202 (masquerade on host1, DNAT on host2: the server sees
#     10.99.0.1), alternating ROUNDS times.
#
# Usage:  sudo bench/routed.sh [--quick] [-h|--help] [-- EXTRA_DAEMON_ARGS...]
#   --quick            DURATION=3, ROUNDS=1 (smoke run)
#   -- ARGS...         appended to both `switchyard daemon` command lines
#
# Environment:
#   DURATION=10        seconds per iperf3 run (one TCP stream, default offloads)
#   ROUNDS=2           alternating routed/NAT runs
#   CPU1=0 CPU2=1      the engines' CPUs (`--cpu`): two daemons under `auto` would share one
#   SWITCHYARD=path    switchyard binary (default: <repo>/target/release/switchyard; built with
#                      `cargo build --release -p control` if missing)
#   READY_TIMEOUT=15   seconds to wait for "daemon ready" and for a path to work
#   STOP_TIMEOUT=10    seconds to wait for a daemon to exit after SIGTERM
#   KEEP_LOGS=1        keep the temp dir with logs (it is always kept when the run fails)
#
# Output: header, one line per run, a table (Gbit/s: kernel routed, switchyard routed,
# switchyard NAT path; ratios), and a line starting with "RESULT ".
#
# Exit codes: 0 ok, 1 measurement / switchyard failure, 2 usage or missing prerequisite.
set -euo pipefail

SCRIPT_NAME=routed.sh
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$SCRIPT_DIR/lib.sh"

parse_args "$@"
if ((QUICK)); then
    DURATION=3 ROUNDS=1
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CPU1=${CPU1:-0}
CPU2=${CPU2:-1}
common_env_defaults
require_positive_int DURATION ROUNDS READY_TIMEOUT STOP_TIMEOUT

require_tools ip iperf3 /usr/bin/python3 timeout ss
require_root "network namespaces"
SWITCHYARD_DEFAULT="$REPO_ROOT/target/release/switchyard"
SWITCHYARD=${SWITCHYARD:-$SWITCHYARD_DEFAULT}
build_if_missing binary "$SWITCHYARD" "$SWITCHYARD_DEFAULT" --release -p control

PFX="syrt$$"
NS_H1="${PFX}a" NS_H2="${PFX}b"
NS_A1="${PFX}a1" NS_A2="${PFX}a2" NS_B1="${PFX}b1" NS_B2="${PFX}b2"
ALL_NS=("$NS_H1" "$NS_H2" "$NS_A1" "$NS_A2" "$NS_B1" "$NS_B2")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-routed.XXXXXX")
# shellcheck disable=SC2034  # CLEANED and FAILED are read by cleanup (lib.sh)
CLEANED=0 FAILED=1
PIDS=()

teardown_namespaces() {
    kill_namespaces "${ALL_NS[@]}"
    local ns
    for ns in "$NS_A1" "$NS_A2" "$NS_B1" "$NS_B2"; do
        if [[ -d /etc/netns/$ns ]]; then rm -rf -- "/etc/netns/$ns" || true; fi
    done
    return 0
}
install_traps

# shellcheck source=twohosts.sh source-path=SCRIPTDIR
source "$SCRIPT_DIR/twohosts.sh"

print_env_header "container to container across two hosts: routed network vs published port (NAT), kernel routing as reference"
echo "iperf3:     $(iperf3 --version 2>/dev/null | head -n1)"
echo "duration:   ${DURATION}s per run, $ROUNDS rounds"
print_switchyard_header "daemon --uplink uN --uplink-ip 10.99.0.N/24 --uplink-gateway (the other) --cpu $CPU1|$CPU2 ${EXTRA_ARGS[*]}"
echo "namespaces: ${ALL_NS[*]}   temp dir: $TMP"
echo

# The underlay: u1 in H1 <-> u2 in H2, created inside H1 (nothing in the root namespace).
underlay() {
    new_ns "$NS_H1" "$NS_H2"
    ip -n "$NS_H1" link add u1 type veth peer name u2 netns "$NS_H2"
    ip -n "$NS_H1" link set u1 up
    ip -n "$NS_H2" link set u2 up
}

# ---------------------------------------------------------------- phase 1: the kernel
echo "== phase 1: the kernel (bridges, ip_forward, one route on each side)"
underlay
new_ns "$NS_A1" "$NS_A2"
kernel_side() {   # host container bridge-ip/16 container-ip/16 uplink-dev uplink-ip/24 other-subnet other-uplink
    local h=$1 c=$2
    inns "$h" ip link add br0 type bridge
    inns "$h" ip addr add "$3" dev br0
    inns "$h" ip link set br0 up
    ip -n "$h" link add vc0 type veth peer name eth0 netns "$c"
    inns "$h" ip link set vc0 master br0
    inns "$h" ip link set vc0 up
    inns "$c" ip addr add "$4" dev eth0
    inns "$c" ip link set eth0 up
    inns "$c" ip route add default via "${3%/*}"
    inns "$h" ip addr add "$6" dev "$5"
    inns "$h" sysctl -qw net.ipv4.ip_forward=1
    inns "$h" ip route add "$7" via "$8"
}
kernel_side "$NS_H1" "$NS_A1" 172.20.0.1/16 172.20.0.2/16 u1 10.99.0.1/24 172.21.0.0/16 10.99.0.2
kernel_side "$NS_H2" "$NS_A2" 172.21.0.1/16 172.21.0.2/16 u2 10.99.0.2/24 172.20.0.0/16 10.99.0.1
wait_path "$NS_A2" 5201 "$NS_A1" 172.21.0.2 5201 || die "[kernel] A1 cannot reach A2"
K_TCP=()
for ((r = 1; r <= ROUNDS; r++)); do
    v=$(iperf "$NS_A2" 5201 "$NS_A1" 172.21.0.2 5201 "kernel-$r"); check "$v" "kernel round $r"
    echo "  round $r kernel routed:       $v Gbit/s"
    K_TCP+=("$v")
done
teardown_namespaces

# ---------------------------------------------------------------- phase 2: switchyard
echo
echo "== phase 2: switchyard (two daemons), routed network vs published port"
underlay
start_daemon() {   # ns uplink ip gateway cpu sock label
    ip netns exec "$1" "$SWITCHYARD" daemon --state-dir "$TMP/state-$7" --socket "$6" \
        --uplink "$2" --uplink-ip "$3" --uplink-gateway "$4" --cpu "$5" "${EXTRA_ARGS[@]}" \
        >"$TMP/$7.log" 2>&1 &
    PIDS+=($!)
    local deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q "daemon ready" "$TMP/$7.log" 2>/dev/null; do
        ((SECONDS < deadline)) || { tail -n 30 "$TMP/$7.log" >&2; die "$7: no \"daemon ready\""; }
        sleep 0.1
    done
}
start_daemon "$NS_H1" u1 10.99.0.1/24 10.99.0.2 "$CPU1" "$TMP/h1.sock" h1
start_daemon "$NS_H2" u2 10.99.0.2/24 10.99.0.1 "$CPU2" "$TMP/h2.sock" h2
sy1 network create r1 --subnet 172.20.0.0/16 --opt gateway_mode=routed >/dev/null
sy2 network create r2 --subnet 172.21.0.0/16 --opt gateway_mode=routed >/dev/null
sy1 container create "$NS_A1" --network r1 >/dev/null
sy2 container create "$NS_A2" --network r2 >/dev/null
sy1 container create "$NS_B1" >/dev/null
sy2 container create "$NS_B2" -p 5202:5201 >/dev/null
wait_path "$NS_A2" 5201 "$NS_A1" 172.21.0.2 5201 || die "[switchyard] A1 cannot reach A2 (routed)"
wait_path "$NS_B2" 5201 "$NS_B1" 10.99.0.2 5202 || die "[switchyard] B1 cannot reach 10.99.0.2:5202 (NAT)"
S_ROUTED=() S_NAT=()
for ((r = 1; r <= ROUNDS; r++)); do
    v=$(iperf "$NS_A2" 5201 "$NS_A1" 172.21.0.2 5201 "routed-$r"); check "$v" "routed round $r"
    echo "  round $r switchyard routed:   $v Gbit/s"
    S_ROUTED+=("$v")
    v=$(iperf "$NS_B2" 5201 "$NS_B1" 10.99.0.2 5202 "nat-$r"); check "$v" "NAT round $r"
    echo "  round $r switchyard NAT path: $v Gbit/s"
    S_NAT+=("$v")
done
for pid in "${PIDS[@]}"; do
    SY_PID=$pid SY_LOG=/dev/null
    stop_switchyard >/dev/null
done
teardown_namespaces

echo
/usr/bin/python3 - "${K_TCP[*]}" "${S_ROUTED[*]}" "${S_NAT[*]}" "$DURATION" <<'PY'
import statistics, sys
k, r, n = ([float(x) for x in a.split()] for a in sys.argv[1:4])
km, rm, nm = (statistics.median(x) for x in (k, r, n))
rows = [
    ("kernel, routed (bridges + ip_forward)", km, ""),
    ("switchyard, routed network", rm, "%.3f" % (rm / km)),
    ("switchyard, published port (masquerade + DNAT)", nm, "%.3f" % (nm / km)),
]
w = max(len(r[0]) for r in rows)
print("| %s | TCP Gbit/s (median) | ratio to kernel |" % "path".ljust(w))
print("|%s|---|---|" % ("-" * (w + 2)))
for name, v, ratio in rows:
    print("| %s | %.3f | %s |" % (name.ljust(w), v, ratio))
print("\nrouted / NAT path: %.3f" % (rm / nm))
print("RESULT kernel=%.3f routed=%.3f nat=%.3f routed_over_kernel=%.3f nat_over_kernel=%.3f "
      "routed_over_nat=%.3f duration_s=%s" % (km, rm, nm, rm / km, nm / km, rm / nm, sys.argv[4]))
PY
# shellcheck disable=SC2034  # read by cleanup (lib.sh)
FAILED=0
