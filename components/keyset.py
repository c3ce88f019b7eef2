"""The KeySet component: a keyset's generations, its documents and their publications."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import pulumi
from pydantic.alias_generators import to_camel

from components.backend import BackendArgs, KeyBackend, SharedResources, load_backend
from components.publication import Publication, PublicationArgs
from keyrotation import documents, envelope, keys, lifecycle, names
from keyrotation.algorithms import BACKENDS, Purpose
from keyrotation.config import DeploymentConsumer, Generation, KeySetConfig
from keyrotation.documents import KeyRecord
from keyrotation.identifiers import kid_needs_key
from keyrotation.view import KeysetView, view


@dataclass
class KeySetArgs:
    """What a keyset's resources need, and nothing of the rest of the stack."""

    keyset: KeySetConfig
    """The keyset as validated (its timings, profile and token resolved from the stack's)."""
    environment: str
    """The stack's environment: in kids, descriptions, tags and labels."""
    publish_root: str
    """Where ``file://`` documents may be written (the stack's ``publishRoot``)."""
    shared: SharedResources
    """Resources the stack's keysets share (GCP KeyRings); one per program run."""


@dataclass
class KeyGenerationArgs:
    """One generation, the keyset it belongs to, and the backend that holds its key."""

    keyset: KeySetConfig
    generation: Generation
    environment: str
    backend: KeyBackend
    timings: dict[str, Any]
    """The keyset's timings as the outputs carry them (:func:`wire_timings`), made once per keyset."""


