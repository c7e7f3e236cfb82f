#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input (netconf, CNI_ARGS, pod table, pool config) with
# cargo-fuzz (libFuzzer). FUZZ_SECONDS per target (default 600). The toolchain here is stable:
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for t in ${TARGETS:-netconf cni_args pod_table pool_config}; do
  echo "=== $t (${FUZZ_SECONDS:-600} s)"
  cargo fuzz run "$t" -- -max_total_time="${FUZZ_SECONDS:-600}" -print_final_stats=1 2>&1 |
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY|Done" || true
done
