"""The publisher's record, read from the stack outputs (``pulumi stack output --json``).

Each keyset's output carries ``generations`` (id, kid, state), per published document
``firstPublished`` (when the publisher first wrote each kid there) and ``deployments`` (the
deployment record of every switch, components/switches.py). When a generation counts as
published is ``keyrotation.published.first_published``, the rule the policy pack uses too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import times
from ..config import KeySetConfig, StackConfig
from ..documents import KID_FORMATS
from ..errors import KeyRotationError
from ..published import DocumentSeen, first_published
from .records import Publications


class OutputsError(KeyRotationError):
    """The outputs cannot be read or do not have the expected shape."""


def load(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise OutputsError(f"{path}: cannot read the stack outputs: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise OutputsError(f"{path}: not JSON (expected `pulumi stack output --json`): {error}") from None
    if not isinstance(data, dict):
        raise OutputsError(f"{path}: expected a JSON object (`pulumi stack output --json`)")
    return data


def from_pulumi(stack_name: str, cwd: Path, timeout: float = 60) -> tuple[dict[str, Any] | None, str]:
    """Ask the Pulumi CLI, when it is installed; (outputs, where they came from or why not)."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        return None, "the Pulumi CLI is not on PATH"
    command = [pulumi, "stack", "output", "--json", "--stack", stack_name]
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"`{' '.join(command[1:])}` failed: {error}"
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return None, f"`pulumi {' '.join(command[1:])}` failed: {reason}"
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None, f"`pulumi {' '.join(command[1:])}` did not print JSON"
    return (data, f"pulumi stack output --stack {stack_name}") if isinstance(data, dict) else (None,
                                                                                               "no outputs")


def records(outputs: dict[str, Any], stack: StackConfig, source: str) -> dict[str, Publications]:
    """Per keyset of ``stack``, what the outputs say was published and when."""
    keysets = outputs.get("keysets")
    if not isinstance(keysets, dict):
        raise OutputsError(f"{source}: no 'keysets' output; has the stack been deployed (`pulumi up`)?")
    out: dict[str, Publications] = {}
    for name in stack.keysets:
        summary = keysets.get(name)
        if not isinstance(summary, dict):
            continue  # not deployed yet: no record for it
        try:
            out[name] = _record(summary, source, stack.keysets[name])
        except OutputsError as error:
            raise OutputsError(f"keyset '{name}': {error}") from None
        except (TypeError, KeyError, AttributeError) as error:
            raise OutputsError(f"{source}: keyset '{name}': unexpected output shape: {error}") from None
    return out


def _record(summary: dict[str, Any], source: str, stack_keyset: KeySetConfig | None) -> Publications:
    generations = summary.get("generations") or []
    kids = {str(g["id"]): str(g["kid"]) for g in generations if isinstance(g.get("kid"), str)}
    states = {str(g["id"]): str(g["state"]) for g in generations if isinstance(g.get("state"), str)}
    key_ids = {str(g["id"]): g["keyId"] for g in generations if isinstance(g.get("keyId"), str)
               and g["keyId"]}
    seen: list[DocumentSeen] = []
    for target, document in (summary.get("documents") or {}).items():
        if document.get("format") not in KID_FORMATS:
            continue  # the key history lists every kid ever: it says nothing about publication
        recorded: dict[str, datetime] = {}
        for kid, text in (document.get("firstPublished") or {}).items():
            try:
                # The stack file's rule: no Unix numbers, no year 9999 that overflows later.
                recorded[kid] = times.parse(text)
            except times.TimeError as error:
                raise OutputsError(
                    f"{source}: documents.{target}.firstPublished.{kid}: {str(error).removeprefix('is ')}"
                ) from None
        if document.get("firstPublished") is None:
            continue  # no publisher record (a ConfigMap target)
        seen.append(DocumentSeen(document.get("target", target), recorded))
    deployed: dict[str, dict[str, datetime]] = {}
    first_deployed: dict[str, datetime] = {}
    for gid, entries in (summary.get("deployments") or {}).items():
        for i, entry in enumerate(entries or []):
            try:
                at = times.parse(entry.get("at"))
            except times.TimeError as error:
                raise OutputsError(
                    f"{source}: deployments.{gid}[{i}].at: {str(error).removeprefix('is ')}"
                ) from None
            deployed.setdefault(str(gid), {})[str(entry.get("state"))] = at  # the latest wins
            first_deployed.setdefault(str(gid), at)
    first: dict[str, datetime] = {}
    missing: dict[str, tuple[str, ...]] = {}
    activated = {g.id: g.activated_at for g in stack_keyset.generations} if stack_keyset is not None else {}
    for gid in sorted(set(kids) | set(first_deployed)):
        found = first_published(kids.get(gid), activated.get(gid), seen,
                                first_deployed=first_deployed.get(gid))
        if found.at is not None:
            first[gid] = found.at
        if found.missing:
            missing[gid] = found.missing
    return Publications(
        first_published=first, missing=missing, kids=kids, key_ids=key_ids,
        deployed_states=states, deployed=deployed, source=source,
    )
