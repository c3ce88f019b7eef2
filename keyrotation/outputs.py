"""The publisher's record, read from the stack outputs (``pulumi stack output --json``).

Each keyset's output carries ``generations`` (id, kid, state) and, per published document,
``firstPublished``: when the publisher first wrote each kid there. A generation counts as
published when every document that lists kids lists it: the latest of those times.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from . import times
from .commands import Publications
from .config import StackConfig


class OutputsError(Exception):
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
    return (data, f"pulumi stack output --stack {stack_name}") if isinstance(data, dict) else (None, "no outputs")


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
            out[name] = _record(summary, source)
        except OutputsError as error:
            raise OutputsError(f"keyset '{name}': {error}") from None
        except (TypeError, KeyError, AttributeError) as error:
            raise OutputsError(f"{source}: keyset '{name}': unexpected output shape: {error}") from None
    return out


def _record(summary: dict[str, Any], source: str) -> Publications:
    generations = summary.get("generations") or []
    kids = {str(g["id"]): str(g["kid"]) for g in generations if isinstance(g.get("kid"), str)}
    states = {str(g["id"]): str(g["state"]) for g in generations if isinstance(g.get("state"), str)}
    by_kid = {kid: gid for gid, kid in kids.items()}
    first: dict[str, datetime] = {}
    missing: dict[str, list[str]] = {}
    documents = summary.get("documents") or {}
    for target, document in documents.items():
        published = document.get("firstPublished") or {}
        if not published:
            continue  # a document that lists no kids (key history) says nothing about publication
        for kid, gid in by_kid.items():
            if kid in published:
                try:
                    t = times.parse(published[kid])
                except times.TimeError as error:
                    # The same rule as the stack file's times: no Unix numbers, no year 9999.
                    raise OutputsError(
                        f"{source}: documents.{target}.firstPublished.{kid}: {str(error).removeprefix('is ')}"
                    ) from None
                first[gid] = max(first.get(gid, t), t)
            else:
                missing.setdefault(gid, []).append(document.get("target", target))
    # A generation missing from some document is not yet published, whatever the others say.
    for gid in missing:
        first.pop(gid, None)
    return Publications(
        first_published=first, missing={g: tuple(t) for g, t in missing.items()}, kids=kids,
        deployed_states=states, source=source,
    )
