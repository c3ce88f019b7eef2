"""Signs a published document through each signing generation's backend: one signing path.

Two kinds of signed documents (:data:`SIGNED_KINDS`), one backend call (:func:`signature`):

- ``dsse``: the document as the payload of a DSSE envelope signed by every signing generation
  (keyrotation.envelope);
- ``jws-lines``: each line of the document (a revocation list's records) as a compact JWS by the
  active generation (keyrotation.revocation), the backend's signature re-encoded as JOSE wants it.

Called by the publication provider (components/publication.py) in its own process, only when the
document or its signers changed: the private key of a ``software`` generation arrives as the
provider's secret input and is used here, never returned; an ``aws-kms`` generation signs with KMS
``Sign``; a ``gcp-kms`` generation with Cloud KMS ``asymmetricSign`` on its CryptoKeyVersion
(components/gcp_kms_rest.py); a ``pkcs11`` generation signs inside its token
(keyrotation.pkcs11_token.sign).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from keyrotation import envelope, revocation
from keyrotation.errors import KeyRotationError

DSSE = "dsse"
JWS_LINES = "jws-lines"
SIGNED_KINDS = (DSSE, JWS_LINES)
"""How a publication's content is signed (its ``envelope`` input)."""


class SigningError(KeyRotationError):
    """Why a generation could not sign: keyset, generation and backend named, no key material."""


