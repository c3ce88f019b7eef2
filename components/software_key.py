"""A generation's key created by the program with ``cryptography``: a Pulumi dynamic resource.

The private key exists only in the ``private_key`` output, which is always a Pulumi secret
(``additional_secret_outputs``). A generation's key is created once: a later change of
algorithm, key size, keyset or generation id is refused, never turned into a replacement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from components.backend import KEY_OUTPUTS, GeneratedKeyArgs, immutable_changes
from keyrotation.names import SOFTWARE_KEY

# Inputs fixed at creation: changing any of them would silently mint a different key.
IMMUTABLE = ("keyset", "generation", "algorithm", "key_size")
SECRET_OUTPUTS = ["private_key"]
# Rotation metadata (keyrotation.metadata) the policy pack reads; changes update in place.
METADATA = ("state", "environment", "purpose", "created_at", "activated_at")


class SoftwareKeyProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(prop, message)
                    for prop, message in immutable_changes(olds, news, IMMUTABLE, show=_show)]
        from keyrotation.algorithms import ALGORITHMS

        if news.get("algorithm") not in ALGORITHMS:
            failures.append(CheckFailure("algorithm", f"unknown algorithm {news.get('algorithm')!r}"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from keyrotation import keys
        from keyrotation.algorithms import ALGORITHMS

        spec = ALGORITHMS[props["algorithm"]]
        material = keys.generate_private(spec, int(props.get("key_size") or 2048))
        outs = {**props, **_public_outputs(spec, material)}
        outs["private_key"] = material if props.get("state") != "destroyed" else ""
        return CreateResult(f"{props['keyset']}/{props['generation']}", outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only lifecycle metadata can change; it updates the resource, never the key.
        changed = [p for p in METADATA if olds.get(p) != news.get(p)]
        return DiffResult(changes=bool(changed), replaces=[], stables=list(IMMUTABLE),
                          delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = {**olds, **news}
        # A destroyed generation keeps its public key (key history) and loses its private key.
        outs["private_key"] = "" if news.get("state") == "destroyed" else olds.get("private_key")
        return UpdateResult(outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # The key lives only in this resource's state: deleting the resource forgets it.
        return None


def _show(value: Any) -> str:
    # Numbers cross the engine as floats (protobuf Struct): show 2048, not 2048.0.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(value) if isinstance(value, str) else str(value)


def _public_outputs(spec, material: str) -> dict[str, Any]:
    from keyrotation import keys

    if spec.is_symmetric:
        return {
            # "" rather than None: an output that is null on the wire reads as unknown in every
            # preview, which would show the keyset's documents changing when nothing did.
            "public_key_pem": "",
            "thumbprint": keys.secret_thumbprint(material),
            "fingerprint": keys.fingerprint(material),
        }
    public_pem = keys.public_pem_from_private(material)
    return {
        "public_key_pem": public_pem,
        "thumbprint": keys.thumbprint(public_pem),
        "fingerprint": keys.fingerprint(public_pem),
    }


@dataclass(kw_only=True)
class SoftwareKeyArgs(GeneratedKeyArgs):
    """A software key needs nothing beyond its generation."""


class SoftwareKey(Resource, module=SOFTWARE_KEY[0], name=SOFTWARE_KEY[1]):
    private_key: pulumi.Output[str]
    """PKCS#8 PEM (key pairs) or base64 (symmetric keys); always a secret; "" once destroyed."""
    public_key_pem: pulumi.Output[str]
    """SubjectPublicKeyInfo PEM; "" for symmetric keys."""
    thumbprint: pulumi.Output[str]
    """RFC 7638 SHA-256 thumbprint (for symmetric keys: of the oct JWK)."""
    fingerprint: pulumi.Output[str]
    """SHA-256 of the public PEM (key pairs) or of the base64 key (the Secrets Service ledger)."""

    def __init__(self, name: str, args: SoftwareKeyArgs, opts: pulumi.ResourceOptions | None = None):
        props = args.inputs("private_key", *KEY_OUTPUTS)
        opts = pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS, protect=True), opts
        )
        super().__init__(SoftwareKeyProvider(), name, props, opts)
