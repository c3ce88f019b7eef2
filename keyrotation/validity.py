"""When a signature by a generation is acceptable: the rule ``valid-at`` answers with, as intervals.

A signature made at T by a generation is valid when the generation was trusted at T (the
signing-profile runbook's rule: added before T, and not revoked or revoked after T) and T falls in
one of its signing windows (:func:`keyrotation.lifecycle.signing_windows`: every signing period,
several after a rollback, each extended by the signer lag, ``publishMaxAgeSeconds +
clockSkewSeconds``). ``valid-at`` asks :func:`trusted` and the signing windows; the key history
publishes :func:`windows`, their intersection, so that a verifier holding only the document gives
the same answer at every instant.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from . import lifecycle

if TYPE_CHECKING:
    from .config import Generation

Window = tuple[datetime, datetime | None]
"""[from, until): ``until`` None while it may still sign."""


def trusted(generation: Generation, at: datetime) -> bool:
    """Added before ``at``, and not revoked, or revoked after ``at``."""
    return generation.created_at <= at and (generation.revoked_at is None or generation.revoked_at > at)


def windows(generation: Generation, timings: lifecycle.Timings) -> list[Window]:
    """[from, until) intervals in which a signature by the generation is valid, oldest first:
    the signing windows clipped to [createdAt, revokedAt), overlapping ones merged (a rollback
    within the signer lag of the previous stop)."""
    start_of_trust, revoked = generation.created_at, generation.revoked_at
    out: list[Window] = []
    for start, end in sorted(lifecycle.signing_windows(generation, timings), key=lambda w: w[0]):
        start = max(start, start_of_trust)
        if revoked is not None:
            end = revoked if end is None else min(end, revoked)
        if end is not None and end <= start:
            continue
        if out and (out[-1][1] is None or start <= out[-1][1]):
            previous_start, previous_end = out[-1]
            merged_end = None if end is None or previous_end is None else max(end, previous_end)
            out[-1] = (previous_start, merged_end)
        else:
            out.append((start, end))
    return out


def valid(windows_: list[Window], at: datetime) -> bool:
    """What a verifier reading the published ``validity`` decides at ``at``."""
    return any(start <= at and (end is None or at < end) for start, end in windows_)
