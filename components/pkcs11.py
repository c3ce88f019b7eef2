"""Backend ``pkcs11``: key pairs generated inside a PKCS#11 token; only public keys leave it."""

from __future__ import annotations

import pulumi

from components.backend import BackendArgs, GenerationKey
from components.pkcs11_key import Pkcs11Key, Pkcs11KeyArgs
from keyrotation.config import Generation
from keyrotation.times import format_time


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
            Pkcs11KeyArgs(
                keyset=keyset.name, generation=generation.id, algorithm=keyset.algorithm,
                module=self.options.module, token=self.options.token,
                state=str(generation.state), environment=self.environment, purpose=keyset.purpose,
                created_at=format_time(generation.created_at),
                activated_at=format_time(generation.activated_at) if generation.activated_at else None,
                key_size=keyset.rsa_key_size if keyset.spec.is_rsa else None,
            ),
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
