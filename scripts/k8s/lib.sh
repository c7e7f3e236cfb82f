# shellcheck shell=bash
# shellcheck disable=SC2034 # the paths below are used by the scripts sourcing this file
# Shared helpers for scripts/k8s/*.sh: fixed paths, logging, timing, waiting, apt, host paths we
# create, and background processes tracked by pid files. Sourced, never executed.

# ---- Paths (fixed: the kubelet and containerd bake some of them into host state) -------------
K8S_RUN=/run/sriov-k8s                 # volatile state: configs, pki, pids, logs, sockets
K8S_VARLIB=/var/lib/sriov-k8s          # persistent state: containerd root (image cache), etcd
K8S_PIDS=$K8S_RUN/pids
K8S_LOGS=$K8S_RUN/logs
K8S_PKI=$K8S_RUN/pki
K8S_ADMIN_KUBECONFIG=$K8S_RUN/admin.kubeconfig
K8S_CTRD_DIR=$K8S_RUN/containerd
K8S_CTRD_SOCK=$K8S_CTRD_DIR/containerd.sock
K8S_CTRD_ROOT=$K8S_VARLIB/containerd
K8S_ETCD_DATA=$K8S_VARLIB/etcd
# Host paths `up` created outside its own dirs, one "KIND PATH" a line (see remove_recorded), so
# `down` removes exactly those. Under /var/lib so that it survives a reboot between up and down.
K8S_CREATED=$K8S_VARLIB/created.list
K8S_NODE=127.0.0.1                     # node name = kubelet --hostname-override

# ---- Logging ---------------------------------------------------------------------------------
log() { printf '[k8s %s] %s\n' "$(date +%T)" "$*" >&2; }
warn() { log "WARNING: $*"; }
die() { log "ERROR: $*"; exit 1; }

