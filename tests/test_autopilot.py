"""`key-rotation autopilot`: every step that is due and safe, as one reviewable edit.

Each test runs the command as the workflow does (`--file F --now T --outputs O --json`) on its own
stack file and asserts what a reviewer and the workflow observe: the exit code, the JSON (checked
against schemas/autopilot.schema.json), the pull-request text and the stack file's lines.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyrotation.commands import autopilot, cli
from keyrotation.commands.cli import main
from keyrotation.config import ConfigError, load_stack_file
from keyrotation.lifecycle import State
from keyrotation.times import format_time, parse
from tests.deployed import outputs_for, write_outputs
from tests.json_schemas import validate

ROOT = Path(__file__).resolve().parents[1]

WEEKLY = """\
# A weekly key, pre-published: g3 waits for its turn while g2 signs.
config:
  key-rotation:environment: {environment}
  key-rotation:keysets:
    gw:
      purpose: sign
      algorithm: ES256
      kid: "gw-{{generation}}"
      maxAgeDays: 7
      warnDays: 2
      publish:
        - {{format: jwks, target: "file://published/gw/jwks.json"}}
{extra}      generations:
        - {{id: g1, state: retiring, createdAt: "2026-11-01T09:00:00Z", activatedAt: "2026-11-01T10:00:00Z",
           retiringAt: "2026-11-08T10:00:00Z"}}
        - {{id: g2, state: active, createdAt: "2026-11-01T10:00:00Z", activatedAt: "2026-11-08T10:00:00Z"}}
        - {{id: g3, state: pending, createdAt: "2026-11-08T10:00:00Z"}}
"""


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The machine's clock is the simulated one: autopilot edits at --now, never in the future."""
    state = {"now": datetime(2027, 12, 31, tzinfo=UTC)}
    monkeypatch.setattr(cli, "wall_clock", lambda: state["now"])
    return state


def weekly(tmp_path: Path, *, environment: str = "dev", extra: str = "", top: str = "") -> Path:
    path = tmp_path / f"Pulumi.{environment}.yaml"
    path.write_text(WEEKLY.format(environment=environment, extra=extra) + top)
    return path


def autopilot_cli(path: Path, now: str, *args: str, outputs: Path | None = None) -> tuple[int, dict, str]:
    out, err = io.StringIO(), io.StringIO()
    if outputs is None:
        outputs = write_outputs(path, path.with_name("outputs.json"))
    code = main(["autopilot", "--file", str(path), "--now", now, "--outputs", str(outputs), "--json", *args],
                out=out, err=err)
    data = json.loads(out.getvalue())
    validate(data, "autopilot")
    assert data["exitCode"] == code
    return code, data, err.getvalue()


def steps(data: dict) -> list[tuple[str, str, str]]:
    return [(s["keyset"], s["command"], s["generation"]) for s in data["steps"]]


# ---------------------------------------------------------------------------------------------
# The weekly cycle: one pull request a week


def test_before_its_time_nothing_is_due_and_it_says_when_the_next_step_falls_due(tmp_path):
    path = weekly(tmp_path)
    before = path.read_bytes()
    code, data, _ = autopilot_cli(path, "2026-11-14T08:00:00Z")
    assert code == autopilot.EXIT_NOTHING_DUE and data["result"] == "nothing due"
    # g2's promote was deployed 2026-11-08T10:00Z: due 7 days later; a day of slack and one run early.
    assert data["nextDueAt"] == "2026-11-14T09:00:00Z"
    assert path.read_bytes() == before and data["written"] is False
    assert data["file"] == str(path.resolve())
    promote = next(w for w in data["waiting"] if w["step"] == "promote")
    assert promote["at"] == "2026-11-14T09:00:00Z" and "slackHours 24" in promote["why"]


