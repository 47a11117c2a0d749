# Every target installs what it needs: a fresh clone on a new machine runs `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CLUSTER_DIR := .cluster
N ?= 100,1000,5000

.PHONY: install controlplane test lint typecheck unit integration cluster-up cluster-down demo bench bench-flux clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Builds etcd, kube-apiserver, controller-manager, scheduler, kubectl and kwok once per version
# into ~/.cache/gitops-agent (cold: 10-25 min on 2 cores; warm: instant), helm (cold: ~1 min) and
# crane, the OCI registry the Helm tests push charts to (cold: ~30 s).
controlplane:
	@bash tests/controlplane/build.sh >/dev/null
	@bash tests/controlplane/build-helm.sh >/dev/null
	@bash tests/controlplane/build-crane.sh >/dev/null

lint: install
	$(BIN)/ruff check gitops_agent tests
	$(BIN)/ruff format --check gitops_agent tests
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit -q

integration: install controlplane
	$(BIN)/pytest tests/integration -q

test: lint typecheck install controlplane
	$(BIN)/pytest -q

# The agent's image, with podman on a Debian base mmdebstrap makes (no registry needed; set
# IMAGE_BASE=python:3.11-slim-bookworm where one is reachable); prints its size. tests/image/build.sh
image: install controlplane
	bash tests/image/build.sh

# The image run as the cluster runs it: manifests/ applied, its ServiceAccount's token, the shipped
# RBAC only (tests/image/check_image.py; not part of `make test`, which needs no podman).
test-image: image
	$(BIN)/pytest -q tests/image/check_image.py

cluster-up: install controlplane
	$(BIN)/python -m tests.controlplane.harness up --dir $(CLUSTER_DIR)

cluster-down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m tests.controlplane.harness down --dir $(CLUSTER_DIR); fi

# The agent renders Kustomize overlays with the kubectl built beside the control plane.
demo: install cluster-up
	GITOPS_AGENT_KUSTOMIZE=$$(bash tests/controlplane/build.sh)/kubectl \
	GITOPS_AGENT_HELM=$$(bash tests/controlplane/build-helm.sh) \
	  $(BIN)/python -m gitops_agent.demo --kubeconfig $(CLUSTER_DIR)/kubeconfig

bench: install cluster-up
	GITOPS_AGENT_KUSTOMIZE=$$(bash tests/controlplane/build.sh)/kubectl \
	  $(BIN)/python -m tests.bench --kubeconfig $(CLUSTER_DIR)/kubeconfig --n $(N)

# gitops-agent against Flux's source-controller and kustomize-controller (built once per version, cold
# ~3 min each; not part of `make test`) on a control plane of its own; N environments (N=10,100,500).
FLUX_CLUSTER_DIR := .cluster-flux
FLUX_N := $(if $(filter command line environment,$(origin N)),$(N),10,100,500)
bench-flux: install controlplane
	@bash tests/controlplane/build-flux.sh >/dev/null
	$(BIN)/python -m tests.controlplane.harness up --dir $(FLUX_CLUSTER_DIR)
	$(BIN)/python -m tests.bench.flux --kubeconfig $(FLUX_CLUSTER_DIR)/kubeconfig --n $(FLUX_N); \
	  status=$$?; $(BIN)/python -m tests.controlplane.harness down --dir $(FLUX_CLUSTER_DIR); exit $$status

clean: cluster-down
	rm -rf $(VENV) $(CLUSTER_DIR) .bench .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
