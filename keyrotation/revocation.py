"""Seed 003's key-level revocation list: the ``revocation-list`` publish format.

One JSON Lines record per revoked generation, each line a compact JWS (RFC 7515) signed by the
keyset's ACTIVE generation at publication (seed 003 signs its revocations with the new key), so that
every line verifies by itself against the keyset's published keys: the header names the signer
(``kid``) and the record type (``typ``), the payload is the record::

    {"key_id": KID, "reason": REVOKE_REASON, "revoked_at": RFC3339, "revoked_by": null}

Only generations in state ``revoked`` are listed: a retired key stopped signing on schedule and the
signatures it made in its validity windows stay valid, whereas a revocation withdraws the key (and
``revoked`` is final, so a listed key never leaves the list). Lines are ordered by ``revoked_at`` (then
by generation order), so a new revocation is appended, as seed 003's append-only ``FileCRL`` does.
``revoked_by`` is null: the stack file records who revoked nothing but the git history (docs/config.md).

Pure: the document the program builds is the records' payloads, one per line (what is signed); the
publisher signs each through the backend (components/signing.py) and publishes the JWS lines.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .algorithms import ALGORITHMS
from .lifecycle import State
from .times import format_optional

if TYPE_CHECKING:
    from .documents import KeyRecord

MEDIA_TYPE = "application/x-ndjson"
"""What the list is served as: seed 003's ``aws s3 cp ... --content-type application/x-ndjson``."""
MAX_AGE_SECONDS = 30
CACHE_CONTROL = f"max-age={MAX_AGE_SECONDS}"
"""Seed 003's ``--cache-control "max-age=30"``, whatever the keyset's ``publishMaxAgeSeconds``: its
verifiers poll the list, and a revocation must reach them within seconds, not a key-document TTL."""
RECORD_TYPE = "key-revocation+json"
"""The JWS ``typ`` of a line (RFC 7515 §4.1.9, the ``application/`` prefix omitted): what a verifier
checks before it reads the payload as a revocation record."""


def records(keys: Sequence[KeyRecord]) -> list[dict[str, Any]]:
    """The revocation records of a keyset's generations, in publication order."""
    revoked = sorted(
        ((r.revoked_at, i, r) for i, r in enumerate(keys) if r.state is State.REVOKED),
        key=lambda t: (t[0] is None, t[0], t[1]),
    )
    return [
        {"key_id": r.kid, "reason": r.revoke_reason, "revoked_at": format_optional(r.revoked_at),
         "revoked_by": None}
        for _, _, r in revoked
    ]


def payload(record: dict[str, Any]) -> str:
    """A record's canonical JSON (sorted keys, no spaces): one line, and the JWS payload."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def render(keys: Sequence[KeyRecord]) -> str:
    """The unsigned list: one payload per line (an empty keyset's list is the empty document)."""
    return "".join(payload(r) + "\n" for r in records(keys))


def lines(text: str) -> list[str]:
    """The payloads of an unsigned list (:func:`render`), one per record."""
    return [line for line in text.split("\n") if line]


# ---------------------------------------------------------------------------------------------
# JWS compact serialization, for a signature made by any backend.

def header(algorithm: str, kid: str) -> dict[str, str]:
    """A line's protected header: the signer's JOSE ``alg`` and ``kid``, and the record type."""
    return {"alg": algorithm, "kid": kid, "typ": RECORD_TYPE}


def signing_input(protected: dict[str, str], body: str) -> bytes:
    """ASCII(BASE64URL(UTF8(header)) || '.' || BASE64URL(payload)): what the backend signs."""
    from joserfc.util import json_b64encode, urlsafe_b64encode

    return json_b64encode(dict(sorted(protected.items()))) + b"." + urlsafe_b64encode(body.encode())


def compact(signed: bytes, signature: bytes) -> str:
    """The JWS compact serialization of ``signed`` (:func:`signing_input`) and its JOSE signature."""
    from joserfc.util import urlsafe_b64encode

    return (signed + b"." + urlsafe_b64encode(signature)).decode("ascii")


def jose_signature(algorithm: str, signature: bytes) -> bytes:
    """A backend's signature in the encoding JWS wants (RFC 7518 §3.4, RFC 8037 §3.1).

    The backends give what DSSE verifiers take (keyrotation.envelope): ECDSA as DER, which JWS
    replaces by ``r || s``, each left-padded to the curve's size; EdDSA and RSA (PKCS #1 v1.5 and
    PSS) signatures are already what JWS carries.
    """
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    spec = ALGORITHMS[algorithm]
    if spec.kty != "EC":
        return signature
    size = {"P-256": 32, "P-384": 48, "P-521": 66, "secp256k1": 32}[str(spec.curve)]
    r, s = decode_dss_signature(signature)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def signable(algorithm: str) -> bool:
    """Whether a JWS of ``algorithm`` is one JOSE verifiers check (RFC 7518 / RFC 8037 / RFC 8812):
    not ML-DSA (an IETF draft no JOSE library here verifies), not the SPKI-only national ones."""
    return ALGORITHMS[algorithm].kty in ("EC", "RSA", "OKP")
