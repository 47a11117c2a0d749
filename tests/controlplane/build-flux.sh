#!/usr/bin/env bash
# Flux's source-controller and kustomize-controller (flux-*/go.mod pin them), for `make bench-flux`
# only; prints both binaries' paths, one a line (cold: ~3 min each on 2 cores).
set -euo pipefail
here=$(dirname "$0")
bash "$here/build-go-tool.sh" flux-source-controller github.com/fluxcd/source-controller \
  github.com/fluxcd/source-controller
bash "$here/build-go-tool.sh" flux-kustomize-controller github.com/fluxcd/kustomize-controller \
  github.com/fluxcd/kustomize-controller
