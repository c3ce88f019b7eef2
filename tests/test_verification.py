"""Real clients against published documents, and a scan for leaked private key material.

For every `sign` algorithm of the contract: a JWT signed with the active private key verifies with
PyJWT against the JWKS fetched over HTTP from a local server serving the published file; JWTs
signed by retired or revoked generations do not.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from joserfc.jwk import ECKey, OKPKey, RSAKey

from keyrotation.algorithms import ALGORITHMS
from tests.engine import Engine, Secret
from tests.project import copy_project

# The JOSE algorithms PyJWT implements (ML-DSA, SM2 and GOST: tests/test_profiles.py).
SIGN = sorted(a.name for a in ALGORITHMS.values() if a.purpose == "sign" and a.kty in ("OKP", "EC", "RSA"))
SOFTWARE_KEY = "pulumi-python:dynamic/keys:SoftwareKey"

GENERATIONS = [
    {"id": "old", "state": "retired", "createdAt": "2026-09-01T00:00:00Z",
     "activatedAt": "2026-09-01T01:00:00Z",
     "retiringAt": "2026-10-01T01:00:00Z", "retiredAt": "2026-10-02T01:00:00Z"},
    {"id": "bad", "state": "revoked", "createdAt": "2026-10-01T00:00:00Z",
     "activatedAt": "2026-10-01T01:00:00Z",
     "revokedAt": "2026-10-15T00:00:00Z", "revokeReason": "compromise"},
    {"id": "prev", "state": "retiring", "createdAt": "2026-10-14T00:00:00Z",
     "activatedAt": "2026-10-15T00:00:00Z",
     "retiringAt": "2026-11-20T01:00:00Z"},
    {"id": "cur", "state": "active", "createdAt": "2026-11-20T00:00:00Z",
     "activatedAt": "2026-11-20T01:00:00Z"},
    {"id": "next", "state": "pending", "createdAt": "2026-11-22T00:00:00Z"},
]


def config() -> dict:
    return {
        "key-rotation:environment": "dev",
        "key-rotation:keysets": {
            alg.lower(): {
                "purpose": "sign", "algorithm": alg,
                "publish": [{"format": "jwks", "target": f"file://published/{alg.lower()}/jwks.json"},
                            {"format": "signers", "target": f"file://published/{alg.lower()}/signers.json"}],
                "generations": GENERATIONS,
            }
            for alg in SIGN
        },
    }


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("verification") / "project")
    run = Engine(project, "dev", config=config()).up()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(project / "published"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield project, run, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def private_key(run, keyset: str, generation: str):
    material = run.named(f"{keyset}-{generation}-key").outputs["private_key"]
    assert isinstance(material, Secret), "private key material must be a secret"
    return serialization.load_pem_private_key(material.value.encode(), password=None)


def kid(run, keyset: str, generation: str) -> str:
    return next(g["kid"] for g in run.outputs["keysets"][keyset]["generations"] if g["id"] == generation)


def sign(run, algorithm: str, generation: str) -> str:
    keyset = algorithm.lower()
    return jwt.encode({"sub": "user-1", "iss": "key-rotation-tests"}, private_key(run, keyset, generation),
                      algorithm=algorithm, headers={"kid": kid(run, keyset, generation)})


def verify(base_url: str, algorithm: str, token: str) -> dict:
    client = jwt.PyJWKClient(f"{base_url}/{algorithm.lower()}/jwks.json", cache_jwk_set=False)
    signing_key = client.get_signing_key_from_jwt(token)
    return jwt.decode(token, signing_key.key, algorithms=[algorithm])


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", SIGN)
def test_active_key_verifies_against_the_published_jwks(deployed, algorithm):
    _, run, base_url = deployed
    assert verify(base_url, algorithm, sign(run, algorithm, "cur"))["sub"] == "user-1"
    # The retiring key still verifies during the overlap; the pending one is pre-published.
    assert verify(base_url, algorithm, sign(run, algorithm, "prev"))["sub"] == "user-1"
    assert verify(base_url, algorithm, sign(run, algorithm, "next"))["sub"] == "user-1"


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", SIGN)
@pytest.mark.parametrize("generation", ["old", "bad"])
def test_retired_and_revoked_keys_do_not_verify(deployed, algorithm, generation):
    _, run, base_url = deployed
    with pytest.raises(jwt.PyJWKClientError, match="Unable to find a signing key"):
        verify(base_url, algorithm, sign(run, algorithm, generation))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_signers_registry_pem_verifies_the_active_signature(deployed, algorithm):
    project, run, _ = deployed
    token = sign(run, algorithm, "cur")
    registry = json.loads((project / f"published/{algorithm.lower()}/signers.json").read_text())
    entry = next(s for s in registry if s["signerId"] == kid(run, algorithm.lower(), "cur"))
    public = serialization.load_pem_public_key(entry["publicKey"].encode())
    assert isinstance(public, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey))
    assert jwt.decode(token, public, algorithms=[algorithm])["sub"] == "user-1"
    assert kid(run, algorithm.lower(), "bad") not in {s["signerId"] for s in registry}


def _needles(run) -> dict[str, str]:
    """Every text form in which a private key could leak: PEM body, DER, JWK private members."""
    needles: dict[str, str] = {}
    for key in run.of_type(SOFTWARE_KEY):
        material = key.outputs["private_key"]
        assert isinstance(material, Secret)
        pem = material.value
        lines = pem.strip().splitlines()
        # a whole base64 line, as a PEM would be pasted (an Ed25519 key has a single one)
        needles[f"{key.name} PEM line"] = max(lines[1:-1], key=len)
        assert "-----" not in needles[f"{key.name} PEM line"]
        needles[f"{key.name} PEM body"] = "".join(lines[1:-1])[40:100]  # as a PEM without line breaks
        obj = serialization.load_pem_private_key(pem.encode(), password=None)
        der = obj.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        needles[f"{key.name} DER (base64url)"] = base64.urlsafe_b64encode(der).decode()[40:100]
        private_jwk = _private_jwk(ALGORITHMS[key.outputs["algorithm"]].kty, obj)
        for member in ("d", "p", "q", "dp", "dq", "qi"):
            if member in private_jwk:
                needles[f"{key.name} JWK {member}"] = private_jwk[member]
    return needles


def _private_jwk(kty: str, obj: PrivateKeyTypes) -> dict[str, Any]:
    """The private JWK of a software key of the algorithm's key type (OKP, EC or RSA)."""
    if kty == "RSA":
        assert isinstance(obj, rsa.RSAPrivateKey)
        return RSAKey.import_key(obj).as_dict(private=True)
    if kty == "EC":
        assert isinstance(obj, ec.EllipticCurvePrivateKey)
        return ECKey.import_key(obj).as_dict(private=True)
    assert kty == "OKP", kty
    assert isinstance(obj, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey,
                            x25519.X25519PrivateKey, x448.X448PrivateKey))
    return OKPKey.import_key(obj).as_dict(private=True)


