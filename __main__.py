"""key-rotation: declare, rotate, publish and retire keys per stack (wiring only)."""

import pulumi

from components import KeySet, KeySetArgs, SharedResources, load_stack
from components.alerts import stack_alerts
from components.kubernetes import cluster_provider
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
stack_alerts(stack, cluster)

pulumi.export("environment", stack.environment)
pulumi.export("keysets", {name: keyset.outputs for name, keyset in keysets.items()})
