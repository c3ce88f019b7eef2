"""The one table from a JOSE algorithm name to everything that depends on it.

Config validation, key generation, documents, the cloud backends and the policy pack all read
this table; nothing else in the project restates which algorithm fits which purpose, backend or
profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa


class Purpose(StrEnum):
    SIGN = "sign"
    ENCRYPT = "encrypt"
    MAC = "mac"

    @property
    def symmetric(self) -> bool:
        """Encryption and MAC keys are secrets shared with the consumers; signing keys are pairs."""
        return self is not Purpose.SIGN


class Backend(StrEnum):
    SOFTWARE = "software"
    AWS_KMS = "aws-kms"
    GCP_KMS = "gcp-kms"
    EXTERNAL = "external"
    PKCS11 = "pkcs11"


class Profile(StrEnum):
    DEFAULT = "default"
    FIPS = "fips"
    GOST = "gost"
    SM2 = "sm2"
    PQC = "pqc"


PROFILES: tuple[str, ...] = tuple(p.value for p in Profile)
PURPOSES: tuple[str, ...] = tuple(p.value for p in Purpose)


@dataclass(frozen=True)
class BackendTraits:
    """What one backend can do; every rule that depends on the backend reads this table."""

    generates: bool
    """The program makes the key (``cryptography``, a token or a KMS), not a public key given."""
    holds_material: bool = False
    """The key material is a Pulumi secret the program can deliver (``material``, ``keyring``)."""
    key_arn: bool = False
    """Its keys have an ARN (consumer source ``keyArn``)."""
    key_name: bool = False
    """Its keys have a resource name (consumer source ``keyName``)."""
    kms: bool = False
    """A cloud KMS: disabled keys are scheduled for deletion, and can be restored within the window."""


BACKENDS: dict[Backend, BackendTraits] = {
    Backend.SOFTWARE: BackendTraits(generates=True, holds_material=True),
    Backend.AWS_KMS: BackendTraits(generates=True, key_arn=True, kms=True),
    Backend.GCP_KMS: BackendTraits(generates=True, key_name=True, kms=True),
    Backend.EXTERNAL: BackendTraits(generates=False),
    Backend.PKCS11: BackendTraits(generates=True, key_name=True),
}

RSA_KEY_SIZES = (2048, 3072, 4096)


@dataclass(frozen=True)
class AwsNativeRotation:
    """AWS KMS's native (in place) rotation: only for symmetric encryption keys, with a period
    (``RotationPeriodInDays``) from ``min_days`` to ``max_days``; ``default_days`` when unset."""

    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"
    min_days: int = 90
    max_days: int = 2560
    default_days: int = 365

    def rotates(self, key_spec: str | None, key_usage: str | None = None) -> bool:
        """Whether a key of this spec (and usage) can rotate in place."""
        return key_spec == self.key_spec and (key_usage is None or key_usage == self.key_usage)

    def period_days(self, max_age_days: int) -> int:
        """The period the program sets: as long as allowed, never past ``maxAgeDays`` (config
        validation refuses a ``maxAgeDays`` below ``min_days``)."""
        return min(max_age_days, self.max_days)

    def longest_allowed(self, max_age_days: float) -> float:
        """The longest period the pack accepts: ``maxAgeDays``, or AWS's minimum above it."""
        return max(max_age_days, self.min_days)


AWS_NATIVE_ROTATION = AwsNativeRotation()

PrivateKey = (
    ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | mldsa.MLDSA65PrivateKey
)
"""What :meth:`Algorithm.generate` makes for an asymmetric algorithm (any ML-DSA level)."""

_EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "secp256k1": ec.SECP256K1,
}

_MLDSA: dict[str, Any] = {  # the three ML-DSA private key classes share no base class
    "ML-DSA-44": mldsa.MLDSA44PrivateKey,
    "ML-DSA-65": mldsa.MLDSA65PrivateKey,
    "ML-DSA-87": mldsa.MLDSA87PrivateKey,
}


