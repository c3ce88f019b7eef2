"""The deployment record through the real Pulumi CLI: the commands read `pulumi stack output`.

rotate -> `pulumi up` -> promote -> `pulumi up` -> retire on a private copy of the dev stack. The
rotation commands find the CLI on PATH and ask it for the stack outputs themselves; the publish
lead counts from the publisher's record of the first `up`, the overlap from the deployment record
of the second (the publisher's and the record's clock pinned with KEY_ROTATION_NOW).
"""

from __future__ import annotations

import pytest

from tests.pulumi_cli import PulumiProject, require_bin_dir

pytestmark = [pytest.mark.cli, pytest.mark.slow]


def test_the_commands_count_from_what_pulumi_up_recorded(tmp_path):
    project = PulumiProject.create(tmp_path, require_bin_dir())

    def up(at: str) -> None:
        project.pulumi("up", "--yes", "--skip-preview", "--stack", "dev", extra_env={"KEY_ROTATION_NOW": at})

    def command(*args: str, now: str):
        return project.keyrotation(*args, "--stack", "dev", "--now", now, check=False)

    up("2026-11-23T12:00:00Z")
    assert command("rotate", "atlas-gateway", "--id", "next", now="2026-11-24T09:00:00Z").returncode == 0
    up("2026-11-24T10:00:00Z")
    refused = command("promote", "atlas-gateway", now="2026-11-24T10:05:00Z")
    assert refused.returncode == 1
    assert "first published 2026-11-24T10:00:00Z (pulumi stack output --stack dev)" in refused.stderr
    assert command("promote", "atlas-gateway", now="2026-11-24T10:06:00Z").returncode == 0
    up("2026-11-24T13:00:00Z")
    outputs = project.outputs()["keysets"]["atlas-gateway"]["deployments"]
    assert (outputs["2026-11-23"][-1]["state"] == "retiring" and outputs["2026-11-23"][-1]["at"]
            == "2026-11-24T13:00:00Z")
    refused = command("retire", "atlas-gateway", "2026-11-23", now="2026-11-24T13:01:00Z")
    assert refused.returncode == 1
    assert "deployed 2026-11-24T13:00:00Z (pulumi stack output --stack dev)" in refused.stderr
    assert "Retire allowed from 2026-11-24T14:06:00Z" in refused.stderr
    assert command("retire", "atlas-gateway", "2026-11-23", now="2026-11-24T14:06:00Z").returncode == 0
    up("2026-11-24T14:10:00Z")
    assert (project.outputs()["keysets"]["atlas-gateway"]["deployments"]["2026-11-23"][-1]["state"]
            == "retired")
