"""The key-rotation policy pack: assembles the policies (run by the Pulumi CLI, never imported).

`pulumi preview --policy-pack policy --policy-pack-config policy/config/<env>.json`
"""

import sys
from pathlib import Path

# The CLI runs this file with the pack directory on sys.path; the policies import the project's
# own packages (keyrotation: ages, timings, the algorithm table), which live one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from keyrotation.runtime import tune_garbage_collection  # noqa: E402
from policy import guardrails, key_age, rotation, sdk_hooks  # noqa: E402

# The stack config from ConfigureStack, and what the stack policies read built once per analysis.
sdk_hooks.install()
# Each analysis holds every resource, once per stack policy (keyrotation/runtime.py).
tune_garbage_collection()

PolicyPack(
    name="key-rotation",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[*key_age.POLICIES, *guardrails.POLICIES, *rotation.POLICIES],
    description="Maximum key age and the rotation guardrails of the key-rotation program.",
)
