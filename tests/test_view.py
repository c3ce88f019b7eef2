"""The keyset view: the one place each fact about a keyset and its generations is computed, and
the shapes the documents, the commands and the delivery hand on read it (keyrotation/view.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyrotation import documents
from keyrotation.commands import schedule
from keyrotation.config import ConfigError, parse
from keyrotation.documents import KeyRecord
from keyrotation.lifecycle import State
from keyrotation.view import view

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def iso(minute: float) -> str:
    return at(minute).isoformat().replace("+00:00", "Z")


def rolled_back():
    """g1 was promoted at 100 and rolled back at 150: g0 signs again, g1 is retiring; g2 waits."""
    return parse({"environment": "t", "keysets": {"gw": {
        "purpose": "sign", "algorithm": "ES256", "kid": "gw-{generation}",
        "publishMaxAgeSeconds": 120, "clockSkewSeconds": 60, "tokenLifetimeSeconds": 300,
        "maxAgeDays": 1, "warnDays": 0,
        "generations": [
            {"id": "old", "state": "retired", "createdAt": iso(-60), "activatedAt": iso(-50),
             "retiringAt": iso(0), "retiredAt": iso(5)},
            {"id": "g0", "state": "active", "createdAt": iso(-10), "activatedAt": iso(0),
             "retiringAt": iso(100), "history": [{"state": "active", "at": iso(150)}]},
            {"id": "g1", "state": "retiring", "createdAt": iso(50), "activatedAt": iso(100),
             "retiringAt": iso(150)},
            {"id": "g2", "state": "pending", "createdAt": iso(160)},
        ]}}}, stack_file="Pulumi.t.yaml")


def test_the_view_points_at_the_active_generation_and_sorts_the_rest():
    keys = view(rolled_back().keysets["gw"])
    assert keys.primary == "g0" and keys.active.id == "g0"
    assert [g.id for g in keys.published] == ["g0", "g1", "g2"] == [g.id for g in keys.ring]
    assert [g.id for g in keys.destroyable] == ["old"]
    # a rollback's generation signs again from the rollback: its age counts from its first activation
    assert keys.due_at == at(0) + timedelta(days=1) and keys.warn_at == keys.due_at


def test_a_rolled_back_generation_has_two_signing_periods_and_entered_active_last_at_the_rollback():
    g0 = view(rolled_back().keysets["gw"]).entry("g0")
    assert g0.signing_periods == ((at(0), at(100)), (at(150), None))
    assert g0.since == at(150)
    assert [(str(s), a, b) for s, a, b in g0.spans] == [
        ("pending", at(-10), at(0)), ("active", at(0), at(100)), ("retiring", at(100), at(150)),
        ("active", at(150), None)]
    lag = timedelta(seconds=180)  # publishMaxAgeSeconds + clockSkewSeconds
    assert g0.signing_windows == ((at(0), at(100) + lag), (at(150), None))


def test_the_documents_and_the_status_publish_the_views_facts():
    stack = rolled_back()
    keys = view(stack.keysets["gw"])
    records = [KeyRecord(e, kid=f"gw-{e.id}", algorithm="ES256", public_pem=None) for e in keys.entries]
    history = {h["generation"]: h for h in documents.key_history(records)["keyHistory"]}
    assert history["g0"]["signingPeriods"] == [
        {"from": iso(0), "until": iso(100)}, {"from": iso(150), "until": None}]
    assert [step["state"] for step in history["g0"]["history"]] == ["pending", "active", "retiring", "active"]
    status = schedule.status(stack, at(200))[0]
    assert status.active == keys.primary
    assert {g.id: (g.state, g.since) for g in status.generations} == {
        "old": ("retired", at(5)), "g0": ("active", at(150)), "g1": ("retiring", at(150)),
        "g2": ("pending", at(160))}


@pytest.mark.parametrize("states", [("active", "active"), ("retiring", "pending")])
def test_a_keyset_without_exactly_one_active_generation_has_no_view(states):
    generations = [{"id": f"g{i}", "state": s, "createdAt": iso(0),
                    **({"activatedAt": iso(1)} if s in ("active", "retiring") else {}),
                    **({"retiringAt": iso(2)} if s == "retiring" else {})} for i, s in enumerate(states)]
    with pytest.raises(ConfigError, match="needs exactly one 'active' generation"):
        parse({"environment": "t", "keysets": {"gw": {"purpose": "sign", "algorithm": "ES256",
                                                        "generations": generations}}},
              stack_file="Pulumi.t.yaml")
    keyset = rolled_back().keysets["gw"]
    edited = [g.model_copy(update={"state": State(s)})
              for g, s in zip(keyset.generations, states, strict=False)]
    two = keyset.model_copy(update={"generations": edited})
    with pytest.raises(ValueError, match="keyset 'gw': a sign keyset needs exactly one 'active' generation"):
        view(two)
