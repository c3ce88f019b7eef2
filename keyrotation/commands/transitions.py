"""The rotation commands as pure transitions of a stack's configuration.

Each command takes the validated :class:`~keyrotation.config.StackConfig` and ``now`` and returns
a :class:`Result`: the new config (validated again), the minimal edits that produce it in the
stack file, and what it means (which tokens and documents are affected, what risk ``--force``
took). The rules are the lifecycle's: :data:`~keyrotation.lifecycle.TRANSITIONS`,
:attr:`~keyrotation.lifecycle.Timings.publish_lead` and
:attr:`~keyrotation.lifecycle.Timings.overlap`, and the gap check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import ValidationError

from .. import lifecycle
from ..algorithms import BACKENDS
from ..config import ConfigError, Generation, KeySetConfig, Rewrap, StackConfig, Step, validate
from ..errors import CommandError
from ..lifecycle import (
    REVOKE_REASONS,
    STATE_TIME,
    TIME_ORDER,
    TRIGGER_NAMES,
    TRIGGERS,
    RevokeReason,
    State,
    Trigger,
)
from ..times import format_time
from .records import (
    NO_RECORD,
    Publications,
    deployed_stops,
    deployed_switch,
    generation_of,
    keyset_of,
    kid_of,
)
from .stackfile import AddGeneration, AppendEntry, Edit, SetField


@dataclass
class Result:
    command: str
    keyset: str
    stack: StackConfig
    edits: list[Edit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Helpers


def _iso(t: datetime | None) -> str:
    assert t is not None, "a time the command has recorded or computed"
    return format_time(t)


span = lifecycle.format_duration


class _Draft:
    """The generations of one keyset being edited, and the edits that say so in the file."""

    def __init__(self, command: str, stack: StackConfig, keyset: str, now: datetime):
        self.stack = stack
        self.keyset = keyset_of(stack, keyset)
        self.now = now
        self.generations = list(self.keyset.generations)
        self.result = Result(command, keyset, stack)
        self.published_at: Mapping[str, datetime] = {}
        """The publisher's record, for the gap check of the result."""
        self.record: Publications = NO_RECORD
        """The stack outputs' record (deployment times), for the gap check of the result."""

    def where(self, generation: str | None = None) -> str:
        head = f"{self.stack.stack_file}: keyset '{self.keyset.name}'"
        return head + (f", generation '{generation}'" if generation else "")

    def get(self, generation_id: str) -> Generation:
        for g in self.generations:
            if g.id == generation_id:
                return g
        return generation_of(self.stack, self.keyset, generation_id)

    def check_transition(self, generation: Generation, target: State) -> None:
        if not lifecycle.allowed(generation.state, target):
            possible = ", ".join(sorted(str(s) for s in lifecycle.TRANSITIONS[generation.state])) or "none"
            raise CommandError(
                f"{self.where(generation.id)}: cannot go from '{generation.state}' to '{target}'"
                f" (from '{generation.state}' the lifecycle allows: {possible})"
            )
        if self.now < generation.created_at:
            raise CommandError(
                f"{self.where(generation.id)}: --now {_iso(self.now)} is before its createdAt"
                f" {_iso(generation.created_at)}"
            )

    def set(self, generation_id: str, **changes: object) -> Generation:
        """Set camelCase fields of a generation. A recorded time is never changed or removed."""
        current = self.get(generation_id)
        update = {}
        for camel, value in changes.items():
            old = current.time(camel) if camel.endswith("At") else getattr(current, _snake(camel))
            if old == value:
                continue
            if camel.endswith("At") and old is not None:
                raise CommandError(f"{self.where(generation_id)}: {camel} is recorded ({_iso(old)});"
                                   " history is append-only")
            update[_snake(camel)] = value
            self.result.edits.append(SetField(
                self.keyset.name, generation_id, camel, _text(old), _text(value)
            ))
        new = current.model_copy(update=update)
        self.generations = [new if g.id == generation_id else g for g in self.generations]
        return new

    def move(self, generation_id: str, target: State, **extra: object) -> Generation:
        """Record that the generation enters ``target`` now: in its top-level time on the first pass,
        as a new ``history`` step once it returns to an earlier state (rollback, restore)."""
        current = self.get(generation_id)
        field_name = STATE_TIME[target]
        reached = lifecycle.first_pass(current)[-1][0]
        first_time = (
            target is State.REVOKED
            or (not current.history and TIME_ORDER.index(field_name) > TIME_ORDER.index(STATE_TIME[reached]))
        )
        if first_time:
            return self.set(generation_id, state=target, **{field_name: self.now}, **extra)
        self.set(generation_id, state=target, **extra)
        current = self.get(generation_id)
        step = Step(state=target, at=self.now)
        new = current.model_copy(update={"history": [*current.history, step]})
        self.generations = [new if g.id == generation_id else g for g in self.generations]
        self.result.edits.append(AppendEntry(
            self.keyset.name, generation_id, "history", {"state": str(target), "at": self.now}))
        return new

    def append_rewrap(self, generation_id: str, by: str) -> Generation:
        current = self.get(generation_id)
        new = current.model_copy(update={"rewrapped": [*current.rewrapped, Rewrap(at=self.now, by=by)]})
        self.generations = [new if g.id == generation_id else g for g in self.generations]
        self.result.edits.append(AppendEntry(
            self.keyset.name, generation_id, "rewrapped", {"at": self.now, "by": by}))
        return new

    def add(self, **fields: object) -> Generation:
        try:
            generation = Generation.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise CommandError(f"{self.where(str(fields.get('id')))}: cannot add it: {problems}") from None
        self.generations.append(generation)
        self.result.edits.append(AddGeneration(
            self.keyset.name, {k: _text(v) for k, v in fields.items() if v is not None}
        ))
        return generation

    def new_id(self, requested: str | None) -> str:
        taken = {g.id for g in self.generations}
        if requested is not None:
            if requested in taken:
                raise CommandError(f"{self.where()}: generation id '{requested}' is taken; ids are stable"
                                   " forever")
            return requested
        base = self.now.strftime("%Y-%m-%d")
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def _check_append_only(self) -> None:
        """Every step recorded before stays, unchanged, at its place: the history only grows."""
        after = {g.id: g for g in self.generations}
        for old in self.keyset.generations:
            new = after.get(old.id)
            if new is None:
                raise CommandError(f"{self.where(old.id)}: a generation is never removed")
            before, now = lifecycle.path(old), lifecycle.path(new)
            kept = [step for step in before if step[0] is not State.REVOKED]
            if now[:len(kept)] != kept or new.rewrapped[:len(old.rewrapped)] != old.rewrapped:
                raise CommandError(f"{self.where(old.id)}: the change would rewrite its recorded history")

    def finish(self) -> Result:
        self._check_append_only()
        keyset = self.keyset.model_copy(update={"generations": self.generations})
        stack = self.stack.model_copy(update={"keysets": {**self.stack.keysets, keyset.name: keyset}})
        problems = validate(stack)
        if problems:
            raise CommandError(
                f"{self.where()}: the change would make the stack file invalid:\n"
                + str(ConfigError(self.stack.stack_file, problems))
            )
        self.result.stack = stack
        stops = deployed_stops(self.keyset, self.record)
        before = {
            (g.generation, g.kind, g.start, g.end)
            for g in lifecycle.keyset_gaps(self.keyset, self.published_at, stops)
        }
        for gap in lifecycle.keyset_gaps(keyset, self.published_at, stops):
            if not gap.intended and (gap.generation, gap.kind, gap.start, gap.end) not in before:
                self.result.warnings.append(f"gap: {gap.describe()}")
        return self.result


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _text(value: object) -> object:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, StrEnum):  # State, RevokeReason: the stack file holds their text
        return str(value)
    return value


