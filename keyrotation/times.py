"""Time as the whole project writes and reads it: RFC 3339 in UTC with a ``Z``, and day length.

One definition each, imported by the stack-file editor, the documents, the metadata on key
resources, the publisher, the policy pack and the commands.
"""

from __future__ import annotations

from datetime import UTC, datetime

SECONDS_PER_DAY = 86400


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with a Z (``2026-11-23T09:00:00Z``), as stack files and documents write times."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_optional(t: datetime | None) -> str | None:
    return None if t is None else format_time(t)


def utc_now() -> datetime:
    """The wall clock, to the second."""
    return datetime.now(UTC).replace(microsecond=0)
