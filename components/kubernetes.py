"""The stack's Kubernetes cluster: its provider, the labels of what the program owns there, refs.

``pulumi_kubernetes`` is imported inside the functions, by submodule, and only for stacks with a
``kubernetes`` section: the dev stack never loads it.
"""

from __future__ import annotations

import pulumi

from keyrotation.config import StackConfig

MANAGED_BY = {"app.kubernetes.io/managed-by": "key-rotation"}
"""Labels of every object this program owns in a cluster."""


def cluster_provider(stack: StackConfig) -> pulumi.ProviderResource | None:
    """The stack's Kubernetes provider from ``kubernetes.context``; None for a stack without one.

    Server-side apply is on (the provider's default, stated because Deployment patches need it).
    The kubeconfig itself comes from the environment (``KUBECONFIG``), as for kubectl.
    """
    if stack.kubernetes is None:
        return None
    from pulumi_kubernetes.provider import Provider

    return Provider(
        "kubernetes",
        context=stack.kubernetes.context,
        namespace=stack.kubernetes.namespace,
        enable_server_side_apply=True,
    )


def split_ref(ref: str) -> tuple[str, str]:
    """``namespace/name`` -> (namespace, name); the config has checked the shape."""
    namespace, _, name = ref.partition("/")
    return namespace, name
