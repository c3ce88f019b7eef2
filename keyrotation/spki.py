"""SubjectPublicKeyInfo of the keys ``cryptography`` cannot load: SM2 and GOST R 34.10-2012.

The structure is decoded with asn1crypto (DER only, strict); what is checked here is this
project's own rule of what an SM2 or GOST public key must look like:

- SM2 (GB/T 32918, OIDs as in RFC 8998 and OpenSSL 3): algorithm ``id-ecPublicKey`` with the
  named curve ``1.2.156.10197.1.301`` (or the algorithm OID ``1.2.156.10197.1.301`` itself), and an
  uncompressed point that lies on the SM2 curve.
- GOST R 34.10-2012 (RFC 9215): algorithm ``1.2.643.7.1.1.1.1`` (256-bit) or ``1.2.643.7.1.1.1.2``
  (512-bit), a known public-key parameter set, and an OCTET STRING of 64 or 128 bytes (x || y,
  little-endian). The point is not checked against its curve: that needs each parameter set's
  curve, which no well-kept Python library here carries.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from asn1crypto import core, pem

EC_PUBLIC_KEY = "1.2.840.10045.2.1"
SM2_CURVE = "1.2.156.10197.1.301"
GOST_2012_256 = "1.2.643.7.1.1.1.1"
GOST_2012_512 = "1.2.643.7.1.1.1.2"

# RFC 9215 section 3 / RFC 7836: the parameter sets a GOST R 34.10-2012 key may name.
GOST_PARAM_SETS = {
    GOST_2012_256: {
        "1.2.643.2.2.35.1": "CryptoPro-A", "1.2.643.2.2.35.2": "CryptoPro-B",
        "1.2.643.2.2.35.3": "CryptoPro-C", "1.2.643.2.2.36.0": "CryptoPro-XchA",
        "1.2.643.2.2.36.1": "CryptoPro-XchB", "1.2.643.7.1.2.1.1.1": "TC26-256-A",
        "1.2.643.7.1.2.1.1.2": "TC26-256-B", "1.2.643.7.1.2.1.1.3": "TC26-256-C",
        "1.2.643.7.1.2.1.1.4": "TC26-256-D",
    },
    GOST_2012_512: {
        "1.2.643.7.1.2.1.2.1": "TC26-512-A", "1.2.643.7.1.2.1.2.2": "TC26-512-B",
        "1.2.643.7.1.2.1.2.3": "TC26-512-C",
    },
}
_GOST_POINT_BYTES = {GOST_2012_256: 64, GOST_2012_512: 128}

# The SM2 curve (GB/T 32918.5), as `openssl ecparam -name SM2 -param_enc explicit -text` prints it.
_SM2_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_SM2_A = _SM2_P - 3
_SM2_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93

KINDS = {"sm2": "SM2", "gost2012-256": "GOST R 34.10-2012 (256-bit)",
         "gost2012-512": "GOST R 34.10-2012 (512-bit)"}
"""``Algorithm.spki_algorithm`` values and how errors name them."""


class _AlgorithmIdentifier(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class _SubjectPublicKeyInfo(core.Sequence):  # type: ignore[misc]
    _fields = [("algorithm", _AlgorithmIdentifier), ("public_key", core.OctetBitString)]


class _GostParameters(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("public_key_param_set", core.ObjectIdentifier),
        ("digest_param_set", core.ObjectIdentifier, {"optional": True}),
    ]


@dataclass(frozen=True)
class PublicKey:
    """A validated SubjectPublicKeyInfo."""

    kind: str
    """``sm2``, ``gost2012-256`` or ``gost2012-512``."""
    der: bytes
    param_set: str | None = None

    @property
    def pem(self) -> str:
        return str(pem.armor("PUBLIC KEY", self.der).decode())

    def fingerprint(self) -> str:
        """base64url SHA-256 of the SPKI DER: the kid of a key JOSE defines no thumbprint for."""
        return base64.urlsafe_b64encode(hashlib.sha256(self.der).digest()).rstrip(b"=").decode()


def der_of_pem(text: str) -> bytes:
    """The DER inside a ``PUBLIC KEY`` PEM block (ValueError otherwise)."""
    data = text.strip().encode()
    if not pem.detect(data):
        raise ValueError("no PEM block (-----BEGIN PUBLIC KEY-----)")
    try:
        kind, _, der = pem.unarmor(data)
    except ValueError as error:
        raise ValueError(f"unreadable PEM: {error}") from None
    if kind != "PUBLIC KEY":
        raise ValueError(f"a {kind} block, not a PUBLIC KEY")
    return bytes(der)


def load(text: str) -> PublicKey:
    """Parse and validate an SM2 or GOST public key PEM; ValueError says what is wrong."""
    der = der_of_pem(text)
    try:
        info = _SubjectPublicKeyInfo.load(der, strict=True)
        algorithm = info["algorithm"]["algorithm"].dotted
        params = info["algorithm"]["parameters"]
        key = info["public_key"]
        key_bytes = key.native
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a DER SubjectPublicKeyInfo: {error}") from None
    if algorithm in (EC_PUBLIC_KEY, SM2_CURVE):
        curve = _oid(params) if params.contents is not None else None
        if algorithm == EC_PUBLIC_KEY and curve != SM2_CURVE:
            raise ValueError(f"an EC key on curve {curve or '(none)'}, not SM2 ({SM2_CURVE})")
        _check_sm2_point(key_bytes)
        return PublicKey("sm2", der)
    if algorithm in _GOST_POINT_BYTES:
        try:
            gost = _GostParameters.load(params.dump(), strict=True)
            param_set = gost["public_key_param_set"].dotted
        except (ValueError, TypeError) as error:
            raise ValueError(f"GOST key without valid parameters: {error}") from None
        if param_set not in GOST_PARAM_SETS[algorithm]:
            raise ValueError(f"GOST key with unknown parameter set {param_set}")
        try:
            point = core.OctetString.load(key_bytes, strict=True).native
        except (ValueError, TypeError) as error:
            raise ValueError(f"GOST public key is not an OCTET STRING: {error}") from None
        if len(point) != _GOST_POINT_BYTES[algorithm]:
            raise ValueError(
                f"GOST public key of {len(point)} bytes; {_GOST_POINT_BYTES[algorithm]} expected"
            )
        kind = "gost2012-256" if algorithm == GOST_2012_256 else "gost2012-512"
        return PublicKey(kind, der, GOST_PARAM_SETS[algorithm][param_set])
    raise ValueError(f"algorithm {algorithm} is neither SM2 nor GOST R 34.10-2012")


def _oid(value: core.Any) -> str:
    try:
        return str(core.ObjectIdentifier.load(value.dump(), strict=True).dotted)
    except (ValueError, TypeError):
        return "(not an OID)"


def _check_sm2_point(point: bytes) -> None:
    if len(point) != 65 or point[0] != 4:
        raise ValueError("SM2 public key is not an uncompressed point (65 bytes starting 04)")
    x = int.from_bytes(point[1:33], "big")
    y = int.from_bytes(point[33:], "big")
    if not (x < _SM2_P and y < _SM2_P and (y * y - (x * x * x + _SM2_A * x + _SM2_B)) % _SM2_P == 0):
        raise ValueError("SM2 public key point is not on the SM2 curve")
