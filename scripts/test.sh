#!/usr/bin/env bash
# The project's test command. Run as root: the privileged tests create their own netns, links,
# emulated NICs and nftables tables, and clean up after themselves. Without root they print
# "skipped: <why>"; with SRIOV_REQUIRE_PRIVILEGED=1 (set by CI) a skip is a failure instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/sbin:/sbin
cargo build --workspace --release --bins
cargo test --workspace --all-features --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
