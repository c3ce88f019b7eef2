"""Reading a stack file's YAML fast, with the same meaning ruamel.yaml gives it.

The rotation commands used to parse ``Pulumi.<stack>.yaml`` with ruamel.yaml's pure-Python parser,
several times per command: 3 s per parse for a 1,000-keyset file. Reading needs no comments or
positions, so it goes through libyaml (PyYAML's ``CSafeLoader``, C), configured to read what
ruamel's safe loader reads:

- YAML 1.2 core-schema scalars, as ruamel resolves them (``yes``/``on`` are strings, ``0755`` is
  the decimal 755, ``0o17`` is octal, ``1_000`` is 1000), timestamps as datetimes;
- a mapping with the same key twice is refused (ruamel refuses it; PyYAML alone keeps the last);
- :func:`load` returns the composed node too, whose marks say where each value sits, so an edit
  can hand ruamel only the part of the file it changes (keyrotation/stackfile.py).

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


class Loader(_Base):
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
        return super().construct_mapping(node, deep=deep)

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


def load(text: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its composed node (None for an empty document)."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
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
