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

from pydantic import ValidationError

from . import lifecycle
from .config import ConfigError, Generation, KeySet, StackConfig, validate
from .keys import render_kid
from .lifecycle import REVOKE_REASONS, State
from .stackfile import AddGeneration, Edit, SetField, format_time


class CommandError(Exception):
    """Bad input or a refused command; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Publications:
    """What the publisher recorded for one keyset (from the stack outputs), per generation."""

    first_published: Mapping[str, datetime] = field(default_factory=dict)
    """When the generation was first in every document that lists key ids (the latest of them)."""
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Targets whose document does not list the generation yet."""
    kids: Mapping[str, str] = field(default_factory=dict)
    """The generation's key id as deployed (thumbprint kids are only known from the outputs)."""
    deployed_states: Mapping[str, str] = field(default_factory=dict)
    """The generation's state as last deployed (``pulumi up``), which may lag the stack file."""
    source: str | None = None
    """Where the record came from; None: no record, times count from createdAt."""
    unavailable: str | None = None
    """Why there is no record (e.g. the Pulumi CLI is not installed), when there is none."""


NO_RECORD = Publications()


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


def keyset_of(stack: StackConfig, name: str) -> KeySet:
    try:
        return stack.keysets[name]
    except KeyError:
        known = ", ".join(sorted(stack.keysets)) or "none"
        raise CommandError(f"{stack.stack_file}: no keyset '{name}' (keysets: {known})") from None


def generation_of(stack: StackConfig, keyset: KeySet, generation_id: str) -> Generation:
    for g in keyset.generations:
        if g.id == generation_id:
            return g
    known = ", ".join(f"{g.id} ({g.state})" for g in keyset.generations)
    raise CommandError(
        f"{stack.stack_file}: keyset '{keyset.name}' has no generation '{generation_id}' (generations: {known})"
    )


def kid_of(stack: StackConfig, keyset: KeySet, generation: Generation, record: Publications = NO_RECORD) -> str:
    if generation.id in record.kids:
        return record.kids[generation.id]
    if keyset.kid == "thumbprint":
        return f"thumbprint of '{generation.id}'"  # known from the stack outputs only
    return render_kid(keyset.kid, keyset=keyset.name, generation=generation.id, environment=stack.environment)


def _iso(t: datetime) -> str:
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
        """Set (or, with None, remove) camelCase fields of a generation."""
        current = self.get(generation_id)
        update = {}
        for camel, value in changes.items():
            old = current.time(camel) if camel.endswith("At") else getattr(current, _snake(camel))
            if old == value:
                continue
            update[_snake(camel)] = value
            self.result.edits.append(SetField(
                self.keyset.name, generation_id, camel, _text(old), _text(value)
            ))
        new = current.model_copy(update=update)
        self.generations = [new if g.id == generation_id else g for g in self.generations]
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
                raise CommandError(f"{self.where()}: generation id '{requested}' is taken; ids are stable forever")
            return requested
        base = self.now.strftime("%Y-%m-%d")
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def finish(self) -> Result:
        keyset = self.keyset.model_copy(update={"generations": self.generations})
        stack = self.stack.model_copy(update={"keysets": {**self.stack.keysets, keyset.name: keyset}})
        problems = validate(stack)
        if problems:
            raise CommandError(
                f"{self.where()}: the change would make the stack file invalid:\n"
                + str(ConfigError(self.stack.stack_file, problems))
            )
        self.result.stack = stack
        before = {
            (g.generation, g.kind, g.start, g.end) for g in lifecycle.keyset_gaps(self.keyset, self.published_at)
        }
        for gap in lifecycle.keyset_gaps(keyset, self.published_at):
            if not gap.intended and (gap.generation, gap.kind, gap.start, gap.end) not in before:
                self.result.warnings.append(f"gap: {gap.describe()}")
        return self.result


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _text(value: object) -> object:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, State):
        return str(value)
    return value


def _published_since(generation: Generation, record: Publications) -> datetime:
    return lifecycle.published_since(generation, record.first_published)


def _published_in(keyset: KeySet) -> str:
    return _documents(keyset) if keyset.purpose == "sign" else "every consumer's keyring"