@dataclass(frozen=True)
class Algorithm:
    """What one JOSE algorithm name implies for every part of the system."""

    name: str
    purpose: Purpose
    kty: Literal["OKP", "EC", "RSA", "oct", "AKP", "SPKI"]
    """JWK key type (RFC 7518 section 6, RFC 8037 for OKP, the JOSE ML-DSA draft for AKP);
    ``SPKI`` for keys JOSE has no key type for (GOST, SM2): they are published as SPKI only."""
    curve: str | None = None
    """JWK ``crv`` for OKP and EC keys."""
    secret_bytes: int | None = None
    """Length of a symmetric key in bytes."""
    hash_name: str | None = None
    """Digest the signature or MAC uses (``SHA256`` ...)."""
    profiles: frozenset[str] = frozenset({"default", "fips"})
    spki_algorithm: str | None = None
    """For ``SPKI`` keys: the SubjectPublicKeyInfo algorithm OID (``keyrotation.spki``)."""
    pkcs11_key_type: str | None = None
    """The PKCS#11 key type (``EC``, ``RSA``) backend ``pkcs11`` generates in a token; None: no
    token key generation for this algorithm (``backend: external`` with its public key instead)."""
    aws_key_spec: str | None = None
    """``customer_master_key_spec`` (``{size}`` is filled with the RSA key size)."""
    aws_key_usage: str | None = None
    aws_signing_algorithm: str | None = None
    """KMS ``SigningAlgorithm`` / ``MacAlgorithm`` used with this JOSE algorithm."""
    gcp_algorithms: dict[int | None, str] = field(default_factory=dict)
    """GCP ``CryptoKeyVersionAlgorithm`` per RSA key size (``None`` for non-RSA keys)."""
    gcp_hsm_only: bool = False
    gcp_rule: str = ""
    """GCP's own rule, quoted in errors when GCP cannot hold a configuration."""
    signers_name: str = ""
    """The algorithm's name in a ``signers.json`` registry (the audit runbook's vocabulary)."""
    anchor_name: str = ""
    """The algorithm's name in a trust-anchor document (the manifest runbook's vocabulary)."""

    @property
    def is_rsa(self) -> bool:
        return self.kty == "RSA"

    @property
    def is_symmetric(self) -> bool:
        return self.kty == "oct"

    @property
    def publishes_public_key(self) -> bool:
        return not self.is_symmetric

    @property
    def has_jwk(self) -> bool:
        """Whether a JWKS can carry the key correctly (JOSE defines its key type)."""
        return self.kty in ("OKP", "EC", "RSA", "AKP")

    @property
    def cryptography_generates(self) -> bool:
        """Whether backend ``software`` can make the key (``cryptography`` implements it)."""
        return self.kty != "SPKI"

    def aws_spec(self, key_size: int) -> str:
        assert self.aws_key_spec is not None
        return self.aws_key_spec.format(size=key_size)

    def gcp_algorithm(self, key_size: int) -> str | None:
        return self.gcp_algorithms.get(key_size if self.is_rsa else None)

    def allowed_in(self, profile: str) -> bool:
        return profile in self.profiles

    def generate(self, key_size: int = 2048) -> PrivateKey | bytes:
        """A new private key: a ``cryptography`` key object, or bytes for symmetric keys."""
        if self.kty == "OKP":
            return ed25519.Ed25519PrivateKey.generate()
        if self.kty == "EC":
            assert self.curve is not None
            return ec.generate_private_key(_EC_CURVES[self.curve]())
        if self.kty == "RSA":
            return rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        if self.kty == "AKP":
            key: PrivateKey = _MLDSA[self.name].generate()
            return key
        if self.kty == "SPKI":
            raise ValueError(f"{self.name} keys are made in an HSM and declared by their public key")
        assert self.secret_bytes is not None
        return os.urandom(self.secret_bytes)


