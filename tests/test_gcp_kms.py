"""Backend gcp-kms through the engine-faithful harness, and the gs:// publisher.

There is no Cloud KMS emulator: tests/kms_emulators.py answers the Google provider's KeyRing,
CryptoKey and CryptoKeyVersion resources and the getKMSCryptoKeyVersion invoke with real key pairs
per version and Cloud KMS's rules (unique names, version numbering, algorithm/purpose/protection
level, public keys of ENABLED versions only). Documents go to an in-process Cloud Storage API
(gcp-storage-emulator) through the real google-cloud-storage client.
"""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError

# Exported by the package (its docs import it from here), re-exported without `as` or __all__.
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

from keyrotation.metadata import from_gcp_labels
from tests.kms_emulators import (
    GCP_CRYPTO_KEY,
    GCP_KEY_RING,
    GCP_KEY_VERSION,
    KMS_TEST_PROJECT,
    Clouds,
    refused_before_registering,
)
from tests.project import generations as history

NOW = "2026-11-23T12:00:00Z"
PROJECT = KMS_TEST_PROJECT


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", NOW)


def stack(keysets: dict, **extra) -> dict:
    return {
        "gcp:project": PROJECT,
        "key-rotation:environment": "staging",
        "key-rotation:defaults": {"publishMaxAgeSeconds": 600, "deletionWindowDays": 7},
        "key-rotation:keysets": keysets,
        **extra,
    }


def generations(*states: str) -> list[dict]:
    return history(*states, prefix="v")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def version_of(run, keyset: str, generation: str):
    return run.named(f"{keyset}-{generation}-version")


def kms_jwt(clouds: Clouds, version_name: str, alg: str, kid: str, claims: dict) -> str:
    """A compact JWS whose signature the (emulated) Cloud KMS version made."""
    header = {"alg": alg, "kid": kid, "typ": "JWT"}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    ).encode()
    signature = clouds.gcp.sign(version_name, signing_input)
    if alg == "ES256":
        r, s = decode_dss_signature(signature)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{b64url(signature)}"


