#!/usr/bin/env bash
# CNI ADD/DEL latency benchmark (see scripts/bench-cni.py). Env: N (cycles, 50), VFS (8),
# ENTRIES (pod-table entries, 10), SWEEP (shapes "VFS:ENTRIES,…"; default: 8:10, 256:10, 8:10000,
# i.e. flatness over the VF count and the pod-table size). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build-cnitool.sh >/dev/null   # also installs Debian's host-device/static peers
cargo build --release --bins -q
SWEEP=${SWEEP-8:10,256:10,8:10000} python3 scripts/bench-cni.py
