"""The gap check (keyrotation.lifecycle.find_gaps) against a brute-force simulation.

The simulation knows nothing of the check's formulas. It replays what the rotation commands did,
minute by minute: which generation each signer may use (signers learn of a switch up to
publishMaxAgeSeconds late and their clocks differ by up to clockSkewSeconds), which generations
the published document holds, and verifiers that hold a copy fetched at most
publishMaxAgeSeconds earlier and check tokens until their lifetime ends. A rejection is a
verifier refusing a signature made while its generation was not revoked.

(a) Schedules the real command functions produce without --force: no rejection, except the
    intended ones (a compromise revocation and its emergency replacement).
(b) Any schedule, --force included: the check reports exactly the minutes in which the
    simulation finds a rejection, generation by generation, intended and not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from keyrotation import lifecycle
from keyrotation.commands import transitions
from keyrotation.commands.records import Publications
from keyrotation.config import StackConfig, parse
from keyrotation.errors import CommandError
from keyrotation.lifecycle import PUBLISHED_STATES, RevokeReason, State, Timings, find_gaps, keyset_gaps

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEYSET = "ks"


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def minute_of(t: datetime) -> int:
    seconds = (t - T0).total_seconds()
    assert seconds % 60 == 0, t
    return int(seconds // 60)


def stack_with(generations: list[dict], *, cache: int, skew: int, lifetime: int) -> StackConfig:
    """A one-keyset stack; timings in minutes."""
    return parse(
        {
            "environment": "test",
            "defaults": {
                "publishMaxAgeSeconds": cache * 60,
                "clockSkewSeconds": skew * 60,
                "tokenLifetimeSeconds": lifetime * 60,
            },
            "keysets": {
                KEYSET: {
                    "purpose": "sign", "algorithm": "ES256", "kid": "k-{generation}",
                    "generations": generations,
                }
            },
        },
        stack_file="Pulumi.test.yaml",
    )


# ---------------------------------------------------------------------------------------------
# The simulation


@dataclass
class History:
    """What the commands did, as the simulation replays it (minutes)."""

    cache: int
    skew: int
    lifetime: int
    snapshots: list[tuple[int, str | None, frozenset[str]]] = field(default_factory=list)
    """After each command: (minute, active generation, generations in the document's state)."""
    first_published: dict[str, int] = field(default_factory=dict)
    revoked: dict[str, tuple[int, RevokeReason | None]] = field(default_factory=dict)
    emergency: set[str] = field(default_factory=set)
    """Generations activated by `revoke --reason compromise` of the active generation."""

    def state_at(self, minute: float) -> tuple[str | None, frozenset[str]]:
        active: str | None = None
        published: frozenset[str] = frozenset()
        for when, a, p in self.snapshots:
            if when > minute:
                break
            active, published = a, p
        return active, published

    def published(self, generation: str, minute: int) -> bool:
        _, in_document = self.state_at(minute)
        return generation in in_document and self.first_published[generation] <= minute

    def rejections(self) -> dict[str, dict[int, set[bool]]]:
        """Per generation, per verification minute: the kinds of rejection (intended or not)."""
        last = self.snapshots[-1][0] + max(self.first_published.values())
        horizon = last + 2 * self.cache + self.skew + self.lifetime + 2
        # Signing and switching are sampled every half minute: with every boundary on a whole
        # minute, that finds a signature made just before a boundary (a token signed at 2:59.9
        # is still presented at 3:00 + lifetime - 0:00.1), which whole minutes would miss.
        active = {h: self.state_at(h / 2)[0] for h in range(-2 * (self.cache + self.skew + 1), 2 * horizon)}
        out: dict[str, dict[int, set[bool]]] = {}
        for generation in self.first_published:
            revoked_at, reason = self.revoked.get(generation, (None, None))
            signing: set[int] = set()  # half minutes at which some signer may use the generation
            for u, g in active.items():
                if g == generation:
                    signing.update(range(u - 2 * self.skew, u + 2 * (self.cache + self.skew) + 1))
            valid = {s for s in signing if revoked_at is None or s < 2 * revoked_at}
            # a token signed at s is presented at every whole minute v with s <= v < s + lifetime
            verifications = {v for s in valid for v in range(-(-s // 2), -(-(s + 2 * self.lifetime) // 2))}
            for v in sorted(verifications):
                for fetched in range(v - self.cache, v + 1):
                    if self.published(generation, fetched):
                        continue
                    late = fetched < self.first_published[generation]
                    intended = (reason == "compromise" and revoked_at is not None and v >= revoked_at) or (
                        late and generation in self.emergency
                    )
                    out.setdefault(generation, {}).setdefault(v, set()).add(intended)
        return out


def check_minutes(stack: StackConfig, history: History) -> dict[str, dict[int, set[bool]]]:
    keyset = stack.keysets[KEYSET]
    published_at = {g: at(m) for g, m in history.first_published.items()}
    out: dict[str, dict[int, set[bool]]] = {}
    for gap in find_gaps(KEYSET, keyset.generations, keyset.timings, published_at):
        for v in range(minute_of(gap.start), minute_of(gap.end)):
            out.setdefault(gap.generation, {}).setdefault(v, set()).add(gap.intended)
    return out


# ---------------------------------------------------------------------------------------------
# Driving the real commands


OPS = ("rotate", "promote", "retire", "revoke", "rollback", "destroy", "restore")
WEIGHTED = ("rotate",) * 3 + ("promote",) * 3 + ("retire",) * 2 + OPS
# The generation a command targets: mostly one it applies to (retire a retiring one...), so that
# schedules get long; sometimes any, so that refusals are exercised too.
TARGET_STATES = {"retire": {State.RETIRING}, "destroy": {State.RETIRED}, "revoke": set(State),
                 "restore": {State.RETIRED}}
step = st.tuples(
    st.integers(1, 12),                              # minutes since the previous command
    st.sampled_from(WEIGHTED),
    st.integers(0, 20),                              # which generation
    st.sampled_from(("compromise", "personnel", "hardware", "superseded")),
    st.integers(0, 6),                               # deploy delay of a new generation
    st.booleans(),                                   # --force (when allowed)
)
timing = st.tuples(st.integers(0, 5), st.integers(0, 2), st.integers(1, 10))


def deployed_record(stack: StackConfig, history: History) -> Publications:
    """The stack outputs the commands read: what the simulation's publisher wrote, and every
    switch deployed when it was recorded."""
    generations = stack.keysets[KEYSET].generations
    return Publications(
        first_published={g: at(m) for g, m in history.first_published.items()},
        deployed_states={g.id: str(g.state) for g in generations},
        deployed={g.id: {str(state): t for state, t in lifecycle.path(g)} for g in generations},
        source="simulation",
    )


def run(steps, cache: int, skew: int, lifetime: int, *, allow_force: bool) -> tuple[StackConfig, History]:
    lead = cache + skew
    stack = stack_with(
        [{"id": "g0", "state": "active", "createdAt": at(0).isoformat(),
          "activatedAt": at(lead).isoformat()}],
        cache=cache, skew=skew, lifetime=lifetime,
    )
    history = History(cache, skew, lifetime)
    history.snapshots += [(0, None, frozenset({"g0"})), (lead, "g0", frozenset({"g0"}))]
    history.first_published["g0"] = 0
    minute, counter = lead, 0
    for delay, op, pick, reason, deploy, force in steps:
        minute += delay
        now = at(minute)
        force = force and allow_force
        generations = stack.keysets[KEYSET].generations
        fitting = [g for g in generations if g.state in TARGET_STATES.get(op, set())] or generations
        pool = fitting if pick % 4 else generations
        target = pool[pick % len(pool)].id
        record = deployed_record(stack, history)
        before = {g.id for g in generations}
        try:
            if op == "rotate":
                counter += 1
                result = transitions.rotate(stack, KEYSET, now=now, generation_id=f"g{counter}")
            elif op == "promote":
                result = transitions.promote(stack, KEYSET, now=now, record=record, force=force)
            elif op == "retire":
                result = transitions.retire(stack, KEYSET, target, now=now, force=force, record=record)
            elif op == "revoke":
                counter += 1
                result = transitions.revoke(stack, KEYSET, target, reason=reason, now=now, record=record,
                                         force=force, new_id=f"g{counter}")
            elif op == "rollback":
                result = transitions.rollback(stack, KEYSET, now=now, record=record, force=force)
            elif op == "restore":
                result = transitions.restore(stack, KEYSET, target, now=now)
            else:
                result = transitions.destroy(stack, KEYSET, target, now=now, confirm=target)
        except CommandError:
            continue
        stack = result.stack
        generations = stack.keysets[KEYSET].generations
        for g in generations:
            if g.id not in before:
                history.first_published[g.id] = minute + deploy
            if g.state is State.REVOKED and g.id not in history.revoked:
                history.revoked[g.id] = (minute, g.revoke_reason)
        if op == "revoke" and reason == "compromise":
            history.emergency |= {
                e.generation for e in result.edits
                if getattr(e, "field", None) == "activatedAt" or getattr(e, "fields", {}).get("activatedAt")
            }
        active = next(g.id for g in generations if g.state is State.ACTIVE)
        history.snapshots.append(
            (minute, active, frozenset(g.id for g in generations if g.state in PUBLISHED_STATES))
        )
    return stack, history


def unintended(found: dict[str, dict[int, set[bool]]]) -> dict[str, list[int]]:
    return {g: sorted(v for v, kinds in minutes.items() if False in kinds) for g, minutes in found.items()
            if any(False in kinds for kinds in minutes.values())}


# Examples and seed come from the Hypothesis profile (tests/conftest.py): fixed in CI, random and
# many more in the long job.


@pytest.mark.property
@given(st.lists(step, min_size=1, max_size=18), timing)
def test_commands_without_force_never_make_a_verifier_reject(steps, timings):
    stack, history = run(steps, *timings, allow_force=False)
    assert unintended(history.rejections()) == {}
    published_at = {g: at(m) for g, m in history.first_published.items()}
    keyset = stack.keysets[KEYSET]
    assert [g for g in keyset_gaps(keyset, published_at) if not g.intended] == []


@pytest.mark.property
@given(st.lists(step, min_size=1, max_size=18), timing)
# An emergency replacement revoked (personnel, --force) before the publisher ever wrote it: the
# rejections it causes are those of its late publication (intended), not of a removal.
@example([(1, "promote", 0, "compromise", 0, False), (1, "revoke", 0, "compromise", 2, False),
          (1, "revoke", 1, "personnel", 0, True)], (0, 0, 1))
def test_the_check_reports_exactly_the_minutes_the_simulation_rejects(steps, timings):
    stack, history = run(steps, *timings, allow_force=True)
    assert check_minutes(stack, history) == history.rejections()


def test_the_simulation_finds_rejections_of_forced_schedules():
    """Guard against a vacuous simulation: a forced early promote and retire are caught."""
    steps = [(1, "rotate", 0, "compromise", 0, False), (1, "promote", 0, "compromise", 0, True),
             (1, "retire", 0, "compromise", 0, True)]
    stack, history = run(steps, 5, 1, 10, allow_force=True)
    found = history.rejections()
    assert set(unintended(found)) == {"g0", "g1"}
    assert check_minutes(stack, history) == found


# ---------------------------------------------------------------------------------------------
# The model at its boundaries (seconds)


def gaps_of(generations: list[dict], *, cache: int = 300, skew: int = 60, lifetime: int = 3600):
    stack = parse(
        {"environment": "t",
         "defaults": {"publishMaxAgeSeconds": cache, "clockSkewSeconds": skew,
                      "tokenLifetimeSeconds": lifetime},
         "keysets": {KEYSET: {"purpose": "sign", "algorithm": "ES256", "kid": "k-{generation}",
                              "generations": generations}}},
        stack_file="Pulumi.t.yaml",
    )
    return keyset_gaps(stack.keysets[KEYSET])


def s(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


TIMINGS = Timings(publish_max_age_seconds=300, clock_skew_seconds=60, token_lifetime_seconds=3600)
LEAD = int(TIMINGS.publish_lead.total_seconds())       # 360
OVERLAP = int(TIMINGS.overlap.total_seconds())         # 4020


def rotation(promote_after: int, retire_after: int) -> list[dict]:
    return [
        {"id": "old", "state": "retired", "createdAt": s(0), "activatedAt": s(LEAD),
         "retiringAt": s(10_000), "retiredAt": s(10_000 + retire_after)},
        {"id": "new", "state": "active", "createdAt": s(10_000 - promote_after), "activatedAt": s(10_000)},
    ]


def test_promote_exactly_at_the_publish_lead_and_retire_exactly_at_the_overlap_leave_no_gap():
    assert gaps_of(rotation(LEAD, OVERLAP)) == []


def test_one_second_short_of_the_publish_lead_is_a_one_second_gap():
    [gap] = gaps_of(rotation(LEAD - 1, OVERLAP))
    assert (gap.generation, gap.kind, gap.intended) == ("new", "published-too-late", False)
    # signers with a fast clock start at activatedAt - skew; the last stale copy expires at p0 + max-age
    assert gap.start == T0 + timedelta(seconds=10_000 - 60)
    assert gap.end == T0 + timedelta(seconds=10_000 - (LEAD - 1) + 300)
    assert gap.duration == timedelta(seconds=1)


def test_one_second_short_of_the_overlap_is_a_one_second_gap():
    [gap] = gaps_of(rotation(LEAD, OVERLAP - 1))
    assert (gap.generation, gap.kind) == ("old", "removed-too-early")
    assert gap.start == T0 + timedelta(seconds=10_000 + OVERLAP - 1)
    assert gap.end == T0 + timedelta(seconds=10_000 + OVERLAP)
    assert "verifiers may reject valid signatures" in gap.describe()


def test_the_gap_check_and_the_commands_share_one_rule():
    """required_window is [activatedAt - publish_lead, retiringAt + overlap): Timings' own numbers."""
    from keyrotation.lifecycle import required_window

    stack = stack_with([
        {"id": "a", "state": "retiring", "createdAt": s(0), "activatedAt": s(600), "retiringAt": s(9000)},
        {"id": "b", "state": "active", "createdAt": s(8000), "activatedAt": s(9000)},
    ], cache=5, skew=1, lifetime=60)
    keyset = stack.keysets[KEYSET]
    window = required_window(keyset.generation("a"), keyset.timings)
    assert window is not None
    start, end = window
    assert start == T0 + timedelta(seconds=600) - keyset.timings.publish_lead
    assert end == T0 + timedelta(seconds=9000) + keyset.timings.overlap


def test_compromise_revocation_and_its_emergency_replacement_are_intended():
    gaps = gaps_of([
        {"id": "v1", "state": "revoked", "createdAt": s(0), "activatedAt": s(LEAD),
         "revokedAt": s(50_000), "revokeReason": "compromise"},
        {"id": "v2", "state": "active", "createdAt": s(50_000), "activatedAt": s(50_000)},
    ])
    assert [(g.generation, g.kind, g.intended) for g in gaps] == [
        ("v2", "published-too-late", True), ("v1", "removed-too-early", True)]
    v1 = gaps[1]
    # every token v1 signed before the revocation is rejected from then on, until it expires
    assert (v1.start, v1.end) == (T0 + timedelta(seconds=50_000), T0 + timedelta(seconds=50_000 + 3600))


def test_a_revocation_for_another_reason_that_cuts_tokens_short_is_a_real_gap():
    [gap] = gaps_of([
        {"id": "v1", "state": "revoked", "createdAt": s(0), "activatedAt": s(LEAD), "retiringAt": s(50_000),
         "revokedAt": s(50_600), "revokeReason": "personnel"},
        {"id": "v2", "state": "active", "createdAt": s(40_000), "activatedAt": s(50_000)},
    ])
    assert (gap.generation, gap.kind, gap.intended) == ("v1", "removed-too-early", False)
    assert gap.start == T0 + timedelta(seconds=50_600)
    assert gap.end == T0 + timedelta(seconds=50_000 + OVERLAP)


def test_an_emergency_replacement_recorded_by_hand_a_minute_late_is_not_intended():
    gaps = gaps_of([
        {"id": "v1", "state": "revoked", "createdAt": s(0), "activatedAt": s(LEAD),
         "revokedAt": s(50_000), "revokeReason": "compromise"},
        {"id": "v2", "state": "active", "createdAt": s(50_060), "activatedAt": s(50_060)},
    ])
    assert {(g.generation, g.intended) for g in gaps} == {("v2", False), ("v1", True)}


def test_symmetric_keysets_speak_of_pods_and_data():
    stack = parse(
        {"environment": "t", "keysets": {"aes": {"purpose": "encrypt", "algorithm": "A256GCM",
                                                 "generations": [
            {"id": "q3", "state": "retired", "createdAt": s(0), "activatedAt": s(LEAD), "retiringAt": s(9000),
             "retiredAt": s(9000)},
            {"id": "q4", "state": "active", "createdAt": s(9000), "activatedAt": s(9000)}]}}},
        stack_file="Pulumi.t.yaml",
    )
    gaps = keyset_gaps(stack.keysets["aes"])
    assert {g.generation for g in gaps} == {"q3", "q4"}
    assert all("pods may meet data they cannot decrypt" in g.describe() for g in gaps)


@pytest.mark.parametrize("state", ["pending", "revoked"])
def test_a_generation_that_never_signed_needs_no_publication(state):
    extra = {"revokedAt": s(700), "revokeReason": "superseded"} if state == "revoked" else {}
    assert gaps_of([
        {"id": "a", "state": "active", "createdAt": s(0), "activatedAt": s(LEAD)},
        {"id": "b", "state": state, "createdAt": s(600), **extra},
    ]) == []
