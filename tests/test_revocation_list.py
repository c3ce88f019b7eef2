"""Seed 003's revocation list (issue 15, point 3 c): JSON Lines of JWS records by the active key.

The lines are made by the project's code (the publication provider, components/signing.py) and
verified only by PyJWT, with the keys a verifier takes from the published documents (the keyset's
trust anchor): nothing of the code under test checks a signature.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from components.signing import Signer, SigningError, sign_lines
from keyrotation import documents, revocation
from keyrotation.commands.cli import main
from keyrotation.config import Generation, load_stack_file, parse
from keyrotation.documents import KeyRecord
from tests.engine import Engine, Secret
from tests.project import config_refusal

PUBLICATION = "pulumi-python:dynamic/publishing:Publication"
NOW = "2026-11-23T12:00:00Z"
CRL = "published/agent-manifest/.well-known/agent-manifest/revocation"
CRL_TARGET = f"file://{CRL}"
ANCHOR = "published/agent-manifest/trust-anchor.json"
HISTORY = "published/agent-manifest/key-history.json"
ALGORITHMS = ["EdDSA", "ES256", "ES384", "ES512", "ES256K", "RS256", "PS256"]


class Refused(Exception):
    """The verifier refused a line."""


PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
"""The public keys PyJWT verifies a JWS with."""


def verifying(key: object) -> PublicKey:
    """``key``, which the test's flow makes a JWS verification key (a loaded SPKI may be any key type)."""
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
                      | ed448.Ed448PublicKey), key
    return key


def published_keys(anchor_text: str) -> dict[str, PublicKey]:
    """What a seed 003 verifier learns from the trust anchor it polls: per key_id, the public key."""
    def load(key: dict) -> PublicKey:
        raw = base64.urlsafe_b64decode(key["public_key"] + "==")
        if key["algorithm"] == "Ed25519":  # seed 003's raw 32-byte key
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        return verifying(serialization.load_der_public_key(raw))

    return {k["key_id"]: load(k) for k in json.loads(anchor_text)["keys"]}


def verify(line: str, keys: dict[str, PublicKey]) -> dict:
    """Verify one line by itself, as a verifier does: the header's kid names a published key."""
    header = jwt.get_unverified_header(line)
    if header.get("typ") != revocation.RECORD_TYPE or header.get("kid") not in keys:
        raise Refused(f"header {header}")
    try:
        payload = jwt.api_jws.decode(line, keys[header["kid"]], algorithms=[header["alg"]])
    except jwt.InvalidSignatureError as error:
        raise Refused(str(error)) from None
    return json.loads(payload)


def lines_of(text: str) -> list[str]:
    assert text == "" or text.endswith("\n")
    return text.splitlines()


# ---------------------------------------------------------------------------------------------
# The dev stack's manifest-signing keyset (seed 003) publishes its CRL.

