"""Pulumi components of the key-rotation program, one module per concern.

Backend modules (``software``, ``external``, ``aws_kms``, ``gcp_kms``) are imported lazily by
:func:`components.backend.load_backend`, so a stack loads only the cloud SDKs it uses.
"""

from components.keyset import KeyGeneration, KeySet, KeySetArgs
from components.stack import load_stack

__all__ = ["KeyGeneration", "KeySet", "KeySetArgs", "load_stack"]
