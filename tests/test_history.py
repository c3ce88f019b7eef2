"""History is append-only: no command changes what `valid-at` says about the past.

Random sequences of every editing command (rotate, promote, retire, revoke, rollback, destroy,
restore, rewrapped), with and without --force, at times that may also go backwards. After each
command that succeeds at time N: every step recorded before is still there, unchanged and in its
place, and for every kid that existed before and every instant T < N, `valid-at` gives the same
answer as before the command.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from keyrotation import lifecycle
from keyrotation.commands import schedule, transitions
from keyrotation.config import StackConfig, parse
from keyrotation.errors import CommandError
from keyrotation.lifecycle import TIME_FIELDS, State
from tests.deployed import deployed

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIGN, DATA, KMS = "gw", "vault", "kms"


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def initial() -> StackConfig:
    g0 = {"id": "g0", "state": "active", "createdAt": at(0).isoformat(), "activatedAt": at(10).isoformat()}
    timings = {"publishMaxAgeSeconds": 120, "clockSkewSeconds": 60, "tokenLifetimeSeconds": 300,
               "maxAgeDays": 1, "warnDays": 0}
    return parse({"environment": "t", "keysets": {
        SIGN: {"purpose": "sign", "algorithm": "ES256", "kid": "gw-{generation}", **timings,
               "generations": [g0]},
        DATA: {"purpose": "encrypt", "algorithm": "A256GCM", "kid": "vault-{generation}",
               "dataRetentionSeconds": 1800, **timings, "generations": [g0]},
        # A KMS keyset: a destroyed generation can be restored within its deletion window.
        KMS: {"purpose": "sign", "algorithm": "ES256", "kid": "kms-{generation}", "backend": "aws-kms",
              "aws": {"region": "us-east-1"},
              "deletionWindowDays": 7, **timings, "generations": [g0]},
    }}, stack_file="Pulumi.t.yaml")


OPS = ("rotate", "promote", "retire", "revoke", "rollback", "destroy", "restore", "rewrapped")
WEIGHTED = ("rotate", "promote") * 3 + ("retire", "rollback", "restore", "rewrapped") * 2 + OPS
# Mostly a generation the command applies to, so that sequences get long; sometimes any.
TARGET_STATES = {"retire": {State.RETIRING}, "rewrapped": {State.RETIRING}, "destroy": {State.RETIRED},
                 "restore": {State.RETIRED, State.DESTROYED}}
step = st.tuples(
    st.integers(-3, 40),            # minutes since the previous command (backwards too)
    st.sampled_from(WEIGHTED),
    st.integers(0, 20),             # which generation
    st.sampled_from(("compromise", "personnel", "superseded")),
    st.booleans(),                  # --force
)


def apply(stack: StackConfig, op: str, keyset: str, pick: int, reason: str, force: bool, now: datetime,
          n: int):
    generations = stack.keysets[keyset].generations
    fitting = [g for g in generations if g.state in TARGET_STATES.get(op, set())] or generations
    pool = fitting if pick % 4 else generations
    target = pool[pick % len(pool)].id
    record = deployed(stack, keyset)
    if op == "rotate":
        return transitions.rotate(stack, keyset, now=now, generation_id=f"g{n}")
    if op == "promote":
        return transitions.promote(stack, keyset, now=now, record=record, force=force)
    if op == "retire":
        return transitions.retire(stack, keyset, target, now=now, record=record, force=force)
    if op == "revoke":
        return transitions.revoke(stack, keyset, target, reason=reason, now=now, record=record, force=force,
                               new_id=f"g{n}")
    if op == "rollback":
        return transitions.rollback(stack, keyset, now=now, record=record, force=force)
    if op == "destroy":
        return transitions.destroy(stack, keyset, target, now=now, confirm=target)
    if op == "restore":
        return transitions.restore(stack, keyset, target, now=now, record=record, force=force)
    return transitions.rewrapped(stack, keyset, target, by="ops", now=now, record=record, force=force)


def instants(before: StackConfig, after: StackConfig, keyset: str, now: datetime) -> list[datetime]:
    """Every recorded time and its neighbours, and a grid, before ``now``."""
    times = {now - timedelta(seconds=1)}
    for stack in (before, after):
        for g in stack.keysets[keyset].generations:
            for _, t in lifecycle.path(g):
                times |= {t - timedelta(seconds=1), t, t + timedelta(seconds=1)}
            for a, b in lifecycle.signing_windows(g, stack.keysets[keyset].timings):
                times |= {a, a - timedelta(seconds=1)} | ({b, b - timedelta(seconds=1)} if b else set())
    start = T0 - timedelta(minutes=5)
    times |= {start + timedelta(minutes=m) for m in range(0, int((now - start).total_seconds() // 60) + 1, 7)}
    return sorted(t for t in times if t < now)


def answers(stack: StackConfig, keyset: str, gid: str, times: list[datetime]) -> list[tuple]:
    out = []
    for t in times:
        v = schedule.valid_at(stack, keyset, gid, t)
        out.append((t, v.valid, v.trusted, v.signing))
    return out


def recorded(stack: StackConfig, keyset: str) -> dict[str, tuple]:
    return {g.id: (lifecycle.path(g), tuple(g.rewrapped), {f: g.time(f) for f in TIME_FIELDS if g.time(f)})
            for g in stack.keysets[keyset].generations}


@pytest.mark.property
@given(st.sampled_from((SIGN, DATA, KMS)), st.lists(step, min_size=1, max_size=30))
@example(SIGN, [(1, "rotate", 0, "personnel", False), (5, "promote", 0, "personnel", False),
                (20, "rollback", 0, "personnel", True)])
# retire, destroy, then restore the destroyed KMS key within its window (a new history step).
@example(KMS, [(1, "rotate", 1, "personnel", False), (5, "promote", 1, "personnel", False),
               (10, "retire", 1, "personnel", False), (1, "destroy", 1, "personnel", False),
               (5, "restore", 1, "personnel", False)])
def test_no_command_changes_the_recorded_past_or_what_valid_at_says_about_it(keyset, steps):
    stack, minute, n = initial(), 10, 0
    for delay, op, pick, reason, force in steps:
        minute += delay
        now, n = at(minute), n + 1
        try:
            result = apply(stack, op, keyset, pick, reason, force, now, n)
        except CommandError:
            continue
        after = result.stack
        old, new = recorded(stack, keyset), recorded(after, keyset)
        for gid, (path, rewraps, fields) in old.items():
            new_path, new_rewraps, new_fields = new[gid]
            assert new_path[:len(path)] == path, (op, gid)
            assert new_rewraps[:len(rewraps)] == rewraps, (op, gid)
            assert all(new_fields.get(f) == t for f, t in fields.items()), (op, gid)
            new_steps = new_path[len(path):]
            assert all(t >= now for _, t in new_steps), "a new step is recorded at the command's time"
        times = instants(stack, after, keyset, now)
        for gid in old:
            assert answers(after, keyset, gid, times) == answers(stack, keyset, gid, times), (op, gid)
        for gid in set(new) - set(old):
            assert not any(v for _, v, _, _ in answers(after, keyset, gid, times)), (op, gid)
        stack = after


def test_rollback_used_to_rewrite_the_past_and_now_appends_a_period():
    """The issue's case: NOT VALID at a moment between two signing periods stays NOT VALID."""
    stack = initial()
    stack = transitions.rotate(stack, SIGN, now=at(20), generation_id="g1").stack
    stack = transitions.promote(stack, SIGN, now=at(30), record=deployed(stack, SIGN)).stack
    question = at(34)  # after g0 stopped signing and its signer lag (3m)
    assert not schedule.valid_at(stack, SIGN, "gw-g0", question).valid
    stack = transitions.rollback(stack, SIGN, now=at(35), record=deployed(stack, SIGN)).stack
    g0 = stack.keysets[SIGN].generation("g0")
    assert g0.state is State.ACTIVE and g0.retiring_at == at(30)
    assert [(str(s.state), s.at) for s in g0.history] == [("active", at(35))]
    assert lifecycle.signing_periods(g0) == [(at(10), at(30)), (at(35), None)]
    assert not schedule.valid_at(stack, SIGN, "gw-g0", question).valid
    assert schedule.valid_at(stack, SIGN, "gw-g0", at(36)).valid


def test_restoring_a_destroyed_kms_generation_appends_a_step_and_keeps_the_past():
    stack = initial()
    stack = transitions.rotate(stack, KMS, now=at(20), generation_id="g1").stack
    stack = transitions.promote(stack, KMS, now=at(30), record=deployed(stack, KMS)).stack
    stack = transitions.retire(stack, KMS, "g0", now=at(40), record=deployed(stack, KMS)).stack
    stack = transitions.destroy(stack, KMS, "g0", now=at(41), confirm="g0").stack
    times = [at(m) for m in range(0, 60)]
    before = answers(stack, KMS, "kms-g0", times)
    record = deployed(stack, KMS)
    restored = transitions.restore(stack, KMS, "g0", now=at(60), record=record).stack
    g0 = restored.keysets[KMS].generation("g0")
    assert g0.state is State.RETIRING and g0.destroyed_at == at(41) and g0.retiring_at == at(30)
    assert [(str(s.state), s.at) for s in g0.history] == [("retiring", at(60))]
    assert g0.restored_key_id == record.key_ids["g0"]
    assert answers(restored, KMS, "kms-g0", times) == before