def _published_since(generation: Generation, record: Publications) -> datetime:
    return lifecycle.published_since(generation, record.first_published)


def _published_in(keyset: KeySetConfig) -> str:
    return _documents(keyset) if keyset.purpose == "sign" else "every consumer's keyring"


def _documents(keyset: KeySetConfig) -> str:
    # The metrics carry times and the revocation list revoked kids: no place a verifier finds a key in.
    carrying = [p for p in keyset.publish if p.format.carries_keys]
    if not carrying:
        return "no published document"
    return ", ".join(f"{p.format} at {p.target}" for p in carrying)


def _holders(keyset: KeySetConfig) -> str:
    """Who holds a copy of what is published: verifiers (documents) or pods (keyrings)."""
    return "verifiers" if keyset.purpose == "sign" else "pods"


def _rejects_new(keyset: KeySetConfig) -> str:
    return "reject its signatures" if keyset.purpose == "sign" else "cannot decrypt what it encrypts"


def _consumers(keyset: KeySetConfig) -> str:
    names = [getattr(c, "deployment", None) or getattr(c, "secret", None) for c in keyset.consumers]
    return ", ".join(n for n in names if n)


# ---------------------------------------------------------------------------------------------
# The commands


def rotate(
    stack: StackConfig, keyset: str, *, now: datetime, generation_id: str | None = None,
    public_key_pem: str | None = None, trigger: str | None = None,
) -> Result:
    """Add a ``pending`` generation: published (or delivered decrypt-only) before it is used. Its
    ``trigger`` (seed 003) sets the minimum overlap of the generation it will replace."""
    draft = _Draft("rotate", stack, keyset, now)
    ks = draft.keyset
    if trigger is not None and trigger not in TRIGGER_NAMES:
        raise CommandError(f"{draft.where()}: unknown trigger {trigger!r}; use one of"
                           f" {', '.join(TRIGGER_NAMES)}")
    if trigger == Trigger.COMPROMISE:
        raise CommandError(
            f"{draft.where()}: trigger compromise has no overlap: revoke the compromised generation first"
            f" (`revoke {ks.name} GENERATION --reason compromise`), which activates a replacement at once"
            " and records the trigger on it"
        )
    pending = [g for g in draft.generations if g.state is State.PENDING]
    if pending:
        p = pending[-1]
        raise CommandError(
            f"{draft.where(p.id)}: is already pending (created {_iso(p.created_at)}); promote it"
            f" (from {_iso(lifecycle.earliest_promote(p, ks.timings))}) or revoke it before adding another"
        )
    if ks.backend == "external" and public_key_pem is None:
        raise CommandError(
            f"{draft.where()}: backend external holds keys elsewhere; give the new generation's public key"
            " with --public-key FILE"
        )
    if ks.backend != "external" and public_key_pem is not None:
        raise CommandError(f"{draft.where()}: --public-key is only for backend external (this keyset is"
                           f" {ks.backend})")
    new = draft.add(
        id=draft.new_id(generation_id), state=State.PENDING, createdAt=now,
        trigger=Trigger(trigger) if trigger is not None else None, publicKeyPem=public_key_pem,
    )
    earliest = lifecycle.earliest_promote(new, ks.timings)
    due = lifecycle.key_age(ks.generations, ks.timings, now)
    where = _documents(ks) if ks.purpose == "sign" else "every consumer's keyring (decrypt/verify only)"
    draft.result.notes.append(
        f"after `pulumi up` the pending generation '{new.id}' is in {where}; promote it from {_iso(earliest)}"
        f" (publish lead {span(ks.timings.publish_lead)} after the publisher first wrote it)"
    )
    if due.due_at is not None:
        draft.result.notes.append(f"the active generation '{due.generation}' is due by {_iso(due.due_at)}")
    if new.trigger is not None:
        rule = TRIGGERS[new.trigger]
        overlap = lifecycle.trigger_overlap(ks.timings, new.trigger)
        draft.result.notes.append(
            f"trigger {new.trigger} (urgency: {rule.urgency}): the generation it replaces stays published"
            f" {span(overlap)} after the promote is deployed (the larger of the computed overlap"
            f" {span(ks.timings.overlap)} and the trigger's minimum {span(rule.minimum_overlap)})"
        )
    return draft.finish()


