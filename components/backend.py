"""What every key backend gives the keyset component, what it is given, and how it is found.

Backends are imported lazily by name, so a stack imports only the cloud SDKs it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import pulumi

from keyrotation.algorithms import Backend
from keyrotation.config import Generation, KeySetConfig

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
