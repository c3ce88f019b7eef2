"""Reading the YAML text of ``Pulumi.<stack>.yaml`` strictly, before any of it is interpreted.

Refused here, with the line: text that is too large, control and bidirectional-override
characters (a review must see what the program reads), invalid YAML, duplicate keys (YAML
parsers disagree on which one wins), tags other than YAML's core types, non-scalar keys, nesting
deeper than :data:`MAX_DEPTH`, aliases that expand to more than :data:`MAX_NODES` values, and a
PEM private block outside any value (in a comment). Timestamps stay text, as the Pulumi CLI hands
them to the program, so that the one time parser (:mod:`keyrotation.times`) reads both paths.

The text is parsed once, by libyaml with ruamel's YAML 1.2 meaning (:mod:`keyrotation.stackyaml`);
:func:`parse` also returns the composed node, which says where each value sits (the editor uses it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import material, stackyaml

MAX_BYTES = 4 * 1024 * 1024
"""A stack file of 1,000 keysets is about 1 MiB."""
MAX_NODES = 200_000
"""Values after alias expansion; a billion-laughs document stops here."""
MAX_DEPTH = 32
_CORE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq",
                                                  "timestamp", "merge")}
_FORBIDDEN_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]"
)


class _Loader(stackyaml.Loader):
    """libyaml with ruamel's YAML 1.2 scalars, and timestamps kept as the text written."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in stackyaml.Loader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Parsed:
    """A stack file's text read strictly: its document, and the composed node (positions)."""

    document: dict[str, Any]
    node: Node


class _Where:
    """Names a position in the document the way a Problem does: keyset, generation, field."""

    @staticmethod
    def of(path: tuple[Any, ...],
           ids: dict[tuple[Any, ...], str]) -> tuple[str | None, str | None, str | None]:
        if len(path) >= 2 and path[0] == "config" and path[1] == "key-rotation:keysets":
            keyset = str(path[2]) if len(path) > 2 else None
            rest = path[3:]
            generation = None
            if len(rest) >= 2 and rest[0] == "generations" and isinstance(rest[1], int):
                generation = ids.get(path[:5], f"#{rest[1] + 1}")
                rest = rest[2:]
            field = _dotted(rest)
            return keyset, generation, field or (None if keyset else "keysets")
        if len(path) >= 2 and path[0] == "config":
            namespace_key = str(path[1])
            ours = namespace_key.startswith("key-rotation:")
            name = namespace_key.partition(":")[2] if ours else namespace_key
            return None, None, _dotted((name, *path[2:]))
        return None, None, _dotted(path) or None


def _dotted(parts: tuple[Any, ...]) -> str | None:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def read(text: str, stack_file: str) -> dict[str, Any]:
    """The document of a stack file's text, or a ConfigError listing every problem found."""
    return parse(text, stack_file).document


def parse(text: str, stack_file: str) -> Parsed:
    """The document and composed node of a stack file's text, or a ConfigError with every problem."""
    from .config.problems import ConfigError, Problem

    def fail(problems: list[Problem]) -> None:
        raise ConfigError(stack_file, problems)

    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        fail([Problem(f"is larger than {MAX_BYTES // (1024 * 1024)} MiB; a stack file is far smaller")])
    problems: list[Problem] = []
    for number, line in enumerate(text.split("\n"), 1):
        bad = _FORBIDDEN_CHARS.search(line)
        if bad:
            problems.append(Problem(
                f"line {number}: contains U+{ord(bad.group()):04X} (a control, line-separator or"
                " bidirectional-override character); stack files hold plain text a reviewer can read"
            ))
        if "\r" in line[:-1]:
            problems.append(Problem(f"line {number}: contains a carriage return that does not end the line"))
    blocks = list(material.PEM_PRIVATE.finditer(text))
    if problems:
        fail(problems)
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problems.append(Problem(f"not valid YAML: {error.problem}{at}"))
            problems += [Problem(f"line {text.count(chr(10), 0, m.start()) + 1}: {_private(m)}")
                         for m in blocks]
            fail(problems)
        except (yaml.YAMLError, RecursionError, ValueError) as error:
            problems.append(Problem(f"not valid YAML: {type(error).__name__}"))
            fail(problems)
        if root is None:
            fail([Problem("is empty; a stack file has a 'config:' mapping")])
        spans: list[tuple[int, int]] = []
        problems += _walk(root, spans)
        for m in blocks:
            if not any(start <= m.start() < end for start, end in spans):
                line_number = text.count("\n", 0, m.start()) + 1
                problems.append(Problem(
                    f"line {line_number}: a PEM '{m.group(1)}' block outside any value (in a comment?):"
                    f" {material.REMEDY}"
                ))
        if problems:
            fail(problems)
        try:
            # Constructed from the tree already composed and checked: the text is parsed once.
            try:
                document = stackyaml._construct(loader, root, {})
            except stackyaml._Unusual:
                document = loader.construct_document(root)
        except (yaml.YAMLError, RecursionError, ValueError, TypeError) as error:
            fail([Problem(f"not valid YAML: {type(error).__name__}: {str(error).splitlines()[0][:200]}")])
    finally:
        loader.dispose()
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        fail([Problem("has no 'config:' mapping")])
    return Parsed(document, root)