def _documents(keyset: KeySet) -> str:
    if not keyset.publish:
        return "no published document"
    return ", ".join(f"{p.format} at {p.target}" for p in keyset.publish)


def _consumers(keyset: KeySet) -> str:
    names = [getattr(c, "deployment", None) or getattr(c, "secret", None) for c in keyset.consumers]
    return ", ".join(n for n in names if n)


# ---------------------------------------------------------------------------------------------
# The commands


def rotate(
    stack: StackConfig, keyset: str, *, now: datetime, generation_id: str | None = None,
    public_key_pem: str | None = None,
) -> Result:
    """Add a ``pending`` generation: published (or delivered decrypt-only) before it is used."""
    draft = _Draft("rotate", stack, keyset, now)
    ks = draft.keyset
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
        raise CommandError(f"{draft.where()}: --public-key is only for backend external (this keyset is {ks.backend})")
    new = draft.add(
        id=draft.new_id(generation_id), state=State.PENDING, createdAt=now, publicKeyPem=public_key_pem,
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
    return draft.finish()


def promote(
    stack: StackConfig, keyset: str, generation_id: str | None = None, *, now: datetime,
    record: Publications = NO_RECORD, force: bool = False,
) -> Result:
    """The pending generation becomes ``active``, the active one ``retiring``."""
    draft = _Draft("promote", stack, keyset, now)
    draft.published_at = record.first_published
    ks = draft.keyset
    if generation_id is None:
        pending = [g for g in draft.generations if g.state is State.PENDING]
        if not pending:
            raise CommandError(f"{draft.where()}: no pending generation to promote; run `rotate {ks.name}` first")
        generation = pending[-1]
    else:
        generation = draft.get(generation_id)
    if generation.state is State.RETIRING:
        raise CommandError(
            f"{draft.where(generation.id)}: is retiring; to make it sign again use `rollback {ks.name}`"
        )
    draft.check_transition(generation, State.ACTIVE)
    lead = ks.timings.publish_lead
    if generation.id in record.missing and not force:
        targets = ", ".join(record.missing[generation.id])
        raise CommandError(
            f"{draft.where(generation.id)}: is not published yet at {targets} ({record.source}); deploy the"
            f" rotation first (`pulumi up`), then promote it {span(lead)} later"
        )
    published = _published_since(generation, record)
    earliest = published + lead
    basis = (
        f"first published {_iso(published)} ({record.source})" if generation.id in record.first_published
        else f"created {_iso(generation.created_at)}, no publisher record"
    )
    if now < earliest and not force:
        raise CommandError(
            f"{draft.where(generation.id)}: refused: {basis}; verifiers may hold a copy of the documents"
            f" fetched before that for up to publishMaxAgeSeconds ({ks.timings.publish_max_age_seconds}s),"
            f" clocks differ by up to clockSkewSeconds ({ks.timings.clock_skew_seconds}s). Promote allowed"
            f" from {_iso(earliest)} (in {span(earliest - now)}); --force promotes now and accepts that those"
            " verifiers reject its signatures until they refetch"
        )
    if generation.id not in record.first_published and generation.id not in record.missing:
        why = f" ({record.unavailable})" if record.unavailable else ""
        draft.result.warnings.append(
            f"no publisher record for '{generation.id}'{why}: the publish lead was counted from its"
            " createdAt; the policy pack checks the publisher's first-published time at `pulumi preview`"
        )
    if generation.id in record.missing:
        draft.result.warnings.append(
            f"--force: '{generation.id}' is not in {', '.join(record.missing[generation.id])} yet: verifiers"
            " reject its signatures until it is published and their caches expire"
        )
    elif now < earliest:
        draft.result.warnings.append(
            f"--force: promoted {span(earliest - now)} before the publish lead passed ({basis}): verifiers"
            f" whose cached document predates it reject signatures of '{generation.id}' until about"
            f" {_iso(published + lead)}"
        )
    previous = [g for g in draft.generations if g.state is State.ACTIVE]
    for old in previous:
        draft.set(old.id, state=State.RETIRING, retiringAt=now)
    draft.set(generation.id, state=State.ACTIVE, activatedAt=now)
    kid = kid_of(stack, ks, generation, record)
    draft.result.notes.append(
        f"'{generation.id}' ({kid}) signs from the next `pulumi up`" if ks.purpose == "sign"
        else f"'{generation.id}' encrypts from the next `pulumi up`"
    )
    for old in previous:
        draft.result.notes.append(
            f"'{old.id}' stays published for the overlap: retire it from"
            f" {_iso(now + ks.timings.overlap)} (`retire {ks.name} {old.id}`)"
        )
    if _consumers(ks):
        draft.result.notes.append(f"consumers switched by `pulumi up`: {_consumers(ks)}")
    return draft.finish()


def retire(
    stack: StackConfig, keyset: str, generation_id: str, *, now: datetime, force: bool = False,
    record: Publications = NO_RECORD,
) -> Result:
    """``retiring`` -> ``retired``: it leaves the published documents (key history keeps it)."""
    draft = _Draft("retire", stack, keyset, now)
    ks = draft.keyset
    generation = draft.get(generation_id)
    if generation.state is not State.RETIRING:
        draft.check_transition(generation, State.RETIRED)
        raise CommandError(
            f"{draft.where(generation.id)}: is '{generation.state}'; only a retiring generation is retired"
            + (" (promote another generation first)" if generation.state is State.ACTIVE else "")
        )
    draft.check_transition(generation, State.RETIRED)
    deployed = record.deployed_states.get(generation.id)
    if deployed == str(State.ACTIVE) and not force:
        # The overlap counts from retiringAt, the time the promote takes effect: it has not yet.
        raise CommandError(
            f"{draft.where(generation.id)}: refused: the deployed stack still has it active ({record.source});"
            f" deploy the promote first (`pulumi up`), then retire it after the overlap"
            f" ({span(ks.timings.overlap)}) counted from that deploy"
        )
    earliest = lifecycle.earliest_retire(generation, ks.timings)
    if earliest is not None and now < earliest and not force:
        raise CommandError(
            f"{draft.where(generation.id)}: refused: it stopped signing at {_iso(generation.retiring_at)};"
            f" what it signed stays valid for tokenLifetimeSeconds ({ks.timings.token_lifetime_seconds}s)"
            f" and signers and caches lag by publishMaxAgeSeconds + clockSkewSeconds. Retire allowed from"
            f" {_iso(earliest)} (in {span(earliest - now)}); --force retires now and accepts that verifiers"
            " reject its still-valid signatures"
        )
    if earliest is not None and now < earliest:
        draft.result.warnings.append(
            f"--force: retired {span(earliest - now)} before the overlap passed: signatures of"
            f" '{generation.id}' made up to {_iso(generation.retiring_at)} are rejected once it is unpublished"
        )
    draft.set(generation.id, state=State.RETIRED, retiredAt=now)
    draft.result.notes.append(
        f"'{generation.id}' leaves {_published_in(ks)} at the next `pulumi up`; its key material is disabled,"
        f" not deleted (`destroy {ks.name} {generation.id} --confirm {generation.id}` schedules deletion)"
    )
    return draft.finish()


def revoke(
    stack: StackConfig, keyset: str, generation_id: str, *, reason: str, now: datetime,
    record: Publications = NO_RECORD, force: bool = False, new_id: str | None = None,
) -> Result:
    """Revoke at once; revoking the active generation activates a replacement at once."""
    draft = _Draft("revoke", stack, keyset, now)
    draft.published_at = record.first_published
    ks = draft.keyset
    if reason not in REVOKE_REASONS:
        raise CommandError(f"{draft.where()}: unknown reason {reason!r}; use one of {', '.join(REVOKE_REASONS)}")
    generation = draft.get(generation_id)
    draft.check_transition(generation, State.REVOKED)
    t = ks.timings
    was_active = generation.state is State.ACTIVE
    cut_until = None
    if was_active:
        cut_until = now + t.overlap
    elif generation.state is State.RETIRING:
        earliest = lifecycle.earliest_retire(generation, t)
        cut_until = earliest if earliest is not None and now < earliest else None
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
            f"{draft.where(generation.id)}: refused: revoking it now for '{reason}' makes verifiers reject"
            f" signatures it made that are still valid (until {_iso(cut_until)})"
            + (" and activates a replacement no verifier has fetched yet" if was_active else "")
            + f"; {advice}. Only a compromise justifies that; --force revokes now anyway"
        )
    draft.set(generation.id, state=State.REVOKED, revokedAt=now, revokeReason=reason)
    res = draft.result
    res.notes += _revocation_effects(stack, ks, generation, reason, now, record)
    if reason != "compromise" and cut_until is not None:
        res.warnings.append(
            f"--force: '{generation.id}' revoked for '{reason}' before the overlap passed: its valid"
            f" signatures are rejected until {_iso(cut_until)}"
        )
    if was_active:
        _emergency(draft, ks, now, record, new_id, reason)
    return draft.finish()


