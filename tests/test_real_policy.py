"""The policy pack under the real Pulumi engine: `pulumi preview --policy-pack ...` on the dev stack.

The pack runs as the CLI starts it (policy/analyzer, an executable analyzer plugin), gets the stack's
config from the engine (ConfigureStack) and judges each keyset by its own `maxAgeDays` from the stack
file, held to the environment's ceilings in policy/config/dev.json. Its clock is moved with
KEY_ROTATION_NOW, which the CLI passes on to the pack's process.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from keyrotation.config import KeySetConfig, load_stack_file
from keyrotation.times import format_time
from tests.pulumi_cli import PulumiProject, require_bin_dir

pytestmark = [pytest.mark.cli, pytest.mark.slow]

PACK = ("--policy-pack", "policy/analyzer", "--policy-pack-config", "policy/config/dev.json")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = PulumiProject.create(tmp_path_factory.mktemp("policy"), require_bin_dir())
    project.up()
    return project


def _preview(project: PulumiProject, now) -> tuple[int, str]:
    done = project.pulumi("preview", "--stack", "dev", *PACK, check=False,
                          extra_env={"KEY_ROTATION_NOW": format_time(now)})
    return done.returncode, done.stdout + done.stderr


def _named(output: str, policy: str) -> set[str]:
    """Keysets named by the violations of one policy in the CLI's policy report."""
    named, current = set(), None
    for line in output.splitlines():
        header = re.search(r"\[(mandatory|advisory)\].*?\s(\S+)\s+\(", line)
        if header:
            current = header.group(2)
            continue
        if current == policy:
            named.update(re.findall(r"keyset '([^']+)'", line))
    return named


def _activated(keyset: KeySetConfig) -> datetime:
    """When the keyset's active generation was activated (the shipped stack file records it)."""
    activated = keyset.active.activated_at
    assert activated is not None, keyset.name
    return activated


def test_the_shipped_dev_stack_passes_the_pack(project):
    stack = load_stack_file(project.dir / "Pulumi.dev.yaml")
    # An hour after the newest activation: every active key is within its maximum age.
    now = max(_activated(ks) for ks in stack.keysets.values()) + timedelta(hours=1)
    code, output = _preview(project, now)
    assert code == 0, output
    assert "key-rotation@v0.1.0" in output and "[mandatory]" not in output


def test_past_the_maximum_age_the_preview_fails_naming_every_managed_keyset(project):
    stack = load_stack_file(project.dir / "Pulumi.dev.yaml")
    due = {name: _activated(ks) + ks.timings.max_age for name, ks in stack.keysets.items()}
    code, output = _preview(project, max(due.values()) + timedelta(days=1))
    assert code != 0
    # Every keyset whose key the program manages; an external key (an HSM's, declared by its
    # public key) has no key resource for the pack to judge: `key-rotation status` reports its age.
    managed = {name for name, ks in stack.keysets.items() if ks.backend != "external"}
    assert _named(output, "key-max-age") == managed, output
    # The limits are the stack file's own (the gateway's 7 days), read from the engine's config.
    assert "the maximum age is 7 days (Pulumi.dev.yaml keysets.atlas-gateway)" in output
    assert "--stack dev" in output, "the pack knows the stack's name from the engine"


def test_a_keyset_past_its_own_limit_only_is_the_only_one_named(project):
    stack = load_stack_file(project.dir / "Pulumi.dev.yaml")
    gateway = stack.keysets["atlas-gateway"]
    code, output = _preview(project, _activated(gateway) + gateway.timings.max_age
                            + timedelta(hours=1))
    assert code != 0
    assert _named(output, "key-max-age") == {"atlas-gateway"}, output
