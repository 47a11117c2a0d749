#!/usr/bin/env bash
# Builds crane (go-containerregistry) from the Go module proxy, once per version, into the same
# per-user cache as the test control plane; `crane registry serve` is the OCI registry the Helm
# tests push charts to on loopback. Prints the path of the binary; a warm cache returns at once.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^[[:space:]]*github.com\/google\/go-containerregistry v\([^ ]*\).*$/\1/p' "$here/crane/go.mod")
: "${version:?cannot read the go-containerregistry version from crane/go.mod}"

cache_root=${GITOPS_AGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitops-agent}
bin="$cache_root/controlplane/crane-$version/bin"
if [ -x "$bin/crane" ]; then
  echo "$bin/crane"
  exit 0
fi

command -v go >/dev/null || { echo "build-crane.sh: the Go toolchain (go) is needed to build crane" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$bin"
tmp="$bin/crane.tmp.$$"
trap 'rm -f "$tmp"' EXIT
echo "build-crane.sh: building crane v$version (cold: about 30 s on 2 cores)" >&2
(cd "$here/crane" && go build -trimpath -ldflags "-s -w" -o "$tmp" github.com/google/go-containerregistry/cmd/crane)
mv "$tmp" "$bin/crane"
echo "$bin/crane"
