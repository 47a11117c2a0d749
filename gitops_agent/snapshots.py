"""The config repository as snapshots: fetched, resolved per environment, rendered at a commit.

A commit's content never changes, so each environment's render at a commit is kept (a few per
environment: the target and the last applied are all a pass needs) and shared by passes, status
reads, previews and promotions.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gitops_agent.adapters.git_source import GitSource
from gitops_agent.adapters.helm import ChartCache, Helm
from gitops_agent.adapters.helm_render import HelmContext
from gitops_agent.adapters.renderer import Kustomize, Rendered, environment_sources, render_snapshot
from gitops_agent.config import Config, EnvironmentConfig
from gitops_agent.core.helm import Capabilities, ChartRef
from gitops_agent.core.render import validate_objects
from gitops_agent.core.scope import ScopedObject, check_scope
from gitops_agent.errors import GitOpsError
from gitops_agent.model import DesiredObject

SNAPSHOTS_KEPT_PER_ENVIRONMENT = 3


#: the target cluster's ``.Capabilities`` for an environment's charts (None: helm's defaults)
CapabilitiesOf = Callable[[EnvironmentConfig], Capabilities | None]


class Snapshots:
    def __init__(
        self,
        config: Config,
        source: GitSource,
        kustomize: Kustomize,
        *,
        charts: ChartCache | None = None,
        capabilities: CapabilitiesOf = lambda env: None,
    ) -> None:
        self.config = config
        self.source = source
        self.kustomize = kustomize
        self.chart_cache = charts or ChartCache(Path(tempfile.gettempdir()) / "gitops-agent-charts")
        self.capabilities = capabilities
        self._kept: OrderedDict[tuple[str, str], tuple[tuple[DesiredObject, ...], tuple[ChartRef, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def fetch(self) -> GitOpsError | None:
        """Fetch the config repo; the error, if any, is returned so each environment can report it."""
        try:
            self.source.fetch()
        except GitOpsError as exc:
            return exc
        return None

    def target_commit(self, env: EnvironmentConfig) -> str:
        return self.source.resolve(self.config.branch_of(env))

    def render(self, env: EnvironmentConfig, commit: str) -> list[DesiredObject]:
        """The environment's objects at a commit: :meth:`rendered`'s, without provenance."""
        return self.rendered(env, commit).objects

    def rendered(self, env: EnvironmentConfig, commit: str) -> Rendered:
        """The environment's objects at a commit, validated (and, as far as can be told without a
        cluster, within the environment's scope), without a shared checkout, and the charts they
        came from. Only the environment's own files and the bases they reference are exported for
        it: its render sees nothing else."""
        with self._tree(commit, env.path) as root:
            rendered = self._render_tree(root, env.path)
        validate_objects(rendered.objects)
        offline = [ScopedObject(o.key, o.source, None) for o in rendered.objects]
        check_scope(offline, env.boundary, environment=env.name, agent_namespace=self.config.agent.namespace)
        return rendered

    def render_tree(self, root: Path, path: str) -> list[DesiredObject]:
        """An environment's directory in a tree already on disk (a promotion's work tree), within
        the render limits of the environment at that path (else the config's). Rendered from a
        copy: a render may write into its tree (charts placed for kustomize), a work tree must not change."""
        with tempfile.TemporaryDirectory(prefix="gitops-agent-tree-") as tmp:
            copy = Path(tmp) / "tree"
            shutil.copytree(root, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
            return self._render_tree(copy, path).objects

    def _render_tree(self, root: Path, path: str) -> Rendered:
        env = next((e for e in self.config.environments if e.path == path), None)
        box = env.render if env is not None else self.config.render
        return render_snapshot(root, path, kustomize=self.kustomize, box=box, helm=self._helm(env, path))

    def _helm(self, env: EnvironmentConfig | None, path: str) -> HelmContext:
        """How the environment's charts render: its ``helm:``, release (default: its name), namespace
        and the target cluster's capabilities, read only when a chart renders."""
        helm = Helm(self.config.agent.helm)
        if env is None:
            return HelmContext(helm, self.chart_cache, release=Path(path).name or "release", namespace="default")
        return HelmContext(
            helm,
            self.chart_cache,
            release=env.name,
            namespace=env.namespace,
            spec=env.helm,
            capabilities=lambda: self.capabilities(env),
        )

    def sources(self, env: EnvironmentConfig, commit: str) -> tuple[str, ...]:
        """The repository paths ``env`` renders from at ``commit`` (its directory and the bases it
        references): what ``history`` filters the log by. Just its directory when the commit
        cannot be read or rendered: that directory still names its own commits."""
        try:
            with self._tree(commit, env.path) as root:
                return tuple(environment_sources(root, env.path))
        except GitOpsError:
            return (env.path,)

    @contextmanager
    def _tree(self, commit: str, env_path: str) -> Iterator[Path]:
        """A fresh directory holding what ``env_path`` renders from at ``commit``, removed after."""
        with tempfile.TemporaryDirectory(prefix=f"gitops-agent-{commit[:12]}-") as tmp:
            root = Path(tmp)
            self.source.export_environment(commit, root, env_path)
            yield root

    def snapshot(self, env: EnvironmentConfig, commit: str) -> tuple[DesiredObject, ...]:
        """Rendered once per environment and commit."""
        return self._kept_render(env, commit)[0]

    def charts(self, env: EnvironmentConfig, commit: str) -> tuple[ChartRef, ...]:
        """The charts the environment's snapshot at ``commit`` was rendered from (name, version,
        digest, source): provenance for the ledger. Rendered (once) if it was not yet."""
        return self._kept_render(env, commit)[1]

    def _kept_render(
        self, env: EnvironmentConfig, commit: str
    ) -> tuple[tuple[DesiredObject, ...], tuple[ChartRef, ...]]:
        key = (env.name, commit)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        done = self.rendered(env, commit)
        rendered = (tuple(done.objects), done.charts)
        with self._lock:
            self._kept[key] = rendered
            # a daemon runs for months: keep the few snapshots a pass can need (target, last applied)
            while len(self._kept) > SNAPSHOTS_KEPT_PER_ENVIRONMENT * len(self.config.environments):
                self._kept.popitem(last=False)
        return rendered

    def same_intent(self, env: EnvironmentConfig, a: str, b: str) -> bool:
        """Do two commits render the same snapshot of ``env``? A commit that no longer exists
        (force-pushed away) renders nothing the same."""
        try:
            return same_snapshot(self.snapshot(env, a), self.snapshot(env, b))
        except GitOpsError:
            return False


def same_snapshot(a: Sequence[DesiredObject], b: Sequence[DesiredObject]) -> bool:
    """Do two renders hold the same objects with the same manifests? (DesiredObject's own equality
    looks at keys and sources only.)"""
    return [(o.key, o.manifest) for o in a] == [(o.key, o.manifest) for o in b]
