#!/usr/bin/env bash
# Builds kubelet, kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 from Debian
# bookworm's `kubernetes` source package (no registry, no Go module proxy: the orig tarball carries
# vendor/). Prints the directory holding the binaries. Cached under ~/.cache keyed by the source
# version, so a second run only checks the cache (~25 min on 2 cores from scratch).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
VER=1.20.2
CACHE=${SRIOV_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sriov-kube/v$VER}
BINS=(kubelet kube-apiserver kube-controller-manager kube-scheduler)
have_all() { for b in "${BINS[@]}"; do [ -x "$CACHE/$b" ] || return 1; done; }
if have_all; then echo "$CACHE"; exit 0; fi
# One build at a time (test.sh and cluster.sh both ask): the second waits, then finds the cache.
mkdir -p "$(dirname "$CACHE")"
exec 9>"$CACHE.lock"
flock 9
if have_all; then echo "$CACHE"; exit 0; fi
{
  if ! command -v go >/dev/null || ! command -v dpkg-source >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends golang-go dpkg-dev rsync make >/dev/null
  fi
  W=${SRIOV_KUBE_WORK:-$(mktemp -d /var/tmp/sriov-kube.XXXXXX)}
  trap 'rm -rf "$W"' EXIT
  ORIG=$(bash "$(dirname "$0")/../debian-source.sh" kubernetes "$W")
  mkdir -p "$W/src"
  tar -C "$W/src" --strip-components=1 -xf "$ORIG"
  cd "$W/src"
  # The tarball has no .git: give the build its version explicitly, as Debian's rules do.
  export KUBE_GIT_VERSION=v$VER KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT=debian
  export HOME="$W/home" GOPATH="$W/gopath" GOCACHE="$W/gocache" GOFLAGS=-mod=vendor GO111MODULE=on
  mkdir -p "$HOME"
  make WHAT="${BINS[*]/#/cmd/}" KUBE_BUILD_PLATFORMS=linux/amd64
  mkdir -p "$CACHE.tmp"
  for b in "${BINS[@]}"; do cp "_output/local/bin/linux/amd64/$b" "$CACHE.tmp/"; done
  rm -rf "$CACHE"; mv "$CACHE.tmp" "$CACHE"
} >&2
echo "$CACHE"
