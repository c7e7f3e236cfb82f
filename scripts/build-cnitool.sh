#!/usr/bin/env bash
# Builds `cnitool` (the CNI project's reference client, libcni) from Debian's source package, and
# installs Debian's reference plugins (host-device, static, host-local) used as peers and as
# delegated IPAM. Prints the directory holding cnitool. Cached: a second run does nothing.
# Debian's golang-github-appc-cni-dev lacks cnitool/, but the source package has it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
OUT=${SRIOV_TOOLS_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target/tools}
mkdir -p "$OUT"
if [ -x "$OUT/cnitool" ] && [ -x /usr/lib/cni/host-device ]; then echo "$OUT"; exit 0; fi
{
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends golang-go golang-github-appc-cni-dev \
    containernetworking-plugins dpkg-dev >/dev/null
  W=$(mktemp -d)
  trap 'rm -rf "$W"' EXIT
  tar -C "$W" -xf "$(bash "$(dirname "$0")/debian-source.sh" golang-github-appc-cni "$W")"
  SRC=$(find "$W" -maxdepth 2 -type d -name cnitool -printf '%h\n' | head -n1)
  (cd "$SRC" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$W/gocache" \
     go build -o "$OUT/cnitool" ./cnitool/)
} >&2
echo "$OUT"
