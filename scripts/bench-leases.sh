#!/usr/bin/env bash
# What cluster-wide IP leases cost a fixed-IP ADD and DEL: an agent with leases and one without
# (--ip-leases=false), against the real kube-apiserver v1.20.2, driven alternately ROUNDS times
# through the release `sriov` binary; plus the API server's count of lease requests per call.
# Run as root; brings the cluster (scripts/k8s/cluster.sh) up and down itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/k8s/build-kube.sh >/dev/null
cargo build --release -q --bins -p cni-sriov -p device-plugin -p hw-tests
SRIOV_BIN_DIR="$(pwd)/target/release" target/release/bench_leases --rounds "${ROUNDS:-30}"
