"""Autopilot: at its time, every rotation step that is due and safe, as one reviewable edit.

It decides only *when*; whether a step is safe is the commands' own rule (``transitions.promote``,
``retire``, ``rotate``, ``destroy`` refuse what is not), and every time it waits for comes from
the lifecycle (publish lead, overlap, ``retire_gate``) and the stack outputs (the publisher's
first-published record, the deployment record). It never revokes and never forces.

The schedule, per keyset (docs/design.md, "Autopilot"):

- promote the pending generation at the latest run that still lets the change be deployed
  before the active generation reaches maxAgeDays: ``slackHours`` (review and deployment) and
  one run interval (``everyMinutes``) before the due date, counted from when the active
  generation's promote was deployed, and never later than one run before its recorded due date;
- in the same edit, add the next pending generation (it is pre-published for a whole period)
  and retire what finished its overlap (tidy-up steps ride along with a change);
- a tidy-up step (retire after the overlap, destroy after ``destroyAfterDays``) goes alone only
  ``tidyAfterDays`` after it became allowed;
- a production keyset with ``staging`` takes a step only after the same step has been deployed
  in staging for ``soakHours``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import lifecycle, times
from ..config import Generation, KeySetConfig, StackConfig
from ..errors import CommandError
from ..lifecycle import State
from . import transitions
from .records import Publications, deployed_switch
from .stackfile import Edit
from .transitions import Result, retire_gate

EXIT_CHANGED = 0
"""autopilot: it made (or, with --dry-run, would make) a change."""
EXIT_NOTHING_DUE = 7
"""autopilot: nothing is due; the stack file is unchanged."""
EXIT_BLOCKED = 8
"""autopilot: nothing changed, and a step is due that it cannot take (the output says why)."""

STEP_STATE = {"rotate": State.PENDING, "promote": State.ACTIVE, "retire": State.RETIRED,
              "destroy": State.DESTROYED}
"""The deployed switch that shows a step live in staging."""


@dataclass(frozen=True)
class Taken:
    keyset: str
    command: str
    generation: str
    why: str
    rides_along: bool = False
    """A tidy-up step that was allowed but not due: it costs no pull request of its own."""


@dataclass(frozen=True)
class Waiting:
    keyset: str
    step: str
    at: datetime | None
    """When it falls due; None: when the stack outputs change (a deployment)."""
    why: str


@dataclass(frozen=True)
class Blocked:
    keyset: str
    step: str
    why: str


@dataclass(frozen=True)
class StagingFacts:
    """Staging's deployment record, as a StackReference reads it (``keysets.<name>.deployments``)."""

    source: str
    deployments: dict[str, dict[str, list[tuple[str, datetime]]]] = field(default_factory=dict)

    def latest(self, keyset: str, state: State) -> datetime | None:
        times_ = [at for entries in self.deployments.get(keyset, {}).values()
                  for s, at in entries if s == str(state)]
        return max(times_) if times_ else None


def staging_facts(outputs: dict[str, Any], source: str) -> StagingFacts:
    """Read staging's ``deployments`` from its ``pulumi stack output --json``."""
    keysets = outputs.get("keysets")
    if not isinstance(keysets, dict):
        raise CommandError(f"{source}: no 'keysets' output; has the staging stack been deployed?")
    out: dict[str, dict[str, list[tuple[str, datetime]]]] = {}
    for name, summary in keysets.items():
        deployments = summary.get("deployments") if isinstance(summary, dict) else None
        if not isinstance(deployments, dict):
            continue
        for gid, entries in deployments.items():
            for i, entry in enumerate(entries or []):
                try:
                    at = times.parse(entry.get("at"))
                except (times.TimeError, AttributeError) as error:
                    field = f"keysets.{name}.deployments.{gid}[{i}].at"
                    raise CommandError(f"{source}: {field}: {error}") from None
                out.setdefault(str(name), {}).setdefault(str(gid), []).append((str(entry.get("state")), at))
    return StagingFacts(source, out)


@dataclass
class Outcome:
    before: StackConfig
    stack: StackConfig
    now: datetime
    taken: list[Taken] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.edits)

    @property
    def next_due(self) -> datetime | None:
        """The earliest time a waiting step falls due (None: only a deployment can change anything)."""
        at = [w.at for w in self.waiting if w.at is not None and w.at > self.now]
        return min(at) if at else None

    @property
    def exit_code(self) -> int:
        if self.changed:
            return EXIT_CHANGED
        return EXIT_BLOCKED if self.blocked else EXIT_NOTHING_DUE

    def keysets_changed(self) -> list[str]:
        return list(dict.fromkeys(t.keyset for t in self.taken))


