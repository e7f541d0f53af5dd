#!/usr/bin/env bash
# bench/scale.sh -- memory and control-plane times of many containers on one daemon (issue 17).
#
# Usage: bench/scale.sh [N]     (default 200; as root; not part of CI)
#        SWITCHYARD=/path/to/switchyard bench/scale.sh 200     (another build, for an A/B)
#
# In namespaces of its own (prefix scl<pid>): starts a daemon, samples its RSS, creates N
# containers on the default network one after the other (timed), samples the RSS again, pings from
# the first container to the last, removes them all (timed) and samples the RSS once more. Prints
# one line: the RSS before, with N containers and after removal (MiB), the RSS per container
# (KiB), create and remove times (s and ms per container) and the ping's loss.
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
T0=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do sy container create "$P-c$i" >/dev/null; done
T1=$(date +%s.%N)
sleep 2
RSS1=$(rss)
LAST=$(ip -n "$P-c$((N - 1))" -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]}')
LOSS=$(ip netns exec "$P-c0" ping -c 5 -i 0.2 -W 1 "$LAST" | grep -o '[0-9.]*% packet loss' || echo "ping failed")
T2=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do echo "$P-c$i"; done | xargs -n 50 "$BIN" container rm -f >/dev/null
T3=$(date +%s.%N)
sleep 2
RSS2=$(rss)
/usr/bin/python3 - "$BIN" "$N" "$RSS0" "$RSS1" "$RSS2" "$T0" "$T1" "$T2" "$T3" "$LOSS" <<'PY'
import sys
b, n, r0, r1, r2, t0, t1, t2, t3, loss = sys.argv[1:]
n, r0, r1, r2 = int(n), int(r0), int(r1), int(r2)
t0, t1, t2, t3 = map(float, (t0, t1, t2, t3))
print("scale.sh: %s: %d containers; daemon RSS %.1f MiB -> %.1f MiB (%.0f KiB per container) -> %.1f MiB "
      "after removal; create %.1f s (%.0f ms each), remove %.1f s (%.0f ms each); ping c0 -> c%d: %s"
      % (b, n, r0 / 1024, r1 / 1024, (r1 - r0) / n, r2 / 1024, t1 - t0, (t1 - t0) * 1000 / n,
         t3 - t2, (t3 - t2) * 1000 / n, n - 1, loss))
PY
