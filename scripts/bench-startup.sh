#!/usr/bin/env bash
# Start-up cost of the `sriov` CNI binary (VERSION, whole process: exec + run + exit), beside
# /bin/true as the exec floor measured in the same run. Prints medians and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}
cargo build --release --bins -q
python3 - "$N" <<'PY'
import os, statistics, subprocess, sys, time
n = int(sys.argv[1])
env = dict(os.environ, CNI_COMMAND="VERSION")
def med(cmd, stdin):
    ts = []
    for _ in range(n):
        t = time.perf_counter_ns()
        subprocess.run(cmd, input=stdin, stdout=subprocess.DEVNULL, env=env, check=True)
        ts.append(time.perf_counter_ns() - t)
    return statistics.median(ts) / 1e6, sorted(ts)[int(n * 0.99) - 1] / 1e6
floor = med(["/bin/true"], b"")
sriov = med(["target/release/sriov"], b'{"cniVersion":"1.1.0"}')
print(f"/bin/true      median {floor[0]:.3f} ms  p99 {floor[1]:.3f} ms")
print(f"sriov VERSION  median {sriov[0]:.3f} ms  p99 {sriov[1]:.3f} ms")
print(f"ratio sriov/true (median): {sriov[0] / floor[0]:.2f}")
PY
for b in sriov sriov-device-plugin; do printf '%-22s %8d bytes\n' "$b" "$(stat -c %s target/release/$b)"; done
