"""What the KMS backends share: the lifecycle's protect rule and a record of each KMS key.

AWS KMS and Cloud KMS return a public key only while the key (version) is enabled: AWS answers
``DisabledException`` / ``KMSInvalidStateException`` for disabled and pending-deletion keys, Cloud
KMS ``FAILED_PRECONDITION`` for versions that are not ENABLED. Yet a retired, revoked or destroyed
generation keeps its public key in the key history (CONFIG.md). So each KMS generation has a
:class:`KmsKeyRecord`, a dynamic resource that keeps in the Pulumi state what the KMS said while
the key was enabled: its id, its ARN or version name, and its public key. It also refuses a
generation whose KMS public key changes, which would mean the key behind a published kid was
replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, Resource, ResourceProvider

from components.backend import GenerationKey
from keyrotation import keys
from keyrotation.config import Generation, KeySetConfig
from keyrotation.lifecycle import TRANSITIONS, State
from keyrotation.names import KMS_KEY_RECORD

REMEMBERED = ("key_id", "key_ref", "public_key_pem")
"""Outputs the record keeps when the program no longer knows them (None: keep the old value)."""


def protect(state: State) -> bool:
    """Whether a generation's KMS key (version) is protected from deletion.

    Protected in every state except the one whose next step may be ``destroyed``: destruction is
    Pulumi deleting the key, which AWS turns into ScheduleKeyDeletion (``deletionWindowDays``,
    cancelable) and Cloud KMS into DESTROY_SCHEDULED (``destroy_scheduled_duration``). A protected
    resource could not be deleted in the same ``pulumi up`` that marks it destroyed, so the rule
    is derived from the lifecycle's transitions rather than listed here.
    """
    return State.DESTROYED not in TRANSITIONS[state]


def _is_pem(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("-----BEGIN")


def _same_key(a: str, b: str) -> bool:
    return keys.normalize_public_pem(a) == keys.normalize_public_pem(b)


class KmsKeyRecordProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        old_pem, new_pem = (olds or {}).get("public_key_pem"), news.get("public_key_pem")
        # Unknown values (previews) and None (key disabled or gone) are not a change of key.
        if _is_pem(old_pem) and _is_pem(new_pem) and not _same_key(str(old_pem), str(new_pem)):
            failures.append(CheckFailure(
                "public_key_pem",
                f"keyset '{news.get('keyset')}', generation '{news.get('generation')}': the KMS now"
                f" returns a different public key for key {news.get('key_id') or olds.get('key_id')!r}"
                " than the one recorded and published for this generation. A generation's key never"
                " changes: restore the original key, or add a new generation (rotate).",
            ))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['keyset']}/{props['generation']}", _merge({}, props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        merged = _merge(olds, news)
        changed = [k for k in merged if merged.get(k) != olds.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], stables=["keyset", "generation"],
                          delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]):
        from pulumi.dynamic import UpdateResult

        return UpdateResult(_merge(olds, news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Only a record: the KMS key is deleted (or kept) by its own resource.
        return None


def _merge(olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    out = {**olds, **news}
    for key in REMEMBERED:
        if not news.get(key):
            # "" rather than None: a None output is absent on the wire, which a preview reads as
            # unknown, and every document built from it would show as changing.
            out[key] = olds.get(key) or ""
    return out


@dataclass
class KmsKeyRecordArgs:
    keyset: str
    generation: str
    key_id: pulumi.Input[str] | None
    """The KMS key id (AWS) or version name (GCP); None once the key is gone (destroyed)."""
    key_ref: pulumi.Input[str] | None
    """The key ARN (AWS) or version name (GCP)."""
    public_key_pem: pulumi.Input[str] | None
    """The KMS's public key, None while the KMS does not return it (disabled, symmetric)."""


class KmsKeyRecord(Resource, module=KMS_KEY_RECORD[0], name=KMS_KEY_RECORD[1]):
    key_id: pulumi.Output[str]
    """"" when never known (a generation first seen destroyed)."""
    key_ref: pulumi.Output[str]
    public_key_pem: pulumi.Output[str]
    """"" while unknown (symmetric keys; a key first seen disabled)."""

    def __init__(self, name: str, args: KmsKeyRecordArgs, opts: pulumi.ResourceOptions | None = None):
        props = {
            "keyset": args.keyset,
            "generation": args.generation,
            "key_id": args.key_id,
            "key_ref": args.key_ref,
            "public_key_pem": args.public_key_pem,
        }
        super().__init__(KmsKeyRecordProvider(), name, props, opts)


def recorded_key(
    name: str,
    parent: pulumi.Resource,
    keyset: KeySetConfig,
    generation: Generation,
    resource: pulumi.Resource | None,
    *,
    key_id: pulumi.Input[str] | None,
    key_ref: pulumi.Input[str] | None,
    public_key_pem: pulumi.Input[str] | None,
    ref: str,
    unknown_because: str,
) -> GenerationKey:
    """Record a KMS generation's key (a :class:`KmsKeyRecord` under ``parent``) and return its
    GenerationKey (``ref``: ``key_arn`` or ``key_name``, what ``key_ref`` is).

    The default kid is the RFC 7638 thumbprint of the KMS's public key, as for software keys. A
    key without a public key (symmetric keys; a key first seen already disabled) is named
    ``<keyset>-<generation>``: stable, unique in the keyset, and never derived from secret
    material.
    """
    record = KmsKeyRecord(
        f"{name}-record",
        KmsKeyRecordArgs(keyset=keyset.name, generation=generation.id, key_id=key_id, key_ref=key_ref,
                         public_key_pem=public_key_pem),
        pulumi.ResourceOptions(parent=parent),
    )
    pem = record.public_key_pem.apply(lambda p: keys.normalize_public_pem(p) if p else None)
    kid = pem.apply(lambda p: keys.thumbprint(p) if p else f"{keyset.name}-{generation.id}")
    if keyset.spec.publishes_public_key:
        pem.apply(lambda p: None if p else pulumi.log.warn(
            f"keyset '{keyset.name}', generation '{generation.id}': its public key is not known."
            f" {unknown_because}, and this stack never saw the {generation.state} key enabled; the"
            " documents list the generation without a public key."
        ))
    recorded_ref: pulumi.Output[Any] = record.key_ref.apply(lambda v: v or None)
    return GenerationKey(
        public_pem=pem,
        thumbprint=kid,
        # None: the KMS has not said (the key is unknown or gone).
        key_id=record.key_id.apply(lambda v: v or None),  # type: ignore[arg-type,return-value]
        resource=resource,
        key_arn=recorded_ref if ref == "key_arn" else None,
        key_name=recorded_ref if ref == "key_name" else None,
    )
