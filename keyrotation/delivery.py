"""What a keyset delivers to Kubernetes, as pure values: no Pulumi, no cluster client.

Symmetric keys rotate in two phases, so that no pod meets ciphertext it cannot decrypt at any
moment of a rolling update:

- a ``pending`` generation is delivered decrypt-only: in the keyring, never as ``material``;
- the ``active`` generation is the encryption key (``material``) and is marked in the keyring;
- a ``retiring`` generation stays in the keyring for the overlap;
- a rollback (the previous generation active again, the newer one retiring) keeps the newer
  generation in the keyring, so nothing encrypted under it is lost.

"Decrypt-capable" is the keyset view's ring (:attr:`keyrotation.view.KeysetView.ring`). A
Deployment's pod-template annotation is a checksum of what was delivered (generation ids, key ids,
material fingerprints; never material), which rolls the pods exactly when that changes. The
component that registers the Secrets and patches is :mod:`components.delivery`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import KeySetConfig
from .metadata import ANNOTATION_PREFIX
from .view import GenerationView, KeysetView, OfGeneration

FINGERPRINTS_ANNOTATION = ANNOTATION_PREFIX + "fingerprints"
"""On a Secret: JSON {generation id: SHA-256 of the delivered key text} (the secrets ledger)."""


def checksum_annotation(keyset: str) -> str:
    """The pod-template annotation a keyset's delivery writes; one per keyset, so two keysets
    delivered to the same Deployment never contend for one field."""
    return f"{ANNOTATION_PREFIX}checksum-{keyset}"


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def checksum(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# What is delivered: pure functions of the generations' resolved values


@dataclass(frozen=True)
class DeliveredGeneration(OfGeneration):
    """One generation as delivery sees it: its keyset view's entry and what the backend resolved.
    ``material`` is set only where it is delivered."""

    entry: GenerationView
    kid: str
    key_id: str
    key_arn: str | None = None
    key_name: str | None = None
    fingerprint: str | None = None
    material: str | None = field(default=None, repr=False)


    def identity(self) -> dict[str, Any]:
        """What identifies the delivered key without revealing it."""
        return {"id": self.id, "kid": self.kid, "keyId": self.key_id, "state": self.state,
                "fingerprint": self.fingerprint}


class DeliveredKeys:
    """A keyset's generations, resolved: the value and the descriptor of every delivery source."""

    def __init__(self, keyset: KeySetConfig, keys: KeysetView, generations: Sequence[DeliveredGeneration]):
        self.keyset, self.keys = keyset, keys
        self.generations = list(generations)
        by_id = {g.id: g for g in self.generations}
        self.active = by_id[keys.primary]
        self.ring = [by_id[g.id] for g in keys.ring]

    def keyring(self) -> dict[str, Any]:
        """Every decrypt-capable generation with its key, oldest first, the active one marked."""
        return {
            "active": self.active.id,
            "keys": [
                {"id": g.id, "kid": g.kid, "key": g.material, "state": g.state, "active": g is self.active}
                for g in self.ring
            ],
        }

    def value(self, source: str) -> str:
        """The delivered text of a source (key material for ``material`` and ``keyring``)."""
        active, spec = self.active, self.keyset.spec
        values: dict[str, Callable[[], str | None]] = {
            "material": lambda: active.material,
            "keyring": lambda: canonical(self.keyring()),
            "kid": lambda: active.kid,
            "keyId": lambda: active.key_id,
            "keyArn": lambda: active.key_arn,
            "keyName": lambda: active.key_name,
            "algorithm": lambda: spec.name,
            "signersAlgorithm": lambda: spec.signers_name,
            "generation": lambda: active.id,
        }
        text = values[source]()
        if text is None:
            raise ValueError(
                f"keyset '{self.keyset.name}': generation '{active.id}' has no {source} to deliver"
                f" (backend {self.keyset.backend})"
            )
        return text

    def descriptor(self, source: str) -> Any:
        """What the checksum hashes for a source: ids and fingerprints, never material."""
        if source == "material":
            return self.active.identity()
        if source == "keyring":
            return [{**g.identity(), "active": g is self.active} for g in self.ring]
        return self.value(source)

    def fingerprints(self, sources: Sequence[str]) -> dict[str, str]:
        """Fingerprints of the generations whose material these sources deliver."""
        holders = self.ring if "keyring" in sources else [self.active] if "material" in sources else []
        return {g.id: g.fingerprint for g in holders if g.fingerprint}


def secret_data(keys: DeliveredKeys, sources: Mapping[str, str]) -> dict[str, str]:
    """A Secret's ``data``: each named key, base64 as the API wants it."""
    return {var: base64.b64encode(keys.value(src).encode()).decode() for var, src in sources.items()}


def secret_descriptor(keys: DeliveredKeys, sources: Mapping[str, str]) -> dict[str, Any]:
    return {var: keys.descriptor(src) for var, src in sources.items()}


@dataclass
class Target:
    """Everything one keyset delivers to one Deployment."""

    containers: dict[str, dict[str, str]] = field(default_factory=dict)
    """container -> env var -> source"""
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    """container -> env var -> fixed value"""
    secret_env: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    """container -> env var -> (Secret name, its key)"""
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    """Secret ref -> its data sources (the Deployment reads them, so rolls when they change)"""


def target_env(keys: DeliveredKeys, target: Target, container: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": var, "value": keys.value(src)} for var, src in target.containers.get(container, {}).items()
    ]
    env += [{"name": var, "value": value} for var, value in target.values.get(container, {}).items()]
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for var, (secret, key) in target.secret_env.get(container, {}).items()
    ]
    return sorted(env, key=lambda e: e["name"])


def target_checksum(keys: DeliveredKeys, target: Target) -> str:
    # Fixed ``values`` are left out: they are not key material or key ids, and a change of them
    # changes the pod template (and so rolls the pods) by itself.
    return checksum({
        "keyset": keys.keyset.name,
        "env": {c: {var: keys.descriptor(src) for var, src in env.items()}
                for c, env in target.containers.items()},
        "secrets": {ref: secret_descriptor(keys, sources) for ref, sources in target.secrets.items()},
    })
