"""Stack guardrails: the rotation itself, judged over every resource of the stack (`AnalyzeStack`).

The KeyGeneration components record each generation's lifecycle (its Generation as in the stack
file), its kid and its keyset's timings; the Publications record what each document lists and,
per kid, when the publisher first wrote it. The gap model is the domain's
(``keyrotation.lifecycle.find_gaps``): a policy only decides which gaps a deployment can still
avoid and says what to do.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from keyrotation import lifecycle
from keyrotation.config import Generation, StackConfig
from keyrotation.lifecycle import PUBLISHED_STATES, State
from keyrotation.metadata import RotationMetadata
from keyrotation.published import DocumentSeen, first_published
from policy import limits, resources, stack_config
from policy.limits import iso
from policy.resources import UNKNOWN, DocumentRecord, GenerationRecord, where


@dataclass
class KeySetView:
    """What the stack says of one keyset: its generations, documents and key resources."""

    name: str
    generations: list[GenerationRecord] = field(default_factory=list)
    documents: list[DocumentRecord] = field(default_factory=list)
    key_metadata: dict[str, tuple[RotationMetadata, str]] = field(default_factory=dict)
    """generation id -> (metadata, resource) from key resources, for keysets without components."""

    @property
    def public_documents(self) -> list[DocumentRecord]:
        return [d for d in self.documents if d.format in resources.PUBLIC_KEY_FORMATS]

    @property
    def timings(self) -> lifecycle.Timings:
        return self.generations[0].timings

    @property
    def configured(self) -> list[Generation]:
        """The keyset's generations (what the lifecycle rules take)."""
        return [g.generation for g in self.generations]

    @property
    def purpose(self) -> str:
        return self.generations[0].purpose or "sign"


def keysets(args: StackValidationArgs) -> dict[str, KeySetView]:
    """Every keyset's view of the stack: built once per analysis, shared by the stack policies."""
    return resources.per_analysis("keysets", lambda: _keysets(args))


def _keysets(args: StackValidationArgs) -> dict[str, KeySetView]:
    views: dict[str, KeySetView] = {}

    def view(name: str) -> KeySetView:
        return views.setdefault(name, KeySetView(name))

    described = stack_config.stack()
    props_by_urn = resources.stack_props(args)
    for r in args.resources:
        props = props_by_urn[r.urn]
        record = resources.generation_record(r.resource_type, props, r.urn, r.name)
        if record is not None:
            view(record.keyset).generations.append(_as_configured(record, described))
            continue
        document = resources.document_record(r.resource_type, props, r.urn, r.name)
        if document is not None:
            for keyset in document.keysets:  # a trust anchor is a document of every keyset it lists
                view(keyset).documents.append(document)
            continue
        if r.resource_type in resources.AGED_TYPES:
            meta = resources.rotation_metadata(r.resource_type, props).metadata
            if meta is not None:
                view(meta.keyset).key_metadata.setdefault(meta.generation,
                                                          (meta, where(r.resource_type, r.name)))
    return views


def _as_configured(record: GenerationRecord, stack: StackConfig | None) -> GenerationRecord:
    """The generation as the stack config describes it: the model the program read (the engine hands
    the pack the same config, policy/stack_config.py). The KeyGeneration outputs' copy stands only
    for a keyset or generation the config does not describe (no config, or another program's)."""
    keyset = stack.keysets.get(record.keyset) if stack is not None else None
    if keyset is None:
        return record
    configured = next((g for g in keyset.generations if g.id == record.generation.id), None)
    if configured is None:
        return record
    return replace(record, generation=configured, timings=keyset.timings, purpose=str(keyset.purpose))


def _named(g: GenerationRecord) -> str:
    return f"keyset '{g.keyset}', generation '{g.generation.id}'" + (f" (kid {g.kid})" if g.kid else "")


def _stack_file() -> str:
    return f"Pulumi.{limits.stack_name()}.yaml"


# ---------------------------------------------------------------------------------------------
# Exactly one active generation


