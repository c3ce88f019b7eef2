"""Reading the program's resources as the analyzer sees them: key resources, generations, documents.

The engine sends resource inputs to `Analyze` and outputs to `AnalyzeStack`, as wire names
(camelCase for provider resources, snake_case for our dynamic resources). In a preview some values
are unknown; :func:`plain` turns the SDK's unknown-checking proxy into plain data with
:data:`UNKNOWN` in their place, so a policy decides what an unknown value means instead of the
whole policy being skipped.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from pulumi_policy import proxy as _proxy
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from keyrotation import documents, metadata, names
from keyrotation.config import Generation
from keyrotation.lifecycle import Timings
from keyrotation.metadata import ANNOTATION_PREFIX, RotationMetadata
from policy import stack_config

SOFTWARE_KEY = names.SOFTWARE_KEY_TYPE
PKCS11_KEY = names.PKCS11_KEY_TYPE
PUBLICATION = names.PUBLICATION_TYPE
KEY_GENERATION = names.KEY_GENERATION_TYPE
AWS_KEY = "aws:kms/key:Key"
GCP_CRYPTO_KEY = "gcp:kms/cryptoKey:CryptoKey"
GCP_KEY_VERSION = "gcp:kms/cryptoKeyVersion:CryptoKeyVersion"
KMS_RESTORED_KEY = names.KMS_RESTORED_KEY_TYPE
"""A KMS key (AWS) or version (GCP) restored from its deletion window (components/kms_restore.py)."""
SECRET = "kubernetes:core/v1:Secret"
SECRET_PATCH = "kubernetes:core/v1:SecretPatch"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
CONFIG_MAP_PATCH = "kubernetes:core/v1:ConfigMapPatch"

KEY_TYPES = (SOFTWARE_KEY, PKCS11_KEY, AWS_KEY, GCP_CRYPTO_KEY, GCP_KEY_VERSION, KMS_RESTORED_KEY)
"""Resources that hold key material (or are the key in a KMS): protected, profile-checked."""
AGED_TYPES = (*KEY_TYPES, SECRET, SECRET_PATCH)
"""Resources judged for key age when they carry rotation metadata."""
SECRET_TYPES = (SECRET, SECRET_PATCH)
CONFIG_MAP_TYPES = (CONFIG_MAP, CONFIG_MAP_PATCH)
WORKLOAD_TYPES = tuple(
    f"kubernetes:{group}:{kind}{suffix}"
    for group, kinds in (("apps/v1", ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")),
                         ("batch/v1", ("Job", "CronJob")), ("core/v1", ("Pod",)))
    for kind in kinds
    for suffix in ("", "Patch")
)

_KINDS = {
    SOFTWARE_KEY: "SoftwareKey",
    PKCS11_KEY: "PKCS#11 key",
    AWS_KEY: "AWS KMS key",
    GCP_CRYPTO_KEY: "Cloud KMS CryptoKey",
    GCP_KEY_VERSION: "Cloud KMS CryptoKeyVersion",
    KMS_RESTORED_KEY: "restored KMS key",
    SECRET: "Secret",
    SECRET_PATCH: "Secret",
    CONFIG_MAP: "ConfigMap",
    CONFIG_MAP_PATCH: "ConfigMap",
    PUBLICATION: "Publication",
}


class _Unknown:
    """A value the engine does not know yet (a preview): never equal to anything real."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Any = _Unknown()
_SENTINELS = frozenset({UNKNOWN_BOOLEAN_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE,
                        UNKNOWN_ARRAY_VALUE, UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE,
                        UNKNOWN_OBJECT_VALUE})


# The SDK's unknown-checking proxies hand out their target under the key "__target"; reading it
# directly skips a check and a path copy per item (the plain result is the same: a sentinel string
# becomes UNKNOWN either way). Hand-built props and any other Mapping take the general path.
_PROXY_TYPES = tuple(t for t in (getattr(_proxy, "_DictProxy", None), getattr(_proxy, "_ListProxy", None))
                     if t)


def plain(value: Any) -> Any:
    """Plain dicts/lists from the analyzer's proxies (or hand-built props), unknowns as UNKNOWN."""
    if isinstance(value, str):
        return UNKNOWN if value in _SENTINELS else value
    if _PROXY_TYPES and isinstance(value, _PROXY_TYPES):
        target = value["__target"]
        if isinstance(target, dict):
            return {key: plain(item) for key, item in target.items()}
        if isinstance(target, list):
            return [plain(item) for item in target]
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        out_list = []
        for index in range(len(value)):
            try:
                out_list.append(plain(value[index]))
            except UnknownValueError:
                out_list.append(UNKNOWN)
        return out_list
    return value


