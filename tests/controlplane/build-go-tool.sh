#!/usr/bin/env bash
# Builds one Go command from the Go module proxy, once per version, into the same per-user cache as
# the test control plane, and prints the binary's path; a warm cache returns at once.
#
#   build-go-tool.sh NAME MODULE PACKAGE [LDFLAGS]
#
# NAME/go.mod beside this script is a wrapper module of its own (`tool PACKAGE`), so the tool's
# dependency versions never fight the Kubernetes ones the control plane is built with; the version
# is MODULE's in that go.mod. "{version}" in LDFLAGS is replaced by it.
set -euo pipefail

name=$1 module=$2 package=$3 extra_ldflags=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v/ {print substr($2, 2); exit}' "$here/$name/go.mod")
: "${version:?cannot read the version of $module from $name/go.mod}"

cache_root=${GITOPS_AGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitops-agent}
bin="$cache_root/controlplane/$name-$version/bin"
if [ -x "$bin/$name" ]; then
  echo "$bin/$name"
  exit 0
fi

command -v go >/dev/null || { echo "build-go-tool.sh: the Go toolchain (go) is needed to build $name" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$bin"
tmp="$bin/$name.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
echo "build-go-tool.sh: building $name v$version" >&2
(cd "$here/$name" && go build -trimpath -ldflags "-s -w ${extra_ldflags//\{version\}/$version}" -o "$tmp" "$package")
mv "$tmp" "$bin/$name"
echo "build-go-tool.sh: built $name in $(( $(date +%s) - start ))s into $bin" >&2
echo "$bin/$name"
