"""One view of a keyset, computed once from its generations (Tink's keyset handle, for this project).

The invariants of a keyset are checked in one pass (:func:`keyset_problems`, after Tink's
``_validate_keyset``): exactly one of its generations is active (none in an empty keyset). The active one is
then a pointer (:attr:`KeysetView.primary`), not a flag each reader looks for again. Everything a
reader asks of a keyset (what is published, what decrypts, when rotation is due, when each
generation signed, what may be destroyed next) is a property of the view; the components, the
policy pack, the commands, the timeline and the documents read it instead of deriving it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from . import lifecycle
from .lifecycle import PUBLISHED_STATES, TRANSITIONS, Age, State, Timings, active_generation, active_ids

if TYPE_CHECKING:
    from .config import Generation, KeySetConfig

__all__ = ["KeysetView", "keyset_problems", "view"]


def keyset_problems(purpose: str, generations: Sequence[Generation]) -> list[str]:
    """Every invariant of a keyset as a whole, in one pass; empty when the keyset is sound."""
    active = active_ids((g.id, g.state) for g in generations)
    if len(active) != 1:
        found = f"{len(active)} ({', '.join(active)})" if active else "none"
        return [f"a {purpose} keyset needs exactly one 'active' generation; found {found}"]
    return []


@dataclass(frozen=True)
class KeysetView:
    """A validated keyset as every reader sees it. Make it with :func:`view`."""

    name: str
    purpose: str
    timings: Timings
    generations: tuple[Generation, ...]
    primary: str
    """The active generation's id: the pointer, Tink's ``primary_key_id``."""
    _by_id: dict[str, Generation] = field(repr=False, compare=False, default_factory=dict)

    def generation(self, generation_id: str) -> Generation:
        return self._by_id[generation_id]

    @property
    def active(self) -> Generation:
        return self._by_id[self.primary]

    @property
    def published(self) -> tuple[Generation, ...]:
        """The generations the documents list (pending, active, retiring), oldest first."""
        return tuple(g for g in self.generations if g.state in PUBLISHED_STATES)

    @property
    def ring(self) -> tuple[Generation, ...]:
        """The generations every consumer's keyring holds: those that decrypt (the published ones)."""
        return self.published

    def age(self, now: datetime) -> Age:
        """The active generation's age at ``now``: when rotation is due and warned of, and health."""
        return lifecycle.key_age(self.generations, self.timings, now)

    @property
    def due_at(self) -> datetime | None:
        """When the active generation reaches the maximum age (None: it has no activatedAt)."""
        activated = self.active.activated_at
        return None if activated is None else activated + self.timings.max_age

    @property
    def warn_at(self) -> datetime | None:
        return None if self.due_at is None else self.due_at - self.timings.warn_before

    def signing_windows(self) -> dict[str, list[tuple[datetime, datetime | None]]]:
        """Per generation, when a signature (encryption) it made was legitimately made."""
        return {g.id: lifecycle.signing_windows(g, self.timings) for g in self.generations}

    @property
    def destroyable(self) -> tuple[Generation, ...]:
        """The generations the lifecycle lets ``destroy`` act on next (retired ones)."""
        return tuple(g for g in self.generations if State.DESTROYED in TRANSITIONS[g.state])


def view(keyset: KeySetConfig) -> KeysetView:
    """The view of a validated keyset (the config has checked :func:`keyset_problems`)."""
    active = active_generation(keyset.generations)
    if active is None:
        raise ValueError(f"keyset '{keyset.name}':"
                         f" {'; '.join(keyset_problems(keyset.purpose, keyset.generations))}")
    return KeysetView(
        name=keyset.name, purpose=str(keyset.purpose), timings=keyset.timings,
        generations=tuple(keyset.generations), primary=active.id,
        _by_id={g.id: g for g in keyset.generations},
    )
