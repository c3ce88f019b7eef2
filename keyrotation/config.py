"""The typed model of ``Pulumi.<stack>.yaml`` (``../shared/spec/CONFIG.md``) and its validation.

Every problem is reported with the stack file, keyset, generation and field it concerns, and all
problems are reported together, before any resource is registered.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

from . import algorithms, metadata
from .lifecycle import (
    FORBIDDEN_TIMES,
    REQUIRED_TIMES,
    STATE_TIME,
    TIME_ORDER,
    State,
    Timings,
    allowed,
    default_warn_days,
    first_pass,
)
from .names import PROJECT
from .times import format_time

PUBLISH_FORMATS = ("jwks", "signers", "trust-anchor", "key-history")
PUBLISH_SCHEMES = ("file", "s3", "gs", "configmap")
EnvSource = Literal["kid", "keyId", "keyArn", "keyName", "algorithm", "signersAlgorithm", "generation"]
"""What a consumer's env var or Secret key holds of the active generation (``signersAlgorithm``:
the algorithm in the signers.json vocabulary, e.g. ``rsa-sha256``)."""
MaterialSource = Literal["material", "keyring"]
SecretSource = Literal[MaterialSource, EnvSource]
ENV_SOURCES: tuple[str, ...] = get_args(EnvSource)
SECRET_SOURCES: tuple[str, ...] = (*get_args(MaterialSource), *ENV_SOURCES)
KID_PLACEHOLDERS = ("keyset", "generation", "environment")


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class TimingOverrides(_Model):
    max_age_days: int | None = Field(None, gt=0)
    warn_days: int | None = Field(None, ge=0)
    publish_max_age_seconds: int | None = Field(None, ge=0)
    clock_skew_seconds: int | None = Field(None, ge=0)
    token_lifetime_seconds: int | None = Field(None, ge=0)
    deletion_window_days: int | None = Field(None, ge=7, le=30)

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
    at: AwareDatetime


class Rewrap(_Model):
    """Confirmation that every ciphertext (or stored MAC) under the generation was re-encrypted
    under a newer generation: when, and who confirmed it."""

    at: AwareDatetime
    by: str = Field(min_length=1, max_length=200)


class Generation(_Model):
    id: str = Field(min_length=1, max_length=63)
    state: State
    created_at: AwareDatetime
    activated_at: AwareDatetime | None = None
    retiring_at: AwareDatetime | None = None
    retired_at: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None
    revoke_reason: Literal["compromise", "personnel", "hardware", "superseded"] | None = None
    destroyed_at: AwareDatetime | None = None
    public_key_pem: str | None = None
    history: list[Step] = Field(default_factory=list)
    """Steps after the first return to an earlier state (rollback, restore), appended in order."""
    rewrapped: list[Rewrap] = Field(default_factory=list)
    """encrypt/mac keysets with data at rest: confirmed re-encryptions, appended in order."""

    def time(self, camel_name: str) -> datetime | None:
        return getattr(self, _snake(camel_name))


class Publication(_Model):
    format: Literal["jwks", "signers", "trust-anchor", "key-history"]
    target: str

    @property
    def scheme(self) -> str:
        return self.target.split("://", 1)[0]

    @property
    def location(self) -> str:
        return self.target.split("://", 1)[1]


class DeploymentConsumer(_Model):
    deployment: str
    env: dict[str, EnvSource] = Field(default_factory=dict)
    material: dict[str, MaterialSource] = Field(default_factory=dict)
    """Env vars that reference key material through a Secret this program owns (secretKeyRef)."""
    values: dict[str, str] = Field(default_factory=dict)
    """Fixed env values switched together with the key (``AUDIT_SIGNING_KEY_SOURCE: kms``)."""
    container: str | None = None
    """The container whose env is patched; default: the Deployment's name."""


class SecretConsumer(_Model):
    secret: str
    data: dict[str, SecretSource]
    restart: list[str] = Field(default_factory=list)


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
    region: str | None = None
    multi_region: bool = False
    alias_prefix: str = "alias/"


class GcpOptions(_Model):
    location: str | None = None
    key_ring: str | None = None
    protection_level: Literal["SOFTWARE", "HSM"] = "SOFTWARE"
    project: str | None = None


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


