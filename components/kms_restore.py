"""A KMS key brought back from its deletion window: the key of a generation restored from ``destroyed``.

Destroying an aws-kms or gcp-kms generation deletes its Pulumi resource, which the providers turn
into a pending deletion (AWS ScheduleKeyDeletion, Cloud KMS DESTROY_SCHEDULED). ``restore`` takes
the generation back to ``retiring`` within that window and writes the key's id into the stack file
(``restoredKeyId``). The providers cannot adopt such a key in the same ``pulumi up`` that cancels
its deletion: terraform-provider-aws reads a key in PendingDeletion as gone, and an import would
either fail or, worse, the program would create a new key. So this dynamic resource adopts it:

- create: AWS CancelKeyDeletion (the key comes back Disabled), Cloud KMS RestoreCryptoKeyVersion
  (the version comes back DISABLED); then the key is enabled or disabled as the generation's state
  says, and (AWS) its rotation-metadata tags are set. A key whose window has passed fails with one
  line naming the keyset, the generation and the key.
- update: enabled/disabled (and tags) follow the generation's state.
- delete: the generation is destroyed again: deletion is scheduled again (AWS with the keyset's
  deletion window; Cloud KMS with the CryptoKey's destroy_scheduled_duration).

Protection follows the lifecycle as for every KMS key (components/kms_record.protect). Clients are
built in each method, never held on the instance (the provider is pickled into the state). The
Cloud KMS calls go through components/gcp_kms_rest.py (credentials, or ``CLOUDKMS_EMULATOR_HOST``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from keyrotation.config import Generation, KeySetConfig
from keyrotation.lifecycle import ENABLED_STATES
from keyrotation.names import KMS_RESTORED_KEY


class RestoreError(Exception):
    """The KMS refused, or the key is gone: one line for the person running `pulumi up`."""


def _where(props: dict[str, Any]) -> str:
    return (f"keyset '{props['keyset']}', generation '{props['generation']}':"
            f" {props['backend']} key {props['key_id']}")


# ---------------------------------------------------------------------------------------------
# AWS KMS


def _aws(props: dict[str, Any]):
    import boto3

    return boto3.client("kms", region_name=props.get("region") or None)


def _aws_call(props: dict[str, Any], what: str, call):
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        if code == "NotFoundException":
            raise RestoreError(f"{_where(props)}: AWS KMS no longer has it ({message}): its deletion window"
                               " has"
                               " passed and it cannot be restored; add a new generation (rotate)") from None
        raise RestoreError(f"{_where(props)}: {what} refused: {code}: {message}") from None


def _aws_restore(props: dict[str, Any]) -> str:
    kms = _aws(props)
    key_id = props["key_id"]
    state = _aws_call(props, "DescribeKey", lambda: kms.describe_key(KeyId=key_id))["KeyMetadata"]["KeyState"]
    if state == "PendingDeletion":
        _aws_call(props, "CancelKeyDeletion", lambda: kms.cancel_key_deletion(KeyId=key_id))
    elif state not in ("Enabled", "Disabled"):
        raise RestoreError(f"{_where(props)}: is {state} in AWS KMS; only a key pending deletion (or already"
                           " restored by hand) can be restored")
    return _aws_apply(props)


def _aws_apply(props: dict[str, Any]) -> str:
    kms = _aws(props)
    key_id = props["key_id"]
    if props["enabled"]:
        _aws_call(props, "EnableKey", lambda: kms.enable_key(KeyId=key_id))
    else:
        _aws_call(props, "DisableKey", lambda: kms.disable_key(KeyId=key_id))
    tags = props.get("tags") or {}
    if tags:
        _aws_call(props, "TagResource", lambda: kms.tag_resource(
            KeyId=key_id, Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(tags.items())]))
    return _aws_call(props, "DescribeKey", lambda: kms.describe_key(KeyId=key_id))["KeyMetadata"]["KeyState"]


def _aws_delete(props: dict[str, Any]) -> None:
    kms = _aws(props)
    key_id = props["key_id"]
    state = _aws_call(props, "DescribeKey", lambda: kms.describe_key(KeyId=key_id))["KeyMetadata"]["KeyState"]
    if state != "PendingDeletion":
        _aws_call(props, "ScheduleKeyDeletion", lambda: kms.schedule_key_deletion(
            KeyId=key_id, PendingWindowInDays=int(props["deletion_window_days"])))


# ---------------------------------------------------------------------------------------------
# Cloud KMS (REST, https://cloud.google.com/kms/docs/reference/rest)


def _gcp_call(props: dict[str, Any], method: str, suffix: str = "", body: dict | None = None,
              params: dict | None = None) -> dict[str, Any]:
    from components import gcp_kms_rest

    try:
        return gcp_kms_rest.call(props["key_id"], method, suffix, body, params)
    except gcp_kms_rest.CloudKmsRefused as error:
        if error.status == "NOT_FOUND":
            raise RestoreError(f"{_where(props)}: Cloud KMS has no such version ({error.message})") from None
        raise RestoreError(f"{_where(props)}: {method} {suffix or 'get'} refused: {error}") from None


def _gcp_restore(props: dict[str, Any]) -> str:
    state = _gcp_call(props, "GET").get("state")
    if state == "DESTROY_SCHEDULED":
        state = _gcp_call(props, "POST", ":restore", {}).get("state")
    elif state not in ("ENABLED", "DISABLED"):
        raise RestoreError(f"{_where(props)}: is {state} in Cloud KMS: its destroy_scheduled_duration has"
                           " passed"
                           " (or it never held key material) and it cannot be restored; add a new generation"
                           " (rotate)")
    return _gcp_apply(props)


def _gcp_apply(props: dict[str, Any]) -> str:
    wanted = "ENABLED" if props["enabled"] else "DISABLED"
    return _gcp_call(props, "PATCH", body={"state": wanted}, params={"updateMask": "state"}).get("state", "")


def _gcp_delete(props: dict[str, Any]) -> None:
    if _gcp_call(props, "GET").get("state") in ("ENABLED", "DISABLED"):
        _gcp_call(props, "POST", ":destroy", {})


_CLOUDS = {
    "aws-kms": (_aws_restore, _aws_apply, _aws_delete),
    "gcp-kms": (_gcp_restore, _gcp_apply, _gcp_delete),
}


class RestoredKmsKeyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        restore, _apply, _delete = _CLOUDS[props["backend"]]
        return CreateResult(props["key_id"], {**props, "key_state": restore(props)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        watched = ("enabled", "tags", "deletion_window_days", "region")
        changed = [k for k in watched if olds.get(k) != news.get(k)]
        # Another key id is another key: never adopted in place of the restored one.
        replaces = ["key_id"] if olds.get("key_id") != news.get("key_id") else []
        return DiffResult(changes=bool(changed or replaces), replaces=replaces,
                          stables=["keyset", "generation", "backend"], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        _restore, apply, _delete = _CLOUDS[news["backend"]]
        return UpdateResult({**news, "key_state": apply(news)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        _restore, _apply, delete = _CLOUDS[props["backend"]]
        delete(props)


@dataclass
class RestoredKmsKeyArgs:
    keyset: str
    generation: str
    backend: str
    """``aws-kms`` or ``gcp-kms``."""
    key_id: str
    """The generation's ``restoredKeyId``: AWS key id, or Cloud KMS CryptoKeyVersion name."""
    enabled: bool
    """Whether the generation's state uses the key (pending, active, retiring)."""
    deletion_window_days: int
    """AWS: the window of a deletion scheduled again (Cloud KMS uses the CryptoKey's)."""
    region: str | None = None
    tags: dict[str, str] | None = None
    """AWS: the rotation metadata tags (keyrotation.metadata)."""

    @classmethod
    def of(cls, keyset: KeySetConfig, generation: Generation, *, region: str | None = None,
           tags: dict[str, str] | None = None) -> RestoredKmsKeyArgs:
        """The args of a generation restored from its deletion window (its ``restoredKeyId``)."""
        assert generation.restored_key_id is not None, "only a restored generation adopts its key"
        return cls(keyset=keyset.name, generation=generation.id, backend=keyset.backend,
                   key_id=generation.restored_key_id, enabled=generation.state in ENABLED_STATES,
                   deletion_window_days=keyset.timings.deletion_window_days, region=region, tags=tags)


class RestoredKmsKey(Resource, module=KMS_RESTORED_KEY[0], name=KMS_RESTORED_KEY[1]):
    key_id: pulumi.Output[str]
    key_state: pulumi.Output[str]
    """What the KMS said after the last create/update: Enabled/Disabled, ENABLED/DISABLED."""

    def __init__(self, name: str, args: RestoredKmsKeyArgs, opts: pulumi.ResourceOptions | None = None):
        props = {
            "keyset": args.keyset, "generation": args.generation, "backend": args.backend,
            "key_id": args.key_id, "enabled": args.enabled, "deletion_window_days": args.deletion_window_days,
            "region": args.region, "tags": args.tags, "key_state": None,
        }
        super().__init__(RestoredKmsKeyProvider(), name, props, opts)