# ---------------------------------------------------------------------------------------------
# What every stack policy reads, built once per analysis


ANALYSIS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "key_rotation_analysis", default=None)
"""What the stack policies of the AnalyzeStack being served have built so far: set afresh for each
request by :mod:`policy.sdk_hooks` and dropped when it returns. Outside one (a policy called
directly), nothing is cached and each policy builds what it reads itself: slower, never stale."""


def per_analysis(name: str, build: Callable[[], Any]) -> Any:
    """``build()``, once per AnalyzeStack request (see :data:`ANALYSIS`)."""
    built = ANALYSIS.get()
    if built is None:
        return build()
    if name not in built:
        built[name] = build()
    return built[name]


def stack_props(args: Any) -> dict[str, Any]:
    """Every resource's plain outputs by URN, for the stack policies of one analysis."""
    return per_analysis("props", lambda: {r.urn: plain(r.props) for r in args.resources})


def known(value: Any) -> bool:
    return value is not UNKNOWN


def dig(value: Any, *path: str | int) -> Any:
    """value[path...], None where a step is missing, UNKNOWN where one is unknown."""
    for step in path:
        if value is UNKNOWN:
            return UNKNOWN
        if isinstance(value, Mapping):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and -len(value) <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def kind_of(resource_type: str) -> str:
    return _KINDS.get(resource_type, resource_type)


def where(resource_type: str, name: str) -> str:
    """How messages name a resource: ``SoftwareKey 'atlas-gateway-2026-11-23-key'``."""
    return f"{kind_of(resource_type)} '{name}'"


# ---------------------------------------------------------------------------------------------
# Rotation metadata on key resources


def _known_strings(mapping: Any) -> dict[str, str]:
    if not isinstance(mapping, Mapping):
        return {}
    return {k: v for k, v in mapping.items() if isinstance(v, str)}


def _has_unknown_metadata(mapping: Any, prefix: str) -> bool:
    if mapping is UNKNOWN:
        return True
    return isinstance(mapping, Mapping) and any(
        k.startswith(prefix) and v is UNKNOWN for k, v in mapping.items()
    )


@dataclass(frozen=True)
class MetadataReading:
    metadata: RotationMetadata | None
    known: bool
    """False when the metadata could not be read because values are unknown (a preview)."""
    configured: bool = False
    """The metadata is the stack config's (:func:`policy.stack_config.described`), not the resource's."""


def rotation_metadata(resource_type: str, props: Mapping[str, Any]) -> MetadataReading:
    """What a key resource holds: the generation its metadata names (tags, labels, annotations,
    props), as the stack config describes it; the metadata itself only for a generation the config
    does not describe."""
    reading = _decoded(resource_type, props)
    configured = stack_config.described(reading.metadata) if reading.metadata is not None else None
    return reading if configured is None else MetadataReading(configured, True, configured=True)


def _decoded(resource_type: str, props: Mapping[str, Any]) -> MetadataReading:
    """The rotation metadata a component wrote on a key resource (tags, labels, annotations, props)."""
    try:
        if resource_type in (SOFTWARE_KEY, PKCS11_KEY):
            fields_ = {f.name for f in fields(RotationMetadata)}
            unknown = any(props.get(f) is UNKNOWN for f in fields_)
            return MetadataReading(metadata.from_properties(_known_strings(props)), not unknown)
        if resource_type == AWS_KEY:
            tags = props.get("tags") if props.get("tags") is not None else props.get("tagsAll")
            return MetadataReading(metadata.from_aws_tags(_known_strings(tags)),
                                   not _has_unknown_metadata(tags, metadata.AWS_PREFIX))
        if resource_type in (GCP_CRYPTO_KEY, GCP_KEY_VERSION):
            labels = props.get("labels") if props.get("labels") is not None else props.get("effectiveLabels")
            return MetadataReading(metadata.from_gcp_labels(_known_strings(labels)),
                                   not _has_unknown_metadata(labels, metadata.GCP_PREFIX))
        if resource_type in (*SECRET_TYPES, *CONFIG_MAP_TYPES):
            annotations = dig(props, "metadata", "annotations")
            return MetadataReading(metadata.from_annotations(_known_strings(annotations)),
                                   not _has_unknown_metadata(annotations, ANNOTATION_PREFIX))
    except ValueError:
        # A hand-edited tag with an unreadable time: the resource's metadata cannot be trusted.
        return MetadataReading(None, True)
    return MetadataReading(None, True)


# ---------------------------------------------------------------------------------------------
# Generations (KeyGeneration components) and published documents (stack policies)


