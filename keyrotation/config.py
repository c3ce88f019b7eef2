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
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from . import algorithms, material, metadata, stacktext, targets, times
from . import identifiers as names
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

PUBLISH_FORMATS = ("jwks", "signers", "trust-anchor", "key-history", "metrics")
PUBLISH_SCHEMES = targets.SCHEMES
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

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # `maxAgeDays:` with nothing after it is a null: say so instead of quietly using the default.
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None]
            if nulls:
                raise ValueError(f"{', '.join(str(k) for k in nulls)} is null; give a value or remove the key")
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
    revoke_reason: Literal["compromise", "personnel", "hardware", "superseded"] | None = None
    destroyed_at: Time | None = None
    public_key_pem: Text | None = Field(None, max_length=16_384)
    history: list[Step] = Field(default_factory=list)
    """Steps after the first return to an earlier state (rollback, restore), appended in order."""
    rewrapped: list[Rewrap] = Field(default_factory=list)
    """encrypt/mac keysets with data at rest: confirmed re-encryptions, appended in order."""

    def time(self, camel_name: str) -> datetime | None:
        return getattr(self, _snake(camel_name))


class Publication(_Model):
    format: Literal["jwks", "signers", "trust-anchor", "key-history", "metrics"]
    target: Text = Field(max_length=2048)

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


class KeySet(TimingOverrides):
    """One keyset as written in the stack file, plus its name and resolved timings."""

    purpose: Literal["sign", "encrypt", "mac"]
    algorithm: Annotated[Text, Field(max_length=64)]
    key_size: Annotated[Literal[2048, 3072, 4096], BeforeValidator(_key_size)] | None = None
    backend: Literal["software", "aws-kms", "gcp-kms", "external", "pkcs11"] = "software"
    profile: algorithms.Profile | None = None
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


class StackConfig(_Model):
    environment: Text
    profile: algorithms.Profile = "default"
    pkcs11: Pkcs11Options | None = None
    publish_root: Text = targets.DEFAULT_PUBLISH_ROOT
    """Where ``file://`` targets may write (relative to the project directory)."""
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
            parts.append(f"keyset {_label(self.keyset)}")
        if self.generation is not None:
            parts.append(f"generation {_label(self.generation)}")
        if self.field is not None:
            parts.append(f"field {_label(self.field)}")
        return ", ".join(parts)


def _label(text: str) -> str:
    """A name as the user wrote it, quoted; invisible and non-ASCII characters spelled out."""
    if material.private_blocks(text):
        return "<private key material>"
    if text.isascii() and text.isprintable() and len(text) <= 80:
        return f"'{text}'"
    return names.describe(text, 80)


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


