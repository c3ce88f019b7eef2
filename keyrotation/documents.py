"""The published documents: JWKS, signers registry, trust anchors, key history, metrics and the
revocation list.

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

from . import algorithms, lifecycle, metrics, revocation
from .keys import PRIVATE_JWK_MEMBERS, public_der_b64url, public_jwk
from .lifecycle import State
from .times import format_optional
from .view import GenerationView, OfGeneration

if TYPE_CHECKING:
    from .config import Generation, KeySetConfig, TrustAnchor


class Format(StrEnum):
    """The documents a keyset publishes (``publish[].format``)."""

    JWKS = "jwks"
    SIGNERS = "signers"
    TRUST_ANCHOR = "trust-anchor"
    KEY_HISTORY = "key-history"
    METRICS = "metrics"
    REVOCATION_LIST = "revocation-list"
    """Seed 003's CRL: JSON Lines of revocation records, each a JWS by the active key
    (keyrotation/revocation.py)."""
    ANCHOR = "anchor"
    """Seed 002's trust anchor: configured per anchor (``key-rotation:trustAnchors``) over several
    keysets, never in a keyset's ``publish`` list."""

    @property
    def lists_kids(self) -> bool:
        """Whether the document lists the key ids of the keys it publishes (the key history
        lists every generation, published or not; the metrics describe them by generation; the
        revocation list names the keys verifiers must refuse)."""
        return self not in (Format.KEY_HISTORY, Format.METRICS, Format.REVOCATION_LIST)

    @property
    def carries_keys(self) -> bool:
        """Whether a verifier finds keys in it (the metrics carry times; the revocation list names
        revoked keys, without their public keys)."""
        return self not in (Format.METRICS, Format.REVOCATION_LIST)


    @property
    def needs_public_key(self) -> bool:
        """Whether the document carries public keys (a keyset without one, symmetric, can still
        publish its history and its metrics)."""
        return self.lists_kids


FORMATS: tuple[str, ...] = tuple(f.value for f in Format)
KID_FORMATS: tuple[str, ...] = tuple(f.value for f in Format if f.lists_kids)
"""Documents that list the kids verifiers accept (the key history lists every kid ever)."""
CONTENT_TYPE = "application/json"
TEXT_FORMATS = ("metrics", "revocation-list")
"""Documents that are text, not one JSON value (OpenMetrics: keyrotation/metrics.py; JSON Lines:
keyrotation/revocation.py)."""


def content_type(format: str) -> str:
    types = {Format.METRICS: metrics.CONTENT_TYPE, Format.REVOCATION_LIST: revocation.MEDIA_TYPE}
    return types.get(Format(format), CONTENT_TYPE)


def cache_control(format: str, max_age_seconds: int) -> str:
    """A document's ``Cache-Control``: the keyset's ``publishMaxAgeSeconds``, except the revocation
    list's own (seed 003's ``max-age=30``: its verifiers poll it)."""
    if format == Format.REVOCATION_LIST:
        return revocation.CACHE_CONTROL
    return f"public, max-age={max_age_seconds}"


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
    def revoked_at(self) -> datetime | None:
        return self.entry.generation.revoked_at

    @property
    def revoke_reason(self) -> str | None:
        return self.entry.generation.revoke_reason

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


SUPERSEDED = "superseded"
"""The anchor's ``revokeReason`` of a key that stopped signing because a newer one took over (seed
002's "annual-rotation")."""


def anchor(config: TrustAnchor, records: Sequence[KeyRecord]) -> dict[str, Any]:
    """Seed 002's trust anchor over the records of the keysets it names (in their order).

    ``allowedKeyids``: the published generations (pending, active, retiring); ``revokedKeys``: every
    other one (retired, destroyed, revoked: the seed moves a rotated-out key there and never deletes
    it); ``keyHistory``: every generation, with the seed's ``addedAt`` (createdAt: a key is added
    to the anchor, pre-published, when it is created), ``revokedAt`` (when it stopped being trusted
    for new signatures: the end of its last validity window, else its revocation; null while it may
    still sign) and ``revokeReason`` (the revocation's reason, or ``superseded``); plus ``algorithm``
    and ``publicKey`` (the seed's key_history table) and ``validity`` (the exact intervals, as in the
    key history: the seed's single [addedAt, revokedAt) cannot say "pending, not yet signing" or
    "rolled back").
    """
    history = []
    for r in records:
        validity = r.entry.validity
        closed = validity[-1][1] if validity else None
        revoked_at = closed if closed is not None else (r.revoked_at if not validity else None)
        reason = r.revoke_reason if r.state is State.REVOKED else (SUPERSEDED if revoked_at else None)
        entry: dict[str, Any] = {
            "keyid": r.kid,
            "addedAt": _iso(r.created_at),
            "revokedAt": _iso(revoked_at),
            "revokeReason": reason,
            "algorithm": r.algorithm,
            "validity": [{"from": _iso(a), "until": _iso(b)} for a, b in validity],
        }
        if r.public_pem is not None:
            entry["publicKey"] = r.public_pem.strip() + "\n"
        history.append(entry)
    return {
        "trustAnchorId": config.trust_anchor_id,
        "purlPattern": config.purl_pattern,
        "allowedKeyids": [r.kid for r in records if r.published],
        "allowedPredicateTypes": list(config.allowed_predicate_types),
        "policyVersion": config.policy_version,
        "revokedKeys": [r.kid for r in records if not r.entry.published],
        "keyHistory": history,
    }


_BUILDERS = {Format.JWKS: jwks, Format.SIGNERS: signers, Format.TRUST_ANCHOR: trust_anchor,
             Format.KEY_HISTORY: key_history}


def build(format: str, records: Sequence[KeyRecord], keyset: KeySetConfig | None = None) -> Any:
    """``keyset``: the keyset's config, which the ``metrics`` document needs (name, profile, timings).
    An ``anchor`` spans keysets: :func:`anchor` builds it."""
    if Format(format) is Format.ANCHOR:
        raise ValueError("an anchor spans keysets: build it with documents.anchor(config, records)")
    if Format(format) is Format.METRICS:
        if keyset is None:
            raise ValueError("the metrics document needs its keyset")
        return metrics.openmetrics(keyset, records)
    if Format(format) is Format.REVOCATION_LIST:
        return revocation.render(records)  # unsigned: the publisher signs each line
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
    if format == "anchor":
        return list(document.get("allowedKeyids", []))
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
