#!/usr/bin/env bash
# bench/scale.sh -- memory and control-plane times of many containers on one daemon (issue 17).
#
# Usage: bench/scale.sh [N]     (default 200; as root; not part of CI)
#        SWITCHYARD=/path/to/switchyard bench/scale.sh 200     (another build, for an A/B)
#
# In namespaces of its own (prefix scl<pid>): starts a daemon, samples its RSS, creates N
# containers on the default network one after the other (each create timed, with the daemon's CPU
# time), samples the RSS again, pings between pairs (first <-> last, and 8 pairs spread over the
# range, 5 pings each), removes them all (timed) and samples the RSS once more. Prints the RSS
# before, with N containers and after removal (MiB), the RSS per container (KiB), create and
# remove times (s and ms per container), the pings' loss, and, for each tenth of the count, the
# median create time and the daemon's CPU time per create (a cost that grows with the count shows
# there), and the daemon's open descriptors. 1,000 containers need no limit raised (3,023 fds).
set -euo pipefail
N=${1:-200}
[[ $EUID -eq 0 ]] || { echo "scale.sh: run as root" >&2; exit 2; }
[[ $N =~ ^[0-9]+$ ]] && ((N >= 2)) || { echo "scale.sh: N must be a number >= 2" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SWITCHYARD:-$REPO/target/release/switchyard}
[[ -x $BIN ]] || (cd "$REPO" && cargo build --release -p control)
P=scl$$ TMP=/tmp/$P
mkdir -p "$TMP"
SW=$P-sw
export SWITCHYARD_SOCKET=$TMP/s.sock
sy() { "$BIN" "$@"; }
cleanup() {
    for i in $(seq 0 $((N - 1))); do echo "$P-c$i"; done | xargs -r -n 50 "$BIN" container rm -f >/dev/null 2>&1 || true
    [[ -f $TMP/daemon.pid ]] && kill "$(cat "$TMP/daemon.pid")" 2>/dev/null || true
    sleep 1
    for i in $(seq 0 $((N - 1))); do ip netns del "$P-c$i" 2>/dev/null || true; done
    ip netns del "$SW" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$SW"
ip -n "$SW" link set lo up
ip netns exec "$SW" "$BIN" daemon --state-dir "$TMP/state" --socket "$SWITCHYARD_SOCKET" \
    >"$TMP/daemon.out" 2>"$TMP/daemon.err" &
echo $! >"$TMP/daemon.pid"
for _ in $(seq 100); do sy status >/dev/null 2>&1 && break; sleep 0.1; done
sy status >/dev/null || { echo "scale.sh: the daemon did not start" >&2; tail "$TMP/daemon.err" >&2; exit 1; }
PID=$(cat "$TMP/daemon.pid")
rss() { awk '/^VmRSS:/{print $2}' "/proc/$PID/status"; }
sleep 1
RSS0=$(rss)
# Each create is timed on its own (in $TMP/create.txt), so a cost that grows with the count shows.
T0=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do
    a=$(date +%s%N)
    sy container create "$P-c$i" >/dev/null
    echo "$i $((($(date +%s%N) - a) / 1000)) $(awk '{print $14 + $15}' "/proc/$PID/stat")" >>"$TMP/create.txt"
done
T1=$(date +%s.%N)
sleep 2
RSS1=$(rss)
FDS=$(ls "/proc/$PID/fd" | wc -l)
addr() { ip -n "$P-c$1" -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]}'; }
# Ping between pairs across the range: first <-> last, and pairs spread over it.
PAIRS="0:$((N - 1)) $((N - 1)):0"
for k in 1 2 3 4 5 6 7 8; do PAIRS="$PAIRS $(((k * 7919) % N)):$(((k * 104729 + N / 2) % N))"; done
SENT=0 LOST=0 WORST="" NPAIRS=0
for pair in $PAIRS; do
    a=${pair%:*} b=${pair#*:}
    [[ $a == "$b" ]] && continue
    out=$(ip netns exec "$P-c$a" ping -c 5 -i 0.2 -W 1 "$(addr "$b")" || true)
    rx=$(grep -o '[0-9]* received' <<<"$out" | awk '{print $1}')
    NPAIRS=$((NPAIRS + 1)) SENT=$((SENT + 5)) LOST=$((LOST + 5 - ${rx:-0}))
    ((${rx:-0} == 5)) || WORST="$WORST c$a->c$b:${rx:-0}/5"
done
LOSS="$((LOST * 100 / SENT))% loss over $SENT pings, $NPAIRS pairs (c0<->c$((N - 1)) and spread)${WORST:+, lossy:$WORST}"
T2=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do echo "$P-c$i"; done | xargs -n 50 "$BIN" container rm -f >/dev/null
T3=$(date +%s.%N)
sleep 2
RSS2=$(rss)
/usr/bin/python3 - "$BIN" "$N" "$RSS0" "$RSS1" "$RSS2" "$T0" "$T1" "$T2" "$T3" "$LOSS" "$TMP/create.txt" "$FDS" <<'PY'
import os, sys
b, n, r0, r1, r2, t0, t1, t2, t3, loss, times, fds = sys.argv[1:]
n, r0, r1, r2 = int(n), int(r0), int(r1), int(r2)
t0, t1, t2, t3 = map(float, (t0, t1, t2, t3))
print("scale.sh: %s: %d containers; daemon RSS %.1f MiB -> %.1f MiB (%.0f KiB per container) -> %.1f MiB "
      "after removal; create %.1f s (%.0f ms each), remove %.1f s (%.0f ms each); ping: %s"
      % (b, n, r0 / 1024, r1 / 1024, (r1 - r0) / n, r2 / 1024, t1 - t0, (t1 - t0) * 1000 / n,
         t3 - t2, (t3 - t2) * 1000 / n, loss))
rows = [line.split() for line in open(times)]
us, cpu = [int(r[1]) for r in rows], [int(r[2]) for r in rows]
tenth = max(1, n // 10)
tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
print("scale.sh: create, median ms per container in each tenth of the count: %s; daemon CPU ms per "
      "container in each tenth: %s; daemon fds: %s"
      % (" ".join("%.0f" % (sorted(us[i:i + tenth])[len(us[i:i + tenth]) // 2] / 1000)
                  for i in range(0, n - n % tenth, tenth)),
         " ".join("%.0f" % ((cpu[min(i + tenth, n) - 1] - (cpu[i - 1] if i else cpu[0])) * tick_ms
                            / (tenth if i else tenth - 1))
                  for i in range(0, n - n % tenth, tenth)), fds))
PY
