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

if TYPE_CHECKING:
    from .config import Generation, KeySet


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
    State.RETIRED: frozenset({State.DESTROYED, State.REVOKED}),
    State.DESTROYED: frozenset(),
    State.REVOKED: frozenset(),
}

REVOKE_REASONS = ("compromise", "personnel", "hardware", "superseded")

# The timestamp each state requires (beyond createdAt), and the ones it must not have yet.
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


def active_generation(generations: Sequence[Generation]) -> Generation | None:
    active = [g for g in generations if g.state is State.ACTIVE]
    return active[0] if len(active) == 1 else None


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


def earliest_retire(generation: Generation, timings: Timings) -> datetime | None:
    if generation.retiring_at is None:
        return None
    return generation.retiring_at + timings.overlap


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
#   removed-too-early   [max(s0, p1), s1 + L)        empty iff p1 >= end + overlap (not revoked)
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
        what = {
            "published-too-late": "was used before every verifier could have fetched it",
            "removed-too-early": "was removed while signatures made with it were still valid",
        }[self.kind]
        effect = (
            "pods may meet data they cannot decrypt or verify"
            if self.purpose in ("encrypt", "mac")
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


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def format_duration(d: timedelta) -> str:
    """``1d 2h 3m``: durations as the commands and messages print them."""
    seconds = int(d.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if v]
    return " ".join(parts) or "0s"


def signing_window(generation: Generation) -> tuple[datetime, datetime | None] | None:
    """[activatedAt, end) as recorded: end None while it is active, no window if it never signed."""
    if generation.activated_at is None:
        return None
    end = generation.retiring_at or generation.revoked_at
    if end is None and generation.state is not State.ACTIVE:
        # retired/destroyed without retiringAt: it stopped at the latest when it was retired.
        end = generation.retired_at
    if end is not None and end <= generation.activated_at:
        return None  # activated and replaced in the same instant: no signer ever used it
    return generation.activated_at, end


def published_window(
    generation: Generation, published_at: Mapping[str, datetime] | None = None
) -> tuple[datetime, datetime | None]:
    """[p0, p1) during which the generation is published; p1 None while it still is."""
    start = published_since(generation, published_at)
    if generation.state in PUBLISHED_STATES:
        return start, None
    ends = [t for t in (generation.retired_at, generation.revoked_at) if t is not None]
    return start, min(ends) if ends else None


def _valid_signing(generation: Generation, timings: Timings) -> tuple[datetime, datetime | None] | None:
    """[s0, s1): when some signer may make a valid signature with the generation."""
    window = signing_window(generation)
    if window is None:
        return None
    start, end = window
    skew = timedelta(seconds=timings.clock_skew_seconds)
    cache = timedelta(seconds=timings.publish_max_age_seconds)
    s1 = None if end is None else end + cache + skew
    if generation.revoked_at is not None:
        s1 = generation.revoked_at if s1 is None else min(s1, generation.revoked_at)
    return start - skew, s1


def required_window(
    generation: Generation, timings: Timings
) -> tuple[datetime, datetime | None] | None:
    """[start, end) over which the generation must be published for no verifier to reject it:
    [activatedAt - publish_lead, retiringAt + overlap) for a generation that was not revoked."""
    signing = _valid_signing(generation, timings)
    if signing is None:
        return None
    s0, s1 = signing
    cache = timedelta(seconds=timings.publish_max_age_seconds)
    lifetime = timedelta(seconds=timings.token_lifetime_seconds)
    return s0 - cache, None if s1 is None else s1 + lifetime


def _emergency_times(generations: Sequence[Generation]) -> set[datetime]:
    """revokedAt of every generation revoked for compromise while it was the active one."""
    return {
        g.revoked_at for g in generations
        if g.state is State.REVOKED and g.revoke_reason == "compromise" and g.revoked_at
        and g.activated_at is not None and g.retiring_at is None and g.retired_at is None
    }


def find_gaps(
    keyset: str,
    generations: Iterable[Generation],
    timings: Timings,
    published_at: Mapping[str, datetime] | None = None,
    *,
    purpose: str = "sign",
) -> list[Gap]:
    """Every interval in which a verifier following the cache rules could reject a valid
    signature (or a pod meet ciphertext it cannot decrypt), per generation, sorted by time."""
    generations = list(generations)
    emergencies = _emergency_times(generations)
    cache = timedelta(seconds=timings.publish_max_age_seconds)
    lifetime = timedelta(seconds=timings.token_lifetime_seconds)
    gaps: list[Gap] = []
    for g in generations:
        signing = _valid_signing(g, timings)
        if signing is None:
            continue
        s0, s1 = signing
        v_end = None if s1 is None else s1 + lifetime
        p0, p1 = published_window(g, published_at)
        # After a compromise revocation every rejection of the generation is what was asked for.
        compromised_at = g.revoked_at if g.revoke_reason == "compromise" else None
        emergency = g.activated_at in emergencies
        pieces: list[tuple[GapKind, datetime, datetime, bool]] = []
        late_end = p0 + cache if v_end is None else min(p0 + cache, v_end)
        if s0 < late_end:
            pieces += _split("published-too-late", s0, late_end, compromised_at, emergency)
        # (p1 is only set once the generation stopped signing, so v_end is then known.)
        if p1 is not None and v_end is not None and max(s0, p1) < v_end:
            pieces += _split("removed-too-early", max(s0, p1), v_end, compromised_at, False)
        gaps += [Gap(keyset, g.id, kind, a, b, intended, purpose) for kind, a, b, intended in pieces]
    return sorted(gaps, key=lambda gap: (gap.start, gap.generation, gap.kind))


def _split(
    kind: GapKind, start: datetime, end: datetime, compromised_at: datetime | None, intended: bool
) -> list[tuple[GapKind, datetime, datetime, bool]]:
    if intended or compromised_at is None or compromised_at >= end:
        return [(kind, start, end, intended)]
    if compromised_at <= start:
        return [(kind, start, end, True)]
    return [(kind, start, compromised_at, False), (kind, compromised_at, end, True)]


def keyset_gaps(
    keyset: KeySet, published_at: Mapping[str, datetime] | None = None
) -> list[Gap]:
    return find_gaps(
        keyset.name, keyset.generations, keyset.timings, published_at, purpose=keyset.purpose
    )
