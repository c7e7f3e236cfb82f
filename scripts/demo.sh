#!/usr/bin/env bash
# The local demo on the emulated NIC (run as root on a fresh Debian 12 machine): installs what it
# needs, builds the release binaries, brings up an emulated SR-IOV NIC with 8 VFs, starts the agent
# (standalone), gives two pods (default/db-0, default/db-1, each a netns) their fixed IPs, VLAN and
# rate from the pod table through the real CNI path, shows they ping each other while a third pod
# on another VLAN cannot, shows `status`, then tears everything down, checking nothing is left.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/sbin:/sbin
PF=${PF:-sriovdemo}
W=${DEMO_DIR:-/run/sriov-demo}
ROOT=$W/sys
bash scripts/install-deps.sh
cargo build --release --bins -q
BIN=$PWD/target/release
step() { printf '\n=== %s\n' "$*"; }
PODS=(db-0 db-1 web-0)
AGENT=
cleanup() {
  for p in "${PODS[@]}"; do cni DEL "$p" >/dev/null 2>&1 || true; ip netns del "demo-$p" 2>/dev/null || true; done
  [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null || true
  "$BIN/sriov-device-plugin" emulate down --pf "$PF" --sysfs-root "$ROOT" || true
  rm -rf "$W"
}
netconf() {
  cat <<JSON
{"cniVersion": "1.0.0", "name": "db-net", "type": "sriov", "resourceName": "example.com/sriov_emulated",
 "spoofchk": "on", "agentSocket": "$W/agent.sock"}
JSON
}
# One CNI call as a container runtime makes it: CNI_* environment, netconf on stdin.
cni() {
  netconf | CNI_COMMAND=$1 CNI_CONTAINERID="demo-$2" CNI_NETNS="/run/netns/demo-$2" CNI_IFNAME=net1 \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$2" CNI_PATH=/usr/lib/cni \
    "$BIN/sriov"
}
trap cleanup EXIT
cleanup >/dev/null 2>&1 || true
mkdir -p "$W"

step "emulate up: PF $PF with 8 VFs (bridge + veth pairs + synthetic sysfs under $ROOT)"
"$BIN/sriov-device-plugin" emulate up --pf "$PF" --vfs 8 --sysfs-root "$ROOT" >/dev/null
"$BIN/sriov-device-plugin" inventory --sysfs-root "$ROOT" --config deploy/demo/pools.json

step "start the agent (standalone: it picks free VFs of the pool itself)"
"$BIN/sriov-device-plugin" run --standalone --socket "$W/agent.sock" --state-dir "$W/state" \
  --sysfs-root "$ROOT" --config deploy/demo/pools.json --pod-table deploy/demo/podtable.json \
  2>"$W/agent.log" &
AGENT=$!
for _ in $(seq 100); do [ -S "$W/agent.sock" ] && break; sleep 0.1; done

step "CNI ADD for default/db-0, default/db-1 (VLAN 100) and default/web-0 (VLAN 200)"
for p in "${PODS[@]}"; do
  ip netns add "demo-$p"
  printf '%-6s ' "$p"; cni ADD "$p" | jq -c '{ip: .ips[0].address, mac: .interfaces[0].mac, ifname: .interfaces[0].name}'
done
"$BIN/sriov-device-plugin" vfs --pf "$PF" --sysfs-root "$ROOT" |
  jq -c '.[] | select(.vlan.vlan != 0) | {vf: .index, vlan: .vlan.vlan, max_tx_rate, mac}'

step "db-0 -> db-1 (same VLAN) must answer; web-0 -> db-0 (other VLAN) must not"
ip netns exec demo-db-0 ping -c2 -W1 10.77.0.11 >/dev/null && echo "db-0 -> db-1: ok"
if ip netns exec demo-web-0 ping -c2 -W1 10.77.0.10 >/dev/null; then
  echo "web-0 -> db-0 answered: VLAN isolation broken"; exit 1
else echo "web-0 -> db-0: no answer (isolated)"; fi

step "status"
"$BIN/sriov-device-plugin" status --socket "$W/agent.sock"

step "CNI DEL and teardown"
for p in "${PODS[@]}"; do cni DEL "$p"; ip netns del "demo-$p"; done
"$BIN/sriov-device-plugin" status --socket "$W/agent.sock" --json | jq -c '{attachments: (.attachments | length)}'
trap - EXIT
cleanup
left=$(ip -br link | grep -c "^$PF" || true)
if [ "$left" = 0 ] && [ ! -e "$ROOT" ] && ! ip netns list | grep -q demo-; then
  echo "nothing left behind"
else
  echo "LEFTOVERS: links=$left"; exit 1
fi
