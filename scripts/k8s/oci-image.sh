#!/usr/bin/env bash
# Builds a single-layer OCI image from a root filesystem directory, by hand (tar + sha256 + JSON,
# no registry, no image builder), and imports it into containerd's k8s.io namespace, where the
# kubelet (CRI) sees it. Use it in pods with `imagePullPolicy: Never`.
#
# Usage: oci-image.sh [options] NAME:TAG ROOTFS_DIR [ARG...]
#   ARG...    the image's Entrypoint (or its Cmd with -C); none: neither is set
#   -C        ARG... is the Cmd, not the Entrypoint (pods' `args:` then replace it)
#   -e K=V    add an environment variable (PATH is always set); repeatable
#   -w DIR    working directory (default /)
#   -o FILE   keep the OCI image tarball at FILE (default: a temporary file, deleted)
#   -n        do not import (only with -o)
#   -a SOCK   containerd socket (default /run/sriov-k8s/containerd/containerd.sock)
# NAME without a registry domain is normalised the way the CRI does (busybox:1 →
# docker.io/library/busybox:1); prefer localhost/NAME:TAG. Layer content is reproducible: owner
# root, mtime 0, sorted, so the same rootfs gives the same digests.
# Example: oci-image.sh -C localhost/busybox:1 /tmp/rootfs sh
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# json_str S / json_arr S...: JSON string / array of strings.
json_str() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\t'/\\t}; s=${s//$'\r'/\\r}
  printf '"%s"' "$s"
}
json_arr() {
  local out='' sep='' a
  for a in "$@"; do out+="$sep$(json_str "$a")"; sep=,; done
  printf '[%s]' "$out"
}

# normalise_ref REF: fully qualified image reference (what the CRI looks up).
normalise_ref() {
  local ref=$1 first=${1%%/*}
  if [[ $ref != */* ]]; then ref=docker.io/library/$ref
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then ref=docker.io/$ref
  fi
  [[ ${ref##*/} == *:* || $ref == *@* ]] || ref=$ref:latest
  printf '%s' "$ref"
}

# add_blob DIR FILE MEDIATYPE: move FILE into DIR/blobs/sha256/<digest>; print a descriptor.
add_blob() {
  local dir=$1 file=$2 mt=$3 sum size
  sum=$(sha256sum "$file" | cut -d' ' -f1)
  size=$(stat -c %s "$file")
  mv "$file" "$dir/blobs/sha256/$sum"
  printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$mt" "$sum" "$size"
}
digest_of() { local d=${1#*\"digest\":\"}; printf '%s' "${d%%\"*}"; }

# build_layout DIR ROOTFS REF: write an OCI image layout for ROOTFS into DIR.
build_layout() {
  local dir=$1 rootfs=$2 ref=$3 arch layer config manifest envs
  arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
  case $arch in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
  mkdir -p "$dir/blobs/sha256"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$dir/layer" .
  layer=$(add_blob "$dir" "$dir/layer" application/vnd.oci.image.layer.v1.tar)
  envs=$(json_arr "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "${ENVS[@]}")
  {
    printf '{"architecture":"%s","os":"linux","config":{"Env":%s,"WorkingDir":%s' \
      "$arch" "$envs" "$(json_str "$WORKDIR")"
    if ((${#ARGS[@]})); then printf ',"%s":%s' "$ARGS_KEY" "$(json_arr "${ARGS[@]}")"; fi
    printf '},"rootfs":{"type":"layers","diff_ids":["%s"]},' "$(digest_of "$layer")"
    printf '"history":[{"created_by":"scripts/k8s/oci-image.sh"}]}'
  } >"$dir/config"
  config=$(add_blob "$dir" "$dir/config" application/vnd.oci.image.config.v1+json)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
    "$config" "$layer" >"$dir/manifest"
  manifest=$(add_blob "$dir" "$dir/manifest" application/vnd.oci.image.manifest.v1+json)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' \
    "${manifest%\}},\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"},\"annotations\":{\"io.containerd.image.name\":$(json_str "$ref"),\"org.opencontainers.image.ref.name\":$(json_str "${ref##*:}")}}" \
    >"$dir/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  echo "$manifest"
}

# import_image TARBALL REF: ctr import into k8s.io and check that containerd lists REF.
import_image() {
  ctr -a "$SOCK" -n k8s.io images import "$1" >&2
  grep -qxF -- "$2" <<<"$(ctr -a "$SOCK" -n k8s.io images ls -q)" \
    || { echo "oci-image: $2 not listed by ctr images ls after import" >&2; exit 1; }
}

main() {
  local opt out='' import=1 ref rootfs manifest
  SOCK=/run/sriov-k8s/containerd/containerd.sock WORKDIR=/ ARGS_KEY=Entrypoint ENVS=()
  while getopts "Ce:w:o:na:h" opt; do
    case $opt in
      C) ARGS_KEY=Cmd ;;
      e) ENVS+=("$OPTARG") ;;
      w) WORKDIR=$OPTARG ;;
      o) out=$OPTARG ;;
      n) import=0 ;;
      a) SOCK=$OPTARG ;;
      *) usage ;;
    esac
  done
  shift $((OPTIND - 1))
  (($# >= 2)) || usage
  ref=$(normalise_ref "$1")
  rootfs=$2
  shift 2
  ARGS=("$@")
  [[ -d $rootfs ]] || { echo "oci-image: $rootfs is not a directory" >&2; exit 1; }
  ((import)) || [[ -n $out ]] || { echo "oci-image: -n needs -o FILE" >&2; exit 2; }
  WORK=$(mktemp -d /tmp/oci-image.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  manifest=$(build_layout "$WORK/layout" "$rootfs" "$ref")
  [[ -n $out ]] || out=$WORK/image.tar
  tar -C "$WORK/layout" -cf "$out" oci-layout index.json blobs
  ((import == 0)) || import_image "$out" "$ref"
  echo "$ref $(digest_of "$manifest")"
}

main "$@"
