"""The ``metrics`` publish format: a keyset's key-age series as OpenMetrics text.

Served by any static web server (a Prometheus scrape target) or dropped into a node-exporter
textfile collector directory (its classic text parser reads the same bytes; the two counters
then arrive untyped: tests/test_metrics.py). Like every published document it is a pure function of the stack
file: the publisher writes nothing when nothing changed, so it holds no value computed at publish
time. Ages are therefore published as the timestamps they count from, and Prometheus computes them
with ``time()``: seed 002's ``signer_key_age_days`` gauge is the recording rule
``time() - key_rotation_generation_activated_timestamp_seconds{state="active"}``, in days, in the
PrometheusRule (components/alerts.py), not a number in the document (it would be stale the day
after a publish, or rewrite the document every run).

Series (labels ``keyset``, and ``profile`` when the keyset has one):

- ``signer_keys_active_total`` (gauge, seed 002): generations in state ``active`` (1, or 0 when
  none is).
- ``signer_keys_revoked_total`` (counter, seed 002): generations revoked; a revocation is never
  undone, so it only grows.
- ``signer_rotation_events_total`` (counter, seed 002): activations, a rollback's included (every
  signing period of every generation); recorded history only grows, so neither does it shrink.
- per generation (``generation``, ``kid``, ``state`` labels too):
  ``key_rotation_generation_created_timestamp_seconds``,
  ``key_rotation_generation_activated_timestamp_seconds`` (its first activation, which its age
  counts from) and, for the active generation,
  ``key_rotation_generation_warn_timestamp_seconds`` and ``key_rotation_generation_due_timestamp_seconds``
  (``maxAgeDays - warnDays`` and ``maxAgeDays`` after it: the keyset view's ``warn_at`` and ``due_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from .lifecycle import State
from .view import view

if TYPE_CHECKING:
    from .config import KeySetConfig
    from .documents import KeyRecord

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

ACTIVE = "signer_keys_active_total"
REVOKED = "signer_keys_revoked"
ROTATIONS = "signer_rotation_events"
CREATED = "key_rotation_generation_created_timestamp_seconds"
ACTIVATED = "key_rotation_generation_activated_timestamp_seconds"
WARN = "key_rotation_generation_warn_timestamp_seconds"
DUE = "key_rotation_generation_due_timestamp_seconds"
AGE_DAYS = "signer_key_age_days"
"""Seed 002's gauge: a recording rule over ACTIVATED (see the module docstring), never published."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _seconds(t: datetime) -> float:
    return t.timestamp()


def openmetrics(keyset: KeySetConfig, records: Sequence[KeyRecord]) -> str:
    """The keyset's metrics document; ``records`` in generation order (``documents.KeyRecord``)."""
    base = {"keyset": keyset.name, **({"profile": str(keyset.profile)} if keyset.profile else {})}
    keys = view(keyset)  # its due and warn times do not depend on `now` (only the health verdict does)
    families: list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]] = [
        (ACTIVE, "gauge", "Generations of the keyset in state active (signing or encrypting).",
         [(ACTIVE, base, sum(1 for r in records if r.state is State.ACTIVE))]),
        (REVOKED, "counter", "Generations of the keyset ever revoked.",
         [(f"{REVOKED}_total", base, sum(1 for r in records if r.state is State.REVOKED))]),
        (ROTATIONS, "counter", "Activations of a generation (rollbacks included).",
         [(f"{ROTATIONS}_total", base, sum(len(r.entry.signing_periods) for r in records))]),
    ]
    created, activated, warn, due = [], [], [], []
    for r in records:
        labels = {**base, "generation": r.generation, "kid": r.kid, "state": str(r.state)}
        created.append((CREATED, labels, _seconds(r.created_at)))
        if r.activated_at is not None:
            activated.append((ACTIVATED, labels, _seconds(r.activated_at)))
        if r.generation == keys.primary and keys.due_at and keys.warn_at:
            warn.append((WARN, labels, _seconds(keys.warn_at)))
            due.append((DUE, labels, _seconds(keys.due_at)))
    families += [
        (CREATED, "gauge", "When the generation was added (createdAt), Unix seconds.", created),
        (ACTIVATED, "gauge", "When the generation first became active (activatedAt), Unix seconds;"
         " its age counts from it.", activated),
        (WARN, "gauge", "When the active generation reaches maxAgeDays - warnDays, Unix seconds.", warn),
        (DUE, "gauge", "When the active generation reaches maxAgeDays (rotation due), Unix seconds.", due),
    ]
    lines: list[str] = []
    for name, kind, help, samples in families:
        lines += [f"# TYPE {name} {kind}", f"# HELP {name} {help}"]
        lines += [f"{sample}{_labels(labels)} {_number(value)}" for sample, labels, value in samples]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