def _needs_record(draft: _Draft, record: Publications, force: bool, what: str) -> None:
    """An edit whose safety depends on the stack outputs is refused without them, unless --force."""
    if record.source is not None or force:
        if record.source is None:
            draft.result.warnings.append(
                f"--force without the stack outputs ({record.unavailable or 'no record'}): {what} was not"
                " checked against what was deployed"
            )
        return
    why = record.unavailable or "no stack outputs"
    raise CommandError(
        f"{draft.where()}: refused: cannot read the stack outputs ({why}), and {what} counts from what"
        " was deployed. Pass `--outputs FILE` (saved `pulumi stack output --json`), or --force to act"
        " on the stack file's own times"
    )


def promote(
    stack: StackConfig, keyset: str, generation_id: str | None = None, *, now: datetime,
    record: Publications = NO_RECORD, force: bool = False,
) -> Result:
    """The pending generation becomes ``active``, the active one ``retiring``."""
    draft = _Draft("promote", stack, keyset, now)
    draft.published_at, draft.record = record.first_published, record
    ks = draft.keyset
    if generation_id is None:
        pending = [g for g in draft.generations if g.state is State.PENDING]
        if not pending:
            raise CommandError(f"{draft.where()}: no pending generation to promote; run `rotate {ks.name}`"
                               " first")
        generation = pending[-1]
    else:
        generation = draft.get(generation_id)
    if generation.state is State.RETIRING:
        raise CommandError(
            f"{draft.where(generation.id)}: is retiring; to make it sign again use `rollback {ks.name}`"
        )
    draft.check_transition(generation, State.ACTIVE)
    _needs_record(draft, record, force, "the publish lead")
    lead = ks.timings.publish_lead
    if generation.id in record.missing and not force:
        targets = ", ".join(record.missing[generation.id])
        raise CommandError(
            f"{draft.where(generation.id)}: is not published yet at {targets} ({record.source}); deploy the"
            f" rotation first (`pulumi up`), then promote it {span(lead)} later"
        )
    published = _published_since(generation, record)
    earliest = lifecycle.earliest_promote(generation, ks.timings, record.first_published)
    basis = (
        f"first published {_iso(published)} ({record.source})" if generation.id in record.first_published
        else f"created {_iso(generation.created_at)}, no publisher record"
    )
    if now < earliest and not force:
        raise CommandError(
            f"{draft.where(generation.id)}: refused: {basis}; {_holders(ks)} may hold a copy"
            f" {'of the documents fetched' if ks.purpose == 'sign' else 'of the keyring delivered'} before"
            " that"
            f" for up to publishMaxAgeSeconds ({ks.timings.publish_max_age_seconds}s), clocks differ by up to"
            f" clockSkewSeconds ({ks.timings.clock_skew_seconds}s). Promote allowed from {_iso(earliest)}"
            f" (in {span(earliest - now)}); --force promotes now and accepts that those {_holders(ks)}"
            f" {_rejects_new(ks)} until they refetch", allowed_from=earliest,
        )
    if record.source is not None and generation.id not in record.first_published \
            and generation.id not in record.missing:
        draft.result.warnings.append(
            f"no publisher record for '{generation.id}' in {record.source}: the publish lead was counted"
            " from its createdAt; the policy pack checks the publisher's first-published time at `pulumi"
            " preview`"
        )
    if generation.id in record.missing:
        draft.result.warnings.append(
            f"--force: '{generation.id}' is not in {', '.join(record.missing[generation.id])} yet:"
            f" {_holders(ks)} {_rejects_new(ks)} until it is published and their caches expire"
        )
    elif now < earliest:
        draft.result.warnings.append(
            f"--force: promoted {span(earliest - now)} before the publish lead passed ({basis}):"
            f" {_holders(ks)} whose copy predates it {_rejects_new(ks)} until about {_iso(published + lead)}"
        )
    previous = lifecycle.active_ids((g.id, g.state) for g in draft.generations)
    for old in previous:
        draft.move(old, State.RETIRING)
    draft.move(generation.id, State.ACTIVE)
    kid = kid_of(stack, ks, generation, record)
    draft.result.notes.append(
        f"'{generation.id}' ({kid}) signs from the next `pulumi up`" if ks.purpose == "sign"
        else f"'{generation.id}' encrypts from the next `pulumi up`"
    )
    for old in previous:
        overlap, trigger = lifecycle.retire_overlap(draft.generations, draft.get(old), ks.timings)
        draft.result.notes.append(
            f"'{old}' stays published ({_published_in(ks)}) for the overlap"
            + (f" (at least {span(overlap)}, trigger {trigger})" if trigger is not None else "")
            + f", counted from the deploy of this promote: retire it from {_iso(now + overlap)}"
            + " at the earliest"
            + (" and once its data at rest is re-encrypted (`rewrapped`) or expired" if ks.keeps_data else "")
            + f" (`retire {ks.name} {old}`)"
        )
    if _consumers(ks):
        draft.result.notes.append(f"consumers switched by `pulumi up`: {_consumers(ks)}")
    return draft.finish()


