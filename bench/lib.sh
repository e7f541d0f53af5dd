# shellcheck shell=bash
# bench/lib.sh -- scaffolding shared by bench/compare.sh and bench/compare-nat.sh. Source it
# (do not run it) right after `set -euo pipefail`, with SCRIPT_NAME already set:
#
#     SCRIPT_NAME=compare.sh        # prefix of every message, e.g. "compare.sh: ..."
#     SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
#     source "$SCRIPT_DIR/lib.sh"
#
# It only defines variables and functions; nothing here creates, changes or deletes anything
# until the calling script calls it. The root namespace is never touched: the only namespaces
# these helpers kill processes in or delete are the ones the calling script passes in (its own).
#
# Calling-script contract for cleanup() / install_traps: the script defines TMP, CLEANED=0,
# FAILED=1 (cleared just before a successful exit) and a function teardown_namespaces.

: "${SCRIPT_NAME:?set SCRIPT_NAME before sourcing bench/lib.sh}"
SCRIPT_PATH=${BASH_SOURCE[1]:?bench/lib.sh must be sourced by a script}   # for usage()
REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "$SCRIPT_NAME: $*" >&2; exit 1; }

# Prints the calling script's header comment (line 2 up to `set -euo pipefail`).
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT_PATH"; }

# parse_args "$@": sets QUICK (0/1) and EXTRA_ARGS (everything after `--`); --help prints the
# usage and exits 0, anything else is a usage error (exit 2).
# shellcheck disable=SC2034  # QUICK and EXTRA_ARGS are read by the calling script
parse_args() {
    QUICK=0 EXTRA_ARGS=()
    while (($#)); do
        case "$1" in
            --quick) QUICK=1; shift ;;
            -h|--help) usage; exit 0 ;;
            --) shift; EXTRA_ARGS=("$@"); break ;;
            *) echo "$SCRIPT_NAME: unknown argument '$1' (see --help)" >&2; exit 2 ;;
        esac
    done
    return 0
}

# Defaults of the environment variables both scripts share (see their headers).
common_env_defaults() {
    SKIP_SWITCHYARD=${SKIP_SWITCHYARD:-0}
    READY_TIMEOUT=${READY_TIMEOUT:-15}
    STOP_TIMEOUT=${STOP_TIMEOUT:-10}
    KEEP_LOGS=${KEEP_LOGS:-0}
    [[ $SKIP_SWITCHYARD == 1 ]] || SKIP_SWITCHYARD=0
}

# require_positive_int NAME...: exit 2 unless each named variable holds a positive integer.
require_positive_int() {
    local name
    for name in "$@"; do
        [[ ${!name} =~ ^[1-9][0-9]*$ ]] || { echo "$SCRIPT_NAME: $name must be a positive integer" >&2; exit 2; }
    done
}

