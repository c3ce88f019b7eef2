"""The safe shape of every identifier a stack file gives: keyset names, generation ids and kids.

These names end up in resource names, URNs, file names, KMS aliases, labels, JWKS documents and
log lines. They are ASCII letters, digits and a few separators, so that no id can be a path
(``../``, ``/``), hide a character (U+200B, U+202E, a trailing space) or break a line.
"""

from __future__ import annotations

import re
import string
import unicodedata

ID_MAX = 63
KID_MAX = 128
ID_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
"""Keyset names and generation ids: 1..63 ASCII letters, digits, '.', '_', '-'; a letter or digit
at both ends; no '..'."""
KID_PATTERN = r"[A-Za-z0-9._:-]{1,128}"
"""Key ids: 1..128 ASCII letters, digits, '.', '_', ':', '-' (an RFC 7638 thumbprint is 43 of
them); not only dots."""

_ID = re.compile(ID_PATTERN)
_KID = re.compile(KID_PATTERN)
ID_RULE = f"1 to {ID_MAX} ASCII letters, digits, '.', '_' and '-', starting and ending with a letter or digit"
KID_RULE = f"1 to {KID_MAX} ASCII letters, digits, '.', '_', ':' and '-'"


def describe(value: str, limit: int = 40) -> str:
    """``value`` quoted with every invisible or non-ASCII character spelled out (U+200B ...)."""
    out = []
    for c in value[:limit]:
        if c.isascii() and c.isprintable():
            out.append(c)
        else:
            name = unicodedata.name(c, "")
            out.append(f"<U+{ord(c):04X}{' ' + name if name else ''}>")
    text = "".join(out).replace("'", "\\'")
    return f"'{text}'" + (f" (and {len(value) - limit} more characters)" if len(value) > limit else "")


def _why(value: str, allowed: str = "._-") -> str:
    bad = next((c for c in value if not (c.isascii() and (c.isalnum() or c in allowed))), None)
    if value == "":
        return "is empty"
    if bad is not None:
        if bad == " " and value.strip() != value:
            return "has leading or trailing spaces"
        if bad in "/\\":
            return "contains a path separator"
        if not bad.isprintable() or not bad.isascii():
            return f"contains U+{ord(bad):04X} {unicodedata.name(bad, 'a control character')}"
        return f"contains {bad!r}"
    if ".." in value:
        return "contains '..'"
    return "must start and end with a letter or digit"


def id_problem(value: str, what: str) -> str | None:
    """Why ``value`` cannot be a keyset name / generation id (``what`` says which), or None."""
    if _ID.fullmatch(value) and ".." not in value:
        return None
    if len(value) > ID_MAX:
        return f"{what} {describe(value)} is longer than {ID_MAX} characters; use {ID_RULE}"
    return f"{what} {describe(value)} {_why(value)}; use {ID_RULE}"


def kid_problem(kid: str) -> str | None:
    """Why a rendered key id is not safe to publish, or None."""
    if _KID.fullmatch(kid) and kid.strip("."):
        return None
    if len(kid) > KID_MAX:
        return f"kid {describe(kid)} is longer than {KID_MAX} characters; use {KID_RULE}"
    why = "is only dots" if kid and not kid.strip(".") else _why(kid, "._-:")
    return f"kid {describe(kid)} {why}; use {KID_RULE}"


THUMBPRINT_KID = "thumbprint"
"""``kid: thumbprint``: the kid is the key's thumbprint itself (the template ``{thumbprint}``)."""


def kid_template(kid: str) -> str:
    """The keyset's ``kid`` as a template: ``thumbprint`` is ``{thumbprint}``."""
    return "{thumbprint}" if kid == THUMBPRINT_KID else kid


def kid_needs_key(kid: str) -> bool:
    """Whether the kid is known only from the key (its RFC 7638 thumbprint): ``thumbprint``, or a
    template with ``{thumbprint}`` such as seed 003's ``sha256:{thumbprint}``."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(kid_template(kid)) if f is not None}
    except ValueError:
        return False
    return "thumbprint" in fields
