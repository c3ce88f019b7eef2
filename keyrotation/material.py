"""Finding private key material where it must never be: anywhere in a stack file.

A stack file is reviewed in pull requests and kept in git forever, so a private key in it is
compromised the moment it is pushed. Both a PEM private block (any kind: PKCS#8, RSA, EC,
OpenSSH, encrypted, PGP) and a JWK with private members are refused, wherever they appear: a
value of any field, of any namespace, a mapping key, a JSON string, or a comment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from .keys import PRIVATE_JWK_MEMBERS

PEM_PRIVATE = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----")
REMEDY = ("a stack file must never hold private key material: remove it from the file and from the"
          " git history (e.g. git filter-repo), and treat the key as compromised (rotate or revoke it)")


def private_blocks(text: str) -> list[str]:
    """The kinds of PEM private blocks in ``text`` (e.g. ``['RSA PRIVATE KEY']``)."""
    return [m.group(1) for m in PEM_PRIVATE.finditer(text)]


def _private_jwk(value: Any) -> list[str]:
    if isinstance(value, dict) and "kty" in value:
        return sorted(str(k) for k in value if k in PRIVATE_JWK_MEMBERS)
    return []


def describe(value: Any) -> str | None:
    """What private material ``value`` itself holds (not looking into children), or None."""
    if isinstance(value, str):
        blocks = private_blocks(value)
        if blocks:
            return f"a PEM '{blocks[0]}' block"
        stripped = value.strip()
        if stripped[:1] in "{[" and "kty" in stripped:
            try:
                decoded = json.loads(stripped)
            except (ValueError, RecursionError):
                return None
            found = list(find(decoded, ()))
            if found:
                return f"a JSON string with {found[0][1]}"
        return None
    members = _private_jwk(value)
    if members:
        return f"a JWK with private member(s) {', '.join(repr(m) for m in members)}"
    return None


def find(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every (path, what) of private material in a decoded value (keys and values, recursively).

    ``value`` must already be known to be of bounded size (see ``keyrotation.stacktext``).
    """
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        what = describe(node)
        if what:
            yield where, what
        if isinstance(node, dict):
            for key in node:
                if isinstance(key, str) and private_blocks(key):
                    yield where, "a PEM private block in a mapping key"
            stack.extend(reversed([(child, (*where, key)) for key, child in node.items()]))
        elif isinstance(node, list):
            stack.extend(reversed([(child, (*where, i)) for i, child in enumerate(node)]))
