"""What is due and when: ``status``, ``plan`` and ``valid-at`` (read-only, pure).

Every time comes from the lifecycle's rules: key age against maxAgeDays/warnDays, the publish
lead before a promote, the overlap before a retire, and the gap check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import lifecycle, validity
from ..config import Generation, KeySetConfig, StackConfig
from ..errors import CommandError
from ..identifiers import kid_needs_key
from ..lifecycle import State, format_duration
from ..times import format_time
from ..view import GenerationView, OfGeneration, view
from .kids import Kid
from .records import NO_RECORD, Publications, deployed_stops, keyset_of, kid_info, kid_of
from .transitions import deletion_window_end, retire_gate

EXIT_OK = 0
EXIT_WARNING = 3
"""status: a keyset's active generation is within warnDays of maxAgeDays."""
EXIT_OVERDUE = 4
"""status: a keyset's active generation is older than maxAgeDays."""
EXIT_GAP = 5
"""plan: the gap check finds a gap that is not intended."""
EXIT_NOT_VALID = 6
"""valid-at: the key could not have signed at that time."""


def _iso(t: datetime | None) -> str | None:
    return None if t is None else format_time(t)


# ---------------------------------------------------------------------------------------------
# status


@dataclass
class GenerationStatus(OfGeneration):
    """A generation's line in ``status``: its keyset view's entry, at ``now``, and its next step."""

    entry: GenerationView
    now: datetime
    kid: Kid
    """The key id verifiers see: deployed, rendered, computed, or unknown and why."""
    next: str | None = None
    """The next step for it and from when, e.g. ``promote from ...``."""
    next_at: datetime | None = None

    @property
    def created_at(self) -> datetime:
        return self.entry.generation.created_at

    @property
    def age(self) -> timedelta:
        return self.now - self.created_at

    @property
    def since(self) -> datetime:
        """When it entered its current state."""
        return self.entry.since

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "state": self.state, "createdAt": _iso(self.created_at),
            "ageSeconds": int(self.age.total_seconds()), "since": _iso(self.since),
            "next": self.next, "nextAt": _iso(self.next_at), **self.kid.to_json(),
        }


@dataclass
class KeysetStatus:
    name: str
    purpose: str
    algorithm: str
    backend: str
    active: str | None
    health: str
    age: timedelta | None
    due_at: datetime | None
    warn_at: datetime | None
    generations: list[GenerationStatus] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "keyset": self.name, "purpose": self.purpose, "algorithm": self.algorithm,
            "backend": self.backend, "active": self.active, "health": self.health,
            "ageSeconds": None if self.age is None else int(self.age.total_seconds()),
            "dueAt": _iso(self.due_at), "warnAt": _iso(self.warn_at),
            "generations": [g.to_json() for g in self.generations], "warnings": self.warnings,
        }


def _next_step(ks: KeySetConfig, g: Generation, record: Publications,
               now: datetime) -> tuple[str | None, datetime | None]:
    if g.state is State.PENDING:
        if g.id in record.missing:
            return f"publish it (`pulumi up`); not yet in {', '.join(record.missing[g.id])}", None
        return "promote", lifecycle.earliest_promote(g, ks.timings, record.first_published)
    if g.state is State.RETIRING:
        at, _why = retire_gate(ks, g, record)
        if at is None:
            return f"re-encrypt its data, then `rewrapped {ks.name} {g.id} --by NAME`", None
        return "retire", at
    if g.state is State.RETIRED:
        return "destroy (optional)", g.retired_at
    window_end = deletion_window_end(ks, g, record)
    if window_end is not None and now < window_end:
        # Not a step that falls due: a way back that closes (the KMS deletes the key for good).
        return (f"restore possible until {_iso(window_end)} (deletion window): `restore {ks.name} {g.id}`",
                None)
    return None, None


def status(stack: StackConfig, now: datetime,
           records: dict[str, Publications] | None = None) -> list[KeysetStatus]:
    out = []
    for name, ks in stack.keysets.items():
        record = (records or {}).get(name, NO_RECORD)
        keys = view(ks)
        age = keys.age(now)
        item = KeysetStatus(
            name, ks.purpose, ks.algorithm, ks.backend, age.generation, age.health, age.age, age.due_at,
            age.warn_at
        )
        for entry in keys.entries:
            step, at = _next_step(ks, entry.generation, record, now)
            kid = kid_info(stack, ks, entry.generation, record)
            item.generations.append(GenerationStatus(entry, now, kid, step, at))
        pending = [g for g in ks.generations if g.state is State.PENDING]
        if age.health == "overdue":
            if pending:
                at = lifecycle.earliest_promote(pending[-1], ks.timings, record.first_published)
                advice = (f"promote the pending generation now: `promote {name}`" if at <= now
                          else f"`promote {name}` from {_iso(at)} (publish lead)")
            else:
                advice = (f"rotate now: `rotate {name}`, then `promote {name}` after"
                          f" {format_duration(ks.timings.publish_lead)}")
            item.warnings.append(
                f"overdue: '{age.generation}' passed maxAgeDays ({ks.timings.max_age_days}) on"
                f" {_iso(age.due_at)};"
                f" {advice}"
            )
        elif age.health == "warning":
            item.warnings.append(
                f"due soon: '{age.generation}' reaches maxAgeDays ({ks.timings.max_age_days}) on"
                f" {_iso(age.due_at)}"
                f" (warnDays {ks.timings.warn_days})"
                + (f"; `promote {name}` once its publish lead has passed" if pending
                   else f"; `rotate {name}`")
            )
        out.append(item)
    return out


