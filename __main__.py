"""key-rotation: declare, rotate, publish and retire keys per stack (wiring only)."""

import pulumi

from components import KeySet, KeySetArgs, load_stack
from components.alerts import stack_alerts
from components.kubernetes import cluster_provider
from keyrotation.runtime import tune_garbage_collection

tune_garbage_collection()  # registration builds one big, long-lived graph (keyrotation/runtime.py)
stack = load_stack()
cluster = cluster_provider(stack)  # None without a kubernetes section (the dev stack)
on_cluster = pulumi.ResourceOptions(providers=[cluster]) if cluster else None

keysets = {
    name: KeySet(name, KeySetArgs(stack=stack, keyset=keyset), on_cluster)
    for name, keyset in stack.keysets.items()
}
stack_alerts(stack, cluster)

pulumi.export("environment", stack.environment)
pulumi.export("keysets", {name: keyset.outputs for name, keyset in keysets.items()})