class KeyGeneration(pulumi.ComponentResource):
    """One generation of a keyset: its key (in whatever backend) and its key id."""

    def __init__(self, name: str, args: KeyGenerationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(names.KEY_GENERATION_TYPE, name, None, opts)
        keyset, generation, timings = args.keyset, args.generation, args.timings
        self.generation = generation
        self.key = args.backend.generation_key(generation, name, self)
        if kid_needs_key(keyset.kid):
            # The kid is known once the key is (its RFC 7638 thumbprint): `sha256:{thumbprint}`.
            self.kid = self.key.thumbprint.apply(lambda t: keys.render_kid(
                keyset.kid, keyset=keyset.name, generation=generation.id, environment=args.environment,
                thumbprint=t))
        else:
            self.kid = pulumi.Output.from_input(keys.render_kid(
                keyset.kid, keyset=keyset.name, generation=generation.id, environment=args.environment
            ))
        # The generation's document record is built by its KeySet, in one step for all generations
        # (see KeySet._documents): an Output per generation here cost three Output steps each.
        self.register_outputs({
            names.GENERATION_KID: self.kid, "state": str(generation.state), "keyId": self.key.key_id,
            # What the policy pack judges the rotation by (policy/resources.py): the generation as
            # in the stack file, and the keyset timings its publish lead and overlap derive from.
            names.GENERATION_KEYSET: keyset.name, names.GENERATION_PURPOSE: keyset.purpose,
            names.GENERATION_LIFECYCLE: generation.model_dump(mode="json", by_alias=True,
                                                              exclude_defaults=True,
                                               exclude={"public_key_pem"}),
            names.GENERATION_TIMINGS: timings,
        })


def wire_timings(keyset: KeySetConfig) -> dict:
    """The keyset's timings as the KeyGeneration outputs carry them (camelCase)."""
    return {to_camel(k): v for k, v in asdict(keyset.timings).items()}


def _records(keyset: KeySetConfig, keys: KeysetView, values: list) -> list[KeyRecord]:
    """The generations' document records; ``values`` are their (kid, public PEM) pairs, flattened,
    in generation order."""
    # Symmetric keys have no public key: "" from a software key, None from the others.
    return [KeyRecord(entry, kid=values[2 * i], algorithm=keyset.algorithm,
                      public_pem=values[2 * i + 1] or None)
            for i, entry in enumerate(keys.entries)]


def _documents(keyset: KeySetConfig, records: list[KeyRecord]) -> dict[str, tuple[str, list]]:
    """Per publish target, the document's canonical text and the kids it publishes."""
    built: dict[str, Any] = {}
    out = {}
    for pub in keyset.publish:
        if pub.format not in built:
            built[pub.format] = documents.build(pub.format, records, keyset)
        document = built[pub.format]
        out[pub.target] = (documents.render(document), documents.kids_in(pub.format, document))
    return out


class KeySet(pulumi.ComponentResource):
    """A keyset: one KeyGeneration per generation, and one Publication per publish target."""

    def __init__(self, name: str, args: KeySetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(names.KEYSET_TYPE, name, None, opts)
        keyset = args.keyset
        self.config = keyset
        self.publish_root = args.publish_root
        backend = load_backend(keyset.backend)(BackendArgs(keyset, args.environment, args.shared), self)
        timings = wire_timings(keyset)
        self.generations = {
            g.id: KeyGeneration(f"{name}-{g.id}",
                                KeyGenerationArgs(keyset, g, args.environment, backend, timings),
                                pulumi.ResourceOptions(parent=self))
            for g in keyset.generations
        }
        backend.finish({gid: gen.key for gid, gen in self.generations.items()})
        self.view = view(keyset)  # the keyset's one domain view: the active pointer, what is published
        self.active = self.generations[self.view.primary]
        self.active_kid = self.active.kid
        # One Output step for the whole keyset: every generation's kid and public key in, every
        # document's text and kids out. Registration cost is the Output graph (docs/design.md).
        self.records: pulumi.Output[list[KeyRecord]] = pulumi.Output.all(
            *(v for gen in self.generations.values() for v in (gen.kid, gen.key.public_pem))
        ).apply(lambda values: _records(keyset, self.view, values))
        """Every generation's document record: the trust anchors naming the keyset read them."""
        published = self.records.apply(lambda records: _documents(keyset, records))
        self.publications = {
            pub.target: self._publication(name, pub, published) for pub in keyset.publish
        }
        self.delivery = None
        if keyset.consumers:
            # Imported here: only stacks that deliver to Kubernetes load pulumi_kubernetes.
            from components.delivery import KeyDelivery, KeyDeliveryArgs

            self.delivery = KeyDelivery(
                f"{name}-delivery",
                KeyDeliveryArgs(environment=args.environment, keyset=keyset, keys=self.view,
                                generations=self.generations,
                                publications=list(self.publications.values()), deleted_with=self),
                pulumi.ResourceOptions(parent=self),
            )
        self._warn_gaps(name, keyset)
        # Finished by finish(), once the trust anchors that list its keys are registered.

    def finish(self, anchors: dict[str, tuple[str, pulumi.Resource]] | None = None) -> None:
        """Record the switches and register the outputs, after every document listing the keyset's
        keys: its own and ``anchors`` (per target, the format and publication of each trust anchor
        naming it, components/trust_anchors.py), whose first-published times count for the publish
        lead like its own documents'."""
        keyset, name = self.config, self.config.name
        self.anchor_publications = dict(anchors or {})
        # The deployment record of each switch, written after the publications and deliveries
        # have switched (depends_on): the overlap counts from it (components/switches.py).
        from components.switches import SwitchRecord, SwitchRecordArgs

        after = [*self.publications.values(), *(p for _, p in self.anchor_publications.values()),
                 *([self.delivery] if self.delivery is not None else [])]
        self.switches = SwitchRecord(
            f"{name}-switches",
            SwitchRecordArgs(
                keyset=name, states={g.id: str(g.state) for g in keyset.generations},
                targets=[p.target for p in keyset.publish] + list(self.anchor_publications) + [
                    c.deployment if isinstance(c, DeploymentConsumer) else c.secret
                    for c in keyset.consumers],
            ),
            pulumi.ResourceOptions(parent=self, depends_on=after, deleted_with=self),
        )
        self.outputs = self.summary()
        self.register_outputs(self.outputs)

    def _publication(self, name: str, pub, published: pulumi.Output[dict]) -> pulumi.Resource:
        text = published.apply(lambda docs: docs[pub.target][0])
        # Stable under reordering of the publish list: named by format and target.
        suffix = hashlib.sha256(pub.target.encode()).hexdigest()[:8]
        if pub.scheme == "configmap":
            # In-cluster documents are ConfigMaps on the stack's Kubernetes provider.
            from components.config_map import document_config_map

            return document_config_map(
                f"{name}-{pub.format}-{suffix}", pub, text, name,
                pulumi.ResourceOptions(parent=self, deleted_with=self),
            )
        return Publication(
            f"{name}-{pub.format}-{suffix}",
            PublicationArgs(
                target=pub.target,
                format=pub.format,
                content=text,
                kids=published.apply(lambda docs: docs[pub.target][1]),
                cache_control=documents.cache_control(pub.format,
                                                      self.config.timings.publish_max_age_seconds),
                content_type=documents.content_type(pub.format),
                keyset=name,
                publish_root=self.publish_root if pub.scheme == "file" else None,
                **self._signing(self._signed_kind(pub)),
            ),
            # Removing a publish target deletes its document; a `pulumi destroy` does not. Without
            # `--skip-preview` the protected keys stop a destroy before any step, but with it (and in
            # the Automation API's destroy()) the engine deletes every unprotected resource first:
            # the published documents would go while the keys stay. deletedWith the KeySet makes
            # the engine drop them from the state without deleting what verifiers read.
            pulumi.ResourceOptions(parent=self, deleted_with=self),
        )

    @staticmethod
    def _signed_kind(pub) -> str | None:
        """How the publisher signs ``pub`` (components.signing.SIGNED_KINDS); None: not at all."""
        from components.signing import DSSE, JWS_LINES

        if pub.format == documents.Format.REVOCATION_LIST:
            return JWS_LINES
        return DSSE if pub.envelope is not None else None

    def _signing(self, kind: str | None) -> dict[str, Any]:
        """A signed publication's signers and, for software keys, their private keys as a secret the
        publisher signs with (components/signing.py); nothing for an unsigned one (``kind`` None).
        A DSSE envelope is signed by the active and the retiring generations (active first); a
        revocation list's lines by the active one only (seed 003 signs revocations with the new key)."""
        from components.signing import JWS_LINES, Signer

        if kind is None:
            return {}
        keyset = self.config
        ids = [self.view.primary] if kind == JWS_LINES else envelope.signing_generations(
            (g.id, g.state) for g in keyset.generations)
        signing = [self.generations[gid] for gid in ids]
        region = (keyset.aws.region or pulumi.Config("aws").get("region")) if keyset.backend == "aws-kms" \
            else None
        pkcs11 = keyset.pkcs11 if keyset.backend == "pkcs11" else None
        # A KMS signs with the generation's key_id, what consumers are told: the AWS key id, the
        # Cloud KMS CryptoKeyVersion name.
        kms = BACKENDS[keyset.backend].kms

        def signer(kid: str, key_id: str | None, gen: KeyGeneration) -> dict[str, Any]:
            return Signer(
                keyid=kid, keyset=keyset.name, generation=gen.generation.id, algorithm=keyset.algorithm,
                backend=str(keyset.backend), key_id=key_id if kms else None,
                region=region, module=pkcs11.module if pkcs11 else None,
                token=pkcs11.token if pkcs11 else None,
            ).props()

        signers = pulumi.Output.all(*(v for gen in signing for v in (gen.kid, gen.key.key_id))).apply(
            lambda values: [signer(values[2 * i], values[2 * i + 1], gen) for i, gen in enumerate(signing)]
        )
        out: dict[str, Any] = {"envelope": kind, "signers": signers}
        if keyset.backend == "software":
            materials = [gen.key.material for gen in signing]
            assert all(m is not None for m in materials), "software keys carry their material"
            out["signing_keys"] = pulumi.Output.all(
                *(v for gen in signing for v in (gen.kid, gen.key.material))
            ).apply(lambda values: {values[i]: values[i + 1] for i in range(0, len(values), 2)})
        return out

    @staticmethod
    def _warn_gaps(name: str, keyset: KeySetConfig) -> None:
        for gap in lifecycle.keyset_gaps(keyset):
            if not gap.intended:
                pulumi.log.warn(gap.describe())

    def summary(self) -> dict:
        """The keyset's stack output: what another service needs to consume it."""
        keyset = self.config
        return {
            "activeKid": self.active_kid,
            "activeGeneration": self.view.primary,
            "activeKeyId": self.active.key.key_id,
            **({"activeKeyArn": self.active.key.key_arn} if self.active.key.key_arn is not None else {}),
            **({"activeKeyName": self.active.key.key_name} if self.active.key.key_name is not None else {}),
            **({"consumerEnv": consumer_env(keyset, self.active_kid, self.active.key.key_id)}
               if keyset.purpose in (Purpose.SIGN, Purpose.MAC) else {}),
            "algorithm": keyset.algorithm,
            "profile": keyset.profile,
            "backend": keyset.backend,
            "purpose": keyset.purpose,
            "generations": [
                {"id": gid, "kid": gen.kid, "state": str(gen.generation.state), "keyId": gen.key.key_id}
                for gid, gen in self.generations.items()
            ],
            "deployments": self.switches.switches,
            "documents": {
                # A ConfigMap keeps no publication record: the publish lead counts from createdAt.
                target: {"format": str(fmt), "target": target,
                         "firstPublished": getattr(pub, "first_published", None)}
                for target, (fmt, pub) in (
                    *((p.target, (p.format, self.publications[p.target])) for p in keyset.publish),
                    *self.anchor_publications.items(),
                )
            },
        }


def consumer_env(keyset: KeySetConfig, kid: pulumi.Output[str], key_id: pulumi.Output[str]) -> dict:
    """The seed services' environment for the active generation, under their own names.

    The gateway reads ``SIGNING_KEY_ID`` (runbook 000); the agent manager the ``AUDIT_*`` variables
    (runbook 001), whose algorithm is the ``signers.json`` vocabulary (``rsa-sha256``...).
    """
    env: dict = {
        "SIGNING_KEY_ID": kid,
        "AUDIT_SIGNER_KID": kid,
        "AUDIT_SIGNING_ALG": keyset.spec.signers_name,
    }
    if BACKENDS[keyset.backend].kms:
        env["AUDIT_SIGNING_KEY_SOURCE"] = "kms"
        env["AUDIT_SIGNING_KMS_KEY_ID"] = key_id
    return env
