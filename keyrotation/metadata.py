"""Rotation metadata written onto key resources and read back by the policy pack.

The components write it (AWS tags, GCP labels, Kubernetes annotations, dynamic-resource
properties); the policy pack reads it to judge key age and state, also for keys it did not see
being created. One encoder/decoder pair per medium, so both sides agree by construction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from .times import format_time

AWS_PREFIX = "key-rotation:"
GCP_PREFIX = "key-rotation_"
ANNOTATION_PREFIX = "key-rotation/"


@dataclass(frozen=True)
class RotationMetadata:
    keyset: str
    generation: str
    environment: str
    state: str
    algorithm: str
    purpose: str
    created_at: datetime
    activated_at: datetime | None = None

    # AWS tags and annotations: readable names and RFC 3339 times.
    def aws_tags(self) -> dict[str, str]:
        return {AWS_PREFIX + _kebab(k): v for k, v in self._text().items()}

    def annotations(self) -> dict[str, str]:
        return {ANNOTATION_PREFIX + _kebab(k): v for k, v in self._text().items()}

    def gcp_labels(self) -> dict[str, str]:
        """GCP labels allow only [a-z0-9_-], 63 characters: times become 20261123t091000z."""
        return {
            GCP_PREFIX + k: _label_value(v if not k.endswith("_at") else _compact_time(v))
            for k, v in self._text().items()
        }

    def _text(self) -> dict[str, str]:
        out = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            out[key] = format_time(value) if isinstance(value, datetime) else str(value)
        return out


_FIELDS = [f.name for f in fields(RotationMetadata)]


def from_aws_tags(tags: Mapping[str, str] | None) -> RotationMetadata | None:
    return _decode({k[len(AWS_PREFIX):].replace("-", "_"): v for k, v in (tags or {}).items()
                    if k.startswith(AWS_PREFIX)})


def from_annotations(annotations: Mapping[str, str] | None) -> RotationMetadata | None:
    return _decode({k[len(ANNOTATION_PREFIX):].replace("-", "_"): v for k, v in (annotations or {}).items()
                    if k.startswith(ANNOTATION_PREFIX)})


def from_gcp_labels(labels: Mapping[str, str] | None) -> RotationMetadata | None:
    values = {k[len(GCP_PREFIX):]: v for k, v in (labels or {}).items() if k.startswith(GCP_PREFIX)}
    for key in ("created_at", "activated_at"):
        if key in values:
            values[key] = _expand_time(values[key])
    if "algorithm" in values:  # label values are lowercase: map back to the JOSE name
        from .algorithms import ALGORITHMS

        values["algorithm"] = next(
            (name for name in ALGORITHMS if name.lower() == values["algorithm"]), values["algorithm"]
        )
    return _decode(values)


def _decode(values: dict[str, str]) -> RotationMetadata | None:
    if not {"keyset", "generation", "created_at"} <= values.keys():
        return None
    kwargs: dict[str, Any] = {name: values.get(name, "") for name in _FIELDS}
    kwargs["created_at"] = parse_time(values["created_at"])
    kwargs["activated_at"] = parse_time(values["activated_at"]) if values.get("activated_at") else None
    return RotationMetadata(**kwargs)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


def _compact_time(text: str) -> str:
    t = parse_time(text)
    return t.astimezone(UTC).strftime("%Y%m%dt%H%M%Sz")


def _expand_time(text: str) -> str:
    return datetime.strptime(text.upper(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).isoformat()


def _kebab(name: str) -> str:
    return name.replace("_", "-")


GCP_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def _label_value(value: str) -> str:
    return value.lower()


def gcp_label_problem(value: str) -> str | None:
    """Why a value cannot be a GCP label value (used to validate keyset and generation names)."""
    if not GCP_LABEL_VALUE.fullmatch(value):
        return (
            f"{value!r} is not a valid GCP label value: at most 63 lowercase letters, digits,"
            " '_' and '-'"
        )
    return None


def from_properties(props: Mapping[str, object] | None) -> RotationMetadata | None:
    """A dynamic key resource's properties (``SoftwareKey``): the field names, RFC 3339 times."""
    return _decode({k: str(v) for k, v in (props or {}).items() if k in _FIELDS and v is not None})
