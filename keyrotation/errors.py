"""The project's errors: one base, so that the command line and the program catch one class.

Every error here is for people: its message names the stack file, keyset, generation and field,
says what is wrong and what to do. Each module defines the errors of its own job
(``ConfigError`` in :mod:`keyrotation.problems`, ``TimeError`` in :mod:`keyrotation.times`, ...);
all of them derive from :class:`KeyRotationError`.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["CommandError", "KeyRotationError"]


class KeyRotationError(Exception):
    """Bad input or a refused action, explained in the message; never a bug."""


class CommandError(KeyRotationError):
    """Bad input or a refused command; the message says what is wrong and what to do.

    ``allowed_from``: for a step refused only because it is too early (promote before the publish
    lead, retire before the overlap, ...), the earliest time it is allowed; `--json` reports it."""

    def __init__(self, message: str, *, allowed_from: datetime | None = None) -> None:
        super().__init__(message)
        self.allowed_from = allowed_from