@pytest.mark.slow
def test_gcp_keysets_share_key_rings_and_versions_follow_the_lifecycle(clouds, project, bucket, servers):
    config = stack({
        "fips-signing": {
            "purpose": "sign", "algorithm": "ES256", "backend": "gcp-kms",
            "gcp": {"location": "us-east1", "keyRing": "signers", "protectionLevel": "HSM"},
            "publish": [{"format": "trust-anchor", "target": f"gs://{bucket}/anchors/fips/trust-anchor.json"},
                        {"format": "key-history", "target": f"gs://{bucket}/anchors/fips/key-history.json"}],
            "generations": generations("retiring", "active", "pending"),
        },
        "gateway": {
            "purpose": "sign", "algorithm": "EdDSA", "backend": "gcp-kms", "kid": "atlas-{generation}",
            "gcp": {"location": "us-east1", "keyRing": "signers"},
            "publish": [{"format": "jwks", "target": f"gs://{bucket}/.well-known/jwks.json"},
                        {"format": "key-history", "target": f"gs://{bucket}/gateway/key-history.json"}],
            "generations": generations("revoked", "active"),
        },
        "chain-signing": {
            "purpose": "sign", "algorithm": "ES256K", "backend": "gcp-kms",
            "gcp": {"location": "global", "keyRing": "chain", "protectionLevel": "HSM"},
            "generations": generations("active"),
        },
        "release-signing": {
            "purpose": "sign", "algorithm": "RS512", "keySize": 4096, "backend": "gcp-kms",
            "gcp": {"location": "global", "keyRing": "chain"},
            "publish": [{"format": "signers", "target": f"gs://{bucket}/release/signers.json"}],
            "generations": generations("active"),
        },
    })
    engine = clouds.engine(project, "test", config=config)
    run = engine.up()

    # One KeyRing per (project, location, ring), however many keysets name it: Cloud KMS answers
    # ALREADY_EXISTS to a second creation, so the run succeeding is the proof.
    rings = run.of_type(GCP_KEY_RING)
    assert sorted(r.id for r in rings) == [
        f"projects/{PROJECT}/locations/global/keyRings/chain",
        f"projects/{PROJECT}/locations/us-east1/keyRings/signers"]

    fips_key = run.named("fips-signing-key")
    assert fips_key.type == GCP_CRYPTO_KEY
    assert fips_key.options.protect, "deleting a CryptoKey would destroy every version"
    assert fips_key.inputs["purpose"] == "ASYMMETRIC_SIGN"
    assert fips_key.inputs["versionTemplate"] == {"algorithm": "EC_SIGN_P256_SHA256",
                                                  "protectionLevel": "HSM"}
    assert fips_key.inputs["destroyScheduledDuration"] == f"{7 * 86400}s"
    assert fips_key.inputs["skipInitialVersionCreation"] is True
    assert "rotationPeriod" not in fips_key.inputs
    labels = from_gcp_labels(fips_key.inputs["labels"])
    assert labels is not None
    assert (labels.keyset, labels.generation, labels.state, labels.environment, labels.algorithm) == (
        "fips-signing", "v2", "active", "staging", "ES256")
    assert (run.named("release-signing-key").inputs["versionTemplate"]["algorithm"]
            == "RSA_SIGN_PKCS1_4096_SHA512")
    assert run.named("chain-signing-key").inputs["versionTemplate"]["algorithm"] == "EC_SIGN_SECP256K1_SHA256"

    # A version per generation, numbered by Cloud KMS in creation order, enabled while published.
    states = {g: clouds.gcp.versions[version_of(run, "fips-signing", g).id].state for g in ("v1", "v2", "v3")}
    assert states == {"v1": "ENABLED", "v2": "ENABLED", "v3": "ENABLED"}
    numbers = [version_of(run, "fips-signing", g).id.rsplit("/", 1)[1] for g in ("v1", "v2", "v3")]
    assert numbers == ["1", "2", "3"]
    revoked = version_of(run, "gateway", "v1")
    assert clouds.gcp.versions[revoked.id].state == "DISABLED" and revoked.options.protect
    # A version first seen revoked never was ENABLED: Cloud KMS never showed its public key.
    warnings = [m for level, m in run.log if level == "warning"]
    assert any("keyset 'gateway', generation 'v1': its public key is not known" in m for m in warnings)

    # The trust anchor on Cloud Storage carries the versions' own public keys.
    anchor_object = servers.read_gs(f"gs://{bucket}/anchors/fips/trust-anchor.json")
    assert anchor_object["content_type"] == "application/json"
    assert anchor_object["cache_control"] == "public, max-age=600"
    anchor = json.loads(anchor_object["body"])
    fips = run.outputs["keysets"]["fips-signing"]
    active_version = version_of(run, "fips-signing", "v2").id
    assert anchor["active_key_id"] == fips["activeKid"]
    public = {k["key_id"]: k["public_key"] for k in anchor["keys"]}
    public_key = serialization.load_pem_public_key(clouds.gcp.versions[active_version].public_pem.encode())
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public[fips["activeKid"]] == b64url(der)
    assert len(public) == 3

    # An ES256 JWT signed by the HSM version verifies with the trust anchor's key.
    token = kms_jwt(clouds, active_version, "ES256", fips["activeKid"], {"predicate": "evidence.stella/v1"})
    anchor_key = serialization.load_der_public_key(
        base64.urlsafe_b64decode(public[fips["activeKid"]] + "=" * (-len(public[fips["activeKid"]]) % 4)))
    assert isinstance(anchor_key, ec.EllipticCurvePublicKey)
    assert jwt.decode(token, key=anchor_key, algorithms=["ES256"]) == {"predicate": "evidence.stella/v1"}

    # The gateway's JWKS: the active version only (v1 is revoked); its EdDSA JWT verifies.
    gateway = run.outputs["keysets"]["gateway"]
    jwks = json.loads(servers.read_gs(f"gs://{bucket}/.well-known/jwks.json")["body"])
    assert [(k["kid"], k["kty"], k["crv"]) for k in jwks["keys"]] == [("atlas-v2", "OKP", "Ed25519")]
    token = kms_jwt(clouds, version_of(run, "gateway", "v2").id, "EdDSA", "atlas-v2", {"sub": "gw"})
    assert jwt.decode(token, key=jwt.PyJWK(jwks["keys"][0]).key, algorithms=["EdDSA"]) == {"sub": "gw"}
    history = json.loads(servers.read_gs(f"gs://{bucket}/gateway/key-history.json")["body"])
    assert history["revokedKeys"] == ["atlas-v1"]
    assert "publicKey" not in history["keyHistory"][0]

    # What consumers are told: the version name (what Cloud KMS's asymmetricSign is called with).
    assert gateway["activeKeyName"] == gateway["activeKeyId"] == version_of(run, "gateway", "v2").id
    assert gateway["consumerEnv"]["SIGNING_KEY_ID"] == "atlas-v2"
    assert gateway["consumerEnv"]["AUDIT_SIGNING_KMS_KEY_ID"] == gateway["activeKeyName"]
    assert "activeKeyArn" not in gateway

    signers = json.loads(servers.read_gs(f"gs://{bucket}/release/signers.json")["body"])
    assert [s["algorithm"] for s in signers] == ["rsa-sha512"]

    # Unchanged documents are not written again (the object's generation stays).
    again = engine.up()
    assert (servers.read_gs(f"gs://{bucket}/anchors/fips/trust-anchor.json")["generation"]
            == anchor_object["generation"])
    assert {op for op, urn in again.operations if "Publication" in urn} == {"same"}


