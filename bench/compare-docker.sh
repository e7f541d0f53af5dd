#!/usr/bin/env bash
# bench/compare-docker.sh -- a published port of a real Docker container (`docker run -p 8080:80`):
# Docker's own bridge network (docker0, iptables DNAT, docker-proxy: the defaults) vs the same
# container on a switchyard network (`docker network create -d <plugin>`: switchyard's DNAT).
#
# Both phases run in ONE invocation over the SAME outer topology, so the ratios are comparable on
# a noisy VM. dockerd runs inside a throw-away namespace (`nsenter --net`, its own data root, exec
# root, socket and pidfile in a temp dir); the root namespace's links, addresses, routes and
# iptables are never touched.
#
#     ns OUT (<prefix>o)              ns HOST (<prefix>h)
#   eth0 192.0.2.1/24  <-veth->  up0 192.0.2.10/24   dockerd [+ switchyard daemon]
#                                                       container: busybox `sleep`, -p 8080:80
#
#   Phase 1 (docker): dockerd with its defaults (docker0 172.17.0.0/16, iptables DNAT and
#     MASQUERADE, userland proxy on); up0 holds 192.0.2.10/24; `docker run -p 8080:80`.
#   Phase 2 (switchyard): dockerd with --bridge=none --iptables=false --ip-masq=false; `switchyard
#     daemon --uplink up0 --uplink-ip 192.0.2.10/24 --docker-plugin=/run/docker/plugins/<p>.sock`
#     (up0 without a kernel address); `docker network create -d <p> --subnet 10.240.0.0/24` and
#     `docker run --network ... -p 8080:80`.
#
# The servers run in the container's network namespace (`nsenter -t <container pid> -n`), so the
# image needs only busybox; the network path is the container's. Per phase, from OUT against
# 192.0.2.10:8080:
#   client  the source address the container sees for a connection (nc -l in the container)
#   tcp     iperf3 -s -p 80 -1 in the container; iperf3 -c 192.0.2.10 -p 8080 -t DURATION -J from
#           OUT; Gbit/s = end.sum_received.
#   conn    new TCP connections per second: `connrate serve 80` in the container, `connrate
#           connect 192.0.2.10:8080 DURATION --parallel PARALLEL` in OUT.
#
# Usage:  sudo bench/compare-docker.sh [--quick] [-h|--help] [-- EXTRA_DAEMON_ARGS...]
#   --quick            DURATION=3 (smoke run)
#   -- ARGS...         appended verbatim to the `switchyard daemon` command line
#
# Environment:
#   DURATION=10        seconds per iperf3 / connrate run
#   PARALLEL=4         connrate client threads
#   SWITCHYARD=path    switchyard binary (default: <repo>/target/release/switchyard; built if missing)
#   CONNRATE=path      connrate binary (default: <repo>/target/release/connrate; built if missing)
#   SKIP_SWITCHYARD=1  run only the Docker phase
#   READY_TIMEOUT=15   seconds to wait for daemons and for the published port
#   STOP_TIMEOUT=10    seconds to wait for switchyard to exit after SIGTERM
#   KEEP_LOGS=1        keep the temp dir with logs (always kept when the run fails)
#
# Needs: docker.io (dockerd, docker), busybox-static, iperf3, iptables, nc (openbsd), nsenter.
# Output: header, a table  metric | docker (bridge+iptables+proxy) | switchyard | ratio, one
# machine-readable line per point starting with "POINT " and one starting with "RESULT ".
set -euo pipefail

SCRIPT_NAME=compare-docker.sh
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$SCRIPT_DIR/lib.sh"

parse_args "$@"
if ((QUICK)); then DURATION=3; fi
DURATION=${DURATION:-10}
PARALLEL=${PARALLEL:-4}
common_env_defaults
require_positive_int DURATION PARALLEL READY_TIMEOUT STOP_TIMEOUT

require_tools ip iptables iperf3 python3 timeout dockerd docker nsenter nc busybox
require_root "network namespaces, dockerd"

CONNRATE_DEFAULT="$REPO_ROOT/target/release/connrate"
CONNRATE=${CONNRATE:-$CONNRATE_DEFAULT}
build_if_missing binary "$CONNRATE" "$CONNRATE_DEFAULT" --release -p bench --bin connrate
SWITCHYARD_DEFAULT="$REPO_ROOT/target/release/switchyard"
SWITCHYARD=${SWITCHYARD:-$SWITCHYARD_DEFAULT}
if ((!SKIP_SWITCHYARD)); then
    build_if_missing binary "$SWITCHYARD" "$SWITCHYARD_DEFAULT" --release -p control
