# shellcheck shell=bash
# bench/twohosts.sh -- helpers of the two-host benchmarks (bench/routed.sh, bench/overlay.sh):
# namespaces, the two daemons' clients, iperf3 runs and waiting for a path. Source it after
# bench/lib.sh, once TMP and SWITCHYARD are set; it only defines functions.

inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
sy1() { SWITCHYARD_SOCKET="$TMP/h1.sock" "$SWITCHYARD" "$@"; }
sy2() { SWITCHYARD_SOCKET="$TMP/h2.sock" "$SWITCHYARD" "$@"; }

new_ns() {
    local ns
    for ns in "$@"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        inns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
    done
}

# iperf3 from CLIENT_NS to ADDR:PORT, server in SERVER_NS on SERVER_PORT; prints Gbit/s.
iperf() {
    local server_ns=$1 server_port=$2 client_ns=$3 addr=$4 port=$5 label=$6 out spid rc=0 i
    ip netns exec "$server_ns" iperf3 -s -p "$server_port" -1 >"$TMP/server-$label.log" 2>&1 &
    spid=$!
    for ((i = 0; i < 50; i++)); do
        inns "$server_ns" ss -Hltn "sport = :$server_port" 2>/dev/null | grep -q . && break
        sleep 0.1
    done
    out="$TMP/iperf3-$label.json"
    inns "$client_ns" iperf3 -c "$addr" -p "$port" -t "$DURATION" -J >"$out" 2>&1 || rc=$?
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    /usr/bin/python3 - "$out" "$rc" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    if d.get("error"):
        raise ValueError(d["error"])
    print("%.3f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception as e:
    print("ERR:%s (rc %s)" % (e, sys.argv[2]))
PY
}

check() {   # VALUE LABEL
    [[ $1 != ERR:* ]] || die "$2: iperf3 failed: ${1#ERR:} (logs in $TMP)"
}

# Retries until CLIENT_NS reaches ADDR:PORT (a listener started for the purpose) or times out.
wait_path() {   # server_ns server_port client_ns addr port
    local deadline=$((SECONDS + READY_TIMEOUT)) spid ok=1
    ip netns exec "$1" timeout "$READY_TIMEOUT" /usr/bin/python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); c.close()' "$2" >/dev/null 2>&1 &
    spid=$!
    sleep 0.3
    while ((SECONDS < deadline)); do
        if inns "$3" timeout 1 bash -c "exec 3<>/dev/tcp/$4/$5" 2>/dev/null; then ok=0; break; fi
        sleep 0.2
    done
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    return $ok
}
