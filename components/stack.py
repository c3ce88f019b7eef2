"""Reading the stack's configuration once, as the Pulumi engine hands it to the program."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pulumi
from pulumi.runtime import config as runtime_config

from keyrotation import config, times
from keyrotation.config import PIN_KEY, PROJECT, ConfigError, StackConfig
from keyrotation.names import NOW_VARIABLE


def now() -> datetime:
    """The clock variable (``names.NOW_VARIABLE``; strict RFC 3339, else the run stops), or the clock."""
    pinned = os.environ.get(NOW_VARIABLE)
    if pinned is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return times.parse(pinned)
    except times.TimeError as error:
        raise pulumi.RunError(f"${NOW_VARIABLE}={times.shown(pinned)}: {error}; unset it or give e.g."
                              f" {times.EXAMPLE}") from None


def load_stack() -> StackConfig:
    """The validated stack config; a bad stack file stops the program before any resource.

    The engine hands the program the config values, not the file: the program validates those,
    and reads the stack file beside ``Pulumi.yaml`` (when it is there) for what only the text
    shows (duplicate keys, aliases, comments holding key material), through the same validator
    the rotation commands use.
    """
    stack_file = f"Pulumi.{pulumi.get_stack()}.yaml"
    text = None
    path = Path(stack_file)
    try:
        if path.is_file():
            text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise pulumi.RunError(f"{stack_file}: cannot read the stack file ({type(error).__name__})") from None
    engine_config = runtime_config.CONFIG.get()
    try:
        stack = config.load(stack_file, text=text, config=engine_config, now=now())
    except ConfigError as error:
        # RunError: the CLI shows the message without a Python traceback.
        raise pulumi.RunError(str(error)) from None
    check_tokens(stack, engine_config.get(f"{PROJECT}:{PIN_KEY}"))
    return stack


def check_tokens(stack: StackConfig, configured_pin: str | None) -> None:
    """Every PKCS#11 module, token and the PIN work, before any resource is registered: a wrong
    PIN or a missing token stops the run with nothing done, naming the keyset and the token."""
    keysets = [ks for ks in stack.keysets.values() if ks.backend == "pkcs11"]
    if not keysets:
        return
    from keyrotation import pkcs11_token

    pin = pkcs11_token.pin(configured_pin)
    checked: set[tuple[str, str]] = set()
    for ks in keysets:
        token = ks.pkcs11
        assert token is not None  # resolved by the config for backend pkcs11
        if (token.module, token.token) in checked:
            continue
        checked.add((token.module, token.token))
        try:
            pkcs11_token.check(pkcs11_token.Where(token.module, token.token, ks.name), pin)
        except pkcs11_token.TokenError as error:
            raise pulumi.RunError(f"{stack.stack_file}: {error}") from None