def retire_gate(ks: KeySetConfig, generation: Generation,
                record: Publications) -> tuple[datetime | None, str]:
    """(earliest retirement, why) for a retiring generation: the overlap after the deployed switch,
    and for keysets with data at rest the re-encryption or expiry of that data."""
    t = ks.timings
    stopped = lifecycle.stopped_at(generation)
    deployed = deployed_switch(record, generation, State.RETIRING)
    basis = stopped if deployed is None or stopped is None else max(stopped, deployed)
    earliest = lifecycle.earliest_retire(ks.generations, generation, t, deployed)
    overlap, trigger = lifecycle.retire_overlap(ks.generations, generation, t)
    if ks.purpose == "sign":
        lag = (f"what it signed stays valid for tokenLifetimeSeconds ({t.token_lifetime_seconds}s) and"
               " signers and caches lag by publishMaxAgeSeconds + clockSkewSeconds")
    else:
        lag = (f"ciphertext in flight is read for up to tokenLifetimeSeconds ({t.token_lifetime_seconds}s)"
               " and writers and keyrings lag by publishMaxAgeSeconds + clockSkewSeconds")
    why = (
        f"it stopped {'signing' if ks.purpose == 'sign' else 'encrypting'} at {_iso(stopped)}"
        + (f", deployed {_iso(deployed)} ({record.source})" if deployed is not None else "")
        + f"; {lag}"
        + (f"; the rotation that replaced it records trigger {trigger}, whose overlap is at least"
           f" {span(TRIGGERS[trigger].minimum_overlap)}: {span(overlap)} in all" if overlap > t.overlap
           and trigger is not None else "")
    ) if stopped is not None else f"it never {'signed' if ks.purpose == 'sign' else 'encrypted'}"
    if not ks.keeps_data or basis is None:
        return earliest, why
    writers_done = basis + lifecycle.signer_lag(t)
    rewraps = [r for r in generation.rewrapped if r.at >= writers_done]
    if rewraps:
        last = rewraps[-1]
        return earliest, why + f"; its data at rest was re-encrypted ({_iso(last.at)}, {last.by})"
    if ks.data_retention_seconds is not None:
        expiry = writers_done + timedelta(seconds=ks.data_retention_seconds)
        return max(earliest or expiry, expiry), why + (
            f"; ciphertext written under it until {_iso(writers_done)} stays at rest for dataRetentionSeconds"
            f" ({ks.data_retention_seconds}s), until {_iso(expiry)}")
    return None, why + (
        "; ciphertext stored under it stays encrypted under it until it is re-encrypted under a newer"
        f" generation: re-encrypt (rewrap) it, then record that with `rewrapped {ks.name} {generation.id}"
        " --by NAME`, or declare dataRetentionSeconds if the data expires by itself")


def retire(
    stack: StackConfig, keyset: str, generation_id: str, *, now: datetime, force: bool = False,
    record: Publications = NO_RECORD,
) -> Result:
    """``retiring`` -> ``retired``: it leaves the published documents (key history keeps it)."""
    draft = _Draft("retire", stack, keyset, now)
    draft.published_at, draft.record = record.first_published, record
    ks = draft.keyset
    generation = draft.get(generation_id)
    if generation.state is not State.RETIRING:
        draft.check_transition(generation, State.RETIRED)
        raise CommandError(
            f"{draft.where(generation.id)}: is '{generation.state}'; only a retiring generation is retired"
            + (" (promote another generation first)" if generation.state is State.ACTIVE else "")
        )
    draft.check_transition(generation, State.RETIRED)
    _needs_record(draft, record, force, "the overlap")
    deployed = record.deployed_states.get(generation.id)
    if deployed == str(State.ACTIVE) and not force:
        raise CommandError(
            f"{draft.where(generation.id)}: refused: the deployed stack still has it active"
            f" ({record.source});"
            f" deploy the promote first (`pulumi up`), then retire it after the overlap"
            f" ({span(ks.timings.overlap)}) counted from that deploy"
        )
    if record.source is not None and deployed_switch(record, generation,
                                                     State.RETIRING) is None and not force:
        raise CommandError(
            f"{draft.where(generation.id)}: refused: {record.source} has no deployment record of its switch"
            " to"
            " retiring; deploy the stack (`pulumi up`) and retire it after the overlap"
            f" ({span(ks.timings.overlap)}) counted from that deploy"
        )
    earliest, why = retire_gate(ks, generation, record)
    decrypt = ks.purpose != "sign"
    effect = ("pods can no longer decrypt (or verify) the data still under it" if decrypt
              else "verifiers reject its still-valid signatures")
    if (earliest is None or now < earliest) and not force:
        when = (f"Retire allowed from {_iso(earliest)} (in {span(earliest - now)})" if earliest is not None
                else "Retire allowed once that is recorded")
        raise CommandError(
            f"{draft.where(generation.id)}: refused: {why}. {when}; --force retires now and accepts that"
            f" {effect}",
            allowed_from=earliest,
        )
    if earliest is None or now < earliest:
        draft.result.warnings.append(
            "--force: retired"
            + (" before its data at rest was re-encrypted or expired" if earliest is None
               else f" {span(earliest - now)} early")
            + f": {effect} once it leaves {_published_in(ks)}"
        )
    draft.move(generation.id, State.RETIRED)
    draft.result.notes.append(
        f"'{generation.id}' leaves {_published_in(ks)} at the next `pulumi up`; its key material is disabled,"
        f" not deleted (`restore {ks.name} {generation.id}` makes it"
        f" {'decrypt' if decrypt else 'verify'}-capable"
        f" again; `destroy {ks.name} {generation.id} --confirm {generation.id}` schedules deletion)"
    )
    return draft.finish()


