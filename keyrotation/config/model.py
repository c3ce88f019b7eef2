"""The typed model of ``Pulumi.<stack>.yaml`` (docs/config.md): what each field may hold.

Types, ranges and defaults only; the rules between fields are :mod:`keyrotation.config.rules`,
the loading :mod:`keyrotation.config.loading`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .. import algorithms, targets, times
from .. import identifiers as names
from ..algorithms import Backend, Profile, Purpose
from ..documents import FORMATS, Format
from ..envelope import Envelope
from ..lifecycle import (
    RevokeReason,
    State,
    Timings,
    Trigger,
    active_generation,
    default_warn_days,
)

PUBLISH_FORMATS = FORMATS
PUBLISH_SCHEMES = targets.SCHEMES
EnvSource = Literal["kid", "keyId", "keyArn", "keyName", "algorithm", "signersAlgorithm", "generation"]
"""What a consumer's env var or Secret key holds of the active generation (``signersAlgorithm``:
the algorithm in the signers.json vocabulary, e.g. ``rsa-sha256``)."""
MaterialSource = Literal["material", "keyring"]
SecretSource = Literal[MaterialSource, EnvSource]
ENV_SOURCES: tuple[str, ...] = get_args(EnvSource)
SECRET_SOURCES: tuple[str, ...] = (*get_args(MaterialSource), *ENV_SOURCES)
KID_PLACEHOLDERS = ("keyset", "generation", "environment", "thumbprint")


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # `maxAgeDays:` with nothing after it is a null: say so instead of quietly using the default.
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None]
            if nulls:
                named = ", ".join(str(k) for k in nulls)
                raise ValueError(f"{named} is null; give a value or remove the key")
        return data


# Strict types: YAML and JSON give real booleans, numbers and strings; none stands for another
# (no `true` read as 1, no 1.5 as a day count, no "yes" as true, no number as a Unix time).
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]


def _time(value: Any) -> Any:
    try:
        return times.parse(value)
    except times.TimeError as error:
        raise ValueError(str(error)) from None


Time = Annotated[AwareDatetime, BeforeValidator(_time)]


def _key_size(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        shown = "" if isinstance(value, bool) or value is None else f" {times.shown(value)}"
        raise ValueError(f"must be 2048, 3072 or 4096, not {_kind(value)}{shown}")
    return value
"""An RFC 3339 time with a timezone, in :data:`keyrotation.times.EARLIEST`..``LATEST``."""

RANGES: dict[str, tuple[int, int]] = {
    "maxAgeDays": (1, 7300),
    "warnDays": (0, 7299),
    "publishMaxAgeSeconds": (0, 604_800),
    "clockSkewSeconds": (0, 3600),
    "tokenLifetimeSeconds": (0, 31_622_400),
    "deletionWindowDays": (7, 30),
}
"""Every timing's allowed range, inclusive (docs/config.md lists them with their reasons)."""


def _ranged(camel: str) -> Any:
    low, high = RANGES[camel]
    return Field(None, ge=low, le=high)


class TimingOverrides(_Model):
    max_age_days: Int | None = _ranged("maxAgeDays")
    warn_days: Int | None = _ranged("warnDays")
    publish_max_age_seconds: Int | None = _ranged("publishMaxAgeSeconds")
    clock_skew_seconds: Int | None = _ranged("clockSkewSeconds")
    token_lifetime_seconds: Int | None = _ranged("tokenLifetimeSeconds")
    deletion_window_days: Int | None = _ranged("deletionWindowDays")

    def over(self, base: Timings) -> Timings:
        values = {
            name: getattr(self, name)
            for name in TimingOverrides.model_fields
            if getattr(self, name) is not None
        }
        return Timings(**{**base.__dict__, **values})


class Step(_Model):
    """One later step of a generation's history: it entered ``state`` at ``at``."""

    state: State
    at: Time


