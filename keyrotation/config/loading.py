"""Loading a stack's config: the file's text or the engine's map, checked, typed, then validated.

All problems are reported together, before any resource is registered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from .. import material, stacktext, times
from ..names import PROJECT
from .model import PIN_KEY, StackConfig
from .problems import ConfigError, Problem, _generation_id, _problem
from .rules import validate


def load(
    stack_file: str,
    *,
    text: str | None = None,
    parsed: stacktext.Parsed | None = None,
    config: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> StackConfig:
    """The one entry point of validation, for the program and the commands alike.

    ``text``: the stack file's YAML (the commands read it; the program reads it when it finds it
    beside ``Pulumi.yaml``): its YAML-level rules (:mod:`keyrotation.stacktext`) are checked and
    its ``config:`` map is validated as written. ``config``: the map as the Pulumi engine
    hands it to the program (values may be JSON strings). ``now``: the clock the command or the
    program acts at; recorded times more than a year after it are refused. ``parsed``: the text
    already read by :func:`keyrotation.stacktext.parse` (the editor keeps its node).
    """
    if parsed is None and text is not None:
        parsed = stacktext.parse(text, stack_file)
    if parsed is not None:
        document = parsed.document
        # The file as written first: the engine's YAML reading (YAML 1.1 `yes`, last duplicate
        # wins, numbers as strings) must not turn a refused file into an accepted config.
        from_file = from_config_map(document["config"], stack_file=stack_file, now=now, from_file=True)
        if config is None:
            return from_file
    if config is None:
        raise ConfigError(stack_file, [Problem("has no 'config:' mapping")])
    return from_config_map(config, stack_file=stack_file, now=now)


def load_stack_file(path: str | Path, *, now: datetime | None = None) -> StackConfig:
    """Read and validate ``Pulumi.<stack>.yaml`` from disk (the commands and tests use this)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(path.name, [Problem(f"is not UTF-8 text (byte {error.start})")]) from None
    return load(path.name, text=text, now=now)


def from_config_map(config: Mapping[Any, Any], *, stack_file: str, now: datetime | None = None,
                    from_file: bool = False) -> StackConfig:
    """Validate a stack's ``config:`` map (keys such as ``key-rotation:keysets``).

    Values may be the decoded objects (from the YAML file) or JSON strings (as the Pulumi engine
    hands structured config to a program).
    """
    ours: dict[str, Any] = {}
    other: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in config.items():
        if not isinstance(key, str):
            problems.append(Problem(f"config key {times.shown(key)} is not a string"))
            continue
        why = namespace_problem(key)
        if why:
            problems.append(Problem(why, field=key))
            continue
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and name == PIN_KEY:
            # The PIN is read where it is used (components/stack.py, components/pkcs11_key.py),
            # never kept in the model. In a stack file it must be a Pulumi secret ({secure: ...});
            # the engine hands the program its decrypted value, which is a string there and fine.
            if from_file and not (isinstance(value, dict) and set(value) == {"secure"}):
                problems.append(Problem(
                    "is in plain text; set it as a secret: pulumi config set --secret"
                    f" {PROJECT}:{PIN_KEY} (or give PKCS11_PIN in the environment)", field=PIN_KEY,
                ))
            continue
        decoded = _decode(value)
        size = _size_problem(decoded)
        if size:
            problems.append(Problem(size, field=name if namespace == PROJECT else key))
            continue
        for path, what in material.find(decoded, ()):
            problems.append(_material_problem(namespace, name, key, path, what, decoded))
        if namespace == PROJECT:
            ours[name] = decoded
        else:
            other[key] = value
    if problems:
        raise ConfigError(stack_file, problems)
    return parse(ours, stack_file=stack_file, other=other, now=now)


_KNOWN_NAMESPACES = ("aws", "gcp", "kubernetes", "pulumi")


def namespace_problem(key: str) -> str | None:
    """Why a config key's namespace is refused: none, or one that looks like a typo of ours."""
    namespace, colon, name = key.partition(":")
    if not colon or not namespace or not name:
        return (f"config key {times.shown(key)} needs a namespace and a name, e.g."
                f" '{PROJECT}:keysets' or 'aws:region'")
    if namespace == PROJECT or namespace in _KNOWN_NAMESPACES:
        return None
    squashed = re.sub(r"[^a-z0-9]", "", namespace.lower())
    if "rotation" in squashed or "keyrot" in squashed or _distance(squashed, "keyrotation") <= 3:
        return (f"unknown namespace {times.shown(namespace)}: this program reads '{PROJECT}:{name[:40]}'"
                " (a misspelt namespace would be ignored silently)")
    return None


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _size_problem(value: Any) -> str | None:
    """Values that expand (YAML aliases shared by reference) beyond any real stack file, or nest too deep."""
    budget = stacktext.MAX_NODES
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            return (f"expands to more than {stacktext.MAX_NODES} values (YAML aliases?);"
                    " a stack file is far smaller")
        if depth > stacktext.MAX_DEPTH:
            return f"is nested deeper than {stacktext.MAX_DEPTH} levels"
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return None


def _material_problem(namespace: str, name: str, key: str, path: tuple[Any, ...], what: str,
                      data: Any) -> Problem:
    keyset = generation = None
    parts = list(path)
    if namespace == PROJECT and name == "keysets" and parts:
        keyset = str(parts.pop(0))
        if len(parts) >= 2 and parts[0] == "generations" and isinstance(parts[1], int):
            generation = _generation_id({"keysets": data}, keyset, parts[1])
            parts = parts[2:]
        field = _dotted(parts)
    else:
        field = _dotted([name if namespace == PROJECT else key, *parts])
    return Problem(f"holds private key material ({what}); {material.REMEDY}", keyset, generation, field)


def _dotted(parts: list[Any]) -> str | None:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value


def parse(
    data: Mapping[str, Any], *, stack_file: str, other: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> StackConfig:
    data = dict(data)
    try:
        stack = StackConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(stack_file, [_problem(e, data) for e in error.errors()]) from None
    keysets = {
        name: keyset.model_copy(update={
            "name": name, "timings": stack.timings_of(keyset),
            # Resolved once: every reader sees the keyset's own profile and token.
            "profile": keyset.profile or stack.profile,
            "pkcs11": keyset.pkcs11 or (stack.pkcs11 if keyset.backend == "pkcs11" else None),
        })
        for name, keyset in stack.keysets.items()
    }
    stack = stack.model_copy(
        update={"keysets": keysets, "stack_file": stack_file, "other": dict(other or {})}
    )
    problems = validate(stack, now=now)
    if problems:
        raise ConfigError(stack_file, problems)
    return stack
