#!/usr/bin/env bash
# The project's test command. Run as root: the privileged tests create their own netns, links,
# and emulated NICs, and clean up after themselves. Without root they print
# "skipped: <why>"; with SRIOV_REQUIRE_PRIVILEGED=1 (set by CI) a skip is a failure instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/sbin:/sbin
# The end-to-end tests drive these binaries; --all-features compiles in the test-only
# fault-injection hook (inert unless SRIOV_FAULT_STEP is set).
cargo build --workspace --all-features --bins
# The real CNI client (libcni's cnitool) and Debian's reference plugins, for the end-to-end tests.
SRIOV_CNITOOL="$(bash scripts/build-cnitool.sh)/cnitool"
export SRIOV_CNITOOL
# grpcurl (grpc-go; sends the socket path as :authority, as kubelets before 1.26 do).
SRIOV_GRPCURL="$(bash scripts/build-grpcurl.sh)/grpcurl"
export SRIOV_GRPCURL
# kubelet, kube-apiserver, controller-manager and scheduler v1.20.2 from Debian's source package,
# for the real-cluster test (hw-tests/tests/kube_cluster.rs, which runs scripts/k8s/cluster.sh).
# Cached under ~/.cache/sriov-kube: ~18 min on 2 cores the first time, nothing after.
bash scripts/k8s/build-kube.sh >/dev/null
# The QEMU igb suite (hw-tests/tests/qemu_igb.rs -> hw-tests/qemu/run.sh) boots a guest with the
# release binaries, as shipped; the guest kernel and base initramfs are cached in <target>/qemu-cache.
# The shipped pair exactly as scripts/build-image.sh builds it (same packages, so the same
# features: the real-cluster test's image build then finds it built), then the bench tools.
cargo build --release --locked --bins -p cni-sriov -p device-plugin
cargo build --release --bins -p hw-tests
SRIOV_QEMU_BIN_DIR="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release"
export SRIOV_QEMU_BIN_DIR
cargo test --workspace --all-features --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