def rewrapped(
    stack: StackConfig, keyset: str, generation_id: str, *, by: str, now: datetime,
    record: Publications = NO_RECORD, force: bool = False,
) -> Result:
    """Record that every ciphertext (stored MAC) under a retiring generation was re-encrypted under a
    newer generation: who confirmed it and when. It lets `retire` remove the generation."""
    draft = _Draft("rewrapped", stack, keyset, now)
    ks = draft.keyset
    generation = draft.get(generation_id)
    if ks.purpose == "sign" or not ks.keeps_data:
        raise CommandError(
            f"{draft.where(generation.id)}: keyset '{ks.name}' keeps no data at rest ({ks.purpose},"
            f" dataAtRest {str(ks.keeps_data).lower()}); nothing to re-encrypt"
        )
    if generation.state is not State.RETIRING:
        raise CommandError(
            f"{draft.where(generation.id)}: is '{generation.state}'; only a retiring generation (one that"
            " no longer encrypts but still decrypts) can have its data re-encrypted"
        )
    if not by.strip():
        raise CommandError(f"{draft.where(generation.id)}: --by: say who confirmed the re-encryption")
    _needs_record(draft, record, force, "the switch of every writer to the new generation")
    stopped = lifecycle.stopped_at(generation)
    deployed = deployed_switch(record, generation, State.RETIRING)
    basis = stopped if deployed is None or stopped is None else max(stopped, deployed)
    if basis is not None:
        writers_done = basis + lifecycle.signer_lag(ks.timings)
        if now < writers_done and not force:
            raise CommandError(
                f"{draft.where(generation.id)}: refused: writers may still encrypt under it until"
                f" {_iso(writers_done)} (stopped {_iso(basis)}, plus publishMaxAgeSeconds +"
                " clockSkewSeconds);"
                " a re-encryption that started before then can miss ciphertext written after it. Re-encrypt"
                " after that time and record it then; --force records it now", allowed_from=writers_done,
            )
        if now < writers_done:
            draft.result.warnings.append(
                f"--force: recorded before every writer had switched ({_iso(writers_done)}): it does not"
                " count"
                " for `retire`, which needs a re-encryption confirmed after that time"
            )
    draft.append_rewrap(generation.id, by.strip())
    draft.result.notes.append(
        f"recorded: data at rest under '{generation.id}' re-encrypted under the active generation, confirmed"
        f" by {by.strip()} at {_iso(now)}; `retire {ks.name} {generation.id}` after the overlap"
    )
    return draft.finish()


_NOT_RESTORABLE = {
    "software": "a software key's private key is dropped from the state at destroy",
    "pkcs11": "a pkcs11 key pair is destroyed in its token at destroy",
    "external": ("this stack never held the private key and cannot tell whether it still exists; if its"
                 " holder"
                 " still has it, add it as a new generation (`rotate KEYSET --public-key FILE`)"),
}


def restore(
    stack: StackConfig, keyset: str, generation_id: str, *, now: datetime, record: Publications = NO_RECORD,
    force: bool = False, key_id: str | None = None,
) -> Result:
    """``retired`` (or ``destroyed`` within the deletion window) -> ``retiring``: the key material
    decrypts/verifies again; a new history step, nothing rewritten. A destroyed KMS key is brought
    back by the next `pulumi up` (components/kms_restore.py), named by ``restoredKeyId``."""
    draft = _Draft("restore", stack, keyset, now)
    draft.record = record
    ks = draft.keyset
    generation = draft.get(generation_id)
    if generation.state not in (State.RETIRED, State.DESTROYED):
        raise CommandError(
            f"{draft.where(generation.id)}: is '{generation.state}'; only a retired or destroyed generation"
            " is restored"
        )
    if key_id is not None and generation.state is not State.DESTROYED:
        raise CommandError(f"{draft.where(generation.id)}: --key-id is only for a destroyed KMS generation"
                           f" (it is '{generation.state}': its key was never deleted)")
    verb = "decrypt" if ks.purpose != "sign" else "verify"
    extra: dict[str, object] = {}
    if generation.state is State.DESTROYED:
        if not BACKENDS[ks.backend].kms:
            raise CommandError(
                f"{draft.where(generation.id)}: backend {ks.backend}: a destroyed generation's key material"
                f" is gone ({_NOT_RESTORABLE.get(ks.backend, 'no deletion window')}); it cannot be restored"
            )
        extra = _deletion_window(draft, generation, record, force, key_id)
    draft.check_transition(generation, State.RETIRING)
    draft.move(generation.id, State.RETIRING, **extra)
    draft.result.notes.append(
        f"'{generation.id}' is back in {_published_in(ks)} ({verb} only) from the next `pulumi up`;"
        f" it does not {'sign' if ks.purpose == 'sign' else 'encrypt'} again"
    )
    return draft.finish()