@pytest.mark.slow
def test_a_destroyed_generation_is_destroy_scheduled_and_keeps_its_public_key_in_the_history(
    clouds, project, bucket, servers
):
    history_target = f"gs://{bucket}/fips/key-history.json"
    config = stack({"fips-signing": {
        "purpose": "sign", "algorithm": "ES256", "backend": "gcp-kms",
        "gcp": {"location": "us-east1", "keyRing": "signers", "protectionLevel": "HSM"},
        "publish": [{"format": "trust-anchor", "target": f"gs://{bucket}/fips/trust-anchor.json"},
                    {"format": "key-history", "target": history_target}],
        "generations": generations("retiring", "active"),
    }})
    engine = clouds.engine(project, "test", config=config)
    first = engine.up()
    old = version_of(first, "fips-signing", "v1").id
    old_pem = clouds.gcp.versions[old].public_pem

    g1 = config["key-rotation:keysets"]["fips-signing"]["generations"][0]
    g1.update(state="retired", retiredAt="2026-11-14T10:00:00Z")
    second = engine.up()
    assert clouds.gcp.versions[old].state == "DISABLED"
    assert not version_of(second, "fips-signing", "v1").options.protect
    anchor = json.loads(servers.read_gs(f"gs://{bucket}/fips/trust-anchor.json")["body"])
    assert [k["key_id"] for k in anchor["keys"]] == [second.outputs["keysets"]["fips-signing"]["activeKid"]]

    g1.update(state="destroyed", destroyedAt="2026-11-15T10:00:00Z")
    third = engine.up()
    assert clouds.gcp.versions[old].state == "DESTROY_SCHEDULED"
    assert not [r for r in third.resources.values() if r.name == "fips-signing-v1-version"]
    history = json.loads(servers.read_gs(history_target)["body"])["keyHistory"]
    assert history[0]["state"] == "destroyed"
    assert serialization.load_pem_public_key(history[0]["publicKey"].encode()) == \
        serialization.load_pem_public_key(old_pem.encode())
    assert third.outputs["keysets"]["fips-signing"]["generations"][0]["keyId"] == old


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_a_gcp_kms_keyset_signs_its_envelope_and_revocation_list_through_asymmetric_sign(
    clouds, project, bucket, servers, algorithm
):
    """Verified only by securesystemslib (DSSE) and PyJWT (the list's JWS lines), with the keys the
    keyset's own JWKS publishes: the signatures are the Cloud KMS versions' (no private key here)."""
    config = stack({"gateway": {
        "purpose": "sign", "algorithm": algorithm, "backend": "gcp-kms", "kid": "gw-{generation}",
        "gcp": {"location": "us-east1", "keyRing": "signers"},
        "publish": [{"format": "jwks", "target": f"gs://{bucket}/jwks.json"},
                    {"format": "jwks", "target": f"gs://{bucket}/jwks.dsse.json", "envelope": "dsse"},
                    {"format": "revocation-list", "target": f"gs://{bucket}/revocation"}],
        "generations": generations("revoked", "retiring", "active"),
    }})
    run = clouds.engine(project, "test", config=config).up()
    jwks = json.loads(servers.read_gs(f"gs://{bucket}/jwks.json")["body"])
    published = {k["kid"]: jwt.PyJWK(k).key for k in jwks["keys"]}
    assert sorted(published) == ["gw-v2", "gw-v3"]

    # The envelope: signed by the active and the retiring version, each signature alone verifies.
    text = servers.read_gs(f"gs://{bucket}/jwks.dsse.json")["body"]
    signed = Envelope.from_dict(json.loads(text))
    assert [s.keyid for s in signed.signatures.values()] == ["gw-v3", "gw-v2"]
    for kid in ("gw-v3", "gw-v2"):
        verified = signed.verify([SSlibKey.from_crypto(published[kid], keyid=kid)], 1)
        assert list(verified) == [kid]
        assert json.loads(signed.payload) == jwks
    # The active version's signature does not verify under the retiring version's key.
    active_only = {**json.loads(text), "signatures": json.loads(text)["signatures"][:1]}
    with pytest.raises(VerificationError):
        Envelope.from_dict(active_only).verify([SSlibKey.from_crypto(published["gw-v2"], keyid="gw-v3")], 1)

    # The revocation list: one line, the revoked v1, a JWS by the active v3.
    [line] = servers.read_gs(f"gs://{bucket}/revocation")["body"].splitlines()
    header = jwt.get_unverified_header(line)
    assert (header["alg"], header["kid"]) == (algorithm, "gw-v3")
    record = json.loads(jwt.api_jws.decode(line, published["gw-v3"], algorithms=[algorithm]))
    assert (record["key_id"], record["reason"]) == ("gw-v1", "compromise")

    # Cloud KMS made every signature: asymmetricSign on the two signing versions, nothing else signs.
    versions = {g: version_of(run, "gateway", g).id for g in ("v2", "v3")}
    signs = [path for method, path in clouds.gcp.calls if path.endswith(":asymmetricSign")]
    assert sorted(set(signs)) == sorted(f"/v1/{v}:asymmetricSign" for v in versions.values())
    assert len(signs) == 3  # the envelope's two signatures, the list's one line


