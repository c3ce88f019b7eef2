"""Backend ``pkcs11``: key pairs generated inside a PKCS#11 token; only public keys leave it."""

from __future__ import annotations

import pulumi

from components.backend import BackendArgs, GeneratedKeyArgs, GenerationKey
from components.pkcs11_key import Pkcs11Key, Pkcs11KeyArgs
from keyrotation.config import Generation


class Pkcs11Backend:
    def __init__(self, args: BackendArgs, parent: pulumi.Resource) -> None:
        self.keyset = args.keyset
        self.environment = args.environment
        # Resolved and validated by the config: the keyset's own pkcs11, else the stack's.
        assert args.keyset.pkcs11 is not None
        self.options = args.keyset.pkcs11

    def generation_key(self, generation: Generation, name: str, parent: pulumi.Resource) -> GenerationKey:
        keyset = self.keyset
        key = Pkcs11Key(
            f"{name}-key",
            Pkcs11KeyArgs(**GeneratedKeyArgs.of(keyset, generation, self.environment),
                          module=self.options.module, token=self.options.token),
            pulumi.ResourceOptions(parent=parent),
        )
        return GenerationKey(
            public_pem=key.public_key_pem.apply(lambda pem: pem or None),
            thumbprint=key.thumbprint,
            # What a consumer opens in its own HSM: the label, and the PKCS#11 URI (token, label,
            # id and module path) as the key's name.
            key_id=key.label,
            key_name=key.uri,
            fingerprint=key.fingerprint,
            resource=key,
        )

    def finish(self, keys: dict[str, GenerationKey]) -> None:
        return None


BACKEND = Pkcs11Backend
