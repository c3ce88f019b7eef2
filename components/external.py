"""Backend ``external``: keys held elsewhere (an HSM); only their public keys are given."""

from __future__ import annotations

import pulumi

from components.backend import BackendArgs, GenerationKey
from keyrotation import keys
from keyrotation.config import Generation


class ExternalBackend:
    def __init__(self, args: BackendArgs, parent: pulumi.Resource) -> None:
        self.keyset = args.keyset

    def generation_key(self, generation: Generation, name: str, parent: pulumi.Resource) -> GenerationKey:
        # Validated by the config: a parseable public key matching the algorithm.
        assert generation.public_key_pem is not None
        pem = keys.normalize_public_pem(generation.public_key_pem)
        return GenerationKey(
            public_pem=pulumi.Output.from_input(pem),
            thumbprint=pulumi.Output.from_input(keys.thumbprint(pem)),
            key_id=pulumi.Output.from_input(f"{self.keyset.name}/{generation.id}"),
            fingerprint=pulumi.Output.from_input(keys.fingerprint(pem)),
        )

    def finish(self, keys: dict[str, GenerationKey]) -> None:
        return None


BACKEND = ExternalBackend
