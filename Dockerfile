# gitops-agent: the daemon image (`gitops-agent run`), non-root, for a read-only root filesystem.
#
#   docker build -t gitops-agent:0.1.0 .
#
# Stage 1 builds kustomize from its Go module (no prebuilt binary downloads); stage 2 installs the
# agent into a virtualenv; the runtime stage is python-slim with git and ssh (the config repo), the
# virtualenv and kustomize, running as uid 10001. manifests/deployment.yaml mounts emptyDirs at
# /tmp (HOME: ssh known_hosts, git config) and /var/cache/gitops-agent (the repo cache).

ARG GO_VERSION=1.26
ARG PYTHON_VERSION=3.11
ARG KUSTOMIZE_VERSION=v5.8.1

FROM golang:${GO_VERSION}-bookworm AS kustomize
ARG KUSTOMIZE_VERSION
ENV CGO_ENABLED=0 GOBIN=/out
RUN go install -trimpath -ldflags="-s -w" sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}

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
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GITOPS_AGENT_KUSTOMIZE=/usr/local/bin/kustomize
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["gitops-agent"]
CMD ["run", "--config", "/etc/gitops-agent/gitops-agent.yaml"]
