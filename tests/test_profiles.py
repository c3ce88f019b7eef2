"""The pqc, sm2 and gost profiles: ML-DSA as AKP JWKs, SM2 and GOST keys declared by SPKI.

- ML-DSA: the AKP JWK and its thumbprint match the JOSE/COSE ML-DSA draft's own example
  (draft-ietf-cose-dilithium, appendix A.1: the all-zeros seed), and a signature by the active
  key of a `software` keyset verifies with `cryptography` against the published key.
- SM2: a key pair and a signature made by `openssl` (OpenSSL 3 implements SM2); the program
  publishes the SPKI, and `openssl` verifies the signature against the published key.
- GOST R 34.10-2012: the same with Debian's GOST engine for OpenSSL (libengine-gost-openssl).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from keyrotation import algorithms, config, keys, spki
from tests.engine import Engine, Secret
from tests.project import copy_project

# draft-ietf-cose-dilithium, appendix A.1 (examples/jose/examples/ML_DSA_44.jose.json): the
# ML-DSA-44 key of the all-zeros seed, its kid (the AKP thumbprint) and the ends of its `pub`.
DRAFT_KID = "T4xl70S7MT6Zeq6r9V9fPJGVn76wfnXJ21-gyo0Gu6o"
DRAFT_PUB_START = "unH59k4RuutY-pxvu24U5h8YZD2rSVtHU5qRZsoBmBMcRPgmu9VuNOVdteXi1zNIXjnqJg_GAAxepLqA"
DRAFT_PUB_END = "DZgbTP07e7gEWzw4MFRrndjbDQ"

GENERATIONS = [
    {"id": "old", "state": "retired", "createdAt": "2026-09-01T00:00:00Z",
     "activatedAt": "2026-09-01T01:00:00Z",
     "retiringAt": "2026-10-01T01:00:00Z", "retiredAt": "2026-10-02T01:00:00Z"},
    {"id": "cur", "state": "active", "createdAt": "2026-10-01T00:00:00Z",
     "activatedAt": "2026-10-01T01:00:00Z"},
    {"id": "next", "state": "pending", "createdAt": "2026-11-22T00:00:00Z"},
]


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pem(key) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# ---------------------------------------------------------------------------------------------
# ML-DSA: AKP JWKs


def test_the_akp_jwk_and_thumbprint_match_the_drafts_example():
    public = mldsa.MLDSA44PrivateKey.from_seed_bytes(bytes(32)).public_key()
    jwk = keys.public_jwk(_pem(public))
    assert set(jwk) == {"kty", "alg", "pub"}
    assert jwk["kty"] == "AKP" and jwk["alg"] == "ML-DSA-44"
    assert jwk["pub"].startswith(DRAFT_PUB_START) and jwk["pub"].endswith(DRAFT_PUB_END)
    assert len(_b64url_decode(jwk["pub"])) == 1312  # FIPS 204 table 2
    assert keys.thumbprint(_pem(public)) == DRAFT_KID


@pytest.mark.parametrize("level, size", [(44, 1312), (65, 1952), (87, 2592)])
def test_every_ml_dsa_level_is_generated_and_described(level, size):
    spec = algorithms.ALGORITHMS[f"ML-DSA-{level}"]
    assert spec.profiles == {"default", "pqc"} and spec.kty == "AKP"
    public_pem = keys.public_pem_from_private(keys.generate_private(spec))
    jwk = keys.public_jwk(public_pem)
    assert jwk["alg"] == f"ML-DSA-{level}" and len(_b64url_decode(jwk["pub"])) == size
    canonical = json.dumps({"alg": jwk["alg"], "kty": "AKP", "pub": jwk["pub"]}, separators=(",", ":"))
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert keys.thumbprint(public_pem) == expected


def test_the_pqc_profile_allows_only_ml_dsa():
    assert algorithms.allowed_in("pqc") == ["ML-DSA-44", "ML-DSA-65", "ML-DSA-87"]
    stack = {"key-rotation:environment": "dev", "key-rotation:keysets": {
        "pq": {"purpose": "sign", "algorithm": "ES256", "profile": "pqc", "generations": GENERATIONS[1:2]}}}
    with pytest.raises(config.ConfigError) as raised:
        config.from_config_map(stack, stack_file="Pulumi.dev.yaml")
    assert ("keyset 'pq', field 'algorithm': ES256 is not allowed by profile 'pqc' (ML-DSA-44/65/87"
            " (FIPS 204) only); use ML-DSA-44, ML-DSA-65, ML-DSA-87") in str(raised.value)


def test_cloud_kms_cannot_hold_ml_dsa_but_aws_kms_can():
    spec = algorithms.ALGORITHMS["ML-DSA-65"]
    assert (spec.aws_key_spec, spec.aws_signing_algorithm) == ("ML_DSA_65", "ML_DSA_SHAKE_256")
    keyset = {"purpose": "sign", "algorithm": "ML-DSA-65", "backend": "gcp-kms", "profile": "pqc",
              "gcp": {"location": "global", "keyRing": "r", "project": "stellaops-dev"},
              "generations": GENERATIONS[1:2]}
    with pytest.raises(config.ConfigError, match="gcp-kms cannot hold ML-DSA-65: pulumi-gcp 10.2 lists no"):
        config.from_config_map({"key-rotation:environment": "dev", "key-rotation:keysets": {"pq": keyset}},
                               stack_file="Pulumi.dev.yaml")


@pytest.fixture(scope="module")
def pqc(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("pqc") / "project")
    stack = {"key-rotation:environment": "dev", "key-rotation:keysets": {
        f"pq{level}": {"purpose": "sign", "algorithm": f"ML-DSA-{level}", "profile": "pqc",
                       "publish": [{"format": "jwks", "target": f"file://published/pq{level}/jwks.json"},
                                   {"format": "trust-anchor",
                                    "target": f"file://published/pq{level}/anchor.json"}],
                       "generations": GENERATIONS}
        for level in (44, 65, 87)}}
    return project, Engine(project, "dev", config=stack).up()


@pytest.mark.parametrize("level", [44, 65, 87])
def test_a_signature_by_the_active_ml_dsa_key_verifies_against_the_published_key(pqc, level):
    project, run = pqc
    keyset = f"pq{level}"
    material = run.named(f"{keyset}-cur-key").outputs["private_key"]
    assert isinstance(material, Secret)
    private = serialization.load_pem_private_key(material.value.encode(), password=None)
    assert isinstance(private, (mldsa.MLDSA44PrivateKey, mldsa.MLDSA65PrivateKey, mldsa.MLDSA87PrivateKey))
    message = b"attestation payload"
    signature = private.sign(message)

    outputs = run.outputs["keysets"][keyset]
    jwks = json.loads((project / f"published/{keyset}/jwks.json").read_text())
    assert [k["kid"] for k in jwks["keys"]] == [g["kid"] for g in outputs["generations"] if g["id"] != "old"]
    active = next(k for k in jwks["keys"] if k["kid"] == outputs["activeKid"])
    assert set(active) == {"kty", "alg", "pub", "kid", "use"} and active["alg"] == f"ML-DSA-{level}"
    MLDSAPublicKey = mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey
    public_classes: dict[int, type[MLDSAPublicKey]] = {
        44: mldsa.MLDSA44PublicKey, 65: mldsa.MLDSA65PublicKey, 87: mldsa.MLDSA87PublicKey}
    public_classes[level].from_public_bytes(_b64url_decode(active["pub"])).verify(signature, message)

    anchor = json.loads((project / f"published/{keyset}/anchor.json").read_text())
    entry = next(k for k in anchor["keys"] if k["key_id"] == outputs["activeKid"])
    assert entry["algorithm"] == f"ML-DSA-{level}"
    anchored = serialization.load_der_public_key(_b64url_decode(entry["public_key"]))
    assert isinstance(anchored, (mldsa.MLDSA44PublicKey, mldsa.MLDSA65PublicKey, mldsa.MLDSA87PublicKey))
    anchored.verify(signature, message)


# ---------------------------------------------------------------------------------------------
# SM2 and GOST: external keys declared by their SPKI


def _openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60)


def _gost_engine(cwd: Path) -> bool:
    if shutil.which("openssl") is None:
        return False
    done = subprocess.run(["openssl", "engine", "gost"], cwd=cwd, capture_output=True, text=True, timeout=30)
    return done.returncode == 0


NATIONAL: dict[str, dict[str, Any]] = {
    "SM2-P256": {"profile": "sm2",
                 "genpkey": ["genpkey", "-algorithm", "SM2"],
                 "sign": ["pkeyutl", "-sign", "-rawin", "-digest", "sm3"],
                 "verify": ["pkeyutl", "-verify", "-pubin", "-rawin", "-digest", "sm3"]},
    "GOST-R-34.10-2012": {"profile": "gost", "engine": True,
                          "genpkey": ["genpkey", "-engine", "gost", "-algorithm", "gost2012_256",
                                      "-pkeyopt", "paramset:A"],
                          "sign": ["dgst", "-engine", "gost", "-md_gost12_256"],
                          "verify": ["dgst", "-engine", "gost", "-md_gost12_256"]},
}


def _make_key(tmp: Path, algorithm: str, name: str) -> str:
    recipe = NATIONAL[algorithm]
    _openssl(*recipe["genpkey"], "-out", f"{name}.key", cwd=tmp)
    engine = ["-engine", "gost"] if recipe.get("engine") else []
    _openssl("pkey", *engine, "-in", f"{name}.key", "-pubout", "-out", f"{name}.pub", cwd=tmp)
    return (tmp / f"{name}.pub").read_text()


def _sign(tmp: Path, algorithm: str, name: str, message: Path) -> Path:
    recipe, signature = NATIONAL[algorithm], tmp / f"{name}.sig"
    if recipe["sign"][0] == "pkeyutl":
        _openssl(*recipe["sign"], "-inkey", f"{name}.key", "-in", str(message), "-out", str(signature),
                 cwd=tmp)
    else:
        _openssl(*recipe["sign"], "-sign", f"{name}.key", "-out", str(signature), str(message), cwd=tmp)
    return signature


def _verify(tmp: Path, algorithm: str, public: Path, signature: Path,
            message: Path) -> subprocess.CompletedProcess:
    recipe = NATIONAL[algorithm]
    if recipe["verify"][0] == "pkeyutl":
        command = [*recipe["verify"], "-inkey", str(public), "-in", str(message), "-sigfile", str(signature)]
    else:
        command = [*recipe["verify"], "-verify", str(public), "-signature", str(signature), str(message)]
    return subprocess.run(["openssl", *command], cwd=tmp, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("algorithm", list(NATIONAL))
def test_an_openssl_signature_verifies_against_the_published_spki(tmp_path, algorithm):
    if NATIONAL[algorithm].get("engine") and not _gost_engine(tmp_path):
        pytest.skip("OpenSSL's GOST engine is not installed (apt-get install libengine-gost-openssl)")
    keyset = NATIONAL[algorithm]["profile"]
    public = {gid: _make_key(tmp_path, algorithm, gid) for gid in ("old", "cur", "next")}
    project = copy_project(tmp_path / "project")
    stack = {"key-rotation:environment": "dev", "key-rotation:keysets": {keyset: {
        "purpose": "sign", "algorithm": algorithm, "backend": "external", "profile": keyset,
        "kid": f"{keyset}-{{generation}}",
        "publish": [{"format": "trust-anchor", "target": f"file://published/{keyset}/trust-anchor.json"},
                    {"format": "signers", "target": f"file://published/{keyset}/signers.json"},
                    {"format": "key-history", "target": f"file://published/{keyset}/key-history.json"}],
        "generations": [{**g, "publicKeyPem": public[g["id"]]} for g in GENERATIONS],
    }}}
    Engine(project, "dev", config=stack).up()

    message = tmp_path / "payload"
    message.write_bytes(b"proof chain attestation")
    signature = _sign(tmp_path, algorithm, "cur", message)
    anchor = json.loads((project / f"published/{keyset}/trust-anchor.json").read_text())
    assert anchor["active_key_id"] == f"{keyset}-cur"
    entries = {k["key_id"]: k for k in anchor["keys"]}
    assert set(entries) == {f"{keyset}-cur", f"{keyset}-next"}
    assert entries[f"{keyset}-cur"]["algorithm"] == algorithm
    published = tmp_path / "published.pem"
    published.write_text(spki.PublicKey("?", _b64url_decode(entries[f"{keyset}-cur"]["public_key"])).pem)
    assert _verify(tmp_path, algorithm, published, signature, message).returncode == 0
    # The other published key does not verify this signature.
    published.write_text(spki.PublicKey("?", _b64url_decode(entries[f"{keyset}-next"]["public_key"])).pem)
    assert _verify(tmp_path, algorithm, published, signature, message).returncode != 0

    signers = json.loads((project / f"published/{keyset}/signers.json").read_text())
    assert {s["signerId"]: s["publicKey"].strip() for s in signers} == {
        f"{keyset}-cur": public["cur"].strip(), f"{keyset}-next": public["next"].strip()}
    history = json.loads((project / f"published/{keyset}/key-history.json").read_text())
    assert [e["generation"] for e in history["keyHistory"]] == ["old", "cur", "next"]


def _external(algorithm: str, profile: str, pem: str, publish: list | None = None) -> dict:
    return {"key-rotation:environment": "dev", "key-rotation:keysets": {"hsm": {
        "purpose": "sign", "algorithm": algorithm, "backend": "external", "profile": profile,
        "kid": "hsm-{generation}", "publish": publish or [],
        "generations": [{**GENERATIONS[1], "publicKeyPem": pem}]}}}


def test_a_jwks_cannot_carry_sm2_or_gost(tmp_path):
    pem = _make_key(tmp_path, "SM2-P256", "k")
    with pytest.raises(config.ConfigError) as raised:
        config.from_config_map(_external("SM2-P256", "sm2", pem,
                                         [{"format": "jwks", "target": "file://j.json"}]),
                               stack_file="Pulumi.dev.yaml")
    assert ("keyset 'hsm', field 'publish[0].format': JOSE defines no JWK key type for SM2-P256"
            in str(raised.value))


def test_sm2_keys_are_checked_by_curve_and_point(tmp_path):
    p256 = _pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(config.ConfigError) as raised:
        config.from_config_map(_external("SM2-P256", "sm2", p256), stack_file="Pulumi.dev.yaml")
    assert ("keyset 'hsm', generation 'cur', field 'publicKeyPem': holds a EC P-256 key; SM2-P256 needs SPKI "
            "sm2" in str(raised.value))

    good = _make_key(tmp_path, "SM2-P256", "k")
    der = bytearray(spki.der_of_pem(good))
    der[-1] ^= 0x01  # the point moves off the curve
    with pytest.raises(config.ConfigError, match="SM2 public key point is not on the SM2 curve"):
        config.from_config_map(_external("SM2-P256", "sm2", spki.PublicKey("?", bytes(der)).pem),
                               stack_file="Pulumi.dev.yaml")
    with pytest.raises(config.ConfigError, match="needs SPKI gost2012-256"):
        config.from_config_map(_external("GOST-R-34.10-2012", "gost", good), stack_file="Pulumi.dev.yaml")


def test_the_profiles_keep_to_their_own_algorithms():
    assert algorithms.allowed_in("sm2") == ["SM2-P256"]
    assert algorithms.allowed_in("gost") == ["GOST-R-34.10-2012", "GOST-R-34.10-2012-512"]
    software_sm2 = {"key-rotation:environment": "dev", "key-rotation:keysets": {"hsm": {
        "purpose": "sign", "algorithm": "SM2-P256", "profile": "sm2", "generations": GENERATIONS[1:2]}}}
    with pytest.raises(config.ConfigError,
                       match="SM2-P256 keys are held in an HSM and declared by their public"):
        config.from_config_map(software_sm2, stack_file="Pulumi.dev.yaml")
