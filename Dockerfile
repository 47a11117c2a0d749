# gitops-agent: the daemon image (`gitops-agent run`), non-root, for a read-only root filesystem.
#
#   docker build -t gitops-agent:0.1.0 .
#
# Stage 1 builds kustomize and helm from their Go modules (no prebuilt binary downloads; helm at the
# version tests/controlplane/helm/go.mod pins, which the tests render with); stage 2 installs the
# agent into a virtualenv; the runtime stage is python-slim with git and ssh (the config repo), the
# virtualenv, kustomize and helm, running as uid 10001. manifests/deployment.yaml mounts emptyDirs at
# /tmp (HOME: ssh known_hosts, git config) and /var/cache/gitops-agent (the repo cache).

ARG GO_VERSION=1.26
ARG PYTHON_VERSION=3.11
ARG KUSTOMIZE_VERSION=v5.8.1
ARG HELM_VERSION=v3.22.0

FROM golang:${GO_VERSION}-bookworm AS kustomize
ARG KUSTOMIZE_VERSION
ENV CGO_ENABLED=0 GOBIN=/out
RUN go install -trimpath -ldflags="-s -w" sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}
ARG HELM_VERSION
# helm reports the version it was built as (.Capabilities.HelmVersion), as build-helm.sh builds it
RUN go install -trimpath -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
      helm.sh/helm/v3/cmd/helm@${HELM_VERSION}

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gitops_agent ./gitops_agent
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir .

FROM python:${PYTHON_VERSION}-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 agent \
 && useradd --system --uid 10001 --gid agent --home-dir /tmp --no-create-home --shell /usr/sbin/nologin agent \
 && mkdir -p /var/cache/gitops-agent && chown agent:agent /var/cache/gitops-agent
COPY --from=kustomize /out/kustomize /usr/local/bin/kustomize
COPY --from=kustomize /out/helm /usr/local/bin/helm
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GITOPS_AGENT_KUSTOMIZE=/usr/local/bin/kustomize \
    GITOPS_AGENT_HELM=/usr/local/bin/helm
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["gitops-agent"]
CMD ["run", "--config", "/etc/gitops-agent/gitops-agent.yaml"]
