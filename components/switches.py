"""The deployment record of every switch: when a `pulumi up` deployed a generation's new state.

The stack file records when a command *decided* a switch (``retiringAt`` ...); verifiers, signers
and pods only see it once it is deployed. The SwitchRecord is a dynamic resource that depends on
the keyset's publications and deliveries, so Pulumi updates it after they have switched; it
appends, per generation, ``{state, at, targets}`` the first time it sees the generation in a new
state, and keeps that list across updates (like a publisher's ``first_published``). The rotation
commands read it from the stack outputs (``deployments``) and count the overlap from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from keyrotation.names import SWITCH_RECORD


def _now() -> str:
    from components.publication import _now as publisher_now

    return publisher_now()


def record_switches(
    states: dict[str, str], targets: list[str], previous: dict[str, list[dict[str, Any]]], now: str
) -> dict[str, list[dict[str, Any]]]:
    """``previous`` with a new entry for every generation whose state changed since its last entry."""
    out = {gid: list(entries) for gid, entries in (previous or {}).items()}
    for gid, state in sorted(states.items()):
        entries = out.setdefault(gid, [])
        if not entries or entries[-1].get("state") != state:
            entries.append({"state": state, "at": now, "targets": list(targets)})
    return out


class SwitchRecordProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        switches = record_switches(props.get("states") or {}, props.get("targets") or [], {}, _now())
        return CreateResult(f"{props['keyset']}-switches", {**props, "switches": switches})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only a switch is news: a consumer added or removed alone records nothing.
        changed = olds.get("states") != news.get("states")
        return DiffResult(changes=changed, replaces=[], stables=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        switches = record_switches(news.get("states") or {}, news.get("targets") or [],
                                   olds.get("switches") or {}, _now())
        return UpdateResult({**news, "switches": switches})


@dataclass
class SwitchRecordArgs:
    keyset: str
    states: dict[str, str]
    """Each generation's state as this deployment makes it."""
    targets: list[str]
    """What switches with it: the publication targets and the consumers delivered."""


class SwitchRecord(Resource, module=SWITCH_RECORD[0], name=SWITCH_RECORD[1]):
    switches: pulumi.Output[dict[str, list[dict[str, Any]]]]
    """Per generation, every deployed switch: ``{state, at, targets}``, oldest first."""

    def __init__(self, name: str, args: SwitchRecordArgs, opts: pulumi.ResourceOptions | None = None):
        props = {"keyset": args.keyset, "states": args.states, "targets": args.targets, "switches": None}
        super().__init__(SwitchRecordProvider(), name, props, opts)
