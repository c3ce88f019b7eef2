"""Seed 003's rotation triggers: recorded on the generation, each with its urgency and minimum overlap,
which `retire`, `plan`, `status` and the policy pack apply on top of the computed overlap (the
larger wins), all through ``keyrotation.lifecycle.earliest_retire``."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyrotation import lifecycle
from keyrotation.commands import schedule, transitions
from keyrotation.commands.cli import main
from keyrotation.config import ConfigError, load_stack_file, parse
from keyrotation.errors import CommandError
from keyrotation.lifecycle import State, Timings, Trigger
from keyrotation.times import format_time
from policy import rotation
from tests.deployed import deployed, write_outputs
from tests.policy_client import stack_args, violations
from tests.test_policy_rotation import generation, jwks

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
COMPUTED = Timings().overlap  # 3960 s: tokenLifetimeSeconds 3600 + publishMaxAgeSeconds 300 + skew 60


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stack(*, trigger: str | None = None, token_lifetime: int = 3600, pending: bool = True):
    generations = [{"id": "g1", "state": "active", "createdAt": format_time(at(-10_000)),
                    "activatedAt": format_time(at(-9_000))}]
    if pending:
        generations.append({"id": "g2", "state": "pending", "createdAt": format_time(at(-60)),
                            **({"trigger": trigger} if trigger else {})})
    return parse({"environment": "t", "keysets": {"gw": {
        "purpose": "sign", "algorithm": "ES256", "kid": "gw-{generation}",
        "tokenLifetimeSeconds": token_lifetime, "generations": generations}}}, stack_file="Pulumi.t.yaml")


def promoted(trigger: str | None, token_lifetime: int = 3600):
    """g2 (with ``trigger``) promoted at T0, deployed at once: g1 is retiring from T0."""
    s = stack(trigger=trigger, token_lifetime=token_lifetime)
    return transitions.promote(s, "gw", now=T0, record=deployed(s, "gw")).stack


@pytest.mark.parametrize(("trigger", "urgency", "minimum"), [
    ("compromise", "immediate", timedelta(0)),
    ("scheduled", "planned", timedelta(hours=24)),
    ("personnel", "same day", timedelta(hours=1)),
    ("hardware", "planned", timedelta(hours=24)),
])
def test_each_trigger_has_the_seeds_urgency_and_minimum_overlap(trigger, urgency, minimum):
    rule = lifecycle.TRIGGERS[Trigger(trigger)]
    assert (rule.urgency, rule.minimum_overlap) == (urgency, minimum)


@pytest.mark.parametrize(("trigger", "token_lifetime", "overlap"), [
    (None, 3600, COMPUTED),                          # no trigger: the computed overlap
    ("scheduled", 3600, timedelta(hours=24)),        # 24 h > 66 min
    ("hardware", 3600, timedelta(hours=24)),
    ("personnel", 3600, COMPUTED),                   # 1 h < 66 min: the computed overlap wins
    ("personnel", 60, timedelta(hours=1)),           # 1 h > 7 min: the trigger wins
])
def test_retire_is_refused_until_the_larger_overlap_and_plan_and_status_say_the_same(trigger, token_lifetime,
                                                                                     overlap):
    s = promoted(trigger, token_lifetime)
    ks = s.keysets["gw"]
    record = deployed(s, "gw")
    assert ks.generation("g2").trigger == (Trigger(trigger) if trigger else None)
    end = T0 + overlap
    assert lifecycle.earliest_retire(ks.generations, ks.generation("g1"), ks.timings) == end

    with pytest.raises(CommandError) as refused:
        transitions.retire(s, "gw", "g1", now=end - timedelta(seconds=1), record=record)
    assert refused.value.allowed_from == end
    assert f"Retire allowed from {format_time(end)}" in str(refused.value)
    if overlap > ks.timings.overlap:
        assert f"records trigger {trigger}" in str(refused.value)
    retired = transitions.retire(s, "gw", "g1", now=end, record=record)
    assert retired.stack.keysets["gw"].generation("g1").state is State.RETIRED

    [status] = schedule.status(s, T0, {"gw": record})
    g1 = next(g for g in status.generations if g.id == "g1")
    assert (g1.next, g1.next_at) == ("retire", end)
    [plan] = schedule.plan(s, T0, {"gw": record})
    assert [p.at for p in plan.steps if (p.command, p.generation) == ("retire", "g1")] == [end]


def test_plan_counts_a_pending_generations_trigger_for_the_rotation_ahead():
    s = stack(trigger="scheduled")
    [plan] = schedule.plan(s, T0, {"gw": deployed(s, "gw")})
    promote = next(p for p in plan.steps if p.command == "promote")
    retire = next(p for p in plan.steps if p.command == "retire")
    assert promote.at is not None  # the promotion of a pending generation is scheduled
    assert retire.at == promote.at + timedelta(hours=24) and "(trigger scheduled)" in retire.why


def test_a_rollback_is_not_the_triggered_rotation():
    # g2 (scheduled) replaced g1; rolling back makes g2 retiring, and nothing replaced g2 by a rotation.
    s = promoted("scheduled")
    back = transitions.rollback(s, "gw", now=at(10), record=deployed(s, "gw")).stack
    ks = back.keysets["gw"]
    assert lifecycle.retire_overlap(ks.generations, ks.generation("g2"), ks.timings) == (COMPUTED, None)


def test_rotate_records_the_trigger_and_refuses_compromise(tmp_path: Path, capsys):
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(
        "config:\n  key-rotation:environment: t\n  key-rotation:keysets:\n    gw:\n      purpose: sign\n"
        "      algorithm: ES256\n      kid: \"gw-{generation}\"\n      generations:\n"
        "        - {id: g1, state: active, createdAt: \"2026-11-01T00:00:00Z\","
        " activatedAt: \"2026-11-01T00:10:00Z\"}\n")
    outputs = write_outputs(path, tmp_path / "outputs.json")

    def run(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main([*args, "--file", str(path), "--now", "2026-11-23T12:00:00Z", "--outputs", str(outputs)],
                    out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    code, _out, err = run("rotate", "gw", "--trigger", "compromise")
    assert code == 1 and "revoke the compromised generation first" in err
    assert "trigger" not in path.read_text()
    code, out, _err = run("rotate", "gw", "--trigger", "personnel", "--id", "g2")
    assert code == 0
    assert "trigger personnel (urgency: same day)" in out
    assert "trigger: personnel" in path.read_text()
    assert load_stack_file(path).keysets["gw"].generation("g2").trigger is Trigger.PERSONNEL
    code, _out, _err = run("rotate", "gw", "--trigger", "weekly")
    assert code == 2 and "argument --trigger: invalid choice: 'weekly'" in capsys.readouterr().err


def test_revoking_the_active_generation_records_the_reason_as_the_replacements_trigger():
    s = stack(pending=False)
    revoked = transitions.revoke(s, "gw", "g1", reason="compromise", now=T0, new_id="g9").stack
    assert revoked.keysets["gw"].generation("g9").trigger is Trigger.COMPROMISE
    # A pending replacement gets it too when it has none; a recorded trigger is never rewritten.
    s = stack()
    result = transitions.revoke(s, "gw", "g1", reason="compromise", now=T0)
    assert result.stack.keysets["gw"].generation("g2").trigger is Trigger.COMPROMISE
    s = stack(trigger="scheduled")
    result = transitions.revoke(s, "gw", "g1", reason="compromise", now=T0)
    assert result.stack.keysets["gw"].generation("g2").trigger is Trigger.SCHEDULED
    assert any("keeps the trigger recorded when it was added (scheduled)" in n for n in result.notes)
    # superseded is no trigger.
    s = stack(pending=False)
    revoked = transitions.revoke(s, "gw", "g1", reason="superseded", now=T0, force=True, new_id="g9").stack
    assert revoked.keysets["gw"].generation("g9").trigger is None


def test_a_pending_compromise_trigger_and_an_unknown_trigger_are_invalid():
    with pytest.raises(ConfigError) as info:
        stack(trigger="compromise")
    assert ("keyset 'gw', generation 'g2', field 'trigger': a compromise replacement is never pending"
            in str(info.value))
    with pytest.raises(ConfigError) as info:
        stack(trigger="weekly")
    assert "keyset 'gw', generation 'g2'" in str(info.value) and "trigger" in str(info.value)
    assert "'compromise', 'scheduled', 'personnel' or 'hardware'" in str(info.value)


def policy_resources(retired_minutes: float, trigger: str | None):
    return [
        generation("g1", "retired", "k1", createdAt=format_time(at(-10_000)),
                   activatedAt=format_time(at(-9_000)), retiringAt=format_time(T0),
                   retiredAt=format_time(at(retired_minutes))),
        generation("g2", "active", "k2", createdAt=format_time(at(-1_000)), activatedAt=format_time(T0),
                   **({"trigger": trigger} if trigger else {})),
        jwks(["k2"], {"k1": format_time(at(-10_000)), "k2": format_time(at(-1_000))}),
    ]


def test_the_policy_pack_holds_a_retirement_to_the_triggers_minimum_overlap():
    # 70 minutes: past the computed overlap (66 min), before scheduled's 24 h.
    now = {"now": format_time(at(70))}
    [(message, urn)] = violations(rotation.retire_after_overlap, stack_args(policy_resources(70, "scheduled"),
                                                                            now))
    assert "keyset 'atlas-gateway', generation 'g1' (kid k1) leaves the published documents" in message
    assert "records trigger scheduled (urgency planned), whose overlap is at least 86400s" in message
    assert f"Keep it `retiring` until {format_time(T0 + timedelta(hours=24))}" in message
    assert urn is not None and urn.endswith("atlas-gateway-g1")
    assert violations(rotation.retire_after_overlap, stack_args(policy_resources(70, None), now)) == []
    assert violations(rotation.retire_after_overlap, stack_args(policy_resources(70, "personnel"), now)) == []
    later = {"now": format_time(at(24 * 60))}
    assert violations(rotation.retire_after_overlap,
                      stack_args(policy_resources(70, "scheduled"), later)) == []


def test_the_trigger_is_in_the_generation_record_the_pack_reads():
    s = promoted("hardware")
    dumped = s.keysets["gw"].generation("g2").model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert json.loads(json.dumps(dumped))["trigger"] == "hardware"
