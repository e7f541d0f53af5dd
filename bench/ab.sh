#!/usr/bin/env bash
# bench/ab.sh -- A/B two switchyard builds through one of the side-by-side scripts.
#
# Runs SCRIPT (compare.sh or compare-nat.sh) ROUNDS times for each of two binaries, alternating
# A, B, A, B, ... so that drift of the machine hits both alike. Every run measures the kernel too,
# so each build is judged by its ratio to the kernel in its own run, then the ratios are averaged
# per build. Use it to show that a change does not regress: A = a build of the previous main.
#
# Usage:  sudo bench/ab.sh A_BINARY B_BINARY SCRIPT [ROUNDS] [-- SCRIPT_ARGS...]
#   A_BINARY, B_BINARY   two `switchyard` binaries (e.g. a release build of the previous main and
#                        target/release/switchyard)
#   SCRIPT               compare.sh or compare-nat.sh (path or name in bench/)
#   ROUNDS=2             runs per binary
# Environment: passed through to SCRIPT (DURATION, PARALLEL, ...).
#
# Output: each run's RESULT line, then a table: metric | A ratio (mean, min-max) | B ratio | B/A.
# Exit codes: 0 ok, 1 a run failed, 2 usage.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "ab.sh: $*" >&2; exit 2; }

[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
(($# >= 3)) || { usage >&2; exit 2; }
A=$1 B=$2 SCRIPT=$3
shift 3
ROUNDS=2
if (($#)) && [[ $1 != -- ]]; then ROUNDS=$1; shift; fi
[[ ${1:-} == -- ]] && shift
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
for bin in "$A" "$B"; do
    [[ -x $bin ]] || die "not an executable: $bin"
done
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
[[ -f $SCRIPT ]] || SCRIPT="$SCRIPT_DIR/$SCRIPT"
[[ -f $SCRIPT ]] || die "no such script: $SCRIPT"

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((round = 1; round <= ROUNDS; round++)); do
    for which in A B; do
        bin=$A
        [[ $which == B ]] && bin=$B
        echo "== round $round, $which: $bin"
        line=$(SWITCHYARD=$bin "$SCRIPT" "$@" | tee /dev/stderr | grep '^RESULT ') ||
            { echo "ab.sh: run $round of $which failed" >&2; exit 1; }
        echo "$which $line" >>"$results"
    done
done

echo
echo "A = $A"
echo "B = $B"
/usr/bin/python3 - "$results" <<'PY'
import sys
runs = {"A": [], "B": []}
for line in open(sys.argv[1]):
    which, _, *kv = line.split()
    runs[which].append(dict(x.split("=", 1) for x in kv))
metrics = [k for k in runs["A"][0] if k.endswith("_ratio")]
def stats(which, m):
    vals = [float(r[m]) for r in runs[which] if r.get(m, "NA") != "NA"]
    return (sum(vals) / len(vals), min(vals), max(vals)) if vals else None
print("| metric (switchyard/kernel) | A mean (min-max) | B mean (min-max) | B/A |")
print("|---|---|---|---|")
for m in metrics:
    a, b = stats("A", m), stats("B", m)
    cell = lambda s: "NA" if s is None else "%.3f (%.3f-%.3f)" % s
    ba = "NA" if not a or not b or not a[0] else "%.3f" % (b[0] / a[0])
    print("| %s | %s | %s | %s |" % (m, cell(a), cell(b), ba))
PY
