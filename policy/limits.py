"""The pack's configuration: limits from `--policy-pack-config`, the profile and the evaluation time.

A keyset's own limits (``maxAgeDays``, ``warnDays``) are read from the stack's config, which the
engine hands the pack (:mod:`policy.stack_config`); ``policy/config/<env>.json`` holds the
environment's ceilings (top level, per purpose, optionally stricter per keyset), properties of each
policy's config schema. Defaults are the domain's own (``keyrotation.lifecycle.Timings``), not
restated numbers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pulumi_policy import PolicyConfigSchema

from keyrotation import algorithms, names, times
from keyrotation.lifecycle import Timings, default_warn_days
from keyrotation.times import format_time
from policy import stack_config

NOW_VARIABLE = names.NOW_VARIABLE
"""The clock variable the publisher also reads (components.publication.NOW_VARIABLE; a test holds
them equal). Not imported: the pack loads the domain package only, never the program's components
and their cloud SDKs."""

PURPOSES = algorithms.PURPOSES
PROFILES = algorithms.PROFILES

_PROPERTIES: dict[str, dict[str, Any]] = {
    "maxAgeDays": {
        "type": "integer", "minimum": 1,
        "description": "The active generation must be younger than this many days.",
    },
    "warnDays": {
        "type": "integer", "minimum": 0,
        "description": "Warn this many days before maxAgeDays (default: 14, or a quarter of a"
        " shorter maxAgeDays).",
    },
}
_LIMIT = {"type": "object", "properties": _PROPERTIES, "additionalProperties": False}

NOW_PROPERTY = {
    "type": "string",
    "description": f"Evaluation time (RFC 3339) for tests and what-if reviews; default: ${NOW_VARIABLE},"
    " else the clock.",
}

AGE_SCHEMA = PolicyConfigSchema(
    properties={
        "maxAgeDays": {**_PROPERTIES["maxAgeDays"], "default": Timings.max_age_days},
        "warnDays": _PROPERTIES["warnDays"],
        "purposes": {
            "type": "object",
            "description": "Limits per keyset purpose (sign, encrypt, mac), over the top-level ones.",
            "properties": {purpose: _LIMIT for purpose in PURPOSES},
            "additionalProperties": False,
        },
        "keysets": {
            "type": "object",
            "description": "Limits per keyset name, over the purpose and top-level ones.",
            "additionalProperties": _LIMIT,
        },
        "now": NOW_PROPERTY,
    }
)
"""The schema of both age policies (the mandatory limit and the advisory warning)."""

CLOCK_SCHEMA = PolicyConfigSchema(properties={"now": NOW_PROPERTY})

PROFILE_SCHEMA = PolicyConfigSchema(
    properties={
        "profile": {
            "type": "string", "enum": list(PROFILES),
            "description": "Algorithm profile to enforce ("
            + "; ".join(f"{p}: {rule}" for p, rule in algorithms.PROFILE_RULES.items())
            + "); default: each keyset's profile in the stack file, else the stack's key-rotation:profile.",
        },
        "keysets": {
            "type": "object",
            "description": "A stricter profile per keyset name, e.g. a fips keyset in a default stack.",
            "additionalProperties": {"type": "string", "enum": list(PROFILES)},
        },
    }
)

DELETION_SCHEMA = PolicyConfigSchema(
    properties={
        "minDeletionWindowDays": {
            "type": "integer", "minimum": 1, "default": Timings.deletion_window_days,
            "description": "Least AWS KMS pending-deletion window / GCP destroy-scheduled duration,"
            " in days.",
        },
    }
)


@dataclass(frozen=True)
class AgeLimit:
    max_age_days: float
    warn_days: float
    source: str
    """Where the limit comes from, for messages: ``keysets.atlas-gateway``, ``purposes.sign``..."""

    def describe(self) -> str:
        return f"{_days(self.max_age_days)} ({self.source})"


def age_limit(config: Mapping[str, Any], keyset: str | None, purpose: str | None) -> AgeLimit:
    """The keyset's own limit from the stack file, held to the environment's ceiling.

    The stack's ``maxAgeDays`` for the keyset applies unless the policy config's most specific
    limit is shorter: a pull request cannot raise a key's lifetime past the environment's policy.
    """
    ceiling = policy_limit(config, keyset, purpose)
    declared = _stack_limit(keyset)
    if declared is None or declared.max_age_days > ceiling.max_age_days:
        return ceiling
    return declared


def _stack_limit(keyset: str | None) -> AgeLimit | None:
    stack = stack_config.stack()
    if stack is None or keyset is None or keyset not in stack.keysets:
        return None
    timings = stack.keysets[keyset].timings
    return AgeLimit(float(timings.max_age_days), float(timings.warn_days),
                    f"{stack.stack_file} keysets.{keyset}")


def policy_limit(config: Mapping[str, Any], keyset: str | None, purpose: str | None) -> AgeLimit:
    """The policy config's most specific limit: per keyset, then per purpose, then the top level.

    warnDays is taken only from the level that sets maxAgeDays or a more specific one; a limit
    without it gets the domain's default for that maximum age.
    """
    levels: list[tuple[str, Mapping[str, Any]]] = []
    if keyset and keyset in (config.get("keysets") or {}):
        levels.append((f"policy config keysets.{keyset}", config["keysets"][keyset] or {}))
    if purpose and purpose in (config.get("purposes") or {}):
        levels.append((f"policy config purposes.{purpose}", config["purposes"][purpose] or {}))
    levels.append(("policy config maxAgeDays", config))
    warn = None
    for source, level in levels:
        if warn is None and level.get("warnDays") is not None:
            warn = float(level["warnDays"])
        if level.get("maxAgeDays") is not None:
            max_age = float(level["maxAgeDays"])
            if warn is None:
                warn = float(default_warn_days(int(max_age)))
            return AgeLimit(max_age, warn, source)
    # No maxAgeDays anywhere (a test calling the policy without the CLI's schema defaults).
    max_age = float(Timings.max_age_days)
    return AgeLimit(max_age, warn if warn is not None else float(default_warn_days(int(max_age))),
                    "default maxAgeDays")


def evaluation_time(config: Mapping[str, Any]) -> datetime:
    """``now`` from the policy config, else the clock variable (names.NOW_VARIABLE), else the clock."""
    for source, text in (("policy config 'now'", config.get("now")),
                         (f"${NOW_VARIABLE}", os.environ.get(NOW_VARIABLE))):
        if text:
            try:
                # The program's and the commands' one time rule: strict RFC 3339, in range.
                return times.parse(str(text))
            except times.TimeError as error:
                if "needs a timezone" in str(error):
                    raise ValueError(f"{source} is {text!r}: give a time zone (e.g. a trailing Z)") from None
                raise ValueError(f"{source} is {text!r}, not an RFC 3339 time such as"
                                 " 2026-11-23T12:00:00Z") from None
    return datetime.now(UTC)


def profile(config: Mapping[str, Any], keyset: str | None = None) -> str:
    """The profile to enforce: the keyset's in the policy config, the policy config's, else the
    keyset's own `profile` in the stack file, else the stack's `key-rotation:profile`."""
    chosen = ((config.get("keysets") or {}).get(keyset) if keyset else None) or config.get("profile") \
        or (stack_config.keyset_profile(keyset) if keyset else None) or stack_config.profile() or "default"
    if chosen not in PROFILES:
        raise ValueError(f"unknown profile {chosen!r} (profiles: {', '.join(PROFILES)})")
    return chosen


def min_deletion_window_days(config: Mapping[str, Any]) -> float:
    value = config.get("minDeletionWindowDays")
    return float(Timings.deletion_window_days if value is None else value)


def stack_name() -> str:
    """The stack being previewed (from the engine's ConfigureStack), for commands in messages."""
    return stack_config.stack_name() or "<stack>"


def iso(t: datetime | None) -> str:
    assert t is not None, "a time the pack has read or computed"
    return format_time(t)


def _days(value: float) -> str:
    return f"{value:g} days" if value != 1 else "1 day"


def days(value: float) -> str:
    return _days(round(value, 1))
