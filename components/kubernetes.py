"""The stack's Kubernetes cluster: its provider, and published documents kept in ConfigMaps.

``pulumi_kubernetes`` is imported inside the functions, by submodule, and only for stacks with a
``kubernetes`` section: the dev stack never loads it.
"""

from __future__ import annotations

import hashlib

import pulumi

from keyrotation import names
from keyrotation.config import Publication as PublicationConfig
from keyrotation.config import StackConfig
from keyrotation.metadata import ANNOTATION_PREFIX

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


document_key = names.config_map_key


def split_ref(ref: str) -> tuple[str, str]:
    """``namespace/name`` -> (namespace, name); the config has checked the shape."""
    namespace, _, name = ref.partition("/")
    return namespace, name


def document_config_map(
    name: str,
    publication: PublicationConfig,
    content: pulumi.Input[str],
    keyset: str,
    opts: pulumi.ResourceOptions | None = None,
) -> pulumi.CustomResource:
    """A ``configmap://namespace/name`` publish target: the document, public material only.

    A ConfigMap registered with the stack's provider replaces the file/S3 publisher for in-cluster
    targets: the cluster applies it atomically and Pulumi's diff already skips unchanged content.
    """
    from pulumi_kubernetes.core.v1 import ConfigMap

    namespace, object_name = split_ref(publication.location)
    digest = pulumi.Output.from_input(content).apply(lambda text: hashlib.sha256(text.encode()).hexdigest())
    return ConfigMap(
        name,
        metadata={
            "name": object_name,
            "namespace": namespace,
            "labels": dict(MANAGED_BY),
            "annotations": {
                ANNOTATION_PREFIX + "keyset": keyset,
                ANNOTATION_PREFIX + "format": publication.format,
                ANNOTATION_PREFIX + "sha256": digest,
            },
        },
        data={document_key(publication.format): content},
        opts=opts,
    )
