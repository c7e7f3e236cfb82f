#!/usr/bin/env bash
# Pod start-up on a real single-node v1.20.2 cluster: PODS pods created at once, creation to
# Ready (p50/p99) with `sriov` (deploy/ applied, one VF per pod) beside Debian's host-device +
# static as the node network, alternated ROUNDS times in the same run. Run as root; brings the
# cluster (scripts/k8s/cluster.sh) up and down itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/k8s/build-kube.sh >/dev/null
cargo build --release -q --bins -p cni-sriov -p device-plugin -p hw-tests
SRIOV_BIN_DIR="$(pwd)/target/release" target/release/bench_kube_startup \
  --pods "${PODS:-8}" --rounds "${ROUNDS:-3}" --kube-api-qps "${KUBE_API_QPS:-50}"
