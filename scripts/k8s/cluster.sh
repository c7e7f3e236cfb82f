#!/usr/bin/env bash
# A real single-node Kubernetes v1.20.2 cluster on loopback, for CI and for trying the project:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a private containerd and a kubelet
# joined as Node "127.0.0.1". Background processes with pid files, no systemd, no kube-proxy, no
# registry (images are built locally), nothing listening outside 127.0.0.0/8. Run as root.
#
# Usage: cluster.sh COMMAND
#   up               bring the cluster up (says so and exits 0 when it already is up and healthy)
#   down             delete all pods, stop everything, unmount, leave the host clean
#   purge            down, then also drop the image cache (/var/lib/sriov-k8s)
#   status           which components run; exit 0 only when all do
#   kubelet-stop     stop the kubelet (pods keep running in containerd)
#   kubelet-start    start it again with the same flags and wait for the Node
#   kubelet-restart  kubelet-stop + kubelet-start
#   wait-ready [S]   wait up to S seconds (default 120) for Node 127.0.0.1 to be Ready
#   env              print the export line for KUBECONFIG
#
# The Node is NotReady until a CNI network config exists in /etc/cni/net.d (containerd reports
# NetworkReady=false without one); this script writes none. Tests write their own conflist (with
# max_conf_num = 1 only the lexically first file counts), then run `cluster.sh wait-ready`.
# containerd 1.6 needs the CNI result to name an eth0 with an IP (a loopback-only conflist fails
# every sandbox: "failed to find network info"). Keep the conflist until after `down`: `down`
# deletes the pods first so that the kubelet tears their sandboxes down through CNI DEL.
# Pods: image localhost/busybox:1 or localhost/pause:3.2 (or your own, made with oci-image.sh),
# imagePullPolicy: Never. No service network or DNS: API clients in pods use hostNetwork and
# https://127.0.0.1:$SRIOV_K8S_API_PORT.
#
# Environment (read by `up`; later commands reuse what `up` saved):
#   SRIOV_K8S_API_PORT          kube-apiserver port (6443)
#   SRIOV_K8S_ETCD_CLIENT_PORT  etcd client port (23790); SRIOV_K8S_ETCD_PEER_PORT (23800)
#   SRIOV_K8S_KCM_PORT          controller-manager secure port (10357)
#   SRIOV_K8S_SCHEDULER_PORT    scheduler secure port (10359)
#   SRIOV_K8S_SYNC_FREQUENCY    kubelet syncFrequency (60s); also honoured by kubelet-start/-restart
#   SRIOV_K8S_KUBE_API_QPS      kubelet kubeAPIQPS (5, the kubelet's default; burst is twice it)
#   SRIOV_K8S_KUBELET_V         kubelet log verbosity (2); also honoured by kubelet-start/-restart
# Paths: admin kubeconfig /run/sriov-k8s/admin.kubeconfig, logs /run/sriov-k8s/logs/<component>.log,
# containerd socket /run/sriov-k8s/containerd/containerd.sock (ctr -a … -n k8s.io), kubelet root
# /var/lib/kubelet (device plugins: /var/lib/kubelet/device-plugins, PodResources:
# /var/lib/kubelet/pod-resources/kubelet.sock).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"
# shellcheck source=SCRIPTDIR/pki.sh
. "$HERE/pki.sh"

KUBE_VERSION=1.20.2
KUBE_BINS=(kubelet kube-apiserver kube-controller-manager kube-scheduler)
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)
PAUSE_IMAGE=localhost/pause:3.2
KUBELET_ROOT=/var/lib/kubelet
CNI_BIN_DIR=/opt/cni/bin
CNI_CONF_DIR=/etc/cni/net.d
CLUSTER_ENV=$K8S_RUN/cluster.env
SYSCTL_SAVED=$K8S_VARLIB/sysctl.saved
NETNS_BEFORE=$K8S_VARLIB/netns.before
# Kernel tunables the kubelet sets at start (vm.overcommit_memory=1, kernel.panic=10,
# kernel.panic_on_oops=1…): saved by `up`, restored by `down`.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
                 kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

