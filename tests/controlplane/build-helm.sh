#!/usr/bin/env bash
# Builds helm (v3) from the Go module proxy, once per version, into the same per-user cache as the
# test control plane. Prints the path of the helm binary on stdout; a warm cache returns at once.
#
# A wrapper module of its own (helm/go.mod, `tool helm.sh/helm/v3/cmd/helm`) so helm's dependency
# versions never fight the Kubernetes ones the control plane is built with.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
helm_version=$(sed -n 's/^[[:space:]]*helm.sh\/helm\/v3 v\([^ ]*\).*$/\1/p' "$here/helm/go.mod")
: "${helm_version:?cannot read the helm version from helm/go.mod}"

cache_root=${GITOPS_AGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitops-agent}
bin="$cache_root/controlplane/helm-$helm_version/bin"
if [ -x "$bin/helm" ]; then
  echo "$bin/helm"
  exit 0
fi

command -v go >/dev/null || { echo "build-helm.sh: the Go toolchain (go) is needed to build helm" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$bin"
tmp="$bin/helm.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
echo "build-helm.sh: building helm v$helm_version (cold: about a minute on 2 cores)" >&2
# helm reports the version it was built as; `helm version` and Capabilities.HelmVersion read it
(cd "$here/helm" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$helm_version" \
  -o "$tmp" helm.sh/helm/v3/cmd/helm)
mv "$tmp" "$bin/helm"
echo "build-helm.sh: built in $(( $(date +%s) - start ))s into $bin" >&2
echo "$bin/helm"