def status_exit_code(items: list[KeysetStatus]) -> int:
    health = {i.health for i in items}
    if "overdue" in health or "no-active" in health:
        return EXIT_OVERDUE
    return EXIT_WARNING if "warning" in health else EXIT_OK


# ---------------------------------------------------------------------------------------------
# plan


@dataclass(frozen=True)
class PlanStep:
    """One step of the schedule: the command to run, for which keyset and generation, from when."""

    command: str
    """``rotate``, ``promote``, ``retire``, ``rewrapped`` or ``pulumi up``."""
    keyset: str
    generation: str | None
    """The generation it acts on; None when it does not exist yet (the rotation's new one) or the
    command picks it (promote after a rotate: the newest pending generation)."""
    at: datetime | None
    """The earliest time it is allowed (or due)."""
    why: str
    args: tuple[str, ...] = ()
    """Further arguments the command needs (``--by NAME``)."""

    @property
    def what(self) -> str:
        """The command line, e.g. ``promote atlas-gateway 2026-11-30``."""
        if self.command == "pulumi up":
            return self.command
        return " ".join([self.command, self.keyset, *([self.generation] if self.generation else []),
                         *self.args])

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as (what, at, why), as the schedule's readers did when steps were tuples."""
        return iter((self.what, self.at, self.why))

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "keyset": self.keyset, "generation": self.generation,
                "from": _iso(self.at), "commandLine": self.what, "why": self.why}


@dataclass
class KeysetPlan:
    name: str
    active: str | None
    due_at: datetime | None
    rotate_by: datetime | None
    """The last moment to add a generation so it can be promoted (publish lead) before due."""
    steps: list[PlanStep] = field(default_factory=list)
    """(what, earliest time, why): the schedule from now."""
    gaps: list[lifecycle.Gap] = field(default_factory=list)
    published_from: str | None = None

    @property
    def unintended_gaps(self) -> list[lifecycle.Gap]:
        return [g for g in self.gaps if not g.intended]

    def to_json(self) -> dict[str, Any]:
        return {
            "keyset": self.name, "active": self.active, "dueAt": _iso(self.due_at),
            "rotateBy": _iso(self.rotate_by),
            "steps": [s.to_json() for s in self.steps],
            "gapCheck": {
                "verdict": "gap" if self.unintended_gaps else "no gap",
                "gaps": [
                    {"generation": g.generation, "kind": g.kind, "start": _iso(g.start), "end": _iso(g.end),
                     "intended": g.intended, "message": g.describe()}
                    for g in self.gaps
                ],
            },
            "publishedFrom": self.published_from,
        }


def plan(stack: StackConfig, now: datetime,
         records: dict[str, Publications] | None = None) -> list[KeysetPlan]:
    out = []
    for name, ks in stack.keysets.items():
        record = (records or {}).get(name, NO_RECORD)
        t = ks.timings
        age = view(ks).age(now)
        rotate_by = None if age.due_at is None else age.due_at - t.publish_lead
        item = KeysetPlan(name, age.generation, age.due_at, rotate_by,
                          published_from=record.source or "createdAt (no publisher record)")
        pending = [g for g in ks.generations if g.state is State.PENDING]
        trigger = pending[-1].trigger if pending else None
        if pending:
            p = pending[-1]
            at = lifecycle.earliest_promote(p, t, record.first_published)
            if p.id in record.missing:
                item.steps.append(PlanStep("pulumi up", name, p.id, now,
                                           f"'{p.id}' is not yet in {', '.join(record.missing[p.id])}"))
                at = max(at, now + t.publish_lead)
            promote_at = max(at, now)
            item.steps.append(PlanStep("promote", name, p.id, promote_at,
                                       f"publish lead {format_duration(t.publish_lead)} after it was first"
                                       " published"))
        else:
            start = now if age.warn_at is None or rotate_by is None else max(now, min(age.warn_at, rotate_by))
            item.steps.append(PlanStep("rotate", name, None, start,
                                       f"due {_iso(age.due_at)}; rotate by {_iso(rotate_by)} to promote in"
                                       " time"
                                       if age.due_at else "no active generation"))
            promote_at = start + t.publish_lead
            item.steps.append(PlanStep("promote", name, None, promote_at,
                                       f"publish lead {format_duration(t.publish_lead)}"))
        if age.generation is not None:
            overlap = lifecycle.trigger_overlap(t, trigger)
            item.steps.append(PlanStep("retire", name, age.generation, promote_at + overlap,
                                       f"overlap {format_duration(overlap)} after the promote"
                                       + (f" (trigger {trigger})" if overlap > t.overlap else "")))
        for g in ks.generations:
            if g.state is State.RETIRING:
                retire_at, why = retire_gate(ks, g, record)
                if retire_at is None:
                    item.steps.append(PlanStep("rewrapped", name, g.id, now, why, ("--by", "NAME")))
                    continue
                item.steps.append(PlanStep("retire", name, g.id, max(now, retire_at), why))
        item.steps.sort(key=lambda s: s.at or now)
        item.gaps = lifecycle.keyset_gaps(ks, record.first_published, deployed_stops(ks, record))
        out.append(item)
    return out