@dataclass(frozen=True)
class GenerationRecord:
    """One generation as the KeyGeneration component recorded it in its outputs."""

    keyset: str
    purpose: str
    generation: Generation
    kid: str | None
    """None while unknown (a new thumbprint kid in a preview)."""
    timings: Timings
    urn: str
    name: str


_TIMING_NAMES = tuple((f.name, to_camel(f.name)) for f in fields(Timings))
"""Timings fields and their camelCase names in the KeyGeneration outputs, computed once."""


def generation_record(resource_type: str, props: Mapping[str, Any], urn: str,
                      name: str) -> GenerationRecord | None:
    if resource_type != KEY_GENERATION:
        return None
    lifecycle, timings = props.get(names.GENERATION_LIFECYCLE), props.get(names.GENERATION_TIMINGS)
    keyset = props.get(names.GENERATION_KEYSET)
    if not isinstance(lifecycle, Mapping) or not isinstance(keyset, str) or any(
        v is UNKNOWN for v in lifecycle.values()
    ):
        return None
    knobs = {name: int(timings[wire]) for name, wire in _TIMING_NAMES
             if isinstance(timings, Mapping) and isinstance(timings.get(wire), (int, float))}
    kid = props.get(names.GENERATION_KID)
    try:
        generation = Generation.model_validate(dict(lifecycle))
    except ValidationError:
        return None  # recorded by another version of the program: judged by key metadata instead
    return GenerationRecord(
        keyset=keyset,
        purpose=str(props.get("purpose") or ""),
        generation=generation,
        kid=kid if isinstance(kid, str) else None,
        timings=Timings(**knobs),
        urn=urn,
        name=name,
    )


PUBLIC_KEY_FORMATS = documents.KID_FORMATS
"""Formats that publish key ids (key-history lists every generation, revoked ones on purpose)."""


@dataclass(frozen=True)
class DocumentRecord:
    """A published document of a keyset: a Publication, or a ConfigMap publish target."""

    keyset: str
    """The keyset it belongs to; a seed 002 anchor's (format ``anchor``) are the keysets it lists,
    comma-joined (keyset names hold no comma): :attr:`keysets`."""
    format: str
    target: str
    resource_type: str
    urn: str
    name: str
    document: Any
    """The parsed content; UNKNOWN in a preview where it depends on new keys."""
    first_published: dict[str, datetime] | None
    """Per kid, when the publisher first wrote it; None when not known (a preview, a ConfigMap)."""

    @property
    def keysets(self) -> tuple[str, ...]:
        """Every keyset whose keys the document lists (several for a trust anchor)."""
        return tuple(self.keyset.split(","))

    @property
    def kids(self) -> list[str] | None:
        """The key ids the document publishes, read from its content; None while unknown."""
        if self.document is UNKNOWN or self.document is None:
            return None
        return documents.kids_in(self.format, self.document)

    @property
    def where(self) -> str:
        return f"{where(self.resource_type, self.name)} ({self.format} at {self.target})"


def _parse(content: Any, fmt: str) -> Any:
    if not isinstance(content, str):
        return UNKNOWN if content is UNKNOWN else None
    if fmt in documents.TEXT_FORMATS:
        return content  # a text document (OpenMetrics): scanned as one string
    try:
        return json.loads(content)
    except ValueError:
        return None


def document_record(resource_type: str, props: Mapping[str, Any], urn: str,
                    name: str) -> DocumentRecord | None:
    if resource_type == PUBLICATION:
        if not all(isinstance(props.get(k), str) for k in ("keyset", "format", "target")):
            return None
        recorded = props.get(names.FIRST_PUBLISHED)
        first = None
        if isinstance(recorded, Mapping) and all(isinstance(v, str) for v in recorded.values()):
            first = {kid: metadata.parse_time(t) for kid, t in recorded.items()}
        return DocumentRecord(props["keyset"], props["format"], props["target"], resource_type, urn, name,
                              _parse(props.get("content"), props["format"]), first)
    if resource_type in CONFIG_MAP_TYPES:
        annotations = dig(props, "metadata", "annotations")
        keyset = dig(annotations, ANNOTATION_PREFIX + "keyset")
        fmt = dig(annotations, ANNOTATION_PREFIX + "format")
        if not isinstance(keyset, str) or not isinstance(fmt, str):
            return None
        target = f"configmap://{dig(props, 'metadata', 'namespace')}/{dig(props, 'metadata', 'name')}"
        content = dig(props, "data", names.config_map_key(fmt))
        return DocumentRecord(keyset, fmt, target, resource_type, urn, name, _parse(content, fmt), None)
    return None


# ---------------------------------------------------------------------------------------------
# Walking property values (key material scans)


def strings_in(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value with its property path (``data.SIGNING_KEY``, ``env[0].value``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings_in(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{path}[{index}]")
