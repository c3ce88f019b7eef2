"""Backend ``aws-kms``: one AWS KMS key per generation, and the aliases that name them.

Asymmetric and HMAC keys cannot rotate in place, so rotation is a new key per generation for
every algorithm; symmetric encryption keys additionally turn on AWS's own rotation of their key
material. A generation's key is enabled while it is pending, active or retiring, disabled once
retired or revoked, and deleted by Pulumi when it is destroyed, which AWS turns into its
pending-deletion window (``deletionWindowDays``). A generation restored within that window
(``restoredKeyId``) has the same key back through components/kms_restore.py, not a new one.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_aws import kms

from components.backend import BackendArgs, GenerationKey
from components.kms_record import protect, recorded_key
from components.kms_restore import RestoredKmsKey, RestoredKmsKeyArgs
from keyrotation.algorithms import AWS_NATIVE_ROTATION
from keyrotation.config import Generation, KeySetConfig
from keyrotation.lifecycle import ENABLED_STATES, State
from keyrotation.metadata import RotationMetadata


def metadata(environment: str, keyset: KeySetConfig, generation: Generation) -> RotationMetadata:
    return RotationMetadata(
        keyset=keyset.name, generation=generation.id, environment=environment,
        state=str(generation.state), algorithm=keyset.algorithm, purpose=keyset.purpose,
        created_at=generation.created_at, activated_at=generation.activated_at,
    )


class AwsKmsBackend:
    def __init__(self, args: BackendArgs, parent: pulumi.Resource) -> None:
        self.environment = args.environment
        self.keyset = keyset = args.keyset
        self.parent = parent
        self.spec = keyset.spec
        # None: the provider's region (the stack's aws:region).
        self.region = keyset.aws.region

    def alias_name(self, generation: Generation | None = None) -> str:
        base = f"{self.keyset.aws.alias_prefix}{self.keyset.name}"
        return base if generation is None else f"{base}-{generation.id}"

    def generation_key(self, generation: Generation, name: str, parent: pulumi.Resource) -> GenerationKey:
        keyset, spec = self.keyset, self.spec
        key = None
        key_id = key_arn = public_der = None
        if generation.state is not State.DESTROYED and generation.restored_key_id:
            # Restored from its deletion window: the same key, adopted (components/kms_restore.py).
            key = RestoredKmsKey(
                f"{name}-restored",
                RestoredKmsKeyArgs.of(keyset, generation,
                                      region=self.region or pulumi.Config("aws").get("region"),
                                      tags=metadata(self.environment, keyset, generation).aws_tags()),
                pulumi.ResourceOptions(parent=parent, protect=protect(generation.state)),
            )
            # The ARN is the record's (kept from when the key was first registered).
            key_id = key.key_id
            # Asked for its public key once restored (key_state is unknown in a preview of the restore).
            ask_key_id = pulumi.Output.all(key.key_id, key.key_state).apply(lambda v: v[0])
        elif generation.state is not State.DESTROYED:
            # Not registering a destroyed generation's key is what deletes it: the provider's
            # delete is ScheduleKeyDeletion with the key's deletion_window_in_days.
            symmetric_encryption = AWS_NATIVE_ROTATION.rotates(spec.aws_key_spec, spec.aws_key_usage)
            key = kms.Key(
                f"{name}-key",
                description=(
                    f"key-rotation {self.environment}: keyset {keyset.name}, generation"
                    f" {generation.id} ({keyset.algorithm})"
                ),
                customer_master_key_spec=spec.aws_spec(keyset.rsa_key_size),
                key_usage=spec.aws_key_usage,
                deletion_window_in_days=keyset.timings.deletion_window_days,
                is_enabled=generation.state in ENABLED_STATES,
                enable_key_rotation=symmetric_encryption,
                rotation_period_in_days=(
                    AWS_NATIVE_ROTATION.period_days(keyset.timings.max_age_days) if symmetric_encryption
                    else None
                ),
                multi_region=keyset.aws.multi_region,
                region=self.region,
                tags=metadata(self.environment, keyset, generation).aws_tags(),
                opts=pulumi.ResourceOptions(parent=parent, protect=protect(generation.state)),
            )
            key_id, key_arn = key.key_id, key.arn
            ask_key_id = key.key_id
        if key is not None:
            kms.Alias(
                f"{name}-alias",
                name=self.alias_name(generation),
                target_key_id=key.key_id,
                region=self.region,
                opts=pulumi.ResourceOptions(parent=parent),
            )
            if spec.publishes_public_key and generation.state in ENABLED_STATES:
                # An Output-based invoke: while the key id is unknown (a preview of a new
                # generation) the result is unknown instead of a call with no key id.
                public_der = kms.get_public_key_output(
                    key_id=ask_key_id, region=self.region, opts=pulumi.InvokeOutputOptions(parent=parent)
                ).public_key
        return recorded_key(name, parent, keyset, generation, key, key_id=key_id, key_ref=key_arn,
                            public_key_pem=None if public_der is None else public_der.apply(_pem_from_der),
                            ref="key_arn",
                            unknown_because="AWS KMS does not return the public key of a disabled or deleted"
                                            " key")

    def finish(self, keys: dict[str, GenerationKey]) -> None:
        # The active generation always has its key (only destroyed ones do not).
        active: Any = keys[self.keyset.active.id].resource
        kms.Alias(
            f"{self.keyset.name}-alias",
            name=self.alias_name(),
            target_key_id=active.key_id,
            region=self.region,
            opts=pulumi.ResourceOptions(parent=self.parent),
        )


def _pem_from_der(der_b64: str | None) -> str | None:
    import base64

    from keyrotation import keys

    return None if der_b64 is None else keys.public_pem_from_der(base64.b64decode(der_b64))


BACKEND = AwsKmsBackend
