"""The key history's `validity` windows answer "valid at T" exactly as `valid-at` does.

Random schedules are driven through the real command functions (rotate, promote, retire, revoke,
rollback, destroy, restore, rewrapped; with and without --force; times that go backwards too, as
in tests/test_history.py). After every command that succeeds, the key-history document is built
and rendered as the publisher writes it, and a verifier that reads only that JSON (parsing the
RFC 3339 strings itself, [from, until)) is asked about every generation at every boundary instant
(each recorded time, each window bound, each signing-window bound) and one second either side.
Its answer must be `valid-at`'s.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from keyrotation import algorithms, documents, keys, lifecycle
from keyrotation.commands import schedule
from keyrotation.config import StackConfig, parse
from keyrotation.documents import KeyRecord
from keyrotation.errors import CommandError
from tests.test_history import DATA, SIGN, apply, at, initial, step

ONE = timedelta(seconds=1)


def published_history(stack: StackConfig, keyset: str) -> dict:
    """The key-history document as published (rendered text, read back as JSON)."""
    ks = stack.keysets[keyset]
    records = [KeyRecord.of(g, kid=f"{keyset}-{g.id}", algorithm=ks.algorithm, public_pem=None,
                            timings=ks.timings)
               for g in ks.generations]
    return json.loads(documents.render(documents.build("key-history", records)))


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def verifier_says(entry: dict, t: datetime) -> bool:
    """A verifier with nothing but the document: T within some [from, until)."""
    return any(_parse(w["from"]) <= t and (w["until"] is None or t < _parse(w["until"]))
               for w in entry["validity"])


def boundaries(stack: StackConfig, keyset: str, document: dict) -> set[datetime]:
    ks = stack.keysets[keyset]
    out: set[datetime] = set()
    for g in ks.generations:
        out |= {t for _, t in lifecycle.path(g)}
        for a, b in lifecycle.signing_windows(g, ks.timings):
            out |= {a} | ({b} if b else set())
    for entry in document["keyHistory"]:
        for w in entry["validity"]:
            out |= {_parse(w["from"])} | ({_parse(w["until"])} if w["until"] else set())
    return {t + d for t in out for d in (-ONE, timedelta(0), ONE)}


def check(stack: StackConfig, keyset: str) -> int:
    document = published_history(stack, keyset)
    entries = {e["generation"]: e for e in document["keyHistory"]}
    checked = 0
    for t in sorted(boundaries(stack, keyset, document)):
        for g in stack.keysets[keyset].generations:
            expected = schedule.valid_at(stack, keyset, g.id, t).valid
            assert verifier_says(entries[g.id], t) == expected, (
                g.id, t.isoformat(), entries[g.id]["validity"])
            checked += 1
    return checked


@pytest.mark.property
@given(st.sampled_from((SIGN, DATA)), st.lists(step, min_size=1, max_size=25))
@example(SIGN, [(1, "rotate", 0, "personnel", False), (5, "promote", 0, "personnel", False),
                (1, "rollback", 0, "personnel", True)])
@example(SIGN, [(1, "rotate", 0, "personnel", False), (5, "promote", 0, "personnel", False),
                (1, "revoke", 1, "compromise", False)])
def test_a_verifier_reading_only_the_key_history_agrees_with_valid_at_at_every_boundary(keyset, steps):
    stack, minute, n = initial(), 10, 0
    check(stack, keyset)
    for delay, op, pick, reason, force in steps:
        minute += delay
        now, n = at(minute), n + 1
        try:
            stack = apply(stack, op, keyset, pick, reason, force, now, n).stack
        except CommandError:
            continue
        check(stack, keyset)


def test_validity_windows_after_a_rollback_and_a_revocation():
    """Lag (publishMaxAgeSeconds + clockSkewSeconds = 3 min here) after each stop; cut at revokedAt."""
    stack = parse({"environment": "t", "keysets": {"gw": {
        "purpose": "sign", "algorithm": "EdDSA", "publishMaxAgeSeconds": 120, "clockSkewSeconds": 60,
        "generations": [
            {"id": "a", "state": "revoked", "createdAt": "2026-11-01T00:00:00Z",
             "activatedAt": "2026-11-01T00:10:00Z", "retiringAt": "2026-11-08T00:10:00Z",
             "history": [{"state": "active", "at": "2026-11-08T01:00:00Z"},
                         {"state": "retiring", "at": "2026-11-09T00:00:00Z"}],
             "revokedAt": "2026-11-09T00:01:00Z", "revokeReason": "superseded"},
            {"id": "b", "state": "active", "createdAt": "2026-11-07T00:00:00Z",
             "activatedAt": "2026-11-08T00:10:00Z", "retiringAt": "2026-11-08T01:00:00Z",
             "history": [{"state": "active", "at": "2026-11-09T00:00:00Z"}]},
        ]}}}, stack_file="Pulumi.t.yaml")
    pem = keys.public_pem_from_private(keys.generate_private(algorithms.ALGORITHMS["EdDSA"]))
    ks = stack.keysets["gw"]
    a, b = (documents.key_history([KeyRecord.of(g, kid=g.id, algorithm="EdDSA", public_pem=pem,
                                                timings=ks.timings)
                                   for g in ks.generations])["keyHistory"])
    assert a["validity"] == [{"from": "2026-11-01T00:10:00Z", "until": "2026-11-08T00:13:00Z"},
                             {"from": "2026-11-08T01:00:00Z", "until": "2026-11-09T00:01:00Z"}]
    assert b["validity"] == [{"from": "2026-11-08T00:10:00Z", "until": "2026-11-08T01:03:00Z"},
                             {"from": "2026-11-09T00:00:00Z", "until": None}]
    # The fields that were there before are still there (an additive change).
    assert {"keyid", "addedAt", "revokedAt", "revokeReason", "signingPeriods", "history"} <= a.keys()
    assert check(stack, "gw") > 0
