"""The component that delivers a keyset to Kubernetes: Secrets the program owns, patches of
Deployments it does not.

What is delivered (keyring, material, ids, the checksum that rolls the pods) is computed by the
pure :mod:`keyrotation.delivery`; this module only registers it. Deployments owned by other teams
get a server-side-apply patch with the env this keyset delivers and a pod-template annotation (the
checksum), in place of ``kubectl rollout restart``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import pulumi

from components.kubernetes import MANAGED_BY, split_ref
from keyrotation.config import DeploymentConsumer, KeySetConfig, SecretConsumer
from keyrotation.delivery import (
    FINGERPRINTS_ANNOTATION,
    DeliveredGeneration,
    DeliveredKeys,
    Target,
    canonical,
    checksum_annotation,
    secret_data,
    target_checksum,
    target_env,
)
from keyrotation.metadata import RotationMetadata
from keyrotation.view import GenerationView, KeysetView

PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce"
"""Take over the delivered fields from whoever set them before (``kubectl set env``)."""


# ---------------------------------------------------------------------------------------------
# The component


@dataclass
class KeyDeliveryArgs:
    environment: str
    """The stack's environment (in the delivered objects' annotations)."""
    keyset: KeySetConfig
    keys: KeysetView
    """The keyset's view: its active generation and its ring (what decrypts)."""
    generations: Mapping[str, Any]
    """The keyset's KeyGeneration components by generation id (``kid``, ``key``)."""
    publications: Sequence[pulumi.Resource] = ()
    """The keyset's published documents: the env switch to a new key waits for them."""
    deleted_with: pulumi.Resource | None = None
    """The KeySet: a destroy that deletes it leaves the delivered Secrets and env in the cluster
    (as it leaves the published documents); removing a consumer still deletes what it received."""


class KeyDelivery(pulumi.ComponentResource):
    """A keyset's Secrets and Deployment patches; children of the KeySet, on the stack's provider."""

    def __init__(self, name: str, args: KeyDeliveryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("key-rotation:kubernetes:KeyDelivery", name, None, opts)
        keyset, keys = args.keyset, args.keys
        self.keyset = keyset
        self._deleted_with = args.deleted_with
        # Non-secret view (ids, fingerprints) and the secret one (plus material of the keyring).
        self.public = pulumi.Output.all(*(_identity(e, args.generations[e.id]) for e in keys.entries)).apply(
            lambda gens: DeliveredKeys(keyset, keys, gens))
        ring = [args.generations[g.id] for g in keys.ring]
        held = {g.generation.id: g.key.material for g in ring if g.key.material is not None}
        # Backends that keep the key in a KMS/HSM hold no material (the config allows only ids then).
        materials = pulumi.Output.all(**held) if held else pulumi.Output.from_input({})
        self.full: pulumi.Output[DeliveredKeys] = pulumi.Output.secret(
            pulumi.Output.all(self.public, materials).apply(_with_material))
        self.metadata = RotationMetadata(
            keyset=keyset.name, generation=keys.primary, environment=args.environment,
            state=str(keys.active.state), algorithm=keyset.algorithm, purpose=keyset.purpose,
            created_at=keys.active.created_at, activated_at=keys.active.activated_at,
        )

        self.secrets: dict[str, pulumi.CustomResource] = {}
        targets: dict[str, Target] = {}
        for consumer in keyset.consumers:
            if isinstance(consumer, SecretConsumer):
                self.secrets[consumer.secret] = self._secret(name, consumer.secret, consumer.data)
                for ref in consumer.restart:
                    targets.setdefault(ref, Target()).secrets[consumer.secret] = dict(consumer.data)
            else:
                self._deployment_consumer(name, consumer, targets.setdefault(consumer.deployment, Target()))

        self.checksums: dict[str, pulumi.Output[str]] = {}
        self.patches: dict[str, pulumi.CustomResource] = {}
        for ref, target in targets.items():
            self.checksums[ref] = self.public.apply(partial(_checksum_of, target))
            self.patches[ref] = self._patch(name, ref, target, args.publications)

        self.register_outputs({
            "secrets": sorted(self.secrets),
            "checksums": self.checksums,
        })

    def _deployment_consumer(self, name: str, consumer: DeploymentConsumer, target: Target) -> None:
        container = consumer.container or split_ref(consumer.deployment)[1]
        target.containers.setdefault(container, {}).update(consumer.env)
        target.values.setdefault(container, {}).update(consumer.values)
        if consumer.material:
            # Material reaches env through a Secret of its own (secretKeyRef), never as a value.
            namespace, deployment = split_ref(consumer.deployment)
            ref = f"{namespace}/{deployment}-{self.keyset.name}"
            self.secrets[ref] = self._secret(name, ref, consumer.material)
            target.secrets[ref] = dict(consumer.material)
            target.secret_env.setdefault(container, {}).update(
                {var: (split_ref(ref)[1], var) for var in consumer.material})

    def _secret(self, name: str, ref: str, sources: Mapping[str, str]) -> pulumi.CustomResource:
        from pulumi_kubernetes.core.v1 import Secret

        namespace, object_name = split_ref(ref)
        sources = dict(sources)
        annotations = self.public.apply(lambda keys: {
            **self.metadata.annotations(),
            **({FINGERPRINTS_ANNOTATION: canonical(fps)} if (fps := keys.fingerprints(list(sources.values())))
               else {}),
        })
        return Secret(
            f"{name}-{namespace}-{object_name}-secret",
            metadata={"name": object_name, "namespace": namespace, "labels": dict(MANAGED_BY),
                      "annotations": annotations},
            type="Opaque",
            data=pulumi.Output.secret(self.full.apply(lambda keys: secret_data(keys,
                                                                               sources))),  # type: ignore[arg-type]
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data", "stringData"],
                                        deleted_with=self._deleted_with),
        )

    def _patch(self, name: str, ref: str, target: Target, publications: Sequence[pulumi.Resource]):
        from pulumi_kubernetes.apps.v1 import DeploymentPatch

        namespace, object_name = split_ref(ref)
        template: dict[str, Any] = {
            "metadata": {"annotations": {checksum_annotation(self.keyset.name): self.checksums[ref]}},
        }
        containers = sorted(set(target.containers) | set(target.values) | set(target.secret_env))
        if containers:
            template["spec"] = {"containers": [
                {"name": c, "env": self.public.apply(partial(_env_of, target, c))}
                for c in containers
            ]}
        depends_on = [*publications, *(self.secrets[s] for s in target.secrets)]
        return DeploymentPatch(
            f"{name}-{namespace}-{object_name}-patch",
            metadata={"name": object_name, "namespace": namespace,
                      "annotations": {PATCH_FORCE_ANNOTATION: "true"}},
            spec={"template": template},
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on, deleted_with=self._deleted_with),
        )


def _identity(entry: GenerationView, generation: Any) -> pulumi.Output[DeliveredGeneration]:
    key = generation.key
    return pulumi.Output.all(
        generation.kid, key.key_id, key.key_arn, key.key_name, key.fingerprint
    ).apply(lambda v: DeliveredGeneration(entry, *v))


def _with_material(values: list) -> DeliveredKeys:
    public, materials = values
    generations = [replace(g, material=materials.get(g.id)) for g in public.generations]
    return DeliveredKeys(public.keyset, public.keys, generations)


def _checksum_of(target: Target, keys: DeliveredKeys) -> str:
    return target_checksum(keys, target)


def _env_of(target: Target, container: str, keys: DeliveredKeys) -> list[dict[str, Any]]:
    return target_env(keys, target, container)