def _fmt(t: datetime | None) -> str:
    return "-" if t is None else times.format_time(t)


def _apply(outcome: Outcome, result: Result, taken: Taken) -> None:
    outcome.stack = result.stack
    outcome.edits += result.edits
    outcome.notes += [f"{taken.keyset}: {n}" for n in result.notes]
    outcome.warnings += [f"{taken.keyset}: {w}" for w in result.warnings]
    outcome.taken.append(taken)


class _Keyset:
    """One keyset's decisions at ``now``."""

    def __init__(self, outcome: Outcome, name: str, record: Publications, staging: dict[str, StagingFacts],
                 staging_unavailable: dict[str, str]):
        self.o = outcome
        self.name = name
        self.record = record
        self.staging = staging
        self.staging_unavailable = staging_unavailable
        self.now = outcome.now
        self.options = outcome.before.autopilot

    @property
    def ks(self) -> KeySetConfig:
        return self.o.stack.keysets[self.name]

    def wait(self, step: str, at: datetime | None, why: str) -> None:
        self.o.waiting.append(Waiting(self.name, step, at, why))

    def block(self, step: str, why: str) -> None:
        self.o.blocked.append(Blocked(self.name, step, why))

    # -- staging ---------------------------------------------------------------------------

    def staged(self, step: str, since: datetime | None, deadline: datetime | None = None) -> bool:
        """Has staging had the same step live for soakHours (a step taken there after ``since``,
        this keyset's own previous step of the kind)? Records a wait, or a block when waiting
        would take the step past ``deadline`` (the active key's due date: staging is behind)."""
        counterpart = self.ks.staging
        if counterpart is None:
            return True
        soak = timedelta(hours=counterpart.soak_hours)
        fact = f"staging keyset '{counterpart.keyset}' ({counterpart.stack}): a {step} deployed"
        facts = self.staging.get(counterpart.stack)
        if facts is None:
            why = self.staging_unavailable.get(counterpart.stack, "none given")
            self.block(step, f"waits for {fact}, but cannot read staging's outputs ({why});"
                             " pass --staging-outputs FILE")
            return False
        live = facts.latest(counterpart.keyset, STEP_STATE[step])
        late = (f"; this keyset's active generation is due {_fmt(deadline)}: staging is behind, a person must"
                " decide (take the step in staging first, or here by hand)")
        if live is None or (since is not None and live <= since):
            after = f" after {_fmt(since)}" if since is not None else ""
            why = f"waits for {fact}{after} ({facts.source}); none yet"
            if deadline is not None and self.now >= deadline - soak:
                self.block(step, why + late)
            else:
                self.wait(step, None, why)
            return False
        if self.now < live + soak:
            why = (f"waits for {fact} at {_fmt(live)} to soak {counterpart.soak_hours}h,"
                   f" until {_fmt(live + soak)} ({facts.source})")
            if deadline is not None and live + soak > deadline:
                self.block(step, why + late)
            else:
                self.wait(step, live + soak, why)
            return False
        self.o.notes.append(f"{self.name}: staging fact: {fact} at {_fmt(live)}, live"
                            f" {counterpart.soak_hours}h"
                            f" by {_fmt(live + soak)} ({facts.source})")
        return True

    def last_step(self, state: State) -> datetime | None:
        entered = [lifecycle.entered(g, state) for g in self.ks.generations]
        if state is State.PENDING:
            entered = [g.created_at for g in self.ks.generations]
        known = [t for t in entered if t is not None]
        return max(known) if known else None

    # -- the schedule ----------------------------------------------------------------------

    def promote_at(self) -> datetime | None:
        """When the active generation must be replaced (the latest safe run); None: no active one."""
        ks, t = self.ks, self.ks.timings
        age = lifecycle.key_age(ks.generations, t, self.now)
        active = lifecycle.active_generation(ks.generations)
        if age.due_at is None or active is None:
            return None
        every = timedelta(minutes=self.options.every_minutes)
        slack = timedelta(hours=self.options.slack_hours)
        return min(self.deployed_active(active) + t.max_age - slack - every, age.due_at - every)

    def deployed_active(self, active: Generation) -> datetime:
        """When the active generation's switch to active was deployed: from the deployment record
        when the record saw the switch (it recorded the generation pending before); otherwise (it
        was already active when the record began, or became active without being pending) its
        recorded activatedAt, the earlier and so the safer time."""
        deployed = deployed_switch(self.record, active, State.ACTIVE)
        seen_pending = self.record.deployed.get(active.id, {}).get(str(State.PENDING))
        if deployed is None or seen_pending is None or seen_pending >= deployed:
            assert active.activated_at is not None  # validated: an active generation records it
            return active.activated_at
        return deployed

    def rotate_by(self) -> datetime | None:
        """The last run that adds a pending generation in time for its promote (publish lead and
        the deployment of the rotation included)."""
        at = self.promote_at()
        if at is None:
            return None
        return at - self.ks.timings.publish_lead - timedelta(hours=self.options.slack_hours)

    # -- steps -----------------------------------------------------------------------------

    def promote(self) -> None:
        ks = self.ks
        pending = [g for g in ks.generations if g.state is State.PENDING]
        if not pending:
            return
        p = pending[-1]
        if p.id in self.record.missing or p.id not in self.record.first_published:
            where = ", ".join(self.record.missing.get(p.id, ())) or "the stack outputs"
            scheduled = self.promote_at()
            self.wait("promote", None, f"'{p.id}' is not published yet ({where}): deploy the rotation"
                                       " (`pulumi up`);"
                      + (f" its promote is scheduled from {_fmt(scheduled)}" if scheduled is not None
                         else " it is promoted a publish lead after that"))
            return
        earliest = lifecycle.earliest_promote(p, ks.timings, self.record.first_published)
        scheduled = self.promote_at()
        at = earliest if scheduled is None else max(earliest, scheduled)
        why = (f"'{p.id}' published {_fmt(lifecycle.published_since(p, self.record.first_published))}"
               f" ({self.record.source}), publish lead {lifecycle.format_duration(ks.timings.publish_lead)}")
        if scheduled is not None:
            due = lifecycle.key_age(ks.generations, ks.timings, self.now).due_at
            why += (f"; the active generation is due {_fmt(due)}: promoted by {_fmt(scheduled)} so that the"
                    f" change is deployed in time (slackHours {self.options.slack_hours})")
        if self.now < at:
            self.wait("promote", at, why)
            return
        if not self.staged("promote", self.last_step(State.ACTIVE),
                           lifecycle.key_age(ks.generations, ks.timings, self.now).due_at):
            return
        try:
            result = transitions.promote(self.o.stack, self.name, p.id, now=self.now, record=self.record)
        except CommandError as error:
            self.wait("promote", None, str(error))
            return
        _apply(self.o, result, Taken(self.name, "promote", p.id, why))

    def rotate(self) -> None:
        ks = self.ks
        if any(g.state is State.PENDING for g in ks.generations):
            return
        rotate_by = self.rotate_by()
        why = ("keep the next generation pre-published"
               + (f"; the active generation must be replaced from {_fmt(self.promote_at())}, so rotate by"
                  f" {_fmt(rotate_by)}" if rotate_by is not None else "; no active generation"))
        if ks.backend == "external":
            if rotate_by is None or self.now >= rotate_by:
                self.block("rotate", f"backend external: a person must supply the next public key"
                                     f" (`rotate {self.name} --public-key FILE`); {why}")
            else:
                self.wait("rotate", rotate_by, f"backend external: a person must supply the next public key"
                                               f" by {_fmt(rotate_by)} (`rotate {self.name} --public-key"
                                               " FILE`)")
            return
        if not self.staged("rotate", self.last_step(State.PENDING)):
            return
        try:
            result = transitions.rotate(self.o.stack, self.name, now=self.now)
        except CommandError as error:
            self.block("rotate", str(error))
            return
        new = next(g.id for g in result.stack.keysets[self.name].generations if g.state is State.PENDING)
        _apply(self.o, result, Taken(self.name, "rotate", new, why))

    def tidy(self, ride_along: bool) -> None:
        """Retire what finished its overlap; destroy what was retired destroyAfterDays ago."""
        ks = self.ks
        tidy = timedelta(days=self.options.tidy_after_days)
        for g in list(ks.generations):
            if g.state is State.RETIRING:
                self._retire(g.id, tidy, ride_along)
            elif g.state is State.RETIRED and ks.destroy_after_days is not None:
                self._destroy(g.id, tidy, ride_along)

    def _retire(self, gid: str, tidy: timedelta, ride_along: bool) -> None:
        ks = self.ks
        g = ks.generation(gid)
        if deployed_switch(self.record, g, State.RETIRING) is None \
                or self.record.deployed_states.get(gid) == str(State.ACTIVE):
            self.wait("retire", None, f"'{gid}': its switch to retiring is not deployed yet (`pulumi up`);"
                                      " the overlap counts from that deployment")
            return
        allowed, why = retire_gate(ks, g, self.record)
        if allowed is None:
            self.block("retire", f"'{gid}': {why}")
            return
        self._tidy_step(
            "retire", gid, State.RETIRED, allowed, tidy, ride_along,
            waiting=f"{why}; allowed from {_fmt(allowed)}", taken=f"the overlap ended {_fmt(allowed)}: {why}",
            edit=lambda: transitions.retire(self.o.stack, self.name, gid, now=self.now, record=self.record),
            refused=lambda error: self.wait("retire", None, error))

    def _destroy(self, gid: str, tidy: timedelta, ride_along: bool) -> None:
        ks = self.ks
        g = ks.generation(gid)
        deployed = deployed_switch(self.record, g, State.RETIRED)
        if deployed is None:
            self.wait("destroy", None, f"'{gid}': its retirement is not deployed yet (`pulumi up`)")
            return
        assert ks.destroy_after_days is not None  # only keysets that set it are destroyed by autopilot
        allowed = deployed + timedelta(days=ks.destroy_after_days)
        why = (f"'{gid}' was retired (deployed {_fmt(deployed)}) destroyAfterDays ({ks.destroy_after_days})"
               " ago")
        self._tidy_step(
            "destroy", gid, State.DESTROYED, allowed, tidy, ride_along,
            waiting=f"destroy allowed from {_fmt(allowed)}", taken=why,
            edit=lambda: transitions.destroy(self.o.stack, self.name, gid, now=self.now, confirm=gid),
            refused=lambda error: self.block("destroy", error))

    def _tidy_step(self, step: str, gid: str, state: State, allowed: datetime, tidy: timedelta,
                   ride_along: bool, *, waiting: str, taken: str, edit: Callable[[], Result],
                   refused: Callable[[str], None]) -> None:
        """A tidy-up step (retire, destroy) allowed from ``allowed``: taken with the next change, or
        on its own ``tidy`` later; ``refused`` says what a refusal of its command means."""
        due = allowed + tidy
        if self.now < allowed or (self.now < due and not ride_along):
            self.wait(step, allowed if self.now < allowed else due,
                      f"'{gid}': {waiting}, taken with the next change or by {_fmt(due)}")
            return
        if not self.staged(step, self.last_step(state)):
            return
        try:
            result = edit()
        except CommandError as error:
            refused(str(error))
            return
        _apply(self.o, result, Taken(self.name, step, gid, taken, rides_along=self.now < due))


