#!/usr/bin/env bash
# helm v3 (helm/go.mod pins it), as the image ships it; prints the binary's path (cold: ~1 min).
# helm reports the version it was built as: `helm version` and .Capabilities.HelmVersion read it.
exec bash "$(dirname "$0")/build-go-tool.sh" helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=v{version}"
