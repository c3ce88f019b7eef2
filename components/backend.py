"""What every key backend gives the keyset component, and how a backend module is found.

Backends are imported lazily by name, so a stack imports only the cloud SDKs it uses.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import pulumi

from keyrotation.config import Generation, KeySet, StackConfig

MODULES = {
    "software": "components.software",
    "external": "components.external",
    "aws-kms": "components.aws_kms",
    "gcp-kms": "components.gcp_kms",
}


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


class Backend(Protocol):
    def __init__(self, stack: StackConfig, keyset: KeySet, parent: pulumi.Resource) -> None: ...

    def generation_key(self, generation: Generation, name: str, parent: pulumi.Resource) -> GenerationKey:
        """Register the generation's key resources under ``parent``."""

    def finish(self, keys: dict[str, GenerationKey]) -> None:
        """Register keyset-level resources that depend on every generation (aliases...)."""


def load_backend(name: str) -> type[Backend]:
    return importlib.import_module(MODULES[name]).BACKEND
