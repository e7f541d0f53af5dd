#!/usr/bin/env bash
# Installs what the tests need (Debian/Ubuntu packages) and runs every test of the workspace:
# unit tests, pipeline tests and the integration tests in tests/ (real namespaces, veths, taps, ping,
# iperf3, tcpdump, a real dockerd). Needs root, as the integration tests create network namespaces.
#
#   sudo tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $EUID -eq 0 ]] || { echo "test.sh: run as root (integration tests create network namespaces): sudo $0" >&2; exit 2; }

need=(iproute2 iputils-ping iperf3 tcpdump tshark netcat-openbsd ethtool netsniff-ng util-linux procps llvm graphviz libxml2-utils docker.io busybox-static curl podman containernetworking-plugins dnsmasq dnsutils etcd-server)
missing=()
for pkg in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== cargo test --workspace"
cargo test --workspace --locked

# The default runs one engine worker per CPU; the integration tests again with a single worker,
# so both ways are covered (tests/common reads SWITCHYARD_TEST_WORKERS).
echo "== integration tests with --workers 1"
SWITCHYARD_TEST_WORKERS=1 cargo test --locked -p control --tests
