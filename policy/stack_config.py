"""The stack's own configuration, as the Pulumi engine hands it to the policy pack.

What the real engine gives a Python pack (CLI v3.274, found by running it; tests/test_real_policy.py):
- `ConfigureStack` (AnalyzerStackConfigureRequest) carries the stack, the project and the whole stack
  config, secrets decrypted, before any `Analyze`. pulumi-policy 1.21 keeps only its tags.
- A current Python language host (`--policy-pack policy`) also passes that config as PULUMI_CONFIG
  and PULUMI_STACK/PULUMI_PROJECT to the pack's process; an executable pack (`policy/analyzer`) and
  the language host this project builds get no such variables.

So the pack takes the config from `ConfigureStack` itself (:mod:`policy.sdk_hooks` hands it to
:func:`receive`), falling back to PULUMI_CONFIG, and validates it with the same `keyrotation.config`
the program uses: the keysets' timings are read, not restated.
"""

from __future__ import annotations

import json
import os
from typing import Any

from keyrotation.config import ConfigError, StackConfig, from_config_map
from keyrotation.metadata import RotationMetadata
from keyrotation.view import view

_received: dict[str, Any] = {}
"""What the last ConfigureStack said: ``stack``, ``project`` and ``config`` (key -> string)."""
_parsed: dict[str, StackConfig | ConfigError | None] = {}


def receive(*, stack: str, project: str, config: dict[str, str]) -> None:
    _received.clear()
    _received.update(stack=stack, project=project, config=config)
    _parsed.clear()


def forget() -> None:
    """As in a pack process that has had no ConfigureStack yet."""
    _received.clear()
    _parsed.clear()


def _config() -> dict[str, str] | None:
    if "config" in _received:
        return _received["config"]
    text = os.environ.get("PULUMI_CONFIG")
    if text:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None
    return None


def stack_name() -> str | None:
    return _received.get("stack") or os.environ.get("PULUMI_STACK") or None


def stack() -> StackConfig | None:
    """The stack's validated config, or None where the engine gave the pack none.

    A config the program would refuse is None too: the program's own error stops that run, and
    the pack then judges by the limits of its policy config alone.
    """
    if "stack" not in _parsed:
        config = _config()
        name = stack_name() or "<stack>"
        try:
            _parsed["stack"] = None if config is None else from_config_map(config,
                                                                           stack_file=f"Pulumi.{name}.yaml")
        except ConfigError as error:
            _parsed["stack"] = error
    parsed = _parsed["stack"]
    return parsed if isinstance(parsed, StackConfig) else None


def described(meta: RotationMetadata) -> RotationMetadata | None:
    """The generation a key resource's metadata names, as the stack config describes it (its keyset
    view's entry): its state, times, algorithm and purpose, from the model the program read. None
    where the config does not describe it (no config, another program's keyset, a generation no
    longer in the stack file): the resource's own tags, labels or annotations then stand for it."""
    config = stack()
    if config is None or meta.keyset not in config.keysets:
        return None
    keyset = config.keysets[meta.keyset]
    if meta.generation not in {g.id for g in keyset.generations}:
        return None
    g = view(keyset).generation(meta.generation)
    return RotationMetadata(
        keyset=keyset.name, generation=g.id, environment=config.environment,
        state=str(g.state), algorithm=keyset.algorithm, purpose=str(keyset.purpose),
        created_at=g.created_at, activated_at=g.activated_at,
    )


def profile() -> str | None:
    """The stack's ``key-rotation:profile`` as given, even where the rest would not validate."""
    config = _config() or {}
    value = config.get("key-rotation:profile")
    return value if isinstance(value, str) and value else None


def keyset_profile(keyset: str) -> str | None:
    """A keyset's own ``profile`` in the stack file as given, even where the rest would not validate."""
    raw = (_config() or {}).get("key-rotation:keysets")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    declared = raw.get(keyset) if isinstance(raw, dict) else None
    value = declared.get("profile") if isinstance(declared, dict) else None
    return value if isinstance(value, str) and value else None