# tail_log NAME|FILE: the last 40 lines of a component's log (or of FILE) to stderr.
tail_log() {
  local f=$1
  [[ $f == /* ]] || f=$K8S_LOGS/$1.log
  [[ -s $f ]] || { log "(no log at $f)"; return 0; }
  log "---- last 40 lines of $f ----"
  tail -n 40 "$f" >&2 || true
  log "---- end of $f ----"
}

# fail COMPONENT MESSAGE: report, show the component's log, exit non-zero.
fail() { log "ERROR: $2"; tail_log "$1"; exit 1; }

# ---- Timing ----------------------------------------------------------------------------------
now_ns() { date +%s%N; }
# since T0_NS: seconds elapsed since T0_NS with one decimal, e.g. "6.1".
since() {
  local d=$(( $(now_ns) - $1 ))
  printf '%d.%d' $(( d / 1000000000 )) $(( d / 100000000 % 10 ))
}

# ---- Waiting ---------------------------------------------------------------------------------
# wait_for TIMEOUT_S COMPONENT CMD...: run CMD every 0.2 s until it succeeds. Gives up early when
# COMPONENT (a pid-file name, or "-" for none) has died. Returns 1 on timeout or death.
wait_for() {
  local timeout=$1 comp=$2; shift 2
  local deadline=$(( $(now_ns) + timeout * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    if [[ $comp != - ]] && ! is_running "$comp"; then log "$comp exited"; return 1; fi
    (( $(now_ns) < deadline )) || { log "timed out after ${timeout}s waiting for: $*"; return 1; }
    sleep 0.2
  done
}

# ---- Packages --------------------------------------------------------------------------------
pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

# ensure_pkgs PKG...: apt-get install only the missing ones (no apt run at all when none is).
ensure_pkgs() {
  local p missing=()
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---- Host paths we create --------------------------------------------------------------------
# record_created KIND PATH, KIND being what `down` does with PATH:
#   file  — rm -f
#   tree  — delete the empty directories in it, depth first (keeps anything someone else put there)
#   purge — rm -rf --one-file-system (only once nothing is mounted below it)
#   cgroup — a marker (PATH "kubepods": the kubelet's cgroups are ours; cluster.sh removes them)
#   shared — mount --make-private (a mount point `up` made shared, as systemd hosts have it)
record_created() {
  mkdir -p "$K8S_VARLIB"
  grep -qxF -- "$1 $2" "$K8S_CREATED" 2>/dev/null || printf '%s %s\n' "$1" "$2" >>"$K8S_CREATED"
}

# mkdir_recorded KIND DIR: mkdir -p DIR, recording DIR as KIND when it is new and each new parent
# as "tree".
mkdir_recorded() {
  local kind=$1 d=$2 todo=()
  while [[ ! -e $d ]]; do todo=("$d" "${todo[@]}"); d=$(dirname "$d"); done
  for d in "${todo[@]}"; do
    mkdir -m 0755 "$d"
    if [[ $d == "$2" ]]; then record_created "$kind" "$d"; else record_created tree "$d"; fi
  done
}

# mounted_under PREFIX...: mount points below (or at) any PREFIX, deepest first.
mounted_under() {
  local p re=''
  for p in "$@"; do re+="${re:+|}^${p//./\\.}(/|$)"; done
  awk '{print $5}' /proc/self/mountinfo | grep -E -- "$re" | sort -ru || true
}

# remove_recorded: undo record_created, newest first; then forget the list.
remove_recorded() {
  local kind path
  [[ -s $K8S_CREATED ]] || { rm -f "$K8S_CREATED"; return 0; }
  while read -r kind path; do
    [[ -e $path || -L $path ]] || continue
    case $kind in
      file) rm -f -- "$path" ;;
      tree) find "$path" -depth -type d -empty -delete 2>/dev/null || true
            [[ ! -e $path ]] || log "kept $path (not empty)" ;;
      cgroup) ;;
      shared) mount --make-private -- "$path" 2>/dev/null || warn "could not make $path private" ;;
      purge) if [[ -n $(mounted_under "$path") ]]; then warn "kept $path: still has mounts"
             else rm -rf --one-file-system -- "$path"; fi ;;
    esac
  done < <(tac "$K8S_CREATED")
  rm -f "$K8S_CREATED"
}

# ---- Background processes with pid files -----------------------------------------------------
pidfile() { printf '%s/%s.pid' "$K8S_PIDS" "$1"; }

# pid_of NAME: the pid recorded for NAME, if that process is alive (and not a zombie).
pid_of() {
  local f pid state
  f=$(pidfile "$1")
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z ]] || return 1
  printf '%s' "$pid"
}
is_running() { pid_of "$1" >/dev/null; }

# start_bg NAME CMD...: run CMD in its own session, stdin /dev/null, output appended to
# $K8S_LOGS/NAME.log. The wrapper shell writes its own pid and then execs CMD, so the pid file
# names the daemon itself whether or not setsid had to fork.
start_bg() {
  local name=$1; shift
  local pf i
  pf=$(pidfile "$name")
  mkdir -p "$K8S_PIDS" "$K8S_LOGS"
  rm -f "$pf"
  printf '\n==== %s start: %s\n' "$(date '+%F %T')" "$*" >>"$K8S_LOGS/$name.log"
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pf" "$@" </dev/null >>"$K8S_LOGS/$name.log" 2>&1 &
  for i in $(seq 100); do [[ -s $pf ]] && return 0; sleep 0.02; done
  die "$name: no pid file after start"
}

# stop_bg NAME [TIMEOUT_S]: SIGTERM the recorded pid, SIGKILL after TIMEOUT_S (default 10).
# Appends the pid to STOPPED_PIDS (see wait_reaped).
stop_bg() {
  local name=$1 timeout=${2:-10} pid i
  if pid=$(pid_of "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do is_running "$name" || break; sleep 0.1; done
    if is_running "$name"; then
      warn "$name (pid $pid) ignored SIGTERM for ${timeout}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do is_running "$name" || break; sleep 0.1; done
    fi
    STOPPED_PIDS+=("$pid")
  fi
  rm -f "$(pidfile "$name")"
}

STOPPED_PIDS=()
# wait_reaped [TIMEOUT_S]: give init up to TIMEOUT_S (default 3) to reap what stop_bg stopped, so
# no <defunct> entry outlives `down` where init reaps lazily.
wait_reaped() {
  local i pid left
  for ((i = 0; i < ${1:-3} * 10; i++)); do
    left=0
    for pid in "${STOPPED_PIDS[@]}"; do [[ -e /proc/$pid ]] && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
}

# kill_pattern REGEX: fallback for processes whose pid file was lost: pkill -f on an anchored
# regex naming our exact binary and config paths. Says what it had to kill.
kill_pattern() {
  local pids
  pids=$(pgrep -f -- "$1" || true)
  [[ -n $pids ]] || return 0
  warn "stray processes matching '$1': $(echo "$pids" | tr '\n' ' ')- killing"
  pkill -TERM -f -- "$1" || true
  sleep 1
  pkill -KILL -f -- "$1" || true
}
