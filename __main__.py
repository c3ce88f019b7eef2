"""key-rotation: declare, rotate, publish and retire keys per stack (wiring only)."""

import pulumi

from components import KeySet, KeySetArgs, load_stack

stack = load_stack()

keysets = {
    name: KeySet(name, KeySetArgs(stack=stack, keyset=keyset))
    for name, keyset in stack.keysets.items()
}

pulumi.export("environment", stack.environment)
pulumi.export("keysets", {name: keyset.summary() for name, keyset in keysets.items()})
