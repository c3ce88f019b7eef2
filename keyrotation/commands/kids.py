"""A generation's key id (kid) as the commands know it: real, or unknown with the reason.

The kid a verifier sees is decided by the program at `pulumi up` (components/keyset.py): the
keyset's kid template rendered, or, for ``kid: thumbprint``, the RFC 7638 thumbprint of the public
key. The commands know it from the stack outputs (what was deployed); without them, a template is
rendered the same way, an external key's thumbprint is computed from the public key in the stack
file (as components/external.py does), and a generated key's thumbprint is unknown: its key does
not exist until it is deployed. Never a made-up placeholder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import keys
from ..config import Generation, KeySetConfig, StackConfig
from ..identifiers import kid_needs_key

FROM_OUTPUTS = "stack outputs"
FROM_TEMPLATE = "kid template"
FROM_PUBLIC_KEY = "thumbprint of the public key in the stack file"


@dataclass(frozen=True)
class Kid:
    value: str | None
    """The kid, or None when it cannot be known here."""
    source: str | None
    """Where it comes from (FROM_OUTPUTS, FROM_TEMPLATE, FROM_PUBLIC_KEY); None when unknown."""
    unknown: str | None = None
    """Why it is unknown, when it is."""

    def text(self, generation: str) -> str:
        """For messages: the kid, or what stands for it."""
        if self.value is not None:
            return self.value
        return f"the kid of '{generation}' (unknown: {self.unknown})"

    def to_json(self) -> dict[str, str | None]:
        return {"kid": self.value, "kidSource": self.source, "kidUnknownReason": self.unknown}


def kid(
    stack: StackConfig, keyset: KeySetConfig, generation: Generation,
    deployed: Mapping[str, str] | None = None,
    *, outputs_unavailable: str | None = None,
) -> Kid:
    """``deployed``: per generation id, the kid in the stack outputs (``Publications.kids``)."""
    if deployed and generation.id in deployed:
        return Kid(deployed[generation.id], FROM_OUTPUTS)
    if not kid_needs_key(keyset.kid):
        return Kid(keys.render_kid(keyset.kid, keyset=keyset.name, generation=generation.id,
                                   environment=stack.environment), FROM_TEMPLATE)
    if generation.public_key_pem:
        thumbprint = keys.thumbprint(keys.normalize_public_pem(generation.public_key_pem))
        return Kid(keys.render_kid(keyset.kid, keyset=keyset.name, generation=generation.id,
                                   environment=stack.environment, thumbprint=thumbprint), FROM_PUBLIC_KEY)
    why = ("the thumbprint of a generated key is known once it is deployed, from the stack outputs"
           + (f" ({outputs_unavailable})" if outputs_unavailable else " (--outputs FILE)"))
    return Kid(None, None, why)