@dataclass(frozen=True)
class Signer:
    """One generation that signs, as the publication's inputs carry it (public references only)."""

    keyid: str
    """The generation's kid: the key id verifiers find in the documents."""
    keyset: str
    generation: str
    algorithm: str
    backend: str
    key_id: str | None = None
    """aws-kms: the key's id or ARN; gcp-kms: the CryptoKeyVersion's name
    (``projects/.../cryptoKeyVersions/N``)."""
    region: str | None = None
    """aws-kms: the key's region (None: the environment's)."""
    module: str | None = None
    """pkcs11: the module's path."""
    token: str | None = None
    """pkcs11: the token's label."""

    def props(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def of(cls, props: dict[str, Any]) -> Signer:
        return cls(**{k: props[k] for k in cls.__dataclass_fields__ if props.get(k) is not None})

    def say(self, message: str) -> SigningError:
        return SigningError(f"keyset '{self.keyset}', generation '{self.generation}' ({self.backend}):"
                            f" {message}")


def sign(kind: str, format: str, content: str, signers: list[Signer], *, private_keys: dict[str, str],
         pin: str | None) -> str:
    """The published text of a ``kind`` (:data:`SIGNED_KINDS`) signed document of ``format``."""
    if kind == DSSE:
        return sign_document(format, content, signers, private_keys=private_keys, pin=pin)
    if kind == JWS_LINES:
        return sign_lines(content, signers, private_keys=private_keys, pin=pin)
    raise SigningError(f"unknown signed document kind {kind!r} (known: {', '.join(SIGNED_KINDS)})")


def sign_document(format: str, content: str, signers: list[Signer], *, private_keys: dict[str, str],
                  pin: str | None) -> str:
    """The envelope's canonical text: ``content`` as payload, one signature per signer, in order.

    ``private_keys``: per kid, the PKCS #8 PEM of each ``software`` signer; ``pin``: the PKCS#11
    PIN as configured (else ``PKCS11_PIN``).
    """
    kind = envelope.payload_type(format)
    payload = content.encode()
    message = envelope.pae(kind, payload)
    if not signers:
        raise SigningError(f"a signed {format} document needs a signing generation (active or retiring)")
    signatures = [envelope.Signature(s.keyid, signature(s, message, private_keys, pin)) for s in signers]
    return envelope.render(envelope.envelope(kind, payload, signatures))


def sign_lines(content: str, signers: list[Signer], *, private_keys: dict[str, str],
               pin: str | None) -> str:
    """Each line of ``content`` as a compact JWS by the one signer (the active generation), one per
    line; the empty document stays empty."""
    if len(signers) != 1:
        raise SigningError(f"a document signed line by line has one signer, the active generation;"
                           f" {len(signers)} given")
    [signer] = signers
    protected = revocation.header(signer.algorithm, signer.keyid)
    out = []
    for line in revocation.lines(content):
        signed = revocation.signing_input(protected, line)
        jose = revocation.jose_signature(signer.algorithm, signature(signer, signed, private_keys, pin))
        out.append(revocation.compact(signed, jose) + "\n")
    return "".join(out)


def signature(signer: Signer, message: bytes, private_keys: dict[str, str], pin: str | None) -> bytes:
    """``signer``'s signature of ``message``, made by its backend, in the algorithm's usual encoding
    (ECDSA DER, EdDSA and RSA raw): the one call every signed document goes through."""
    if signer.backend == "software":
        private = private_keys.get(signer.keyid)
        if not private:
            raise signer.say("its private key is gone (destroyed), so it cannot sign")
        return envelope.software_signature(signer.algorithm, private, message)
    if signer.backend == "aws-kms":
        return _aws_sign(signer, message)
    if signer.backend == "gcp-kms":
        return _gcp_sign(signer, message)
    if signer.backend == "pkcs11":
        from keyrotation import pkcs11_token

        assert signer.module and signer.token
        where = pkcs11_token.Where(signer.module, signer.token, signer.keyset, signer.generation)
        return pkcs11_token.sign(where, pkcs11_token.pin(pin), signer.algorithm, message)
    raise signer.say("this backend cannot sign documents (docs/config.md, \"Signed documents\")")


def _aws_sign(signer: Signer, message: bytes) -> bytes:
    import boto3

    from keyrotation.algorithms import ALGORITHMS

    spec = ALGORITHMS[signer.algorithm]
    if len(message) <= envelope.RAW_SIGN_LIMIT:
        body, kind = message, "RAW"
    elif spec.kty in ("EC", "RSA"):
        body, kind = envelope.digest(signer.algorithm, message), "DIGEST"
    else:
        raise signer.say(f"the document is {len(message)} bytes; AWS KMS signs {signer.algorithm} only"
                         f" over at most {envelope.RAW_SIGN_LIMIT} bytes")
    client = boto3.client("kms", region_name=signer.region or None)
    answer = client.sign(KeyId=signer.key_id, Message=body, MessageType=kind,
                         SigningAlgorithm=spec.aws_signing_algorithm)
    signature: bytes = answer["Signature"]
    return signature


def _gcp_sign(signer: Signer, message: bytes) -> bytes:
    """Cloud KMS ``asymmetricSign``: the digest for ECDSA and RSA (the key version's algorithm fixes
    the hash), the message itself for Ed25519 (``EC_SIGN_ED25519`` signs the data: PureEdDSA).
    ECDSA signatures come back DER, Ed25519 and RSA raw: the encodings :func:`signature` returns."""
    import base64

    from components import gcp_kms_rest
    from keyrotation.algorithms import ALGORITHMS

    assert signer.key_id, "a gcp-kms signer names its CryptoKeyVersion"
    spec = ALGORITHMS[signer.algorithm]
    if spec.kty == "OKP":
        body: dict[str, Any] = {"data": base64.b64encode(message).decode()}
    else:
        assert spec.hash_name, "ECDSA and RSA algorithms name their hash"
        digest = envelope.digest(signer.algorithm, message)
        body = {"digest": {spec.hash_name.lower(): base64.b64encode(digest).decode()}}
    try:
        answer = gcp_kms_rest.call(signer.key_id, "POST", ":asymmetricSign", body)
    except gcp_kms_rest.CloudKmsRefused as error:
        raise signer.say(f"Cloud KMS asymmetricSign on {signer.key_id} refused: {error}") from None
    return base64.b64decode(answer["signature"])
