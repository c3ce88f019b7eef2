"""The shipped staging and production stacks end to end, against the cloud emulators.

AWS keys live in moto's KMS server (the Ed25519 ones are emulated: moto lacks
ECC_NIST_EDWARDS25519), Cloud KMS versions are emulated with real key pairs, documents are read
back from moto's S3 and the in-process Cloud Storage API. Every signature below is made by the
KMS holding the key and verified with PyJWT or `cryptography` against what was published.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keyrotation import algorithms
from keyrotation.config import ConfigError, from_config_map, load_stack_file
from keyrotation.metadata import from_aws_tags, from_gcp_labels
from tests.kms_emulators import AWS_KEY, GCP_CRYPTO_KEY, GCP_KEY_VERSION, Clouds
from tests.project import ROOT, copy_project, stack_config

pytestmark = pytest.mark.slow

NOW = "2026-11-23T12:00:00Z"


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", NOW)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_input(alg: str, kid: str, claims: dict) -> bytes:
    header = {"alg": alg, "kid": kid, "typ": "JWT"}
    return ".".join(b64url(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims)).encode()


def jws(message: bytes, signature: bytes) -> str:
    return f"{message.decode()}.{b64url(signature)}"


def raw_ecdsa(der: bytes, size: int = 32) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def deploy(servers, tmp_path: Path, stack: str):
    config = stack_config(stack)
    clouds = Clouds(servers, gcp_project=config["gcp:project"])
    engine = clouds.engine(copy_project(tmp_path / stack), stack)
    return clouds, engine, engine.up(), load_stack_file(ROOT / f"Pulumi.{stack}.yaml")


def test_staging_stack_creates_its_kms_keys_and_publishes_verifiable_documents(servers, tmp_path):
    clouds, engine, run, stack = deploy(servers, tmp_path, "staging")
    outputs = run.outputs["keysets"]

    # Every generation of an aws-kms keyset is a KMS key shaped by its algorithm and tagged with
    # its rotation metadata; every gcp-kms generation is a version of its keyset's CryptoKey.
    for name, keyset in stack.keysets.items():
        for generation in keyset.generations:
            if keyset.backend == "aws-kms":
                key = run.named(f"{name}-{generation.id}-key")
                described = clouds.aws.describe(key.id)
                assert described["KeySpec"] == keyset.spec.aws_spec(keyset.rsa_key_size)
                assert described["KeyUsage"] == keyset.spec.aws_key_usage
                assert described["KeyState"] == "Enabled"
                meta = from_aws_tags(described["Tags"])
                assert meta is not None
                assert (meta.keyset, meta.generation, meta.state, meta.environment) == (
                    name, generation.id, str(generation.state), "staging")
            elif keyset.backend == "gcp-kms":
                version = run.named(f"{name}-{generation.id}-version")
                assert clouds.gcp.versions[version.id].state == "ENABLED"
                assert version.id.startswith(f"projects/aether-staging/locations/{keyset.gcp.location}/"
                                             f"keyRings/{keyset.gcp.key_ring}/cryptoKeys/{name}/")
    assert len(run.of_type(AWS_KEY)) == sum(
        len(k.generations) for k in stack.keysets.values() if k.backend == "aws-kms")

    # Agent Manager (runbook 001): a digest signature made by KMS verifies with PyJWT against the
    # JWKS on S3, and with the signers.json PEM of the signer id the service is configured with.
    audit = outputs["audit-signing"]
    assert audit["activeKid"] == "audit-rotation-2026-11-22"
    message = signing_input("RS256", audit["activeKid"], {"digest": "sha256:0f1e", "seq": 42})
    signature = clouds.aws.sign(audit["activeKeyId"], message, "RSASSA_PKCS1_V1_5_SHA_256")
    token = jws(message, signature)
    jwks = json.loads(servers.read_s3("s3://aether-agent-manager-staging/audit/jwks.json")["body"])
    key = jwt.PyJWKSet.from_dict(jwks)[audit["activeKid"]].key
    assert jwt.decode(token, key=key, algorithms=["RS256"]) == {"digest": "sha256:0f1e", "seq": 42}
    signers_object = servers.read_s3("s3://aether-agent-manager-staging/kernel/tools/signers.json")
    assert signers_object["cache_control"] == "public, max-age=300"
    signers = json.loads(signers_object["body"])
    assert [s["signerId"] for s in signers] == ["audit-rotation-2026-08-24", "audit-rotation-2026-11-22"]
    entry = next(s for s in signers if s["signerId"] == audit["consumerEnv"]["AUDIT_SIGNER_KID"])
    signer = serialization.load_pem_public_key(entry["publicKey"].encode())
    assert isinstance(signer, rsa.RSAPublicKey)
    signer.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    assert clouds.aws.aliases()["alias/audit-signing"] == audit["activeKeyId"]
    assert audit["consumerEnv"] == {
        "AUDIT_SIGNING_KEY_SOURCE": "kms", "AUDIT_SIGNING_KMS_KEY_ID": audit["activeKeyId"],
        "AUDIT_SIGNING_ALG": "rsa-sha256", "AUDIT_SIGNER_KID": "audit-rotation-2026-11-22",
        "SIGNING_KEY_ID": "audit-rotation-2026-11-22"}
    assert audit["activeKeyArn"] == clouds.aws.describe(audit["activeKeyId"])["Arn"]

    # The HMAC option: a MAC through KMS, by the alias the keyset maintains.
    kms = clouds.aws.client()
    mac = kms.generate_mac(KeyId="alias/audit-hmac", Message=b"digest", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert kms.verify_mac(KeyId=outputs["audit-hmac"]["activeKeyId"], Message=b"digest",
                          MacAlgorithm="HMAC_SHA_256", Mac=mac)["MacValid"]

    # API gateway (runbook 000): next week's key pre-published, last week's in its grace period;
    # a token signed by the active Cloud KMS version verifies against the Trust Portal JWKS.
    gateway = outputs["atlas-gateway"]
    portal = json.loads(servers.read_gs("gs://atlas-trust-portal-staging/.well-known/jwks.json")["body"])
    assert [k["kid"] for k in portal["keys"]] == ["atlas-2026-11-16", "atlas-2026-11-23", "atlas-2026-11-30"]
    assert gateway["consumerEnv"]["SIGNING_KEY_ID"] == "atlas-2026-11-23"
    message = signing_input("EdDSA", "atlas-2026-11-23",
                            {"htm": "POST", "htu": "https://api.atlas.dev/token"})
    token = jws(message, clouds.gcp.sign(gateway["activeKeyName"], message))
    assert jwt.decode(token, key=jwt.PyJWKSet.from_dict(portal)["atlas-2026-11-23"].key,
                      algorithms=["EdDSA"])["htm"] == "POST"

    # StellaOps (runbook 002): profile `default` on AWS KMS as alias/stellaops-default, profile
    # `fips` ECDSA P-256 in Cloud HSM; both trust anchors verify signatures of their active keys.
    default = outputs["stellaops-default"]
    assert clouds.aws.aliases()["alias/stellaops-default"] == default["activeKeyId"]
    anchor = json.loads(servers.read_s3(
        "s3://stellaops-attestation-feed-staging/anchors/default/trust-anchor.json")["body"])
    assert anchor["active_key_id"] == default["activeKid"] == "key-2026-staging"
    assert [(k["key_id"], k["algorithm"]) for k in anchor["keys"]] == [
        ("key-2026-staging", "Ed25519"), ("key-2027-staging", "Ed25519")]
    payload = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
    signature = clouds.aws.sign(default["activeKeyId"], payload, "ED25519_SHA_512")
    # The manifest runbook's trust anchors give Ed25519 keys as raw base64url public keys.
    public_key = ed25519.Ed25519PublicKey.from_public_bytes(unb64url(anchor["keys"][0]["public_key"]))
    public_key.verify(signature, payload)

    fips = outputs["stellaops-fips"]
    crypto_key = next(r for r in run.of_type(GCP_CRYPTO_KEY) if r.inputs["name"] == "stellaops-fips")
    assert crypto_key.inputs["versionTemplate"] == {"algorithm": "EC_SIGN_P256_SHA256",
                                                    "protectionLevel": "HSM"}
    labelled = from_gcp_labels(crypto_key.inputs["labels"])
    assert labelled is not None and labelled.generation == "2026"
    fips_anchor = json.loads(servers.read_gs(
        "gs://stellaops-attestation-feed-staging/anchors/fips/trust-anchor.json")["body"])
    assert fips_anchor["active_key_id"] == fips["activeKid"] == "key-2026-fips-staging"
    message = signing_input("ES256", fips["activeKid"], {"predicateType": "evidence.stella/v1"})
    token = jws(message, raw_ecdsa(clouds.gcp.sign(fips["activeKeyName"], message)))
    anchor_key = serialization.load_der_public_key(unb64url(fips_anchor["keys"][0]["public_key"]))
    assert isinstance(anchor_key, ec.EllipticCurvePublicKey)
    assert jwt.decode(token, key=anchor_key, algorithms=["ES256"]) == {"predicateType": "evidence.stella/v1"}
    history = json.loads(servers.read_gs(
        "gs://stellaops-attestation-feed-staging/anchors/fips/key-history.json")["body"])
    assert [(e["keyid"], e["state"]) for e in history["keyHistory"]] == [
        ("key-2026-fips-staging", "active"), ("key-2027-fips-staging", "pending")]

    # Manifest signing (runbook 003): the trust-anchor discovery document at its well-known path.
    manifest = outputs["manifest-signing"]
    discovery = json.loads(servers.read_s3(
        "s3://acme-agent-manifest-staging/.well-known/agent-manifest/trust-anchor")["body"])
    assert discovery["active_key_id"] == manifest["activeKid"]
    assert len(manifest["activeKid"]) == 43, "an RFC 7638 SHA-256 thumbprint"

    # Deployed as declared: a preview right after plans nothing.
    assert {op for op, _ in engine.preview().operations} == {"same"}


def test_production_stack_deploys_and_keeps_the_fips_profile_where_its_runbook_asks(servers, tmp_path):
    clouds, _engine, run, stack = deploy(servers, tmp_path, "production")
    outputs = run.outputs["keysets"]

    # The fips signing profile: an HSM-held ECDSA P-256 key, whose every version is HSM-protected.
    fips = stack.keysets["stellaops-fips"]
    assert fips.algorithm == "ES256" and fips.gcp.protection_level == "HSM"
    versions = [r for r in run.of_type(GCP_KEY_VERSION) if "/cryptoKeys/stellaops-fips/" in r.id]
    assert {clouds.gcp.versions[v.id].protection_level for v in versions} == {"HSM"}
    assert outputs["stellaops-fips"]["activeKid"] == "key-2026-fips"
    assert outputs["audit-signing"]["consumerEnv"]["AUDIT_SIGNER_KID"] == "audit-rotation-2026-09-07"
    signers = json.loads(servers.read_s3("s3://aether-agent-manager/kernel/tools/signers.json")["body"])
    # The pending signer is in the registry before the agent manager switches to it (runbook 001).
    assert [s["signerId"] for s in signers] == ["audit-rotation-2026-09-07", "audit-rotation-2026-11-23"]

    # `profile` is per stack. The fips keyset passes the fips profile on its own ...
    config = stack_config("production")
    only_fips = {**config, "key-rotation:profile": "fips",
                 "key-rotation:keysets": {"stellaops-fips": config["key-rotation:keysets"]["stellaops-fips"]}}
    assert from_config_map(only_fips, stack_file="Pulumi.production.yaml").profile == "fips"
    # ... while the whole stack cannot be `fips`: exactly its EdDSA keysets are refused.
    with pytest.raises(ConfigError) as refused:
        from_config_map({**config, "key-rotation:profile": "fips"}, stack_file="Pulumi.production.yaml")
    eddsa = {n for n, k in stack.keysets.items() if not algorithms.ALGORITHMS[k.algorithm].allowed_in("fips")}
    assert eddsa == {"atlas-gateway", "stellaops-default", "manifest-signing"}
    assert {p.keyset for p in refused.value.problems} == eddsa