def _plain_text(value) -> str:
    """Everything in a property tree except what the engine holds as a secret."""
    if isinstance(value, Secret):
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k} {_plain_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(_plain_text(v) for v in value)
    return str(value)


def _haystacks(project, run) -> dict[str, str]:
    """Everything a reader of the state, the outputs, the log or the published files can see."""
    haystacks = {
        f"{r.name} {part}": _plain_text(getattr(r, part))
        for r in run.resources.values() for part in ("inputs", "outputs")
    }
    haystacks["stack outputs"] = _plain_text(run.wire_outputs)
    haystacks["log"] = "\n".join(message for _, message in run.log)
    for path in (project / "published").rglob("*"):
        if path.is_file():
            haystacks[str(path)] = path.read_text()
    return haystacks


def scan(haystacks: dict[str, str], needles: dict[str, str]) -> list[tuple[str, str]]:
    """(needle, haystack) for every needle found."""
    return [(n, h) for n, needle in needles.items() for h, text in haystacks.items() if needle in text]


@pytest.mark.slow
def test_no_private_key_material_outside_secrets(deployed):
    project, run, _ = deployed
    needles = _needles(run)
    assert len(needles) > 4 * len(SIGN)
    assert scan(_haystacks(project, run), needles) == []


def test_a_leak_would_be_found(deployed):
    """The scan is only as good as its needles: key material planted in the real haystacks, in
    each form it could leak in, is found where it was planted, and nowhere else."""
    project, run, _ = deployed
    needles = _needles(run)
    haystacks = _haystacks(project, run)
    pem = run.named("es256-cur-key").outputs["private_key"].value
    obj = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(obj, ec.EllipticCurvePrivateKey)
    der = obj.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    jwks_path = str(project / "published/es256/jwks.json")
    plants = {
        "log": pem,                                                     # a PEM in a log line
        "stack outputs": pem.replace("\n", ""),                         # a PEM pasted without line breaks
        jwks_path: json.dumps({"keys": [ECKey.import_key(obj).as_dict(private=True)]}),  # a private JWK
        "es256-cur-key inputs": base64.urlsafe_b64encode(der).decode(),  # DER, base64url
    }
    for haystack, planted in plants.items():
        poisoned = {**haystacks, haystack: haystacks[haystack] + "\n" + planted}
        found = scan(poisoned, needles)
        assert found, f"a private key planted in {haystack} was not found"
        assert {h for _, h in found} == {haystack}
        assert all(n.startswith("es256-cur-key ") for n, _ in found), found