class Rewrap(_Model):
    """Confirmation that every ciphertext (or stored MAC) under the generation was re-encrypted
    under a newer generation: when, and who confirmed it."""

    at: Time
    by: Text = Field(min_length=1, max_length=200)


class Generation(_Model):
    id: Text
    state: State
    created_at: Time
    activated_at: Time | None = None
    retiring_at: Time | None = None
    retired_at: Time | None = None
    revoked_at: Time | None = None
    revoke_reason: RevokeReason | None = None
    trigger: Trigger | None = None
    """Why it was made (seed 003): sets the minimum overlap of the generation it replaces."""
    destroyed_at: Time | None = None
    public_key_pem: Text | None = Field(None, max_length=16_384)
    history: list[Step] = Field(default_factory=list)
    """Steps after the first return to an earlier state (rollback, restore), appended in order."""
    rewrapped: list[Rewrap] = Field(default_factory=list)
    """encrypt/mac keysets with data at rest: confirmed re-encryptions, appended in order."""
    restored_key_id: Text | None = Field(None, max_length=512)
    """aws-kms/gcp-kms: the KMS key id (AWS) or CryptoKeyVersion name (GCP) that ``restore`` brought
    back from its deletion window; the program re-adopts that key instead of creating one."""

    def time(self, camel_name: str) -> datetime | None:
        at: datetime | None = getattr(self, _snake(camel_name))
        return at


class Publication(_Model):
    format: Format
    target: Text = Field(max_length=2048)
    envelope: Envelope | None = None
    """``dsse``: publish the document inside a DSSE envelope signed by the keyset's signing
    generations (keyrotation.envelope); unset: the document as it is."""

    @property
    def scheme(self) -> str:
        return self.target.split("://", 1)[0]

    @property
    def location(self) -> str:
        return self.target.split("://", 1)[1]


class DeploymentConsumer(_Model):
    deployment: Text
    env: dict[str, EnvSource] = Field(default_factory=dict)
    material: dict[str, MaterialSource] = Field(default_factory=dict)
    """Env vars that reference key material through a Secret this program owns (secretKeyRef)."""
    values: dict[str, Annotated[Text, Field(max_length=4096)]] = Field(default_factory=dict)
    """Fixed env values switched together with the key (``AUDIT_SIGNING_KEY_SOURCE: kms``)."""
    container: Text | None = None
    """The container whose env is patched; default: the Deployment's name."""


class SecretConsumer(_Model):
    secret: Text
    data: dict[str, SecretSource]
    restart: list[Text] = Field(default_factory=list)


def _consumer_kind(value: Any) -> str:
    # A consumer is a Secret when it says `secret:`; errors then speak of that shape only.
    if isinstance(value, dict):
        return "secret" if "secret" in value else "deployment"
    return "secret" if isinstance(value, SecretConsumer) else "deployment"


Consumer = Annotated[
    Annotated[DeploymentConsumer, Tag("deployment")] | Annotated[SecretConsumer, Tag("secret")],
    Discriminator(_consumer_kind),
]


