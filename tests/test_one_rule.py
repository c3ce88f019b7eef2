"""One rule per fact: the policy pack and the rotation commands, fed the same records, agree.

The dev stack is deployed under the engine harness, a generation is rotated in and deployed
later; then the pack judges the stack's resources (what `AnalyzeStack` sees) and the commands
read the stack outputs (`pulumi stack output --json`) of the same deployment. Both must say the
same about when each generation was first published and which gaps remain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyrotation import lifecycle
from keyrotation.commands import outputs
from keyrotation.config import from_config_map
from keyrotation.names import KEY_GENERATION_TYPE, PUBLICATION_TYPE
from policy import rotation
from tests.engine import Engine
from tests.policy_client import stack_args, stack_resource
from tests.project import stack_config


def test_the_pack_and_the_commands_read_the_same_first_publications_and_gaps(project, monkeypatch):
    config = stack_config("dev")
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-23T12:00:00Z")
    engine = Engine(project, "dev", config=config)
    engine.up()
    config["key-rotation:keysets"]["atlas-gateway"]["generations"].append(
        {"id": "next", "state": "pending", "createdAt": "2026-11-24T09:00:00Z"})
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-24T10:00:00Z")
    run = engine.up()

    resources = [stack_resource(r.type, r.outputs, name=r.name) for r in run.resources.values()
                 if r.type in (KEY_GENERATION_TYPE, PUBLICATION_TYPE)]
    views = rotation.keysets(stack_args(resources))
    stack = from_config_map(config, stack_file="Pulumi.dev.yaml")
    records = outputs.records(run.outputs, stack, "outputs")
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # the deployment's time: every kid is recorded by then
    compared = 0
    for name, view in views.items():
        if not view.public_documents:
            continue
        pack = rotation.published_times(view, now).times
        assert pack == dict(records[name].first_published), name
        pack_gaps = lifecycle.find_gaps(name, [g.generation for g in view.generations], view.timings, pack)
        assert pack_gaps == lifecycle.keyset_gaps(stack.keysets[name], records[name].first_published), name
        compared += 1
    assert compared >= 3
    # the rotated generation counts from its deployment (10:00), not its createdAt (09:00)
    assert records["atlas-gateway"].first_published["next"].isoformat() == "2026-11-24T10:00:00+00:00"
    # the dev stack's first generations were in the first version of their documents: not held to it
    assert "2026-11-23" not in records["atlas-gateway"].first_published


ROOT = Path(__file__).resolve().parents[1]
DEFINED_ONCE = {
    # a literal that defines a fact -> the one module allowed to spell it
    "KEY_ROTATION_NOW": "keyrotation/names.py",
    ":index:": "keyrotation/names.py",
    "pulumi-python:dynamic/": "keyrotation/names.py",
    '{fmt}.json': "keyrotation/names.py",
    "86400": "keyrotation/times.py",
    '.isoformat().replace("+00:00", "Z")': "keyrotation/times.py",
}


@pytest.mark.parametrize(("literal", "home"), sorted(DEFINED_ONCE.items()))
def test_each_name_and_format_is_spelled_in_one_module(literal, home):
    sources = [*ROOT.glob("keyrotation/**/*.py"), *ROOT.glob("components/*.py"), *ROOT.glob("policy/*.py"),
               ROOT / "__main__.py"]
    spelled = sorted(str(p.relative_to(ROOT)) for p in sources if literal in p.read_text())
    assert spelled == [home]