@pytest.fixture
def pinned_clock(monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", NOW)


def test_the_dev_stack_publishes_a_crl_each_line_verifiable_against_the_trust_anchor(project, pinned_clock):
    engine = Engine(project, "dev")
    run = engine.up()

    anchor = json.loads((project / ANCHOR).read_text())
    keys = published_keys((project / ANCHOR).read_text())
    lines = lines_of((project / CRL).read_text())
    assert len(lines) == 1
    record = verify(lines[0], keys)
    assert jwt.get_unverified_header(lines[0])["kid"] == anchor["active_key_id"]
    assert jwt.get_unverified_header(lines[0])["alg"] == "EdDSA"

    # The record is the stack file's revoked generation v1, under the kid the key history gives it.
    history = json.loads((project / HISTORY).read_text())["keyHistory"]
    [v1] = [e for e in history if e["generation"] == "v1"]
    stack = load_stack_file(project / "Pulumi.dev.yaml")
    [revoked] = [g for g in stack.keysets["manifest-signing"].generations if g.state == "revoked"]
    assert record == {"key_id": v1["keyid"], "reason": str(revoked.revoke_reason),
                      "revoked_at": "2026-08-01T08:00:00Z", "revoked_by": None}
    assert record["key_id"].startswith("sha256:") and record["key_id"] not in keys

    # Seed 003's headers, whatever the keyset's publishMaxAgeSeconds (300 in dev).
    [crl] = [r for r in run.of_type(PUBLICATION) if r.inputs["target"] == CRL_TARGET]
    assert crl.inputs["cache_control"] == "max-age=30"
    assert crl.inputs["content_type"] == "application/x-ndjson"
    # The active key's private key reaches the publisher as a secret, and is never an output.
    assert isinstance(crl.inputs["signing_keys"], Secret)
    assert "signing_keys" not in crl.outputs
    assert "PRIVATE KEY" not in json.dumps({k: v for k, v in crl.outputs.items() if k != "__provider"})

    # Nothing changed: not signed again, not written again.
    stat = (project / CRL).stat()
    assert ("same", crl.urn) in engine.up().operations
    assert (project / CRL).stat().st_mtime_ns == stat.st_mtime_ns


def _tampered_payload(line: str) -> str:
    header, payload, signature = line.split(".")
    record = json.loads(base64.urlsafe_b64decode(payload + "=="))
    record["reason"] = "superseded"
    forged = base64.urlsafe_b64encode(json.dumps(record).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _tampered_signature(line: str) -> str:
    header, payload, signature = line.split(".")
    sig = bytearray(base64.urlsafe_b64decode(signature + "=="))
    sig[3] ^= 0x01
    return f"{header}.{payload}.{base64.urlsafe_b64encode(bytes(sig)).rstrip(b'=').decode()}"


@pytest.mark.parametrize("tamper", [_tampered_payload, _tampered_signature])
def test_a_tampered_line_is_refused(project, pinned_clock, tamper):
    Engine(project, "dev").up()
    keys = published_keys((project / ANCHOR).read_text())
    [line] = lines_of((project / CRL).read_text())
    assert verify(line, keys)
    with pytest.raises(Refused):
        verify(tamper(line), keys)


def test_a_revocation_then_pulumi_up_adds_its_line_signed_by_the_new_active_key(project, pinned_clock):
    engine = Engine(project, "dev")
    engine.up()
    old_keys = published_keys((project / ANCHOR).read_text())
    before = lines_of((project / CRL).read_text())
    v3 = json.loads((project / ANCHOR).read_text())["active_key_id"]

    # Seed 003's compromise: revoke the active key, which activates a replacement at once.
    assert main(["revoke", "manifest-signing", "v3", "--reason", "compromise", "--id", "v4",
                 "--no-outputs", "--now", NOW, "--file", str(project / "Pulumi.dev.yaml")]) == 0
    engine.up()

    anchor = json.loads((project / ANCHOR).read_text())
    v4 = anchor["active_key_id"]
    assert v4 != v3 and v3 not in published_keys((project / ANCHOR).read_text())
    lines = lines_of((project / CRL).read_text())
    assert len(lines) == len(before) + 1
    keys = published_keys((project / ANCHOR).read_text())
    records = [verify(line, keys) for line in lines]
    # Every line is signed again by the new active key (the revoked one signs nothing more).
    assert {jwt.get_unverified_header(line)["kid"] for line in lines} == {v4}
    # Appended: the new revocation is the last line; the earlier record is unchanged.
    assert records[0] == verify(before[0], old_keys)
    assert records[-1] == {"key_id": v3, "reason": "compromise", "revoked_at": NOW, "revoked_by": None}
    # A verifier still holding only the revoked key cannot be fed a forged list signed by it.
    with pytest.raises(Refused):
        verify(lines[-1], {v3: old_keys[v3]})


def test_mid_rotation_only_the_active_key_signs_and_no_revocation_is_an_empty_list(project, pinned_clock):
    from tests.project import stack_config

    config = stack_config("dev")
    gateway = config["key-rotation:keysets"]["atlas-gateway"]  # active 2026-11-23, retiring 2026-11-16
    gateway["publish"].append({"format": "revocation-list", "target": "file://published/atlas/revocation"})
    run = Engine(project, "dev", config=config).up()
    assert (project / "published/atlas/revocation").read_bytes() == b""
    [crl] = [r for r in run.of_type(PUBLICATION) if r.inputs["target"] == "file://published/atlas/revocation"]
    assert [s["keyid"] for s in crl.inputs["signers"]] == ["atlas-2026-11-23"]


# ---------------------------------------------------------------------------------------------
# The document and the signing path, without the engine.

def _pem(private) -> str:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


def _private(algorithm: str):
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm.startswith("ES"):
        curve: ec.EllipticCurve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1(),
                                   "ES256K": ec.SECP256K1()}[algorithm]
        return ec.generate_private_key(curve)
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _record(generation: str, state: str, *, created_at: str, revoked_at: str | None = None,
            revoke_reason: str | None = None) -> KeyRecord:
    """The record of a generation as the stack file writes it (its field names, RFC 3339 times)."""
    fields = {"id": generation, "state": state, "createdAt": created_at}
    if revoked_at is not None:
        fields["revokedAt"] = revoked_at
    if revoke_reason is not None:
        fields["revokeReason"] = revoke_reason
    g = Generation.model_validate(fields)
    return KeyRecord.of(g, kid=f"k-{generation}", algorithm="ES256", public_pem=None)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_jose_algorithm_signs_lines_a_jose_library_verifies(algorithm):
    private = _private(algorithm)
    content = revocation.render([
        _record("a", "revoked", created_at="2026-01-01T00:00:00Z", revoked_at="2026-02-01T00:00:00Z",
                revoke_reason="personnel"),
        _record("b", "revoked", created_at="2026-01-01T00:00:00Z", revoked_at="2026-03-01T00:00:00Z",
                revoke_reason="compromise"),
    ])
    signer = Signer(keyid="active-1", keyset="ks", generation="c", algorithm=algorithm, backend="software")
    text = sign_lines(content, [signer], private_keys={"active-1": _pem(private)}, pin=None)
    records = [verify(line, {"active-1": private.public_key()}) for line in lines_of(text)]
    assert [r["key_id"] for r in records] == ["k-a", "k-b"]
    other = _private(algorithm).public_key()
    with pytest.raises(Refused):
        verify(lines_of(text)[0], {"active-1": other})


def test_only_revoked_generations_are_listed_in_the_order_they_were_revoked():
    records = [
        _record("old", "revoked", created_at="2026-01-01T00:00:00Z", revoked_at="2026-06-01T00:00:00Z",
                revoke_reason="superseded"),
        _record("retired", "retired", created_at="2026-02-01T00:00:00Z"),
        _record("first", "revoked", created_at="2026-03-01T00:00:00Z", revoked_at="2026-04-01T00:00:00Z",
                revoke_reason="compromise"),
        _record("active", "active", created_at="2026-05-01T00:00:00Z"),
    ]
    listed = [json.loads(line) for line in revocation.lines(documents.build("revocation-list", records))]
    assert [(r["key_id"], r["reason"], r["revoked_at"]) for r in listed] == [
        ("k-first", "compromise", "2026-04-01T00:00:00Z"), ("k-old", "superseded", "2026-06-01T00:00:00Z")]


def test_no_revoked_key_is_an_empty_document():
    content = documents.build("revocation-list", [_record("a", "active", created_at="2026-01-01T00:00:00Z")])
    assert content == ""
    signer = Signer(keyid="k", keyset="ks", generation="a", algorithm="EdDSA", backend="software")
    assert sign_lines(content, [signer], private_keys={"k": _pem(_private("EdDSA"))}, pin=None) == ""


def test_the_lines_are_signed_by_one_signer_only():
    signers = [Signer(keyid=k, keyset="ks", generation=k, algorithm="EdDSA", backend="software")
               for k in ("a", "b")]
    with pytest.raises(SigningError, match="one signer, the active generation; 2 given"):
        sign_lines("{}\n", signers, private_keys={}, pin=None)


def test_an_aws_kms_key_signs_lines_through_kms_sign():
    from tests.kms_emulators import REGION, cloud_servers, environment

    content = revocation.render([_record("a", "revoked", created_at="2026-01-01T00:00:00Z",
                                         revoked_at="2026-02-01T00:00:00Z", revoke_reason="compromise")])
    with cloud_servers() as servers, environment(servers.environment):
        kms = servers.kms()
        key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        public = verifying(serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"]))
        signer = Signer(keyid="key-2026", keyset="signer-default", generation="2026", algorithm="ES256",
                        backend="aws-kms", key_id=key_id, region=REGION)
        text = sign_lines(content, [signer], private_keys={}, pin=None)
    [line] = lines_of(text)
    assert verify(line, {"key-2026": public})["key_id"] == "k-a"


@pytest.mark.parametrize(("gcp_algorithm", "algorithm"), [
    ("EC_SIGN_P256_SHA256", "ES256"), ("EC_SIGN_ED25519", "EdDSA"), ("RSA_SIGN_PSS_2048_SHA256", "PS256"),
    ("RSA_SIGN_PKCS1_3072_SHA256", "RS256"),
])
def test_a_gcp_kms_version_signs_lines_through_asymmetric_sign(gcp_algorithm, algorithm):
    from tests.kms_emulators import GcpKms, environment

    content = revocation.render([_record("a", "revoked", created_at="2026-01-01T00:00:00Z",
                                         revoked_at="2026-02-01T00:00:00Z", revoke_reason="personnel")])
    gcp = GcpKms()
    version = gcp.new_version(gcp_algorithm)
    signer = Signer(keyid="key-2026", keyset="signer-default", generation="2026", algorithm=algorithm,
                    backend="gcp-kms", key_id=version)
    with environment({"CLOUDKMS_EMULATOR_HOST": gcp.endpoint}):
        text = sign_lines(content, [signer], private_keys={}, pin=None)
    [line] = lines_of(text)
    public_pem = gcp.versions[version].public_pem
    assert public_pem is not None
    public = verifying(serialization.load_pem_public_key(public_pem.encode()))
    assert verify(line, {"key-2026": public})["reason"] == "personnel"
    assert gcp.calls == [("POST", f"/v1/{version}:asymmetricSign")]


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "PS256"])
def test_a_pkcs11_key_signs_lines_inside_its_token(algorithm):
    from keyrotation import pkcs11_token
    from tests import softhsm

    token = softhsm.new_token()
    if token is None:
        pytest.skip("SoftHSM2 is not installed")
    content = revocation.render([_record("a", "revoked", created_at="2026-01-01T00:00:00Z",
                                         revoked_at="2026-02-01T00:00:00Z", revoke_reason="hardware")])
    with softhsm.active(token):
        where = pkcs11_token.Where(token.module, token.label, "signer-fips", algorithm.lower())
        key_type, curve = ("EC", "P-256") if algorithm == "ES256" else ("RSA", None)
        pem = pkcs11_token.generate(where, token.pin, key_type, curve, 2048)
        signer = Signer(keyid="fips-1", keyset="signer-fips", generation=algorithm.lower(),
                        algorithm=algorithm, backend="pkcs11", module=token.module, token=token.label)
        text = sign_lines(content, [signer], private_keys={}, pin=token.pin)
    [line] = lines_of(text)
    public = verifying(serialization.load_pem_public_key(pem.encode()))
    assert verify(line, {"fips-1": public})["reason"] == "hardware"


