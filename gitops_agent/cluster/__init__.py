"""The cluster verbs: what the agent does to one cluster, a module per verb.

- ``api``: the Kubernetes client with its discovery cache, and lookups by key;
- ``prepare``: a snapshot as it is applied (scopes resolved, namespace defaulted, labelled, hashed);
- ``read``: live objects, read once per kind and namespace (or per label), for plans, drift, health;
- ``plan``: what an apply would change, decided locally where possible, else by server-side dry-run;
- ``apply``: writes in stages (Namespaces and CRDs first), kind by kind, side by side within a kind;
- ``wait``: CRDs until Established and served by discovery;
- ``prune``: what the commit removed, only when it is still ours and unprotected;
- ``state``: the agent's own records in the cluster (inventory and ledger ConfigMaps);
- ``lock``: one writer per environment, the Lease a pass holds while it may write;
- ``sync``: the one script that sequences them for a snapshot (``sync``), and the reads above it
  (``observe``, ``drift``).
"""

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.cluster.model import ObjectPlan, Observation, SyncOptions, SyncResult
from gitops_agent.cluster.sync import drift, observe, sync

__all__ = ["ClusterApi", "ObjectPlan", "Observation", "SyncOptions", "SyncResult", "drift", "observe", "sync"]
