"""Problems and the one error they make: every problem names the stack file, keyset, generation
and field it concerns, and pydantic's errors are translated into such problems here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import identifiers as names
from .. import material, times
from ..errors import KeyRotationError
from ..names import PROJECT
from .model import RANGES, _kind


@dataclass(frozen=True)
class Problem:
    message: str
    keyset: str | None = None
    generation: str | None = None
    field: str | None = None

    def where(self) -> str:
        parts = []
        if self.keyset is not None:
            parts.append(f"keyset {_label(self.keyset)}")
        if self.generation is not None:
            parts.append(f"generation {_label(self.generation)}")
        if self.field is not None:
            parts.append(f"field {_label(self.field)}")
        return ", ".join(parts)


def _label(text: str) -> str:
    """A name as the user wrote it, quoted; invisible and non-ASCII characters spelled out."""
    if material.private_blocks(text):
        return "<private key material>"
    if text.isascii() and text.isprintable() and len(text) <= 80:
        return f"'{text}'"
    return names.describe(text, 80)


class ConfigError(KeyRotationError, ValueError):
    """The stack file is invalid; ``problems`` lists every reason."""

    def __init__(self, stack_file: str, problems: list[Problem]):
        self.stack_file = stack_file
        self.problems = problems
        lines = [f"{stack_file}: invalid {PROJECT} configuration ({len(problems)} problem(s)):"]
        for p in problems:
            where = p.where()
            lines.append(f"  - {where + ': ' if where else ''}{p.message}")
        super().__init__("\n".join(lines))


def _problem(error: Mapping[str, Any], data: Mapping[str, Any]) -> Problem:
    loc = list(error["loc"])
    keyset = generation = None
    if len(loc) >= 2 and loc[0] == "keysets":
        keyset = str(loc[1])
        loc = loc[2:]
        if len(loc) >= 2 and loc[0] == "generations" and isinstance(loc[1], int):
            generation = _generation_id(data, keyset, loc[1])
            loc = loc[2:]
    # pydantic appends the tried union member or literal to the location: keep the user's path.
    loc = [part for part in loc if not (isinstance(part, str) and part in _UNION_TAGS)]
    field = ".".join(str(p) for p in loc) or None
    return Problem(_message(error, loc), keyset, generation, field)


_EXPECTED = {
    "int_type": "a whole number", "int_from_float": "a whole number", "int_parsing": "a whole number",
    "bool_type": "true or false", "string_type": "a string (quote it)", "dict_type": "a mapping",
    "list_type": "a list", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def _message(error: Mapping[str, Any], loc: list[Any]) -> str:
    kind, value = error["type"], error.get("input")
    shown = times.shown(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    if kind == "extra_forbidden":
        return f"unknown key {names.describe(str(loc[-1]) if loc else '')}"
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, not {_kind(value)}{' ' + shown if shown else ''}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        camel = str(loc[-1]) if loc else ""
        if camel in RANGES:
            low, high = RANGES[camel]
            return f"must be from {low} to {high}, not {shown}"
    if kind in ("literal_error", "enum"):
        allowed = str(error["msg"]).removeprefix("Input should be ")
        if not isinstance(value, str):
            return f"must be {allowed}, not {_kind(value)}{' ' + shown if shown else ''}"
        return f"{shown} is not allowed: {allowed}"
    if kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        return f"{shown} is not allowed: it must match {pattern}"
    return str(error["msg"])


_UNION_TAGS = {"DeploymentConsumer", "SecretConsumer", "deployment", "secret"}


def _generation_id(data: Mapping[str, Any], keyset: str, index: int) -> str:
    try:
        gid = data["keysets"][keyset]["generations"][index].get("id")
    except (KeyError, IndexError, TypeError, AttributeError):
        gid = None
    return str(gid) if gid is not None else f"#{index + 1}"
