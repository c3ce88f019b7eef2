"""What a deployment recorded, as the commands read it, and how they look up what a user names.

:class:`Publications` is the publisher's record of one keyset (from the stack outputs: first
publications, deployed switches, deployed kids); ``keyset_of``, ``generation_of`` and ``kid_of``
turn the names a user types into the stack config's objects, or a :class:`CommandError` that
lists what exists. The transitions, the schedule and the outputs reader share them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .. import lifecycle
from ..config import Generation, KeySetConfig, StackConfig
from ..errors import CommandError
from ..lifecycle import State
from . import kids

__all__ = ["NO_RECORD", "Publications", "deployed_stops", "deployed_switch", "generation_of", "keyset_of",
           "kid_info", "kid_of"]


@dataclass(frozen=True)
class Publications:
    """What the publisher recorded for one keyset (from the stack outputs), per generation."""

    first_published: Mapping[str, datetime] = field(default_factory=dict)
    """When the generation was first in every document that lists key ids (the latest of them)."""
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Targets whose document does not list the generation yet."""
    kids: Mapping[str, str] = field(default_factory=dict)
    """The generation's key id as deployed (thumbprint kids are only known from the outputs)."""
    key_ids: Mapping[str, str] = field(default_factory=dict)
    """The generation's KMS key id (AWS) or version name (GCP) as recorded, kept after the key is gone."""
    deployed_states: Mapping[str, str] = field(default_factory=dict)
    """The generation's state as last deployed (``pulumi up``), which may lag the stack file."""
    deployed: Mapping[str, Mapping[str, datetime]] = field(default_factory=dict)
    """The deployment record of each switch: per generation, per state, when a `pulumi up` last
    deployed the generation entering that state (its consumers and publications switched)."""
    source: str | None = None
    """Where the record came from; None: no record, times count from createdAt."""
    unavailable: str | None = None
    """Why there is no record (e.g. the Pulumi CLI is not installed), when there is none."""


NO_RECORD = Publications()


def deployed_stops(keyset: KeySetConfig, record: Publications) -> dict[str, datetime]:
    """Per generation, when its latest switch to retiring was deployed (for the gap check)."""
    out = {}
    for g in keyset.generations:
        at = deployed_switch(record, g, State.RETIRING)
        if at is not None:
            out[g.id] = at
    return out


def deployed_switch(record: Publications, generation: Generation, state: State) -> datetime | None:
    """When the generation's latest switch to ``state`` was deployed, if the record has it (a record
    older than the switch in the stack file says nothing about it)."""
    at = record.deployed.get(generation.id, {}).get(str(state))
    entered = lifecycle.entered(generation, state)
    if at is None or entered is None or at < entered:
        return None
    return at



def keyset_of(stack: StackConfig, name: str) -> KeySetConfig:
    try:
        return stack.keysets[name]
    except KeyError:
        known = ", ".join(sorted(stack.keysets)) or "none"
        raise CommandError(f"{stack.stack_file}: no keyset '{name}' (keysets: {known})") from None


def generation_of(stack: StackConfig, keyset: KeySetConfig, generation_id: str) -> Generation:
    for g in keyset.generations:
        if g.id == generation_id:
            return g
    known = ", ".join(f"{g.id} ({g.state})" for g in keyset.generations)
    raise CommandError(
        f"{stack.stack_file}: keyset '{keyset.name}' has no generation '{generation_id}' (generations:"
        f" {known})"
    )


def kid_info(stack: StackConfig, keyset: KeySetConfig, generation: Generation,
             record: Publications = NO_RECORD) -> kids.Kid:
    """The generation's kid: deployed (stack outputs), rendered, computed, or unknown and why."""
    return kids.kid(stack, keyset, generation, record.kids, outputs_unavailable=record.unavailable)


def kid_of(stack: StackConfig, keyset: KeySetConfig, generation: Generation,
           record: Publications = NO_RECORD) -> str:
    """The kid for a message (says so when it is unknown)."""
    return kid_info(stack, keyset, generation, record).text(generation.id)
