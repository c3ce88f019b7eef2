"""Encrypted data is never orphaned: a simulation with data at rest through the real commands.

An encrypt keyset (the Secrets Service's AES keys, in AWS KMS: a destroyed generation can be
restored within its deletion window). Writers encrypt under the generation they
know as active: they learn of a switch up to publishMaxAgeSeconds late, and clocks differ by up
to clockSkewSeconds. Every ciphertext is stored: it stays under its generation until a
re-encryption (`rewrapped`) moves it to the generation active then, or until it expires
(dataRetentionSeconds), else forever. During a rolling update a pod holds the keyring of any
moment of the last publishMaxAgeSeconds. The commands run without --force, each change deployed
when it is made (the deployment record). At no minute may a stored ciphertext meet a pod whose
keyring cannot decrypt it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from keyrotation.commands import transitions
from keyrotation.config import StackConfig, parse
from keyrotation.errors import CommandError
from keyrotation.lifecycle import PUBLISHED_STATES, State
from tests.deployed import deployed

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KS = "secrets"


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def keyset(cache: int, skew: int, lifetime: int, retention: int | None) -> StackConfig:
    lead = cache + skew
    return parse({"environment": "t", "keysets": {KS: {
        "purpose": "encrypt", "algorithm": "A256GCM", "kid": "s-{generation}",
        # In AWS KMS: a destroyed generation waits out its deletion window, and `restore` brings it back.
        "backend": "aws-kms", "aws": {"region": "us-east-1"}, "deletionWindowDays": 7,
        "publishMaxAgeSeconds": cache * 60, "clockSkewSeconds": skew * 60,
        "tokenLifetimeSeconds": lifetime * 60,
        **({"dataRetentionSeconds": retention * 60} if retention else {}),
        "generations": [{"id": "g0", "state": "active", "createdAt": at(0).isoformat(),
                         "activatedAt": at(lead).isoformat()}],
    }}}, stack_file="Pulumi.t.yaml")


@dataclass
class World:
    cache: int
    skew: int
    retention: int | None
    snapshots: list[tuple[float, str, frozenset[str]]] = field(default_factory=list)
    """After each command: (minute, active generation, generations in the keyrings)."""
    rewraps: list[tuple[float, str]] = field(default_factory=list)
    """(minute, generation): everything stored under it was re-encrypted then."""

    def state_at(self, minute: float) -> tuple[str, frozenset[str]]:
        active, ring = self.snapshots[0][1], self.snapshots[0][2]
        for when, a, r in self.snapshots:
            if when > minute:
                break
            active, ring = a, r
        return active, ring

    def orphans(self, horizon: int) -> list[tuple[float, str, int]]:
        """(written, generation, minute) for every stored ciphertext some pod cannot decrypt."""
        found = []
        for w2 in range(0, 2 * horizon):
            w = w2 / 2
            # generations some writer may use at w: the active one of any moment in [w - M - skew, w + skew]
            used = {self.state_at(f2 / 2)[0]
                    for f2 in range(int(2 * (w - self.cache - self.skew)), int(2 * (w + self.skew)) + 1)}
            for g in used:
                found += self._follow(w, g, horizon)
        return found

    def _follow(self, written: float, generation: str, horizon: int) -> list[tuple[float, str, int]]:
        """Read the ciphertext at every minute it is stored; a rewrap moves it on."""
        out = []
        end = horizon if self.retention is None else min(horizon, written + self.retention)
        moved = next(((m, g) for m, g in self.rewraps if g == generation and m >= written and m < end), None)
        stop = end if moved is None else moved[0]
        for v in range(int(-(-written // 1)), int(stop) + (0 if moved is None else 1)):
            for f in range(v - self.cache, v + 1):
                if generation not in self.state_at(f)[1]:
                    out.append((written, generation, v))
                    break
        if moved is not None:
            out += self._follow(moved[0], self.state_at(moved[0])[0], horizon)
        return out


OPS = ("rotate", "promote", "rollback", "rewrapped", "retire", "destroy", "restore")
step = st.tuples(
    st.integers(1, 15),                  # minutes since the previous command
    st.sampled_from(OPS + ("rotate", "promote", "rewrapped", "retire")),
    st.integers(0, 20),                  # which generation
)
timing = st.tuples(st.integers(0, 4), st.integers(0, 2), st.integers(1, 6), st.sampled_from((None, 5, 20)))
FITTING = {"rewrapped": {State.RETIRING}, "retire": {State.RETIRING}, "destroy": {State.RETIRED},
           "restore": {State.RETIRED, State.DESTROYED}}


def run(steps, cache, skew, lifetime, retention, *, force=False) -> tuple[StackConfig, World]:
    stack = keyset(cache, skew, lifetime, retention)
    world = World(cache, skew, retention)
    world.snapshots.append((-1000, "g0", frozenset({"g0"})))
    minute, n = cache + skew, 0
    for delay, op, pick in steps:
        minute += delay
        n += 1
        now = at(minute)
        generations = stack.keysets[KS].generations
        pool = [g for g in generations if g.state in FITTING.get(op, set())] or generations
        target = pool[pick % len(pool)].id
        record = deployed(stack, KS)
        try:
            if op == "rotate":
                result = transitions.rotate(stack, KS, now=now, generation_id=f"g{n}")
            elif op == "promote":
                result = transitions.promote(stack, KS, now=now, record=record, force=force)
            elif op == "rollback":
                result = transitions.rollback(stack, KS, now=now, record=record, force=force)
            elif op == "rewrapped":
                result = transitions.rewrapped(stack, KS, target, by="ops", now=now, record=record,
                                               force=force)
            elif op == "retire":
                result = transitions.retire(stack, KS, target, now=now, record=record, force=force)
            elif op == "destroy":
                result = transitions.destroy(stack, KS, target, now=now, confirm=target)
            else:
                result = transitions.restore(stack, KS, target, now=now, record=record)
        except CommandError:
            continue
        if op == "rewrapped":
            world.rewraps.append((minute, target))
        stack = result.stack
        gens = stack.keysets[KS].generations
        world.snapshots.append((minute, next(g.id for g in gens if g.state is State.ACTIVE),
                                frozenset(g.id for g in gens if g.state in PUBLISHED_STATES)))
    return stack, world


@pytest.mark.property
@given(st.lists(step, min_size=1, max_size=14), timing)
@example([(1, "rotate", 0), (6, "promote", 0), (1, "retire", 0)], (3, 1, 2, None))
# rotate, promote, roll back a minute later, re-encrypt what the rolled-back key wrote, retire it,
# restore it: nothing is lost at any step.
@example([(1, "rotate", 0), (5, "promote", 0), (1, "rollback", 0), (5, "rewrapped", 0), (4, "retire", 0),
          (5, "restore", 0)], (3, 1, 2, None))
# ... and destroy it, then restore it from the KMS's deletion window: its ciphertext decrypts again.
@example([(1, "rotate", 0), (5, "promote", 0), (5, "rewrapped", 0), (4, "retire", 0), (2, "destroy", 0),
          (5, "restore", 0)], (3, 1, 2, None))
def test_no_stored_ciphertext_is_ever_left_without_a_keyring_that_decrypts_it(steps, timings):
    stack, world = run(steps, *timings)
    horizon = int(world.snapshots[-1][0]) + 60
    assert world.orphans(horizon) == []


def test_the_simulation_finds_data_orphaned_by_a_forced_retirement():
    """Guard against a vacuous simulation: retiring without a rewrap strands what is stored."""
    stack, world = run([(1, "rotate", 0), (5, "promote", 0), (30, "retire", 0)], 3, 1, 2, None, force=True)
    assert stack.keysets[KS].generation("g0").state is State.RETIRED
    orphans = world.orphans(int(world.snapshots[-1][0]) + 30)
    assert orphans and {g for _, g, _ in orphans} == {"g0"}


def test_retirement_waits_for_the_rewrap_or_the_retention_and_says_why():
    stack = keyset(5, 1, 60, None)
    stack = transitions.rotate(stack, KS, now=at(10), generation_id="g1").stack
    stack = transitions.promote(stack, KS, now=at(16), record=deployed(stack, KS)).stack
    with pytest.raises(CommandError) as refused:
        transitions.retire(stack, KS, "g0", now=at(16 + 200), record=deployed(stack, KS))
    message = str(refused.value)
    assert "ciphertext stored under it stays encrypted under it until it is re-encrypted" in message
    assert "signatures" not in message and "pods can no longer decrypt" in message
    # a re-encryption confirmed before every writer switched does not count
    with pytest.raises(CommandError, match="writers may still encrypt under it until 2026-01-01T00:22:00Z"):
        transitions.rewrapped(stack, KS, "g0", by="alice@example.com", now=at(20), record=deployed(stack, KS))
    result = transitions.rewrapped(stack, KS, "g0", by="alice@example.com", now=at(30),
                                record=deployed(stack, KS))
    g0 = result.stack.keysets[KS].generation("g0")
    assert [(r.at, r.by) for r in g0.rewrapped] == [(at(30), "alice@example.com")]
    stack = result.stack
    retired = transitions.retire(stack, KS, "g0", now=at(16 + 66), record=deployed(stack, KS)).stack
    assert retired.keysets[KS].generation("g0").state is State.RETIRED
    # ... and a retired generation whose material still exists decrypts again after `restore`
    restored = transitions.restore(retired, KS, "g0", now=at(100)).stack
    g0 = restored.keysets[KS].generation("g0")
    assert g0.state is State.RETIRING and [(str(s.state), s.at) for s in g0.history] == [("retiring",
                                                                                          at(100))]
    assert g0.retired_at == at(82)


def test_with_a_declared_retention_ciphertext_expires_by_itself():
    stack = keyset(5, 1, 60, 120)
    stack = transitions.rotate(stack, KS, now=at(10), generation_id="g1").stack
    stack = transitions.promote(stack, KS, now=at(16), record=deployed(stack, KS)).stack
    # writers done at 16 + 6; stored ciphertext expires 120 minutes later
    with pytest.raises(CommandError, match="Retire allowed from 2026-01-01T02:22:00Z"):
        transitions.retire(stack, KS, "g0", now=at(100), record=deployed(stack, KS))
    transitions.retire(stack, KS, "g0", now=at(142), record=deployed(stack, KS))


def test_messages_for_an_encrypt_keyset_speak_of_ciphertext_and_decryption():
    stack = keyset(5, 1, 60, None)
    stack = transitions.rotate(stack, KS, now=at(10), generation_id="g1").stack
    with pytest.raises(CommandError) as early:
        transitions.promote(stack, KS, now=at(12), record=deployed(stack, KS))
    forced = transitions.promote(stack, KS, now=at(12), record=deployed(stack, KS), force=True)
    with pytest.raises(CommandError) as cut:
        transitions.revoke(forced.stack, KS, "g1", reason="personnel", now=at(13),
                        record=deployed(forced.stack, KS))
    said = [str(early.value), *forced.warnings, str(cut.value)]
    assert all("signature" not in text and "verifier" not in text for text in said), said
    assert "pods whose copy predates it cannot decrypt what it encrypts" in forced.warnings[0]
    assert "unable to decrypt ciphertext it made that is still read" in str(cut.value)
