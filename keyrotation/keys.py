"""Key material: generation with ``cryptography``, PEM handling and JWK encoding via joserfc.

Private key material leaves this module only as PEM or base64 text destined for a Pulumi secret.
ML-DSA public keys become ``AKP`` JWKs here (joserfc 1.8 has no AKP key type), with the AKP
thumbprint of the JOSE/COSE ML-DSA draft (draft-ietf-cose-dilithium, section 6: the members
``alg``, ``kty``, ``pub`` in that order, RFC 7638's procedure). SM2 and GOST public keys, which
``cryptography`` cannot load, are validated by :mod:`keyrotation.spki` and have no JWK.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from . import spki
from .algorithms import Algorithm
from .identifiers import kid_needs_key, kid_template

PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth", "priv"})
"""JWK members that carry private or secret key material (RFC 7518 section 6; ``priv`` of AKP keys,
the JOSE ML-DSA draft)."""

_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521", "secp256k1": "secp256k1"}


_MLDSA_NAMES = {
    mldsa.MLDSA44PublicKey: "ML-DSA-44",
    mldsa.MLDSA65PublicKey: "ML-DSA-65",
    mldsa.MLDSA87PublicKey: "ML-DSA-87",
}


def load_public_key(pem: str) -> Any:
    """A ``cryptography`` public key, or a :class:`spki.PublicKey` for SM2 and GOST keys."""
    try:
        return serialization.load_pem_public_key(pem.strip().encode())
    except UnsupportedAlgorithm as unsupported:
        try:
            return spki.load(pem)
        except ValueError as error:
            raise ValueError(f"{str(unsupported).split(chr(10))[0]}; {error}") from None
    except (ValueError, TypeError) as error:
        raise ValueError(str(error).split("\n")[0] or "unreadable PEM") from None


def _mldsa_name(key: object) -> str | None:
    return next((name for cls, name in _MLDSA_NAMES.items() if isinstance(key, cls)), None)


def describe_public_key(key: Any) -> tuple[str, Any]:
    """(kty, curve or RSA size) of a public key object; ("AKP", "ML-DSA-65"), ("SPKI", "sm2")."""
    if isinstance(key, spki.PublicKey):
        return "SPKI", key.kind
    if _mldsa_name(key):
        return "AKP", _mldsa_name(key)
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
    try:
        key = serialization.load_der_public_key(der)
    except UnsupportedAlgorithm:
        return spki.load(spki.PublicKey("?", der).pem).pem
    return _spki_pem(key)


def normalize_public_pem(pem: str) -> str:
    """The canonical SubjectPublicKeyInfo PEM of a public key given in any PEM layout."""
    key = load_public_key(pem)
    if isinstance(key, spki.PublicKey):
        return str(key.pem)
    return _spki_pem(key)


def _spki_pem(key: Any) -> str:
    """A ``cryptography`` public key as SubjectPublicKeyInfo PEM."""
    encoding, layout = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    text: str = key.public_bytes(encoding, layout).decode()
    return text


def public_der_b64url(public_pem: str) -> str:
    """The SubjectPublicKeyInfo DER, base64url without padding (raw bytes for Ed25519)."""
    key = load_public_key(public_pem)
    if isinstance(key, spki.PublicKey):
        raw = key.der
    elif isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jose_key(key: Any) -> Any:  # a joserfc key; joserfc's import_key is not typed per class
    kty, _ = describe_public_key(key)
    if kty == "SPKI":
        raise ValueError(f"JOSE defines no key type for {spki.KINDS[key.kind]} keys; publish them as SPKI")
    cls: Any = {"OKP": OKPKey, "EC": ECKey, "RSA": RSAKey}[kty]
    return cls.import_key(key)


def akp_jwk(key: Any) -> dict[str, Any]:
    """The public AKP JWK of an ML-DSA key: ``kty``, ``alg`` and ``pub`` (the FIPS 204 encoding)."""
    return {"kty": "AKP", "alg": _mldsa_name(key), "pub": _b64url(key.public_bytes_raw())}


def public_jwk(public_pem: str) -> dict[str, Any]:
    """The public JWK members of a key (RFC 7517/7518, OKP per RFC 8037, AKP per the JOSE ML-DSA
    draft), no private members."""
    key = load_public_key(public_pem)
    jwk = akp_jwk(key) if _mldsa_name(key) else dict(_jose_key(key).as_dict(private=False))
    leaked = PRIVATE_JWK_MEMBERS & jwk.keys()
    if leaked:  # defensive: joserfc never returns these for public keys
        raise ValueError(f"public JWK carries private members {sorted(leaked)}")
    return jwk


def thumbprint(public_pem: str) -> str:
    """RFC 7638 SHA-256 JWK thumbprint, base64url without padding.

    ML-DSA: the AKP thumbprint (required members ``alg``, ``kty``, ``pub``). SM2 and GOST keys have
    no JWK: their identifier is the base64url SHA-256 of the SubjectPublicKeyInfo DER.
    """
    key = load_public_key(public_pem)
    if isinstance(key, spki.PublicKey):
        return key.fingerprint()
    if _mldsa_name(key):
        jwk = akp_jwk(key)
        canonical = json.dumps({m: jwk[m] for m in ("alg", "kty", "pub")}, separators=(",", ":"))
        return _b64url(hashlib.sha256(canonical.encode()).digest())
    return str(_jose_key(key).thumbprint())


def secret_thumbprint(secret_b64: str) -> str:
    """RFC 7638 thumbprint of a symmetric (oct) key: a one-way identifier of the secret."""
    return OctKey.import_key(base64.b64decode(secret_b64)).thumbprint()


def fingerprint(material: str) -> str:
    """SHA-256 of the key's text form (the Secrets Service ledger's fingerprint), hex."""
    return hashlib.sha256(material.encode()).hexdigest()


def render_kid(template: str, *, keyset: str, generation: str, environment: str,
               thumbprint: str | None = None) -> str:
    """The kid of a generation; ``thumbprint`` (the key's :func:`thumbprint`) is required when the
    template uses it."""
    if kid_needs_key(template) and thumbprint is None:
        raise ValueError(f"kid template {template!r} needs the key's thumbprint")
    return string.Formatter().vformat(
        kid_template(template), (),
        {"keyset": keyset, "generation": generation, "environment": environment, "thumbprint": thumbprint},
    )


def thumbprint_in_kid(template: str, kid: str, *, keyset: str, generation: str,
                      environment: str) -> str | None:
    """The thumbprint a kid rendered from ``template`` carries (the inverse of :func:`render_kid`):
    ``sha256:{thumbprint}`` and ``sha256:AbC...`` give ``AbC...``. None when the template has no
    ``{thumbprint}`` or the kid is not one it renders (every ``{thumbprint}`` in it the same 43
    base64url characters, the other placeholders this generation's values)."""
    if not kid_needs_key(template):
        return None
    values = {"keyset": keyset, "generation": generation, "environment": environment}
    pattern, seen = [], False
    for literal, name, _, _ in string.Formatter().parse(kid_template(template)):
        pattern.append(re.escape(literal))
        if name == "thumbprint":
            pattern.append("(?P=thumbprint)" if seen else "(?P<thumbprint>[A-Za-z0-9_-]{43})")
            seen = True
        elif name is not None:
            pattern.append(re.escape(values.get(name, "")))
    found = re.fullmatch("".join(pattern), kid)
    return found.group("thumbprint") if found else None
