#!/usr/bin/env bash
# The local demo on the emulated NIC (run as root on a fresh Debian 12 machine):
# installs what it needs, builds the release binaries, brings up an emulated SR-IOV NIC with
# 8 VFs, shows what discovery sees, and tears everything down again, checking nothing is left.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/sbin:/sbin
PF=${PF:-sriovdemo}
ROOT=${SYSFS_ROOT:-/run/sriov-emu/sys}
bash scripts/install-deps.sh
cargo build --release --bins -q
BIN=target/release
step() { printf '\n=== %s\n' "$*"; }
cleanup() { "$BIN/sriov-device-plugin" emulate down --pf "$PF" --sysfs-root "$ROOT" || true; }
trap cleanup EXIT

step "emulate up: PF $PF with 8 VFs (bridge + veth pairs + synthetic sysfs under $ROOT)"
"$BIN/sriov-device-plugin" emulate up --pf "$PF" --vfs 8 --sysfs-root "$ROOT" >/dev/null
ip -br link show master "$PF"

step "inventory (what the agent and the CNI discover)"
"$BIN/sriov-device-plugin" inventory --sysfs-root "$ROOT" --config deploy/demo-pools.json

step "CNI VERSION"
echo '{"cniVersion":"1.1.0"}' | CNI_COMMAND=VERSION "$BIN/sriov"

step "emulate down"
trap - EXIT
cleanup
left=$(ip -br link | grep -c "^$PF" || true)
tables=$(nft list tables | grep -c "$PF" || true)
[ "$left" = 0 ] && [ "$tables" = 0 ] && [ ! -e "$ROOT/bus/pci/devices" ] \
  && echo "nothing left behind" || { echo "LEFTOVERS: links=$left tables=$tables"; exit 1; }
