"""The dev stack through the real Pulumi engine (Automation API, local file backend).

Needs the Pulumi CLI, which cannot be installed on the machines that run this project's CI; there
these tests skip, and the same behaviour is proven under tests/engine.py by test_dev_stack.py.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.project import copy_project

pytestmark = [
    pytest.mark.cli,
    pytest.mark.skipif(
        shutil.which("pulumi") is None,
        reason="the Pulumi CLI is not installed (it is not available from PyPI, npm or Debian here);"
               " test_dev_stack.py proves the same under the engine-faithful harness",
    ),
]


def test_pulumi_up_on_the_dev_stack_publishes_and_is_idempotent(tmp_path):
    from pulumi import automation as auto

    project = copy_project(tmp_path / "project")
    state = tmp_path / "state"
    state.mkdir()
    env = {"PULUMI_BACKEND_URL": f"file://{state}", "PULUMI_CONFIG_PASSPHRASE": "test-only"}
    stack = auto.create_or_select_stack(
        "dev", work_dir=str(project), opts=auto.LocalWorkspaceOptions(env_vars=env)
    )
    result = stack.up(on_output=print)
    keysets = result.outputs["keysets"].value
    jwks = json.loads((project / "published/atlas/.well-known/jwks.json").read_text())
    assert keysets["atlas-gateway"]["activeKid"] in [k["kid"] for k in jwks["keys"]]
    preview = stack.preview()
    assert set(preview.change_summary) == {"same"}