GCP = {"location": "global", "keyRing": "keys"}


def sign_keyset(**overrides) -> dict:
    return {"purpose": "sign", "algorithm": "ES256", "backend": "gcp-kms", "gcp": dict(GCP),
            "generations": generations("active"), **overrides}


@pytest.mark.parametrize(("config", "where", "message"), [
    pytest.param(stack({"chain": sign_keyset(algorithm="ES256K")}),
                 "keyset 'chain', field 'gcp.protectionLevel'",
                 "gcp-kms cannot hold ES256K at protectionLevel SOFTWARE: Cloud KMS holds "
                 "EC_SIGN_SECP256K1_SHA256"
                 " only at protection level HSM; set gcp.protectionLevel: HSM", id="es256k-software"),
    pytest.param(stack({"tokens": sign_keyset(algorithm="ES512")}), "keyset 'tokens', field 'algorithm'",
                 "gcp-kms cannot hold ES512: Cloud KMS has no P-521 signing algorithm", id="es512"),
    pytest.param(stack({"tokens": sign_keyset(algorithm="RS384")}), "keyset 'tokens', field 'algorithm'",
                 "gcp-kms cannot hold RS384 with keySize 2048", id="rs384"),
    pytest.param(stack({"Gateway": sign_keyset()}), "keyset 'Gateway'",
                 "'Gateway' is not a valid GCP label value", id="keyset-name-label"),
    pytest.param(stack({"gateway": sign_keyset(generations=[{**generations("active")[0],
                                                             "id": "2026-W47"}])}),
                 "keyset 'gateway', generation '2026-W47', field 'id'",
                 "'2026-W47' is not a valid GCP label value", id="generation-id-label"),
    pytest.param({**stack({"gateway": sign_keyset()}), "key-rotation:environment": "Prod"},
                 "keyset 'gateway', field 'environment'", "'Prod' is not a valid GCP label value",
                 id="environment-label"),
    pytest.param(stack({"gateway": sign_keyset(gcp={"keyRing": "keys"})}),
                 "keyset 'gateway', field 'gcp.location'",
                 "is required for backend gcp-kms", id="no-location"),
    pytest.param({k: v for k, v in stack({"gateway": sign_keyset()}).items() if k != "gcp:project"},
                 "keyset 'gateway', field 'gcp.project'",
                 "is required for backend gcp-kms (or set the stack's gcp:project)", id="no-project"),
    pytest.param(stack({"gateway": sign_keyset(gcp={**GCP, "keyRing": "atlas keys"})}),
                 "keyset 'gateway', field 'gcp.keyRing'", "'atlas keys' is not a Cloud KMS KeyRing id",
                 id="key-ring-id"),
])
def test_bad_gcp_configuration_is_refused_before_anything_is_registered(project, config, where, message):
    engine = refused_before_registering(project, config, where, message)
    assert not [r for r in engine.resources.values() if r.type in (GCP_KEY_RING, GCP_CRYPTO_KEY,
                                                                   GCP_KEY_VERSION)]