def deletion_window_end(ks: KeySetConfig, generation: Generation, record: Publications) -> datetime | None:
    """Until when a destroyed KMS generation can be restored: ``deletionWindowDays`` from its
    destruction as deployed (the stack outputs), else as recorded; None for any other generation."""
    if generation.state is not State.DESTROYED or not BACKENDS[ks.backend].kms:
        return None
    deployed = deployed_switch(record, generation, State.DESTROYED)
    basis = deployed or lifecycle.entered(generation, State.DESTROYED)
    return None if basis is None else basis + timedelta(days=ks.timings.deletion_window_days)


def _deletion_window(
    draft: _Draft, generation: Generation, record: Publications, force: bool, key_id: str | None
) -> dict[str, object]:
    """Check that a destroyed KMS generation is within its deletion window and name its key: the
    ``restoredKeyId`` edit (empty when the destruction was never deployed: the key is still there)."""
    ks = draft.keyset
    days = ks.timings.deletion_window_days
    _needs_record(draft, record, force, "the deletion window")
    deployed = deployed_switch(record, generation, State.DESTROYED)
    recorded = lifecycle.entered(generation, State.DESTROYED)
    window_end = deletion_window_end(ks, generation, record)
    assert window_end is not None  # validated: a destroyed generation records destroyedAt
    counted = (f"deployed {_iso(deployed)} ({record.source})" if deployed is not None
               else f"recorded {_iso(recorded)}")
    if draft.now >= window_end:
        raise CommandError(
            f"{draft.where(generation.id)}: refused: its deletion window ended {_iso(window_end)}"
            f" (deletionWindowDays {days} from its destruction, {counted}): the KMS has deleted the key for"
            " good;"
            f" rotate instead (`rotate {ks.name}`)"
        )
    never_deployed = record.deployed_states.get(generation.id) != "destroyed"
    if record.source is not None and deployed is None and never_deployed:
        # The destroy was never deployed: the key resource is still in the stack, enabled or not.
        draft.result.notes.append(
            f"its destruction was never deployed ({record.source}): its key was not deleted, and the next"
            " `pulumi up` keeps it"
        )
        return {}
    known = record.key_ids.get(generation.id)
    if key_id is not None and known is not None and key_id != known:
        raise CommandError(
            f"{draft.where(generation.id)}: --key-id {key_id} is not its key: {record.source} records {known}"
        )
    key = key_id or known or generation.restored_key_id
    if not key:
        raise CommandError(
            f"{draft.where(generation.id)}: cannot tell which KMS key to bring back: "
            + (f"{record.source} records no key id for it" if record.source is not None
               else f"no stack outputs ({record.unavailable or 'no record'})")
            + "; pass --key-id (the AWS key id or Cloud KMS CryptoKeyVersion name)"
        )
    if generation.restored_key_id is not None and key != generation.restored_key_id:
        raise CommandError(
            f"{draft.where(generation.id)}: restoredKeyId is {generation.restored_key_id}, not {key}; a"
            " generation's"
            " key never changes"
        )
    if record.source is None:
        draft.result.warnings.append(
            "--force without the stack outputs: the deletion window was counted from the recorded"
            " destruction"
            f" ({_iso(recorded)}), and key {key} is assumed to be pending deletion (the destroy deployed)"
        )
    what = "AWS CancelKeyDeletion" if ks.backend == "aws-kms" else "Cloud KMS RestoreCryptoKeyVersion"
    draft.result.notes.append(
        f"key {key} is brought back by the next `pulumi up` ({what}, then enabled): the same key, not a new"
        f" one. Deploy before {_iso(window_end)}, when its deletion window ends ({counted},"
        f" deletionWindowDays {days})"
    )
    return {"restoredKeyId": key}


