#!/usr/bin/env bash
# bench/txpath.sh -- the transmit path experiment of issue 17: the engine's sendmmsg (a vnet
# header + frame per message, PACKET_QDISC_BYPASS) against a PACKET_TX_RING (frames copied into
# ring slots, one send() per batch of 32, ring pages attached to the skb), side by side in one run.
#
#     bench/txpath.sh [--quick]
#
# Sends from namespace A into a veth whose peer is in namespace B, the sender pinned to CPU 0:
# "drop" frames are addressed to another MAC (B's stack discards them at once: the transmit
# mechanism's own cost); "deliver" frames go to a UDP socket in B read on CPU 1 (the receiving
# stack runs in the sender's softirq, as for a container). Sizes 64, 1500 and 65000 bytes (a UDP
# GSO super-frame, as TCP's 64 KiB frames reach the engine). Rounds alternate the two modes.
# Output: one line per run: mode size frames/s Gbit/s busy cpu-ns/frame (sender thread).
# Environment: SECONDS_PER_RUN (3; 1 with --quick), ROUNDS (2; 1 with --quick), TXPATH (binary).
set -euo pipefail
SCRIPT_NAME=txpath.sh
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
parse_args "$@"
require_root "namespaces and AF_PACKET sockets"
require_tools ip taskset
SECONDS_PER_RUN=${SECONDS_PER_RUN:-$((QUICK ? 1 : 3))}
ROUNDS=${ROUNDS:-$((QUICK ? 1 : 2))}
require_positive_int SECONDS_PER_RUN ROUNDS
DEFAULT_TXPATH=$REPO_ROOT/target/release/txpath
TXPATH=${TXPATH:-$DEFAULT_TXPATH}
build_if_missing txpath "$TXPATH" "$DEFAULT_TXPATH" --release -p bench --bin txpath

TMP=$(mktemp -d) CLEANED=0 FAILED=1 KEEP_LOGS=${KEEP_LOGS:-0}
NS_A=txp-a-$$ NS_B=txp-b-$$
teardown_namespaces() { kill_namespaces "$NS_A" "$NS_B"; }
install_traps

ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add txp0 netns "$NS_A" type veth peer name txp1 netns "$NS_B"
ip -n "$NS_A" link set txp0 up
ip -n "$NS_B" addr add 10.9.0.2/24 dev txp1
ip -n "$NS_B" link set txp1 up
ip -n "$NS_B" link set lo up
PEER_MAC=$(ip netns exec "$NS_B" cat /sys/class/net/txp1/address)

print_env_header "txpath: sendmmsg vs PACKET_TX_RING into a veth"
echo "runs:       ${SECONDS_PER_RUN} s each, $ROUNDS rounds, sender on CPU 0"
echo "columns:    target mode size frames/s Gbit/s busy cpu-ns/frame"
for target in drop deliver; do
    mac=02:00:00:00:00:99
    [[ $target == deliver ]] && mac=$PEER_MAC
    for size in 64 1500 65000; do
        for ((r = 1; r <= ROUNDS; r++)); do
            for mode in sendmmsg txring; do
                if [[ $target == deliver ]]; then
                    ip netns exec "$NS_B" taskset -c 1 "$TXPATH" sink 9000 "$((SECONDS_PER_RUN + 1))" >"$TMP/sink" &
                    sink=$!
                    sleep 0.2
                fi
                line=$(ip netns exec "$NS_A" taskset -c 0 "$TXPATH" send txp0 "$mode" "$size" "$SECONDS_PER_RUN" "$mac")
                if [[ $target == deliver ]]; then
                    wait "$sink"
                    read -r got bytes <"$TMP/sink"
                    echo "$target $line received $got"
                else
                    echo "$target $line"
                fi
            done
        done
    done
done
FAILED=0
