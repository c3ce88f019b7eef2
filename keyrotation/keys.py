"""Key material: generation with ``cryptography``, PEM handling and JWK encoding via joserfc.

Private key material leaves this module only as PEM or base64 text destined for a Pulumi secret.
"""

from __future__ import annotations

import base64
import hashlib
import string
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from .algorithms import Algorithm

PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
"""JWK members that carry private or secret key material (RFC 7518 section 6)."""

_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521", "secp256k1": "secp256k1"}


def load_public_key(pem: str):
    try:
        return serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError) as error:
        raise ValueError(str(error).split("\n")[0] or "unreadable PEM") from None


def describe_public_key(key) -> tuple[str, Any]:
    """(kty, curve or RSA size) of a public key object."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "OKP", "Ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", _CURVE_NAMES.get(key.curve.name, key.curve.name)
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    return type(key).__name__, "?"


def generate_private(spec: Algorithm, key_size: int = 2048) -> str:
    """New key material as text: PKCS#8 PEM for key pairs, base64 for symmetric keys."""
    key = spec.generate(key_size)
    if isinstance(key, bytes):
        return base64.b64encode(key).decode()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem_from_private(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_pem_from_der(der: bytes) -> str:
    key = serialization.load_der_public_key(der)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def normalize_public_pem(pem: str) -> str:
    """The canonical SubjectPublicKeyInfo PEM of a public key given in any PEM layout."""
    return load_public_key(pem).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_der_b64url(public_pem: str) -> str:
    """The SubjectPublicKeyInfo DER, base64url without padding (raw bytes for Ed25519)."""
    key = load_public_key(public_pem)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jose_key(public_pem: str):
    key = load_public_key(public_pem)
    kty, _ = describe_public_key(key)
    cls = {"OKP": OKPKey, "EC": ECKey, "RSA": RSAKey}[kty]
    return cls.import_key(key)


def public_jwk(public_pem: str) -> dict[str, Any]:
    """The public JWK members of a key (RFC 7517/7518, OKP per RFC 8037), no private members."""
    jwk = dict(_jose_key(public_pem).as_dict(private=False))
    leaked = PRIVATE_JWK_MEMBERS & jwk.keys()
    if leaked:  # defensive: joserfc never returns these for public keys
        raise ValueError(f"public JWK carries private members {sorted(leaked)}")
    return jwk


def thumbprint(public_pem: str) -> str:
    """RFC 7638 SHA-256 JWK thumbprint, base64url without padding."""
    return _jose_key(public_pem).thumbprint()


def secret_thumbprint(secret_b64: str) -> str:
    """RFC 7638 thumbprint of a symmetric (oct) key: a one-way identifier of the secret."""
    return OctKey.import_key(base64.b64decode(secret_b64)).thumbprint()


def fingerprint(material: str) -> str:
    """SHA-256 of the key's text form (the Secrets Service ledger's fingerprint), hex."""
    return hashlib.sha256(material.encode()).hexdigest()


def render_kid(template: str, *, keyset: str, generation: str, environment: str) -> str:
    return string.Formatter().vformat(
        template, (), {"keyset": keyset, "generation": generation, "environment": environment}
    )
