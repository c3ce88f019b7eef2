"""States, allowed transitions, the two rotation timings, ages and the gap check.

This module is the one source of truth for the lifecycle rules: the Pulumi program, the policy
pack and the rotation commands import it. ``now`` is always a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from .algorithms import Purpose
from .times import SECONDS_PER_DAY, format_time

if TYPE_CHECKING:
    from .config import Generation, KeySetConfig


class State(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"
    DESTROYED = "destroyed"
    REVOKED = "revoked"

    def __str__(self) -> str:
        return self.value


PUBLISHED_STATES = frozenset({State.PENDING, State.ACTIVE, State.RETIRING})
"""States whose public key is published and whose key material decrypts/verifies."""

MATERIAL_STATES = frozenset({State.PENDING, State.ACTIVE, State.RETIRING, State.RETIRED})
"""States whose key material still exists (enabled or disabled)."""

ENABLED_STATES = PUBLISHED_STATES
"""States whose KMS key / version is enabled; retired and revoked ones are disabled."""

TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.ACTIVE, State.REVOKED}),
    State.ACTIVE: frozenset({State.RETIRING, State.REVOKED}),
    # retiring -> active is the rollback: the previous generation signs again.
    State.RETIRING: frozenset({State.RETIRED, State.ACTIVE, State.REVOKED}),
    # retired -> retiring and destroyed -> retiring are the restore: the key material still
    # exists (disabled, or within the KMS deletion window) and decrypts/verifies again.
    State.RETIRED: frozenset({State.DESTROYED, State.RETIRING, State.REVOKED}),
    State.DESTROYED: frozenset({State.RETIRING}),
    State.REVOKED: frozenset(),
}

class RevokeReason(StrEnum):
    COMPROMISE = "compromise"
    PERSONNEL = "personnel"
    HARDWARE = "hardware"
    SUPERSEDED = "superseded"


REVOKE_REASONS: tuple[str, ...] = tuple(r.value for r in RevokeReason)


class Trigger(StrEnum):
    """Why a generation was made (seed 003's "When to rotate"): recorded on the new generation."""

    COMPROMISE = "compromise"
    SCHEDULED = "scheduled"
    PERSONNEL = "personnel"
    HARDWARE = "hardware"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TriggerRule:
    urgency: str
    """Seed 003's urgency, as the commands report it."""
    minimum_overlap: timedelta
    """How long the generation it replaces stays published at least (seed 003's overlap window);
    the computed :attr:`Timings.overlap` applies too, and the larger wins."""


TRIGGERS: dict[Trigger, TriggerRule] = {
    # "None - revoke old key first": the old key is revoked, never retired; `revoke --reason
    # compromise` records this trigger on the replacement it activates.
    Trigger.COMPROMISE: TriggerRule("immediate", timedelta(0)),
    Trigger.SCHEDULED: TriggerRule("planned", timedelta(hours=24)),
    Trigger.PERSONNEL: TriggerRule("same day", timedelta(hours=1)),
    Trigger.HARDWARE: TriggerRule("planned", timedelta(hours=24)),
}
TRIGGER_NAMES: tuple[str, ...] = tuple(t.value for t in Trigger)

STATE_TIME: dict[State, str] = {
    State.PENDING: "createdAt",
    State.ACTIVE: "activatedAt",
    State.RETIRING: "retiringAt",
    State.RETIRED: "retiredAt",
    State.DESTROYED: "destroyedAt",
    State.REVOKED: "revokedAt",
}
"""The stack-file field that records when a generation first entered each state."""
TIME_FIELDS = frozenset(STATE_TIME.values())

# The timestamp each state requires (beyond createdAt), and the ones it must not have yet. With a
# ``history``, they apply to the state the top-level fields reach (the first pass).
REQUIRED_TIMES: dict[State, tuple[str, ...]] = {
    State.PENDING: (),
    State.ACTIVE: ("activatedAt",),
    State.RETIRING: ("activatedAt", "retiringAt"),
    # Only a retiring generation retires: it was active, so it has signed (and stopped).
    State.RETIRED: ("activatedAt", "retiringAt", "retiredAt"),
    State.DESTROYED: ("activatedAt", "retiringAt", "retiredAt", "destroyedAt"),
    State.REVOKED: ("revokedAt",),
}
FORBIDDEN_TIMES: dict[State, tuple[str, ...]] = {
    State.PENDING: ("activatedAt", "retiringAt", "retiredAt", "destroyedAt", "revokedAt"),
    State.ACTIVE: ("retiringAt", "retiredAt", "destroyedAt", "revokedAt"),
    State.RETIRING: ("retiredAt", "destroyedAt", "revokedAt"),
    State.RETIRED: ("destroyedAt", "revokedAt"),
    State.DESTROYED: ("revokedAt",),
    State.REVOKED: (),
}
TIME_ORDER = ("createdAt", "activatedAt", "retiringAt", "retiredAt", "destroyedAt")
"""Timestamps that, when present, must not decrease in this order."""


def allowed(source: State, target: State) -> bool:
    return target in TRANSITIONS[source]


# ---------------------------------------------------------------------------------------------
# History: the path a generation took, as recorded
#
# The top-level times record the first time a generation entered each state (createdAt,
# activatedAt, retiringAt, retiredAt, destroyedAt) and are never changed afterwards. A return to
# an earlier state (a rollback re-activates a retiring generation, a restore makes a retired or
# destroyed one retiring again) and every transition after it are appended to ``history`` as
# ``{state, at}``. revokedAt is terminal and always the last step. So the record only grows, and
# the path below is the whole story.


def first_pass(generation: Generation) -> list[tuple[State, datetime]]:
    """The steps the top-level times record, in lifecycle order (revocation excluded)."""
    path = [(State.PENDING, generation.created_at)]
    for state in (State.ACTIVE, State.RETIRING, State.RETIRED, State.DESTROYED):
        t = generation.time(STATE_TIME[state])
        if t is not None:
            path.append((state, t))
    return path


def path(generation: Generation) -> list[tuple[State, datetime]]:
    """Every state the generation entered and when, oldest first."""
    steps = first_pass(generation) + [(h.state, h.at) for h in generation.history]
    if generation.revoked_at is not None:
        steps.append((State.REVOKED, generation.revoked_at))
    return steps


def entered(generation: Generation, state: State) -> datetime | None:
    """When the generation last entered ``state`` (None: never)."""
    times = [t for s, t in path(generation) if s is state]
    return times[-1] if times else None


def periods(generation: Generation, states: frozenset[State]) -> list[tuple[datetime, datetime | None]]:
    """[start, end) intervals during which the generation was in one of ``states``; end None: still is.
    Intervals of no length (entered and left in the same instant) are dropped."""
    out: list[tuple[datetime, datetime | None]] = []
    start: datetime | None = None
    for state, t in path(generation):
        if state in states and start is None:
            start = t
        elif state not in states and start is not None:
            if t > start:
                out.append((start, t))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def signing_periods(generation: Generation) -> list[tuple[datetime, datetime | None]]:
    """When the generation was the active one (signing or encrypting), as recorded."""
    return periods(generation, frozenset({State.ACTIVE}))


def stopped_at(generation: Generation) -> datetime | None:
    """When it last stopped signing/encrypting; None while it is active or if it never was."""
    spans = signing_periods(generation)
    return spans[-1][1] if spans else None


def signer_lag(timings: Timings) -> timedelta:
    """How long after a recorded stop a signer may still use a generation: it learns of the
    switch up to publishMaxAgeSeconds late, and its clock differs by up to clockSkewSeconds."""
    return timedelta(seconds=timings.publish_max_age_seconds + timings.clock_skew_seconds)


def signing_windows(generation: Generation, timings: Timings) -> list[tuple[datetime, datetime | None]]:
    """[start, end + signer lag) per signing period: when a signature of the generation, dated by
    the record's clock, was legitimately made. ``valid-at`` answers with these; the gap check adds
    the clock skew before each start (a signer whose clock runs fast)."""
    lag = signer_lag(timings)
    return [(a, None if b is None else b + lag) for a, b in signing_periods(generation)]


@dataclass(frozen=True)
class Timings:
    """The timing knobs of a keyset (CONFIG.md ``defaults``), in their config units."""

    max_age_days: int = 90
    warn_days: int = 14
    publish_max_age_seconds: int = 300
    clock_skew_seconds: int = 60
    token_lifetime_seconds: int = 3600
    deletion_window_days: int = 30

    @property
    def publish_lead(self) -> timedelta:
        """How long a generation must be published before it may sign or encrypt."""
        return timedelta(seconds=self.publish_max_age_seconds + self.clock_skew_seconds)

    @property
    def overlap(self) -> timedelta:
        """How long a generation stays published after it stopped signing."""
        return timedelta(
            seconds=self.token_lifetime_seconds
            + self.publish_max_age_seconds
            + self.clock_skew_seconds
        )

    @property
    def max_age(self) -> timedelta:
        return timedelta(days=self.max_age_days)

    @property
    def warn_before(self) -> timedelta:
        return timedelta(days=self.warn_days)


def default_warn_days(max_age_days: int) -> int:
    """warnDays when the stack file sets none: 14, or a quarter of a shorter maximum age."""
    return max(1, min(Timings.warn_days, max_age_days // 4))


# ---------------------------------------------------------------------------------------------
# Age and due dates


Health = Literal["ok", "warning", "overdue", "no-active"]


@dataclass(frozen=True)
class Age:
    generation: str | None
    activated_at: datetime | None
    age: timedelta | None
    due_at: datetime | None
    warn_at: datetime | None
    health: Health


def active_ids(states: Iterable[tuple[str, State | str]]) -> list[str]:
    """The ids of the generations in state ``active``, in the order given: the one place that
    asks which generations are active (whether there is exactly one: :func:`primary_id`)."""
    return [gid for gid, state in states if state == State.ACTIVE]


def primary_id(states: Iterable[tuple[str, State | str]]) -> str | None:
    """The id of the one active generation (the keyset's primary, Tink's ``primary_key_id``); None
    when there is not exactly one. The one place that asks "exactly one active": the config's
    keyset check (:func:`keyrotation.view.keyset_problems`), the view, the pack and the commands
    call it."""
    active = active_ids(states)
    return active[0] if len(active) == 1 else None


def active_generation(generations: Sequence[Generation]) -> Generation | None:
    """The one active generation (the keyset's primary); None when there is not exactly one."""
    primary = primary_id((g.id, g.state) for g in generations)
    return None if primary is None else next(g for g in generations if g.id == primary)


def key_age(generations: Sequence[Generation], timings: Timings, now: datetime) -> Age:
    """Age of the active generation and when the keyset is due for rotation."""
    active = active_generation(generations)
    if active is None or active.activated_at is None:
        return Age(None, None, None, None, None, "no-active")
    due = active.activated_at + timings.max_age
    warn = due - timings.warn_before
    health: Health = "overdue" if now >= due else "warning" if now >= warn else "ok"
    return Age(active.id, active.activated_at, now - active.activated_at, due, warn, health)


def age_health(activated_at: datetime, max_age_days: float, warn_days: float, now: datetime) -> Health:
    """The same verdict as :func:`key_age` for a single timestamp (policy pack metadata)."""
    due = activated_at + timedelta(days=max_age_days)
    if now >= due:
        return "overdue"
    return "warning" if now >= due - timedelta(days=warn_days) else "ok"


# ---------------------------------------------------------------------------------------------
# Earliest safe transitions


def published_since(generation: Generation, published_at: Mapping[str, datetime] | None) -> datetime:
    """When a generation was first published: the publisher's record if known, else createdAt."""
    if published_at and generation.id in published_at:
        return max(published_at[generation.id], generation.created_at)
    return generation.created_at


def earliest_promote(
    generation: Generation, timings: Timings, published_at: Mapping[str, datetime] | None = None
) -> datetime:
    return published_since(generation, published_at) + timings.publish_lead


def trigger_overlap(timings: Timings, trigger: Trigger | None) -> timedelta:
    """The overlap of a rotation with this trigger: the computed one, or the trigger's minimum when
    that is longer (the larger wins)."""
    minimum = TRIGGERS[trigger].minimum_overlap if trigger is not None else timedelta(0)
    return max(timings.overlap, minimum)


def replaced_by(generations: Sequence[Generation], generation: Generation) -> Generation | None:
    """The generation whose first activation stopped ``generation`` (the rotation that replaced it);
    None when it never stopped, or stopped otherwise (a rollback re-activates an older one)."""
    stopped = stopped_at(generation)
    if stopped is None:
        return None
    return next((g for g in generations if g.id != generation.id and g.activated_at == stopped), None)


def retire_overlap(
    generations: Sequence[Generation], generation: Generation, timings: Timings
) -> tuple[timedelta, Trigger | None]:
    """How long ``generation`` stays published after it stopped: the computed overlap, or the minimum
    overlap of the trigger recorded on the generation that replaced it when that is longer; and that
    trigger (None: none recorded)."""
    successor = replaced_by(generations, generation)
    trigger = successor.trigger if successor is not None else None
    return trigger_overlap(timings, trigger), trigger


def earliest_retire(
    generations: Sequence[Generation], generation: Generation, timings: Timings,
    deployed_at: datetime | None = None,
) -> datetime | None:
    """The overlap (:func:`retire_overlap`) after it last stopped signing: from the recorded stop, or
    from when that switch was deployed (the deployment record) when that is later. The one rule
    ``retire``, ``plan``, ``status``, autopilot and the policy pack apply."""
    stopped = stopped_at(generation)
    if stopped is None:
        return None
    if deployed_at is not None and deployed_at > stopped:
        stopped = deployed_at
    return stopped + retire_overlap(generations, generation, timings)[0]


# ---------------------------------------------------------------------------------------------
# The gap check
#
# The model, in true time. It is the rule behind Timings.publish_lead and Timings.overlap: a
# schedule that respects both has no gap, and each second less makes one. tests/test_gaps.py
# proves the check exact against a brute-force simulation of these verifiers and signers.
#
# - Times in the stack file are when a change takes effect (the rotation PR is deployed). The
#   clocks of whoever records them, of the publisher and of the signers differ by up to
#   clockSkewSeconds (skew).
# - Publication: a generation is in the published documents over [p0, p1). p0 is when the
#   publisher first wrote it (its `first_published` record; createdAt when unknown), p1 its
#   retiredAt or revokedAt (open while pending, active or retiring).
# - Verifiers hold a copy of the document fetched at most publishMaxAgeSeconds (M) earlier: a
#   verifier at time v accepts the generation iff it was published when its copy was fetched,
#   at some f in [v - M, v].
# - Signers learn which generation is active through the same kind of delivery (an env var
#   rolled out, a trust anchor's active_key_id, a keyring), so a generation signs over
#   [activatedAt - skew, end + M + skew), end being retiringAt (or revokedAt, retiredAt). A
#   signature made at s is presented until s + tokenLifetimeSeconds (L), exclusive like JWT exp.
# - A signature is valid when its generation was not revoked at the time it was made (temporal
#   validity, as in the signing-profile runbook): a revoked generation's signatures made after
#   revokedAt are not valid, so rejecting them is no gap.
#
# Symmetric keysets (encrypt, mac) follow the same model with pods for verifiers: "published"
# is being in every consumer's keyring (decrypt-only while pending), M bounds how long a pod
# keeps running with a previous keyring (the rollout), a rejection is a pod meeting ciphertext
# (or a MAC) it cannot open, and L is how long a ciphertext is read after it was written; data
# kept longer must be re-encrypted under the active generation within the overlap.
#
# A gap is an interval of verification times at which some verifier could reject a valid
# signature. With s0 = activatedAt - skew and s1 = min(end + M + skew, revokedAt):
#   published-too-late  [s0, min(p0 + M, s1 + L))   empty iff activatedAt >= p0 + publish_lead
#   removed-too-early   [max(s0, p0, p1), s1 + L)    empty iff p1 >= end + overlap (not revoked)
# Intended gaps are reported but not warned about: a compromise revocation rejects everything
# its generation signed from revokedAt on, and the emergency replacement (activated at the
# compromised active generation's revokedAt, which is what `revoke` writes) is used before any
# verifier could have fetched it. Revocations for other reasons are not emergencies: what they
# cut short is a real gap (the commands refuse it without --force).


GapKind = Literal["published-too-late", "removed-too-early"]


@dataclass(frozen=True)
class Gap:
    """Verifiers following the cache rules may reject a valid signature of ``generation`` over
    [start, end) (verification times)."""

    keyset: str
    generation: str
    kind: GapKind
    start: datetime
    end: datetime
    intended: bool = False
    purpose: str = "sign"

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def describe(self) -> str:
        symmetric = Purpose(self.purpose).symmetric
        what = {
            "published-too-late": "was used before every pod's keyring held it" if symmetric
            else "was used before every verifier could have fetched it",
            "removed-too-early": "was removed from the keyrings while data made with it was still read"
            if symmetric else "was removed while signatures made with it were still valid",
        }[self.kind]
        effect = (
            "pods may meet data they cannot decrypt or verify"
            if Purpose(self.purpose).symmetric
            else "verifiers may reject valid signatures"
        )
        return (
            f"keyset '{self.keyset}', generation '{self.generation}' {what}: {effect}"
            f" from {_iso(self.start)} to {_iso(self.end)} ({format_duration(self.duration)})"
            + (f" (intended: {_INTENDED[self.kind]})" if self.intended else "")
        )


_INTENDED = {
    "published-too-late": "emergency rotation after a compromise",
    "removed-too-early": "compromise revocation",
}


_iso = format_time


def format_duration(d: timedelta) -> str:
    """``1d 2h 3m``: durations as the commands and messages print them."""
    seconds = int(d.total_seconds())
    days, rest = divmod(seconds, SECONDS_PER_DAY)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if v]
    return " ".join(parts) or "0s"


def published_periods(
    generation: Generation, published_at: Mapping[str, datetime] | None = None
) -> list[tuple[datetime, datetime | None]]:
    """[p0, p1) intervals during which the generation is in the published documents (keyrings).

    The first starts when the publisher first wrote it (published_since); a restore publishes it
    again from the restore. A publisher's record later than the first removal is a
    re-publication: it dates the last interval, and the first counts from createdAt.
    """
    spans = periods(generation, PUBLISHED_STATES)
    if not spans:
        return []
    since = published_since(generation, published_at)
    first_end = spans[0][1]
    if first_end is not None and since >= first_end:
        # The record postdates the first removal: the publisher forgot the kid when it left the
        # documents and recorded its re-publication, which dates the last interval.
        out = [*spans[:-1], (max(spans[-1][0], since), spans[-1][1])]
    else:
        out = [(max(spans[0][0], since), first_end), *spans[1:]]
    # A generation removed before the publisher ever wrote it was never published.
    return [(a, b) for a, b in out if b is None or b > a]


def _valid_signing(
    generation: Generation, timings: Timings, deployed_stop: datetime | None = None
) -> list[tuple[datetime, datetime | None]]:
    """[s0, s1) per signing period: when some signer may make a valid signature with it (true time).
    ``deployed_stop``: when its last stop was deployed, if later than recorded (signers switch then)."""
    skew = timedelta(seconds=timings.clock_skew_seconds)
    out = []
    windows = signing_windows(generation, timings)
    last = stopped_at(generation)
    if windows and last is not None and deployed_stop is not None and deployed_stop > last:
        windows[-1] = (windows[-1][0], deployed_stop + signer_lag(timings))
    for start, end in windows:
        s1 = end
        if generation.revoked_at is not None:
            s1 = generation.revoked_at if s1 is None else min(s1, generation.revoked_at)
        s0 = start - skew
        if s1 is None or s1 > s0:
            out.append((s0, s1))
    return out


def required_window(
    generation: Generation, timings: Timings
) -> tuple[datetime, datetime | None] | None:
    """[start, end) over which the generation must be published for no verifier to reject it:
    [activatedAt - publish_lead, stop + overlap) for a generation that was not revoked (over all
    its signing periods)."""
    windows = _valid_signing(generation, timings)
    if not windows:
        return None
    cache = timedelta(seconds=timings.publish_max_age_seconds)
    lifetime = timedelta(seconds=timings.token_lifetime_seconds)
    s1 = windows[-1][1]
    return windows[0][0] - cache, None if s1 is None else s1 + lifetime


def _emergency_times(generations: Sequence[Generation]) -> set[datetime]:
    """revokedAt of every generation revoked for compromise while it was the active one."""
    return {
        g.revoked_at for g in generations
        if g.state is State.REVOKED and g.revoke_reason == RevokeReason.COMPROMISE and g.revoked_at
        and len(path(g)) >= 2 and path(g)[-2][0] is State.ACTIVE
    }


def find_gaps(
    keyset: str,
    generations: Iterable[Generation],
    timings: Timings,
    published_at: Mapping[str, datetime] | None = None,
    *,
    purpose: str = "sign",
    deployed_stops: Mapping[str, datetime] | None = None,
) -> list[Gap]:
    """Every interval in which a verifier following the cache rules could reject a valid
    signature (or a pod meet ciphertext it cannot decrypt), per generation, sorted by time.
    ``deployed_stops``: per generation, when its last stop was deployed (the deployment record),
    which moves the end of its signing later than the stack file's time when the deploy lagged.

    A verifier at v holds a copy fetched at some f in [v - M, v]; it rejects when f falls outside
    every published interval. Before the first publication that is a late publication; after it,
    a removal. So each unpublished interval [u0, u1) rejects verifications in [u0, u1 + M).
    """
    generations = list(generations)
    emergencies = _emergency_times(generations)
    cache = timedelta(seconds=timings.publish_max_age_seconds)
    lifetime = timedelta(seconds=timings.token_lifetime_seconds)
    gaps: list[Gap] = []
    for g in generations:
        windows = _valid_signing(g, timings, (deployed_stops or {}).get(g.id))
        if not windows:
            continue
        published = published_periods(g, published_at)
        p0 = published[0][0] if published else published_since(g, published_at)
        unpublished: list[tuple[GapKind, datetime | None, datetime | None]] = [("published-too-late", None,
                                                                                p0)]
        cursor: datetime | None = p0
        for a, b in published:
            if cursor is not None and a > cursor:
                unpublished.append(("removed-too-early", cursor, a))
            cursor = b
            if cursor is None:
                break
        if cursor is not None:
            unpublished.append(("removed-too-early", cursor, None))
        # After a compromise revocation every rejection of the generation is what was asked for.
        compromised_at = g.revoked_at if g.revoke_reason == RevokeReason.COMPROMISE else None
        emergency = g.activated_at in emergencies
        pieces: list[tuple[GapKind, datetime, datetime, bool]] = []
        for s0, s1 in windows:
            v_end = None if s1 is None else s1 + lifetime
            for kind, u0, u1 in unpublished:
                start = s0 if u0 is None else max(s0, u0)
                end = v_end if u1 is None else (u1 + cache if v_end is None else min(v_end, u1 + cache))
                if end is None or start < end:
                    if end is None:
                        continue  # open-ended only while it is still signing and unpublished: impossible
                    intended = emergency and kind == "published-too-late"
                    pieces += _split(kind, start, end, compromised_at, intended)
        gaps += [Gap(keyset, g.id, kind, a, b, intended, purpose) for kind, a, b, intended in _merge(pieces)]
    return sorted(gaps, key=lambda gap: (gap.start, gap.generation, gap.kind))


def _merge(
    pieces: list[tuple[GapKind, datetime, datetime, bool]],
) -> list[tuple[GapKind, datetime, datetime, bool]]:
    """Overlapping or touching intervals of the same kind and verdict, as one."""
    out: list[tuple[GapKind, datetime, datetime, bool]] = []
    for kind, a, b, intended in sorted(pieces, key=lambda p: (p[0], p[3], p[1])):
        if out and out[-1][0] == kind and out[-1][3] == intended and a <= out[-1][2]:
            out[-1] = (kind, out[-1][1], max(out[-1][2], b), intended)
        else:
            out.append((kind, a, b, intended))
    return out


def _split(
    kind: GapKind, start: datetime, end: datetime, compromised_at: datetime | None, intended: bool
) -> list[tuple[GapKind, datetime, datetime, bool]]:
    if intended or compromised_at is None or compromised_at >= end:
        return [(kind, start, end, intended)]
    if compromised_at <= start:
        return [(kind, start, end, True)]
    return [(kind, start, compromised_at, False), (kind, compromised_at, end, True)]


def keyset_gaps(
    keyset: KeySetConfig, published_at: Mapping[str, datetime] | None = None,
    deployed_stops: Mapping[str, datetime] | None = None,
) -> list[Gap]:
    return find_gaps(
        keyset.name, keyset.generations, keyset.timings, published_at, purpose=keyset.purpose,
        deployed_stops=deployed_stops,
    )