def plan_exit_code(items: list[KeysetPlan]) -> int:
    return EXIT_GAP if any(i.unintended_gaps for i in items) else EXIT_OK


# ---------------------------------------------------------------------------------------------
# valid-at


@dataclass
class Validity:
    keyset: str
    generation: str
    kid: Kid
    """The real kid, or unknown and why."""
    at: datetime
    trusted: bool
    """The signing-profile runbook's rule: added before T, and not revoked or revoked after T."""
    signing: bool
    """The lifecycle's: T falls in the generation's signing window (skew and propagation included)."""
    reasons: list[str]

    @property
    def valid(self) -> bool:
        return self.trusted and self.signing

    def to_json(self) -> dict[str, Any]:
        return {
            "keyset": self.keyset, "generation": self.generation, **self.kid.to_json(), "at": _iso(self.at),
            "valid": self.valid, "trusted": self.trusted, "signing": self.signing, "reasons": self.reasons,
        }


def valid_at(
    stack: StackConfig, keyset: str, kid: str, at: datetime, record: Publications = NO_RECORD
) -> Validity:
    ks = keyset_of(stack, keyset)
    generation = _by_kid(stack, ks, kid, record)
    g, t = generation, ks.timings
    reasons: list[str] = []
    trusted = validity.trusted(g, at)
    if g.created_at > at:
        reasons.append(f"added {_iso(g.created_at)}, after {_iso(at)}")
    else:
        reasons.append(f"added {_iso(g.created_at)}, before {_iso(at)}")
    if g.revoked_at is None:
        reasons.append("never revoked")
    elif g.revoked_at > at:
        reasons.append(f"revoked {_iso(g.revoked_at)} ({g.revoke_reason}), after {_iso(at)}")
        if g.revoke_reason == "compromise":
            reasons.append("compromised key: trust a time before the revocation only if it is attested"
                           " independently (a transparency log), not claimed by the signature")
    else:
        reasons.append(f"revoked {_iso(g.revoked_at)} ({g.revoke_reason}), before {_iso(at)}")
    entry = view(ks).entry(g.id)
    windows, periods = entry.signing_windows, entry.signing_periods
    lag = lifecycle.signer_lag(t)
    if not windows:
        signing = False
        reasons.append("it never signed (never active)")
    else:
        signing = any(first <= at and (last is None or at < last) for first, last in windows)
        spans = "; ".join(f"{_iso(a)} until {_iso(b) if b else 'now'}" for a, b in periods)
        if signing:
            reasons.append(f"it was signing then (active {spans})")
        elif at < windows[0][0]:
            reasons.append(f"it started signing {_iso(periods[0][0])}, after {_iso(at)}")
        elif len(periods) == 1:
            reasons.append(f"it stopped signing {_iso(periods[0][1])} (signers lag up to"
                           f" {format_duration(lag)}),"
                           f" before {_iso(at)}")
        else:
            reasons.append(f"it was not signing then (active {spans}; signers lag up to"
                           f" {format_duration(lag)}"
                           " after each stop)")
    return Validity(keyset, g.id, kid_info(stack, ks, g, record), at, trusted, signing, reasons)


def _by_kid(stack: StackConfig, ks: KeySetConfig, kid: str, record: Publications) -> Generation:
    for g in ks.generations:
        if kid in (g.id, kid_info(stack, ks, g, record).value):
            return g
    kids = ", ".join(kid_of(stack, ks, g, record) for g in ks.generations)
    hint = ("" if not kid_needs_key(ks.kid) or record.kids
            else " (thumbprint kids are known from the stack outputs: --outputs)")
    raise CommandError(
        f"{stack.stack_file}: keyset '{ks.name}' has no generation with kid or id '{kid}' (kids:"
        f" {kids}){hint}"
    )
