"""Reading the stack's configuration once, as the Pulumi engine hands it to the program."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from keyrotation.config import PIN_KEY, PROJECT, ConfigError, StackConfig, from_config_map


def load_stack() -> StackConfig:
    """The validated stack config; a bad stack file stops the program before any resource."""
    stack_file = f"Pulumi.{pulumi.get_stack()}.yaml"
    config = runtime_config.CONFIG.get()
    try:
        stack = from_config_map(config, stack_file=stack_file)
    except ConfigError as error:
        # RunError: the CLI shows the message without a Python traceback.
        raise pulumi.RunError(str(error)) from None
    check_tokens(stack, config.get(f"{PROJECT}:{PIN_KEY}"))
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
        if (ks.pkcs11.module, ks.pkcs11.token) in checked:
            continue
        checked.add((ks.pkcs11.module, ks.pkcs11.token))
        try:
            pkcs11_token.check(pkcs11_token.Where(ks.pkcs11.module, ks.pkcs11.token, ks.name), pin)
        except pkcs11_token.TokenError as error:
            raise pulumi.RunError(f"{stack.stack_file}: {error}") from None
