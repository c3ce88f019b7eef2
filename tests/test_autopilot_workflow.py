"""The autopilot workflow's key facts: hourly, per cloud stack, one labelled pull request per stack
through a maintained action pinned to a released version, auto-merge only where the stack allows."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import yaml

from keyrotation.commands import cli
from keyrotation.commands.cli import main
from tests.deployed import write_outputs

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github/workflows/autopilot.yml"


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps() -> list[dict]:
    return workflow()["jobs"]["autopilot"]["steps"]


def step(name_part: str) -> dict:
    return next(s for s in steps() if name_part in s.get("name", "") or name_part in s.get("uses", ""))


def test_it_runs_hourly_and_on_demand():
    triggers = workflow()[True]  # YAML 1.1 reads `on:` as true
    assert triggers["schedule"] == [{"cron": "17 * * * *"}]
    assert "workflow_dispatch" in triggers


def test_it_runs_per_cloud_stack_with_that_stacks_read_only_credentials():
    job = workflow()["jobs"]["autopilot"]
    assert job["strategy"]["matrix"]["stack"] == ["staging", "production"]
    assert job["environment"] == "${{ matrix.stack }}-preview"
    assert job["concurrency"]["group"] == "autopilot-${{ matrix.stack }}"
    run = step("Read the stack outputs")["run"]
    assert 'pulumi stack output --json --stack "$STACK_NAME"' in run
    assert "pulumi stack output --json --stack staging" in run
    command = step("key-rotation autopilot")["run"]
    assert "-m keyrotation autopilot --stack \"$STACK\" --outputs" in command and "--json" in command
    assert "case \"$code\" in 0|7|8)" in command


def test_one_labelled_pull_request_per_stack_with_a_pinned_released_action():
    pr = step("create-pull-request")
    assert re.fullmatch(r"peter-evans/create-pull-request@v\d+\.\d+\.\d+", pr["uses"])
    assert pr["with"]["branch"] == "key-rotation/autopilot-${{ matrix.stack }}"
    assert pr["with"]["add-paths"] == "Pulumi.${{ matrix.stack }}.yaml"
    assert pr["with"]["labels"].splitlines() == ["key-rotation", "autopilot", "${{ matrix.stack }}"]
    assert pr["with"]["body-path"] == "${{ runner.temp }}/body.md"
    assert pr["with"]["token"] == "${{ secrets.AUTOPILOT_TOKEN }}"
    for s in steps():
        if "uses" in s:
            assert re.search(r"@v\d+", s["uses"]), s["uses"]


def test_auto_merge_only_where_the_stack_file_allows_it(monkeypatch, tmp_path):
    merge = step("Auto-merge")
    assert "steps.autopilot.outputs.auto-merge == 'true'" in merge["if"]
    assert merge["run"] == 'gh pr merge --auto --squash "$PR"'
    assert "auto-merge=$(jq -r .autoMerge" in step("key-rotation autopilot")["run"]
    # What autopilot says for the shipped stacks: staging may, production needs a reviewer.
    monkeypatch.setattr(cli, "wall_clock", lambda: cli.parse_time("2026-11-24T12:00:00Z", "clock"))
    allowed = {}
    for stack in ("staging", "production"):
        path = tmp_path / f"Pulumi.{stack}.yaml"
        path.write_text((ROOT / path.name).read_text())
        outputs = write_outputs(path, tmp_path / f"{stack}.json")
        staging = write_outputs(tmp_path / "Pulumi.staging.yaml", tmp_path / "staging-outputs.json")
        out = io.StringIO()
        main(["autopilot", "--file", str(path), "--now", "2026-11-24T12:00:00Z", "--outputs", str(outputs),
              "--staging-outputs", str(staging), "--json", "--dry-run"], out=out, err=io.StringIO())
        allowed[stack] = json.loads(out.getvalue())["autoMerge"]
    assert allowed == {"staging": True, "production": False}


def test_a_blocked_run_fails_visibly_after_the_pull_request_step():
    names = [s.get("name", s.get("uses")) for s in steps()]
    blocked = step("Blocked steps need a person")
    assert blocked["if"] == "steps.autopilot.outputs.exit-code == '8'"
    assert names.index("Blocked steps need a person") > names.index("Open or update the stack's pull request")
