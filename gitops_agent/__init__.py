"""gitops-agent: a GitOps reconciliation agent for Kubernetes.

Commits are point-in-time snapshots: each one is applied once, drift after that is detected and
explained, and corrected only where an environment's policy says so.
"""

__version__ = "0.1.0"