class KeySet(TimingOverrides):
    """One keyset as written in the stack file, plus its name and resolved timings."""

    purpose: Literal["sign", "encrypt", "mac"]
    algorithm: str
    key_size: Literal[2048, 3072, 4096] | None = None
    backend: Literal["software", "aws-kms", "gcp-kms", "external", "pkcs11"] = "software"
    profile: algorithms.Profile | None = None
    """The keyset's signing profile (seed 002's ``signer.profiles.<name>``); default: the stack's."""
    pkcs11: Pkcs11Options | None = None
    """Backend ``pkcs11``: module and token; default: the stack's ``pkcs11``."""
    kid: str = "thumbprint"
    publish: list[Publication] = Field(default_factory=list)
    consumers: list[Consumer] = Field(default_factory=list)
    aws: AwsOptions = Field(default_factory=AwsOptions)
    gcp: GcpOptions = Field(default_factory=GcpOptions)
    data_at_rest: bool | None = None
    """encrypt/mac: ciphertexts (MACs) are stored and outlive the overlap; default: true for
    encrypt, false for mac; a sign keyset has none."""
    data_retention_seconds: int | None = Field(None, gt=0)
    """Stored ciphertext expires by itself this long after it was written (else: until rewrapped)."""
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
        return self.purpose == "encrypt"

    @property
    def active(self) -> Generation:
        return next(g for g in self.generations if g.state is State.ACTIVE)

    def generation(self, generation_id: str) -> Generation:
        return next(g for g in self.generations if g.id == generation_id)


class Alerts(_Model):
    """``kubernetes.alerts``: a PrometheusRule with the key-age alerts (``true`` = these defaults)."""

    namespace: str | None = None
    """Where the PrometheusRule lives; default: ``kubernetes.namespace``."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels the Prometheus ``ruleSelector`` matches (e.g. ``release: kube-prometheus-stack``)."""


class Kubernetes(_Model):
    context: str | None = None
    namespace: str = "default"
    alerts: Alerts | None = None

    @field_validator("alerts", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return {} if value is True else None if value is False else value


class StackConfig(_Model):
    environment: str
    profile: algorithms.Profile = "default"
    pkcs11: Pkcs11Options | None = None
    defaults: TimingOverrides = Field(default_factory=TimingOverrides)
    keysets: dict[str, KeySet]
    kubernetes: Kubernetes | None = None

    stack_file: str = Field("Pulumi.<stack>.yaml", exclude=True)
    other: dict[str, Any] = Field(default_factory=dict, exclude=True)
    """Config of other namespaces (``aws:region``, ``gcp:project`` ...), as given."""

    def timings_of(self, keyset: KeySet) -> Timings:
        timings = keyset.over(self.defaults.over(Timings()))
        if keyset.warn_days is None and self.defaults.warn_days is None:
            timings = replace(timings, warn_days=default_warn_days(timings.max_age_days))
        return timings


# ---------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Problem:
    message: str
    keyset: str | None = None
    generation: str | None = None
    field: str | None = None

    def where(self) -> str:
        parts = []
        if self.keyset is not None:
            parts.append(f"keyset '{self.keyset}'")
        if self.generation is not None:
            parts.append(f"generation '{self.generation}'")
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)


