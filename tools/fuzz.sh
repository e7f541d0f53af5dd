#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (default 60 s in all, split evenly),
# starting from the seeds in fuzz/seeds/<target> when there are any (read only: new inputs go to a
# scratch directory), and prints executions per target. A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/; turn it into a regression test beside the code it broke.
#
#   tools/fuzz.sh [TOTAL_SECONDS]        (installs the nightly toolchain and cargo-fuzz if missing)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
total=${1:-60}
# A fresh machine (CI's clean clone) may lack either: install them (crates.io and rustup's
# servers are reachable where the tests run), and say so if that fails.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "== installing the nightly toolchain (rustup toolchain install nightly --profile minimal)"
    rustup toolchain install nightly --profile minimal >/dev/null ||
        { echo "fuzz.sh: the nightly toolchain is missing and could not be installed: rustup toolchain install nightly" >&2; exit 2; }
fi
if ! command -v cargo-fuzz >/dev/null; then
    echo "== installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked --quiet ||
        { echo "fuzz.sh: cargo-fuzz is missing and could not be installed: cargo install cargo-fuzz" >&2; exit 2; }
fi
mapfile -t targets < <(cargo +nightly fuzz list)
each=$(( total / ${#targets[@]} )); (( each > 0 )) || each=1
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
cargo +nightly fuzz build >/dev/null
printf '%-10s %12s %8s\n' target runs seconds
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    dirs=("$scratch/$t")
    [[ -d "seeds/$t" ]] && dirs+=("seeds/$t")
    log="$scratch/$t.log"
    if ! cargo +nightly fuzz run "$t" "${dirs[@]}" -- -max_total_time="$each" -max_len=4096 >"$log" 2>&1; then
        grep -E "panicked|ERROR|Test unit written" "$log" >&2 || tail -n 30 "$log" >&2
        echo "fuzz.sh: target $t crashed" >&2
        exit 1
    fi
    runs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo "?")
    printf '%-10s %12s %8s\n' "$t" "$runs" "$each"
done