def _revocation_effects(
    stack: StackConfig, ks: KeySet, generation: Generation, reason: str, now: datetime, record: Publications
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
        action = "lists it as revoked" if pub.format == "key-history" else "no longer contains it"
        notes.append(f"documents: {pub.format} at {pub.target} {action} after the next `pulumi up`")
    return notes


def _emergency(
    draft: _Draft, ks: KeySet, now: datetime, record: Publications, new_id: str | None, reason: str
) -> None:
    res = draft.result
    pending = [g for g in draft.generations if g.state is State.PENDING]
    if pending:
        replacement = draft.set(pending[-1].id, state=State.ACTIVE, activatedAt=now)
        ready = _published_since(replacement, record) + ks.timings.publish_lead
        how = f"promoted the pending generation '{replacement.id}'"
    else:
        replacement = draft.add(id=draft.new_id(new_id), state=State.ACTIVE, createdAt=now, activatedAt=now)
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
            f"verifiers that fetched the documents before the deploy reject '{replacement.id}' signatures"
            f" until their caches expire (up to {span(ks.timings.publish_lead)} after `pulumi up`,"
            f" {_iso(ready)} at the earliest)"
            + (": the intended cost of a compromise revocation" if reason == "compromise" else "")
        )


def rollback(stack: StackConfig, keyset: str, *, now: datetime) -> Result:
    """Re-activate the generation the active one replaced, while it is still retiring."""
    draft = _Draft("rollback", stack, keyset, now)
    ks = draft.keyset
    active = next(g for g in draft.generations if g.state is State.ACTIVE)
    retiring = [g for g in draft.generations if g.state is State.RETIRING and g.retiring_at is not None]
    if not retiring:
        previous = [g for g in draft.generations if g.state in (State.RETIRED, State.REVOKED, State.DESTROYED)
                    and g.activated_at is not None]
        detail = (
            f"; the previous generation '{previous[-1].id}' is {previous[-1].state}" if previous else ""
        )
        raise CommandError(
            f"{draft.where()}: nothing to roll back to: no retiring generation{detail}."
            f" Rotate instead (`rotate {ks.name}`)"
        )
    previous = max(retiring, key=lambda g: (g.retiring_at, ks.generations.index(g)))
    draft.check_transition(previous, State.ACTIVE)
    draft.check_transition(active, State.RETIRING)
    draft.set(active.id, state=State.RETIRING, retiringAt=now)
    draft.set(previous.id, state=State.ACTIVE, retiringAt=None)
    res = draft.result
    verb, what = ("signs", "signed") if ks.purpose == "sign" else ("encrypts" if ks.purpose == "encrypt"
                                                                   else "MACs", "protected")
    res.notes.append(
        f"'{previous.id}' {verb} again from the next `pulumi up` (it never left {_published_in(ks)}, so no"
        f" publish lead); '{active.id}' stays there as retiring: nothing it {what} is lost; retire it from"
        f" {_iso(now + ks.timings.overlap)} or roll forward with `rollback {ks.name}` again"
    )
    age = lifecycle.key_age(draft.generations, ks.timings, now)
    if age.health in ("warning", "overdue"):
        when = "was due" if age.health == "overdue" else "is due"
        res.warnings.append(
            f"'{previous.id}' {when} {_iso(age.due_at)} (maxAgeDays {ks.timings.max_age_days}): rotate again soon"
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
    draft.set(generation.id, state=State.DESTROYED, destroyedAt=now)
    draft.result.notes.append(
        f"'{generation.id}' key material is scheduled for deletion at the next `pulumi up`"
        f" ({ks.backend}; deletion window {ks.timings.deletion_window_days} days); its public key stays in"
        " the key history"
    )
    return draft.finish()