class ConfigError(ValueError):
    """The stack file is invalid; ``problems`` lists every reason."""

    def __init__(self, stack_file: str, problems: list[Problem]):
        self.stack_file = stack_file
        self.problems = problems
        lines = [f"{stack_file}: invalid {PROJECT} configuration ({len(problems)} problem(s)):"]
        for p in problems:
            where = p.where()
            lines.append(f"  - {where + ': ' if where else ''}{p.message}")
        super().__init__("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Loading


def load_stack_file(path: str | Path) -> StackConfig:
    """Read and validate ``Pulumi.<stack>.yaml`` from disk (the commands and tests use this)."""
    from ruamel.yaml import YAML

    path = Path(path)
    document = YAML(typ="safe").load(path.read_text()) or {}
    return from_config_map(document.get("config") or {}, stack_file=path.name, from_file=True)


def from_config_map(config: Mapping[str, Any], *, stack_file: str, from_file: bool = False) -> StackConfig:
    """Validate a stack's ``config:`` map (keys such as ``key-rotation:keysets``).

    Values may be the decoded objects (from the YAML file) or JSON strings (as the Pulumi engine
    hands structured config to a program).
    """
    ours: dict[str, Any] = {}
    other: dict[str, Any] = {}
    pin_problem = None
    for key, value in config.items():
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and name == PIN_KEY:
            # The PIN is read where it is used (components/pkcs11.py), never kept in the model. In
            # a stack file it must be a Pulumi secret ({secure: ...}); the engine hands the program
            # its decrypted value, which is a string here and fine.
            if from_file and not (isinstance(value, dict) and set(value) == {"secure"}):
                pin_problem = Problem(
                    "is in plain text; set it as a secret: pulumi config set --secret"
                    f" {PROJECT}:{PIN_KEY} (or give PKCS11_PIN in the environment)", field=PIN_KEY,
                )
        elif namespace == PROJECT and name:
            ours[name] = _decode(value)
        else:
            other[key] = value
    if pin_problem is not None:
        try:
            parse(ours, stack_file=stack_file, other=other)
        except ConfigError as error:
            raise ConfigError(stack_file, [pin_problem, *error.problems]) from None
        raise ConfigError(stack_file, [pin_problem])
    return parse(ours, stack_file=stack_file, other=other)


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def parse(data: Mapping[str, Any], *, stack_file: str, other: Mapping[str, Any] | None = None) -> StackConfig:
    data = _stringify_times(dict(data))
    try:
        stack = StackConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(stack_file, [_problem(e, data) for e in error.errors()]) from None
    keysets = {
        name: keyset.model_copy(update={
            "name": name, "timings": stack.timings_of(keyset),
            # Resolved once: every reader sees the keyset's own profile and token.
            "profile": keyset.profile or stack.profile,
            "pkcs11": keyset.pkcs11 or (stack.pkcs11 if keyset.backend == "pkcs11" else None),
        })
        for name, keyset in stack.keysets.items()
    }
    stack = stack.model_copy(
        update={"keysets": keysets, "stack_file": stack_file, "other": dict(other or {})}
    )
    problems = validate(stack)
    if problems:
        raise ConfigError(stack_file, problems)
    return stack


def _stringify_times(value: Any) -> Any:
    # YAML turns unquoted timestamps into datetimes; keep the text form so naive ones are caught.
    if isinstance(value, dict):
        return {k: _stringify_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_times(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _problem(error: Mapping[str, Any], data: Mapping[str, Any]) -> Problem:
    loc = list(error["loc"])
    keyset = generation = None
    if len(loc) >= 2 and loc[0] == "keysets":
        keyset = str(loc[1])
        loc = loc[2:]
        if len(loc) >= 2 and loc[0] == "generations" and isinstance(loc[1], int):
            generation = _generation_id(data, keyset, loc[1])
            loc = loc[2:]
    # pydantic appends the tried union member or literal to the location: keep the user's path.
    loc = [part for part in loc if not (isinstance(part, str) and part in _UNION_TAGS)]
    field = ".".join(str(p) for p in loc) or None
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1] if loc else ''}'"
    elif error["type"] == "missing":
        message = "is required"
    elif error["type"] == "timezone_aware":
        message = "needs a timezone, e.g. 2026-11-23T09:00:00Z (RFC 3339)"
    elif error["type"] in ("datetime_from_date_parsing", "datetime_parsing", "datetime_type"):
        message = f"is not an RFC 3339 time: {error.get('input')!r}"
    elif error["type"] in ("literal_error", "enum"):
        message = f"{error.get('input')!r} is not allowed: {error['msg'].removeprefix('Input should be ')}"
    return Problem(message, keyset, generation, field)


_UNION_TAGS = {"DeploymentConsumer", "SecretConsumer", "deployment", "secret"}


def _generation_id(data: Mapping[str, Any], keyset: str, index: int) -> str:
    try:
        gid = data["keysets"][keyset]["generations"][index].get("id")
    except (KeyError, IndexError, TypeError, AttributeError):
        gid = None
    return str(gid) if gid is not None else f"#{index + 1}"


@functools.lru_cache(maxsize=64)  # a handful of field names, asked 12 times per generation
def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)