def validate_one_active(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for name, ks in sorted(keysets(args).items()):
        if ks.generations:
            states = {g.generation.id: str(g.generation.state) for g in ks.generations}
            urn = ks.generations[0].urn
        elif ks.key_metadata:
            states = {gid: meta.state for gid, (meta, _) in ks.key_metadata.items()}
            urn = None
        else:
            continue
        if lifecycle.primary_id(states.items()) is not None:
            continue
        active = sorted(lifecycle.active_ids(states.items()))
        if not active:
            pending = [gid for gid, state in states.items() if state == State.PENDING]
            hint = (f"promote one: `python -m keyrotation promote {name} {pending[-1]} --stack"
                    f" {limits.stack_name()}`"
                    if pending else f"rotate: `python -m keyrotation rotate {name} --stack"
                                    f" {limits.stack_name()}`,"
                    " then promote it after its publish lead")
            report_violation(f"keyset '{name}' has no active generation (states: "
                             f"{', '.join(f'{g}={s}' for g, s in states.items())}): nothing can sign or"
                             " encrypt."
                             f" {hint[0].upper()}{hint[1:]}.", urn)
        else:
            report_violation(f"keyset '{name}' has {len(active)} active generations ({', '.join(active)}):"
                             " exactly"
                             " one signs or encrypts at a time. Keep the newest active and make the others"
                             f" `retiring` with retiringAt in {_stack_file()} (promote does this).", urn)


# ---------------------------------------------------------------------------------------------
# The active kid is published


def validate_active_published(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for _name, ks in sorted(keysets(args).items()):
        for g in ks.generations:
            if g.generation.state is not State.ACTIVE or g.kid is None:
                continue
            for doc in ks.public_documents:
                kids = doc.kids
                if kids is not None and g.kid not in kids:
                    report_violation(
                        f"{_named(g)} is active but missing from {doc.where}, which lists"
                        f" {', '.join(kids) or 'no key'}: verifiers reading it reject every signature the"
                        " active generation makes. Publish it (it must be pending and published for the"
                        " publish lead before it is promoted).", doc.urn)
                anchor = doc.document.get("active_key_id") if doc.format == "trust-anchor" and \
                    isinstance(doc.document, dict) else None
                if doc.format == "trust-anchor" and anchor not in (None, UNKNOWN) and anchor != g.kid:
                    report_violation(
                        f"{_named(g)} is active but {doc.where} names active_key_id {anchor}: signers that"
                        " follow the trust anchor sign with another key.", doc.urn)


# ---------------------------------------------------------------------------------------------
# Publish lead and overlap (the gap check)


@dataclass(frozen=True)
class _Published:
    times: dict[str, datetime]
    """generation id -> when it was first published (what find_gaps uses over createdAt)."""
    sources: dict[str, str]
    """generation id -> where that time comes from, for messages."""


def published_times(ks: KeySetView, now: datetime) -> _Published:
    """When each generation was first published: ``keyrotation.published.first_published`` over the
    publishers' records (the rule the rotation commands apply to the stack outputs). A kid a
    document lists but its publisher has not recorded yet is published by this very deployment:
    now."""
    seen = [DocumentSeen(doc.target, doc.first_published, doc.kids) for doc in ks.public_documents]
    times: dict[str, datetime] = {}
    sources: dict[str, str] = {}
    for g in ks.generations:
        found = first_published(g.kid, g.generation.activated_at, seen, now=now)
        if found.at is not None:
            times[g.generation.id], sources[g.generation.id] = found.at, found.source or ""
    return _Published(times, sources)


def _gaps(ks: KeySetView, now: datetime) -> Iterator[tuple[lifecycle.Gap, GenerationRecord, _Published]]:
    """Gaps a deployment can still avoid: not intended, and not over before verifiers could see them."""
    if not ks.generations:
        return
    published = published_times(ks, now)
    by_id = {g.generation.id: g for g in ks.generations}
    skew = timedelta(seconds=ks.timings.clock_skew_seconds)
    for gap in lifecycle.find_gaps(ks.name, [g.generation for g in ks.generations], ks.timings,
                                   published.times, purpose=ks.purpose):
        if not gap.intended and gap.end + skew > now:
            yield gap, by_id[gap.generation], published


def validate_publish_lead(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    now = limits.evaluation_time(args.get_config())
    for _name, ks in sorted(keysets(args).items()):
        for gap, g, published in _gaps(ks, now):
            if gap.kind != "published-too-late":
                continue
            since = lifecycle.published_since(g.generation, published.times)
            source = published.sources.get(
                g.generation.id, "no publisher has recorded its first publication: it counts from its"
                                 f" createdAt {iso(since)}")
            allowed = max(since + ks.timings.publish_lead, now)
            report_violation(
                f"{_named(g)} was activated at {iso(g.generation.activated_at)} but {source}; the publish"
                " lead"
                f" is {int(ks.timings.publish_lead.total_seconds())}s (publishMaxAgeSeconds +"
                " clockSkewSeconds),"
                f" so {gap.describe()}. Keep it pending and promote after"
                f" {iso(since + ks.timings.publish_lead)}:"
                f" `python -m keyrotation promote {ks.name} {g.generation.id} --stack {limits.stack_name()}`"
                f" at {iso(allowed)} or later.", g.urn)


def validate_overlap(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    now = limits.evaluation_time(args.get_config())
    for _name, ks in sorted(keysets(args).items()):
        overlap = ks.timings.overlap if ks.generations else None
        for gap, g, _published in _gaps(ks, now):
            if gap.kind != "removed-too-early":
                continue
            stopped = lifecycle.stopped_at(g.generation)
            assert overlap is not None  # a gap needs generations
            until = f" until {iso(stopped + overlap)}" if stopped else ""
            report_violation(
                f"{_named(g)} left the published documents (state {g.generation.state}) before the overlap of"
                f" {int(overlap.total_seconds())}s (tokenLifetimeSeconds + publishMaxAgeSeconds +"
                " clockSkewSeconds)"
                f" had passed, so {gap.describe()}. Keep it `retiring` (published){until}, then retire it:"
                f" `python -m keyrotation retire {ks.name} {g.generation.id} --stack {limits.stack_name()}`.",
                g.urn)
        _trigger_overlap(ks, now, report_violation)
        for g in ks.generations:
            if g.generation.state is not State.RETIRING or g.kid is None:
                continue
            for doc in ks.public_documents:
                if doc.kids is not None and g.kid not in doc.kids:
                    ends = lifecycle.earliest_retire(ks.configured, g.generation, ks.timings)
                    report_violation(
                        f"{_named(g)} is retiring but missing from {doc.where}: signatures it made are"
                        " rejected"
                        f" while they are still valid. A retiring generation stays published"
                        f"{f' until {iso(ends)}' if ends else ''}.", doc.urn)


def _trigger_overlap(ks: KeySetView, now: datetime, report_violation: ReportViolation) -> None:
    """A generation this deployment removes (retired, destroyed) before the minimum overlap of the
    trigger recorded on the rotation that replaced it (seed 003); the computed overlap is the gap
    check's. Both come from ``lifecycle.earliest_retire``, as for `retire`, `plan` and `status`."""
    generations = ks.configured
    for g in ks.generations:
        if g.generation.state not in (State.RETIRED, State.DESTROYED):
            continue
        ends = lifecycle.earliest_retire(generations, g.generation, ks.timings)
        overlap, trigger = lifecycle.retire_overlap(generations, g.generation, ks.timings)
        if trigger is None or overlap <= ks.timings.overlap or ends is None or now >= ends:
            continue
        rule = lifecycle.TRIGGERS[trigger]
        report_violation(
            f"{_named(g)} leaves the published documents (state {g.generation.state}) at {iso(now)}, before"
            f" {iso(ends)}: the rotation that replaced it records trigger {trigger} (urgency {rule.urgency}),"
            f" whose overlap is at least {int(rule.minimum_overlap.total_seconds())}s (the computed overlap"
            f" is {int(ks.timings.overlap.total_seconds())}s; the larger wins). Keep it `retiring` until"
            f" {iso(ends)}, then retire it:"
            f" `python -m keyrotation retire {ks.name} {g.generation.id} --stack {limits.stack_name()}`.",
            g.urn)


# ---------------------------------------------------------------------------------------------
# Revoked keys are unpublished


def validate_revoked(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for _name, ks in sorted(keysets(args).items()):
        unpublished = {g.kid: g for g in ks.generations
                       if g.kid is not None and g.generation.state not in PUBLISHED_STATES}
        for doc in ks.public_documents:
            listed = set(doc.kids or [])
            if doc.format == "trust-anchor" and isinstance(doc.document, dict) and \
                    isinstance(doc.document.get("active_key_id"), str):
                listed.add(doc.document["active_key_id"])
            for kid in sorted(listed & unpublished.keys()):
                g = unpublished[kid]
                if g.generation.state is State.REVOKED:
                    why = (f"was revoked at {iso(g.generation.revoked_at)}"
                           f" ({g.generation.revoke_reason or 'no reason given'})")
                else:
                    why = f"is {g.generation.state}"
                report_violation(
                    f"{_named(g)} {why} but {doc.where} still lists it: verifiers keep accepting signatures"
                    " made with it. The document must list only pending, active and retiring generations;"
                    " check that nothing else writes to that target.", doc.urn)


# ---------------------------------------------------------------------------------------------
# Key material only in its key resource and in Secrets


def _forms(material: str) -> set[str]:
    text = material.strip()
    return {material, text, base64.b64encode(material.encode()).decode(),
            base64.b64encode(text.encode()).decode()}


def _scan(value: Any, path: str, forms: dict[str, str]) -> Iterator[tuple[str, str]]:
    for where_, text in resources.strings_in(value, path):
        if text in forms or text.strip() in forms:
            yield where_, forms.get(text) or forms[text.strip()]
            continue
        stripped = text.strip()
        if stripped[:1] in ("{", "[") and len(stripped) > 2:
            try:
                inner = json.loads(stripped)
            except ValueError:
                continue
            yield from _scan(inner, where_, forms)


def validate_material_placement(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    forms: dict[str, str] = {}
    props_by_urn = resources.stack_props(args)
    for r in args.resources:
        if r.resource_type != resources.SOFTWARE_KEY:
            continue
        props = props_by_urn[r.urn]
        material = props.get("private_key")
        if isinstance(material, str) and material:
            owner = f"keyset '{props.get('keyset')}', generation '{props.get('generation')}'"
            forms.update(dict.fromkeys(_forms(material), owner))
    if not forms:
        return
    for r in args.resources:
        if r.resource_type in (resources.SOFTWARE_KEY, *resources.SECRET_TYPES):
            continue
        seen: set[tuple[str, str]] = set()
        for path, owner in _scan(props_by_urn[r.urn], "", forms):
            if (path, owner) in seen:
                continue
            seen.add((path, owner))
            report_violation(
                f"{owner}: its private key material appears in {where(r.resource_type, r.name)} at {path}."
                " Key material may only be in its key resource's secret output and in Kubernetes Secrets:"
                " remove it there, and rotate the keyset, since the value is now in the stack's state in"
                " plaintext.", r.urn)


# ---------------------------------------------------------------------------------------------

one_active = StackValidationPolicy(
    name="one-active-generation",
    description="Every keyset has exactly one active generation.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=validate_one_active,
)

active_published = StackValidationPolicy(
    name="active-kid-published",
    description="Every published document of a keyset lists its active kid.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=validate_active_published,
)

publish_lead = StackValidationPolicy(
    name="publish-lead",
    description="A generation becomes active only after it has been published for the publish lead.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=limits.CLOCK_SCHEMA,
    validate=validate_publish_lead,
)

retire_after_overlap = StackValidationPolicy(
    name="retire-after-overlap",
    description="A generation that stopped signing stays published for the overlap.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=limits.CLOCK_SCHEMA,
    validate=validate_overlap,
)

revoked_unpublished = StackValidationPolicy(
    name="revoked-key-unpublished",
    description="Revoked (and retired) keys are absent from every published document.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    validate=validate_revoked,
)

material_placement = StackValidationPolicy(
    name="key-material-only-in-secrets",
    description="Private key material appears only in its key resource and in Kubernetes Secrets.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    validate=validate_material_placement,
)

POLICIES = [one_active, active_published, publish_lead, retire_after_overlap, revoked_unpublished,
            material_placement]
