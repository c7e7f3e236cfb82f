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
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  mkdir -p "$W/lists/partial"
  echo "deb-src $MIRROR bookworm main" > "$W/src.list"
  APTOPT=(-o Dir::Etc::SourceList="$W/src.list" -o Dir::Etc::SourceParts=/nonexistent
          -o Dir::State::Lists="$W/lists")
  apt-get "${APTOPT[@]}" update -qq
  (cd "$W" && apt-get "${APTOPT[@]}" source --download-only -qq golang-github-appc-cni)
  tar -C "$W" -xf "$(ls "$W"/golang-github-appc-cni_*.orig.tar.* | head -n1)"
  SRC=$(find "$W" -maxdepth 2 -type d -name cnitool -printf '%h\n' | head -n1)
  (cd "$SRC" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$W/gocache" \
     go build -o "$OUT/cnitool" ./cnitool/)
} >&2
echo "$OUT"
