"""Time as the whole project writes and reads it: RFC 3339 in UTC with a ``Z``, in range, and day length.

One definition each, imported by the stack-file editor and validator, the documents, the metadata
on key resources, the publisher, the policy pack and the commands. One parser for every place a
time comes from a person or a file (stack-file fields, ``--now``, ``--at``, the clock variable
``names.NOW_VARIABLE``, the publisher's records), so a number is never read as a Unix time, an
empty string never means "the clock", and no time is so far out that arithmetic on it overflows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import KeyRotationError

SECONDS_PER_DAY = 86400


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with a Z (``2026-11-23T09:00:00Z``), as stack files and documents write times."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_optional(t: datetime | None) -> str | None:
    return None if t is None else format_time(t)


def utc_now() -> datetime:
    """The wall clock, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""No key this program manages was made before this."""
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Times from here on are refused: far beyond any key's life, well inside ``datetime``'s range."""
FUTURE_TOLERANCE = timedelta(days=366)
"""A recorded time (createdAt, activatedAt, ...) may be at most this far after now."""

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
EXAMPLE = "2026-11-23T09:00:00Z"


class TimeError(KeyRotationError, ValueError):
    """Not a usable time; the message says what is allowed (and never repeats a long input)."""


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: inputs are echoed in errors, never in full."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


def parse(text: object) -> datetime:
    """An RFC 3339 time with a timezone (``2026-11-23T09:00:00Z``), as an aware datetime in range."""
    if isinstance(text, datetime):
        value = text
        if value.tzinfo is None:
            raise TimeError(f"needs a timezone, e.g. {EXAMPLE} (RFC 3339)")
    elif not isinstance(text, str):
        what = str(text).lower() if isinstance(text, bool) else f"{type(text).__name__} {shown(text)}"
        raise TimeError(f"must be an RFC 3339 time in quotes, e.g. \"{EXAMPLE}\", not {what}")
    else:
        if not _RFC3339.fullmatch(text):
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", text):
                raise TimeError(f"needs a timezone, e.g. {EXAMPLE} (RFC 3339)")
            raise TimeError(f"is not an RFC 3339 time: {shown(text)} (write e.g. {EXAMPLE})")
        try:
            value = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        except ValueError:
            raise TimeError(
                f"is not an RFC 3339 time: {shown(text)} (no such date, time or offset)"
            ) from None
    # The year first: converting year 1 or 9999 with an offset to UTC would itself overflow.
    if not (EARLIEST.year <= value.year < LATEST.year and EARLIEST <= value < LATEST):
        raise TimeError(
            f"{shown(text if isinstance(text, str) else value.isoformat())} is out of range: times are from"
            f" {format_time(EARLIEST)}"
            f" to before {format_time(LATEST)}"
        )
    return value.astimezone(UTC)


def future_problem(t: datetime, now: datetime) -> str | None:
    """Why a recorded time is too far after ``now`` (None when it is not)."""
    if t > now + FUTURE_TOLERANCE:
        return (
            f"{format_time(t)} is more than {FUTURE_TOLERANCE.days} days after now ({format_time(now)}):"
            " a recorded time cannot be that far in the future"
        )
    return None