def _private(match: re.Match[str]) -> str:
    return f"a PEM '{match.group(1)}' block: {material.REMEDY}"


def _walk(root: Node, spans: list[tuple[int, int]]) -> list[Any]:
    """Duplicate keys, foreign tags, complex keys, depth and alias expansion, in one walk."""
    from .config.problems import Problem

    problems: list[Problem] = []
    ids: dict[tuple[Any, ...], str] = {}
    visited = 0
    seen_nodes: set[int] = set()
    stack: list[tuple[Node, tuple[Any, ...], int]] = [(root, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            keyset, generation, field = _Where.of(path, ids)
            return problems + [Problem(
                f"expands to more than {MAX_NODES} values (YAML aliases?); a stack file is far smaller",
                keyset, generation, field,
            )]
        if depth > MAX_DEPTH:
            keyset, generation, field = _Where.of(path, ids)
            problems.append(Problem(f"is nested deeper than {MAX_DEPTH} levels", keyset, generation, field))
            continue
        first_visit = id(node) not in seen_nodes
        seen_nodes.add(id(node))
        line = node.start_mark.line + 1
        if node.tag not in _CORE_TAGS and first_visit:
            keyset, generation, field = _Where.of(path, ids)
            problems.append(Problem(
                f"line {line}: the tag {node.tag!r} is not allowed; stack files use YAML's plain types",
                keyset, generation, field,
            ))
            continue
        if isinstance(node, ScalarNode):
            if first_visit:
                spans.append((node.start_mark.index, node.end_mark.index))
            continue
        if isinstance(node, SequenceNode):
            stack.extend(reversed([(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]))
            continue
        if not isinstance(node, MappingNode):
            continue
        keys: dict[tuple[str, str], int] = {}
        children = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                keyset, generation, field = _Where.of(path, ids)
                problems.append(Problem(
                    f"line {key_node.start_mark.line + 1}: a key must be a plain scalar, not a"
                    f" {'list' if isinstance(key_node, SequenceNode) else 'mapping'}",
                    keyset, generation, field,
                ))
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                children.append((value_node, path, depth + 1))
                continue
            spans.append((key_node.start_mark.index, key_node.end_mark.index))
            identity = (key_node.tag, key_node.value)
            key_line = key_node.start_mark.line + 1
            if identity in keys and first_visit:
                keyset, generation, field = _Where.of((*path, key_node.value), ids)
                problems.append(Problem(
                    f"line {key_line}: duplicate key {key_node.value[:60]!r} (first at line"
                    f" {keys[identity]});"
                    " YAML readers disagree on which one wins, so a key may appear once",
                    keyset, generation, field,
                ))
            keys.setdefault(identity, key_line)
            if key_node.value == "id" and isinstance(value_node, ScalarNode):
                ids.setdefault(path, value_node.value)
            children.append((value_node, (*path, key_node.value), depth + 1))
        stack.extend(reversed(children))
    return problems