# ---------------------------------------------------------------------------------------------
# Validation beyond types: the rules of the contract


def validate(stack: StackConfig) -> list[Problem]:
    problems: list[Problem] = []
    for name, keyset in stack.keysets.items():
        problems += _validate_keyset(stack, name, keyset)
    return problems + _validate_delivery(stack)


def _validate_keyset(stack: StackConfig, name: str, ks: KeySet) -> list[Problem]:
    out: list[Problem] = []

    def problem(message: str, field: str | None = None, generation: str | None = None) -> None:
        out.append(Problem(message, name, generation, field))

    spec = algorithms.ALGORITHMS.get(ks.algorithm)
    if spec is None:
        problem(
            f"unknown algorithm {ks.algorithm!r}; use one of {', '.join(algorithms.ALGORITHMS)}",
            "algorithm",
        )
        return out + _validate_generations(stack, name, ks, None)
    if spec.purpose != ks.purpose:
        fitting = [a.name for a in algorithms.ALGORITHMS.values() if a.purpose == ks.purpose]
        problem(
            f"{ks.algorithm} is a '{spec.purpose}' algorithm but the keyset's purpose is"
            f" '{ks.purpose}'; use one of {', '.join(fitting)}",
            "algorithm",
        )
    if ks.key_size is not None and not spec.is_rsa:
        problem(f"keySize applies to RSA algorithms (RS*, PS*) only, not {ks.algorithm}", "keySize")
    profile = ks.profile or stack.profile
    if not spec.allowed_in(profile):
        problem(
            f"{ks.algorithm} is not allowed by profile '{profile}'"
            f" ({algorithms.PROFILE_RULES[profile]}); use {', '.join(algorithms.allowed_in(profile))}",
            "algorithm",
        )
    out += _validate_backend(stack, name, ks, spec)
    out += _validate_kid(name, ks)
    out += _validate_publish(stack, name, ks, spec)
    out += _validate_consumers(stack, name, ks)
    if ks.purpose == "sign":
        for field in ("dataAtRest", "dataRetentionSeconds"):
            if getattr(ks, _snake(field)) is not None:
                problem(f"a sign keyset keeps no data at rest (signatures expire with tokenLifetimeSeconds);"
                        f" {field} is for encrypt and mac keysets", field)
    t = ks.timings
    if t.warn_days >= t.max_age_days:
        problem(f"warnDays ({t.warn_days}) must be less than maxAgeDays ({t.max_age_days})", "warnDays")
    return out + _validate_generations(stack, name, ks, spec)


