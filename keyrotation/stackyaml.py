"""Reading a stack file's YAML fast, with the same meaning ruamel.yaml gives it.

The rotation commands used to parse ``Pulumi.<stack>.yaml`` with ruamel.yaml's pure-Python parser,
several times per command: 3 s per parse for a 1,000-keyset file. Reading needs no comments or
positions, so it goes through libyaml (PyYAML's ``CSafeLoader``, C), configured to read what
ruamel's safe loader reads:

- YAML 1.2 core-schema scalars, as ruamel resolves them (``yes``/``on`` are strings, ``0755`` is
  the decimal 755, ``0o17`` is octal, ``1_000`` is 1000), timestamps as datetimes;
- a mapping with the same key twice is refused (ruamel refuses it; PyYAML alone keeps the last);
- :func:`load` returns the composed node too, whose marks say where each value sits, so an edit
  can hand ruamel only the part of the file it changes (keyrotation/commands/stackfile.py).

tests/test_cli_stackfile.py checks the equivalence with ruamel on tricky scalars and on the shipped
stack files. When libyaml is not available, the same classes run on PyYAML's Python parser.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

try:
    _Base: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml: same behaviour, slower
    _Base = yaml.SafeLoader

YAMLError = yaml.YAMLError

_INT = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?[0-9_]+|[-+]?0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(r"""^(?:
     [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """The same key twice in one mapping: which value was meant is not for us to guess."""


class Loader(_Base):  # type: ignore[misc]  # PyYAML ships no types
    """libyaml's parser with ruamel's YAML 1.2 scalar rules, refusing duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            # Explicit keys only, before merge keys (<<) are flattened in: those may be overridden.
            seen: dict[Any, yaml.Node] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: construct_mapping below reports it
                if first is not None:
                    raise DuplicateKeyError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                        key_node.start_mark)
                seen[key] = key_node
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text[:1] == "-" else 1
        digits = text.lstrip("+-")
        for prefix, base in (("0b", 2), ("0x", 16), ("0o", 8)):
            if digits.startswith(prefix):
                return sign * int(digits[2:], base)
        return sign * int(digits)


# YAML 1.2 core schema (ruamel's VersionedResolver for 1.2) in place of PyYAML's YAML 1.1 rules.
Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _firsts in (
    ("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
    ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT, "-+0123456789."),
):
    Loader.add_implicit_resolver(_tag, _regexp, list(_firsts))
Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)


_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"


class _Unusual(Exception):
    """A node the direct construction leaves to PyYAML's constructor (merge keys, !!set, ...)."""


def _construct(loader: Loader, node: yaml.Node, made: dict[int, Any]) -> Any:
    """The data of ``node``: plain strings, lists and dicts built directly (PyYAML's constructor
    spends most of a big file's read in its generic machinery), other scalars by PyYAML's
    constructors. Aliases share one object, as in PyYAML."""
    if isinstance(node, yaml.ScalarNode):
        return node.value if node.tag == _STR else loader.construct_object(node, deep=True)
    if id(node) in made:
        return made[id(node)]
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
        items: list[Any] = []
        made[id(node)] = items
        items.extend(_construct(loader, item, made) for item in node.value)
        return items
    if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
        mapping: dict[Any, Any] = {}
        made[id(node)] = mapping
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise _Unusual
            key = _construct(loader, key_node, made)
            try:
                duplicate = key in mapping
            except TypeError:
                raise _Unusual from None  # an unhashable key: PyYAML's constructor says why
            if duplicate:
                first = next(k for k, _ in node.value
                             if k is not key_node and _construct(loader, k, made) == key)
                raise DuplicateKeyError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                    key_node.start_mark)
            mapping[key] = _construct(loader, value_node, made)
        return mapping
    raise _Unusual


def load(text: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its composed node (None for an empty document)."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        try:
            data = _construct(loader, node, {})
        except _Unusual:
            data = loader.construct_document(node)
    finally:
        loader.dispose()
    return data, node


def child(node: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key, value) nodes of ``key`` in a mapping node, if it holds it once as a plain key."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None
