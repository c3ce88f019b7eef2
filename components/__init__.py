"""Pulumi components of the key-rotation program, one module per concern.

Backend modules (``software``, ``external``, ``aws_kms``, ``gcp_kms``) are imported lazily by
:func:`components.backend.load_backend`, so a stack loads only the cloud SDKs it uses.
"""

from components.backend import SharedResources
from components.keyset import KeyGeneration, KeyGenerationArgs, KeySet, KeySetArgs
from components.stack import load_stack
from keyrotation.runtime import provider_errors_in_one_line

# Unpickling a dynamic provider imports this package first, in the engine's provider process.
provider_errors_in_one_line()

__all__ = ["KeyGeneration", "KeyGenerationArgs", "KeySet", "KeySetArgs", "SharedResources", "load_stack"]
