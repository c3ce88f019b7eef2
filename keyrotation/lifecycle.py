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
    State.RETIRED: ("retiredAt",),
    State.DESTROYED: ("retiredAt", "destroyedAt"),
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
# Model (docs/design.md): a generation signs (or encrypts) during [activatedAt, end), end being
# retiringAt or revokedAt (open while active). A signer whose clock is up to clockSkewSeconds
# ahead starts that much earlier and one behind stops that much later. A signature made at time
# s is checked by verifiers until s + tokenLifetimeSeconds, each with a copy of the published
# document it fetched at most publishMaxAgeSeconds earlier. So a generation must be published
# over [activatedAt - skew - maxAge, end + skew + tokenLifetime]; every part of that interval in
# which it was not is a gap: some verifier that follows the cache rules could reject a valid
# signature there (for encrypt keysets: some pod could meet ciphertext it cannot decrypt).
# A compromise revocation removes a key at once on purpose: those gaps are reported with
# ``intended=True``.


GapKind = Literal["published-too-late", "removed-too-early"]


@dataclass(frozen=True)
class Gap:
    keyset: str
    generation: str
    kind: GapKind
    start: datetime
    end: datetime
    intended: bool = False

    def describe(self) -> str:
        what = {
            "published-too-late": "was published after verifiers could first see its signatures",
            "removed-too-early": "was removed while signatures made with it were still valid",
        }[self.kind]
        return (
            f"keyset '{self.keyset}', generation '{self.generation}' {what}: verifiers may reject"
            f" valid signatures from {_iso(self.start)} to {_iso(self.end)}"
            + (" (intended: compromise revocation)" if self.intended else "")
        )


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def signing_window(generation: Generation) -> tuple[datetime, datetime | None] | None:
    """[start, end) during which the generation signs; end None while it still does."""
    if generation.activated_at is None:
        return None
    end = generation.retiring_at or generation.revoked_at
    if end is None and generation.state is not State.ACTIVE:
        # retired/destroyed without retiringAt: it stopped at the latest when it was retired.
        end = generation.retired_at
    return generation.activated_at, end


def published_window(
    generation: Generation, published_at: Mapping[str, datetime] | None = None
) -> tuple[datetime, datetime | None]:
    """[start, end) during which the generation is published; end None while it still is."""
    start = published_since(generation, published_at)
    if generation.state in PUBLISHED_STATES:
        return start, None
    end = generation.revoked_at if generation.state is State.REVOKED else generation.retired_at
    if generation.state is State.REVOKED and generation.retired_at is not None:
        end = min(generation.retired_at, generation.revoked_at)
    return start, end


def required_window(
    generation: Generation, timings: Timings
) -> tuple[datetime, datetime | None] | None:
    window = signing_window(generation)
    if window is None:
        return None
    start, end = window
    skew = timedelta(seconds=timings.clock_skew_seconds)
    cache = timedelta(seconds=timings.publish_max_age_seconds)
    lifetime = timedelta(seconds=timings.token_lifetime_seconds)
    return start - skew - cache, (None if end is None else end + skew + lifetime)


def find_gaps(
    keyset: str,
    generations: Iterable[Generation],
    timings: Timings,
    published_at: Mapping[str, datetime] | None = None,
) -> list[Gap]:
    """Every interval in which a verifier following the cache rules could reject a signature."""
    generations = list(generations)
    # An emergency rotation activates the replacement of a compromised key at once, on purpose.
    compromised_at = [
        g.revoked_at for g in generations
        if g.state is State.REVOKED and g.revoke_reason == "compromise" and g.revoked_at
    ]
    gaps: list[Gap] = []
    for generation in generations:
        need = required_window(generation, timings)
        if need is None:
            continue
        need_start, need_end = need
        pub_start, pub_end = published_window(generation, published_at)
        if pub_start > need_start:
            emergency = any(
                timedelta(0) <= generation.activated_at - t <= timings.publish_lead
                for t in compromised_at
            )
            gaps.append(
                Gap(keyset, generation.id, "published-too-late", need_start,
                    min(pub_start, need_end) if need_end else pub_start, emergency)
            )
        if pub_end is not None and (need_end is None or pub_end < need_end):
            # a key removed before its last signature expired (or while it still signs)
            end = need_end if need_end is not None else pub_end + timedelta(
                seconds=timings.token_lifetime_seconds + timings.clock_skew_seconds
            )
            intended = generation.state is State.REVOKED
            gaps.append(
                Gap(keyset, generation.id, "removed-too-early", max(pub_end, need_start), end,
                    intended)
            )
    return sorted(gaps, key=lambda g: (g.start, g.generation))


def keyset_gaps(
    keyset: KeySet, published_at: Mapping[str, datetime] | None = None
) -> list[Gap]:
    return find_gaps(keyset.name, keyset.generations, keyset.timings, published_at)
