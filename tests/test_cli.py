"""The rotation commands as a user runs them: `python -m keyrotation ... --file F --now T`.

Each test works on its own copy of a stack file written in the dev stack's style (comments,
flow-mapping generations) and asserts what a user observes: the exit code, the printed message,
and the stack file's bytes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from keyrotation.commands.cli import main
from keyrotation.config import load_stack_file
from keyrotation.lifecycle import State
from tests.deployed import write_outputs

ROOT = Path(__file__).resolve().parents[1]

STACK = """\
# A stack in the dev stack's style: comments and flow mappings must survive every edit.
config:
  key-rotation:environment: dev
  key-rotation:defaults:
    publishMaxAgeSeconds: 300   # verifiers cache the JWKS this long
    clockSkewSeconds: 60
    tokenLifetimeSeconds: 3600
  key-rotation:keysets:
    # The gateway's weekly keys.
    atlas-gateway:
      purpose: sign
      algorithm: EdDSA
      maxAgeDays: 7
      warnDays: 2
      kid: "atlas-{generation}"
      publish:
        - {format: jwks, target: "file://published/atlas/.well-known/jwks.json"}
      generations:
        - {id: "2026-11-16", state: retiring, createdAt: "2026-11-16T09:00:00Z",
           activatedAt: "2026-11-16T09:10:00Z", retiringAt: "2026-11-23T09:10:00Z"}
        - {id: "2026-11-23", state: active, createdAt: "2026-11-23T09:00:00Z",
           activatedAt: "2026-11-23T09:10:00Z"}
    # Signing keys with a key history.
    signer:
      purpose: sign
      algorithm: ES256
      maxAgeDays: 365
      warnDays: 30
      kid: "key-{generation}-{environment}"
      publish:
        - {format: trust-anchor, target: "file://published/stellaops/trust-anchor.json"}
        - {format: key-history, target: "file://published/stellaops/key-history.json"}
      generations:
        - {id: "2025", state: retired, createdAt: "2025-01-15T00:00:00Z",
           activatedAt: "2025-01-20T00:00:00Z", retiringAt: "2026-01-20T00:00:00Z",
           retiredAt: "2026-02-20T00:00:00Z"}
        - {id: "2026", state: active, createdAt: "2026-01-15T00:00:00Z",
           activatedAt: "2026-01-20T00:00:00Z"}
        - {id: "2027", state: pending, createdAt: "2026-11-20T00:00:00Z"}
