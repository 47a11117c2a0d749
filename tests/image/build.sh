#!/usr/bin/env bash
# `make image`: builds the agent's image from the repository's Dockerfile with podman, without a
# container registry, and prints its size.
#
#   IMAGE=gitops-agent:0.1.0     the tag to build (default)
#   IMAGE_BASE=...               a Debian bookworm image with python3 to build on (e.g.
#                                python:3.11-slim-bookworm where a registry is reachable); unset:
#                                a base made here by mmdebstrap from Debian's packages
#
# The build context is staged in build/image/context: the agent's wheel (from this checkout), its
# dependencies' wheels (downloaded on the host for the image's Python, cached per pyproject.toml),
# tests/image/slim-rootfs.sh, and kubectl and helm as the tests build them (tests/controlplane/build.sh,
# build-helm.sh; already stripped: -ldflags "-s -w"), so nothing is built from Go in the image and
# the build itself needs no network. The mmdebstrap base
# is cached as a tarball in ~/.cache/gitops-agent/image/, keyed by what goes into it (the package list
# and options, not the day's Debian security updates: remove the directory and the
# localhost/gitops-agent-base images to take those).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
image=${IMAGE:-gitops-agent:0.1.0}
base=${IMAGE_BASE:-}
python=${PYTHON_BIN:-$root/.venv/bin/python}
cache=${GITOPS_AGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitops-agent}/image
context=$root/build/image/context
log() { echo "image: $*" >&2; }
start=$(date +%s)

for tool in podman "$python"; do
  command -v "$tool" >/dev/null || { log "needs $tool (apt-get install podman runc mmdebstrap; make install)"; exit 1; }
done
# podman refuses the default rlimits here; pass the shell's own (nproc as the issue found works)
ulimits=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit nproc=32768:32768)

# --- the base: Debian bookworm minbase with python3, git, ssh and CA certificates -----------------
# Documentation, man pages and translations are left out; perl (git pulls it in for scripts the agent
# never runs: send-email, svn, cvs) is removed after install, 47 MB of the base. binutils (strip) is
# for the build stage only: tests/image/slim-rootfs.sh removes it with the rest the image never runs.
packages=python3,python3-venv,git,openssh-client,ca-certificates,binutils
mmdebstrap_args=(--variant=minbase "--include=$packages"
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  '--customize-hook=chroot "$1" dpkg --purge --force-depends perl libperl5.36 perl-modules-5.36 liberror-perl'
  bookworm)
if [ -z "$base" ]; then
  key=$(printf '%s\n' "${mmdebstrap_args[@]}" | sha256sum | cut -c1-16)
  base=localhost/gitops-agent-base:$key
  if ! podman image exists "$base"; then
    tarball=$cache/base-$key.tar
    if [ ! -s "$tarball" ]; then
      command -v mmdebstrap >/dev/null || { log "needs mmdebstrap (apt-get install mmdebstrap)"; exit 1; }
      mkdir -p "$cache"
      log "making the Debian base with mmdebstrap (about a minute or three, once per machine)"
      mmdebstrap --quiet "${mmdebstrap_args[@]}" "$tarball.tmp.$$.tar"
      mv "$tarball.tmp.$$.tar" "$tarball"
    fi
    podman import --quiet "$tarball" "$base" >/dev/null
  fi
fi
log "base: $base"

# --- the context ----------------------------------------------------------------------------------
rm -rf "$context"
mkdir -p "$context/bin" "$context/wheels"
kubectl="$(bash "$root/tests/controlplane/build.sh")/kubectl"
helm=$(bash "$root/tests/controlplane/build-helm.sh")
cp "$kubectl" "$helm" "$context/bin/"
cp "$root/tests/image/slim-rootfs.sh" "$context/"
# The image's Python is bookworm's 3.11 (or the slim base's): wheels for it, whatever runs this.
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$context/wheels" "$root"
arch=$(uname -m)  # the machine's, as kubectl's and helm's (bookworm's glibc is 2.36)
deps=$cache/wheels-$arch-$(sha256sum "$root/pyproject.toml" | cut -c1-16)
if [ ! -d "$deps" ]; then
  log "downloading the dependencies' wheels (once per pyproject.toml)"
  rm -rf "$deps.tmp"
  "$python" -m pip download --quiet --only-binary=:all: --dest "$deps.tmp" \
    --implementation cp --python-version 3.11 --abi cp311 \
    --platform "manylinux_2_36_$arch" --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" \
    --platform "manylinux2014_$arch" --platform "manylinux_2_5_$arch" --platform "manylinux1_$arch" \
    "$context"/wheels/gitops_agent-*.whl
  rm -f "$deps.tmp"/gitops_agent-*.whl
  mv "$deps.tmp" "$deps"
fi
cp "$deps"/*.whl "$context/wheels/"

# --- the build ------------------------------------------------------------------------------------
build_start=$(date +%s)
podman build --isolation chroot "${ulimits[@]}" --build-arg "BASE=$base" \
  --file "$root/Dockerfile" --tag "$image" "$context" >&2
# earlier builds of this image and their build stages, now untagged (only ours, by label; this
# build's stage stays: its layers are the cache of the next build)
podman image prune --force --filter label=io.gitops-agent.image=gitops-agent --filter "until=$build_start" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$image")
log "built $image in $(( $(date +%s) - build_start ))s (all: $(( $(date +%s) - start ))s)"
echo "$image: $(( size / 1000000 )) MB"