def test_the_promote_also_retires_the_old_key_and_pre_publishes_the_next_in_one_edit(tmp_path):
    path = weekly(tmp_path)
    code, data, _ = autopilot_cli(path, "2026-11-14T09:00:00Z")
    assert code == autopilot.EXIT_CHANGED and data["written"] is True
    assert steps(data) == [("gw", "promote", "g3"), ("gw", "rotate", "2026-11-14"), ("gw", "retire", "g1")]
    ks = load_stack_file(path).keysets["gw"]
    assert [(g.id, g.state) for g in ks.generations] == [
        ("g1", State.RETIRED), ("g2", State.RETIRING), ("g3", State.ACTIVE), ("2026-11-14", State.PENDING)]
    title, body = data["pullRequest"]["title"], data["pullRequest"]["body"]
    assert title == "key-rotation (dev): gw: promote g3, add pending 2026-11-14, retire g1"
    assert "## What changes and why" in body and "`promote g3`" in body
    assert "- gw: no gap" in body and data["gapCheck"] == {"gw": "no gap"}
    assert "```mermaid\ngantt" in body
    assert "Next step falls due" in body


def test_run_twice_at_the_same_time_the_second_run_changes_nothing(tmp_path):
    path = weekly(tmp_path)
    outputs = write_outputs(path, tmp_path / "outputs.json")  # the deployment before the first run
    autopilot_cli(path, "2026-11-14T09:00:00Z", outputs=outputs)
    after_first = path.read_bytes()
    code, data, _ = autopilot_cli(path, "2026-11-14T09:00:00Z", outputs=outputs)
    assert code == autopilot.EXIT_NOTHING_DUE and data["steps"] == []
    assert path.read_bytes() == after_first
    # What it waits for: the deployment of that change.
    assert {(w["step"], w["at"]) for w in data["waiting"]} >= {("promote", None), ("retire", None)}


def test_dry_run_prints_the_change_and_writes_nothing(tmp_path):
    path = weekly(tmp_path)
    before = path.read_bytes()
    code, data, _ = autopilot_cli(path, "2026-11-14T09:00:00Z", "--dry-run")
    assert code == autopilot.EXIT_CHANGED and data["written"] is False and len(data["steps"]) == 3
    assert path.read_bytes() == before


def test_the_edit_is_minimal_and_keeps_the_comments(tmp_path):
    path = weekly(tmp_path)
    before = path.read_text()
    autopilot_cli(path, "2026-11-14T09:00:00Z")
    after = path.read_text()
    assert after.startswith("# A weekly key, pre-published")
    removed = [line for line in before.splitlines() if line not in after.splitlines()]
    assert len(removed) <= 4  # the three generations' state lines (and a flow mapping's closing line)


def test_the_text_output_names_the_result_and_the_pull_request(tmp_path):
    path = weekly(tmp_path)
    outputs = write_outputs(path, tmp_path / "outputs.json")
    out, err = io.StringIO(), io.StringIO()
    code = main(["autopilot", "--file", str(path), "--now", "2026-11-14T09:00:00Z", "--outputs", str(outputs),
                 "--pr-body", str(tmp_path / "body.md")], out=out, err=err)
    assert code == 0
    text = out.getvalue()
    assert text.startswith(f"{path.name}: autopilot at 2026-11-14T09:00:00Z: changed\n")
    assert "title: key-rotation (dev): gw: promote g3" in text
    assert (tmp_path / "body.md").read_text().startswith("Autopilot for stack `dev`")


# ---------------------------------------------------------------------------------------------
# It waits for facts it can read, and never cuts corners


def test_without_the_stack_outputs_it_does_nothing_and_says_so(tmp_path):
    path = weekly(tmp_path)
    before = path.read_bytes()
    out, err = io.StringIO(), io.StringIO()
    code = main(["autopilot", "--file", str(path), "--now", "2026-11-14T09:00:00Z", "--no-outputs", "--json"],
                out=out, err=err)
    data = json.loads(out.getvalue())
    validate(data, "autopilot")
    assert code == autopilot.EXIT_BLOCKED and data["result"] == "blocked"
    assert data["blocked"] == [{"keyset": "gw", "step": "any",
                                "why": "cannot read the stack outputs (--no-outputs);"
                                       " it does nothing for this keyset"}]
    assert path.read_bytes() == before


def test_a_keyset_missing_from_the_outputs_is_left_alone(tmp_path):
    path = weekly(tmp_path)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"keysets": {}}))
    code, data, _ = autopilot_cli(path, "2026-11-14T09:00:00Z", outputs=outputs)
    assert code == autopilot.EXIT_BLOCKED
    assert "not in the stack outputs: not deployed yet" in data["blocked"][0]["why"]


