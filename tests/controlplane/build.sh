#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok) from the Go module proxy, once per version, into a per-user cache outside the
# checkout. Prints the bin directory on stdout. A warm cache returns at once.
#
# Why wrapper modules: k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
# with ./staging/..., so `go install` refuses it; kubernetes/go.mod here pins every staging module
# to its published version instead. etcd and kwok have modules of their own so their dependency
# versions never fight the Kubernetes ones.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes v\([^ ]*\).*$/\1/p' "$here/kubernetes/go.mod")
etcd_version=$(sed -n 's/^[[:space:]]*go.etcd.io\/etcd\/server\/v3 v\([^ ]*\).*$/\1/p' "$here/etcd/go.mod")
kwok_version=$(sed -n 's/^[[:space:]]*sigs.k8s.io\/kwok v\([^ ]*\).*$/\1/p' "$here/kwok/go.mod")
: "${k8s_version:?cannot read the Kubernetes version from kubernetes/go.mod}"
: "${etcd_version:?cannot read the etcd version from etcd/go.mod}"
: "${kwok_version:?cannot read the kwok version from kwok/go.mod}"

cache_root=${GITOPS_AGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitops-agent}
bin="$cache_root/controlplane/k8s-$k8s_version-etcd-$etcd_version-kwok-$kwok_version/bin"
want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

complete() {
  for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done
}
if complete; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: the Go toolchain (go) is needed to build the test control plane" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$bin"
tmp="$bin.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

log() { echo "build.sh: $*" >&2; }
start=$(date +%s)

minor=${k8s_version#*.}; minor=${minor%%.*}
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $p.gitVersion=v$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
done

log "building etcd v$etcd_version"
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)

log "building kwok v$kwok_version"
(cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)

log "building Kubernetes v$k8s_version (cold: 10-25 minutes on 2 cores)"
(cd "$here/kubernetes" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)

mv "$tmp"/* "$bin"/
log "built in $(( $(date +%s) - start ))s into $bin"
echo "$bin"
