"""Documents and JWK encoding: RFC vectors, membership by state, no private members."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from keyrotation import algorithms, documents, keys
from keyrotation.config import Generation
from keyrotation.documents import KeyRecord
from keyrotation.lifecycle import State


def b64u(data: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)), "big")


def test_rfc7638_thumbprint_of_the_rfc_example_key():
    # RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint.
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPe"
         "bWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368"
         "QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2"
         "NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    public = rsa.RSAPublicNumbers(b64u("AQAB"), b64u(n)).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert keys.thumbprint(pem) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc8037_okp_jwk_and_thumbprint():
    # RFC 8037 appendix A.2/A.3: the Ed25519 public key and its thumbprint.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    public = ed25519.Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "="))
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert keys.public_jwk(pem) == {"kty": "OKP", "crv": "Ed25519", "x": x}
    assert keys.thumbprint(pem) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize("name", [a.name for a in algorithms.ALGORITHMS.values() if a.cryptography_generates])
def test_every_algorithm_generates_a_key_of_its_kind(name):
    spec = algorithms.ALGORITHMS[name]
    material = keys.generate_private(spec, 2048)
    if spec.is_symmetric:
        assert len(base64.b64decode(material)) == spec.secret_bytes
        return
    public_pem = keys.public_pem_from_private(material)
    jwk = keys.public_jwk(public_pem)
    assert jwk["kty"] == spec.kty
    if spec.curve:
        assert jwk["crv"] == spec.curve
    assert not keys.PRIVATE_JWK_MEMBERS & jwk.keys()


def _record(gen: str, state: State, pem: str | None, **times) -> KeyRecord:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    return KeyRecord.of(Generation(id=gen, state=state, created_at=t, **times), kid=f"k-{gen}",
                        algorithm="EdDSA", public_pem=pem)


@pytest.fixture(scope="module")
def records():
    def new_pem():
        return keys.public_pem_from_private(keys.generate_private(algorithms.ALGORITHMS["EdDSA"]))

    t = datetime(2026, 11, 2, tzinfo=UTC)
    return [
        _record("destroyed", State.DESTROYED, new_pem(), retired_at=t, destroyed_at=t),
        _record("revoked", State.REVOKED, new_pem(), revoked_at=t, revoke_reason="compromise"),
        _record("retired", State.RETIRED, new_pem(), retired_at=t),
        _record("retiring", State.RETIRING, new_pem(), activated_at=t, retiring_at=t),
        _record("active", State.ACTIVE, new_pem(), activated_at=t),
        _record("pending", State.PENDING, new_pem()),
    ]


def test_jwks_holds_exactly_pending_active_and_retiring(records):
    jwks = documents.jwks(records)
    assert [k["kid"] for k in jwks["keys"]] == ["k-retiring", "k-active", "k-pending"]
    for key in jwks["keys"]:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert key["use"] == "sig" and key["alg"] == "EdDSA"


def test_trust_anchor_names_the_active_key(records):
    anchor = documents.trust_anchor(records)
    assert anchor["active_key_id"] == "k-active"
    assert [k["key_id"] for k in anchor["keys"]] == ["k-retiring", "k-active", "k-pending"]
    assert anchor["keys"][0]["algorithm"] == "Ed25519"


def test_signers_registry(records):
    registry = documents.signers(records)
    assert [s["signerId"] for s in registry] == ["k-retiring", "k-active", "k-pending"]
    assert all(s["publicKey"].startswith("-----BEGIN PUBLIC KEY-----") for s in registry)
    assert all(s["algorithm"] == "ed25519" for s in registry)


def test_key_history_keeps_every_generation_and_lists_revocations(records):
    history = documents.key_history(records)
    assert [h["keyid"] for h in history["keyHistory"]] == [r.kid for r in records]
    assert history["revokedKeys"] == ["k-revoked"]
    revoked = history["keyHistory"][1]
    assert revoked["revokedAt"] == "2026-11-02T00:00:00Z" and revoked["revokeReason"] == "compromise"
    # A destroyed generation keeps its public key in the history (to verify old signatures).
    assert history["keyHistory"][0]["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")


def test_rendering_is_canonical(records):
    a = documents.render(documents.jwks(records))
    b = documents.render(json.loads(a))
    assert a == b and a.endswith("\n")


def test_private_members_are_detected():
    assert documents.private_members({"keys": [{"kty": "OKP", "x": "a", "d": "secret"}]}) == ["$.keys[0].d"]
    assert documents.private_members([{"publicKey": "-----BEGIN PRIVATE KEY-----"}]) == ["$[0].publicKey"]
    assert documents.private_members({"keys": [{"kty": "OKP", "x": "a"}]}) == []


def test_key_history_publishes_every_period_of_a_rolled_back_generation():
    from keyrotation.config import parse

    stack = parse({"environment": "t", "keysets": {"gw": {"purpose": "sign", "algorithm": "EdDSA",
                                                          "generations": [
        {"id": "a", "state": "active", "createdAt": "2026-11-01T00:00:00Z",
         "activatedAt": "2026-11-01T00:10:00Z",
         "retiringAt": "2026-11-08T00:10:00Z",
         "history": [{"state": "active", "at": "2026-11-08T01:00:00Z"}]},
        {"id": "b", "state": "retiring", "createdAt": "2026-11-07T00:00:00Z",
         "activatedAt": "2026-11-08T00:10:00Z",
         "retiringAt": "2026-11-08T01:00:00Z"}]}}}, stack_file="Pulumi.t.yaml")
    pem = keys.public_pem_from_private(keys.generate_private(algorithms.ALGORITHMS["EdDSA"]))
    records = [KeyRecord.of(g, kid=f"k-{g.id}", algorithm="EdDSA", public_pem=pem)
               for g in stack.keysets["gw"].generations]
    a, b = documents.key_history(records)["keyHistory"]
    # the first pass as recorded (nothing rewritten), and both signing periods
    assert (a["activatedAt"], a["retiringAt"], a["state"]) == ("2026-11-01T00:10:00Z", "2026-11-08T00:10:00Z",
                                                               "active")
    assert a["signingPeriods"] == [{"from": "2026-11-01T00:10:00Z", "until": "2026-11-08T00:10:00Z"},
                                   {"from": "2026-11-08T01:00:00Z", "until": None}]
    assert [s["state"] for s in a["history"]] == ["pending", "active", "retiring", "active"]
    assert b["signingPeriods"] == [{"from": "2026-11-08T00:10:00Z", "until": "2026-11-08T01:00:00Z"}]