# ---- Settings ----------------------------------------------------------------------------------
# load_settings: saved settings of the running cluster (if any), else the environment/defaults.
load_settings() {
  # shellcheck source=/dev/null
  [[ -r $CLUSTER_ENV ]] && . "$CLUSTER_ENV"
  API_PORT=${API_PORT:-${SRIOV_K8S_API_PORT:-6443}}
  ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-${SRIOV_K8S_ETCD_CLIENT_PORT:-23790}}
  ETCD_PEER_PORT=${ETCD_PEER_PORT:-${SRIOV_K8S_ETCD_PEER_PORT:-23800}}
  KCM_PORT=${KCM_PORT:-${SRIOV_K8S_KCM_PORT:-10357}}
  SCHED_PORT=${SCHED_PORT:-${SRIOV_K8S_SCHEDULER_PORT:-10359}}
  SYNC_FREQUENCY=${SRIOV_K8S_SYNC_FREQUENCY:-${SYNC_FREQUENCY:-60s}}
  KUBE_API_QPS=${KUBE_API_QPS:-${SRIOV_K8S_KUBE_API_QPS:-5}}
  KDIR=${KDIR:-${SRIOV_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sriov-kube/v$KUBE_VERSION}}
  API_SERVER=https://127.0.0.1:$API_PORT
}
save_settings() {
  local v
  for v in API_PORT ETCD_CLIENT_PORT ETCD_PEER_PORT KCM_PORT SCHED_PORT SYNC_FREQUENCY KUBE_API_QPS KDIR; do
    printf '%s=%q\n' "$v" "${!v}"
  done >"$CLUSTER_ENV"
}

# ---- Small helpers -----------------------------------------------------------------------------
require_root() { ((EUID == 0)) || die "run as root"; }
kc() { kubectl --kubeconfig="$K8S_ADMIN_KUBECONFIG" --request-timeout=10s "$@"; }
ctrk() { ctr -a "$K8S_CTRD_SOCK" -n k8s.io "$@"; }
port_free() { [[ -z $(ss -Hltn "sport = :$1") ]]; }
# require_ports_free PORT...: allow 5 s for a just-stopped daemon's threads to let go.
require_ports_free() {
  local p
  for p in "$@"; do
    wait_for 5 - port_free "$p" || die "port 127.0.0.1:$p is in use (see ss -ltnp)"
  done
}

# note DESC T0_NS: log "DESC in X s" (X since T0_NS) and remember it for the summary.
PHASES=()
note() {
  PHASES+=("$1 $(since "$2")s")
  log "$1 in $(since "$2") s"
}
# timed DESC CMD...: run CMD, then note how long it took.
timed() {
  local desc=$1 t; shift
  t=$(now_ns)
  "$@"
  note "$desc" "$t"
}

apiserver_ready() { [[ $(kc get --raw /readyz 2>/dev/null) == ok ]]; }
healthz() { curl -fsSk --max-time 2 "$1" >/dev/null; }
cni_conf_present() { compgen -G "$CNI_CONF_DIR/*.conf*" >/dev/null || compgen -G "$CNI_CONF_DIR/*.json" >/dev/null; }
# ready_condition: "STATUS|LAST_HEARTBEAT|REASON|MESSAGE" of the Node's Ready condition.
ready_condition() {
  local c
  c=$(kc get node "$K8S_NODE" -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}{.status}|{.lastHeartbeatTime}|{.reason}|{.message}{end}') || return 1
  [[ -n $c ]] && printf '%s' "$c"
}
# node_ready [EPOCH_S]: Ready, as posted by a kubelet at or after EPOCH_S (default: any time). A
# starting kubelet always posts its first status, so this sees through the stale Ready the Node
# keeps for a while after the old kubelet went away.
node_ready() {
  local c st hb
  c=$(ready_condition 2>/dev/null) || return 1
  IFS='|' read -r st hb _ <<<"$c"
  [[ $st == True ]] && (( $(date -d "$hb" +%s) >= ${1:-0} ))
}
# node_waiting_for_cni [EPOCH_S]: like node_ready, but NotReady only for the missing CNI config
# (NetworkReady=false) is fine too.
node_waiting_for_cni() {
  local c st hb
  c=$(ready_condition 2>/dev/null) || return 1
  IFS='|' read -r st hb _ <<<"$c"
  (( $(date -d "$hb" +%s) >= ${1:-0} )) || return 1
  [[ $st == True ]] || [[ $st == False && $c == *NetworkPluginNotReady* ]]
}
node_registered() { kc get node "$K8S_NODE" >/dev/null 2>&1; }