def _ecdsa(name: str, curve: str, bits: int, aws_spec: str, gcp: str | None, *, fips: bool = True,
           hsm_only: bool = False, gcp_rule: str = "") -> Algorithm:
    return Algorithm(
        name=name, purpose=Purpose.SIGN, kty="EC", curve=curve, hash_name=f"SHA{bits}",
        profiles=frozenset({"default", "fips"} if fips else {"default"}),
        pkcs11_key_type="EC", aws_key_spec=aws_spec, aws_key_usage="SIGN_VERIFY",
        aws_signing_algorithm=f"ECDSA_SHA_{bits}",
        gcp_algorithms={None: gcp} if gcp else {}, gcp_hsm_only=hsm_only, gcp_rule=gcp_rule,
        signers_name=f"ecdsa-sha{bits}", anchor_name=f"ECDSA-{curve}",
    )


def _rsa(name: str, bits: int, scheme: str) -> Algorithm:
    pss = scheme == "PSS"
    gcp_kind = "RSA_SIGN_PSS" if pss else "RSA_SIGN_PKCS1"
    # GCP offers SHA-256 digests at every size and SHA-512 only with 4096-bit keys; no SHA-384.
    gcp: dict[int | None, str] = {size: f"{gcp_kind}_{size}_SHA256"
                                  for size in RSA_KEY_SIZES} if bits == 256 else (
        {4096: f"{gcp_kind}_4096_SHA512"} if bits == 512 else {}
    )
    return Algorithm(
        name=name, purpose=Purpose.SIGN, kty="RSA", hash_name=f"SHA{bits}", pkcs11_key_type="RSA",
        aws_key_spec="RSA_{size}", aws_key_usage="SIGN_VERIFY",
        aws_signing_algorithm=f"RSASSA_{'PSS' if pss else 'PKCS1_V1_5'}_SHA_{bits}",
        gcp_algorithms=gcp,
        gcp_rule=(
            "Cloud KMS signs with RSA using SHA-256 at 2048/3072/4096 bits and SHA-512 only at 4096"
            " bits; it has no SHA-384 RSA algorithm"
        ),
        signers_name=f"rsa-{'pss-' if pss else ''}sha{bits}", anchor_name=f"RSA-{scheme}-SHA{bits}",
    )


def _mldsa(level: int) -> Algorithm:
    # FIPS 204 ML-DSA, named as the JOSE/COSE ML-DSA draft names it. AWS KMS holds all three
    # (KeySpec ML_DSA_44/65/87, SigningAlgorithm ML_DSA_SHAKE_256: the botocore model and the
    # pulumi-aws Key docs in this venv); pulumi-gcp 10.2 lists no ML-DSA CryptoKey algorithm.
    return Algorithm(
        name=f"ML-DSA-{level}", purpose=Purpose.SIGN, kty="AKP", profiles=frozenset({"default", "pqc"}),
        aws_key_spec=f"ML_DSA_{level}", aws_key_usage="SIGN_VERIFY",
        aws_signing_algorithm="ML_DSA_SHAKE_256",
        gcp_rule="pulumi-gcp 10.2 lists no ML-DSA algorithm for a Cloud KMS CryptoKey",
        signers_name=f"ml-dsa-{level}", anchor_name=f"ML-DSA-{level}",
    )


def _national(name: str, profile: str, spki_algorithm: str, signers_name: str) -> Algorithm:
    # Held in an HSM, declared by their public key; JOSE has no key type for them.
    return Algorithm(
        name=name, purpose=Purpose.SIGN, kty="SPKI", profiles=frozenset({"default", profile}),
        spki_algorithm=spki_algorithm, signers_name=signers_name, anchor_name=name,
        gcp_rule=f"Cloud KMS has no {name} algorithm",
    )


