"""The published documents: JWKS, signers registry, trust anchor and key history.

Builders are pure functions of the keyset's generations and their public keys; output is
deterministic (sorted keys, fixed layout) so unchanged input gives unchanged bytes and the
publisher writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from . import algorithms, lifecycle, metrics
from .keys import PRIVATE_JWK_MEMBERS, public_der_b64url, public_jwk
from .lifecycle import State
from .times import format_optional
from .view import GenerationView, OfGeneration

if TYPE_CHECKING:
    from .config import Generation, KeySetConfig


class Format(StrEnum):
    """The documents a keyset publishes (``publish[].format``)."""

    JWKS = "jwks"
    SIGNERS = "signers"
    TRUST_ANCHOR = "trust-anchor"
    KEY_HISTORY = "key-history"
    METRICS = "metrics"

    @property
    def lists_kids(self) -> bool:
        """Whether the document lists the key ids of the keys it publishes (the key history
        lists every generation, published or not; the metrics describe them by generation)."""
        return self not in (Format.KEY_HISTORY, Format.METRICS)

    @property
    def needs_public_key(self) -> bool:
        """Whether the document carries public keys (a keyset without one, symmetric, can still
        publish its history and its metrics)."""
        return self.lists_kids


FORMATS: tuple[str, ...] = tuple(f.value for f in Format)
KID_FORMATS: tuple[str, ...] = tuple(f.value for f in Format if f.lists_kids)
"""Documents that list the kids verifiers accept (the key history lists every kid ever)."""
CONTENT_TYPE = "application/json"
TEXT_FORMATS = ("metrics",)
"""Documents that are text, not JSON (OpenMetrics: keyrotation/metrics.py)."""


def content_type(format: str) -> str:
    return metrics.CONTENT_TYPE if format == "metrics" else CONTENT_TYPE


@dataclass(frozen=True)
class KeyRecord(OfGeneration):
    """What the documents need to know of one generation; never private material.

    The generation's facts are its keyset view's (:class:`keyrotation.view.GenerationView`); the
    record adds only what the program resolves (kid, public key) and the keyset's algorithm."""

    entry: GenerationView
    kid: str
    algorithm: str
    public_pem: str | None

    @classmethod
    def of(cls, generation: Generation, *, kid: str, algorithm: str, public_pem: str | None,
           timings: lifecycle.Timings | None = None) -> KeyRecord:
        """The record of a generation outside a keyset view; ``timings``: the keyset's, for the
        validity windows (signer lag and skew)."""
        return cls(GenerationView(generation, timings if timings is not None else lifecycle.Timings()),
                   kid=kid, algorithm=algorithm, public_pem=public_pem)

    @property
    def generation(self) -> str:
        """The generation's id (the documents' word for it)."""
        return self.id

    @property
    def created_at(self) -> datetime:
        return self.entry.generation.created_at

    @property
    def activated_at(self) -> datetime | None:
        return self.entry.generation.activated_at

    @property
    def pem(self) -> str:
        """The public key of a published record (the documents read no other)."""
        assert self.public_pem is not None, f"generation '{self.generation}' has no public key"
        return self.public_pem

    @property
    def published(self) -> bool:
        return self.entry.published and self.public_pem is not None


_iso = format_optional


def jwks(records: Sequence[KeyRecord]) -> dict[str, Any]:
    keys = []
    for r in records:
        if not r.published:
            continue
        jwk = public_jwk(r.pem)
        jwk.update(kid=r.kid, alg=r.algorithm, use="sig")
        keys.append(jwk)
    return {"keys": keys}


def signers(records: Sequence[KeyRecord]) -> list[dict[str, Any]]:
    return [
        {
            "signerId": r.kid,
            "algorithm": algorithms.ALGORITHMS[r.algorithm].signers_name,
            "publicKey": r.pem.strip() + "\n",
        }
        for r in records
        if r.published
    ]


def trust_anchor(records: Sequence[KeyRecord]) -> dict[str, Any]:
    active = lifecycle.active_ids((r.kid, r.state) for r in records)
    return {
        "active_key_id": active[0] if active else None,
        "keys": [
            {
                "key_id": r.kid,
                "algorithm": algorithms.ALGORITHMS[r.algorithm].anchor_name,
                "public_key": public_der_b64url(r.pem),
                "valid_from": _iso(r.activated_at or r.created_at),
            }
            for r in records
            if r.published
        ],
    }


def key_history(records: Sequence[KeyRecord]) -> dict[str, Any]:
    history = []
    for r in records:
        g = r.entry.generation
        entry: dict[str, Any] = {
            "keyid": r.kid,
            "generation": r.generation,
            "algorithm": r.algorithm,
            "state": str(r.state),
            "addedAt": _iso(g.created_at),
            "activatedAt": _iso(g.activated_at),
            "retiringAt": _iso(g.retiring_at),
            "retiredAt": _iso(g.retired_at),
            "destroyedAt": _iso(g.destroyed_at),
            "revokedAt": _iso(g.revoked_at),
            "revokeReason": g.revoke_reason,
            # Every period, append-only: a rollback adds a signing period, a restore a step.
            "signingPeriods": [{"from": _iso(a), "until": _iso(b)} for a, b in r.entry.signing_periods],
            # [from, until): when a signature by it is valid, the rule `valid-at` answers with.
            "validity": [{"from": _iso(a), "until": _iso(b)} for a, b in r.entry.validity],
            "history": [{"state": str(state), "at": _iso(at)} for state, at in r.entry.path],
        }
        if r.public_pem is not None:
            entry["publicKey"] = r.public_pem.strip() + "\n"
        history.append(entry)
    return {
        "keyHistory": history,
        "revokedKeys": [r.kid for r in records if r.state is State.REVOKED],
    }


_BUILDERS = {Format.JWKS: jwks, Format.SIGNERS: signers, Format.TRUST_ANCHOR: trust_anchor,
             Format.KEY_HISTORY: key_history}


def build(format: str, records: Sequence[KeyRecord], keyset: KeySetConfig | None = None) -> Any:
    """``keyset``: the keyset's config, which the ``metrics`` document needs (name, profile, timings)."""
    if Format(format) is Format.METRICS:
        if keyset is None:
            raise ValueError("the metrics document needs its keyset")
        return metrics.openmetrics(keyset, records)
    return _BUILDERS[Format(format)](records)


def render(document: Any) -> str:
    """Canonical text of a document: same content, same bytes (text documents are already text)."""
    if isinstance(document, str):
        return document
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def kids_in(format: str, document: Any) -> list[str]:
    """The key ids a document publishes (for first-published bookkeeping and policies)."""
    if format == "jwks":
        return [k["kid"] for k in document.get("keys", [])]
    if format == "signers":
        return [s["signerId"] for s in document]
    if format == "trust-anchor":
        return [k["key_id"] for k in document.get("keys", [])]
    return []


def private_members(document: Any) -> list[str]:
    """Private JWK members or PEM private keys found anywhere in a document (must be empty)."""
    found: list[str] = []

    def walk(value: Any, path: str, in_jwk: bool) -> None:
        if isinstance(value, dict):
            jwk = "kty" in value
            for k, v in value.items():
                if jwk and k in PRIVATE_JWK_MEMBERS:
                    found.append(f"{path}.{k}")
                walk(v, f"{path}.{k}", jwk)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", in_jwk)
        elif isinstance(value, str) and "PRIVATE KEY" in value:
            found.append(path)

    walk(document, "$", False)
    return found


def render_all(formats: Iterable[str], records: Sequence[KeyRecord]) -> dict[str, str]:
    return {f: render(build(f, records)) for f in formats}