# ---- up: phases --------------------------------------------------------------------------------
# phase_binaries: if build-kube.sh is running (another shell started it), wait for it rather
# than start a second build; then ask it for the binary dir (instant when cached).
phase_binaries() {
  local n=0 b
  while pgrep -f 'k8s/build-kube\.sh' >/dev/null && ! [[ -x $KDIR/kube-scheduler && -x $KDIR/kubelet ]]; do
    (( n++ % 6 )) || log "build-kube.sh is running; waiting for $KDIR"
    sleep 10
  done
  KDIR=$(bash "$HERE/build-kube.sh")
  for b in "${KUBE_BINS[@]}"; do [[ -x $KDIR/$b ]] || die "missing $KDIR/$b"; done
  [[ $("$KDIR/kubelet" --version) == *" v$KUBE_VERSION" ]] || die "$KDIR/kubelet is not v$KUBE_VERSION"
  command -v kubectl >/dev/null || ensure_pkgs kubernetes-client
}

phase_packages() {
  ensure_pkgs containerd runc etcd-server openssl busybox-static containernetworking-plugins \
    gcc libc6-dev curl iproute2 procps util-linux mount
  grep -qw overlay /proc/filesystems || modprobe overlay || die "no overlayfs (containerd's snapshotter)"
}

# phase_host: our dirs, host dirs the kubelet/containerd/CNI need (recorded when new), the
# loopback CNI plugin, and the state `down` restores (sysctls, pre-existing netns).
phase_host() {
  mkdir -p "$K8S_RUN" "$K8S_PIDS" "$K8S_LOGS" "$K8S_CTRD_DIR/state" "$K8S_CTRD_ROOT"
  chmod 0700 "$K8S_RUN"
  save_settings
  mkdir_recorded tree "$CNI_BIN_DIR"
  mkdir_recorded tree "$CNI_CONF_DIR"
  if [[ ! -e $CNI_BIN_DIR/loopback ]]; then
    cp /usr/lib/cni/loopback "$CNI_BIN_DIR/loopback" && record_created file "$CNI_BIN_DIR/loopback"
  fi
  mkdir_recorded purge "$KUBELET_ROOT"
  mkdir -p "$KUBELET_ROOT/device-plugins"
  mkdir_recorded purge /var/log/pods
  mkdir_recorded purge /var/log/containers
  [[ -e /var/lib/cni ]] || record_created purge /var/lib/cni          # libcni's result cache
  [[ -e /run/containerd ]] || record_created tree /run/containerd     # shim sockets (/run/containerd/s)
  [[ -e /sys/fs/cgroup/pids/kubepods || -e /sys/fs/cgroup/kubepods ]] || record_created cgroup kubepods
  share_netns_dirs
  save_sysctls
  local f
  for f in /run/netns/cni-*; do
    if [[ -e $f ]]; then echo "${f##*/}"; fi
  done >"$NETNS_BEFORE"
}

# share_netns_dirs: the mounts holding /run/netns and /var/run/netns shared, as on a systemd
# host (where / is shared). The agent's container mounts both with HostToContainer propagation, so
# containerd's netns bind mounts made after it started appear inside; containerd refuses such a
# mount whose source is private ("… is mounted on "/" but it is not a shared or slave mount"). It
# looks the path up literally (/var/run is not resolved to /run). `down` makes them private again.
share_netns_dirs() {
  mkdir_recorded tree /run/netns
  local p mp
  for p in /run/netns /var/run/netns; do
    mp=$(awk -v p="$p/" '{m = ($5 == "/") ? "/" : $5 "/"} index(p, m) == 1 && length(m) > n {n = length(m); best = $5} END {print best}' /proc/self/mountinfo)
    [[ -n $mp ]] || continue
    if ! awk -v m="$mp" '$5 == m {for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) s = 1} END {exit !s}' /proc/self/mountinfo; then
      mount --make-shared "$mp"
      record_created shared "$mp"
    fi
  done
}

