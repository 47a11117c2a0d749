# gitops-agent: the daemon image (`gitops-agent run`), non-root (uid 10001), for a read-only root
# filesystem. Build it with `make image` (tests/image/build.sh), which stages the context this file
# expects and needs no registry:
#
#   bin/kubectl, bin/helm   as the tests build them (tests/controlplane/build.sh, build-helm.sh):
#                           kubectl renders Kustomize overlays (`kubectl kustomize`), helm charts
#   wheels/                 the agent's wheel from this checkout and its dependencies' wheels
#
# BASE is a Debian bookworm with python3 and its venv module: by default the usual slim Python image
# (where a registry is reachable); `make image` passes a base made by mmdebstrap from Debian's
# packages instead, which already holds git, ssh and CA certificates. manifests/deployment.yaml
# mounts emptyDirs at /tmp (HOME: ssh known_hosts, git config) and /var/cache/gitops-agent.

ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# make image prunes what earlier builds left under this label
LABEL io.gitops-agent.image=gitops-agent
COPY wheels /wheels
# No network: every wheel is in the context. The asyncio copy of the Kubernetes client (68 MB) is
# never imported; pip and setuptools are not needed to run. Bytecode is compiled now because the
# root filesystem is read-only at run time (unchecked: the image never changes under it).
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --no-cache-dir --no-index --find-links /wheels --no-compile gitops-agent \
 && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools \
 && rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio \
 && python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib

FROM ${BASE}
LABEL io.gitops-agent.image=gitops-agent
# git and ssh fetch the config repository; the mmdebstrap base has them, the slim one does not.
RUN if ! command -v git >/dev/null || ! command -v ssh >/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && echo 'agent:x:10001:10001:gitops-agent:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'agent:x:10001:' >> /etc/group \
 && mkdir -p /var/cache/gitops-agent /etc/gitops-agent \
 && chown 10001:10001 /var/cache/gitops-agent
COPY bin/kubectl bin/helm /usr/local/bin/
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GITOPS_AGENT_KUSTOMIZE=/usr/local/bin/kubectl \
    GITOPS_AGENT_HELM=/usr/local/bin/helm
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["gitops-agent"]
CMD ["run", "--config", "/etc/gitops-agent/gitops-agent.yaml"]
