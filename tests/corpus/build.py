"""Builds a bad stack file from a corpus case: a shipped stack file and the edits that break it."""

from __future__ import annotations

import copy
import functools
import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from keyrotation import stacktext

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "bad_stack_files.json"


@functools.cache
def shipped(stack: str) -> str:
    return (ROOT / f"Pulumi.{stack}.yaml").read_text()


@functools.cache
def _document(stack: str) -> dict:
    return stacktext.read(shipped(stack), f"Pulumi.{stack}.yaml")


def _value(value: Any) -> Any:
    # Values too large to keep in the corpus itself are described: a repeated string, a deep nest.
    if isinstance(value, dict) and set(value) == {"repeat"}:
        text, times = value["repeat"]
        return text * times
    if isinstance(value, dict) and set(value) == {"nest"}:
        nested: Any = "x"
        for _ in range(value["nest"]):
            nested = {"n": nested}
        return nested
    return value


def _walk(document: dict, path: list) -> tuple[Any, Any]:
    node: Any = document["config"]
    for part in path[:-1]:
        if isinstance(node, dict) and part not in node:
            node[part] = {}
        node = node[part]
    return node, path[-1]


def build(case: dict[str, Any]) -> str:
    """The text of the case's stack file."""
    text = shipped(case["base"])
    edits = [op for op in case["ops"] if op[0] in ("set", "delete", "rename")]
    if edits:
        document = copy.deepcopy(_document(case["base"]))
        for op in edits:
            holder, key = _walk(document, op[1])
            if op[0] == "set" and isinstance(holder, list) and key == len(holder):
                holder.append(_value(op[2]))
            elif op[0] == "set":
                holder[key] = _value(op[2])
            elif op[0] == "delete":
                del holder[key]
            else:  # rename a mapping key, keeping its place
                items = list(holder.items())
                holder.clear()
                holder.update((op[2] if k == key else k, v) for k, v in items)
        out = io.StringIO()
        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        yaml.width = 4096
        yaml.dump(document, out)
        text = out.getvalue()
    for op in case["ops"]:
        if op[0] == "replace":
            assert op[1] in text, f"{case['name']}: {op[1]!r} not in the base text"
            text = text.replace(op[1], op[2], 1)
        elif op[0] == "text":
            text = op[1]
    return text