def test_a_pending_key_not_yet_published_waits_for_the_deployment(tmp_path):
    path = weekly(tmp_path)
    stack = load_stack_file(path)
    data = outputs_for(stack)
    data["keysets"]["gw"]["documents"]["file://published/gw/jwks.json"]["firstPublished"].pop("gw-g3")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(data))
    code, result, _ = autopilot_cli(path, "2026-11-14T09:00:00Z", outputs=outputs)
    assert code == autopilot.EXIT_NOTHING_DUE
    promote = next(w for w in result["waiting"] if w["step"] == "promote")
    assert promote["at"] is None and "not published yet (file://published/gw/jwks.json)" in promote["why"]


def test_a_late_deployment_makes_it_wait_for_the_retire_never_force_it(tmp_path):
    """The promote is merged but its deployment is late (longer than the slack): the old key stays
    published; the retire waits for the deployment record, however long it takes."""
    path = weekly(tmp_path)
    outputs = write_outputs(path, tmp_path / "outputs.json")
    autopilot_cli(path, "2026-11-14T09:00:00Z", outputs=outputs)  # promote g3, retire g1, add the next
    for late in (2, 5, 9):  # days without a deployment
        code, data, _ = autopilot_cli(path, format_time(parse("2026-11-14T09:00:00Z") + timedelta(days=late)),
                                      outputs=outputs)
        assert code == autopilot.EXIT_NOTHING_DUE and data["steps"] == []
        retire = next(w for w in data["waiting"] if w["step"] == "retire")
        assert retire["at"] is None and "'g2': its switch to retiring is not deployed yet" in retire["why"]


def test_the_promote_waits_for_the_publish_lead_of_a_late_publication(tmp_path):
    path = weekly(tmp_path)
    stack = load_stack_file(path)
    late = parse("2026-11-14T08:58:00Z")  # g3 reached the JWKS only now
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(outputs_for(stack, published_at={"g3": late})))
    code, data, _ = autopilot_cli(path, "2026-11-14T09:00:00Z", outputs=outputs)
    assert code == autopilot.EXIT_NOTHING_DUE
    assert data["nextDueAt"] == "2026-11-14T09:04:00Z"  # first published + publish lead (6 minutes)


# ---------------------------------------------------------------------------------------------
# What it cannot do: a person must


