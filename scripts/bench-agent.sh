#!/usr/bin/env bash
# The agent's kubelet side at scale: the release `sriov-device-plugin run` on fixture sysfs trees
# of 4 PFs × 128 VFs (512) and 4 × 256 (1024) on /dev/shm, with the kubelet stand-in listening.
# Prints spawn → first ListAndWatch, Allocate and GetPreferredAllocation p50/p99, the agent's RSS,
# and as peers from the same run a bare /bin/true spawn and `inventory --json` on the same tree.
# Needs root (veth links stand in for the fixture PFs' netdevs). Extra arguments go to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p device-plugin --bin sriov-device-plugin -q
cargo build --release -p hw-tests --features bench --bin bench_agent -q
bin="${CARGO_TARGET_DIR:-target}/release"
for vfs in 128 256; do
    echo "== 4 PFs × $vfs VFs =="
    "$bin/bench_agent" --pfs 4 --vfs-per-pf "$vfs" --agent "$bin/sriov-device-plugin" "$@"
done
