"""Backend ``gcp-kms``: a Cloud KMS CryptoKey per keyset, a CryptoKeyVersion per generation.

KeyRings are shared by the keysets of a stack that name the same ring, and are registered once
(by the first, through the run's :class:`components.backend.SharedResources`).
Cloud KMS never deletes a KeyRing, and deleting a CryptoKey would destroy every version of it,
so the CryptoKey is protected. A generation's version is ENABLED while pending, active or
retiring, DISABLED once retired or revoked, and deleted by Pulumi when destroyed, which Cloud
KMS turns into DESTROY_SCHEDULED for ``destroy_scheduled_duration`` and then DESTROYED. (The
provider only lets a program set ENABLED or DISABLED; DESTROYED is reached by deleting.) A generation
restored within that window (``restoredKeyId``) has the same version back through
components/kms_restore.py.

CryptoKeyVersions carry no labels in Cloud KMS, so the CryptoKey's labels describe the active
generation (keyrotation.metadata), which is what the policy pack judges the keyset's age by.
"""

from __future__ import annotations

import pulumi
from pulumi_gcp import kms

from components.backend import BackendArgs, GenerationKey, SharedResources
from components.kms_record import protect, recorded_key
from components.kms_restore import RestoredKmsKey, RestoredKmsKeyArgs
from keyrotation.algorithms import GCP_PURPOSES, Purpose
from keyrotation.config import GcpOptions, Generation
from keyrotation.lifecycle import ENABLED_STATES, State
from keyrotation.metadata import RotationMetadata
from keyrotation.times import SECONDS_PER_DAY


def key_ring(shared: SharedResources, gcp: GcpOptions) -> kms.KeyRing:
    """The keyset's KeyRing, registered by the first keyset of the stack that names it."""
    ident = (gcp.project, gcp.location, gcp.key_ring)
    name = "-".join(p for p in ident if p)
    return shared.once(("gcp-key-ring", *(p or "" for p in ident)), lambda: kms.KeyRing(
        f"keyring-{name}",
        name=gcp.key_ring,
        location=gcp.location,
        project=gcp.project,
    ))


def version_number(version_name: str) -> int:
    """``projects/.../cryptoKeyVersions/3`` -> 3."""
    return int(version_name.rsplit("/", 1)[1])


class GcpKmsBackend:
    def __init__(self, args: BackendArgs, parent: pulumi.Resource) -> None:
        self.keyset = keyset = args.keyset
        self.parent = parent
        self.spec = spec = keyset.spec
        active = keyset.active
        labels = RotationMetadata(
            keyset=keyset.name, generation=active.id, environment=args.environment,
            state=str(active.state), algorithm=keyset.algorithm, purpose=keyset.purpose,
            created_at=active.created_at, activated_at=active.activated_at,
        ).gcp_labels()
        timings = keyset.timings
        self.crypto_key = kms.CryptoKey(
            f"{keyset.name}-key",
            name=keyset.name,
            key_ring=key_ring(args.shared, keyset.gcp).id,
            purpose=GCP_PURPOSES[keyset.purpose],
            version_template=kms.CryptoKeyVersionTemplateArgs(
                algorithm=spec.gcp_algorithm(keyset.rsa_key_size),
                protection_level=keyset.gcp.protection_level,
            ),
            destroy_scheduled_duration=f"{timings.deletion_window_days * SECONDS_PER_DAY}s",
            # Cloud KMS rotates only symmetric encryption keys by itself (at most maxAgeDays apart).
            rotation_period=(
                f"{timings.max_age_days * SECONDS_PER_DAY}s" if keyset.purpose is Purpose.ENCRYPT else None
            ),
            # Versions are the generations: no version that the stack file does not list.
            skip_initial_version_creation=True,
            labels=labels,
            opts=pulumi.ResourceOptions(parent=parent, protect=True),
        )

    def generation_key(self, generation: Generation, name: str, parent: pulumi.Resource) -> GenerationKey:
        keyset, spec = self.keyset, self.spec
        version = None
        version_name = public_pem = None
        if generation.state is not State.DESTROYED and generation.restored_key_id:
            # Restored from DESTROY_SCHEDULED: the same version, adopted (components/kms_restore.py).
            version = RestoredKmsKey(
                f"{name}-restored",
                RestoredKmsKeyArgs.of(keyset, generation),
                pulumi.ResourceOptions(parent=parent, protect=protect(generation.state),
                                       depends_on=[self.crypto_key]),
            )
            version_name = version.key_id
            # Asked for its public key once restored (key_state is unknown in a preview of the restore).
            ask_name = pulumi.Output.all(version.key_id, version.key_state).apply(lambda v: v[0])
        elif generation.state is not State.DESTROYED:
            # A destroyed generation's version is not registered: Pulumi deletes it, which is
            # Cloud KMS's DestroyCryptoKeyVersion (DESTROY_SCHEDULED, then DESTROYED).
            version = kms.CryptoKeyVersion(
                f"{name}-version",
                crypto_key=self.crypto_key.id,
                state="ENABLED" if generation.state in ENABLED_STATES else "DISABLED",
                opts=pulumi.ResourceOptions(parent=parent, protect=protect(generation.state)),
            )
            version_name = ask_name = version.name
        if version is not None and spec.publishes_public_key and generation.state in ENABLED_STATES:
            # Output-based invoke: unknown (not failed) while the version is being created.
            public_pem = kms.get_kms_crypto_key_version_output(
                crypto_key=self.crypto_key.id,
                version=ask_name.apply(version_number),
                opts=pulumi.InvokeOutputOptions(parent=parent),
            ).public_keys.apply(lambda found: found[0].pem if found else None)
        return recorded_key(name, parent, keyset, generation, version, key_id=version_name,
                            key_ref=version_name, public_key_pem=public_pem, ref="key_name",
                            unknown_because="Cloud KMS returns public keys of ENABLED versions only")

    def finish(self, keys: dict[str, GenerationKey]) -> None:
        return None


BACKEND = GcpKmsBackend