save_sysctls() {
  [[ -s $SYSCTL_SAVED ]] && return 0      # keep the values from before the first up
  sysctl -e "${KUBELET_SYSCTLS[@]}" 2>/dev/null | sed 's/ = /=/' >"$SYSCTL_SAVED" || true
}

write_containerd_config() {
  cat >"$K8S_CTRD_DIR/config.toml" <<EOF
# Private containerd for the sriov-k8s test cluster (scripts/k8s/cluster.sh).
version = 2
root = "$K8S_CTRD_ROOT"
state = "$K8S_CTRD_DIR/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$K8S_CTRD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$K8S_CTRD_ROOT/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # No CAP_SYS_RESOURCE here: never ask for an oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$K8S_CTRD_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
EOF
}

phase_containerd() {
  write_containerd_config
  start_bg containerd "$(command -v containerd)" --config "$K8S_CTRD_DIR/config.toml"
  wait_for 30 containerd ctr -a "$K8S_CTRD_SOCK" version || fail containerd "containerd did not start"
}

phase_images() {
  bash "$HERE/images.sh" -a "$K8S_CTRD_SOCK" >>"$K8S_LOGS/images.log" 2>&1 \
    || fail images "building/importing the images failed"
  local have img
  have=$(ctrk images ls -q)   # (not piped into grep -q: with pipefail, an early exit is a failure)
  for img in "$PAUSE_IMAGE" localhost/busybox:1; do
    grep -qxF -- "$img" <<<"$have" || fail images "$img not in containerd"
  done
}