fi

PFX="sydk$$"
NS_O="${PFX}o" NS_H="${PFX}h"
IP_OUT=192.0.2.1 IP_PUB=192.0.2.10
PUB_PORT=8080 CT_PORT=80
PLUGIN="$PFX"
PLUGIN_SOCK="/run/docker/plugins/$PLUGIN.sock"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-compare-docker.XXXXXX")
SY_SOCK="$TMP/sock"
SY_PID="" DK_PID=""
export DOCKER_HOST="unix://$TMP/dk.sock" DOCKER_API_VERSION=1.41
# shellcheck disable=SC2034  # read by cleanup (lib.sh)
CLEANED=0 FAILED=1

# Removes the containers, stops dockerd (and its containerd), kills what a dead dockerd left
# (processes naming our temp dir), unmounts below it, then the namespaces.
stop_docker() {
    if [[ -n $DK_PID ]] && kill -0 "$DK_PID" 2>/dev/null; then
        local ids
        ids=$(timeout 20 docker ps -aq 2>/dev/null || true)
        if [[ -n $ids ]]; then
            # shellcheck disable=SC2086
            timeout 30 docker rm -f $ids >/dev/null 2>&1 || true
        fi
        kill -TERM "$DK_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do kill -0 "$DK_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$DK_PID" 2>/dev/null || true
        wait "$DK_PID" 2>/dev/null || true
    fi
    DK_PID=""
    local pid
    for pid in $(grep -l -a -F "$TMP/exec" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
        [[ $pid == "$$" ]] || kill -KILL "$pid" 2>/dev/null || true
    done
    awk -v p="$TMP" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    return 0
}

teardown_namespaces() {
    stop_docker
    if [[ -n $SY_PID ]]; then kill -KILL "$SY_PID" 2>/dev/null || true; wait "$SY_PID" 2>/dev/null || true; SY_PID=""; fi
    rm -f -- "$PLUGIN_SOCK"
    kill_namespaces "$NS_O" "$NS_H"
    rm -rf -- "$TMP/data" "$TMP/exec" 2>/dev/null || true
    return 0
}
install_traps

inO() { ip netns exec "$NS_O" "$@"; }
inH() { ip netns exec "$NS_H" "$@"; }
sy() { SWITCHYARD_SOCKET="$SY_SOCK" "$SWITCHYARD" "$@"; }

print_env_header "switchyard vs Docker's bridge + iptables + docker-proxy: a published port of a Docker container ($IP_PUB:$PUB_PORT -> :$CT_PORT)"
echo "dockerd:    $(dockerd --version 2>/dev/null | head -n1)"
echo "iperf3:     $(iperf3 --version 2>/dev/null | head -n1)"
echo "connrate:   $CONNRATE (--parallel $PARALLEL)"
echo "duration:   ${DURATION}s per test"
print_switchyard_header "daemon --uplink up0 --uplink-ip $IP_PUB/24 --uplink-gateway $IP_OUT --docker-plugin=$PLUGIN_SOCK ${EXTRA_ARGS[*]}"
echo "namespaces: $NS_O $NS_H   temp dir: $TMP"
echo

setup_outer() {
    local ns
    for ns in "$NS_O" "$NS_H"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
    done
    inO sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
    ip -n "$NS_H" link add up0 type veth peer name eth0 netns "$NS_O"
    ip -n "$NS_O" addr add "$IP_OUT/24" dev eth0
    ip -n "$NS_O" link set eth0 up
    ip -n "$NS_H" link set up0 up
}

# dockerd in HOST with its own roots; extra flags per phase. Waits until it answers.
start_docker() {
    mkdir -p "$TMP/data" "$TMP/exec"
    nsenter --net="/run/netns/$NS_H" dockerd --storage-driver=vfs --data-root "$TMP/data" \
        --exec-root "$TMP/exec" --pidfile "$TMP/dk.pid" -H "$DOCKER_HOST" "$@" \
        >"$TMP/dockerd-$PHASE.log" 2>&1 &
    DK_PID=$!
    local deadline=$((SECONDS + 60))
    until docker version >/dev/null 2>&1; do
        kill -0 "$DK_PID" 2>/dev/null || { tail -n 20 "$TMP/dockerd-$PHASE.log" >&2; die "[$PHASE] dockerd exited"; }
        ((SECONDS < deadline)) || { tail -n 20 "$TMP/dockerd-$PHASE.log" >&2; die "[$PHASE] dockerd did not answer"; }
        sleep 0.2
    done
    local rootfs="$TMP/rootfs"
    if [[ ! -d $rootfs ]]; then
        mkdir -p "$rootfs/bin"
        cp "$(command -v busybox)" "$rootfs/bin/busybox"
        local a
        for a in $(busybox --list); do [[ $a == busybox ]] || ln -s busybox "$rootfs/bin/$a"; done
    fi
    tar -C "$rootfs" -c . | docker import --change 'ENV PATH=/bin' - local/busybox >/dev/null
}

# The container: busybox sleeping, port 8080 published; CT_PID is its init process (the servers
# join its network namespace).
start_container() {
    docker run -d --name bench -p "$PUB_PORT:$CT_PORT" "$@" local/busybox sleep 100000 >/dev/null
    CT_PID=$(docker inspect -f '{{.State.Pid}}' bench)
    [[ $CT_PID =~ ^[1-9][0-9]*$ ]] || die "[$PHASE] no pid for the container"
}

inC() { nsenter -t "$CT_PID" -n "$@"; }

wait_listening() {   # port log
    local i
    for ((i = 0; i < 50; i++)); do
        if inC ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    cat "$2" >&2 || true
    die "[$PHASE] server in the container did not start listening on port $1 (see $2)"
}

start_connrate_server() {
    CR_LOG="$TMP/connrate-server-$PHASE.log"
    nsenter -t "$CT_PID" -n "$CONNRATE" serve "$CT_PORT" >>"$CR_LOG" 2>&1 &
    CR_PID=$!
    wait_listening "$CT_PORT" "$CR_LOG"
}

stop_connrate_server() {
    kill -TERM "$CR_PID" 2>/dev/null || true
    wait "$CR_PID" 2>/dev/null || true
}

published_port_works() {
    local out
    out=$(inO timeout 5 "$CONNRATE" connect "$IP_PUB:$PUB_PORT" 0.3 --parallel 1 2>/dev/null || true)
    [[ $out =~ connections=([0-9]+) ]] && ((BASH_REMATCH[1] > 0))
}

wait_published() {
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if published_port_works; then return 0; fi
        sleep 0.2
    done
    die "[$PHASE] OUT cannot reach $IP_PUB:$PUB_PORT"
}

# The source address the container sees for a connection from OUT.
measure_client() {
    local log="$TMP/nc-$PHASE.log" pid
    nsenter -t "$CT_PID" -n timeout 10 nc -lvn -p "$CT_PORT" >"$log" 2>&1 &
    pid=$!
    wait_listening "$CT_PORT" "$log"
    echo hello | inO timeout 5 nc -N -w 2 "$IP_PUB" "$PUB_PORT" >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
    R_CLIENT=$(sed -n 's/.*Connection received on \([0-9.]*\) .*/\1/p' "$log" | head -n1)
    R_CLIENT=${R_CLIENT:-none}
    printf '  client address seen in the container: %s\n' "$R_CLIENT"
    record_point client "" address "$R_CLIENT" "client address in container" "192.0.2.1 is the client's own"
}

measure_tcp() {
    local out="$TMP/iperf3-$PHASE.json" slog="$TMP/iperf3-server-$PHASE.log" rc=0 spid
    nsenter -t "$CT_PID" -n iperf3 -s -p "$CT_PORT" -1 >"$slog" 2>&1 &
    spid=$!
    wait_listening "$CT_PORT" "$slog"
    inO iperf3 -c "$IP_PUB" -p "$PUB_PORT" -t "$DURATION" -J >"$out" 2>"$TMP/iperf3-$PHASE.err" || rc=$?
    R_TCP=$(iperf3_gbps "$out")
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    if [[ $R_TCP == ERR:* || $rc -ne 0 ]]; then
        cat "$TMP/iperf3-$PHASE.err" >&2 || true
        die "[$PHASE] iperf3 failed (rc=$rc): ${R_TCP#ERR:}"
    fi
    printf '  tcp : %10s Gbit/s\n' "$R_TCP"
    record_point tcp "" gbps "$R_TCP" "TCP throughput (Gbit/s)" "higher is better"
}

measure_conn() {
    local out="$TMP/connrate-$PHASE.out" err="$TMP/connrate-$PHASE.err" rc=0 line
    start_connrate_server
    wait_published
    inO "$CONNRATE" connect "$IP_PUB:$PUB_PORT" "$DURATION" --parallel "$PARALLEL" >"$out" 2>"$err" || rc=$?
    stop_connrate_server
    line=$(grep -m1 '^connections=' "$out" || true)
    if [[ ! $line =~ ^connections=([0-9]+)\ seconds=([0-9.]+)\ rate=([0-9.]+)\ failures=([0-9]+) ]]; then
        cat "$out" "$err" >&2 || true
        die "[$PHASE] connrate client failed (rc=$rc)"
    fi
    R_CONN_N=${BASH_REMATCH[1]} R_CONN=${BASH_REMATCH[3]} R_CONN_FAIL=${BASH_REMATCH[4]}
    printf '  conn: %10s conn/s (%d connections, %d failures, %d client threads)\n' \
        "$R_CONN" "$R_CONN_N" "$R_CONN_FAIL" "$PARALLEL"
    ((rc == 0 && R_CONN_N > 0)) || die "[$PHASE] no connection completed through $IP_PUB:$PUB_PORT (see $err)"
    record_point conn "" rate "$R_CONN" "new TCP connections/s" "higher is better"
    record_point conn "" failures "$R_CONN_FAIL" "connection failures (count)" "should be 0"
}

run_measurements() {
    start_connrate_server; wait_published; stop_connrate_server
    measure_client; sleep 1
    measure_tcp; sleep 1
    measure_conn
}

# ---------------------------------------------------------------- phase 1: Docker's own
PHASE=docker
setup_outer
inH ip addr add "$IP_PUB/24" dev up0
start_docker
start_container
echo "== phase 1: dockerd defaults in $NS_H (docker0, iptables DNAT, docker-proxy $(pgrep -f -c "docker-proxy.*$PUB_PORT" || true) running)"
run_measurements
teardown_namespaces

# ---------------------------------------------------------------- phase 2: switchyard
SY_RC=NA
if ((!SKIP_SWITCHYARD)); then
    PHASE=switchyard
    echo
    echo "== phase 2: switchyard daemon --docker-plugin in $NS_H, dockerd --bridge=none --iptables=false"
    setup_outer
    SY_LOG="$TMP/switchyard.log"
    ip netns exec "$NS_H" "$SWITCHYARD" daemon --state-dir "$TMP/state" --socket "$SY_SOCK" \
        --uplink up0 --uplink-ip "$IP_PUB/24" --uplink-gateway "$IP_OUT" \
        --docker-plugin="$PLUGIN_SOCK" "${EXTRA_ARGS[@]}" >"$SY_LOG" 2>&1 &
    SY_PID=$!
    deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q "daemon ready" "$SY_LOG" 2>/dev/null; do
        kill -0 "$SY_PID" 2>/dev/null || { tail -n 30 "$SY_LOG" >&2; die "switchyard exited before it was ready"; }
        ((SECONDS < deadline)) || { tail -n 30 "$SY_LOG" >&2; die "no \"daemon ready\" from switchyard"; }
        sleep 0.1
    done
    start_docker --bridge=none --iptables=false --ip-masq=false
    docker network create -d "$PLUGIN" --subnet 10.240.0.0/24 benchnet >/dev/null
    start_container --network benchnet
    run_measurements
    kill -0 "$SY_PID" 2>/dev/null || { tail -n 30 "$SY_LOG" >&2; die "switchyard died during the measurements"; }
    stop_docker
    stop_switchyard
    SY_PID=""
    teardown_namespaces
fi

echo
report_points docker "docker (bridge+iptables+proxy)" \
    tcp:gbps:tcp_docker:tcp_sy:tcp_ratio \
    conn:rate:conn_docker:conn_sy:conn_ratio \
    conn:failures:conn_failures_docker:conn_failures_sy \
    client:address:client_docker:client_sy \
    "duration_s=$DURATION" "parallel=$PARALLEL" "switchyard_exit=$SY_RC"

if [[ $SY_RC != NA && $SY_RC != 0 ]]; then
    echo "$SCRIPT_NAME: switchyard did not stop cleanly on SIGTERM (status $SY_RC)" >&2
    exit 1
fi
# shellcheck disable=SC2034
FAILED=0
