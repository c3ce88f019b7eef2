"""The dev stack through the real Pulumi engine: the Automation API over the pinned CLI.

The CLI and its Python language host come from `scripts/install-pulumi.sh` (built from Pulumi's Go
modules); `tests/pulumi_cli.py` finds them, and a test fails rather than skips where CI installed
them. Each test runs on a private copy of the project with its own file backend.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from tests.project import ROOT, copy_project, stack_config
from tests.pulumi_cli import PulumiProject, require_bin_dir

pytestmark = [pytest.mark.cli, pytest.mark.slow]

SOFTWARE_KEY = "pulumi-python:dynamic/keys:SoftwareKey"
JWKS = Path("published/atlas/.well-known/jwks.json")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The shipped dev stack after one `pulumi up` through the Automation API."""
    from pulumi import automation as auto

    bin_dir = require_bin_dir()
    project = PulumiProject.create(tmp_path_factory.mktemp("automation"), bin_dir)
    command = auto.PulumiCommand(root=str(bin_dir.parent), skip_version_check=False)
    stack = auto.select_stack(
        "dev", work_dir=str(project.dir),
        opts=auto.LocalWorkspaceOptions(env_vars=project.env, pulumi_command=command),
    )
    result = stack.up()
    return project, stack, result


def test_up_creates_the_keys_and_publishes_the_documents(deployed):
    project, _stack, result = deployed
    assert result.summary.result == "succeeded"
    keysets = result.outputs["keysets"].value
    jwks = json.loads((project.dir / JWKS).read_text())
    assert keysets["atlas-gateway"]["activeKid"] in [k["kid"] for k in jwks["keys"]]
    assert [k["kid"] for k in jwks["keys"]] == ["atlas-2026-11-16", "atlas-2026-11-23"]
    for document in ("published/agent-manager/signers.json", "published/stellaops/trust-anchor.json",
                     "published/agent-manifest/trust-anchor.json",
                     "published/secrets-service/key-history.json"):
        assert (project.dir / document).is_file(), document
    resources = project.export()["deployment"]["resources"]
    keys = [r for r in resources if r["type"] == SOFTWARE_KEY]
    assert keys and all(r.get("protect") for r in keys)


def test_a_second_run_changes_nothing(deployed):
    project, stack, _ = deployed
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (project.dir / "published").rglob("*.json")}
    preview = stack.preview()
    assert set(preview.change_summary) == {"same"}
    project.pulumi("preview", "--expect-no-changes", "--stack", "dev")
    assert stack.up().summary.resource_changes == {"same": preview.change_summary["same"]}
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (project.dir / "published").rglob("*.json")}
    assert after == before, "a no-change `pulumi up` must write no document"


def test_refresh_finds_the_state_as_deployed(deployed):
    _project, stack, _ = deployed
    refresh = stack.refresh()
    assert refresh.summary.result == "succeeded"
    assert set(refresh.summary.resource_changes or {}) <= {"same"}
    assert set(stack.preview().change_summary) == {"same"}


def test_destroy_is_refused_by_the_protected_keys(deployed):
    from pulumi import automation as auto

    project, stack, _ = deployed
    with pytest.raises(auto.CommandError) as refused:
        stack.destroy()
    message = str(refused.value)
    assert "protected" in message and "atlas-gateway-2026-11-23-key" in message
    # Nothing was lost: the keys are still in the state and the documents are still published.
    resources = project.export()["deployment"]["resources"]
    generations = sum(len(k["generations"]) for k in stack_config("dev")["key-rotation:keysets"].values()
                      if k.get("backend", "software") == "software")
    assert sum(r["type"] == SOFTWARE_KEY for r in resources) == generations
    assert json.loads((project.dir / JWKS).read_text())["keys"]


def test_a_token_signed_with_the_active_dev_key_verifies_against_the_published_jwks(deployed):
    project, _stack, result = deployed
    active = result.outputs["keysets"].value["atlas-gateway"]["activeGeneration"]
    resources = project.export(show_secrets=True)["deployment"]["resources"]
    key = next(r for r in resources if r["type"] == SOFTWARE_KEY and r["outputs"]["keyset"] == "atlas-gateway"
               and r["outputs"]["generation"] == active)
    private_pem = key["outputs"]["private_key"]
    # A secret in `stack export --show-secrets`: {"4dabf...": ..., "plaintext"}.
    if isinstance(private_pem, dict):
        private_pem = json.loads(private_pem["plaintext"])
    kid = result.outputs["keysets"].value["atlas-gateway"]["activeKid"]
    token = jwt.encode({"sub": "gateway-client", "aud": "atlas"}, private_pem, algorithm="EdDSA",
                       headers={"kid": kid})
    jwks = jwt.PyJWKSet.from_json((project.dir / JWKS).read_text())
    signing_key = next(k for k in jwks.keys if k.key_id == jwt.get_unverified_header(token)["kid"])
    assert jwt.decode(token, signing_key, algorithms=["EdDSA"], audience="atlas")["sub"] == "gateway-client"


def test_the_readme_command_up_dev_runs_the_dev_stack_and_a_second_run_changes_nothing(tmp_path):
    """`bash scripts/up-dev.sh` as a user runs it in a fresh checkout: keys, documents, outputs."""
    bin_dir = require_bin_dir()
    project = PulumiProject(tmp_path / "checkout", bin_dir)
    copy_project(project.dir)
    shutil.copytree(ROOT / "tools", project.dir / "tools")
    (project.dir / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PULUMI_", "KEY_ROTATION_NOW"))}
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '')}", PULUMI_HOME=str(tmp_path / "home"), NO_COLOR="1")

    def up_dev() -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["bash", "scripts/up-dev.sh"], cwd=project.dir, env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    first = up_dev()
    outputs = json.loads(first.stdout[first.stdout.rindex("\n{") + 1:])
    kids = [k["kid"] for k in json.loads((project.dir / JWKS).read_text())["keys"]]
    assert outputs["keysets"]["atlas-gateway"]["activeKid"] in kids
    assert (project.dir / ".pulumi-state").is_dir(), "the local file backend is in the project"
    assert "encryptionsalt" in (project.dir / "Pulumi.dev.yaml").read_text()
    stack_file = (project.dir / "Pulumi.dev.yaml").read_bytes()

    second = up_dev()
    assert "unchanged" in second.stdout and "created" not in second.stdout.split("Resources:")[-1]
    assert (project.dir / "Pulumi.dev.yaml").read_bytes() == stack_file, "the stack file is left as it is"
    project.env = {**env, "PULUMI_BACKEND_URL": f"file://{project.dir / '.pulumi-state'}",
                   "PULUMI_CONFIG_PASSPHRASE": "key-rotation-dev", "PULUMI_SKIP_UPDATE_CHECK": "true",
                   "PATH": f"{Path(sys.prefix) / 'bin'}:{env['PATH']}"}
    project.pulumi("preview", "--expect-no-changes", "--stack", "dev")