def test_an_external_key_that_is_due_is_blocked_and_names_what_a_person_must_supply(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    path.write_text(text)
    code, data, _ = autopilot_cli(path, "2027-11-14T00:00:00Z")
    sm2 = next(b for b in data["blocked"] if b["keyset"] == "signer-sm2")
    assert sm2["step"] == "rotate"
    assert ("backend external: a person must supply the next public key"
            " (`rotate signer-sm2 --public-key FILE`)" in sm2["why"])
    # and before it is due it says by when
    path.write_text(text)
    _, early, _ = autopilot_cli(path, "2026-12-01T00:00:00Z")
    wait = next(w for w in early["waiting"] if w["keyset"] == "signer-sm2")
    assert wait["at"] == "2027-11-13T22:54:00Z"


def test_an_encryption_key_with_data_at_rest_waits_for_its_data(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text((ROOT / "Pulumi.dev.yaml").read_text())
    _, data, _ = autopilot_cli(path, "2026-11-24T10:00:00Z")
    secrets = next(b for b in data["blocked"] if b["keyset"] == "secrets-service")
    assert secrets["step"] == "retire" and "`rewrapped secrets-service q3 --by NAME`" in secrets["why"]
    assert ("secrets-service", "retire", "q3") not in steps(data)


def test_an_encryption_key_with_data_retention_retires_once_its_data_expired(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text((ROOT / "Pulumi.dev.yaml").read_text().replace(
        "    secrets-service:\n      purpose: encrypt\n",
        "    secrets-service:\n      purpose: encrypt\n      dataRetentionSeconds: 2592000\n"))
    # q3 stopped 2026-11-02T09:30Z; writers done 6 minutes later; data kept 30 days.
    _, data, _ = autopilot_cli(path, "2026-11-24T10:00:00Z", "--dry-run")
    wait = next(w for w in data["waiting"] if w["keyset"] == "secrets-service" and w["step"] == "retire")
    assert wait["at"] is None or wait["at"] >= "2026-12-02T09:36:00Z"
    _, later, _ = autopilot_cli(path, "2026-12-10T10:00:00Z")
    assert ("secrets-service", "retire", "q3") in steps(later)


# ---------------------------------------------------------------------------------------------
# destroyAfterDays


def test_destroy_after_days_destroys_a_retired_generation_once_its_retirement_was_deployed(tmp_path):
    path = weekly(tmp_path, extra="      destroyAfterDays: 3\n")
    outputs = write_outputs(path, tmp_path / "outputs.json")
    autopilot_cli(path, "2026-11-14T09:00:00Z", outputs=outputs)  # retires g1 (not deployed yet)
    deployed = write_outputs(path, tmp_path / "deployed.json",
                             deployed_at={("g1", "retired"): parse("2026-11-14T12:00:00Z")})
    code, data, _ = autopilot_cli(path, "2026-11-15T09:00:00Z", outputs=deployed)
    wait = next(w for w in data["waiting"] if w["step"] == "destroy")
    assert wait["at"] == "2026-11-17T12:00:00Z"  # deployed retirement + 3 days
    code, data, _ = autopilot_cli(path, "2026-11-17T12:00:00Z", "--dry-run", outputs=deployed)
    # alone it waits tidyAfterDays (7) more, unless it rides along with another change
    assert data["steps"] == [] and next(w for w in data["waiting"] if w["step"] == "destroy")["at"] \
        == "2026-11-24T12:00:00Z"
    code, data, _ = autopilot_cli(path, "2026-11-24T12:00:00Z", outputs=deployed)
    assert ("gw", "destroy", "g1") in steps(data)
    assert load_stack_file(path).keysets["gw"].generation("g1").state is State.DESTROYED


def test_destroy_after_days_is_validated_with_the_keyset_and_field_named(tmp_path):
    path = weekly(tmp_path, extra="      destroyAfterDays: -1\n")
    with pytest.raises(ConfigError) as error:
        load_stack_file(path)
    assert "gw" in str(error.value) and "destroyAfterDays" in str(error.value)
    path = weekly(tmp_path, extra="      destroyAfterDays: \"30\"\n")
    with pytest.raises(ConfigError, match="destroyAfterDays"):
        load_stack_file(path)


# ---------------------------------------------------------------------------------------------
# Staged promotion (seed 004: staging first, then production)

STAGED = "      staging: {stack: staging, keyset: gw-staging, soakHours: 24}\n"


def staging_outputs(tmp_path: Path, promoted_at: str | None) -> Path:
    deployments = {"s1": [{"state": "active", "at": "2026-11-01T00:00:00Z", "targets": []}]}
    if promoted_at:
        deployments["s2"] = [{"state": "pending", "at": "2026-11-07T00:00:00Z", "targets": []},
                             {"state": "active", "at": promoted_at, "targets": []}]
    path = tmp_path / "staging-outputs.json"
    path.write_text(json.dumps({"keysets": {"gw-staging": {"deployments": deployments}}}))
    return path


def test_production_promotes_only_after_staging_promoted_and_soaked(tmp_path):
    path = weekly(tmp_path, environment="production", extra=STAGED)
    before = path.read_bytes()
    # staging has not promoted since production's last promote (2026-11-08T10:00Z)
    code, data, _ = autopilot_cli(path, "2026-11-14T09:00:00Z", "--staging-outputs",
                                  str(staging_outputs(tmp_path, None)))
    assert code == autopilot.EXIT_NOTHING_DUE and path.read_bytes() == before
    wait = next(w for w in data["waiting"] if w["step"] == "promote")
    assert "waits for staging keyset 'gw-staging' (staging): a promote deployed after 2026-11-08T10:00:00Z" \
        in wait["why"] and wait["at"] is None
    # staging promoted 12 hours ago: it waits for the soak, and says until when
    code, data, _ = autopilot_cli(path, "2026-11-14T09:00:00Z", "--staging-outputs",
                                  str(staging_outputs(tmp_path, "2026-11-13T21:00:00Z")))
    wait = next(w for w in data["waiting"] if w["step"] == "promote")
    assert wait["at"] == "2026-11-14T21:00:00Z" and "to soak 24h, until 2026-11-14T21:00:00Z" in wait["why"]
    assert data["nextDueAt"] == "2026-11-14T21:00:00Z"
    # after the soak it promotes and names the staging fact
    code, data, _ = autopilot_cli(path, "2026-11-14T21:00:00Z", "--staging-outputs",
                                  str(staging_outputs(tmp_path, "2026-11-13T21:00:00Z")))
    assert ("gw", "promote", "g3") in steps(data)
    assert any("staging fact: staging keyset 'gw-staging' (staging):"
               " a promote deployed at 2026-11-13T21:00:00Z" in n for n in data["notes"])


def test_a_staged_keyset_without_staging_outputs_is_blocked(tmp_path):
    path = weekly(tmp_path, environment="production", extra=STAGED)
    out, err = io.StringIO(), io.StringIO()
    outputs = write_outputs(path, tmp_path / "outputs.json")
    code = main(["autopilot", "--file", str(path), "--now", "2026-11-14T09:00:00Z", "--outputs", str(outputs),
                 "--staging-outputs", str(tmp_path / "missing.json"), "--json"], out=out, err=err)
    assert code == 1 and "cannot read the stack outputs" in err.getvalue()


def test_staging_must_name_another_stack(tmp_path):
    path = weekly(tmp_path, environment="staging", extra="      staging: {stack: staging, keyset: gw}\n")
    with pytest.raises(ConfigError, match="staging.stack 'staging' is this stack's own environment"):
        load_stack_file(path)


# ---------------------------------------------------------------------------------------------
# Auto-merge: the stack's setting


@pytest.mark.parametrize(("environment", "top", "expected"), [
    ("dev", "", True), ("staging", "", True), ("production", "", False),
    ("production", "  key-rotation:autopilot: {autoMerge: true}\n", True),
    ("dev", "  key-rotation:autopilot: {autoMerge: false}\n", False),
])
def test_auto_merge_defaults_to_every_environment_but_production(tmp_path, environment, top, expected):
    path = weekly(tmp_path, environment=environment)
    text = path.read_text().replace("  key-rotation:keysets:\n", top + "  key-rotation:keysets:\n")
    path.write_text(text)
    _, data, _ = autopilot_cli(path, "2026-11-14T08:00:00Z")
    assert data["autoMerge"] is expected


def test_the_exit_code_table_names_autopilot():
    assert "autopilot: nothing is due" in cli.EXIT_CODES and "autopilot: nothing changed" in cli.EXIT_CODES
    assert cli.EXIT_AUTOPILOT_NOTHING_DUE == autopilot.EXIT_NOTHING_DUE
    assert cli.EXIT_AUTOPILOT_BLOCKED == autopilot.EXIT_BLOCKED


def test_when_staging_is_behind_and_the_key_falls_due_a_person_is_asked(tmp_path):
    path = weekly(tmp_path, environment="production", extra=STAGED)
    # g2 is due 2026-11-15T10:00Z; staging has not promoted since, and a day's soak no longer fits.
    code, data, _ = autopilot_cli(path, "2026-11-14T12:00:00Z", "--staging-outputs",
                                  str(staging_outputs(tmp_path, None)))
    assert code == autopilot.EXIT_BLOCKED
    blocked = next(b for b in data["blocked"] if b["step"] == "promote")
    assert "staging is behind, a person must decide" in blocked["why"]
    assert "due 2026-11-15T10:00:00Z" in blocked["why"]


def test_diff_shows_the_state_lines_that_change(tmp_path):
    path = weekly(tmp_path)
    outputs = write_outputs(path, tmp_path / "outputs.json")
    out = io.StringIO()
    code = main(["autopilot", "--file", str(path), "--now", "2026-11-14T09:00:00Z", "--outputs", str(outputs),
                 "--dry-run", "--diff"], out=out, err=io.StringIO())
    assert code == 0
    diff = out.getvalue()[out.getvalue().index("--- a/Pulumi.dev.yaml"):]
    assert "-        - {id: g3, state: pending" in diff and "+        - {id: g3, state: active" in diff
