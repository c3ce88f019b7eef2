"""The in-cluster publisher: a ``configmap://namespace/name`` target holds its document in a ConfigMap.

``pulumi_kubernetes`` is imported inside the function, by submodule, and only for stacks that
publish to a cluster: the dev stack never loads it.
"""

from __future__ import annotations

import hashlib

import pulumi

from components.kubernetes import MANAGED_BY, split_ref
from keyrotation import names
from keyrotation.config import Publication as PublicationConfig
from keyrotation.metadata import ANNOTATION_PREFIX

document_key = names.config_map_key


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