# phase_pki: CA, certs, tokens, one kubeconfig per identity.
phase_pki() {
  local u
  pki_create "$K8S_PKI" "$K8S_NODE"
  write_kubeconfig "$K8S_ADMIN_KUBECONFIG" "$API_SERVER" "$K8S_PKI/ca.crt" admin "$(token_of "$K8S_PKI" admin)"
  for u in kubelet:system:node:$K8S_NODE kube-controller-manager:system:kube-controller-manager \
           kube-scheduler:system:kube-scheduler; do
    write_kubeconfig "$K8S_RUN/${u%%:*}.kubeconfig" "$API_SERVER" "$K8S_PKI/ca.crt" "${u#*:}" \
      "$(token_of "$K8S_PKI" "${u#*:}")"
  done
}

phase_etcd() {
  local c=http://127.0.0.1:$ETCD_CLIENT_PORT p=http://127.0.0.1:$ETCD_PEER_PORT
  require_ports_free "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT"
  rm -rf "$K8S_ETCD_DATA"
  mkdir -p "$K8S_ETCD_DATA"
  chmod 0700 "$K8S_ETCD_DATA"
  start_bg etcd "$(command -v etcd)" --name sriov-k8s --data-dir "$K8S_ETCD_DATA" \
    --listen-client-urls "$c" --advertise-client-urls "$c" \
    --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
    --initial-cluster "sriov-k8s=$p" --initial-cluster-state new --initial-cluster-token sriov-k8s
  wait_for 30 etcd healthz "$c/health" || fail etcd "etcd not healthy"
}

start_apiserver() {
  local pki=$K8S_PKI
  require_ports_free "$API_PORT"
  start_bg kube-apiserver "$KDIR/kube-apiserver" --cert-dir="$K8S_RUN/certs/apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-address=127.0.0.1 --bind-address=127.0.0.1 --secure-port="$API_PORT" --insecure-port=0 \
    --endpoint-reconciler-type=none --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --token-auth-file="$pki/tokens.csv" --client-ca-file="$pki/ca.crt" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=Hostname,InternalIP \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --allow-privileged=true --profiling=false
}
wait_apiserver() {
  wait_for 60 kube-apiserver apiserver_ready || fail kube-apiserver "kube-apiserver not ready"
}

start_controller_manager() {
  start_bg kube-controller-manager "$KDIR/kube-controller-manager" \
    --kubeconfig="$K8S_RUN/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$K8S_RUN/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$K8S_RUN/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --port=0 --cert-dir="$K8S_RUN/certs/kcm" \
    --service-account-private-key-file="$K8S_PKI/sa.key" --root-ca-file="$K8S_PKI/ca.crt" \
    --cluster-signing-cert-file="$K8S_PKI/ca.crt" --cluster-signing-key-file="$K8S_PKI/ca.key" \
    --use-service-account-credentials=true --controllers='*' --leader-elect=false \
    --service-cluster-ip-range=10.0.0.0/24 --flex-volume-plugin-dir="$K8S_RUN/kcm-flexvolume" \
    --profiling=false
}

start_scheduler() {
  start_bg kube-scheduler "$KDIR/kube-scheduler" \
    --kubeconfig="$K8S_RUN/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$K8S_RUN/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$K8S_RUN/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --port=0 --cert-dir="$K8S_RUN/certs/scheduler" \
    --leader-elect=false --profiling=false
}

start_controllers() {
  require_ports_free "$KCM_PORT" "$SCHED_PORT"
  start_controller_manager
  start_scheduler
}
wait_controllers() {
  wait_for 60 kube-controller-manager healthz "https://127.0.0.1:$KCM_PORT/healthz" \
    || fail kube-controller-manager "kube-controller-manager not healthy"
  wait_for 60 kube-scheduler healthz "https://127.0.0.1:$SCHED_PORT/healthz" \
    || fail kube-scheduler "kube-scheduler not healthy"
}

# ---- kubelet -----------------------------------------------------------------------------------
write_kubelet_config() {
  cat >"$K8S_RUN/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $K8S_PKI/kubelet.crt
tlsPrivateKeyFile: $K8S_PKI/kubelet.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $K8S_PKI/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failSwapOn: false
syncFrequency: $SYNC_FREQUENCY
# The kubelet's API client rate (default 5/s, burst 10): with N pods starting at once their status
# updates queue behind it, ~400 ms a pod here, whatever the network plugin.
kubeAPIQPS: $KUBE_API_QPS
kubeAPIBurst: $((KUBE_API_QPS * 2))
# Low thresholds: CI disks must not trigger eviction; never garbage-collect the local images.
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Leave the host's iptables alone (no kube-proxy here anyway).
makeIPTablesUtilChains: false
serializeImagePulls: false
# Post node status changes every 2 s (default 10 s): Ready comes sooner after a start/restart or
# after a CNI config appears. Unchanged status is still re-posted only once a minute.
nodeStatusUpdateFrequency: 2s
nodeStatusReportFrequency: 1m
EOF
}

KUBELET_T0=0   # epoch seconds of the last start_kubelet
start_kubelet() {
  require_ports_free 10250 10248
  KUBELET_T0=$(date +%s)
  write_kubelet_config
  mkdir -p "$KUBELET_ROOT/device-plugins"
  # --containerd: cAdvisor's own containerd client (stats) must use our socket too, not
  # /run/containerd/containerd.sock (a system containerd, if any).
  start_bg kubelet "$KDIR/kubelet" --kubeconfig="$K8S_RUN/kubelet.kubeconfig" \
    --config="$K8S_RUN/kubelet-config.yaml" \
    --container-runtime=remote --container-runtime-endpoint="unix://$K8S_CTRD_SOCK" \
    --containerd="$K8S_CTRD_SOCK" \
    --hostname-override="$K8S_NODE" --root-dir="$KUBELET_ROOT" \
    --volume-plugin-dir="$KUBELET_ROOT/volume-plugins" \
    --pod-infra-container-image="$PAUSE_IMAGE" --v="${SRIOV_K8S_KUBELET_V:-2}"
}

# wait_kubelet: the (new) kubelet process is healthy and serves the device-plugin Registration
# socket, its Node exists, and is Ready — or, with no CNI config yet, NotReady for that reason only.
# (After a restart the Node may still show the old kubelet's Ready for a few seconds; the healthz
# and socket checks are what prove the new process is up. Each kubelet start spends ~5 s in
# cAdvisor's docker probe: it retries the absent /var/run/docker.sock 5 times, google/cadvisor#3175.)
wait_kubelet() {
  wait_for 60 kubelet healthz http://127.0.0.1:10248/healthz || fail kubelet "kubelet not healthy"
  wait_for 30 kubelet test -S "$KUBELET_ROOT/device-plugins/kubelet.sock" \
    || fail kubelet "no $KUBELET_ROOT/device-plugins/kubelet.sock"
  wait_for 60 kubelet node_registered || fail kubelet "Node $K8S_NODE did not register"
  if cni_conf_present; then
    wait_for 120 kubelet node_ready "$KUBELET_T0" || fail kubelet "Node $K8S_NODE not Ready: $(ready_condition || true)"
  else
    wait_for 120 kubelet node_waiting_for_cni "$KUBELET_T0" || fail kubelet "Node $K8S_NODE: $(ready_condition || true)"
    node_ready 0 || log "Node $K8S_NODE registered; NotReady until a CNI config is in $CNI_CONF_DIR (then: cluster.sh wait-ready)"
  fi
}

# ---- down: steps -------------------------------------------------------------------------------
# down_pods: with the kubelet still running, delete workloads and force-delete pods, then let the
# kubelet stop the sandboxes (so CNI DEL runs as it would in production).
down_pods() {
  local _
  is_running kubelet && is_running kube-apiserver && apiserver_ready || return 0
  kc delete statefulsets,deployments,daemonsets,replicasets,replicationcontrollers,jobs,cronjobs \
    --all -A --wait=false >/dev/null 2>&1 || true
  for _ in $(seq 15); do
    [[ -z $(kc get pods -A --no-headers 2>/dev/null) ]] && break
    kc delete pods --all -A --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
    sleep 1
  done
  is_running containerd || return 0
  cni_conf_present || warn "no CNI config in $CNI_CONF_DIR: pods' CNI DEL cannot run (remove a conflist only after down)"
  wait_for 30 kubelet pods_torn_down || warn "kubelet did not stop every pod sandbox in 30 s; killing them through containerd"
}
# pods_torn_down: no task left in k8s.io, and no pod netns either (containerd deletes a sandbox's
# netns only after CNI DEL succeeded; the pause task is gone before that). Without a CNI config
# DEL cannot succeed: then only the tasks count, and down_netns deletes the netns.
pods_torn_down() {
  [[ -z $(ctrk tasks ls -q 2>/dev/null) ]] || return 1
  ! cni_conf_present || [[ -z $(new_netns) ]]
}
# new_netns: the cni-* network namespaces that were not there before `up`.
new_netns() {
  local f
  for f in /run/netns/cni-*; do
    [[ -e $f ]] || continue
    grep -qxF "${f##*/}" "$NETNS_BEFORE" 2>/dev/null || echo "${f##*/}"
  done
}

# down_containers: kill and remove every task and container in containerd's k8s.io namespace.
down_containers() {
  local id
  is_running containerd || return 0
  for id in $(ctrk tasks ls -q 2>/dev/null); do
    ctrk tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  for id in $(ctrk tasks ls -q 2>/dev/null); do ctrk tasks rm -f "$id" >/dev/null 2>&1 || true; done
  for id in $(ctrk containers ls -q 2>/dev/null); do ctrk containers rm "$id" >/dev/null 2>&1 || true; done
}

# owns_kubepods: the kubepods cgroups did not exist before `up` (so they are this kubelet's).
owns_kubepods() { grep -qxF "cgroup kubepods" "$K8S_CREATED" 2>/dev/null; }

# kill_pod_processes: anything still in the kubelet's cgroups (after shims died, say).
kill_pod_processes() {
  local f pid
  owns_kubepods || return 0
  while read -r f; do
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$f"
  done < <(find /sys/fs/cgroup -path '*/kubepods*' -name cgroup.procs 2>/dev/null)
}

# remove_cgroups: the kubepods hierarchy the kubelet leaves behind in every controller.
remove_cgroups() {
  local d
  owns_kubepods || return 0
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}

down_mounts() {
  local m
  while read -r m; do
    [[ -n $m ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || warn "cannot unmount $m"
  done < <(mounted_under "$KUBELET_ROOT" "$K8S_RUN" "$K8S_VARLIB")
}

# down_netns: delete the pod netns left behind (those new_netns lists).
down_netns() {
  local n
  for n in $(new_netns); do
    warn "deleting leftover netns $n"
    ip netns delete "$n" 2>/dev/null || { umount -l "/run/netns/$n" 2>/dev/null; rm -f "/run/netns/$n"; }
  done
}

stop_control_plane() {
  stop_bg kube-controller-manager
  stop_bg kube-scheduler
  stop_bg kube-apiserver 15
  stop_bg etcd 15
}

# stray_patterns [all|runtime]: anchored regexes for our processes (exact binary, config and
# socket paths as `up` starts them); "runtime" = kubelet, containerd and its shims only.
stray_patterns() {
  printf '%s\n' "^[^ ]*/kubelet --kubeconfig=$K8S_RUN/" \
    "^[^ ]*/containerd --config $K8S_CTRD_DIR/config.toml" \
    "containerd-shim-runc-v2 .*-address $K8S_CTRD_SOCK"
  [[ ${1:-all} == runtime ]] && return 0
  printf '%s\n' "^[^ ]*/kube-apiserver --cert-dir=$K8S_RUN/" \
    "^[^ ]*/kube-controller-manager --kubeconfig=$K8S_RUN/" \
    "^[^ ]*/kube-scheduler --kubeconfig=$K8S_RUN/" \
    "^[^ ]*/etcd --name sriov-k8s --data-dir $K8S_ETCD_DATA"
}
kill_strays() {
  local p
  while read -r p; do kill_pattern "$p"; done < <(stray_patterns "${1:-all}")
}

restore_sysctls() {
  [[ -s $SYSCTL_SAVED ]] || return 0
  sysctl -q -p "$SYSCTL_SAVED" >/dev/null 2>&1 || warn "could not restore all of: $(tr '\n' ' ' <"$SYSCTL_SAVED")"
  rm -f "$SYSCTL_SAVED"
}

# verify_clean: no process, mount or netns of ours left. Non-zero (and says what) otherwise.
verify_clean() {
  local p left='' m
  while read -r p; do
    pgrep -f -- "$p" >/dev/null && left+=" [process: $p]"
  done < <(stray_patterns)
  m=$(mounted_under "$KUBELET_ROOT" "$K8S_RUN" "$K8S_VARLIB" | tr '\n' ' ')
  [[ -z $m ]] || left+=" [mounts: $m]"
  m=$(new_netns | tr '\n' ' ')
  [[ -z $m ]] || left+=" [netns: $m]"
  [[ -z $left ]] || { warn "host not clean:$left"; return 1; }
}

# ---- Commands ----------------------------------------------------------------------------------
cluster_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do is_running "$c" || return 1; done
  apiserver_ready && kc get node "$K8S_NODE" >/dev/null 2>&1
}
any_running() {
  local c
  for c in "${COMPONENTS[@]}"; do is_running "$c" && return 0; done
  return 1
}

print_hints() {
  log "logs: $K8S_LOGS/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler,containerd,kubelet}.log"
  echo "export KUBECONFIG=$K8S_ADMIN_KUBECONFIG"
}

# up_phases: the steps of `up`, overlapped where they do not depend on each other: containerd
# and the images while kube-apiserver boots; the kubelet alongside controller-manager/scheduler.
# Each "X in N s" counts from X's own start.
up_phases() {
  local t_api t_cp t_kubelet
  timed "binaries found" phase_binaries
  timed "packages checked" phase_packages
  timed "host prepared" phase_host
  timed "pki written" phase_pki
  timed "etcd healthy" phase_etcd
  t_api=$(now_ns)
  start_apiserver
  timed "containerd up" phase_containerd
  timed "images imported" phase_images
  wait_apiserver
  note "apiserver ready" "$t_api"
  t_cp=$(now_ns)
  start_controllers
  t_kubelet=$(now_ns)
  start_kubelet
  wait_controllers
  note "controller-manager and scheduler healthy" "$t_cp"
  wait_kubelet
  note "kubelet joined" "$t_kubelet"
}

cmd_up() {
  local t0
  require_root
  load_settings
  if cluster_healthy; then log "already up and healthy"; print_hints; return 0; fi
  if any_running || [[ -e $K8S_RUN ]]; then log "partially up or not cleaned: running down first"; cmd_down; fi
  # A fresh up takes its settings from the environment again, not from the old cluster.
  KDIR='' API_PORT='' ETCD_CLIENT_PORT='' ETCD_PEER_PORT='' KCM_PORT='' SCHED_PORT='' SYNC_FREQUENCY='' KUBE_API_QPS=''
  load_settings
  trap 'rc=$?; ((rc == 0)) || log "up FAILED (exit $rc); logs in $K8S_LOGS; clean up with: $0 down"' EXIT
  t0=$(now_ns)
  PHASES=()
  up_phases
  log "cluster up in $(since "$t0") s (kubelet v$KUBE_VERSION, node $K8S_NODE, API $API_SERVER)"
  log "timings: $(printf '%s; ' "${PHASES[@]}")"
  print_hints
}

cmd_down() {
  local t0 rc=0
  require_root
  load_settings
  t0=$(now_ns)
  timed "pods deleted" down_pods
  timed "kubelet stopped" stop_bg kubelet 15
  timed "containers removed" down_containers
  timed "containerd stopped" stop_bg containerd 15
  kill_strays runtime    # shims, and a kubelet/containerd whose pid file got lost
  kill_pod_processes
  timed "unmounted" down_mounts
  down_netns
  timed "control plane stopped" stop_control_plane
  kill_strays
  restore_sysctls
  remove_cgroups
  remove_recorded
  down_mounts
  rm -rf --one-file-system "$K8S_RUN" "$K8S_ETCD_DATA"
  wait_reaped 3
  verify_clean || rc=1
  rm -f "$NETNS_BEFORE"
  log "down in $(since "$t0") s$( ((rc)) || echo '; host clean')"
  return "$rc"
}

cmd_purge() {
  cmd_down
  down_mounts
  [[ -z $(mounted_under "$K8S_VARLIB") ]] || die "mounts left under $K8S_VARLIB"
  rm -rf --one-file-system "$K8S_VARLIB"
  log "removed $K8S_VARLIB (image cache)"
}

cmd_status() {
  local c pid all=0
  load_settings
  for c in "${COMPONENTS[@]}"; do
    if pid=$(pid_of "$c"); then printf '%-24s running (pid %s)\n' "$c" "$pid"
    else printf '%-24s stopped\n' "$c"; all=1; fi
  done
  if [[ -r $K8S_ADMIN_KUBECONFIG ]] && apiserver_ready; then
    printf '%-24s %s\n' "apiserver /readyz" ok "node $K8S_NODE Ready" "$(ready_condition 2>/dev/null || echo '?')"
  fi
  return "$all"
}

cmd_kubelet_stop() {
  require_root
  load_settings
  stop_bg kubelet 15
  log "kubelet stopped"
}

cmd_kubelet_start() {
  local t0
  require_root
  load_settings
  is_running kubelet && die "kubelet already running (pid $(pid_of kubelet))"
  if ! is_running kube-apiserver || ! is_running containerd; then die "cluster is not up"; fi
  t0=$(now_ns)
  start_kubelet
  wait_kubelet
  log "kubelet started and Node back in $(since "$t0") s"
}

cmd_wait_ready() {
  local timeout=${1:-120} t0
  load_settings
  t0=$(now_ns)
  wait_for "$timeout" kubelet node_ready 0 || fail kubelet "Node $K8S_NODE not Ready: $(ready_condition || true)"
  log "Node $K8S_NODE Ready (waited $(since "$t0") s)"
}

main() {
  # Settings come from the saved cluster.env or SRIOV_K8S_* only, never from stray variables.
  unset API_PORT ETCD_CLIENT_PORT ETCD_PEER_PORT KCM_PORT SCHED_PORT SYNC_FREQUENCY KUBE_API_QPS KDIR
  case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    purge) cmd_purge ;;
    status) cmd_status ;;
    kubelet-stop) cmd_kubelet_stop ;;
    kubelet-start) cmd_kubelet_start ;;
    kubelet-restart) cmd_kubelet_stop; cmd_kubelet_start ;;
    wait-ready) cmd_wait_ready "${2:-120}" ;;
    env) echo "export KUBECONFIG=$K8S_ADMIN_KUBECONFIG" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

# Sourcing this file (for its functions) does not run anything.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
