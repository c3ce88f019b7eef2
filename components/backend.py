"""What every key backend gives the keyset component, what it is given, and how it is found.

Backends are imported lazily by name, so a stack imports only the cloud SDKs it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

import pulumi

from keyrotation.algorithms import Backend
from keyrotation.config import Generation, KeySetConfig
from keyrotation.times import format_time

MODULES: dict[Backend, str] = {
    Backend.SOFTWARE: "components.software",
    Backend.EXTERNAL: "components.external",
    Backend.AWS_KMS: "components.aws_kms",
    Backend.GCP_KMS: "components.gcp_kms",
    Backend.PKCS11: "components.pkcs11",
}

R = TypeVar("R", bound=pulumi.Resource)


@dataclass
class SharedResources:
    """Resources that several keysets of one stack share (a GCP KeyRing), registered by the first
    keyset that needs each. One per program run, made by the wiring (``__main__.py``) and handed to
    every KeySet: no module-global registry that a second run in the same process would inherit."""

    _made: dict[tuple[str, ...], pulumi.Resource] = field(default_factory=dict)

    def once(self, key: tuple[str, ...], make: Callable[[], R]) -> R:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]  # type: ignore[return-value]  # one factory per key


@dataclass
class GenerationKey:
    """One generation's key as seen by documents, delivery and outputs."""

    public_pem: pulumi.Output[str | None]
    """SubjectPublicKeyInfo PEM; None (or "") for symmetric keys."""
    thumbprint: pulumi.Output[str]
    """The default kid: RFC 7638 thumbprint, or the backend's stable name when it has none."""
    key_id: pulumi.Output[str]
    """What consumers call the key (KMS key id, version name, or keyset/generation)."""
    key_arn: pulumi.Output[str] | None = None
    key_name: pulumi.Output[str] | None = None
    material: pulumi.Output[str | None] | None = None
    """The private or secret key, always a secret; only backends that hold it in state."""
    fingerprint: pulumi.Output[str] | None = None
    resource: pulumi.Resource | None = None


@dataclass(kw_only=True)
class GeneratedKeyArgs:
    """The generation a program-generated key belongs to, as its dynamic provider records it (the
    rotation metadata the policy pack reads from its outputs). Derived from the stack file's
    generation by :meth:`of`; the software and PKCS#11 keys add what their provider needs."""

    keyset: pulumi.Input[str]
    generation: pulumi.Input[str]
    algorithm: pulumi.Input[str]
    state: pulumi.Input[str]
    environment: pulumi.Input[str]
    purpose: pulumi.Input[str]
    created_at: pulumi.Input[str]
    activated_at: pulumi.Input[str] | None = None
    key_size: pulumi.Input[int] | None = None

    @staticmethod
    def of(keyset: KeySetConfig, generation: Generation, environment: str) -> dict[str, Any]:
        """The fields of a generation's key, from the validated keyset and generation."""
        return {
            "keyset": keyset.name, "generation": generation.id, "algorithm": keyset.algorithm,
            "state": str(generation.state), "environment": environment, "purpose": str(keyset.purpose),
            "created_at": format_time(generation.created_at),
            "activated_at": format_time(generation.activated_at) if generation.activated_at else None,
            "key_size": keyset.rsa_key_size if keyset.spec.is_rsa else None,
        }

    def props(self) -> dict[str, Any]:
        """The dynamic resource's inputs: every field."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def inputs(self, *outputs: str) -> dict[str, Any]:
        """What the key resource registers: every field, and its provider's ``outputs`` as None
        (to be filled in by ``create``)."""
        return {**self.props(), **dict.fromkeys(outputs)}


KEY_OUTPUTS = ("public_key_pem", "thumbprint", "fingerprint")
"""What every generated key resource outputs, beside its provider's own (see GenerationKey)."""


def immutable_changes(olds: dict[str, Any], news: dict[str, Any], immutable: tuple[str, ...], *,
                      show: Callable[[Any], str] = repr,
                      created: str = "created once") -> list[tuple[str, str]]:
    """A generated key's provider ``check``: (property, message) for each of ``immutable`` that the
    new inputs change; a generation's key is never replaced."""
    return [
        (prop, f"keyset '{olds.get('keyset')}', generation '{olds.get('generation')}': {prop} was"
               f" {show(olds[prop])} and cannot become {show(news.get(prop))}; a generation's key is"
               f" {created}. Add a new generation instead (rotate).")
        for prop in immutable if olds and prop in olds and olds[prop] != news.get(prop)
    ]


@dataclass(frozen=True)
class BackendArgs:
    """What a backend needs: the keyset as validated, the stack's environment (in descriptions,
    tags and labels) and the run's shared resources."""

    keyset: KeySetConfig
    environment: str
    shared: SharedResources


class KeyBackend(Protocol):
    def __init__(self, args: BackendArgs, parent: pulumi.Resource) -> None: ...

    def generation_key(self, generation: Generation, name: str, parent: pulumi.Resource) -> GenerationKey:
        """Register the generation's key resources under ``parent``."""
        ...

    def finish(self, keys: dict[str, GenerationKey]) -> None:
        """Register keyset-level resources that depend on every generation (aliases...)."""
        ...


def load_backend(name: Backend) -> type[KeyBackend]:
    backend: type[KeyBackend] = importlib.import_module(MODULES[name]).BACKEND
    return backend
