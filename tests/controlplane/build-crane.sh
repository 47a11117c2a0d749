#!/usr/bin/env bash
# crane (go-containerregistry; crane/go.mod pins it): `crane registry serve` is the OCI registry the
# Helm tests push charts to on loopback. Prints the binary's path (cold: ~30 s).
exec bash "$(dirname "$0")/build-go-tool.sh" crane github.com/google/go-containerregistry \
  github.com/google/go-containerregistry/cmd/crane
