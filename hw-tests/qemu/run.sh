#!/usr/bin/env bash
# run.sh - the SR-IOV checks against a real PF driver: the Intel 82576 (igb) that QEMU emulates,
# with 7 real igbvf VFs, in a q35 guest under TCG; or, with --pf, a real PF on this host.
#
#   hw-tests/qemu/run.sh                 # boot twice: plain, then with a vIOMMU (vfio-pci checks)
#   hw-tests/qemu/run.sh --boots plain   # one boot (plain | iommu | "plain iommu")
#   hw-tests/qemu/run.sh --pf ens1f0     # no QEMU: the same checks on a real PF of this host
#
# The guest runs hw-tests' `sriov-hwcheck` from its /init; it drives the release `sriov` and
# `sriov-device-plugin` binaries (the agent in kubelet mode, with the kubelet stand-in in the
# same guest) and prints `CHECK <name> ok|FAIL <detail>` lines and a final `SUMMARY {json}`.
# check-log.sh turns each log into a verdict.
#
# Exit: 0 every check passed; 1 a check failed or a guest gave no SUMMARY; 77 skipped (prints
# `skipped: <why>`: not root, no apt/network for QEMU or the kernel, no igb device).
# Env: SRIOV_QEMU_BIN_DIR  binaries to use (default: build release into the cargo target dir)
#      SRIOV_QEMU_CACHE    cache dir (default <target>/qemu-cache): kernel + base initramfs,
#                          keyed by kernel version; logs of the last run in <cache>/last-run
#      KPKG                guest kernel package (default: what bookworm's linux-image-amd64 names)
#      SRIOV_QEMU_ITERATIONS  ADD/DEL latency cycles in the guest (7)
#      SRIOV_QEMU_INIT     another guest /init (driver experiments)
#      SRIOV_QEMU_BOOT_WAIT  seconds to wait for the guest's BOOTED line before retrying a hung boot (150)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/../.." && pwd)
export PATH=$PATH:/usr/sbin:/sbin DEBIAN_FRONTEND=noninteractive
BOOTS="plain iommu"; PF=""
while [ $# -gt 0 ]; do
  case $1 in
    --pf) PF=$2; shift 2;;
    --boots) BOOTS=$2; shift 2;;
    -h|--help) sed -n '2,22p' "$0"; exit 0;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
skip() { echo "skipped: $*"; exit 77; }
t_start=$(date +%s)
[ "$(id -u)" = 0 ] || skip "the igb SR-IOV suite needs root (QEMU install, netns, PF netlink)"
TARGET=${CARGO_TARGET_DIR:-$WS/target}
CACHE=${SRIOV_QEMU_CACHE:-$TARGET/qemu-cache}
OUT=$CACHE/last-run
mkdir -p "$CACHE" "$OUT"
ITER=${SRIOV_QEMU_ITERATIONS:-7}

# ---- binaries ----
BINS="sriov sriov-device-plugin sriov-hwcheck"
if [ -n "${SRIOV_QEMU_BIN_DIR:-}" ]; then
  BIN=$(cd "$WS" && cd "$SRIOV_QEMU_BIN_DIR" && pwd)
else
  (cd "$WS" && cargo build --release --quiet -p cni-sriov -p device-plugin -p hw-tests --bins)
  BIN=$TARGET/release
fi
for b in $BINS; do [ -x "$BIN/$b" ] || { echo "FAIL: $BIN/$b missing"; exit 1; }; done

# ---- a real PF on this host ----
if [ -n "$PF" ]; then
  [ -e "/sys/class/net/$PF/device/sriov_numvfs" ] || skip "$PF is not an SR-IOV PF"
  log=$OUT/host-$PF.log
  SRIOV_BIN_DIR=$BIN "$BIN/sriov-hwcheck" --pf "$PF" --iterations "$ITER" | tee "$log" || true
  sh "$HERE/check-log.sh" "$log"
  exit $?
fi

# ---- QEMU >= 8 (igb) from bookworm-backports ----
have_igb() { command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'; }
need_tools() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 \
  && command -v cpio >/dev/null && command -v zstd >/dev/null && command -v xz >/dev/null \
  && command -v depmod >/dev/null; }
if ! have_igb || ! need_tools; then
  command -v apt-get >/dev/null || skip "no QEMU with the igb device and no apt-get to install it"
  if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$MIRROR" ] || skip "no Debian mirror configured to add bookworm-backports"
    echo "deb $MIRROR bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
  fi
  apt-get update -qq >/dev/null 2>&1 || skip "apt-get update failed (no network?)"
  apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null 2>&1 \
    || skip "cannot install qemu-system-x86 from bookworm-backports"
  apt-get install -y -qq --no-install-recommends busybox-static kmod cpio xz-utils zstd gzip >/dev/null 2>&1 \
    || skip "cannot install busybox-static/kmod/cpio/xz/zstd"
  have_igb || skip "QEMU $(qemu-system-x86_64 --version | head -n1) has no igb device (needs >= 8.0)"
fi

