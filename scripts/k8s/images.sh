#!/usr/bin/env bash
# Builds the two images the local cluster needs, from host files only, and imports them into the
# cluster's containerd (k8s.io namespace) with oci-image.sh:
#   localhost/pause:3.2  — the pod sandbox image: a static binary compiled from pause.c
#   localhost/busybox:1  — /bin/busybox from busybox-static plus one symlink per applet
#                          (sh, sleep, ip, cat, nc, wget…); Cmd ["sh"], no Entrypoint
# Needs gcc, libc6-dev and busybox-static (cluster.sh up installs them) and a running containerd.
# Usage: images.sh [-a CONTAINERD_SOCK]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

PAUSE_IMAGE=localhost/pause:3.2
BUSYBOX_IMAGE=localhost/busybox:1
PAUSE_BIN=$K8S_VARLIB/images/pause      # compiled once, rebuilt when pause.c changes

# build_pause: static pause binary at $PAUSE_BIN.
build_pause() {
  [[ $PAUSE_BIN -nt $HERE/pause.c ]] && return 0
  mkdir -p "$(dirname "$PAUSE_BIN")"
  gcc -static -Os -Wall -Werror -o "$PAUSE_BIN.tmp" "$HERE/pause.c"
  strip "$PAUSE_BIN.tmp"
  mv "$PAUSE_BIN.tmp" "$PAUSE_BIN"
}

# pause_rootfs DIR: / holding only /pause.
pause_rootfs() {
  mkdir -p "$1"
  install -m 0755 "$PAUSE_BIN" "$1/pause"
}

# busybox_rootfs DIR: static busybox, applet symlinks, minimal /etc, mount points.
busybox_rootfs() {
  local root=$1 applet
  ldd /bin/busybox >/dev/null 2>&1 && die "/bin/busybox is dynamic: install busybox-static"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,root,var/run}
  install -d -m 1777 "$root/tmp"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  while read -r applet; do
    [[ -e $root/$applet || -L $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
  done < <(/bin/busybox --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

main() {
  local sock=$K8S_CTRD_SOCK opt
  while getopts "a:" opt; do
    case $opt in a) sock=$OPTARG ;; *) sed -n '2,9p' "$0" >&2; exit 2 ;; esac
  done
  WORK=$(mktemp -d /tmp/sriov-k8s-images.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  build_pause
  pause_rootfs "$WORK/pause"
  bash "$HERE/oci-image.sh" -a "$sock" "$PAUSE_IMAGE" "$WORK/pause" /pause
  busybox_rootfs "$WORK/busybox"
  bash "$HERE/oci-image.sh" -a "$sock" -C "$BUSYBOX_IMAGE" "$WORK/busybox" sh
}

main "$@"
