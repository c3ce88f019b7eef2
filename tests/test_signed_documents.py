"""Signed documents that chain (issue 15, point 4): DSSE envelopes verified by securesystemslib.

The envelopes are made by the project's code (components/signing.py, the publication provider) and
verified only by securesystemslib's DSSE implementation (`Envelope.verify`), with the verifier's keys
taken from the documents it already accepted: nothing of the code under test checks a signature.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import PyJWK
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError

# The package's public names (its docs import them from here), re-exported without `as` or __all__,
# which mypy's strict no-implicit-reexport does not count as exported.
from securesystemslib.signer import Key, SSlibKey  # type: ignore[attr-defined]

from components.signing import Signer, SigningError, sign_document
from keyrotation import documents, envelope
from keyrotation.config import Generation, parse
from keyrotation.documents import KeyRecord
from keyrotation.errors import KeyRotationError
from keyrotation.lifecycle import State
from tests.engine import Engine, Secret
from tests.project import config_refusal, stack_config

PUBLICATION = "pulumi-python:dynamic/publishing:Publication"
JWKS_TYPE = "application/vnd.key-rotation.jwks+json"


class ChainBroken(Exception):
    """The verifier refused a document: no key it trusts signed it."""


def _pem(private) -> str:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


def _public_pem(private) -> str:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _sslib_key(kid: str, public_key, scheme: str | None = None) -> SSlibKey:
    return SSlibKey.from_crypto(public_key, keyid=kid, scheme=scheme)


def keys_of_jwks(payload: bytes) -> list[Key]:
    """What a verifier learns from an accepted JWKS: its keys, by kid (PyJWT reads the JWKs)."""
    return [_sslib_key(member["kid"], PyJWK(member).key) for member in json.loads(payload)["keys"]]


def accept(trusted: list[Key], text: str, payload_type: str = JWKS_TYPE) -> bytes:
    """Verify an envelope as a verifier holding ``trusted`` does; its payload, or ChainBroken."""
    env = Envelope.from_dict(json.loads(text))
    if env.payload_type != payload_type:
        raise ChainBroken(f"payload type {env.payload_type}")
    try:
        env.verify(trusted, 1)
    except VerificationError as error:
        raise ChainBroken(str(error)) from None
    return env.payload


def walk(first: list[Key], envelopes: list[str]) -> list[Key]:
    """The chain walk: each document accepted with the keys of the previous one, then trusted."""
    trusted = first
    for i, text in enumerate(envelopes):
        try:
            trusted = keys_of_jwks(accept(trusted, text))
        except ChainBroken as error:
            raise ChainBroken(f"document {i}: {error}") from None
    return trusted


# ---------------------------------------------------------------------------------------------
# A year of weekly Ed25519 rotations (the dev stack's gateway), as the publisher signs them.

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WEEKS = 52


def _year() -> tuple[list[ed25519.Ed25519PrivateKey], list[list[str]]]:
    """The JWKS envelopes of every step of a year of weekly rotations, grouped per week.

    Week 0 publishes the first key alone; each later week w rotates (g_w pending), promotes (g_w
    active, g_w-1 retiring: signed by both) and retires (g_w-1 retired), one document per step.
    """
    privates = [ed25519.Ed25519PrivateKey.generate() for _ in range(WEEKS + 1)]
    kid = [f"atlas-g{w}" for w in range(WEEKS + 1)]

    def document(states: dict[int, State]) -> str:
        records = [KeyRecord.of(Generation.model_validate({"id": f"g{w}", "state": state,
                                                           "createdAt": START + timedelta(weeks=w)}),
                                kid=kid[w], algorithm="EdDSA", public_pem=_public_pem(privates[w]))
                   for w, state in sorted(states.items())]
        content = documents.render(documents.build("jwks", records))
        signing = envelope.signing_generations((r.generation, r.state) for r in records)
        signers = [Signer(keyid=f"atlas-{g}", keyset="atlas-gateway", generation=g, algorithm="EdDSA",
                          backend="software") for g in signing]
        private_keys = {f"atlas-{g}": _pem(privates[int(g[1:])]) for g in signing}
        return sign_document("jwks", content, signers, private_keys=private_keys, pin=None)

    weeks = [[document({0: State.ACTIVE})]]
    for w in range(1, WEEKS + 1):
        weeks.append([
            document({w - 1: State.ACTIVE, w: State.PENDING}),
            document({w - 1: State.RETIRING, w: State.ACTIVE}),
            document({w - 1: State.RETIRED, w: State.ACTIVE}),
        ])
    return privates, weeks


@pytest.fixture(scope="module")
def year():
    return _year()


def first_key(privates) -> list[Key]:
    return [_sslib_key("atlas-g0", privates[0].public_key())]


def test_a_year_of_rotations_chains_from_the_first_key_to_the_last(year):
    privates, weeks = year
    trusted = walk(first_key(privates), [text for week in weeks for text in week])
    assert [k.keyid for k in trusted] == [f"atlas-g{WEEKS}"]
    last = privates[WEEKS].public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)
    assert trusted[0].keyval["public"] == last.hex()


def test_the_promotion_is_signed_by_the_new_and_the_previous_key(year):
    _, weeks = year
    promoted = json.loads(weeks[10][1])
    assert [s["keyid"] for s in promoted["signatures"]] == ["atlas-g10", "atlas-g9"]
    assert promoted["payloadType"] == JWKS_TYPE
    # Only the previous key in hand (a verifier that missed the pre-publication): still accepted.
    assert accept(keys_of_jwks(base64.b64decode(json.loads(weeks[9][2])["payload"])), weeks[10][1])


@pytest.mark.parametrize("skipped", [1, 17, WEEKS - 1])
def test_skipping_a_rotation_breaks_the_chain(year, skipped):
    privates, weeks = year
    kept = [text for w, week in enumerate(weeks) if w != skipped for text in week]
    with pytest.raises(ChainBroken, match=f"document {3 * skipped - 2}:"):
        walk(first_key(privates), kept)


def _altered_payload(text: str) -> str:
    env = json.loads(text)
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["keys"][-1]["x"] = payload["keys"][0]["x"]  # an attacker's key under the new kid
    env["payload"] = base64.b64encode(documents.render(payload).encode()).decode()
    return json.dumps(env)


def _altered_signature(text: str) -> str:
    env = json.loads(text)
    for signature in env["signatures"]:
        sig = bytearray(base64.b64decode(signature["sig"]))
        sig[5] ^= 0x01
        signature["sig"] = base64.b64encode(bytes(sig)).decode()
    return json.dumps(env)


def _altered_type(text: str) -> str:
    env = json.loads(text)
    env["payloadType"] = "application/vnd.key-rotation.signers+json"
    return json.dumps(env)


@pytest.mark.parametrize("alter", [_altered_payload, _altered_signature])
def test_an_altered_envelope_breaks_the_chain(year, alter):
    privates, weeks = year
    chain = [text for week in weeks for text in week]
    chain[3 * 20 + 1] = alter(chain[3 * 20 + 1])
    with pytest.raises(ChainBroken, match=f"document {3 * 20 + 1}:"):
        walk(first_key(privates), chain)


def test_a_changed_payload_type_is_not_accepted_under_the_signatures(year):
    privates, weeks = year
    env = Envelope.from_dict(json.loads(_altered_type(weeks[0][0])))
    with pytest.raises(VerificationError):
        env.verify(first_key(privates), 1)  # the type is signed (PAE), so the signature fails


# ---------------------------------------------------------------------------------------------
# The dev stack publishes its gateway JWKS signed, beside the plain one.

SIGNED = "published/atlas/jwks.dsse.json"


def test_the_dev_stack_publishes_a_signed_jwks(project, monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-23T12:00:00Z")
    engine = Engine(project, "dev")
    run = engine.up()

    plain = (project / "published/atlas/.well-known/jwks.json").read_bytes()
    text = (project / SIGNED).read_text()
    # Signed by the active generation and the retiring one, over exactly the plain document.
    assert [s["keyid"] for s in json.loads(text)["signatures"]] == ["atlas-2026-11-23", "atlas-2026-11-16"]
    for kid in ("atlas-2026-11-23", "atlas-2026-11-16"):
        only = [k for k in keys_of_jwks(plain) if k.keyid == kid]
        assert accept(only, text) == plain

    [signed] = [r for r in run.of_type(PUBLICATION) if r.inputs.get("envelope") == "dsse"]
    # The private keys reach the publisher as a secret input, and never its outputs.
    assert isinstance(signed.inputs["signing_keys"], Secret)
    assert "signing_keys" not in signed.outputs
    assert "PRIVATE KEY" not in json.dumps({k: v for k, v in signed.outputs.items() if k != "__provider"})
    assert "PRIVATE KEY" not in text

    # Nothing changed: not signed again, not written again.
    stat = (project / SIGNED).stat()
    again = engine.up()
    assert ("same", signed.urn) in again.operations
    assert (project / SIGNED).stat().st_mtime_ns == stat.st_mtime_ns


def test_a_promotion_in_the_dev_stack_is_accepted_by_a_verifier_holding_the_old_key(project, monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-23T12:00:00Z")
    engine = Engine(project, "dev", config=stack_config("dev"))
    engine.up()
    before = (project / SIGNED).read_text()
    trusted = keys_of_jwks(accept(keys_of_jwks((project / "published/atlas/.well-known/jwks.json")
                                               .read_bytes()), before))

    assert engine.config is not None
    gens = engine.config["key-rotation:keysets"]["atlas-gateway"]["generations"]
    gens[1].update(state="retired", retiredAt="2026-11-23T11:00:00Z")
    gens.append({"id": "2026-11-30", "state": "pending", "createdAt": "2026-11-23T11:30:00Z"})
    engine.up()
    pending = (project / SIGNED).read_text()
    trusted = keys_of_jwks(accept(trusted, pending))
    assert [k.keyid for k in trusted] == ["atlas-2026-11-23", "atlas-2026-11-30"]
    assert [s["keyid"] for s in json.loads(pending)["signatures"]] == ["atlas-2026-11-23"]


# ---------------------------------------------------------------------------------------------
# The backends: AWS KMS Sign (moto), Cloud KMS asymmetricSign (tests/kms_emulators.py's REST API
# over real key pairs) and a PKCS#11 token (SoftHSM2).

def test_an_aws_kms_key_signs_through_kms_sign():
    from tests.kms_emulators import REGION, cloud_servers, environment

    with cloud_servers() as servers, environment(servers.environment):
        kms = servers.kms()
        key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
        content = documents.render({"keys": []})
        signer = Signer(keyid="key-2026", keyset="signer-default", generation="2026", algorithm="ES256",
                        backend="aws-kms", key_id=key_id, region=REGION)
        text = sign_document("jwks", content, [signer], private_keys={}, pin=None)
    assert accept([_sslib_key("key-2026", public)], text) == content.encode()
    assert not accept_with_other_key(text)


@pytest.mark.parametrize(("gcp_algorithm", "algorithm", "scheme"), [
    ("EC_SIGN_P256_SHA256", "ES256", None),
    ("EC_SIGN_P384_SHA384", "ES384", None),
    ("EC_SIGN_ED25519", "EdDSA", None),
    ("RSA_SIGN_PSS_2048_SHA256", "PS256", "rsassa-pss-sha256"),
    ("RSA_SIGN_PKCS1_4096_SHA512", "RS512", "rsa-pkcs1v15-sha512"),
])
def test_a_gcp_kms_version_signs_through_asymmetric_sign(gcp_algorithm, algorithm, scheme):
    from tests.kms_emulators import GcpKms, environment

    gcp = GcpKms()
    version = gcp.new_version(gcp_algorithm)
    content = documents.render({"keys": []})
    signer = Signer(keyid="key-2026", keyset="signer-default", generation="2026", algorithm=algorithm,
                    backend="gcp-kms", key_id=version)
    with environment({"CLOUDKMS_EMULATOR_HOST": gcp.endpoint}):
        text = sign_document("jwks", content, [signer], private_keys={}, pin=None)
    public_pem = gcp.versions[version].public_pem
    assert public_pem is not None
    public = serialization.load_pem_public_key(public_pem.encode())
    assert accept([_sslib_key("key-2026", public, scheme)], text) == content.encode()
    assert gcp.calls == [("POST", f"/v1/{version}:asymmetricSign")]


def test_cloud_kms_takes_data_for_ed25519_and_a_digest_for_the_others():
    """The emulator refuses what Cloud KMS refuses, so the signing path is tested against its rules."""
    from tests.kms_emulators import GcpKms

    gcp = GcpKms()
    ed, p256 = gcp.new_version("EC_SIGN_ED25519"), gcp.new_version("EC_SIGN_P256_SHA256")
    data = base64.b64encode(b"message").decode()
    sha256 = base64.b64encode(envelope.digest("ES256", b"message")).decode()
    for version, body in ((ed, {"digest": {"sha512": sha256}}), (p256, {"data": data}),
                          (p256, {"digest": {"sha384": sha256}})):
        status, answer = gcp.rest("POST", f"/v1/{version}:asymmetricSign", {}, body)
        assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT"), body
    assert gcp.rest("POST", f"/v1/{ed}:asymmetricSign", {}, {"data": data})[0] == 200
    assert gcp.rest("POST", f"/v1/{p256}:asymmetricSign", {}, {"digest": {"sha256": sha256}})[0] == 200


def test_a_disabled_gcp_kms_version_is_refused_by_name():
    from tests.kms_emulators import GcpKms, environment

    gcp = GcpKms()
    version = gcp.new_version("EC_SIGN_P256_SHA256")
    gcp.versions[version].state = "DISABLED"
    signer = Signer(keyid="k", keyset="gw", generation="g1", algorithm="ES256", backend="gcp-kms",
                    key_id=version)
    with environment({"CLOUDKMS_EMULATOR_HOST": gcp.endpoint}), pytest.raises(SigningError) as refused:
        sign_document("jwks", "{}", [signer], private_keys={}, pin=None)
    assert str(refused.value) == (f"keyset 'gw', generation 'g1' (gcp-kms): Cloud KMS asymmetricSign on"
                                  f" {version} refused: FAILED_PRECONDITION: {version} is not enabled,"
                                  " current state is: DISABLED.")


def accept_with_other_key(text: str) -> bool:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    try:
        accept([_sslib_key("key-2026", other)], text)
    except ChainBroken:
        return False
    return True


@pytest.mark.parametrize(("algorithm", "key_type", "curve", "scheme"), [
    ("ES256", "EC", "P-256", None),
    ("PS256", "RSA", None, "rsassa-pss-sha256"),
    ("RS256", "RSA", None, "rsa-pkcs1v15-sha256"),
])
def test_a_pkcs11_key_signs_inside_its_token(algorithm, key_type, curve, scheme):
    from keyrotation import pkcs11_token
    from tests import softhsm

    token = softhsm.new_token()
    if token is None:
        pytest.skip("SoftHSM2 is not installed")
    with softhsm.active(token):
        where = pkcs11_token.Where(token.module, token.label, "signer-fips", algorithm.lower())
        pem = pkcs11_token.generate(where, token.pin, key_type, curve, 2048)
        content = documents.render({"keys": []})
        signer = Signer(keyid="fips-1", keyset="signer-fips", generation=algorithm.lower(),
                        algorithm=algorithm, backend="pkcs11", module=token.module, token=token.label)
        text = sign_document("jwks", content, [signer], private_keys={}, pin=token.pin)
        with pytest.raises(KeyRotationError, match="keyset 'signer-fips', generation 'es256k'.*no longer in"):
            sign_document("jwks", content, [Signer(
                keyid="x", keyset="signer-fips", generation="es256k", algorithm="ES256", backend="pkcs11",
                module=token.module, token=token.label)], private_keys={}, pin=token.pin)
    public = serialization.load_pem_public_key(pem.encode())
    assert accept([_sslib_key("fips-1", public, scheme)], text) == content.encode()


def test_a_software_key_without_its_private_key_is_refused_by_name():
    with pytest.raises(SigningError, match="keyset 'gw', generation 'g1' \\(software\\): its private key is"):
        sign_document("jwks", "{}", [Signer(keyid="k", keyset="gw", generation="g1", algorithm="EdDSA",
                                            backend="software")], private_keys={}, pin=None)


def test_rsa_software_signatures_verify():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = sign_document("signers", "[]\n", [Signer(keyid="audit-1", keyset="audit", generation="1",
                                                     algorithm="RS256", backend="software")],
                         private_keys={"audit-1": _pem(private)}, pin=None)
    key = _sslib_key("audit-1", private.public_key(), "rsa-pkcs1v15-sha256")
    assert accept([key], text, "application/vnd.key-rotation.signers+json") == b"[]\n"


# ---------------------------------------------------------------------------------------------
# The stack file: who may sign what, refused before any resource.

T0 = "2026-11-01T09:00:00Z"


def stack(**keyset) -> dict:
    base = {
        "purpose": "sign", "algorithm": "ES256",
        "publish": [{"format": "jwks", "target": "file://published/gw.dsse.json", "envelope": "dsse"}],
        "generations": [{"id": "g1", "state": "active", "createdAt": T0, "activatedAt": T0}],
    }
    return {"environment": "dev", "keysets": {"gw": {**base, **keyset}}}


def test_a_signed_publication_is_valid_for_a_software_sign_keyset():
    config = parse(stack(), stack_file="Pulumi.test.yaml")
    assert config.keysets["gw"].publish[0].envelope == "dsse"


def test_a_gcp_kms_keyset_may_sign_its_documents():
    gcp = {"location": "global", "keyRing": "r", "project": "proj-12345"}
    for algorithm in ("ES256", "EdDSA"):
        data = stack(backend="gcp-kms", algorithm=algorithm, gcp=gcp, publish=[
            {"format": "jwks", "target": "gs://trust/gw.dsse.json", "envelope": "dsse"},
            {"format": "key-history", "target": "gs://trust/history.dsse.json", "envelope": "dsse"}])
        keyset = parse(data, stack_file="Pulumi.test.yaml").keysets["gw"]
        assert [p.envelope for p in keyset.publish] == ["dsse", "dsse"]


@pytest.mark.parametrize(("keyset", "expected"), [
    ({"purpose": "encrypt", "algorithm": "A256GCM",
      "publish": [{"format": "key-history", "target": "file://published/h.json", "envelope": "dsse"}]},
     "only a sign keyset's generations can sign a document; this encrypt keyset's keys cannot"),
    ({"purpose": "mac", "algorithm": "HS256",
      "publish": [{"format": "key-history", "target": "file://published/h.json", "envelope": "dsse"}]},
     "this mac keyset's keys cannot"),
    ({"publish": [{"format": "metrics", "target": "file://published/m.prom", "envelope": "dsse"}]},
     "a 'metrics' document is text for a scraper"),
    ({"backend": "aws-kms", "algorithm": "EdDSA", "aws": {"region": "us-east-1"},
      "publish": [{"format": "key-history", "target": "file://published/h.json", "envelope": "dsse"}]},
     "AWS KMS signs EdDSA only over a message of at most 4096 bytes"),
    ({"backend": "gcp-kms", "gcp": {"location": "global", "keyRing": "r", "project": "proj-12345"},
      "publish": [{"format": "jwks", "target": "configmap://trust/gw", "envelope": "dsse"}]},
     "a configmap:// document is written by the Kubernetes provider, which cannot sign"),
])
def test_who_cannot_sign_is_refused_naming_the_field(keyset, expected):
    said = config_refusal(stack(**keyset))
    assert "Pulumi.test.yaml" in said and "keyset 'gw', field 'publish[0].envelope'" in said
    assert expected in said


def test_an_unknown_envelope_lists_the_one_there_is():
    said = config_refusal(stack(publish=[{"format": "jwks", "target": "file://published/gw.json",
                                    "envelope": "cms"}]))
    assert "keyset 'gw', field 'publish.0.envelope': 'cms' is not allowed: 'dsse'" in said


def test_an_external_keyset_cannot_sign():
    private = ec.generate_private_key(ec.SECP256R1())
    data = stack(backend="external")
    data["keysets"]["gw"]["generations"][0]["publicKeyPem"] = _public_pem(private)
    assert ("keyset 'gw', field 'publish[0].envelope': backend 'external' holds no private key here"
            in config_refusal(data))


def test_unsigned_publications_are_unchanged():
    data = stack(publish=[{"format": "jwks", "target": "file://published/gw.json"}])
    assert parse(data, stack_file="Pulumi.test.yaml").keysets["gw"].publish[0].envelope is None