def _hmac(bits: int) -> Algorithm:
    return Algorithm(
        name=f"HS{bits}", purpose=Purpose.MAC, kty="oct", secret_bytes=bits // 8, hash_name=f"SHA{bits}",
        aws_key_spec=f"HMAC_{bits}", aws_key_usage="GENERATE_VERIFY_MAC",
        aws_signing_algorithm=f"HMAC_SHA_{bits}",
        gcp_algorithms={None: f"HMAC_SHA{bits}"},
        signers_name=f"hmac-sha{bits}", anchor_name=f"HMAC-SHA{bits}",
    )


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            name="EdDSA", purpose=Purpose.SIGN, kty="OKP", curve="Ed25519", hash_name="SHA512",
            profiles=frozenset({"default"}),
            aws_key_spec="ECC_NIST_EDWARDS25519", aws_key_usage="SIGN_VERIFY",
            aws_signing_algorithm="ED25519_SHA_512",
            gcp_algorithms={None: "EC_SIGN_ED25519"},
            signers_name="ed25519", anchor_name="Ed25519",
        ),
        _ecdsa("ES256", "P-256", 256, "ECC_NIST_P256", "EC_SIGN_P256_SHA256"),
        _ecdsa("ES384", "P-384", 384, "ECC_NIST_P384", "EC_SIGN_P384_SHA384"),
        _ecdsa(
            "ES512", "P-521", 512, "ECC_NIST_P521", None, fips=False,
            gcp_rule="Cloud KMS has no P-521 signing algorithm (EC_SIGN_P256_SHA256, "
            "EC_SIGN_P384_SHA384, EC_SIGN_SECP256K1_SHA256 only)",
        ),
        _ecdsa(
            "ES256K", "secp256k1", 256, "ECC_SECG_P256K1", "EC_SIGN_SECP256K1_SHA256", fips=False,
            hsm_only=True,
            gcp_rule="Cloud KMS holds EC_SIGN_SECP256K1_SHA256 only at protection level HSM",
        ),
        *(_rsa(f"RS{bits}", bits, "PKCS1") for bits in (256, 384, 512)),
        *(_rsa(f"PS{bits}", bits, "PSS") for bits in (256, 384, 512)),
        *(_mldsa(level) for level in (44, 65, 87)),
        # Seed 002's names. SM2 keys are EC keys on the SM2 curve (GB/T 32918, RFC 8998's OIDs);
        # GOST R 34.10-2012 with a 256-bit or a 512-bit key (RFC 9215's OIDs).
        _national("SM2-P256", "sm2", "sm2", "sm2-sm3"),
        _national("GOST-R-34.10-2012", "gost", "gost2012-256", "gost2012-256-streebog256"),
        _national("GOST-R-34.10-2012-512", "gost", "gost2012-512", "gost2012-512-streebog512"),
        *(_hmac(bits) for bits in (256, 384, 512)),
        Algorithm(
            name="A256GCM", purpose=Purpose.ENCRYPT, kty="oct", secret_bytes=32,
            aws_key_spec=AWS_NATIVE_ROTATION.key_spec, aws_key_usage=AWS_NATIVE_ROTATION.key_usage,
            gcp_algorithms={None: "GOOGLE_SYMMETRIC_ENCRYPTION"},
            signers_name="aes-256-gcm", anchor_name="AES-256-GCM",
        ),
    )
}

GCP_PURPOSES: dict[Purpose, str] = {
    Purpose.SIGN: "ASYMMETRIC_SIGN",
    Purpose.ENCRYPT: "ENCRYPT_DECRYPT",
    Purpose.MAC: "MAC",
}

PROFILE_RULES: dict[Profile, str] = {
    Profile.DEFAULT: "every algorithm of the contract",
    Profile.FIPS: "no EdDSA, no ES256K, RSA >= 2048, ECDSA P-256/P-384 only",
    Profile.GOST: "GOST R 34.10-2012 only",
    Profile.SM2: "SM2-P256 only",
    Profile.PQC: "ML-DSA-44/65/87 (FIPS 204) only",
}


def allowed_in(profile: str) -> list[str]:
    """The algorithms a profile allows, in table order."""
    return [a.name for a in ALGORITHMS.values() if a.allowed_in(profile)]


def get(name: str) -> Algorithm:
    return ALGORITHMS[name]