"""

NOW = "2026-11-25T12:00:00Z"


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(STACK)
    return path


def run(path: Path, *args: str, now: str = NOW) -> tuple[int, str, str]:
    """The command, with the stack outputs of a `pulumi up` right after every earlier change."""
    out, err = io.StringIO(), io.StringIO()
    outputs = write_outputs(path, path.with_name("outputs-deployed.json"))
    code = main([*args, "--file", str(path), "--now", now, "--outputs", str(outputs)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    old, new = before.splitlines(), after.splitlines()
    return [line for line in old if line not in new], [line for line in new if line not in old]


def generation(path: Path, keyset: str, gid: str):
    return load_stack_file(path).keysets[keyset].generation(gid)


# ---------------------------------------------------------------------------------------------
# rotate


def test_rotate_appends_one_pending_generation_in_its_neighbours_style(stack):
    code, out, _ = run(stack, "rotate", "atlas-gateway")
    assert code == 0
    removed, added = changed_lines(STACK, stack.read_text())
    assert removed == []
    assert added == ['        - {id: "2026-11-25", state: pending, createdAt: "2026-11-25T12:00:00Z"}']
    assert "+ generation '2026-11-25': state pending, createdAt 2026-11-25T12:00:00Z" in out
    assert "promote it from 2026-11-25T12:06:00Z" in out
    assert generation(stack, "atlas-gateway", "2026-11-25").state is State.PENDING


def test_rotate_with_an_id_and_a_second_rotation_is_refused_while_one_is_pending(stack):
    assert run(stack, "rotate", "atlas-gateway", "--id", "w48")[0] == 0
    before = stack.read_bytes()
    code, _, err = run(stack, "rotate", "atlas-gateway")
    assert code == 1
    assert "generation 'w48': is already pending" in err
    assert "promote it (from 2026-11-25T12:06:00Z)" in err
    assert stack.read_bytes() == before


def test_rotate_refuses_a_taken_id(stack):
    code, _, err = run(stack, "rotate", "atlas-gateway", "--id", "2026-11-16")
    assert code == 1
    assert "generation id '2026-11-16' is taken" in err


def test_dry_run_prints_the_change_and_the_diff_without_writing(stack):
    code, out, _ = run(stack, "rotate", "atlas-gateway", "--dry-run", "--diff")
    assert code == 0
    assert stack.read_text() == STACK
    assert "(dry run: not written)" in out
    assert '+        - {id: "2026-11-25", state: pending, createdAt: "2026-11-25T12:00:00Z"}' in out


# ---------------------------------------------------------------------------------------------
# promote


def rotated(stack: Path, at: str = "2026-11-25T12:00:00Z") -> None:
    assert run(stack, "rotate", "atlas-gateway", now=at)[0] == 0


def test_promote_is_refused_before_the_publish_lead_and_says_when_it_is_allowed(stack):
    rotated(stack)
    before = stack.read_bytes()
    code, out, err = run(stack, "promote", "atlas-gateway", now="2026-11-25T12:05:59Z")
    assert code == 1 and out == ""
    assert "keyset 'atlas-gateway', generation '2026-11-25': refused" in err
    assert "Promote allowed from 2026-11-25T12:06:00Z (in 1s)" in err
    assert "--force" in err
    assert stack.read_bytes() == before


def test_promote_at_the_publish_lead_switches_active_and_retiring(stack):
    rotated(stack)
    before = stack.read_text()
    code, out, _ = run(stack, "promote", "atlas-gateway", now="2026-11-25T12:06:00Z")
    assert code == 0
    removed, added = changed_lines(before, stack.read_text())
    assert added == [
        '        - {id: "2026-11-23", state: retiring, createdAt: "2026-11-23T09:00:00Z",',
        '           activatedAt: "2026-11-23T09:10:00Z", retiringAt: "2026-11-25T12:06:00Z"}',
        '        - {id: "2026-11-25", state: active, createdAt: "2026-11-25T12:00:00Z",',
        '           activatedAt: "2026-11-25T12:06:00Z"}',
    ]
    assert len(removed) == 3
    assert "~ generation '2026-11-23': state active -> retiring, retiringAt 2026-11-25T12:06:00Z" in out
    assert "~ generation '2026-11-25': state pending -> active, activatedAt 2026-11-25T12:06:00Z" in out
    assert "retire it from 2026-11-25T13:12:00Z" in out


def test_promote_force_says_what_risk_it_takes(stack):
    rotated(stack)
    code, out, _ = run(stack, "promote", "atlas-gateway", "--force", now="2026-11-25T12:01:00Z")
    assert code == 0
    assert "warning: --force: promoted 5m before the publish lead passed" in out
    # ... and the gap check shows the interval in which verifiers may reject the new key
    assert ("gap: keyset 'atlas-gateway', generation '2026-11-25' was used before every verifier could have"
            " fetched it: verifiers may reject valid signatures from 2026-11-25T12:00:00Z to"
            " 2026-11-25T12:05:00Z") in out


def outputs_file(tmp_path: Path, first_published: dict[str, str | int] | None) -> Path:
    generations = [{"id": g, "kid": f"atlas-{g}", "state": "x"} for g in ("2026-11-16", "2026-11-23",
                                                                          "2026-11-25")]
    published = {"atlas-2026-11-16": "2026-11-16T09:02:00Z", "atlas-2026-11-23": "2026-11-23T09:03:00Z",
                 **(first_published or {})}
    data = {"keysets": {"atlas-gateway": {
        "generations": generations,
        "documents": {"file://published/atlas/.well-known/jwks.json": {
            "format": "jwks", "target": "file://published/atlas/.well-known/jwks.json",
            "firstPublished": published}},
    }}}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data))
    return path


def test_promote_counts_the_publish_lead_from_the_publishers_record(stack, tmp_path):
    rotated(stack)
    outputs = outputs_file(tmp_path, {"atlas-2026-11-25": "2026-11-25T12:30:00Z"})
    out, err = io.StringIO(), io.StringIO()
    args = ["promote", "atlas-gateway", "--file", str(stack), "--outputs", str(outputs)]
    assert main([*args, "--now", "2026-11-25T12:10:00Z"], out=out, err=err) == 1
    assert f"first published 2026-11-25T12:30:00Z ({outputs})" in err.getvalue()
    assert "Promote allowed from 2026-11-25T12:36:00Z" in err.getvalue()
    out = io.StringIO()
    assert main([*args, "--now", "2026-11-25T12:36:00Z"], out=out, err=err) == 0
    assert "no publisher record" not in out.getvalue()


def test_promote_refuses_a_generation_the_published_document_does_not_list(stack, tmp_path):
    rotated(stack)
    outputs = outputs_file(tmp_path, None)
    before = stack.read_bytes()
    err = io.StringIO()
    code = main(["promote", "atlas-gateway", "--file", str(stack), "--outputs", str(outputs),
                 "--now", "2026-11-26T00:00:00Z"], out=io.StringIO(), err=err)
    assert code == 1
    assert "is not published yet at file://published/atlas/.well-known/jwks.json" in err.getvalue()
    assert "`pulumi up`" in err.getvalue()
    assert stack.read_bytes() == before


def test_promote_without_a_pending_generation_says_to_rotate(stack):
    code, _, err = run(stack, "promote", "atlas-gateway")
    assert code == 1
    assert "no pending generation to promote; run `rotate atlas-gateway` first" in err


# ---------------------------------------------------------------------------------------------
# retire, destroy


def test_retire_is_refused_before_the_overlap_and_allowed_after(stack):
    rotated(stack)
    run(stack, "promote", "atlas-gateway", now="2026-11-25T12:06:00Z")
    code, _, err = run(stack, "retire", "atlas-gateway", "2026-11-23", now="2026-11-25T13:11:59Z")
    assert code == 1
    assert "Retire allowed from 2026-11-25T13:12:00Z (in 1s)" in err
    code, out, _ = run(stack, "retire", "atlas-gateway", "2026-11-23", now="2026-11-25T13:12:00Z")
    assert code == 0
    assert "~ generation '2026-11-23': state retiring -> retired, retiredAt 2026-11-25T13:12:00Z" in out
    assert generation(stack, "atlas-gateway", "2026-11-23").state is State.RETIRED


def test_retire_of_an_active_generation_is_a_forbidden_transition(stack):
    before = stack.read_bytes()
    code, _, err = run(stack, "retire", "atlas-gateway", "2026-11-23")
    assert code == 1
    assert "generation '2026-11-23': cannot go from 'active' to 'retired'" in err
    assert "allows: retiring, revoked" in err
    assert stack.read_bytes() == before


def test_destroy_needs_the_generation_id_as_confirmation(stack):
    code, _, err = run(stack, "destroy", "signer", "2025")
    assert code == 1
    assert "--confirm 2025" in err
    code, out, _ = run(stack, "destroy", "signer", "2025", "--confirm", "2025")
    assert code == 0
    assert "state retired -> destroyed, destroyedAt 2026-11-25T12:00:00Z" in out
    assert "public key stays in the key history" in out


# ---------------------------------------------------------------------------------------------
# revoke, rollback


def test_revoke_for_compromise_promotes_the_pending_generation_at_once(stack):
    code, out, _ = run(stack, "revoke", "signer", "2026", "--reason", "compromise")
    assert code == 0
    assert ("~ generation '2026': state active -> revoked, revokedAt 2026-11-25T12:00:00Z, revokeReason "
            "compromise" in out)
    assert "~ generation '2027': state pending -> active, activatedAt 2026-11-25T12:00:00Z" in out
    assert "tokens: everything signed with key-2026-dev" in out
    assert "made since 2026-11-25T11:00:00Z are still within tokenLifetimeSeconds" in out
    assert ("documents: trust-anchor at file://published/stellaops/trust-anchor.json no longer contains it"
            in out)
    assert "documents: key-history at file://published/stellaops/key-history.json lists it as revoked" in out
    assert "emergency rotation: promoted the pending generation '2027' at once" in out
    signer = load_stack_file(stack).keysets["signer"]
    assert [(g.id, g.state) for g in signer.generations] == [
        ("2025", State.RETIRED), ("2026", State.REVOKED), ("2027", State.ACTIVE)]


def test_revoke_for_compromise_without_a_pending_generation_creates_one(stack):
    code, out, _ = run(stack, "revoke", "atlas-gateway", "2026-11-23", "--reason", "compromise", "--id", "e1")
    assert code == 0
    removed, added = changed_lines(STACK, stack.read_text())
    assert added[-2:] == ['        - {id: "e1", state: active, createdAt: "2026-11-25T12:00:00Z",',
                          '           activatedAt: "2026-11-25T12:00:00Z", trigger: compromise}']
    assert "created and activated 'e1' at once, without the publish lead" in out
    assert "the intended cost of a compromise revocation" in out


def test_revoke_for_personnel_of_the_active_key_is_refused_with_the_gap_free_path(stack):
    before = stack.read_bytes()
    code, _, err = run(stack, "revoke", "atlas-gateway", "2026-11-23", "--reason", "personnel")
    assert code == 1
    assert "refused: revoking it now for 'personnel' makes verifiers reject signatures" in err
    assert "`rotate atlas-gateway`, `promote atlas-gateway` after the publish lead (6m)" in err
    assert stack.read_bytes() == before
    code, out, _ = run(stack, "revoke", "atlas-gateway", "2026-11-23", "--reason", "personnel", "--force")
    assert code == 0
    assert "warning: --force: '2026-11-23' revoked for 'personnel' before the overlap passed" in out


def test_revoke_of_a_retiring_generation_after_its_overlap_is_plain(stack):
    code, out, _ = run(stack, "revoke", "atlas-gateway", "2026-11-16", "--reason", "superseded")
    assert code == 0
    assert "warning" not in out
    assert "key-history verifiers still accept those made before 2026-11-25T12:00:00Z" in out


def test_rollback_reactivates_the_previous_generation_as_a_new_period_and_keeps_the_new_one_retiring(stack):
    rotated(stack)
    run(stack, "promote", "atlas-gateway", now="2026-11-25T12:06:00Z")
    before = stack.read_text()
    code, out, _ = run(stack, "rollback", "atlas-gateway", now="2026-11-25T12:30:00Z")
    assert code == 0, out
    removed, added = changed_lines(before, stack.read_text())
    # nothing recorded is removed: the first period's retiringAt stays, the new period is appended
    assert added == [
        '        - {id: "2026-11-23", state: active, createdAt: "2026-11-23T09:00:00Z",',
        '           activatedAt: "2026-11-23T09:10:00Z", retiringAt: "2026-11-25T12:06:00Z",',
        '           history: [{state: active, at: "2026-11-25T12:30:00Z"}]}',
        '        - {id: "2026-11-25", state: retiring, createdAt: "2026-11-25T12:00:00Z",',
        '           activatedAt: "2026-11-25T12:06:00Z", retiringAt: "2026-11-25T12:30:00Z"}',
    ]
    assert "removed" not in out
    assert "history + {state active, at 2026-11-25T12:30:00Z}" in out
    assert "stays there as retiring: nothing it signed is lost" in out
    # the due date still counts from the first activation: a rollback does not make a key younger
    code, out, _ = run(stack, "status", "atlas-gateway", now="2026-11-28T12:00:00Z")
    assert code == 3
    assert "WARNING, active '2026-11-23' age 5d 2h, due 2026-11-30T09:10:00Z" in out
    # a moment between the two periods keeps its answer: the key was not signing then
    code, out, _ = run(stack, "valid-at", "atlas-gateway", "atlas-2026-11-23", "--at", "2026-11-25T12:20:00Z",
                       now="2026-11-28T12:00:00Z")
    assert code == 6, out
    code, _, _ = run(stack, "valid-at", "atlas-gateway", "atlas-2026-11-23", "--at", "2026-11-25T12:40:00Z",
                     now="2026-11-28T12:00:00Z")
    assert code == 0


def test_rollback_when_no_rotation_is_under_way_is_refused_without_force(stack):
    # the gateway's 2026-11-16 has been retiring for days, long past its overlap: nothing to undo
    before = stack.read_bytes()
    code, _, err = run(stack, "rollback", "atlas-gateway")
    assert code == 1
    assert "refused: rollback undoes a rotation that went wrong" in err
    assert "past its overlap" in err and "past maxAgeDays (7)" in err
    assert stack.read_bytes() == before
    code, out, _ = run(stack, "rollback", "atlas-gateway", "--force")
    assert code == 0
    assert "warning: --force: '2026-11-16' is past maxAgeDays (7)" in out


def test_rollback_without_a_retiring_generation_is_refused(stack):
    run(stack, "retire", "atlas-gateway", "2026-11-16")
    code, _, err = run(stack, "rollback", "atlas-gateway")
    assert code == 1
    assert ("nothing to roll back to: no retiring generation; the previous generation '2026-11-16' is "
            "retired" in err)


# ---------------------------------------------------------------------------------------------
# status, plan, timeline, valid-at


@pytest.mark.parametrize(("now", "code", "health"), [
    ("2026-11-25T12:00:00Z", 0, "OK"),
    ("2026-11-28T12:00:00Z", 3, "WARNING"),
    ("2026-11-30T09:10:00Z", 4, "OVERDUE"),
])
def test_status_exit_code_says_ok_warning_or_overdue(stack, now, code, health):
    got, out, _ = run(stack, "status", now=now)
    assert got == code
    assert f"atlas-gateway (sign EdDSA, software): {health}, active '2026-11-23'" in out
    assert "due 2026-11-30T09:10:00Z" in out


def test_status_lists_every_generation_with_its_next_step(stack):
    code, out, _ = run(stack, "status")
    assert code == 0
    assert "2026-11-16   retiring  since 2026-11-23T09:10:00Z, age 9d 3h; retire from 2026-11-23T10:16:00Z" \
        " (allowed now)" in out
    assert ("2027         pending   since 2026-11-20T00:00:00Z, age 5d 12h; promote from "
            "2026-11-20T00:06:00Z" in out)


def test_status_json(stack):
    code, out, _ = run(stack, "status", "--json", now="2026-11-30T09:10:00Z")
    data = json.loads(out)
    assert code == data["exitCode"] == 4
    atlas = next(k for k in data["keysets"] if k["keyset"] == "atlas-gateway")
    assert atlas["health"] == "overdue" and atlas["dueAt"] == "2026-11-30T09:10:00Z"
    assert atlas["warnings"][0].startswith("overdue: '2026-11-23' passed maxAgeDays (7)")


def test_plan_shows_the_schedule_and_the_gap_verdict(stack):
    code, out, _ = run(stack, "plan", "atlas-gateway")
    assert code == 0
    assert ("atlas-gateway: active '2026-11-23', due 2026-11-30T09:10:00Z, rotate by 2026-11-30T09:04:00Z"
            in out)
    assert "from 2026-11-28T09:10:00Z  rotate atlas-gateway" in out
    assert "from 2026-11-28T09:16:00Z  promote atlas-gateway" in out
    assert "from 2026-11-28T10:22:00Z  retire atlas-gateway 2026-11-23" in out
    assert "gap check: no gap" in out


def test_plan_exits_5_on_a_gap_and_reports_it_as_json(stack):
    rotated(stack)
    run(stack, "promote", "atlas-gateway", "--force", now="2026-11-25T12:01:00Z")
    code, out, _ = run(stack, "plan", "--json", now="2026-11-25T12:02:00Z")
    assert code == 5
    atlas = next(k for k in json.loads(out)["keysets"] if k["keyset"] == "atlas-gateway")
    assert atlas["gapCheck"]["verdict"] == "gap"
    [gap] = atlas["gapCheck"]["gaps"]
    assert gap == {"generation": "2026-11-25", "kind": "published-too-late", "start": "2026-11-25T12:00:00Z",
                   "end": "2026-11-25T12:05:00Z", "intended": False, "message": gap["message"]}


def test_timeline_draws_each_state_and_now_and_prints_a_mermaid_gantt(stack, tmp_path):
    svg = tmp_path / "t.svg"
    code, out, _ = run(stack, "timeline", "--svg", str(svg))
    assert code == 0
    root = ElementTree.fromstring(svg.read_text())
    ns = {"s": "http://www.w3.org/2000/svg"}
    bars = [(r.get("data-keyset"), r.get("data-generation"), r.get("data-state"), r.get("fill"))
            for r in root.iterfind(".//s:rect", ns) if r.get("data-state")]
    assert ("atlas-gateway", "2026-11-23", "pending", "#9ecae1") in bars
    assert ("atlas-gateway", "2026-11-23", "active", "#238b45") in bars
    assert ("atlas-gateway", "2026-11-16", "retiring", "#a1d99b") in bars
    assert ("signer", "2025", "retired", "#d9d9d9") in bars
    now_lines = [line for line in root.iterfind(".//s:line", ns) if line.get("class") == "now"]
    assert len(now_lines) == 2  # one per keyset
    assert out.startswith(f"wrote {svg}\n```mermaid\ngantt\n")
    assert "  section atlas-gateway" in out
    assert "  dateFormat YYYY-MM-DD HH:mm:ss" in out
    # The task name starts with the state: a name starting with a date is read as a date by Mermaid.
    assert "  active 2026-11-23 :active, 2026-11-23 09:10:00, " in out
    assert "  now :milestone, 2026-11-25 12:00:00, 0d" in out
    assert out.rstrip().endswith("```")


def test_valid_at_follows_the_signing_profile_runbook(stack):
    code, out, _ = run(stack, "valid-at", "signer", "key-2025-dev", "--at", "2025-06-15T12:00:00Z")
    assert code == 0
    assert out.startswith("VALID: signer generation '2025' (kid key-2025-dev) at 2025-06-15T12:00:00Z")
    # retired (stopped signing 2026-01-20): a signature dated later was not made by the signer
    code, out, _ = run(stack, "valid-at", "signer", "key-2025-dev", "--at", "2026-06-15T12:00:00Z")
    assert code == 6
    assert "it stopped signing 2026-01-20T00:00:00Z" in out
    assert run(stack, "valid-at", "signer", "2027", "--at", "2026-11-21T00:00:00Z")[0] == 6


def test_valid_at_a_revoked_key_after_its_revocation_is_not_valid(stack):
    run(stack, "revoke", "signer", "2026", "--reason", "compromise")
    code, out, _ = run(stack, "valid-at", "signer", "key-2026-dev", "--at", "2026-11-25T12:00:01Z", "--json")
    assert code == 6
    data = json.loads(out)
    assert data["valid"] is False and data["trusted"] is False
    code, out, _ = run(stack, "valid-at", "signer", "key-2026-dev", "--at", "2026-11-25T11:00:00Z")
    assert code == 0
    assert "attested independently" in out


# ---------------------------------------------------------------------------------------------
# Bad input: a clear message, non-zero exit, the file byte for byte unchanged


@pytest.mark.parametrize(("args", "message"), [
    (["rotate", "nope"], "Pulumi.dev.yaml: no keyset 'nope' (keysets: atlas-gateway, signer)"),
    (["retire", "atlas-gateway", "v9"], "keyset 'atlas-gateway' has no generation 'v9' (generations:"),
    (["promote", "atlas-gateway", "2026-11-16"],
     "generation '2026-11-16': is retiring; to make it sign again"),
    (["revoke", "signer", "2025", "--reason", "compromise"], None),
    (["destroy", "atlas-gateway", "2026-11-23", "--confirm", "2026-11-23"],
     "generation '2026-11-23': cannot go from 'active' to 'destroyed'"),
])
def test_bad_input_leaves_the_file_unchanged(stack, args, message):
    before = stack.read_bytes()
    code, _, err = run(stack, *args)
    if message is None:  # retired -> revoked is allowed: a control that the file does change
        assert code == 0 and stack.read_bytes() != before
        return
    assert code == 1
    assert message in err
    assert stack.read_bytes() == before


def test_a_malformed_time_is_a_usage_error(stack):
    before = stack.read_bytes()
    code, _, err = run(stack, "rotate", "atlas-gateway", now="2026-11-25 12:00")
    assert code == 2
    assert "--now: '2026-11-25 12:00' is not an RFC 3339 time with a timezone" in err
    code, _, err = run(stack, "valid-at", "signer", "2026", "--at", "yesterday")
    assert code == 2 and "--at: 'yesterday'" in err
    assert stack.read_bytes() == before


def test_an_invalid_stack_file_is_reported_with_keyset_generation_and_field(stack):
    broken = STACK.replace('activatedAt: "2026-11-23T09:10:00Z"}', 'activatedAt: "yesterday"}')
    stack.write_text(broken)
    code, _, err = run(stack, "rotate", "atlas-gateway")
    assert code == 1
    assert "Pulumi.dev.yaml: invalid key-rotation configuration" in err
    assert "keyset 'atlas-gateway', generation '2026-11-23', field 'activatedAt'" in err
    assert stack.read_text() == broken


def test_a_change_that_would_make_the_file_invalid_is_not_written(stack):
    # a kid template without {generation} is valid with one generation, not with two
    single = STACK.replace('kid: "atlas-{generation}"', 'kid: "atlas"').replace(
        '''        - {id: "2026-11-16", state: retiring, createdAt: "2026-11-16T09:00:00Z",
           activatedAt: "2026-11-16T09:10:00Z", retiringAt: "2026-11-23T09:10:00Z"}
''', "")
    stack.write_text(single)
    code, _, err = run(stack, "rotate", "atlas-gateway")
    assert code == 1
    assert "the change would make the stack file invalid" in err
    assert "gives every generation the same kid" in err
    assert stack.read_text() == single


def test_no_stack_named_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    assert main(["status"], out=io.StringIO(), err=err) == 2
    assert "name the stack: --stack NAME" in err.getvalue()


def test_stack_name_reads_the_stack_file_of_the_project(stack, tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: key-rotation\nruntime: python\n")
    out = io.StringIO()
    code = main(["status", "--stack", "dev", "--project-dir", str(tmp_path), "--now", NOW, "--no-outputs"],
                out=out, err=io.StringIO())
    assert code == 0
    assert out.getvalue().startswith("Pulumi.dev.yaml at 2026-11-25T12:00:00Z")


@pytest.mark.parametrize("command", ["status", "rotate", "promote", "retire", "revoke", "rollback",
                                     "destroy", "plan", "timeline", "valid-at"])
def test_every_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert f"usage: key-rotation {command}" in text
    assert "exit codes:" in text and "--now TIME" in text


def test_python_dash_m_keyrotation_runs_the_commands(stack):
    done = subprocess.run(
        [sys.executable, "-m", "keyrotation", "status", "--file", str(stack), "--now", NOW, "--no-outputs",
         "--json"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [k["keyset"] for k in json.loads(done.stdout)["keysets"]] == ["atlas-gateway", "signer"]


def test_retire_waits_for_the_promote_to_be_deployed(stack, tmp_path):
    rotated(stack)
    run(stack, "promote", "atlas-gateway", now="2026-11-25T12:06:00Z")
    # the outputs of the last `pulumi up` still show 2026-11-23 active: the promote is not deployed
    outputs = outputs_file(tmp_path, {"atlas-2026-11-25": "2026-11-25T12:01:00Z"})
    data = json.loads(outputs.read_text())
    data["keysets"]["atlas-gateway"]["generations"][1]["state"] = "active"
    outputs.write_text(json.dumps(data))
    before = stack.read_bytes()
    err = io.StringIO()
    code = main(["retire", "atlas-gateway", "2026-11-23", "--file", str(stack), "--outputs", str(outputs),
                 "--now", "2026-11-26T00:00:00Z"], out=io.StringIO(), err=err)
    assert code == 1
    assert "the deployed stack still has it active" in err.getvalue()
    assert "deploy the promote first (`pulumi up`)" in err.getvalue()
    assert stack.read_bytes() == before


def fake_pulumi(tmp_path: Path, script: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable = bin_dir / "pulumi"
    executable.write_text("#!/bin/sh\n" + script)
    executable.chmod(0o755)
    return str(bin_dir) + os.pathsep + os.environ.get("PATH", "")


def test_without_outputs_the_pulumi_cli_is_asked_for_the_stack_outputs(stack, tmp_path, monkeypatch):
    rotated(stack)
    outputs = outputs_file(tmp_path, {"atlas-2026-11-25": "2026-11-25T12:30:00Z"})
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", fake_pulumi(tmp_path, f'echo "$@" > {calls}\ncat {outputs}\n'))
    err = io.StringIO()
    code = main(["promote", "atlas-gateway", "--file", str(stack), "--now", "2026-11-25T12:10:00Z"],
                out=io.StringIO(), err=err)
    assert code == 1
    assert calls.read_text().split() == ["stack", "output", "--json", "--stack", "dev"]
    assert "first published 2026-11-25T12:30:00Z (pulumi stack output --stack dev)" in err.getvalue()


def test_without_readable_outputs_an_edit_that_depends_on_them_is_refused_unless_forced(stack, tmp_path,
                                                                                        monkeypatch):
    rotated(stack)
    before = stack.read_bytes()
    monkeypatch.setenv("PATH", fake_pulumi(tmp_path,
                                           "echo \"error: no stack named 'dev' found\" >&2\nexit 255\n"))
    err = io.StringIO()
    code = main(["promote", "atlas-gateway", "--file", str(stack), "--now", "2026-11-25T12:06:00Z"],
                out=io.StringIO(), err=err)
    assert code == 1
    assert ("refused: cannot read the stack outputs (`pulumi stack output --json --stack dev` failed:"
            " error: no stack named 'dev' found; pass --outputs FILE), and the publish lead counts from what"
            " was deployed") in err.getvalue()
    assert stack.read_bytes() == before
    out = io.StringIO()
    code = main(["promote", "atlas-gateway", "--file", str(stack), "--now", "2026-11-25T12:06:00Z",
                 "--force"],
                out=out, err=io.StringIO())
    assert code == 0
    assert "warning: --force without the stack outputs" in out.getvalue()


def test_editing_commands_print_their_changes_as_json(stack):
    code, out, _ = run(stack, "rotate", "atlas-gateway", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["written"] is True and data["command"] == "rotate" and data["keyset"] == "atlas-gateway"
    assert data["changes"] == [{"keyset": "atlas-gateway", "generation": "2026-11-25", "added": {
        "id": "2026-11-25", "state": "pending", "createdAt": "2026-11-25T12:00:00Z"}}]
    code, out, err = run(stack, "promote", "atlas-gateway", "--json")
    assert code == 1
    assert json.loads(out)["error"] == err.removeprefix("error: ").rstrip("\n")


def test_a_generation_id_the_contract_does_not_allow_is_refused(stack):
    code, _, err = run(stack, "rotate", "atlas-gateway", "--id", "x" * 64)
    assert code == 1
    assert "generation id 'xxxx" in err and "is longer than 63 characters; use 1 to 63 ASCII letters" in err
    assert stack.read_text() == STACK


def test_a_forced_promote_is_judged_against_the_publishers_record(stack, tmp_path):
    rotated(stack)
    outputs = outputs_file(tmp_path, {"atlas-2026-11-25": "2026-11-25T12:30:00Z"})
    out = io.StringIO()
    code = main(["promote", "atlas-gateway", "--force", "--file", str(stack), "--outputs", str(outputs),
                 "--now", "2026-11-25T12:10:00Z"], out=out, err=io.StringIO())
    assert code == 0
    # createdAt + lead (12:06) has passed, but the key reached the JWKS only at 12:30
    assert ("generation '2026-11-25' was used before every verifier could have fetched it: verifiers may"
            " reject valid signatures from 2026-11-25T12:09:00Z to 2026-11-25T12:35:00Z") in out.getvalue()


def test_malformed_outputs_are_reported_with_the_file_and_the_field(stack, tmp_path):
    rotated(stack)
    outputs = outputs_file(tmp_path, {"atlas-2026-11-25": "soon"})
    err = io.StringIO()
    code = main(["promote", "atlas-gateway", "--file", str(stack), "--outputs", str(outputs), "--now", NOW],
                out=io.StringIO(), err=err)
    assert code == 1
    assert err.getvalue() == (
        f"error: keyset 'atlas-gateway': {outputs}: documents.file://published/atlas/.well-known/jwks.json"
        ".firstPublished.atlas-2026-11-25: not an RFC 3339 time: 'soon' (write e.g. 2026-11-23T09:00:00Z)\n")


def test_a_first_published_time_out_of_range_is_refused_not_overflowed(stack, tmp_path):
    rotated(stack)
    for bad in ("9999-12-31T23:59:59Z", 1700000000):
        outputs = outputs_file(tmp_path, {"atlas-2026-11-25": bad})
        err = io.StringIO()
        code = main(["plan", "--file", str(stack), "--outputs", str(outputs), "--now", NOW],
                    out=io.StringIO(), err=err)
        assert code == 1 and "firstPublished.atlas-2026-11-25" in err.getvalue(), err.getvalue()
        assert "internal error" not in err.getvalue()


# ---------------------------------------------------------------------------------------------
# The clock and the deployment record


def test_an_edit_with_now_in_the_future_is_refused_but_reports_and_dry_runs_may_look_ahead(stack,
                                                                                           monkeypatch):
    from datetime import UTC, datetime

    from keyrotation.commands import cli

    monkeypatch.setattr(cli, "wall_clock", lambda: datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    before = stack.read_bytes()
    # the sequence: rotate, then promote at +7 min, all within seconds of wall time
    code, _, err = run(stack, "rotate", "atlas-gateway", now="2026-11-25T12:02:00Z")
    assert code == 1
    assert ("refused: --now 2026-11-25T12:02:00Z is later than the clock (2026-11-25T12:00:00Z) by more than"
            " clockSkewSeconds (60s)") in err
    assert stack.read_bytes() == before
    # within the skew it is the clock's own uncertainty
    assert run(stack, "rotate", "atlas-gateway", now="2026-11-25T12:01:00Z")[0] == 0
    code, out, _ = run(stack, "promote", "atlas-gateway", "--dry-run", now="2026-11-25T12:07:00Z")
    assert code == 0 and "dry run: not written" in out
    assert run(stack, "status", now="2027-01-01T00:00:00Z")[0] == 4
    assert run(stack, "plan", now="2027-01-01T00:00:00Z")[0] in (0, 5)


def test_retire_counts_the_overlap_from_when_the_promote_was_deployed(stack, tmp_path):
    rotated(stack)
    assert run(stack, "promote", "atlas-gateway", now="2026-11-25T12:06:00Z")[0] == 0
    # the promote was merged and deployed at 13:00, not when the command wrote retiringAt
    outputs = write_outputs(stack, tmp_path / "outputs.json", deployed_at={
        ("2026-11-23", "retiring"): datetime_of("2026-11-25T13:00:00Z"),
        ("2026-11-25", "active"): datetime_of("2026-11-25T13:00:00Z")})
    err = io.StringIO()
    code = main(["retire", "atlas-gateway", "2026-11-23", "--file", str(stack), "--outputs", str(outputs),
                 "--now", "2026-11-25T13:01:00Z"], out=io.StringIO(), err=err)
    assert code == 1
    assert "it stopped signing at 2026-11-25T12:06:00Z, deployed 2026-11-25T13:00:00Z" in err.getvalue()
    assert "Retire allowed from 2026-11-25T14:06:00Z" in err.getvalue()
    out = io.StringIO()
    main(["plan", "atlas-gateway", "--file", str(stack), "--outputs", str(outputs), "--now",
          "2026-11-25T13:01:00Z"],
         out=out, err=io.StringIO())
    assert ("from 2026-11-25T14:06:00Z" in out.getvalue() and "retire atlas-gateway 2026-11-23"
            in out.getvalue())
    code = main(["retire", "atlas-gateway", "2026-11-23", "--file", str(stack), "--outputs", str(outputs),
                 "--now", "2026-11-25T14:06:00Z", "--dry-run"], out=io.StringIO(), err=io.StringIO())
    assert code == 0
    # forced at 13:01, the gap check counts from the deploy too: verifiers lose what signers made
    # with 2026-11-23 until 13:06, valid until 14:06
    out = io.StringIO()
    code = main(["retire", "atlas-gateway", "2026-11-23", "--file", str(stack), "--outputs", str(outputs),
                 "--now", "2026-11-25T13:01:00Z", "--force"], out=out, err=io.StringIO())
    assert code == 0
    assert ("warning: gap: keyset 'atlas-gateway', generation '2026-11-23' was removed while signatures made"
            " with it were still valid: verifiers may reject valid signatures from 2026-11-25T13:01:00Z to"
            " 2026-11-25T14:06:00Z") in out.getvalue()
    out = io.StringIO()
    code = main(["plan", "atlas-gateway", "--file", str(stack), "--outputs", str(outputs), "--now",
                 "2026-11-25T13:02:00Z"],
                out=out, err=io.StringIO())
    assert code == 5 and "gap check: GAP" in out.getvalue()


def datetime_of(text: str):
    from keyrotation.commands.cli import parse_time

    return parse_time(text, "test")


def test_status_piped_into_head_exits_quietly(tmp_path):
    # enough keysets that the output outgrows the pipe's buffer: head closes it while status writes
    lines = ["config:", "  key-rotation:environment: dev", "  key-rotation:keysets:"]
    for i in range(300):
        lines += [f"    k{i}:", "      purpose: sign", "      algorithm: ES256",
                  '      kid: "k-{generation}"',
                  "      generations:", '        - {id: a, state: active, createdAt: "2026-11-01T00:00:00Z",'
                  ' activatedAt: "2026-11-01T00:10:00Z"}']
    big = tmp_path / "Pulumi.dev.yaml"
    big.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        f"{sys.executable} -m keyrotation status --file {big} --now {NOW} --no-outputs | head -1",
        shell=True, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert done.stdout == "Pulumi.dev.yaml at 2026-11-25T12:00:00Z\n"
    assert done.stderr == ""


def test_status_suggests_promote_when_a_generation_is_pending(stack):
    rotated(stack)
    code, out, _ = run(stack, "status", "atlas-gateway", now="2026-11-30T10:00:00Z")
    assert code == 4
    assert ("overdue: '2026-11-23' passed maxAgeDays (7) on 2026-11-30T09:10:00Z; promote the pending "
            "generation now: `promote atlas-gateway`" in out)
    assert "`rotate atlas-gateway`" not in out
