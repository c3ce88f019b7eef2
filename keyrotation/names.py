"""The names the program registers and the policy pack (and the tests) read: one definition each.

Type tokens of the components and dynamic resources, the output and property fields the pack
judges by, the ConfigMap data key of an in-cluster document, and the clock variable that pins
"now" for the publisher, the deployment record and the pack.
"""

from __future__ import annotations

PROJECT = "key-rotation"

KEYSET_TYPE = f"{PROJECT}:index:KeySet"
KEY_GENERATION_TYPE = f"{PROJECT}:index:KeyGeneration"
TRUST_ANCHORS_TYPE = f"{PROJECT}:index:TrustAnchors"


def dynamic_type(module: str, name: str) -> str:
    """The type token the Python SDK gives a dynamic resource ``Resource(module=..., name=...)``."""
    return f"pulumi-python:dynamic/{module}:{name}"


SOFTWARE_KEY = ("keys", "SoftwareKey")
PKCS11_KEY = ("keys", "Pkcs11Key")
PUBLICATION = ("publishing", "Publication")
KMS_KEY_RECORD = ("kms", "KeyRecord")
KMS_RESTORED_KEY = ("kms", "RestoredKey")
SWITCH_RECORD = ("deploy", "SwitchRecord")
SOFTWARE_KEY_TYPE = dynamic_type(*SOFTWARE_KEY)
PKCS11_KEY_TYPE = dynamic_type(*PKCS11_KEY)
PUBLICATION_TYPE = dynamic_type(*PUBLICATION)
KMS_KEY_RECORD_TYPE = dynamic_type(*KMS_KEY_RECORD)
KMS_RESTORED_KEY_TYPE = dynamic_type(*KMS_RESTORED_KEY)
SWITCH_RECORD_TYPE = dynamic_type(*SWITCH_RECORD)

# KeyGeneration outputs the pack reads (policy/resources.py)
GENERATION_LIFECYCLE = "lifecycle"
"""The generation as in the stack file (camelCase, history included)."""
GENERATION_TIMINGS = "timings"
GENERATION_KID = "kid"
GENERATION_KEYSET = "keyset"
GENERATION_PURPOSE = "purpose"

# Publication properties the pack and the stack outputs read
FIRST_PUBLISHED = "first_published"
"""Per kid, when the publisher first wrote it (RFC 3339)."""

DEBUG_VARIABLE = "KEY_ROTATION_DEBUG"
"""Set (to anything) to keep tracebacks and error causes: the commands, the publisher."""
NOW_VARIABLE = "KEY_ROTATION_NOW"
"""Pins the clock (RFC 3339) of the publisher, the deployment record and the policy pack."""


def config_map_key(fmt: str) -> str:
    """The ConfigMap key (and so the file name when mounted) a document is stored under."""
    return f"{fmt}.prom" if fmt == "metrics" else f"{fmt}.json"
