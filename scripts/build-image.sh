#!/usr/bin/env bash
# Builds the image the DaemonSet runs, offline: no base image, no registry. The root
# filesystem holds the two release binaries, the shared libraries `ldd` lists for them and a
# static busybox (the CNI installer's `sh`, `cp`, `mv`); it is packed as an OCI image and, when
# a containerd socket is given, imported into its `k8s.io` namespace (otherwise written to
# --out, default target/sriov-rs-image.tar, for `ctr -n k8s.io images import` on each node).
#   scripts/build-image.sh [--tag localhost/sriov-rs:0.1.0] [--containerd SOCKET] [--out FILE]
# Prints the image name. The rootfs is left in target/image-rootfs (deploy/Containerfile
# builds the same image from it with `podman build`/`docker build`, also offline).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=localhost/sriov-rs:$(awk -F'"' '/^version =/{print $2; exit}' Cargo.toml)
SOCK=""
OUT=""
while (($#)); do
  case $1 in
    --tag) TAG=$2; shift 2 ;;
    --containerd) SOCK=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
export DEBIAN_FRONTEND=noninteractive
[ -x /bin/busybox ] || { apt-get update -qq; apt-get install -y -qq --no-install-recommends busybox-static >/dev/null; }
{
  cargo build --release --locked --bins -p cni-sriov -p device-plugin
  REL=${CARGO_TARGET_DIR:-target}/release
  ROOT=target/image-rootfs
  rm -rf "$ROOT"
  mkdir -p "$ROOT/usr/local/bin" "$ROOT/bin" "$ROOT/tmp" "$ROOT/etc"
  install -m 0755 "$REL/sriov" "$REL/sriov-device-plugin" "$ROOT/usr/local/bin/"
  # The loader and every library the binaries link, at the same paths as on the build host.
  # ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and "/lib64/ld-linux… (0x…)";
  # with two files it also prints "<file>:" headers (absolute when CARGO_TARGET_DIR is).
  for lib in $(ldd "$REL/sriov" "$REL/sriov-device-plugin" \
                 | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u); do
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
  done
  cp /bin/busybox "$ROOT/bin/busybox"
  for t in sh cp mv rm ls cat mkdir ln sleep; do ln -s busybox "$ROOT/bin/$t"; done
  chmod 1777 "$ROOT/tmp"
  echo 'root:x:0:0:root:/:/bin/sh' > "$ROOT/etc/passwd"
  opts=()
  [ -n "$SOCK" ] && opts+=(-a "$SOCK") || opts+=(-n)
  [ -z "$OUT" ] || opts+=(-o "$OUT")
  [ -n "$SOCK" ] || [ -n "$OUT" ] || opts+=(-o target/sriov-rs-image.tar)
  bash scripts/k8s/oci-image.sh "${opts[@]}" "$TAG" "$ROOT" /usr/local/bin/sriov-device-plugin
} >&2
echo "$TAG"
