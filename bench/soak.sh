#!/usr/bin/env bash
# bench/soak.sh -- a long run of one daemon under mixed traffic and control churn (issue 18).
#
# Usage: bench/soak.sh [MINUTES]     (default 30; as root; not part of CI)
#
# In namespaces of its own (prefix soak<pid>): a daemon with an uplink toward an "out" namespace
# (192.0.2.10, gateway 192.0.2.1), containers srv (publishing 8080/tcp and 5353/udp), c1 and c2.
# Traffic, all the time: iperf3 c1 -> srv (100 Mbit/s, 20 s runs), ping c2 -> srv every 0.2 s,
# TCP and UDP from out through the published ports. Churn: every 3 s a container is created,
# connected to a second network, published, disconnected or removed; every 20 s a network is
# created or removed; every 60 s the daemon restarts (SIGTERM, every other time kill -9).
# Every 5 s it samples the daemon's RSS, open fds and threads, the conntrack and MAC table
# sizes. Writes bench/soak-<stamp>.csv and .svg and prints a summary (RSS and fds: first, last,
# max, in the last restart's run; ping loss; failed churn steps; panics in the daemon's logs).
set -euo pipefail
MINUTES=${1:-30}
[[ $EUID -eq 0 ]] || { echo "soak.sh: run as root" >&2; exit 2; }
for t in ip iperf3 ping nc python3; do command -v $t >/dev/null || { echo "soak.sh: needs $t" >&2; exit 2; }; done
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SWITCHYARD:-$REPO/target/release/switchyard}
[[ -x $BIN ]] || (cd "$REPO" && cargo build --release -p control)
P=soak$$ TMP=/tmp/$P STAMP=$(date -u +%Y%m%dT%H%M%SZ)
CSV=$REPO/bench/soak-$STAMP.csv SVG=$REPO/bench/soak-$STAMP.svg
mkdir -p "$TMP"
SW=$P-sw OUT=$P-out
export SWITCHYARD_SOCKET=$TMP/s.sock
sy() { "$BIN" "$@"; }
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    # container rm ends every process left in a container (issue 18).
    sy container rm -f "$P-srv" "$P-c1" "$P-c2" $(seq -f "$P-t%g" 0 9) >/dev/null 2>&1 || true
    [[ -f $TMP/daemon.pid ]] && kill "$(cat "$TMP/daemon.pid")" 2>/dev/null || true
    sleep 1
    ip netns pids "$OUT" 2>/dev/null | xargs -r kill 2>/dev/null || true
    for c in srv c1 c2 $(seq -f "t%g" 0 9); do ip netns del "$P-$c" 2>/dev/null || true; done
    ip netns del "$SW" 2>/dev/null || true; ip netns del "$OUT" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$SW"; ip netns add "$OUT"
