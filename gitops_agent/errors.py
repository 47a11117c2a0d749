"""One error tree for the whole agent.

Adapters translate library exceptions (httpx, kubernetes, git, subprocess) into these at the
boundary, so the rest of the code never sees a third-party exception. Every message is meant for
a person: it starts with the file path or the object's ``Kind/namespace/name`` and says what to do.

    GitOpsError
    ├── ConfigError        the agent's own config file is wrong
    ├── SourceError        git: remote unreachable, bad credentials, unknown branch or commit
    ├── RenderError        a manifest file or overlay cannot be turned into objects
    ├── ValidationError    objects rendered but are not a valid snapshot
    ├── ClusterError       the Kubernetes API refused or could not be reached
    │   ├── ForbiddenError    the agent's identity may not do what it tried
    │   └── ConflictError     someone else changed the object first (optimistic concurrency)
    └── ReportError        GitHub or chat could not be told (never fails a reconcile)
"""

from __future__ import annotations


class GitOpsError(Exception):
    """Base of every error the agent raises on purpose."""

    #: short machine-readable reason, used in statuses, metrics and JSON output
    reason = "Error"


class ConfigError(GitOpsError):
    reason = "ConfigInvalid"


class SourceError(GitOpsError):
    reason = "SourceUnavailable"


class RenderError(GitOpsError):
    reason = "RenderFailed"


class ValidationError(GitOpsError):
    reason = "ValidationFailed"


class ClusterError(GitOpsError):
    reason = "ClusterError"


class ForbiddenError(ClusterError):
    reason = "PermissionDenied"


class ConflictError(ClusterError):
    reason = "Conflict"


class ReportError(GitOpsError):
    reason = "ReportFailed"
