"""Seed 003's key ids: a kid template with ``{thumbprint}`` (``sha256:{thumbprint}``), the key's RFC 7638
JWK thumbprint, computed here with PyJWT's JWK and the RFC's own recipe (not the code under test)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from keyrotation.commands import schedule
from keyrotation.commands.records import Publications, kid_info
from keyrotation.config import ConfigError, parse
from keyrotation.identifiers import kid_needs_key


def pem_of(key: ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rfc7638(key: ec.EllipticCurvePrivateKey) -> str:
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    required = json.dumps({m: jwk[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"),
                          sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(required.encode()).digest()).rstrip(b"=").decode()


def external(kid: str, *pems: str, backend: str = "external"):
    generations = [
        {"id": f"g{i}", "state": "active" if i == len(pems) - 1 else "retired",
         "createdAt": f"2026-0{i + 1}-01T00:00:00Z",
         **({"activatedAt": f"2026-0{i + 1}-01T00:10:00Z"}),
         **({"retiringAt": f"2026-0{i + 2}-01T00:10:00Z", "retiredAt": f"2026-0{i + 2}-02T00:10:00Z"}
            if i < len(pems) - 1 else {}),
         **({"publicKeyPem": pem} if backend == "external" else {})}
        for i, pem in enumerate(pems)]
    return parse({"environment": "t", "keysets": {"manifests": {
        "purpose": "sign", "algorithm": "ES256", "backend": backend, "kid": kid,
        "publish": [{"format": "jwks", "target": "file://published/m/jwks.json"}],
        "generations": generations}}}, stack_file="Pulumi.t.yaml")


def test_the_placeholder_is_the_rfc_7638_thumbprint_of_the_key():
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    stack = external("sha256:{thumbprint}", *(pem_of(k) for k in keys))
    ks = stack.keysets["manifests"]
    for key, g in zip(keys, ks.generations, strict=True):
        kid = kid_info(stack, ks, g)
        assert kid.value == f"sha256:{rfc7638(key)}" and len(kid.value) == 50
    # `thumbprint` and `{thumbprint}` are the same kid; other placeholders combine with it.
    plain = external("thumbprint", pem_of(keys[0]))
    plain_ks = plain.keysets["manifests"]
    assert kid_info(plain, plain_ks, plain_ks.generations[0]).value == rfc7638(keys[0])
    stack = external("{environment}.{thumbprint}", pem_of(keys[0]))
    assert kid_info(stack, stack.keysets["manifests"], stack.keysets["manifests"].generations[0]).value == \
        f"t.{rfc7638(keys[0])}"


def test_a_generated_keys_thumbprint_kid_is_known_from_the_outputs_and_found_by_valid_at():
    stack = external("sha256:{thumbprint}", "x", "y", backend="software")
    ks = stack.keysets["manifests"]
    assert kid_needs_key(ks.kid)
    unknown = kid_info(stack, ks, ks.generations[1])
    assert unknown.value is None and "known once it is deployed" in (unknown.unknown or "")
    deployed = "sha256:" + "B" * 43
    record = Publications(kids={"g1": deployed}, source="stack outputs")
    answer = schedule.valid_at(stack, "manifests", deployed, ks.generations[1].activated_at, record)
    assert answer.generation == "g1" and answer.kid.value == deployed


def test_one_thumbprint_template_serves_every_generation_without_generation_in_it():
    keys = [pem_of(ec.generate_private_key(ec.SECP256R1())) for _ in range(3)]
    assert len(external("sha256:{thumbprint}", *keys).keysets["manifests"].generations) == 3
    with pytest.raises(ConfigError) as info:
        external("sha256", *keys)
    assert "gives every generation the same kid; include {generation} or {thumbprint}" in str(info.value)


def test_two_generations_with_one_key_have_one_kid_and_are_refused():
    pem = pem_of(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigError) as info:
        external("sha256:{thumbprint}", pem, pem)
    assert "keyset 'manifests', generation 'g1', field 'kid': kid 'sha256:" in str(info.value)
    assert "is also generation 'g0''s kid; kids are unique in a keyset" in str(info.value)


@pytest.mark.parametrize(("template", "why"), [
    ("k" * 90 + ":{thumbprint}", "is longer than 128 characters"),
    ("sha256/{thumbprint}", "contains a path separator"),
    ("sha256:{thumbprint:.8}", "formats a placeholder"),
    ("sha256:{fingerprint}", "uses unknown placeholder(s) fingerprint"),
])
def test_a_thumbprint_template_that_cannot_make_a_sane_kid_is_refused(template, why):
    with pytest.raises(ConfigError) as info:
        external(template, "x", "y", backend="software")
    assert "keyset 'manifests', field 'kid'" in str(info.value) and why in str(info.value)