def load(
    stack_file: str,
    *,
    text: str | None = None,
    parsed: stacktext.Parsed | None = None,
    config: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> StackConfig:
    """The one entry point of validation, for the program and the commands alike.

    ``text``: the stack file's YAML (the commands read it; the program reads it when it finds it
    beside ``Pulumi.yaml``): its YAML-level rules (:mod:`keyrotation.stacktext`) are checked and
    its ``config:`` map is validated as written. ``config``: the map as the Pulumi engine
    hands it to the program (values may be JSON strings). ``now``: the clock the command or the
    program acts at; recorded times more than a year after it are refused. ``parsed``: the text
    already read by :func:`keyrotation.stacktext.parse` (the editor keeps its node).
    """
    if parsed is None and text is not None:
        parsed = stacktext.parse(text, stack_file)
    if parsed is not None:
        document = parsed.document
        # The file as written first: the engine's YAML reading (YAML 1.1 `yes`, last duplicate
        # wins, numbers as strings) must not turn a refused file into an accepted config.
        from_file = from_config_map(document["config"], stack_file=stack_file, now=now, from_file=True)
        if config is None:
            return from_file
    if config is None:
        raise ConfigError(stack_file, [Problem("has no 'config:' mapping")])
    return from_config_map(config, stack_file=stack_file, now=now)


def load_stack_file(path: str | Path, *, now: datetime | None = None) -> StackConfig:
    """Read and validate ``Pulumi.<stack>.yaml`` from disk (the commands and tests use this)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(path.name, [Problem(f"is not UTF-8 text (byte {error.start})")]) from None
    return load(path.name, text=text, now=now)


def from_config_map(config: Mapping[str, Any], *, stack_file: str, now: datetime | None = None,
                    from_file: bool = False) -> StackConfig:
    """Validate a stack's ``config:`` map (keys such as ``key-rotation:keysets``).

    Values may be the decoded objects (from the YAML file) or JSON strings (as the Pulumi engine
    hands structured config to a program).
    """
    ours: dict[str, Any] = {}
    other: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in config.items():
        if not isinstance(key, str):
            problems.append(Problem(f"config key {times.shown(key)} is not a string"))
            continue
        why = namespace_problem(key)
        if why:
            problems.append(Problem(why, field=key))
            continue
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and name == PIN_KEY:
            # The PIN is read where it is used (components/stack.py, components/pkcs11_key.py),
            # never kept in the model. In a stack file it must be a Pulumi secret ({secure: ...});
            # the engine hands the program its decrypted value, which is a string there and fine.
            if from_file and not (isinstance(value, dict) and set(value) == {"secure"}):
                problems.append(Problem(
                    "is in plain text; set it as a secret: pulumi config set --secret"
                    f" {PROJECT}:{PIN_KEY} (or give PKCS11_PIN in the environment)", field=PIN_KEY,
                ))
            continue
        decoded = _decode(value)
        size = _size_problem(decoded)
        if size:
            problems.append(Problem(size, field=name if namespace == PROJECT else key))
            continue
        for path, what in material.find(decoded, ()):
            problems.append(_material_problem(namespace, name, key, path, what, decoded))
        if namespace == PROJECT:
            ours[name] = decoded
        else:
            other[key] = value
    if problems:
        raise ConfigError(stack_file, problems)
    return parse(ours, stack_file=stack_file, other=other, now=now)


_KNOWN_NAMESPACES = ("aws", "gcp", "kubernetes", "pulumi")


def namespace_problem(key: str) -> str | None:
    """Why a config key's namespace is refused: none, or one that looks like a typo of ours."""
    namespace, colon, name = key.partition(":")
    if not colon or not namespace or not name:
        return (f"config key {times.shown(key)} needs a namespace and a name, e.g."
                f" '{PROJECT}:keysets' or 'aws:region'")
    if namespace == PROJECT or namespace in _KNOWN_NAMESPACES:
        return None
    squashed = re.sub(r"[^a-z0-9]", "", namespace.lower())
    if "rotation" in squashed or "keyrot" in squashed or _distance(squashed, "keyrotation") <= 3:
        return (f"unknown namespace {times.shown(namespace)}: this program reads '{PROJECT}:{name[:40]}'"
                " (a misspelt namespace would be ignored silently)")
    return None


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _size_problem(value: Any) -> str | None:
    """Values that expand (YAML aliases shared by reference) beyond any real stack file, or nest too deep."""
    budget = stacktext.MAX_NODES
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            return f"expands to more than {stacktext.MAX_NODES} values (YAML aliases?); a stack file is far smaller"
        if depth > stacktext.MAX_DEPTH:
            return f"is nested deeper than {stacktext.MAX_DEPTH} levels"
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return None


def _material_problem(namespace: str, name: str, key: str, path: tuple[Any, ...], what: str, data: Any) -> Problem:
    keyset = generation = None
    parts = list(path)
    if namespace == PROJECT and name == "keysets" and parts:
        keyset = str(parts.pop(0))
        if len(parts) >= 2 and parts[0] == "generations" and isinstance(parts[1], int):
            generation = _generation_id({"keysets": data}, keyset, parts[1])
            parts = parts[2:]
        field = _dotted(parts)
    else:
        field = _dotted([name if namespace == PROJECT else key, *parts])
    return Problem(f"holds private key material ({what}); {material.REMEDY}", keyset, generation, field)


def _dotted(parts: list[Any]) -> str | None:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value


def parse(
    data: Mapping[str, Any], *, stack_file: str, other: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> StackConfig:
    data = dict(data)
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
    problems = validate(stack, now=now)
    if problems:
        raise ConfigError(stack_file, problems)
    return stack


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
    return Problem(_message(error, loc), keyset, generation, field)


_EXPECTED = {
    "int_type": "a whole number", "int_from_float": "a whole number", "int_parsing": "a whole number",
    "bool_type": "true or false", "string_type": "a string (quote it)", "dict_type": "a mapping",
    "list_type": "a list", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "the string"}.get(type(value), f"the {type(value).__name__}")


def _message(error: Mapping[str, Any], loc: list[Any]) -> str:
    kind, value = error["type"], error.get("input")
    shown = times.shown(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    if kind == "extra_forbidden":
        return f"unknown key {names.describe(str(loc[-1]) if loc else '')}"
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, not {_kind(value)}{' ' + shown if shown else ''}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        camel = str(loc[-1]) if loc else ""
        if camel in RANGES:
            low, high = RANGES[camel]
            return f"must be from {low} to {high}, not {shown}"
    if kind in ("literal_error", "enum"):
        allowed = str(error["msg"]).removeprefix("Input should be ")
        if not isinstance(value, str):
            return f"must be {allowed}, not {_kind(value)}{' ' + shown if shown else ''}"
        return f"{shown} is not allowed: {allowed}"
    if kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        return f"{shown} is not allowed: it must match {pattern}"
    return str(error["msg"])


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


def validate(stack: StackConfig, *, now: datetime | None = None) -> list[Problem]:
    problems: list[Problem] = []
    why = names.id_problem(stack.environment, "environment")
    if why:
        problems.append(Problem(why, field="environment"))
    why = targets.root_problem(stack.publish_root)
    if why:
        problems.append(Problem(f"publishRoot {why}", field="publishRoot"))
    for name, keyset in stack.keysets.items():
        problems += _validate_keyset(stack, name, keyset)
    problems += _validate_delivery(stack) + _validate_unique(stack)
    if now is not None:
        problems += _validate_not_future(stack, now)
    return problems


def _validate_keyset(stack: StackConfig, name: str, ks: KeySet) -> list[Problem]:
    out: list[Problem] = []

    def problem(message: str, field: str | None = None, generation: str | None = None) -> None:
        out.append(Problem(message, name, generation, field))

    why = names.id_problem(name, "keyset name")
    if why:
        problem(why)

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
    out += _validate_kid(name, ks, stack.environment)
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


def _validate_kid(name: str, ks: KeySet, environment: str = "") -> list[Problem]:
    if ks.kid == "thumbprint":
        return []
    try:
        parsed = list(string.Formatter().parse(ks.kid))
    except ValueError as error:
        return [Problem(f"invalid kid template {times.shown(ks.kid)}: {error}", name, None, "kid")]
    fields = {f for _, f, _, _ in parsed if f is not None}
    unknown = fields - set(KID_PLACEHOLDERS)
    if unknown:
        return [Problem(
            f"kid template {times.shown(ks.kid)} uses unknown placeholder(s) {', '.join(sorted(unknown))};"
            f" allowed: {', '.join('{' + p + '}' for p in KID_PLACEHOLDERS)} or 'thumbprint'",
            name, None, "kid",
        )]
    if any(spec or conversion for _, f, spec, conversion in parsed if f is not None):
        return [Problem(
            f"kid template {times.shown(ks.kid)} formats a placeholder ('{{name:spec}}' or '{{name!r}}');"
            " write placeholders plainly, e.g. {generation}, so every generation keeps its own kid",
            name, None, "kid",
        )]
    if "generation" not in fields and len(ks.generations) > 1:
        return [Problem(
            f"kid template {ks.kid!r} gives every generation the same kid; include {{generation}}",
            name, None, "kid",
        )]
    out: list[Problem] = []
    seen: dict[str, str] = {}
    for g in ks.generations:
        kid = _render_kid(ks, name, g.id, environment)
        why = names.kid_problem(kid)
        if why:
            out.append(Problem(why, name, g.id, "kid"))
            break
        if kid in seen:
            out.append(Problem(f"kid '{kid}' is also generation '{seen[kid]}''s kid; kids are unique in a keyset",
                               name, g.id, "kid"))
        seen.setdefault(kid, g.id)
    return out


def _render_kid(ks: KeySet, name: str, generation: str, environment: str) -> str:
    from .keys import render_kid

    return render_kid(ks.kid, keyset=name, generation=generation, environment=environment)


def _validate_publish(stack: StackConfig, name: str, ks: KeySet, spec: algorithms.Algorithm) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for i, pub in enumerate(ks.publish):
        field = f"publish[{i}]"
        if pub.format not in ("key-history", "metrics") and not spec.publishes_public_key:
            out.append(Problem(
                f"a {ks.purpose} keyset has no public key to publish; only 'key-history' and 'metrics' are allowed,"
                f" not '{pub.format}'", name, None, f"{field}.format",
            ))
        elif pub.format == "jwks" and not spec.has_jwk:
            out.append(Problem(
                f"JOSE defines no JWK key type for {ks.algorithm}: a JWKS cannot carry it; publish"
                " signers, trust-anchor or key-history (they carry the SPKI)", name, None, f"{field}.format",
            ))
        root = None if targets.root_problem(stack.publish_root) else stack.publish_root
        why = targets.target_problem(pub.target, root)
        if why:
            out.append(Problem(why, name, None, f"{field}.target"))
        elif pub.scheme == "configmap" and stack.kubernetes is None:
            out.append(Problem(
                "a configmap:// target needs the stack's kubernetes.context", name, None, f"{field}.target"
            ))
        if pub.target in seen:
            out.append(Problem(f"target {times.shown(pub.target)} is listed twice", name, None, f"{field}.target"))
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
    return out


def _validate_unique(stack: StackConfig) -> list[Problem]:
    """Across keysets: one publication per target, one keyset per kid and per external key."""
    out: list[Problem] = []
    owners: dict[str, str] = {}
    files: dict[tuple[str, ...], tuple[str, str]] = {}
    kids: dict[str, tuple[str, str]] = {}
    keys: dict[str, tuple[str, str]] = {}
    for name, ks in stack.keysets.items():
        for i, pub in enumerate(ks.publish):
            field = f"publish[{i}].target"
            owner = owners.get(pub.target)
            if owner is not None and owner != name:
                out.append(Problem(
                    f"target {times.shown(pub.target)} is already published by keyset '{owner}'; two publications"
                    " cannot share a target (one document would replace the other)", name, None, field,
                ))
            owners.setdefault(pub.target, name)
            if pub.scheme == "file":
                parts = tuple(pub.location.split("/"))
                for other, (other_target, other_name) in files.items():
                    shorter, longer = sorted((parts, other), key=len)
                    if len(shorter) < len(longer) and longer[:len(shorter)] == shorter:
                        out.append(Problem(
                            f"target {times.shown(pub.target)} and {other_name}'s {times.shown(other_target)}:"
                            " one is a directory of the other", name, None, field,
                        ))
                files.setdefault(parts, (pub.target, name))
        # Kids verifiers see (in a JWKS, signers.json or trust anchor) are unique across the stack, so
        # that documents a verifier combines never hold one kid for two keys.
        publishes_kids = any(p.format not in ("key-history", "metrics") for p in ks.publish)
        if ks.kid != "thumbprint" and publishes_kids and not any(
                p.keyset == name and p.field == "kid" for p in out):
            for g in ks.generations:
                try:
                    kid = _render_kid(ks, name, g.id, stack.environment)
                except (ValueError, KeyError, IndexError):
                    break
                seen = kids.get(kid)
                if seen is not None and seen[0] != name:
                    out.append(Problem(
                        f"kid '{kid[:80]}' is also the kid of keyset '{seen[0]}' generation '{seen[1]}';"
                        " a verifier could not tell the keys apart", name, g.id, "kid",
                    ))
                kids.setdefault(kid, (name, g.id))
        if ks.backend == "external":
            for g in ks.generations:
                fingerprint = _public_key_fingerprint(g.public_key_pem)
                if fingerprint is None:
                    continue
                seen = keys.get(fingerprint)
                if seen is not None:
                    where = "keyset '" + seen[0] + "' " if seen[0] != name else ""
                    out.append(Problem(
                        f"the same public key as {where}generation '{seen[1]}'; every generation needs a key"
                        " of its own (a key published by two generations or keysets cannot be retired alone)",
                        name, g.id, "publicKeyPem",
                    ))
                keys.setdefault(fingerprint, (name, g.id))
    return out


def _public_key_fingerprint(pem: str | None) -> str | None:
    from .keys import normalize_public_pem

    if not pem:
        return None
    try:
        return normalize_public_pem(pem)
    except (ValueError, TypeError):
        return None


def _validate_not_future(stack: StackConfig, now: datetime) -> list[Problem]:
    out: list[Problem] = []
    for name, ks in stack.keysets.items():
        for g in ks.generations:
            for camel in (*TIME_ORDER, "revokedAt"):
                t = g.time(camel)
                why = times.future_problem(t, now) if t is not None else None
                if why:
                    out.append(Problem(why, name, g.id, camel))
    return out


def _validate_generations(
    stack: StackConfig, name: str, ks: KeySet, spec: algorithms.Algorithm | None
) -> list[Problem]:
    out: list[Problem] = []
    ids: set[str] = set()
    for i, gen in enumerate(ks.generations):
        def problem(message: str, field: str | None = None, gen: Generation = gen) -> None:
            out.append(Problem(message, name, gen.id, field))

        why = names.id_problem(gen.id, "generation id")
        if why:
            problem(why, "id")
        if gen.id in ids:
            problem(f"duplicate generation id (generation #{i + 1}); ids are unique and stable forever", "id")
        ids.add(gen.id)
        previous = ks.generations[i - 1] if i else None
        if previous is not None and gen.created_at < previous.created_at:
            problem(
                f"createdAt ({_iso(gen.created_at)}) is before the createdAt of the generation listed before it,"
                f" '{previous.id}' ({_iso(previous.created_at)}); generations are listed oldest first",
                "createdAt",
            )
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


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


def _check_public_key(pem: str, spec: algorithms.Algorithm, key_size: int) -> str | None:
    from .keys import describe_public_key, load_public_key

    blocks = _PEM_BLOCK.findall(pem)
    if blocks != ["PUBLIC KEY"]:
        found = ", ".join(f"'{b}'" for b in blocks) or "none"
        return f"must hold exactly one PEM 'PUBLIC KEY' block and nothing else (found: {found})"
    body = pem.strip()
    if not (body.startswith("-----BEGIN PUBLIC KEY-----") and body.endswith("-----END PUBLIC KEY-----")):
        return "must hold exactly one PEM 'PUBLIC KEY' block and nothing else (text around the block)"
    try:
        key = load_public_key(pem)
    except ValueError as error:
        return f"is not a PEM public key: {str(error).split(' See https')[0][:120]}"
    actual = describe_public_key(key)
    if spec.kty in ("AKP", "SPKI"):
        expected = (spec.kty, spec.name if spec.kty == "AKP" else spec.spki_algorithm)
        if actual != expected:
            return f"holds a {actual[0]} {actual[1]} key; {spec.name} needs {expected[0]} {expected[1]}"
        return None
    expected = (spec.kty, spec.curve if spec.kty != "RSA" else key_size)
    if spec.kty == "RSA":
        if actual[0] != "RSA":
            return f"holds a {actual[0]} {actual[1]} key; {spec.name} needs an RSA key of {key_size} bits"
        if actual[1] != key_size:
            return (f"holds an RSA {actual[1]} key but the keyset's keySize is {key_size};"
                    f" set keySize: {actual[1]} or give an RSA {key_size} key")
        return None
    if actual != expected:
        return f"holds a {actual[0]} {actual[1]} key; {spec.name} needs {expected[0]} {expected[1]}"
    return None


_iso = format_time