# require_int_list NAME MIN MAX [WORD...]: exit 2 unless the named variable holds a list
# (separated by spaces or commas, not empty) of integers from MIN to MAX or of the given WORDs;
# rewrites it with single spaces so that `for x in $NAME` walks it.
require_int_list() {
    local name=$1 min=$2 max=$3 item items=()
    shift 3
    read -r -a items <<<"${!name//,/ }"
    ((${#items[@]})) || { echo "$SCRIPT_NAME: $name must not be empty" >&2; exit 2; }
    for item in "${items[@]}"; do
        if [[ $item =~ ^[0-9]{1,6}$ ]] && ((10#$item >= min && 10#$item <= max)); then continue; fi
        [[ " $* " == *" $item "* ]] && continue
        echo "$SCRIPT_NAME: $name: '$item' is not ${*:+one of $* or }a number from $min to $max" >&2
        exit 2
    done
    printf -v "$name" '%s' "${items[*]}"
}

# require_word_list NAME WORD...: the same for a list of the given WORDs only (e.g. TESTS).
require_word_list() {
    local name=$1 item items=()
    shift
    read -r -a items <<<"${!name//,/ }"
    ((${#items[@]})) || { echo "$SCRIPT_NAME: $name must not be empty" >&2; exit 2; }
    for item in "${items[@]}"; do
        [[ " $* " == *" $item "* ]] || { echo "$SCRIPT_NAME: $name: '$item' is not one of: $*" >&2; exit 2; }
    done
    printf -v "$name" '%s' "${items[*]}"
}

# require_tools TOOL...: exit 2 unless every tool is on PATH.
require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || { echo "$SCRIPT_NAME: missing prerequisite: $tool" >&2; exit 2; }
    done
}

# require_root WHY: exit 2 unless running as root.
require_root() {
    ((EUID == 0)) || { echo "$SCRIPT_NAME: must run as root ($1)" >&2; exit 2; }
}

# build_if_missing WHAT PATH DEFAULT-PATH CARGO-ARGS...: builds the binary with `cargo build
# CARGO-ARGS` when PATH is the (missing) default one; exit 2 ("WHAT not found or not
# executable: PATH") when it is still not executable, exit 1 when cargo fails.
build_if_missing() {
    local what=$1 path=$2 default=$3
    shift 3
    [[ -x $path ]] && return 0
    if [[ $path == "$default" ]]; then
        command -v cargo >/dev/null 2>&1 || { echo "$SCRIPT_NAME: missing prerequisite: cargo (needed to build $path)" >&2; exit 2; }
        echo "== building $(basename -- "$path"): cargo build $*" >&2
        (cd "$REPO_ROOT" && cargo build "$@") >&2 \
            || { echo "$SCRIPT_NAME: cargo build $* failed" >&2; exit 1; }
    fi
    [[ -x $path ]] || { echo "$SCRIPT_NAME: $what not found or not executable: $path" >&2; exit 2; }
}

# print_env_header TITLE: "== TITLE", then the date, kernel, nproc and cpu lines.
print_env_header() {
    local cpu_model
    cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
    [[ -n $cpu_model ]] || cpu_model=$(lscpu 2>/dev/null | awk -F': *' '/Model name/ {print $2; exit}' || true)
    echo "== $1"
    echo "date:       $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "kernel:     $(uname -r)"
    echo "nproc:      $(nproc)"
    echo "cpu:        ${cpu_model:-unknown}"
    echo "load:       $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
}

# print_switchyard_header ARGS: the "switchyard:" header line(s); ARGS is the command line shown
# after the binary.
print_switchyard_header() {
    if ((SKIP_SWITCHYARD)); then
        echo "switchyard: skipped (SKIP_SWITCHYARD=1)"
    else
        echo "switchyard: $SWITCHYARD $1"
        echo "            (built $(date -u -r "$SWITCHYARD" '+%Y-%m-%d %H:%M:%S UTC'))"
    fi
}

# kill_namespaces NS...: kills everything still running inside the given namespaces (TERM, then
# KILL 0.3 s later) and deletes them. Only ever pass the calling script's own namespaces: it
# started everything that runs in them. Never fails (also called under set -e between phases).
kill_namespaces() {
    local pid ns
    for ns in "$@"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do kill -TERM "$pid" 2>/dev/null || true; done
    done
    sleep 0.3
    for ns in "$@"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    for ns in "$@"; do
        if [[ -e /run/netns/$ns ]]; then ip netns del "$ns" 2>/dev/null || true; fi
    done
    return 0
}

# EXIT trap: stops our background jobs, calls the script's teardown_namespaces, keeps the temp
# dir TMP when the run failed or KEEP_LOGS=1 and removes it otherwise. Runs once.
cleanup() {
    ((CLEANED)) && return 0
    CLEANED=1
    set +e
    local pid
    # `jobs -p` lists only our background jobs that have not been reaped yet (no stale pids)
    for pid in $(jobs -p); do
        kill -TERM "$pid" 2>/dev/null
    done
    teardown_namespaces
    for pid in $(jobs -p); do
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    if ((FAILED)) || [[ $KEEP_LOGS == 1 ]]; then
        echo "== logs kept in $TMP" >&2
    else
        rm -rf -- "$TMP"
    fi
}

install_traps() {
    trap cleanup EXIT
    trap 'echo "$SCRIPT_NAME: interrupted" >&2; exit 130' INT
    trap 'echo "$SCRIPT_NAME: terminated" >&2; exit 143' TERM
}

# record_connrate CLIENTS RC OUT ERR WHERE: reads `connrate connect`'s result line from OUT (its
# exit status RC, its stderr in ERR), prints it and records the point's rate and failures; dies when
# the client failed or no connection to WHERE completed.
record_connrate() {
    local clients=$1 rc=$2 out=$3 err=$4 where=$5 line n rate failures
    line=$(grep -m1 '^connections=' "$out" || true)
    if [[ ! $line =~ ^connections=([0-9]+)\ seconds=([0-9.]+)\ rate=([0-9.]+)\ failures=([0-9]+) ]]; then
        cat "$out" "$err" >&2 || true
        die "[$PHASE] connrate client failed (rc=$rc)"
    fi
    n=${BASH_REMATCH[1]} rate=${BASH_REMATCH[3]} failures=${BASH_REMATCH[4]}
    printf '  conn: %10s conn/s (%d connections, %d failures, %d client threads)\n' \
        "$rate" "$n" "$failures" "$clients"
    if ((failures > 0)); then sed 's/^/        /' "$err"; fi
    ((rc == 0 && n > 0)) || die "[$PHASE] no connection completed to $where (see $err)"
    record_point conn "clients=$clients" rate "$rate" "new TCP connections/s, $clients clients" "higher is better"
    record_point conn "clients=$clients" failures "$failures" "connection failures, $clients clients (count)" "should be 0"
}

# not_ready RC LABEL WHY: exits 1 because the forwarder SY_PID (logging to SY_LOG) never forwarded:
# RC 2 from the wait means it exited (its status is reported), anything else WHY.
not_ready() {
    local r
    if (($1 == 2)); then
        wait "$SY_PID" 2>/dev/null && r=0 || r=$?
        echo "$SCRIPT_NAME: $2 exited (rc=$r) before it forwarded; log tail:" >&2
    else
        echo "$SCRIPT_NAME: $3; log tail:" >&2
    fi
    tail -n 30 "$SY_LOG" >&2 || true
    exit 1
}

# stop_switchyard: SIGTERM to SY_PID, SIGKILL after STOP_TIMEOUT s; sets SY_RC (exit status or
# "hung") and prints the tail of SY_LOG.
stop_switchyard() {
    local deadline
    kill -TERM "$SY_PID"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$SY_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$SY_PID" 2>/dev/null; then
        echo "  switchyard still running ${STOP_TIMEOUT}s after SIGTERM: sending SIGKILL"
        kill -KILL "$SY_PID" 2>/dev/null || true
        wait "$SY_PID" 2>/dev/null || true
        SY_RC=hung
    else
        wait "$SY_PID" && SY_RC=0 || SY_RC=$?
    fi
    echo "  switchyard exit status after SIGTERM: $SY_RC; last lines of its output ($SY_LOG):"
    tail -n 40 "$SY_LOG" | sed 's/^/    | /'
}

# iperf3_gbps FILE: end.sum_received of an `iperf3 -J` output (all streams) in Gbit/s, or
# "ERR:<why>" when the run failed or the file is not iperf3's JSON.
iperf3_gbps() {
    /usr/bin/python3 - "$1" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("ERR:unparsable iperf3 JSON: %s" % e); sys.exit(0)
if d.get("error"):
    print("ERR:" + d["error"]); sys.exit(0)
try:
    print("%.3f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))
except KeyError:
    print("ERR:no end.sum_received in iperf3 JSON")
PY
}

# record_point TEST PARAMS METRIC VALUE LABEL NOTE: one measured point of the current PHASE
# (kernel, docker or switchyard), kept in $TMP/points-$PHASE for report_points. PARAMS are the point's
# coordinates as "key=value" words ("streams=4 mss=default"), "" when it has none; LABEL and NOTE
# are the table's first and last columns.
record_point() {
    printf '%s|%s|%s|%s|%s|%s\n' "$@" >>"$TMP/points-$PHASE"
}

# report_points REFERENCE REFERENCE_COLUMN [SPEC | KEY=VALUE]...: prints the table of every
# point of both phases (the reference phase, e.g. kernel, and switchyard side by side, ratio
# switchyard/reference), one line per point
#   POINT test=T <params> metric=M REFERENCE=K switchyard=S ratio=R
# and one line "RESULT ...": a SPEC "test:metric:reference_key:switchyard_key[:ratio_key]" puts
# the first point of that test and metric there (NA when it was not measured), KEY=VALUE is
# copied. Values a phase did not measure (SKIP_SWITCHYARD=1) print NA.
report_points() {
    local reference=$1
    shift
    /usr/bin/python3 - "$TMP/points-$reference" "$TMP/points-switchyard" "$reference" "$@" <<'PY'
import sys

kernel_file, switchyard_file, reference, kernel_column, *specs = sys.argv[1:]

def load(path):
    points, order = {}, []
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        test, params, metric, value, label, note = line.split("|")
        points[(test, params, metric)] = (value, label, note)
        order.append((test, params, metric))
    return points, order

kernel, order = load(kernel_file)
switchyard, s_order = load(switchyard_file)
order += [key for key in s_order if key not in kernel]

def num(x):
    try:
        return float(x)
    except ValueError:
        return None

def ratio(s, k):
    s, k = num(s), num(k)
    return "NA" if s is None or not k else "%.3f" % (s / k)

rows = []
for key in order:
    k = kernel.get(key, ("NA",))[0]
    s = switchyard.get(key, ("NA",))[0]
    _, label, note = kernel.get(key) or switchyard[key]
    rows.append((label, k, s, ratio(s, k), note))
hdr = ("metric", kernel_column, "switchyard", "ratio sy/" + reference, "note")
w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(5)]
line = lambda r: "| " + " | ".join(str(c).ljust(w[i]) if i in (0, 4) else str(c).rjust(w[i]) for i, c in enumerate(r)) + " |"
print(line(hdr))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print(line(r))
print()
for (test, params, metric), r in zip(order, rows):
    print("POINT test=%s %smetric=%s %s=%s switchyard=%s ratio=%s"
          % (test, params + " " if params else "", metric, reference, r[1], r[2], r[3]))
fields = []
for spec in specs:
    if "=" in spec:
        fields.append(spec)
        continue
    test, metric, k_key, s_key, *r_key = spec.split(":")
    first = next((i for i, key in enumerate(order) if key[0] == test and key[2] == metric), None)
    k, s, r = ("NA", "NA", "NA") if first is None else rows[first][1:4]
    fields += ["%s=%s" % (k_key, k), "%s=%s" % (s_key, s)] + ["%s=%s" % (x, r) for x in r_key]
print("RESULT " + " ".join(fields))
PY
}