class AwsOptions(_Model):
    region: Annotated[Text, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")] | None = None
    multi_region: Bool = False
    alias_prefix: Annotated[Text, Field(max_length=200)] = "alias/"


class GcpOptions(_Model):
    location: Annotated[Text, Field(pattern=r"^[a-z0-9-]{1,63}$")] | None = None
    key_ring: Text | None = None
    protection_level: Literal["SOFTWARE", "HSM"] = "SOFTWARE"
    project: Annotated[Text, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")] | None = None


class Pkcs11Options(_Model):
    """Where backend ``pkcs11`` generates keys: a PKCS#11 module and the label of a token in it.

    The PIN is never here: it is the secret config value ``key-rotation:pkcs11Pin`` or the
    ``PKCS11_PIN`` environment variable.
    """

    module: str = Field(min_length=1)
    """Path of the PKCS#11 library (``/usr/lib/softhsm/libsofthsm2.so``)."""
    token: str = Field(min_length=1, max_length=32)
    """The token's label (CKA_LABEL of the token, at most 32 characters)."""


PIN_KEY = "pkcs11Pin"
"""``key-rotation:pkcs11Pin``: the token PIN, only as a Pulumi secret."""


class Staging(_Model):
    """A production keyset's staging counterpart (seed 004: staging first, then production):
    autopilot takes a step here only after the same step has been live there for ``soakHours``."""

    stack: Annotated[Text, Field(min_length=1, max_length=64)]
    keyset: Annotated[Text, Field(min_length=1, max_length=64)]
    soak_hours: Annotated[Int, Field(ge=0, le=2160)] = 24


class AutopilotOptions(_Model):
    """``key-rotation:autopilot``: how `key-rotation autopilot` and its workflow treat this stack."""

    auto_merge: Bool | None = None
    """May its pull request merge once preview and policy pass; default: every environment but
    ``production``."""
    slack_hours: Annotated[Int, Field(ge=0, le=720)] = 24
    """The longest a change may take from autopilot's pull request to its deployment."""
    every_minutes: Annotated[Int, Field(ge=1, le=1440)] = 60
    """How often autopilot runs (the workflow's cron): a step is written one run early."""
    tidy_after_days: Annotated[Int, Field(ge=0, le=365)] = 7
    """A retire or destroy that is allowed rides with the keyset's next step, or goes alone this
    many days after it became allowed."""

    def may_auto_merge(self, environment: str) -> bool:
        return self.auto_merge if self.auto_merge is not None else environment != "production"


class KeySetConfig(TimingOverrides):
    """One keyset as written in the stack file, plus its name and resolved timings."""

    purpose: Purpose
    algorithm: Annotated[Text, Field(max_length=64)]
    key_size: Annotated[Literal[2048, 3072, 4096], BeforeValidator(_key_size)] | None = None
    backend: Backend = Backend.SOFTWARE
    profile: Profile | None = None
    """The keyset's signing profile (seed 002's ``signer.profiles.<name>``); default: the stack's."""
    pkcs11: Pkcs11Options | None = None
    """Backend ``pkcs11``: module and token; default: the stack's ``pkcs11``."""
    kid: Annotated[Text, Field(min_length=1, max_length=names.KID_MAX)] = "thumbprint"
    publish: list[Publication] = Field(default_factory=list)
    consumers: list[Consumer] = Field(default_factory=list)
    aws: AwsOptions = Field(default_factory=AwsOptions)
    gcp: GcpOptions = Field(default_factory=GcpOptions)
    data_at_rest: bool | None = None
    """encrypt/mac: ciphertexts (MACs) are stored and outlive the overlap; default: true for
    encrypt, false for mac; a sign keyset has none."""
    data_retention_seconds: int | None = Field(None, gt=0)
    """Stored ciphertext expires by itself this long after it was written (else: until rewrapped)."""
    destroy_after_days: Annotated[Int, Field(ge=0, le=3650)] | None = None
    """autopilot destroys a retired generation this long after its retirement was deployed
    (unset: never; destroy by hand)."""
    staging: Staging | None = None
    """autopilot: the staging counterpart whose steps this keyset's steps wait for."""
    generations: list[Generation]

    # Filled in by StackConfig: the map key and the stack defaults merged with the overrides.
    name: str = Field("", exclude=True)
    timings: Timings = Field(default_factory=Timings, exclude=True)

    @property
    def spec(self) -> algorithms.Algorithm:
        return algorithms.ALGORITHMS[self.algorithm]

    @property
    def rsa_key_size(self) -> int:
        return self.key_size or 2048

    @property
    def keeps_data(self) -> bool:
        """Retirement is gated on the data at rest (rewrap or retention), not on token lifetimes."""
        if self.data_at_rest is not None:
            return self.data_at_rest
        return self.purpose is Purpose.ENCRYPT

    @property
    def active(self) -> Generation:
        active = active_generation(self.generations)
        assert active is not None, "validated: exactly one active generation (keyrotation.view)"
        return active

    def generation(self, generation_id: str) -> Generation:
        return next(g for g in self.generations if g.id == generation_id)


class Alerts(_Model):
    """``kubernetes.alerts``: a PrometheusRule with the key-age alerts (``true`` = these defaults)."""

    namespace: Text | None = None
    """Where the PrometheusRule lives; default: ``kubernetes.namespace``."""
    labels: dict[str, Text] = Field(default_factory=dict)
    """Labels the Prometheus ``ruleSelector`` matches (e.g. ``release: kube-prometheus-stack``)."""


class Kubernetes(_Model):
    context: Annotated[Text, Field(min_length=1, max_length=253)] | None = None
    namespace: Annotated[Text, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")] = "default"
    alerts: Alerts | None = None

    @field_validator("alerts", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return {} if value is True else None if value is False else value


class TrustAnchor(_Model):
    """``key-rotation:trustAnchors[]``: one of seed 002's trust anchors, published as a document in
    the seed's shape (``keyrotation.documents.anchor``). It names keysets instead of copying kids:
    their generations' states decide which keys it allows, revokes and remembers, so one revocation
    in a keyset reaches every anchor that names it (seed 002's ``--anchor-id ALL``)."""

    trust_anchor_id: Annotated[Text, Field(min_length=1, max_length=64)]
    """Stable forever: verifiers look the anchor up by it (seed 002 uses UUIDs)."""
    purl_pattern: Annotated[Text, Field(min_length=1, max_length=255)]
    """The packages it covers: ``*`` or ``pkg:<type>/...``, optionally ending in ``*``."""
    keysets: Annotated[list[Text], Field(min_length=1, max_length=64)]
    """The sign keysets whose keys it lists."""
    allowed_predicate_types: Annotated[list[Annotated[Text, Field(min_length=1, max_length=255)]],
                                       Field(min_length=1, max_length=256)]
    policy_version: Annotated[Text, Field(min_length=1, max_length=64)]
    target: Text = Field(max_length=2048)
    """Where it is published (the targets of ``publish[].target``)."""

    @property
    def publication(self) -> Publication:
        """The anchor as a publication of format ``anchor`` (what the publishers take)."""
        return Publication(format=Format.ANCHOR, target=self.target)


class StackConfig(_Model):
    environment: Text
    profile: Profile = Profile.DEFAULT
    pkcs11: Pkcs11Options | None = None
    publish_root: Text = targets.DEFAULT_PUBLISH_ROOT
    """Where ``file://`` targets may write (relative to the project directory)."""
    defaults: TimingOverrides = Field(default_factory=TimingOverrides)
    keysets: dict[str, KeySetConfig]
    kubernetes: Kubernetes | None = None
    autopilot: AutopilotOptions = Field(default_factory=AutopilotOptions)
    trust_anchors: list[TrustAnchor] = Field(default_factory=list, max_length=256)
    """Seed 002's trust anchors over this stack's keysets (docs/config.md, "Trust anchors")."""

    stack_file: str = Field("Pulumi.<stack>.yaml", exclude=True)
    other: dict[str, Any] = Field(default_factory=dict, exclude=True)
    """Config of other namespaces (``aws:region``, ``gcp:project`` ...), as given."""

    def timings_of(self, keyset: KeySetConfig) -> Timings:
        timings = keyset.over(self.defaults.over(Timings()))
        if keyset.warn_days is None and self.defaults.warn_days is None:
            timings = replace(timings, warn_days=default_warn_days(timings.max_age_days))
        return timings

    def anchors_naming(self, keyset: str) -> list[TrustAnchor]:
        """The trust anchors that list ``keyset``'s keys."""
        return [a for a in self.trust_anchors if keyset in a.keysets]


@functools.lru_cache(maxsize=64)  # a handful of field names, asked 12 times per generation
def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    kinds: dict[type, str] = {dict: "a mapping", list: "a list", str: "the string"}
    return kinds.get(type(value), f"the {type(value).__name__}")
