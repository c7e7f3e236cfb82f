#!/usr/bin/env bash
# PKI and credentials for the loopback cluster, made with openssl:
# Certificates use ECDSA P-256 keys (fast to make); the service-account key is RSA (RS256 tokens).
#   ca.{crt,key}                       cluster CA (signs everything below; also the client CA)
#   apiserver.{crt,key}                kube-apiserver serving cert (127.0.0.1, 10.0.0.1, kubernetes…)
#   apiserver-kubelet-client.{crt,key} apiserver → kubelet client cert (O=system:masters)
#   kubelet.{crt,key}                  kubelet serving cert for 127.0.0.1
#   sa.{key,pub}                       service-account token signing key pair
#   tokens.csv                         --token-auth-file: random tokens for admin, node, kcm, scheduler
# plus one kubeconfig per identity (write_kubeconfig).
#
# Usage: sourced by cluster.sh (pki_create DIR; write_kubeconfig …), or standalone:
#   bash scripts/k8s/pki.sh DIR
set -euo pipefail

# pki_ca DIR: self-signed CA, 10 years.
pki_ca() {
  local dir=$1
  cat >"$dir/ca.cnf" <<'EOF'
[req]
prompt = no
distinguished_name = dn
x509_extensions = v3_ca
[dn]
CN = sriov-k8s-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
EOF
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 -config "$dir/ca.cnf" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
}

# pki_cert DIR NAME SUBJECT EKU [SANS]: key + certificate signed by DIR/ca, 1 year.
#   SUBJECT like "/O=system:masters/CN=foo"; EKU serverAuth|clientAuth; SANS "IP:…,DNS:…".
pki_cert() {
  local dir=$1 name=$2 subj=$3 eku=$4 sans=${5:-}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subj" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  {
    echo "basicConstraints = critical,CA:FALSE"
    echo "keyUsage = critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage = $eku"
    [[ -z $sans ]] || echo "subjectAltName = $sans"
  } >"$dir/$name.ext"
  openssl x509 -req -sha256 -days 365 -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

# pki_sa DIR: RSA key pair for signing/verifying service-account tokens.
pki_sa() {
  openssl genrsa -out "$1/sa.key" 2048 2>/dev/null
  openssl rsa -in "$1/sa.key" -pubout -out "$1/sa.pub" 2>/dev/null
}

# pki_tokens DIR NODE: tokens.csv (token,user,uid,"groups") with fresh random tokens.
pki_tokens() {
  local dir=$1 node=$2
  {
    echo "$(openssl rand -hex 16),admin,admin,\"system:masters\""
    echo "$(openssl rand -hex 16),system:node:$node,kubelet,\"system:nodes\""
    echo "$(openssl rand -hex 16),system:kube-controller-manager,kube-controller-manager"
    echo "$(openssl rand -hex 16),system:kube-scheduler,kube-scheduler"
  } >"$dir/tokens.csv"
}

# token_of DIR USER: the token tokens.csv holds for USER.
token_of() { awk -F, -v u="$2" '$2 == u {print $1; exit}' "$1/tokens.csv"; }

# pki_create DIR NODE: everything above, fresh.
pki_create() {
  local dir=$1 node=$2
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 0700 "$dir"
  pki_ca "$dir"
  pki_cert "$dir" apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  pki_cert "$dir" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  pki_cert "$dir" kubelet "/CN=$node" serverAuth "IP:$node,DNS:localhost"
  pki_sa "$dir"
  pki_tokens "$dir" "$node"
  chmod 0600 "$dir"/*.key "$dir/tokens.csv"
}

# write_kubeconfig FILE SERVER CA_FILE USER TOKEN: token kubeconfig with the CA embedded, so the
# file can be copied or mounted into a (hostNetwork) pod as is.
write_kubeconfig() {
  local file=$1 server=$2 ca=$3 user=$4 token=$5
  (
    umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sriov-k8s
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$ca")
users:
- name: $user
  user:
    token: $token
contexts:
- name: sriov-k8s
  context:
    cluster: sriov-k8s
    user: $user
current-context: sriov-k8s
EOF
  )
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  [[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
  pki_create "$1" 127.0.0.1
  ls -l "$1"
fi
