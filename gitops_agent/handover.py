"""Moving an object from one environment to another in one commit hands it over — the same object,
the same UID — whichever environment's pass runs first:

- the giving environment's prune sees the object in the taking environment's snapshot and releases
  it (takes its labels off) instead of deleting it (``claimed_by``);
- the taking environment, finding it still labelled for the giver, takes it over when the giver's
  own snapshot no longer has it (``may_take_over``); otherwise two environments would fight over it.

Each environment's snapshot is its branch head's, rendered once per commit (``Snapshots``).
"""

from __future__ import annotations

from collections.abc import Callable

from gitops_agent.config import Config, EnvironmentConfig
from gitops_agent.errors import GitOpsError
from gitops_agent.model import ObjectKey
from gitops_agent.snapshots import Snapshots

#: (group, kind) -> namespaced? None when the server does not know the kind
ScopeLookup = Callable[[str, str], bool | None]


class Handover:
    def __init__(self, config: Config, snapshots: Snapshots, env: EnvironmentConfig, scope_of: ScopeLookup) -> None:
        self._config = config
        self._snapshots = snapshots
        self._env = env
        self._scope_of = scope_of
        self._keys: dict[str, frozenset[ObjectKey] | None] = {}

    def claimed_by(self, key: ObjectKey) -> str | None:
        """The other environment (same cluster) whose snapshot has ``key`` now, if one does."""
        for other in self._config.environments:
            if other.name != self._env.name and other.context == self._env.context:
                keys = self._keys_of(other)
                if keys is not None and key in keys:
                    return other.name
        return None

    def may_take_over(self, owner: str, key: ObjectKey) -> bool:
        """``owner`` is an environment of this config, in this cluster, whose snapshot gave ``key`` up."""
        giver = next((e for e in self._config.environments if e.name == owner), None)
        if giver is None or giver.context != self._env.context:
            return False  # another agent's, or another cluster's: never taken
        keys = self._keys_of(giver)
        return keys is not None and key not in keys

    def _keys_of(self, env: EnvironmentConfig) -> frozenset[ObjectKey] | None:
        """The keys of ``env``'s snapshot at its branch head, namespaces defaulted; None when it
        cannot be rendered (then nothing is handed over: the usual rules apply)."""
        if env.name not in self._keys:
            try:
                objects = self._snapshots.snapshot(env, self._snapshots.target_commit(env))
                self._keys[env.name] = frozenset(self._defaulted(o.key, env) for o in objects)
            except GitOpsError:
                self._keys[env.name] = None
        return self._keys[env.name]

    def _defaulted(self, key: ObjectKey, env: EnvironmentConfig) -> ObjectKey:
        if key.namespace or self._scope_of(key.group, key.kind) is False:
            return key
        return ObjectKey(key.group, key.kind, env.namespace, key.name)