def _validate_backend(stack: StackConfig, name: str, ks: KeySet, spec: algorithms.Algorithm) -> list[Problem]:
    out: list[Problem] = []
    if ks.backend in ("software", "pkcs11", "aws-kms") and not spec.cryptography_generates:
        out.append(Problem(
            f"{ks.algorithm} keys are held in an HSM and declared by their public key: use backend"
            " external with each generation's publicKeyPem", name, None, "backend",
        ))
    elif ks.backend == "pkcs11" and spec.pkcs11_key_type is None:
        fitting = [a.name for a in algorithms.ALGORITHMS.values() if a.pkcs11_key_type]
        out.append(Problem(
            f"backend pkcs11 generates {', '.join(fitting)} keys in a token, not {ks.algorithm};"
            " declare a key made elsewhere with backend external", name, None, "backend",
        ))
    elif ks.backend == "aws-kms" and spec.aws_key_spec is None:
        out.append(Problem(f"aws-kms has no key spec for {ks.algorithm}", name, None, "algorithm"))
    if ks.backend == "pkcs11" and ks.pkcs11 is None and stack.pkcs11 is None:
        out.append(Problem(
            "is required for backend pkcs11 (module and token, here or for the whole stack)",
            name, None, "pkcs11",
        ))
    if ks.backend != "pkcs11" and ks.pkcs11 is not None:
        out.append(Problem(f"only backend pkcs11 takes pkcs11 (this keyset is {ks.backend})", name, None,
                           "pkcs11"))
    if ks.backend == "gcp-kms":
        if spec.gcp_algorithm(ks.rsa_key_size) is None:
            size = f" with keySize {ks.rsa_key_size}" if spec.is_rsa else ""
            out.append(Problem(f"gcp-kms cannot hold {ks.algorithm}{size}: {spec.gcp_rule}", name, None, "algorithm"))
        if spec.gcp_hsm_only and ks.gcp.protection_level != "HSM":
            out.append(Problem(
                f"gcp-kms cannot hold {ks.algorithm} at protectionLevel {ks.gcp.protection_level}:"
                f" {spec.gcp_rule}; set gcp.protectionLevel: HSM",
                name, None, "gcp.protectionLevel",
            ))
        for key in ("location", "keyRing"):
            if getattr(ks.gcp, _snake(key)) is None:
                out.append(Problem("is required for backend gcp-kms", name, None, f"gcp.{key}"))
        if ks.gcp.project is None and not stack.other.get("gcp:project"):
            out.append(Problem(
                "is required for backend gcp-kms (or set the stack's gcp:project)", name, None, "gcp.project"
            ))
        if ks.gcp.key_ring is not None and not _GCP_RESOURCE_ID.fullmatch(ks.gcp.key_ring):
            out.append(Problem(
                f"{ks.gcp.key_ring!r} is not a Cloud KMS KeyRing id: 1 to 63 letters, digits, '_' and '-'",
                name, None, "gcp.keyRing",
            ))
        # The keyset names the CryptoKey, and keyset, generation and environment become the
        # CryptoKey's labels (keyrotation.metadata), which GCP restricts further than ids.
        label = f"backend gcp-kms writes it into the CryptoKey's labels ({metadata.GCP_PREFIX}*)"
        for value, generation, field in (
            (name, None, None),
            (stack.environment, None, "environment"),
            *((g.id, g.id, "id") for g in ks.generations),
        ):
            why = metadata.gcp_label_problem(value)
            if why:
                out.append(Problem(f"{why}; {label}", name, generation, field))
    if ks.backend == "aws-kms":
        if ks.aws.region is None and not stack.other.get("aws:region"):
            out.append(Problem(
                "is required for backend aws-kms (or set the stack's aws:region)", name, None, "aws.region"
            ))
        low, high = algorithms.AWS_ROTATION_PERIOD_DAYS
        if spec.aws_key_spec == "SYMMETRIC_DEFAULT" and ks.timings.max_age_days < low:
            out.append(Problem(
                f"{ks.timings.max_age_days} days is shorter than AWS KMS can rotate a symmetric key"
                f" (RotationPeriodInDays {low}..{high}), and AWS's native rotation must not outlast"
                f" maxAgeDays; use maxAgeDays >= {low} for backend aws-kms",
                name, None, "maxAgeDays",
            ))
        prefix = ks.aws.alias_prefix
        aliases = [(f"{prefix}{name}", None, "aws.aliasPrefix")]
        aliases += [(f"{prefix}{name}-{g.id}", g.id, "id") for g in ks.generations]
        for alias, generation, field in aliases:
            if not _AWS_ALIAS.fullmatch(alias) or alias.startswith("alias/aws/"):
                out.append(Problem(
                    f"alias {alias!r} is not an AWS KMS alias name: 'alias/' then letters, digits, '/',"
                    " '_' and '-' (at most 256 characters, not under alias/aws/)",
                    name, generation, field,
                ))
    if ks.backend == "external" and spec.is_symmetric:
        out.append(Problem(
            f"backend external holds only public keys; {ks.algorithm} is symmetric", name, None, "backend"
        ))
    return out


_GCP_RESOURCE_ID = re.compile(r"[a-zA-Z0-9_-]{1,63}")
_AWS_ALIAS = re.compile(r"alias/[a-zA-Z0-9/_-]{1,250}")


def _validate_kid(name: str, ks: KeySet) -> list[Problem]:
    if ks.kid == "thumbprint":
        return []
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(ks.kid) if f is not None}
    except ValueError as error:
        return [Problem(f"invalid kid template {ks.kid!r}: {error}", name, None, "kid")]
    unknown = fields - set(KID_PLACEHOLDERS)
    if unknown:
        return [Problem(
            f"kid template {ks.kid!r} uses unknown placeholder(s) {', '.join(sorted(unknown))};"
            f" allowed: {', '.join('{' + p + '}' for p in KID_PLACEHOLDERS)} or 'thumbprint'",
            name, None, "kid",
        )]
    if "generation" not in fields and len(ks.generations) > 1:
        return [Problem(
            f"kid template {ks.kid!r} gives every generation the same kid; include {{generation}}",
            name, None, "kid",
        )]
    return []


