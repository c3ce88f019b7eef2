"""The project's errors: one base, so that the command line and the program catch one class.

Every error here is for people: its message names the stack file, keyset, generation and field,
says what is wrong and what to do. Each module defines the errors of its own job
(``ConfigError`` in :mod:`keyrotation.problems`, ``TimeError`` in :mod:`keyrotation.times`, ...);
all of them derive from :class:`KeyRotationError`.
"""

from __future__ import annotations

__all__ = ["CommandError", "KeyRotationError"]


class KeyRotationError(Exception):
    """Bad input or a refused action, explained in the message; never a bug."""


class CommandError(KeyRotationError):
    """Bad input or a refused command; the message says what is wrong and what to do."""
