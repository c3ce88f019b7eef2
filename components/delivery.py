"""Delivery of a keyset to Kubernetes: Secrets the program owns, patches of Deployments it does not.

Symmetric keys rotate in two phases, so that no pod meets ciphertext it cannot decrypt at any
moment of a rolling update:

- a ``pending`` generation is delivered decrypt-only: in the keyring, never as ``material``;
- the ``active`` generation is the encryption key (``material``) and is marked in the keyring;
- a ``retiring`` generation stays in the keyring for the overlap;
- a rollback (the previous generation active again, the newer one retiring) keeps the newer
  generation in the keyring, so nothing encrypted under it is lost.

"Decrypt-capable" is :data:`keyrotation.lifecycle.PUBLISHED_STATES`. Deployments owned by other
teams get a server-side-apply patch with the env this keyset delivers and a pod-template
annotation: a checksum of what was delivered (generation ids, key ids, material fingerprints;
never material), which rolls the pods exactly when that changes, in place of
``kubectl rollout restart``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.kubernetes import MANAGED_BY, split_ref
from keyrotation.config import DeploymentConsumer, SecretConsumer, StackConfig
from keyrotation.config import KeySet as KeySetConfig
from keyrotation.lifecycle import PUBLISHED_STATES, State
from keyrotation.metadata import ANNOTATION_PREFIX, RotationMetadata

FINGERPRINTS_ANNOTATION = ANNOTATION_PREFIX + "fingerprints"
"""On a Secret: JSON {generation id: SHA-256 of the delivered key text} (the secrets ledger)."""
PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce"
"""Take over the delivered fields from whoever set them before (``kubectl set env``)."""


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
class DeliveredGeneration:
    """One generation as delivery sees it. ``material`` is set only where it is delivered."""

    id: str
    state: str
    kid: str
    key_id: str
    key_arn: str | None = None
    key_name: str | None = None
    fingerprint: str | None = None
    material: str | None = field(default=None, repr=False)

    @property
    def decrypts(self) -> bool:
        return State(self.state) in PUBLISHED_STATES

    def identity(self) -> dict[str, Any]:
        """What identifies the delivered key without revealing it."""
        return {"id": self.id, "kid": self.kid, "keyId": self.key_id, "state": self.state,
                "fingerprint": self.fingerprint}


class DeliveredKeys:
    """A keyset's generations, resolved: the value and the descriptor of every delivery source."""

    def __init__(self, keyset: KeySetConfig, generations: Sequence[DeliveredGeneration]):
        self.keyset = keyset
        self.generations = list(generations)
        self.active = next(g for g in self.generations if g.state == State.ACTIVE)
        self.ring = [g for g in self.generations if g.decrypts]

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
        values = {
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


# ---------------------------------------------------------------------------------------------
# The component


@dataclass
class KeyDeliveryArgs:
    stack: StackConfig
    keyset: KeySetConfig
    generations: Mapping[str, Any]
    """The keyset's KeyGeneration components by generation id (``kid``, ``key``)."""
    publications: Sequence[pulumi.Resource] = ()
    """The keyset's published documents: the env switch to a new key waits for them."""
    deleted_with: pulumi.Resource | None = None
    """The KeySet: a destroy that deletes it leaves the delivered Secrets and env in the cluster
    (as it leaves the published documents); removing a consumer still deletes what it received."""


@dataclass
class _Target:
    """Everything one keyset delivers to one Deployment."""

    containers: dict[str, dict[str, str]] = field(default_factory=dict)
    """container -> env var -> source"""
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    """container -> env var -> fixed value"""
    secret_env: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    """container -> env var -> (Secret name, its key)"""
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    """Secret ref -> its data sources (the Deployment reads them, so rolls when they change)"""


class KeyDelivery(pulumi.ComponentResource):
    """A keyset's Secrets and Deployment patches; children of the KeySet, on the stack's provider."""

    def __init__(self, name: str, args: KeyDeliveryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("key-rotation:kubernetes:KeyDelivery", name, None, opts)
        keyset = args.keyset
        self.keyset = keyset
        self._deleted_with = args.deleted_with
        generations = [args.generations[g.id] for g in keyset.generations]
        # Non-secret view (ids, fingerprints) and the secret one (plus material of the keyring).
        self.public = pulumi.Output.all(*(_identity(g) for g in generations)).apply(
            lambda gens: DeliveredKeys(keyset, gens))
        ring = [g for g in generations if g.generation.state in PUBLISHED_STATES]
        held = {g.generation.id: g.key.material for g in ring if g.key.material is not None}
        # Backends that keep the key in a KMS/HSM hold no material (the config allows only ids then).
        materials = pulumi.Output.all(**held) if held else pulumi.Output.from_input({})
        self.full = pulumi.Output.secret(pulumi.Output.all(self.public, materials).apply(_with_material))
        self.metadata = RotationMetadata(
            keyset=keyset.name, generation=keyset.active.id, environment=args.stack.environment,
            state=str(keyset.active.state), algorithm=keyset.algorithm, purpose=keyset.purpose,
            created_at=keyset.active.created_at, activated_at=keyset.active.activated_at,
        )

        self.secrets: dict[str, pulumi.CustomResource] = {}
        targets: dict[str, _Target] = {}
        for consumer in keyset.consumers:
            if isinstance(consumer, SecretConsumer):
                self.secrets[consumer.secret] = self._secret(name, consumer.secret, consumer.data)
                for ref in consumer.restart:
                    targets.setdefault(ref, _Target()).secrets[consumer.secret] = dict(consumer.data)
            else:
                self._deployment_consumer(name, consumer, targets.setdefault(consumer.deployment, _Target()))

        self.checksums: dict[str, pulumi.Output[str]] = {}
        self.patches: dict[str, pulumi.CustomResource] = {}
        for ref, target in targets.items():
            self.checksums[ref] = self.public.apply(lambda keys, t=target: _target_checksum(keys, t))
            self.patches[ref] = self._patch(name, ref, target, args.publications)

        self.register_outputs({
            "secrets": sorted(self.secrets),
            "checksums": self.checksums,
        })

    def _deployment_consumer(self, name: str, consumer: DeploymentConsumer, target: _Target) -> None:
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
            data=pulumi.Output.secret(self.full.apply(lambda keys: secret_data(keys, sources))),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data", "stringData"],
                                        deleted_with=self._deleted_with),
        )

    def _patch(self, name: str, ref: str, target: _Target, publications: Sequence[pulumi.Resource]):
        from pulumi_kubernetes.apps.v1 import DeploymentPatch

        namespace, object_name = split_ref(ref)
        template: dict[str, Any] = {
            "metadata": {"annotations": {checksum_annotation(self.keyset.name): self.checksums[ref]}},
        }
        containers = sorted(set(target.containers) | set(target.values) | set(target.secret_env))
        if containers:
            template["spec"] = {"containers": [
                {"name": c, "env": self.public.apply(lambda keys, c=c: _env(keys, target, c))}
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


def _identity(generation) -> pulumi.Output[DeliveredGeneration]:
    key, config = generation.key, generation.generation
    return pulumi.Output.all(
        generation.kid, key.key_id, key.key_arn, key.key_name, key.fingerprint
    ).apply(lambda v: DeliveredGeneration(config.id, str(config.state), *v))


def _with_material(values: list) -> DeliveredKeys:
    public, materials = values
    generations = [
        DeliveredGeneration(**{**g.__dict__, "material": materials.get(g.id)}) for g in public.generations
    ]
    return DeliveredKeys(public.keyset, generations)


def _env(keys: DeliveredKeys, target: _Target, container: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": var, "value": keys.value(src)} for var, src in target.containers.get(container, {}).items()
    ]
    env += [{"name": var, "value": value} for var, value in target.values.get(container, {}).items()]
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for var, (secret, key) in target.secret_env.get(container, {}).items()
    ]
    return sorted(env, key=lambda e: e["name"])


def _target_checksum(keys: DeliveredKeys, target: _Target) -> str:
    # Fixed ``values`` are left out: they are not key material or key ids, and a change of them
    # changes the pod template (and so rolls the pods) by itself.
    return checksum({
        "keyset": keys.keyset.name,
        "env": {c: {var: keys.descriptor(src) for var, src in env.items()}
                for c, env in target.containers.items()},
        "secrets": {ref: secret_descriptor(keys, sources) for ref, sources in target.secrets.items()},
    })