def run(
    stack: StackConfig, now: datetime, records: dict[str, Publications] | None, *,
    unavailable: str | None = None, staging: dict[str, StagingFacts] | None = None,
    staging_unavailable: dict[str, str] | None = None,
) -> Outcome:
    """Every step due at ``now`` for every keyset of ``stack``, as one outcome (the new config and
    its edits). ``records``: the stack outputs per keyset; None when they cannot be read."""
    outcome = Outcome(stack, stack, now)
    planners = []
    for name in stack.keysets:
        record = (records or {}).get(name)
        if record is None or record.source is None:
            why = unavailable if records is None else "not in the stack outputs: not deployed yet"
            outcome.blocked.append(Blocked(name, "any", f"cannot read the stack outputs ({why}); it does"
                                                        " nothing"
                                                        " for this keyset"))
            continue
        planners.append(_Keyset(outcome, name, record, staging or {}, staging_unavailable or {}))
    for k in planners:
        k.promote()
        k.rotate()
    for k in planners:
        k.tidy(ride_along=False)
    if outcome.changed:
        # Tidy-up steps that are allowed but not yet due ride along with this change.
        tidy = ("retire", "destroy")
        outcome.waiting = [w for w in outcome.waiting if w.step not in tidy]
        outcome.blocked = [b for b in outcome.blocked if b.step not in tidy]
        for k in planners:
            k.tidy(ride_along=True)
    return outcome
