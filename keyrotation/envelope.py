"""Signed documents: a DSSE envelope (seed 002's own envelope format) around any published document.

A publish entry with ``envelope: dsse`` publishes its document as the envelope's payload, signed
by every generation that may sign at the time: the active one and, while a rotation is in its
overlap, each ``retiring`` one. A verifier that trusts only the previous key therefore accepts the
new document, and learns the new key from it (docs/config.md, "Signed documents").

The envelope is DSSE v1 (github.com/secure-systems-lab/dsse, ``envelope.md`` and
``protocol.md``): ``{"payloadType", "payload" (standard base64), "signatures": [{"keyid", "sig"}]}``,
every signature over the pre-authentication encoding :func:`pae`. Signature bytes are what each
algorithm's usual verifier takes: Ed25519 and ML-DSA raw, ECDSA DER (as KMS, PKCS#11-through-this-
module, OpenSSL and securesystemslib give and take it), RSA PKCS #1 v1.5 or PSS with a salt as long
as the digest.

Pure: the signing itself is the backend's (components/signing.py); only the software signature,
which needs nothing but ``cryptography``, is made here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .algorithms import ALGORITHMS, Algorithm
from .lifecycle import State

MEDIA_TYPE = "application/json"
"""What a signed document is served as: JSON (the payload type says which document it carries)."""
RAW_SIGN_LIMIT = 4096
"""AWS KMS ``Sign`` takes a RAW message of at most this many bytes; longer ones go as a digest."""
SIGNING_STATES = (State.ACTIVE, State.RETIRING)
"""Generations that sign a keyset's documents: the active one, and those in their overlap."""


class Envelope(StrEnum):
    """``publish[].envelope``: how a document is wrapped (none: published as it is)."""

    DSSE = "dsse"


def signable(format: str) -> bool:
    """Whether a document of ``format`` can be wrapped: the JSON documents (a text document such as
    ``metrics`` is read by a scraper that cannot unwrap an envelope)."""
    from .documents import TEXT_FORMATS

    return format not in TEXT_FORMATS


def payload_type(format: str) -> str:
    """The DSSE ``payloadType`` of a document of ``format`` (``application/vnd.key-rotation.jwks+json``)."""
    return f"application/vnd.key-rotation.{format}+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what every signature signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


def envelope(payload_type: str, payload: bytes, signatures: Sequence[Signature]) -> dict[str, Any]:
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in signatures],
    }


def render(document: dict[str, Any]) -> str:
    """Canonical text of an envelope (same content, same bytes)."""
    return json.dumps(document, sort_keys=True, indent=2) + "\n"


def signing_generations(states: Iterable[tuple[str, State]]) -> list[str]:
    """Of ``(generation id, state)`` pairs, oldest first, the ids that sign: active first, then
    the retiring ones, newest first (the key a verifier is most likely to hold last)."""
    pairs = list(states)
    active = [gid for gid, state in pairs if state is State.ACTIVE]
    retiring = [gid for gid, state in reversed(pairs) if state is State.RETIRING]
    return active + retiring


def software_signature(algorithm: str, private_pem: str, message: bytes) -> bytes:
    """Sign ``message`` with a PKCS #8 PEM private key of ``algorithm`` (backend ``software``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa

    spec = ALGORITHMS[algorithm]
    key: Any = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    if isinstance(key, (mldsa.MLDSA44PrivateKey, mldsa.MLDSA65PrivateKey, mldsa.MLDSA87PrivateKey)):
        signature: bytes = key.sign(message)
        return signature
    digest = _hash(spec)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(digest))
    if isinstance(key, rsa.RSAPrivateKey):
        if algorithm.startswith("PS"):
            return key.sign(message, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
        return key.sign(message, padding.PKCS1v15(), digest)
    raise ValueError(f"{algorithm}: no software signature for a {type(key).__name__}")


def _hash(spec: Algorithm) -> Any:
    from cryptography.hazmat.primitives import hashes

    assert spec.hash_name is not None, f"{spec.name} has no digest"
    return getattr(hashes, spec.hash_name)()


def digest(algorithm: str, message: bytes) -> bytes:
    """The message digest ``algorithm`` signs (KMS DIGEST signing, PKCS#11 raw ECDSA)."""
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(_hash(ALGORITHMS[algorithm]))
    h.update(message)
    return h.finalize()
