"""key-rotation: declare, rotate, publish and retire keys per stack (wiring only)."""

import pulumi

from components import KeySet, KeySetArgs, SharedResources, load_stack
from components.alerts import stack_alerts
from components.kubernetes import cluster_provider
from components.trust_anchors import TrustAnchors, TrustAnchorsArgs
from keyrotation.runtime import tune_garbage_collection

tune_garbage_collection()  # registration builds one big, long-lived graph (keyrotation/runtime.py)
stack = load_stack()
cluster = cluster_provider(stack)  # None without a kubernetes section (the dev stack)
on_cluster = pulumi.ResourceOptions(providers=[cluster]) if cluster else None

shared = SharedResources()  # what several keysets share (a GCP KeyRing), registered once per run
keysets = {
    name: KeySet(name, KeySetArgs(keyset, stack.environment, stack.publish_root, shared), on_cluster)
    for name, keyset in stack.keysets.items()
}
# Seed 002's anchors list the keys of several keysets; each keyset's outputs count them as its documents.
anchors = (TrustAnchors("trust-anchors", TrustAnchorsArgs(stack.trust_anchors, keysets, stack.publish_root),
                        on_cluster) if stack.trust_anchors else None)
for name, keyset in keysets.items():
    keyset.finish(anchors.naming(name) if anchors is not None else None)
stack_alerts(stack, cluster)

pulumi.export("environment", stack.environment)
pulumi.export("keysets", {name: keyset.outputs for name, keyset in keysets.items()})