def _validate_publish(stack: StackConfig, name: str, ks: KeySet, spec: algorithms.Algorithm) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for i, pub in enumerate(ks.publish):
        field = f"publish[{i}]"
        if pub.format != "key-history" and not spec.publishes_public_key:
            out.append(Problem(
                f"a {ks.purpose} keyset has no public key to publish; only 'key-history' is allowed,"
                f" not '{pub.format}'", name, None, f"{field}.format",
            ))
        elif pub.format == "jwks" and not spec.has_jwk:
            out.append(Problem(
                f"JOSE defines no JWK key type for {ks.algorithm}: a JWKS cannot carry it; publish"
                " signers, trust-anchor or key-history (they carry the SPKI)", name, None, f"{field}.format",
            ))
        scheme, sep, rest = pub.target.partition("://")
        if not sep or scheme not in PUBLISH_SCHEMES or not rest:
            out.append(Problem(
                f"target {pub.target!r} must be file://path, s3://bucket/key, gs://bucket/object"
                " or configmap://namespace/name", name, None, f"{field}.target",
            ))
        elif scheme in ("s3", "gs", "configmap") and "/" not in rest.strip("/"):
            out.append(Problem(
                f"target {pub.target!r} needs both a {'namespace' if scheme == 'configmap' else 'bucket'}"
                " and a name", name, None, f"{field}.target",
            ))
        elif scheme == "configmap" and stack.kubernetes is None:
            out.append(Problem(
                "a configmap:// target needs the stack's kubernetes.context", name, None, f"{field}.target"
            ))
        if pub.target in seen:
            out.append(Problem(f"target {pub.target!r} is listed twice", name, None, f"{field}.target"))
        seen.add(pub.target)
    return out


def _validate_consumers(stack: StackConfig, name: str, ks: KeySet) -> list[Problem]:
    out: list[Problem] = []
    for i, consumer in enumerate(ks.consumers):
        field = f"consumers[{i}]"
        refs = (
            [consumer.deployment] if isinstance(consumer, DeploymentConsumer)
            else [consumer.secret, *consumer.restart]
        )
        for ref in refs:
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?", ref):
                out.append(Problem(f"{ref!r} must be namespace/name (lowercase DNS names)", name, None, field))
        if stack.kubernetes is None:
            out.append(Problem("consumers need the stack's kubernetes.context", name, None, field))
        sources = (
            list(consumer.env.values()) + list(consumer.material.values())
            if isinstance(consumer, DeploymentConsumer) else list(consumer.data.values())
        )
        if ("material" in sources or "keyring" in sources) and ks.backend not in ("software",):
            out.append(Problem(
                f"key material cannot be delivered from backend {ks.backend}: its private key never"
                " leaves the KMS/HSM; deliver kid/keyId/keyArn/keyName instead", name, None, field,
            ))
        if "keyArn" in sources and ks.backend != "aws-kms":
            out.append(Problem("keyArn is only known for backend aws-kms", name, None, field))
        if "keyName" in sources and ks.backend not in ("gcp-kms", "pkcs11"):
            out.append(Problem(
                "keyName is only known for backends gcp-kms (the version name) and pkcs11 (the key's"
                " PKCS#11 URI)", name, None, field,
            ))
        if "keyring" in sources and ks.purpose == "sign":
            out.append(Problem(
                "a sign keyset delivers only its active private key (material); verifiers use the"
                " published public keys, so there is no keyring to deliver", name, None, field,
            ))
        out += _consumer_names(name, field, consumer)
    return out