def revoke(
    stack: StackConfig, keyset: str, generation_id: str, *, reason: str, now: datetime,
    record: Publications = NO_RECORD, force: bool = False, new_id: str | None = None,
) -> Result:
    """Revoke at once; revoking the active generation activates a replacement at once."""
    draft = _Draft("revoke", stack, keyset, now)
    draft.published_at, draft.record = record.first_published, record
    ks = draft.keyset
    if reason not in REVOKE_REASONS:
        raise CommandError(f"{draft.where()}: unknown reason {reason!r}; use one of"
                           f" {', '.join(REVOKE_REASONS)}")
    generation = draft.get(generation_id)
    draft.check_transition(generation, State.REVOKED)
    t = ks.timings
    was_active = generation.state is State.ACTIVE
    cut_until = None
    if was_active:
        cut_until = now + t.overlap
    elif generation.state is State.RETIRING:
        earliest, _why = retire_gate(ks, generation, record)
        if earliest is None:
            if reason != "compromise" and not force:
                raise CommandError(
                    f"{draft.where(generation.id)}: refused: ciphertext stored under it has not been"
                    " re-encrypted;"
                    f" revoking it for '{reason}' would leave that data undecryptable. Re-encrypt it and"
                    " record"
                    f" `rewrapped {ks.name} {generation.id} --by NAME` first; --force revokes now anyway"
                )
        elif now < earliest:
            cut_until = earliest
    if reason != "compromise" and cut_until is not None and not force:
        if was_active:
            advice = (
                f"for a gap-free {reason} rotation: `rotate {ks.name}`, `promote {ks.name}` after the publish"
                f" lead ({span(t.publish_lead)}), then `revoke {ks.name} {generation.id} --reason {reason}`"
                f" after the overlap ({span(t.overlap)})"
            )
        else:
            advice = f"revoke it from {_iso(cut_until)} (in {span(cut_until - now)})"
        raise CommandError(
            f"{draft.where(generation.id)}: refused: revoking it now for '{reason}' makes {_holders(ks)}"
            + (f" reject signatures it made that are still valid (until {_iso(cut_until)})"
               if ks.purpose == "sign"
               else f" unable to decrypt ciphertext it made that is still read (until {_iso(cut_until)})")
            + ((" and activates a replacement no verifier has fetched yet" if ks.purpose == "sign"
                else " and activates a replacement no pod holds yet") if was_active else "")
            + f"; {advice}. Only a compromise justifies that; --force revokes now anyway",
            allowed_from=None if was_active else cut_until,
        )
    draft.move(generation.id, State.REVOKED, revokeReason=RevokeReason(reason))
    res = draft.result
    res.notes += _revocation_effects(stack, ks, generation, reason, now, record)
    if reason != "compromise" and cut_until is not None:
        res.warnings.append(
            f"--force: '{generation.id}' revoked for '{reason}' before the overlap passed: "
            + ("its valid signatures are rejected" if ks.purpose == "sign"
               else "ciphertext it made that is still read cannot be decrypted")
            + f" until {_iso(cut_until)}"
        )
    if was_active:
        _emergency(draft, ks, now, record, new_id, reason)
    return draft.finish()


def _replacement_trigger(reason: str) -> Trigger | None:
    """The trigger an emergency replacement records: the revocation's reason when it is one of seed
    003's triggers (compromise, personnel, hardware); ``superseded`` is none."""
    return Trigger(reason) if reason in TRIGGER_NAMES else None


def _revocation_effects(
    stack: StackConfig, ks: KeySetConfig, generation: Generation, reason: str, now: datetime,
    record: Publications
) -> list[str]:
    t = ks.timings
    kid = kid_of(stack, ks, generation, record)
    notes = []
    if generation.activated_at is not None:
        alive_from = max(generation.activated_at, now - timedelta(seconds=t.token_lifetime_seconds))
        if ks.purpose == "encrypt":
            notes.append(
                f"data encrypted with '{generation.id}' cannot be decrypted once `pulumi up` removes it from"
                " the keyrings; the key material is disabled, not deleted, if some must be recovered"
            )
        elif ks.purpose == "mac":
            notes.append(
                f"MACs made with '{generation.id}' no longer verify once `pulumi up` removes it from the"
                " keyrings; the key material is disabled, not deleted"
            )
        elif reason == "compromise":
            notes.append(
                f"tokens: everything signed with {kid}, of which those made since {_iso(alive_from)} are"
                " still within tokenLifetimeSeconds; verifiers reject them once `pulumi up` publishes the"
                f" revocation and their cached documents expire (up to {span(t.publish_lead)} later)"
            )
        else:
            notes.append(
                f"tokens: signatures made with {kid} are rejected by document verifiers after the next"
                f" `pulumi up`; key-history verifiers still accept those made before {_iso(now)} (valid-at)"
            )
    for pub in ks.publish:
        action = {"key-history": "lists it as revoked",
                  "revocation-list": "adds its revocation record, signed by the active generation,"
                  }.get(pub.format, "no longer contains it")
        notes.append(f"documents: {pub.format} at {pub.target} {action} after the next `pulumi up`")
    for anchor in stack.anchors_naming(ks.name):
        notes.append(f"documents: trust anchor {anchor.trust_anchor_id} ({anchor.purl_pattern}) at"
                     f" {anchor.target} moves it to revokedKeys after the next `pulumi up`")
    return notes


def _emergency(
    draft: _Draft, ks: KeySetConfig, now: datetime, record: Publications, new_id: str | None, reason: str
) -> None:
    res = draft.result
    pending = [g for g in draft.generations if g.state is State.PENDING]
    trigger = _replacement_trigger(reason)
    if pending:
        replacement = draft.move(pending[-1].id, State.ACTIVE)
        if replacement.trigger is None and trigger is not None:
            replacement = draft.set(replacement.id, trigger=trigger)
        elif trigger is not None and replacement.trigger != trigger:
            res.notes.append(f"'{replacement.id}' keeps the trigger recorded when it was added"
                             f" ({replacement.trigger}); a recorded trigger is never rewritten")
        ready = _published_since(replacement, record) + ks.timings.publish_lead
        how = f"promoted the pending generation '{replacement.id}'"
    else:
        replacement = draft.add(id=draft.new_id(new_id), state=State.ACTIVE, createdAt=now, activatedAt=now,
                                trigger=trigger)
        ready = now + ks.timings.publish_lead
        how = f"created and activated '{replacement.id}'"
        if ks.backend == "external":
            raise CommandError(
                f"{draft.where()}: backend external: add the replacement's public key first"
                f" (`rotate {ks.name} --public-key FILE`), then revoke"
            )
    res.notes.append(
        f"emergency rotation: {how} at once, without the publish lead"
        + (f" (consumers switched by `pulumi up`: {_consumers(ks)})" if _consumers(ks) else "")
    )
    if ready > now:
        res.notes.append(
            (f"verifiers that fetched the documents before the deploy reject '{replacement.id}' signatures"
             if ks.purpose == "sign" else
             f"pods holding a keyring from before the deploy cannot decrypt what '{replacement.id}' encrypts")
            + f" until their caches expire (up to {span(ks.timings.publish_lead)} after `pulumi up`,"
            f" {_iso(ready)} at the earliest)"
            + (": the intended cost of a compromise revocation" if reason == "compromise" else "")
        )