# ---------------------------------------------------------------------------------------------
# The stack file: refused before any resource, naming the field.

T0 = "2026-11-01T09:00:00Z"


def stack(**keyset) -> dict:
    base = {
        "purpose": "sign", "algorithm": "EdDSA",
        "publish": [{"format": "revocation-list", "target": "file://published/crl"}],
        "generations": [{"id": "g1", "state": "active", "createdAt": T0, "activatedAt": T0}],
    }
    return {"environment": "dev", "keysets": {"gw": {**base, **keyset}}}


def test_a_software_sign_keyset_may_publish_a_revocation_list():
    assert parse(stack(), stack_file="Pulumi.test.yaml").keysets["gw"].publish[0].format == "revocation-list"


def test_a_gcp_kms_sign_keyset_may_publish_a_revocation_list():
    gcp = {"location": "global", "keyRing": "r", "project": "proj-12345"}
    for algorithm in ("ES256", "EdDSA", "PS256"):
        keyset = parse(stack(backend="gcp-kms", algorithm=algorithm, gcp=gcp),
                       stack_file="Pulumi.test.yaml").keysets["gw"]
        assert keyset.publish[0].format == "revocation-list"


def _external_pem() -> str:
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.mark.parametrize(("keyset", "field", "expected"), [
    ({"purpose": "encrypt", "algorithm": "A256GCM"}, "format",
     "a revocation list is signed line by line by the keyset's active key; this encrypt keyset's keys"),
    ({"purpose": "mac", "algorithm": "HS256"}, "format", "this mac keyset's keys cannot sign"),
    ({"publish": [{"format": "revocation-list", "target": "file://published/crl", "envelope": "dsse"}]},
     "envelope", "each line of a revocation list is already a JWS signed by the active key"),
    ({"backend": "gcp-kms", "algorithm": "ES256",
      "gcp": {"location": "global", "keyRing": "r", "project": "proj-12345"},
      "publish": [{"format": "revocation-list", "target": "configmap://trust/crl"}]},
     "target", "a configmap:// document is written by the Kubernetes provider, which cannot sign"),
    ({"algorithm": "ML-DSA-65"}, "format", "no JOSE library here verifies ML-DSA-65"),
    ({"algorithm": "ES256", "backend": "external"}, "format",
     "backend 'external' holds no private key here, so nothing can sign; publish the revocation list"
     " from a software, aws-kms, gcp-kms or pkcs11 keyset"),
])
def test_who_cannot_publish_a_revocation_list_is_refused_naming_the_field(keyset, field, expected):
    data = stack(**keyset)
    if keyset.get("backend") == "external":
        data["keysets"]["gw"]["generations"][0]["publicKeyPem"] = _external_pem()
    said = config_refusal(data)
    assert "Pulumi.test.yaml" in said and f"keyset 'gw', field 'publish[0].{field}'" in said, said
    assert expected in said, said


def test_the_dev_stack_revocation_list_target_is_seed_003s_path():
    stack_file = load_stack_file(Path(__file__).parents[1] / "Pulumi.dev.yaml")
    [crl] = [p for p in stack_file.keysets["manifest-signing"].publish if p.format == "revocation-list"]
    assert crl.target.endswith("/.well-known/agent-manifest/revocation")