_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _consumer_names(name: str, field: str, consumer: DeploymentConsumer | SecretConsumer) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(consumer, SecretConsumer):
        if not consumer.data:
            out.append(Problem("names no data to deliver", name, None, f"{field}.data"))
        for key in consumer.data:
            if not _SECRET_KEY.fullmatch(key):
                out.append(Problem(f"{key!r} is not a valid Secret key ([-._a-zA-Z0-9]+)", name, None,
                                   f"{field}.data"))
        return out
    names = [*consumer.env, *consumer.material, *consumer.values]
    if not names:
        out.append(Problem("names no env to deliver (env, material or values)", name, None, field))
    for var in sorted(set(names)):
        if names.count(var) > 1:
            out.append(Problem(f"env var {var!r} is set more than once (env, material, values)", name, None,
                               field))
        if not _ENV_NAME.fullmatch(var):
            out.append(Problem(f"{var!r} is not a valid env var name", name, None, field))
    if consumer.container is not None and not _DNS_LABEL.fullmatch(consumer.container):
        out.append(Problem(f"{consumer.container!r} is not a container name (a DNS label)", name, None,
                           f"{field}.container"))
    return out


def _validate_delivery(stack: StackConfig) -> list[Problem]:
    """Across keysets: one owner per Secret, per env var of a container, per ConfigMap."""
    out: list[Problem] = []
    secrets: dict[str, str] = {}
    env: dict[tuple[str, str, str], str] = {}
    configmaps: dict[str, str] = {}
    for name, ks in stack.keysets.items():
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,52}[a-z0-9])?", name) and (ks.consumers or any(
                p.scheme == "configmap" for p in ks.publish)):
            out.append(Problem(
                "a keyset delivered to Kubernetes needs a lowercase DNS name of at most 54 characters"
                " (it names the rollout annotation and owned objects)", name, None, None,
            ))
        for i, consumer in enumerate(ks.consumers):
            field = f"consumers[{i}]"
            if isinstance(consumer, SecretConsumer):
                if consumer.secret in secrets:
                    out.append(Problem(
                        f"Secret {consumer.secret!r} is already delivered by keyset '{secrets[consumer.secret]}';"
                        " a Secret has one owner", name, None, field,
                    ))
                secrets.setdefault(consumer.secret, name)
                continue
            container = consumer.container or consumer.deployment.rpartition("/")[2]
            for var in (*consumer.env, *consumer.material, *consumer.values):
                key = (consumer.deployment, container, var)
                if key in env and env[key] != name:
                    out.append(Problem(
                        f"env var {var!r} of {consumer.deployment} (container {container!r}) is already"
                        f" delivered by keyset '{env[key]}'", name, None, field,
                    ))
                env.setdefault(key, name)
        for i, pub in enumerate(ks.publish):
            if pub.scheme != "configmap":
                continue
            if pub.target in configmaps and configmaps[pub.target] != name:
                out.append(Problem(
                    f"target {pub.target!r} is already published by keyset '{configmaps[pub.target]}'",
                    name, None, f"publish[{i}].target",
                ))
            configmaps.setdefault(pub.target, name)
    return out