def rollback(
    stack: StackConfig, keyset: str, *, now: datetime, record: Publications = NO_RECORD, force: bool = False,
) -> Result:
    """Undo the latest promote while the generation it replaced is still retiring and within its
    overlap: that generation signs (encrypts) again, in a new period; the newer one becomes
    retiring. Nothing recorded is removed."""
    draft = _Draft("rollback", stack, keyset, now)
    ks = draft.keyset
    t = ks.timings
    active = draft.keyset.active
    retiring = [g for g in draft.generations if g.state is State.RETIRING and lifecycle.stopped_at(g)]
    if not retiring:
        earlier = [g for g in draft.generations if g.state in (State.RETIRED, State.REVOKED, State.DESTROYED)
                   and g.activated_at is not None]
        detail = (
            f"; the previous generation '{earlier[-1].id}' is {earlier[-1].state}" if earlier else ""
        )
        raise CommandError(
            f"{draft.where()}: nothing to roll back to: no retiring generation{detail}."
            f" Rotate instead (`rotate {ks.name}`)"
        )
    previous = max(retiring, key=lambda g: (lifecycle.stopped_at(g) or now, ks.generations.index(g)))
    draft.check_transition(previous, State.ACTIVE)
    draft.check_transition(active, State.RETIRING)
    risks: list[str] = []
    replaced_by_promote = lifecycle.stopped_at(previous) == lifecycle.entered(active, State.ACTIVE)
    overlap_end = lifecycle.earliest_retire(draft.generations, previous, t,
                                            deployed_switch(record, previous, State.RETIRING))
    if not replaced_by_promote:
        risks.append(
            f"no rotation is under way: '{active.id}' did not replace '{previous.id}' (it became active"
            f" {_iso(lifecycle.entered(active, State.ACTIVE))}, '{previous.id}' stopped"
            f" {_iso(lifecycle.stopped_at(previous))})"
        )
    elif overlap_end is not None and now >= overlap_end:
        risks.append(
            f"the rotation is over: '{previous.id}' has been retiring past its overlap (since"
            f" {_iso(overlap_end)});"
            " verifiers and pods may already have dropped it"
        )
    due = previous.activated_at + t.max_age if previous.activated_at else None
    if due is not None and now >= due:
        risks.append(
            f"'{previous.id}' is past maxAgeDays ({t.max_age_days}): it was due {_iso(due)}; re-activating it"
            " puts an overdue key back into use"
        )
    if risks and not force:
        raise CommandError(
            f"{draft.where(previous.id)}: refused: rollback undoes a rotation that went wrong, and "
            + "; ".join(risks)
            + f". Roll forward instead (`rotate {ks.name}`, then `promote`); --force re-activates it anyway"
        )
    for risk in risks:
        draft.result.warnings.append(f"--force: {risk}")
    draft.move(active.id, State.RETIRING)
    draft.move(previous.id, State.ACTIVE)
    res = draft.result
    verb, what = ("signs", "signed") if ks.purpose == "sign" else ("encrypts" if ks.purpose == "encrypt"
                                                                   else "MACs", "protected")
    res.notes.append(
        f"'{previous.id}' {verb} again from the next `pulumi up`, recorded as a new period in its history"
        f" (it never left {_published_in(ks)}, so no publish lead); '{active.id}' stays there as retiring:"
        f" nothing it {what} is lost; retire it from {_iso(now + t.overlap)} at the earliest"
        + (", once its data at rest is re-encrypted (`rewrapped`) or expired" if ks.keeps_data else "")
    )
    age = lifecycle.key_age(draft.generations, t, now)
    if age.health == "warning":
        res.warnings.append(
            f"'{previous.id}' is due {_iso(age.due_at)} (maxAgeDays {t.max_age_days}): rotate again soon"
        )
    return draft.finish()


def destroy(
    stack: StackConfig, keyset: str, generation_id: str, *, now: datetime, confirm: str | None
) -> Result:
    """``retired`` -> ``destroyed``: key material scheduled for deletion; public key stays in history."""
    draft = _Draft("destroy", stack, keyset, now)
    ks = draft.keyset
    generation = draft.get(generation_id)
    draft.check_transition(generation, State.DESTROYED)
    if confirm != generation.id:
        raise CommandError(
            f"{draft.where(generation.id)}: destroying key material cannot be undone after the deletion"
            f" window ({ks.timings.deletion_window_days} days); repeat the generation id to confirm:"
            f" --confirm {generation.id}"
        )
    draft.move(generation.id, State.DESTROYED)
    draft.result.notes.append(
        f"'{generation.id}' key material is scheduled for deletion at the next `pulumi up`"
        f" ({ks.backend}; deletion window {ks.timings.deletion_window_days} days); its public key stays in"
        " the key history"
    )
    return draft.finish()
