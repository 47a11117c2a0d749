# gitops-agent: the daemon image (`gitops-agent run`), non-root (uid 10001), for a read-only root
# filesystem. Build it with `make image` (tests/image/build.sh), which stages the context this file
# expects and needs no registry:
#
#   bin/kubectl, bin/helm   as the tests build them (tests/controlplane/build.sh, build-helm.sh):
#                           kubectl renders Kustomize overlays (`kubectl kustomize`), helm charts
#   wheels/                 the agent's wheel from this checkout and its dependencies' wheels
#   slim-rootfs.sh          tests/image/slim-rootfs.sh: what of the build stage the image keeps
#
# BASE is a Debian bookworm with python3 and its venv module: by default the usual slim Python image
# (where a registry is reachable); `make image` passes a base made by mmdebstrap from Debian's
# packages instead, which already holds git, ssh, CA certificates and binutils. The image is that
# stage's tree once pruned, in one layer from scratch: Python, the venv, git, ssh, /bin/sh (dash), CA
# certificates, the libraries they link, kubectl and helm; no package manager, no coreutils.
# manifests/deployment.yaml mounts emptyDirs at /tmp (HOME: ssh known_hosts, git config) and
# /var/cache/gitops-agent.

ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# make image prunes what earlier builds left under this label
LABEL io.gitops-agent.image=gitops-agent
COPY wheels /wheels
COPY slim-rootfs.sh /slim-rootfs.sh
# git and ssh fetch the config repository, strip trims the wheels' extension modules: the mmdebstrap
# base has them all, the slim one does not.
RUN if ! command -v git >/dev/null || ! command -v ssh >/dev/null || ! command -v strip >/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends git openssh-client ca-certificates binutils; \
    fi
# No network: every wheel is in the context. Then everything the agent never runs goes
# (tests/image/slim-rootfs.sh: pip, the package manager, perl, docs, stdlib tests, symbols, ...).
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --no-cache-dir --no-index --find-links /wheels --no-compile gitops-agent \
 && echo 'agent:x:10001:10001:gitops-agent:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'agent:x:10001:' >> /etc/group \
 && mkdir -p /var/cache/gitops-agent /etc/gitops-agent \
 && chown 10001:10001 /var/cache/gitops-agent \
 && sh /slim-rootfs.sh

# The image: the pruned tree as one layer (the files removed above are not kept in a lower one).
FROM scratch
LABEL io.gitops-agent.image=gitops-agent
COPY --from=build / /
COPY bin/kubectl bin/helm /usr/local/bin/
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GITOPS_AGENT_KUSTOMIZE=/usr/local/bin/kubectl \
    GITOPS_AGENT_HELM=/usr/local/bin/helm
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["gitops-agent"]
CMD ["run", "--config", "/etc/gitops-agent/gitops-agent.yaml"]