def _validate_generations(
    stack: StackConfig, name: str, ks: KeySet, spec: algorithms.Algorithm | None
) -> list[Problem]:
    out: list[Problem] = []
    ids: set[str] = set()
    for i, gen in enumerate(ks.generations):
        def problem(message: str, field: str | None = None, gen: Generation = gen) -> None:
            out.append(Problem(message, name, gen.id, field))

        if gen.id in ids:
            problem(f"duplicate generation id (generation #{i + 1}); ids are unique and stable forever", "id")
        ids.add(gen.id)
        _validate_history(gen, problem)
        if gen.state is State.REVOKED and gen.revoke_reason is None:
            problem("is required when state is 'revoked' (compromise, personnel, hardware, superseded)", "revokeReason")
        if gen.revoke_reason is not None and gen.state is not State.REVOKED:
            problem(f"must not be set while state is '{gen.state}'", "revokeReason")
        present = [(f, gen.time(f)) for f in TIME_ORDER if gen.time(f) is not None]
        for (first, t1), (second, t2) in zip(present, present[1:], strict=False):
            if t2 < t1:
                problem(f"{second} ({_iso(t2)}) is before {first} ({_iso(t1)})", second)
        last_field, last = present[-1]
        if gen.history:
            last_field, last = "history[-1].at", gen.history[-1].at
        if gen.revoked_at is not None and gen.revoked_at < last:
            problem(f"revokedAt ({_iso(gen.revoked_at)}) is before {last_field} ({_iso(last)})", "revokedAt")
        if gen.rewrapped and (spec is None or ks.purpose == "sign" or not ks.keeps_data):
            problem("only an encrypt/mac keyset with data at rest records re-encryptions", "rewrapped")
        for j, rewrap in enumerate(gen.rewrapped):
            if rewrap.at < gen.created_at or (j and rewrap.at < gen.rewrapped[j - 1].at):
                problem(f"{_iso(rewrap.at)} is before createdAt or an earlier entry; entries are appended in"
                        " order", f"rewrapped[{j}].at")
        if ks.backend == "external":
            if gen.public_key_pem is None:
                problem("is required for backend external", "publicKeyPem")
            elif spec is not None:
                message = _check_public_key(gen.public_key_pem, spec, ks.rsa_key_size)
                if message:
                    problem(message, "publicKeyPem")
        elif gen.public_key_pem is not None:
            problem(f"only backend external takes a publicKeyPem (this keyset is {ks.backend})", "publicKeyPem")
    active = [g.id for g in ks.generations if g.state is State.ACTIVE]
    if len(active) != 1:
        found = f"{len(active)} ({', '.join(active)})" if active else "none"
        out.append(Problem(
            f"a {ks.purpose} keyset needs exactly one 'active' generation; found {found}",
            name, None, "generations",
        ))
    return out


def _validate_history(gen: Generation, problem) -> None:
    """The top-level times are the first pass; ``history`` continues it step by step, and
    revokedAt (terminal) ends it."""
    first = first_pass(gen)
    described = first[-1][0] if gen.history else gen.state
    for field in REQUIRED_TIMES[described]:
        if gen.time(field) is None:
            problem(f"is required when state is '{gen.state}'" if not gen.history else
                    f"is required: the history continues from '{described}'", field)
    for field in FORBIDDEN_TIMES[described]:
        if field == "revokedAt" and gen.history:
            continue  # the terminal step after the history
        if gen.time(field) is not None:
            problem(f"must not be set while state is '{gen.state}'" if not gen.history else
                    f"must not be set: the first pass ended in '{described}'; later steps are in 'history'",
                    field)
    if not gen.history:
        return
    previous, previous_at = first[-1]
    for j, step in enumerate(gen.history):
        field = f"history[{j}]"
        if step.state in (State.PENDING, State.REVOKED):
            problem(f"'{step.state}' is not a history step ({STATE_TIME[step.state]} records it)",
                    f"{field}.state")
        elif not allowed(previous, step.state):
            problem(f"cannot go from '{previous}' to '{step.state}'", f"{field}.state")
        if step.at < previous_at:
            problem(f"{_iso(step.at)} is before the previous step ({_iso(previous_at)}); history is"
                    " appended in order", f"{field}.at")
        previous, previous_at = step.state, step.at
    final = State.REVOKED if gen.revoked_at is not None else previous
    if final is not gen.state:
        problem(f"is '{gen.state}' but its history ends in '{final}'", "state")


def _check_public_key(pem: str, spec: algorithms.Algorithm, key_size: int) -> str | None:
    from .keys import describe_public_key, load_public_key

    try:
        key = load_public_key(pem)
    except ValueError as error:
        return f"is not a PEM public key: {error}"
    actual = describe_public_key(key)
    if spec.kty in ("AKP", "SPKI"):
        expected = (spec.kty, spec.name if spec.kty == "AKP" else spec.spki_algorithm)
        if actual != expected:
            return f"holds a {actual[0]} {actual[1]} key; {spec.name} needs {expected[0]} {expected[1]}"
        return None
    expected = (spec.kty, spec.curve if spec.kty != "RSA" else key_size)
    if spec.kty == "RSA":
        if actual[0] != "RSA" or actual[1] < 2048:
            return f"holds a {actual[0]} {actual[1]} key; {spec.name} needs an RSA key of at least 2048 bits"
        return None
    if actual != expected:
        return f"holds a {actual[0]} {actual[1]} key; {spec.name} needs {expected[0]} {expected[1]}"
    return None


_iso = format_time
