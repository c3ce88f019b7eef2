"""The PKCS#11 PIN of the dynamic providers that open a token (the key provider, and the publisher
when it signs with a token's key).

The engine hands a dynamic provider its config at ``configure``; the PIN is kept in memory only:
the provider object is pickled into the state, so the pickle leaves the PIN out.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import ConfigureRequest, ResourceProvider


class PinConfigured(ResourceProvider):
    """A dynamic provider that reads ``key-rotation:pkcs11Pin`` (else ``PKCS11_PIN``, where it opens
    the token) and never stores it."""

    def __init__(self) -> None:
        super().__init__()
        self._pin: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The serialized provider is stored in the state: never with the PIN.
        return {k: v for k, v in self.__dict__.items() if k != "_pin"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pin = None

    def configure(self, req: ConfigureRequest) -> None:
        self._pin = req.config.get("pkcs11Pin")
