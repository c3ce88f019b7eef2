"""A whole rotation through the real Pulumi engine and the real rotation commands.

The commands read `pulumi stack output --json` themselves (the CLI is on PATH, as for a user), and
nothing moves the clock: the gateway keyset gets a publish lead and an overlap of seconds, so the
refusals and the waits are real.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.pulumi_cli import PulumiProject, require_bin_dir

pytestmark = [pytest.mark.cli, pytest.mark.slow]

KEYSET = "atlas-gateway"
JWKS = Path("published/atlas/.well-known/jwks.json")
SOFTWARE_KEY = "pulumi-python:dynamic/keys:SoftwareKey"
# publish lead = 40 + 5 = 45 s (longer than a `pulumi up` on a busy machine, so that the promote
# right after it is refused); overlap = 5 + 40 + 5 = 50 s.
FAST = {"publishMaxAgeSeconds": 40, "clockSkewSeconds": 5, "tokenLifetimeSeconds": 5}


def _fast_gateway(stack_file: Path) -> None:
    yaml = YAML()
    document = yaml.load(stack_file.read_text())
    document["config"]["key-rotation:keysets"][KEYSET].update(FAST)
    with stack_file.open("w") as out:
        yaml.dump(document, out)


def _kids(project: PulumiProject) -> list[str]:
    return [k["kid"] for k in json.loads((project.dir / JWKS).read_text())["keys"]]


def _until_allowed(project: PulumiProject, *command: str, limit: float = 120) -> str:
    """Run an editing command until its refusal (a wait for a timing) has passed."""
    deadline = time.monotonic() + limit
    while True:
        done = project.keyrotation(*command, "--stack", "dev", check=False)
        if done.returncode == 0:
            return done.stdout
        assert time.monotonic() < deadline, f"{command} still refused:\n{done.stdout}{done.stderr}"
        time.sleep(2)


def _generation(project: PulumiProject, gid: str) -> dict:
    resources = project.export()["deployment"]["resources"]
    return next(r for r in resources if r["type"] == SOFTWARE_KEY and r["outputs"]["keyset"] == KEYSET
                and r["outputs"]["generation"] == gid)


@pytest.fixture
def project(tmp_path):
    project = PulumiProject.create(tmp_path, require_bin_dir())
    _fast_gateway(project.dir / "Pulumi.dev.yaml")
    return project


def test_rotate_promote_retire_through_the_engine(project):
    project.up()
    before = _kids(project)
    old_active = project.outputs()["keysets"][KEYSET]["activeGeneration"]

    rotated = json.loads(project.keyrotation("rotate", KEYSET, "--stack", "dev", "--json").stdout)
    new = rotated["changes"][0]["generation"]
    project.up()
    assert _kids(project) == [*before, f"atlas-{new}"], "the pending key is pre-published beside the others"
    published = project.outputs()["keysets"][KEYSET]["documents"][f"file://{JWKS}"]["firstPublished"]
    assert f"atlas-{new}" in published

    # The publish lead counts from the publisher's record, read from `pulumi stack output`.
    refused = project.keyrotation("promote", KEYSET, "--stack", "dev", check=False)
    assert refused.returncode != 0
    assert "refused: first published" in refused.stderr
    stack_file = (project.dir / "Pulumi.dev.yaml").read_text()
    _until_allowed(project, "promote", KEYSET)
    assert (project.dir / "Pulumi.dev.yaml").read_text() != stack_file
    project.up()
    outputs = project.outputs()["keysets"][KEYSET]
    assert outputs["activeGeneration"] == new
    assert {g["id"]: g["state"] for g in outputs["generations"]}[old_active] == "retiring"
    assert f"atlas-{old_active}" in _kids(project), "the previous key stays published for the overlap"

    refused = project.keyrotation("retire", KEYSET, old_active, "--stack", "dev", check=False)
    assert refused.returncode != 0
    assert "refused" in refused.stderr, refused.stderr
    _until_allowed(project, "retire", KEYSET, old_active)
    project.up()
    assert f"atlas-{old_active}" not in _kids(project), "a retired key leaves the JWKS"
    assert f"atlas-{new}" in _kids(project)
    # Its key is disabled, not gone: still in the state with its public key, no longer published.
    retired = _generation(project, old_active)
    assert retired["outputs"]["state"] == "retired"
    assert retired["outputs"]["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert retired.get("protect")
    project.pulumi("preview", "--expect-no-changes", "--stack", "dev")


def test_an_invalid_stack_file_stops_the_engine_with_the_message_and_no_traceback(project):
    stack_file = project.dir / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("    maxAgeDays: 90\n", "    maxAgeDays: -3\n", 1))
    done = project.pulumi("up", "--yes", "--stack", "dev", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Pulumi.dev.yaml: invalid key-rotation configuration" in output
    assert "field 'defaults.maxAgeDays'" in output
    assert "Traceback" not in output
    assert project.export()["deployment"].get("resources") in (None, []), "nothing was registered"


def test_a_publishing_failure_is_one_line_naming_the_target_under_the_engine(project):
    (project.dir / JWKS).mkdir(parents=True)  # a directory where the JWKS belongs
    done = project.pulumi("up", "--yes", "--skip-preview", "--stack", "dev", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    failure = [line for line in output.splitlines() if f"file://{JWKS}" in line and "error" in line.lower()]
    assert failure, output
    assert "Traceback" not in output and 'File "' not in output, output
    assert "is a directory" in failure[0] or "not a file" in failure[0], failure
    # Nothing was written into, or removed from, what stands where the JWKS belongs.
    assert (project.dir / JWKS).is_dir() and not any((project.dir / JWKS).iterdir())
