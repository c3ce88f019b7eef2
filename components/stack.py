"""Reading the stack's configuration once, as the Pulumi engine hands it to the program."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from keyrotation.config import ConfigError, StackConfig, from_config_map


def load_stack() -> StackConfig:
    """The validated stack config; a bad stack file stops the program before any resource."""
    stack_file = f"Pulumi.{pulumi.get_stack()}.yaml"
    try:
        return from_config_map(runtime_config.CONFIG.get(), stack_file=stack_file)
    except ConfigError as error:
        # RunError: the CLI shows the message without a Python traceback.
        raise pulumi.RunError(str(error)) from None