ip link add "${P}u" netns "$SW" type veth peer name eth0 netns "$OUT"
ip -n "$OUT" addr add 192.0.2.1/24 dev eth0; ip -n "$OUT" link set eth0 up; ip -n "$OUT" link set lo up
ip -n "$SW" link set lo up
RESTARTS=0
start_daemon() {
    ip netns exec "$SW" "$BIN" daemon --state-dir "$TMP/state" --socket "$SWITCHYARD_SOCKET" \
        --uplink "${P}u" --uplink-ip 192.0.2.10/24 --uplink-gateway 192.0.2.1 \
        >>"$TMP/daemon.out" 2>>"$TMP/daemon.err" &
    echo $! >"$TMP/daemon.pid"
    for _ in $(seq 100); do sy status >/dev/null 2>&1 && return; sleep 0.1; done
    echo "soak.sh: the daemon did not start" >&2; tail "$TMP/daemon.err" >&2; exit 1
}
start_daemon
sy container create "$P-srv" -p 8080:80 -p 5353:53/udp >/dev/null
sy container create "$P-c1" >/dev/null; sy container create "$P-c2" >/dev/null
SRV_IP=172.17.0.2
# Background jobs are `ip netns exec` itself (it execs), so $! is the process to end; and
# `container rm` of srv/c1/c2 at the end ends whatever they started.
ip netns exec "$P-srv" iperf3 -s >/dev/null 2>&1 & PIDS+=($!)
ip netns exec "$P-srv" sh -c 'while true; do echo hi | nc -l -p 80 -q 0 >/dev/null 2>&1; done' & PIDS+=($!)
ip netns exec "$P-srv" sh -c 'while true; do timeout 2 nc -u -l -p 53 -q 0 >/dev/null 2>&1; done' & PIDS+=($!)
ip netns exec "$P-c1" sh -c "while true; do iperf3 -c $SRV_IP -t 20 -b 100M >/dev/null 2>&1 || sleep 1; done" & PIDS+=($!)
ip netns exec "$P-c2" ping -i 0.2 "$SRV_IP" >"$TMP/ping.log" 2>&1 & PING=$!; PIDS+=($PING)
ip netns exec "$OUT" sh -c 'while true; do nc -w 2 192.0.2.10 8080 </dev/null >/dev/null 2>&1; echo q | nc -u -w 1 192.0.2.10 5353 >/dev/null 2>&1; sleep 0.2; done' & PIDS+=($!)
FAILED_STEPS=0
churn() {
    local i=0 n
    while true; do
        # Each container goes through create, connect, disconnect, inspect, rm; networks come
        # and go every 15 steps.
        n=$P-t$(((i / 5) % 10)) net=soakn$(((i / 5) % 3))
        case $((i % 5)) in
            0) sy container create "$n" -p $((9000 + (i / 5) % 10)):80 ;;
            1) { sy network ls | grep -qw "$net" || sy network create "$net"; } && sy network connect "$net" "$n" ;;
            2) sy network disconnect "$net" "$n" ;;
            3) sy container inspect "$n" ;;
            4) sy container rm -f "$n" && { ((i % 15 != 14)) || sy network rm "$net"; } ;;
        esac >/dev/null 2>>"$TMP/churn.err" || echo "$(date +%s) step $i failed" >>"$TMP/churn.failed"
        i=$((i + 1)); sleep 3
    done
}
churn & PIDS+=($!)
echo "time_s,rss_kib,fds,threads,conntrack,macs,restarts" >"$CSV"
START=$(date +%s); END=$((START + MINUTES * 60)); NEXT_RESTART=$((START + 60))
while (( $(date +%s) < END )); do
    now=$(date +%s); pid=$(cat "$TMP/daemon.pid")
    if (( now >= NEXT_RESTART )); then
        if (( RESTARTS % 2 )); then kill -9 "$pid"; else kill "$pid"; fi
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
        RESTARTS=$((RESTARTS + 1)); start_daemon; pid=$(cat "$TMP/daemon.pid")
        NEXT_RESTART=$((now + 60))
    fi
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    thr=$(awk '/^Threads:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    read -r ct macs < <(sy stats --json 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["conntrack_entries"], s["macs"])' 2>/dev/null || echo "0 0")
    echo "$((now - START)),$rss,$fds,$thr,$ct,$macs,$RESTARTS" >>"$CSV"
    sleep 5
done
kill -INT "$PING" 2>/dev/null || true; sleep 1
PANICS=$(grep -c panicked "$TMP/daemon.err" || true)
FAILED_STEPS=$(wc -l <"$TMP/churn.failed" 2>/dev/null || echo 0)
LOSS=$(grep -o '[0-9.]*% packet loss' "$TMP/ping.log" || echo "?")
python3 - "$CSV" "$SVG" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
t = [int(r["time_s"]) for r in rows]
series = [("rss_kib", "daemon RSS (KiB)", "#1f77b4"), ("fds", "open fds", "#d62728"),
          ("threads", "threads", "#2ca02c"), ("conntrack", "conntrack entries", "#9467bd")]
W, H, L, B = 900, 170, 70, 30
out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (W, H * len(series))]
for i, (key, label, color) in enumerate(series):
    ys = [int(r[key]) for r in rows]
    top = max(ys + [1]); y0 = H * i
    out.append('<text x="%d" y="%d">%s (max %d)</text>' % (L, y0 + 14, label, top))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (L, y0 + H - B, W - 10, y0 + H - B))
    span = max(t[-1], 1) if t else 1
    pts = " ".join("%.1f,%.1f" % (L + (W - L - 10) * x / span, y0 + H - B - (H - B - 24) * y / top) for x, y in zip(t, ys))
    out.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (color, pts))
    out.append('<text x="%d" y="%d">0</text><text x="%d" y="%d">%d s</text>' % (L - 12, y0 + H - B, W - 60, y0 + H - 12, span))
out.append("</svg>")
open(sys.argv[2], "w").write("\n".join(out))
PY
python3 - "$CSV" "$RESTARTS" "$PANICS" "$FAILED_STEPS" "$LOSS" "$MINUTES" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
last_run = [r for r in rows if r["restarts"] == rows[-1]["restarts"]]
def fig(key, rs): v = [int(r[key]) for r in rs if int(r[key]) > 0]; return "first %d, last %d, max %d" % (v[0], v[-1], max(v)) if v else "none"
print("soak: %s min, %d samples, %s daemon restarts, %s panics, %s failed churn steps, ping c2 -> srv %s" % (sys.argv[6], len(rows), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]))
print("RSS KiB over the whole run: %s; in the last daemon's run: %s" % (fig("rss_kib", rows), fig("rss_kib", last_run)))
print("fds: %s; in the last run: %s" % (fig("fds", rows), fig("fds", last_run)))
print("threads: %s; conntrack: %s; macs: %s" % (fig("threads", rows), fig("conntrack", rows), fig("macs", rows)))
PY
echo "soak: wrote $CSV and $SVG"
