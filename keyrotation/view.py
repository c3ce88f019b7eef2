"""One view of a keyset, computed once from its generations (Tink's keyset handle, for this project).

The invariants of a keyset are checked in one pass (:func:`keyset_problems`, after Tink's
``_validate_keyset``): exactly one of its generations is active (none in an empty keyset). The active one is
then a pointer (:attr:`KeysetView.primary`), not a flag each reader looks for again. Everything a
reader asks of a keyset (what is published, what decrypts, when rotation is due, when each
generation signed, what may be destroyed next) is a property of the view, and everything it asks of
one generation (its path, since when it is in its state, its signing periods and windows, when a
signature by it is valid) a property of the view's :class:`GenerationView`. The components, the
policy pack, the commands, the timeline and the documents read them instead of deriving them; the
per-generation shapes they hand on (``documents.KeyRecord``, ``delivery.DeliveredGeneration``,
``schedule.GenerationStatus``) hold the view's entry and add only what the view cannot know (a kid,
a public key, a resolved key id, a next step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from . import lifecycle, validity
from .lifecycle import PUBLISHED_STATES, TRANSITIONS, Age, State, Timings, active_ids, primary_id

if TYPE_CHECKING:
    from .config import Generation, KeySetConfig

__all__ = ["GenerationView", "KeysetView", "OfGeneration", "Span", "keyset_problems", "view"]

Span = tuple[datetime, datetime | None]
"""[from, until): ``until`` None while it lasts."""


def keyset_problems(purpose: str, generations: Sequence[Generation]) -> list[str]:
    """Every invariant of a keyset as a whole, in one pass; empty when the keyset is sound."""
    if primary_id((g.id, g.state) for g in generations) is None:
        active = active_ids((g.id, g.state) for g in generations)
        found = f"{len(active)} ({', '.join(active)})" if active else "none"
        return [f"a {purpose} keyset needs exactly one 'active' generation; found {found}"]
    return []


@dataclass(frozen=True)
class GenerationView:
    """One generation of a keyset with what follows from its record, each fact computed once."""

    generation: Generation
    """The stack file's record (``keyrotation.config.Generation``)."""
    timings: Timings = field(default_factory=Timings)
    """The keyset's: the signer lag and skew of the signing windows and the validity."""

    @property
    def id(self) -> str:
        return self.generation.id

    @property
    def state(self) -> State:
        return self.generation.state

    @cached_property
    def path(self) -> tuple[tuple[State, datetime], ...]:
        """Every step the generation took (state, when), oldest first: ``lifecycle.path``."""
        return tuple(lifecycle.path(self.generation))

    @cached_property
    def spans(self) -> tuple[tuple[State, datetime, datetime | None], ...]:
        """The states it went through: (state, from, until or None while current), steps of no
        length left out."""
        out = []
        for i, (state, start) in enumerate(self.path):
            end = self.path[i + 1][1] if i + 1 < len(self.path) else None
            if end is None or end > start:
                out.append((state, start, end))
        return tuple(out)

    @property
    def since(self) -> datetime:
        """When it last entered its current state."""
        return next((at for state, at in reversed(self.path) if state is self.state),
                    self.generation.created_at)

    @cached_property
    def signing_periods(self) -> tuple[Span, ...]:
        """When it signed/encrypted, as recorded (several after a rollback)."""
        return tuple(lifecycle.signing_periods(self.generation))

    @cached_property
    def signing_windows(self) -> tuple[Span, ...]:
        """Each signing period extended by the signer lag: when a signature by it was made."""
        return tuple(lifecycle.signing_windows(self.generation, self.timings))

    @cached_property
    def validity(self) -> tuple[Span, ...]:
        """When a signature by it is valid: ``validity.windows`` (what ``valid-at`` answers with)."""
        return tuple(validity.windows(self.generation, self.timings))

    @property
    def published(self) -> bool:
        """Listed by the documents, and in every consumer's keyring (it decrypts/verifies)."""
        return self.state in PUBLISHED_STATES

    @property
    def destroyable(self) -> bool:
        """The lifecycle lets ``destroy`` act on it next (a retired generation)."""
        return State.DESTROYED in TRANSITIONS[self.state]


class OfGeneration:
    """A shape that hands on a generation: its view entry, and what it adds that the view cannot
    know (a kid, a public key, a resolved key id, a next step). The generation's own facts are the
    entry's, never copies."""

    entry: GenerationView

    @property
    def id(self) -> str:
        return self.entry.id

    @property
    def state(self) -> State:
        return self.entry.state


@dataclass(frozen=True)
class KeysetView:
    """A validated keyset as every reader sees it. Make it with :func:`view`."""

    name: str
    purpose: str
    timings: Timings
    entries: tuple[GenerationView, ...]
    """Every generation, in stack-file order."""
    primary: str
    """The active generation's id: the pointer, Tink's ``primary_key_id``."""
    _by_id: dict[str, GenerationView] = field(repr=False, compare=False, default_factory=dict)

    @property
    def generations(self) -> tuple[Generation, ...]:
        return tuple(e.generation for e in self.entries)

    def entry(self, generation_id: str) -> GenerationView:
        return self._by_id[generation_id]

    def generation(self, generation_id: str) -> Generation:
        return self._by_id[generation_id].generation

    @property
    def active(self) -> Generation:
        return self.generation(self.primary)

    @property
    def published(self) -> tuple[Generation, ...]:
        """The generations the documents list (pending, active, retiring), oldest first."""
        return tuple(e.generation for e in self.entries if e.published)

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

    def signing_windows(self) -> dict[str, list[Span]]:
        """Per generation, when a signature (encryption) it made was legitimately made."""
        return {e.id: list(e.signing_windows) for e in self.entries}

    @property
    def destroyable(self) -> tuple[Generation, ...]:
        """The generations the lifecycle lets ``destroy`` act on next (retired ones)."""
        return tuple(e.generation for e in self.entries if e.destroyable)


def view(keyset: KeySetConfig) -> KeysetView:
    """The view of a validated keyset (the config has checked :func:`keyset_problems`)."""
    primary = primary_id((g.id, g.state) for g in keyset.generations)
    if primary is None:
        raise ValueError(f"keyset '{keyset.name}':"
                         f" {'; '.join(keyset_problems(keyset.purpose, keyset.generations))}")
    entries = tuple(GenerationView(g, keyset.timings) for g in keyset.generations)
    return KeysetView(
        name=keyset.name, purpose=str(keyset.purpose), timings=keyset.timings,
        entries=entries, primary=primary, _by_id={e.id: e for e in entries},
    )
