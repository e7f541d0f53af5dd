#!/usr/bin/env bash
# bench/sweep.sh -- every figure of compare.sh and compare-nat.sh over a range of sizes, streams
# and clients, for each engine worker setting, kept as CSV and drawn as SVG (issue 17 item 5).
#
# For each round and each setting in WORKERS it runs, with `-- --workers N` (no flag for
# "default": one worker per CPU):
#   compare.sh      bridged: TCP for STREAMS x TCP_MSS, UDP for each of UDP_SIZES, PINGS pings
#   compare-nat.sh  published port: TCP for NAT_STREAMS, new connections/s for CLIENTS
# Every run measures the kernel and switchyard over the same topology, so each point's ratio is
# within one run. The 1-minute load average is read before each run and kept with its points.
#
# Usage:  sudo bench/sweep.sh [-h|--help]
#
# Environment (the defaults take about 11 minutes on 2 vCPUs with ROUNDS=1):
#   DURATION=5                       seconds per iperf3 / trafgen / connrate run
#   PINGS=500                        echo requests per RTT measurement (10 ms apart)
#   ROUNDS=1                         repetitions of the whole sweep
#   WORKERS="1 default"              worker settings (a number or "default")
#   STREAMS="1 2 4"                  bridged iperf3 -P values
#   TCP_MSS="536 1200 default"       bridged iperf3 -M values (with every STREAMS value)
#   UDP_SIZES="64 128 256 512 1024 1518"   bridged UDP frame sizes on the wire
#   NAT_STREAMS="1 2 4"              published-port iperf3 -P values
#   CLIENTS="1 4 16 64"              connrate client threads
#   OUT_DIR=bench/                   where the CSVs and SVGs go
#   SWITCHYARD, CONNRATE, READY_TIMEOUT, STOP_TIMEOUT: passed to both scripts
#
# Writes OUT_DIR/sweep-<stamp>.csv (one row per point: round, script, workers, test, streams, mss,
# size, clients, metric, kernel, switchyard, ratio, load1), OUT_DIR/sweep-<stamp>-rtt.csv (every
# ping reply: round, workers, phase, rtt_us), and the plots of bench/plot.py:
# sweep-<stamp>-{size,streams,clients,rtt}.svg; prints a Markdown table of the points. The
# scripts' own output goes to a log directory, kept (and named) when a run fails.
# Exit codes: 0 ok, 1 a run failed (the others are still kept and drawn), 2 usage.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
case ${1:-} in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "sweep.sh: no arguments, only environment variables (see --help)" >&2; exit 2 ;;
esac
((EUID == 0)) || { echo "sweep.sh: must run as root (the scripts it runs need it)" >&2; exit 2; }

export DURATION=${DURATION:-5}
export PINGS=${PINGS:-500}
ROUNDS=${ROUNDS:-1}
WORKERS=${WORKERS:-1 default}
BRIDGE_STREAMS=${STREAMS:-1 2 4}
BRIDGE_MSS=${TCP_MSS:-536 1200 default}
BRIDGE_SIZES=${UDP_SIZES:-64 128 256 512 1024 1518}
NAT_STREAMS=${NAT_STREAMS:-1 2 4}
CLIENTS=${CLIENTS:-1 4 16 64}
OUT_DIR=${OUT_DIR:-$SCRIPT_DIR}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "sweep.sh: ROUNDS must be a positive integer" >&2; exit 2; }
for w in $WORKERS; do
    [[ $w == default || $w =~ ^[1-9][0-9]*$ ]] || { echo "sweep.sh: WORKERS: '$w' is not a number or default" >&2; exit 2; }
done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
CSV="$OUT_DIR/sweep-$STAMP.csv" RTT_CSV="$OUT_DIR/sweep-$STAMP-rtt.csv"
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-sweep.XXXXXX")
FAILED_RUNS=()

echo "== sweep: kernel vs switchyard, workers: $WORKERS, $ROUNDS round(s), ${DURATION}s per test"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit:  $(git -C "$SCRIPT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$SCRIPT_DIR" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "machine: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "output:  $CSV, $RTT_CSV, logs in $LOGS"
echo

echo "round,script,workers,test,streams,mss,size,clients,metric,kernel,switchyard,ratio,load1" >"$CSV"
echo "round,workers,phase,rtt_us" >"$RTT_CSV"

# run ROUND WORKERS SCRIPT ENV...: one run of SCRIPT with ENV; its POINT lines become CSV rows.
run() {
    local round=$1 workers=$2 script=$3 log load rc=0 args=()
    shift 3
    log="$LOGS/$round-$workers-${script%.sh}.log"
    [[ $workers == default ]] || args=(-- --workers "$workers")
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "== round $round, workers $workers: $script ($*; load $load)"
    env "$@" "$SCRIPT_DIR/$script" "${args[@]}" >"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        echo "   FAILED (rc=$rc): tail of $log:"
        tail -n 15 "$log" | sed 's/^/   | /'
        FAILED_RUNS+=("$round/$workers/$script")
        return 0
    fi
    grep -E '^\| ' "$log" | sed 's/^/   /'
    awk -v round="$round" -v script="$script" -v workers="$workers" -v load="$load" '
        /^POINT / {
            delete f
            for (i = 2; i <= NF; i++) { eq = index($i, "="); f[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
            print round "," script "," workers "," f["test"] "," f["streams"] "," f["mss"] "," f["size"] "," \
                f["clients"] "," f["metric"] "," f["kernel"] "," f["switchyard"] "," f["ratio"] "," load
        }' "$log" >>"$CSV"
}

START=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
    # alternate the order of the settings between rounds, so that drift hits them alike
    order=$WORKERS
    ((round % 2)) || order=$(printf '%s\n' $WORKERS | tac | xargs)
    for w in $order; do
        samples="$LOGS/rtt-$round-$w.txt"
        : >"$samples"
        run "$round" "$w" compare.sh STREAMS="$BRIDGE_STREAMS" TCP_MSS="$BRIDGE_MSS" \
            UDP_SIZES="$BRIDGE_SIZES" RTT_SAMPLES="$samples"
        awk -v round="$round" -v workers="$w" '{print round "," workers "," $1 "," $2}' "$samples" >>"$RTT_CSV"
        run "$round" "$w" compare-nat.sh STREAMS="$NAT_STREAMS" PARALLEL="$CLIENTS"
    done
done
echo
echo "== $(((SECONDS - START) / 60)) min $(((SECONDS - START) % 60)) s; load at the end $(cut -d' ' -f1-3 /proc/loadavg)"

/usr/bin/python3 "$SCRIPT_DIR/plot.py" "$CSV" "$RTT_CSV" "$OUT_DIR/sweep-$STAMP"

if ((${#FAILED_RUNS[@]})); then
    echo "sweep.sh: failed runs: ${FAILED_RUNS[*]} (logs in $LOGS)" >&2
    exit 1
fi
rm -rf -- "$LOGS"
