#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input (netconf, CNI_ARGS, pod table, pool config) with
# cargo-fuzz (libFuzzer). FUZZ_SECONDS per target (default 600). The toolchain here is stable:
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
rc=0
for t in ${TARGETS:-netconf cni_args pod_table pool_config}; do
  echo "=== $t (${FUZZ_SECONDS:-600} s)"
  # Full libFuzzer output goes to fuzz/logs/<target>.log; a crash leaves its input in
  # fuzz/artifacts/<target>/ and makes this script fail.
  mkdir -p logs
  if ! cargo fuzz run "$t" -- -max_total_time="${FUZZ_SECONDS:-600}" -print_final_stats=1 >"logs/$t.log" 2>&1; then
    echo "FINDING in $t: see fuzz/logs/$t.log and fuzz/artifacts/$t/"; tail -n 30 "logs/$t.log"; rc=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|^Done" "logs/$t.log" || true
done
exit $rc