# ---- guest kernel: unpacked, not installed; cached by version ----
KPKG=${KPKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')}
[ -n "$KPKG" ] || skip "cannot tell which kernel package linux-image-amd64 names"
KVER=${KPKG#linux-image-}
KDIR=$CACHE/k-$KVER
if [ ! -f "$KDIR/boot/vmlinuz-$KVER" ]; then
  tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
  (cd "$tmp" && apt-get download -qq "$KPKG" >/dev/null 2>&1) || { rm -rf "$tmp"; skip "cannot download $KPKG"; }
  rm -rf "$KDIR"; dpkg-deb -x "$tmp"/*.deb "$KDIR.tmp" && mv "$KDIR.tmp" "$KDIR"; rm -rf "$tmp"
fi
grep -q '^CONFIG_PCI_IOV=y' "$KDIR/boot/config-$KVER" || skip "$KVER has no CONFIG_PCI_IOV"

# ---- base initramfs (busybox, iproute2, igb/igbvf/vfio-pci); cached by kernel version ----
BASE_REV=1   # bump when the base's content changes
BASE=$CACHE/base-$KVER-r$BASE_REV.cpio.gz
copy_with_libs() {  # copy_with_libs <root> <file> <dest-dir>: the file and what ldd lists
  local R=$1 f=$2 d=$3 lib
  mkdir -p "$R$d"; cp -L "$f" "$R$d/"
  for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
    [ -e "$R$lib" ] || { mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"; }
  done
}
if [ ! -f "$BASE" ]; then
  depmod -b "$KDIR" "$KVER"
  R=$(mktemp -d)
  mkdir -p "$R"/{bin,sbin,lib/modules,usr/sbin,usr/local/bin,proc,sys,dev,run,tmp,etc,root}
  mkdir -p "$R/var"; ln -s ../run "$R/var/run"
  cp /bin/busybox "$R/bin/busybox"; ln -s busybox "$R/bin/sh"
  : > "$R/lib/modules/order"
  for m in igb igbvf vfio-pci; do
    modprobe -d "$KDIR" -S "$KVER" --show-depends $m | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++' | while read -r f; do
    n=$(basename "$f"); n=${n%.xz}; n=${n%.zst}
    case $f in *.xz) xz -dc "$f";; *.zst) zstd -qdc "$f";; *) cat "$f";; esac > "$R/lib/modules/$n"
    echo "$n" >> "$R/lib/modules/order"
  done
  copy_with_libs "$R" "$(command -v ip)" /usr/sbin
  (cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$BASE.tmp" && mv "$BASE.tmp" "$BASE"
  rm -rf "$R"
fi

# ---- this run's overlay: our binaries + their libraries + /init (the kernel unpacks both) ----
R=$(mktemp -d)
for b in $BINS; do copy_with_libs "$R" "$BIN/$b" /usr/local/bin; done
strip "$R"/usr/local/bin/* 2>/dev/null || true
cp "${SRIOV_QEMU_INIT:-$HERE/init.sh}" "$R/init"; chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/overlay.cpio.gz"
rm -rf "$R"
cat "$BASE" "$OUT/overlay.cpio.gz" > "$OUT/initrd.gz"

# ---- boot: plain and/or with a vIOMMU ----
echo "guest kernel $KVER, $(qemu-system-x86_64 --version | head -n1), boots: $BOOTS"
BOOT_WAIT=${SRIOV_QEMU_BOOT_WAIT:-150}
# boot_guest <log>: one QEMU run of the current $mode; the guest powers off when done.
# igb must sit on PCIe (q35) behind a root port: PF 01:00.0, VFs 01:10.0, 01:10.2, ...
# A hubport on an otherwise empty hub: link up (carrier), no traffic leaves the guest.
boot_guest() {
  exec timeout 600 qemu-system-x86_64 -accel tcg -M q35 -m 1024 -smp 2 \
    -nodefaults -nographic -no-reboot -serial stdio \
    -kernel "$KDIR/boot/vmlinuz-$KVER" -initrd "$OUT/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 sriov_numvfs=7 hwcheck_iterations=$ITER $IOMMU_ARG" \
    "${IOMMU_DEV[@]}" \
    -device pcie-root-port,id=rp1,slot=1,chassis=1 \
    -device igb,bus=rp1,netdev=n0 -netdev hubport,id=n0,hubid=0 > "$1" 2>&1
}
rc=0
for mode in $BOOTS; do
  IOMMU_DEV=(); IOMMU_ARG=""
  [ "$mode" = iommu ] && { IOMMU_DEV=(-device intel-iommu,intremap=off); IOMMU_ARG="intel_iommu=on"; }
  log=$OUT/guest-$mode.log
  t0=$(date +%s)
  # TCG occasionally wedges before the kernel reaches /init (seen once in CI: nothing after
  # "Booting from ROM" for 900 s). /init prints BOOTED first thing, so a boot that has not
  # printed it within $BOOT_WAIT s is killed and retried; a hang after BOOTED is a real failure.
  attempt=1
  while :; do
    boot_guest "$log" &
    qpid=$!
    waited=0
    while kill -0 "$qpid" 2>/dev/null && ! grep -q '^BOOTED' "$log" 2>/dev/null && [ $waited -lt "$BOOT_WAIT" ]; do
      sleep 1; waited=$((waited + 1))
    done
    if grep -q '^BOOTED' "$log" 2>/dev/null || ! kill -0 "$qpid" 2>/dev/null || [ $attempt -ge 3 ]; then
      wait "$qpid" || true
      break
    fi
    echo "== guest ($mode): no BOOTED line after ${BOOT_WAIT} s (TCG boot hang), retrying (attempt $((attempt + 1)) of 3)"
    kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null || true
    attempt=$((attempt + 1))
  done
  echo "== guest ($mode): $(( $(date +%s) - t0 )) s, log $log"
  grep -E '^(CHECK [^ ]+ FAIL|INFO)' "$log" | tr -d '\r' || true
  sh "$HERE/check-log.sh" "$log" || rc=1
done
echo "total $(( $(date +%s) - t_start )) s"
exit $rc
