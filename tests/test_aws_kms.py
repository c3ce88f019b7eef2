"""Backend aws-kms against moto's KMS and S3 servers, through the engine-faithful harness.

Keys are really created in moto (ids, ARNs, key pairs, tags, rotation settings); public keys come
back through the `aws:kms/getPublicKey` invoke answered by moto; documents are read back from
moto's S3. Signatures are made by moto's KMS and verified with PyJWT and `cryptography`, which
know nothing of this project.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keyrotation.metadata import from_aws_tags
from tests.engine import UNKNOWN, ProgramFailed
from tests.kms_emulators import AWS_ALIAS, AWS_KEY, Clouds, refused_before_registering
from tests.project import generations as history

NOW = "2026-11-23T12:00:00Z"
RECORD = "pulumi-python:dynamic/kms:KeyRecord"


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", NOW)


def stack(keysets: dict, **extra) -> dict:
    return {
        "aws:region": "us-east-1",
        "key-rotation:environment": "test",
        "key-rotation:defaults": {"publishMaxAgeSeconds": 120, "deletionWindowDays": 7},
        "key-rotation:keysets": keysets,
        **extra,
    }


def generations(*states: str) -> list[dict]:
    return history(*states, prefix="g")


def key_of(run, keyset: str, generation: str):
    return run.named(f"{keyset}-{generation}-key")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rfc7638(public_key) -> str:
    """RFC 7638 thumbprint computed from the key's numbers, independently of the project's JOSE code."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        size = (public_key.curve.key_size + 7) // 8
        numbers = public_key.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[public_key.curve.name]
        members = {"crv": crv, "kty": "EC", "x": b64url(numbers.x.to_bytes(size, "big")),
                   "y": b64url(numbers.y.to_bytes(size, "big"))}
    elif isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        e, n = rsa_numbers.e, rsa_numbers.n
        members = {"e": b64url(e.to_bytes((e.bit_length() + 7) // 8, "big")), "kty": "RSA",
                   "n": b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))}
    else:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    text = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(text.encode()).digest())


def kms_public_key(clouds: Clouds, key_id: str):
    """The public key as moto's KMS holds it (bypassing the emulator's enabled-state rule)."""
    der = clouds.aws.client().get_public_key(KeyId=key_id)["PublicKey"]
    return serialization.load_der_public_key(der)


def kms_jwt(clouds: Clouds, key_id: str, alg: str, kid: str, claims: dict) -> str:
    """A compact JWS whose signature AWS KMS (moto) made."""
    header = {"alg": alg, "kid": kid, "typ": "JWT"}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    ).encode()
    kms_algorithm = {"ES256": "ECDSA_SHA_256", "ES384": "ECDSA_SHA_384", "RS256": "RSASSA_PKCS1_V1_5_SHA_256",
                     "EdDSA": "ED25519_SHA_512"}[alg]
    signature = clouds.aws.sign(key_id, signing_input, kms_algorithm)
    if alg.startswith("ES"):
        # KMS returns DER; JWS (RFC 7518 section 3.4) wants the raw r || s.
        r, s = decode_dss_signature(signature)
        size = {"ES256": 32, "ES384": 48}[alg]
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return f"{signing_input.decode()}.{b64url(signature)}"


def verify_with_jwks(token: str, jwks: dict, alg: str) -> dict:
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid].key
    return jwt.decode(token, key=key, algorithms=[alg])


# ---------------------------------------------------------------------------------------------
# Asymmetric keys: KMS keys per generation, public keys in the documents, signatures that verify


@pytest.mark.slow
def test_sign_keysets_are_kms_keys_whose_signatures_verify_against_the_published_documents(
    clouds, project, bucket, servers
):
    config = stack({
        "api-tokens": {
            "purpose": "sign", "algorithm": "ES256", "backend": "aws-kms",
            "publish": [{"format": "jwks", "target": f"s3://{bucket}/api/jwks.json"},
                        {"format": "key-history", "target": f"s3://{bucket}/api/key-history.json"}],
            "generations": generations("retiring", "active", "pending"),
        },
        "audit-signing": {
            "purpose": "sign", "algorithm": "RS256", "keySize": 3072, "backend": "aws-kms",
            "kid": "audit-rotation-{generation}",
            "publish": [{"format": "signers", "target": f"s3://{bucket}/kernel/tools/signers.json"},
                        {"format": "jwks", "target": f"s3://{bucket}/audit/jwks.json"}],
            "generations": generations("retiring", "active"),
        },
    })
    run = clouds.engine(project, "test", config=config).up()

    # One KMS key per generation, shaped by the algorithm, tagged with its rotation metadata.
    for keyset, spec, states in (("api-tokens", "ECC_NIST_P256", ("retiring", "active", "pending")),
                                 ("audit-signing", "RSA_3072", ("retiring", "active"))):
        for index, state in enumerate(states):
            gid = f"g{index + 1}"
            resource = key_of(run, keyset, gid)
            described = clouds.aws.describe(resource.id)
            assert (described["KeySpec"], described["KeyUsage"]) == (spec, "SIGN_VERIFY")
            assert described["KeyState"] == "Enabled"
            assert described["Rotation"]["KeyRotationEnabled"] is False
            meta = from_aws_tags(described["Tags"])
            assert meta is not None
            assert (meta.keyset, meta.generation, meta.state, meta.environment) == (keyset, gid, state,
                                                                                    "test")
            assert resource.inputs["deletionWindowInDays"] == 7
            assert resource.options.protect, f"{keyset}/{gid}: a KMS key must be protected"

    # The JWKS on S3 carries moto's public keys under their RFC 7638 thumbprints.
    jwks_object = servers.read_s3(f"s3://{bucket}/api/jwks.json")
    assert jwks_object["content_type"] == "application/json"
    assert jwks_object["cache_control"] == "public, max-age=120"
    jwks = json.loads(jwks_object["body"])
    api = run.outputs["keysets"]["api-tokens"]
    expected_kids = [rfc7638(kms_public_key(clouds, key_of(run, "api-tokens", g).id))
                     for g in ("g1", "g2", "g3")]
    assert [k["kid"] for k in jwks["keys"]] == expected_kids
    assert api["activeKid"] == expected_kids[1]

    # A JWT signed by KMS with the active key verifies against the published JWKS (so does one
    # from the retiring key, still published for the overlap).
    active_key = key_of(run, "api-tokens", "g2").id
    token = kms_jwt(clouds, active_key, "ES256", api["activeKid"], {"sub": "svc", "iat": 1795400000})
    assert verify_with_jwks(token, jwks, "ES256") == {"sub": "svc", "iat": 1795400000}
    old = kms_jwt(clouds, key_of(run, "api-tokens", "g1").id, "ES256", expected_kids[0], {"sub": "old"})
    assert verify_with_jwks(old, jwks, "ES256") == {"sub": "old"}
    with pytest.raises(jwt.InvalidSignatureError):
        forged = kms_jwt(clouds, key_of(run, "api-tokens", "g1").id, "ES256", api["activeKid"], {"sub": "x"})
        verify_with_jwks(forged, jwks, "ES256")

    # RS256: the same signature verifies with PyJWT over the JWKS and with the signers.json PEM.
    audit = run.outputs["keysets"]["audit-signing"]
    audit_key = key_of(run, "audit-signing", "g2").id
    token = kms_jwt(clouds, audit_key, "RS256", audit["activeKid"], {"digest": "abc"})
    assert verify_with_jwks(token, json.loads(servers.read_s3(f"s3://{bucket}/audit/jwks.json")["body"]),
                            "RS256") == {"digest": "abc"}
    signers = json.loads(servers.read_s3(f"s3://{bucket}/kernel/tools/signers.json")["body"])
    assert [s["signerId"] for s in signers] == ["audit-rotation-g1", "audit-rotation-g2"]
    entry = next(s for s in signers if s["signerId"] == audit["activeKid"])
    assert entry["algorithm"] == "rsa-sha256"
    pem_key = serialization.load_pem_public_key(entry["publicKey"].encode())
    assert isinstance(pem_key, rsa.RSAPublicKey)
    signing_input, _, signature = token.rpartition(".")
    pem_key.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), signing_input.encode(),
                   padding.PKCS1v15(), hashes.SHA256())

    # Aliases: alias/<keyset> follows the active generation, alias/<keyset>-<generation> names each.
    aliases = clouds.aws.aliases()
    assert aliases["alias/api-tokens"] == active_key
    assert {g: aliases[f"alias/api-tokens-{g}"] for g in ("g1", "g2", "g3")} == {
        g: key_of(run, "api-tokens", g).id for g in ("g1", "g2", "g3")}
    assert aliases["alias/audit-signing"] == audit_key

    # What the agent manager is configured with (runbook 001).
    described = clouds.aws.describe(audit_key)
    assert audit["activeKeyId"] == audit_key
    assert audit["activeKeyArn"] == described["Arn"]
    assert audit["consumerEnv"] == {
        "AUDIT_SIGNING_KEY_SOURCE": "kms", "AUDIT_SIGNING_KMS_KEY_ID": audit_key,
        "AUDIT_SIGNING_ALG": "rsa-sha256", "AUDIT_SIGNER_KID": "audit-rotation-g2",
        "SIGNING_KEY_ID": "audit-rotation-g2",
    }

    history = json.loads(servers.read_s3(f"s3://{bucket}/api/key-history.json")["body"])
    assert [(e["generation"], e["state"]) for e in history["keyHistory"]] == [
        ("g1", "retiring"), ("g2", "active"), ("g3", "pending")]
    for entry in history["keyHistory"]:
        key = key_of(run, "api-tokens", entry["generation"]).id
        assert serialization.load_pem_public_key(entry["publicKey"].encode()) == kms_public_key(clouds, key)


@pytest.mark.slow
def test_eddsa_keys_are_emulated_because_moto_lacks_ed25519(clouds, project, bucket, servers):
    """AWS KMS holds Ed25519 as ECC_NIST_EDWARDS25519 (ED25519_SHA_512); moto's KMS rejects that
    KeySpec, so tests/kms_emulators.py emulates those keys with real Ed25519 key pairs behind the
    same resource handler and getPublicKey invoke. The program's path is the same as for moto's keys."""
    config = stack({"manifest-signing": {
        "purpose": "sign", "algorithm": "EdDSA", "backend": "aws-kms",
        "publish": [{"format": "trust-anchor",
                     "target": f"s3://{bucket}/.well-known/agent-manifest/trust-anchor"},
                    {"format": "jwks", "target": f"s3://{bucket}/manifest/jwks.json"}],
        "generations": generations("retiring", "active"),
    }})
    run = clouds.engine(project, "test", config=config).up()

    active = key_of(run, "manifest-signing", "g2")
    described = clouds.aws.describe(active.id)
    assert described["Emulated"] and described["KeySpec"] == "ECC_NIST_EDWARDS25519"
    assert active.inputs["customerMasterKeySpec"] == "ECC_NIST_EDWARDS25519"
    public_key = clouds.aws.emulated[active.id].private_key.public_key()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    manifest = run.outputs["keysets"]["manifest-signing"]
    assert manifest["activeKid"] == rfc7638(public_key)
    anchor = json.loads(servers.read_s3(f"s3://{bucket}/.well-known/agent-manifest/trust-anchor")["body"])
    assert anchor["active_key_id"] == manifest["activeKid"]
    assert {k["key_id"]: k["public_key"] for k in anchor["keys"]}[manifest["activeKid"]] == b64url(raw)
    assert {k["algorithm"] for k in anchor["keys"]} == {"Ed25519"}

    jwks = json.loads(servers.read_s3(f"s3://{bucket}/manifest/jwks.json")["body"])
    assert {(k["kty"], k["crv"], k["alg"]) for k in jwks["keys"]} == {("OKP", "Ed25519", "EdDSA")}
    token = kms_jwt(clouds, active.id, "EdDSA", manifest["activeKid"], {"manifest_id": "m-1"})
    assert verify_with_jwks(token, jwks, "EdDSA") == {"manifest_id": "m-1"}
    assert isinstance(public_key, ed25519.Ed25519PublicKey)


# ---------------------------------------------------------------------------------------------
# Symmetric keys: native rotation, HMAC, kids without a public key


@pytest.mark.slow
def test_symmetric_keys_rotate_natively_and_hmac_keys_mac_through_kms(clouds, project, bucket, servers):
    config = stack({
        "payload-encryption": {"purpose": "encrypt", "algorithm": "A256GCM", "backend": "aws-kms",
                               "maxAgeDays": 180, "generations": generations("active")},
        "archive-encryption": {"purpose": "encrypt", "algorithm": "A256GCM", "backend": "aws-kms",
                               "maxAgeDays": 4000, "warnDays": 30, "generations": generations("active")},
        "audit-hmac": {"purpose": "mac", "algorithm": "HS256", "backend": "aws-kms",
                       "publish": [{"format": "key-history",
                                    "target": f"s3://{bucket}/audit/hmac-history.json"}],
                       "generations": generations("retiring", "active")},
    })
    run = clouds.engine(project, "test", config=config).up()

    payload = clouds.aws.describe(key_of(run, "payload-encryption", "g1").id)
    assert (payload["KeySpec"], payload["KeyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert payload["Rotation"]["KeyRotationEnabled"] is True
    assert payload["Rotation"]["RotationPeriodInDays"] == 180
    assert key_of(run, "payload-encryption", "g1").inputs["rotationPeriodInDays"] == 180
    # Past AWS's longest period the key material rotates at 2560 days, still within maxAgeDays.
    archive = clouds.aws.describe(key_of(run, "archive-encryption", "g1").id)
    assert archive["Rotation"]["RotationPeriodInDays"] == 2560
    kms = clouds.aws.client()
    ciphertext = kms.encrypt(KeyId="alias/payload-encryption", Plaintext=b"secret")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"secret"

    hmac = clouds.aws.describe(key_of(run, "audit-hmac", "g2").id)
    assert (hmac["KeySpec"], hmac["KeyUsage"]) == ("HMAC_256", "GENERATE_VERIFY_MAC")
    assert hmac["Rotation"]["KeyRotationEnabled"] is False, "AWS cannot rotate HMAC keys in place"
    mac = kms.generate_mac(KeyId="alias/audit-hmac", Message=b"digest", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert kms.verify_mac(KeyId=hmac["KeyId"], Message=b"digest", MacAlgorithm="HMAC_SHA_256",
                          Mac=mac)["MacValid"]

    # No public key: the kid is <keyset>-<generation>, never derived from the secret.
    outputs = run.outputs["keysets"]
    assert outputs["audit-hmac"]["activeKid"] == "audit-hmac-g2"
    assert outputs["audit-hmac"]["consumerEnv"]["AUDIT_SIGNING_ALG"] == "hmac-sha256"
    assert outputs["audit-hmac"]["consumerEnv"]["AUDIT_SIGNING_KMS_KEY_ID"] == hmac["KeyId"]
    assert "consumerEnv" not in outputs["payload-encryption"]
    assert outputs["payload-encryption"]["activeKeyArn"] == payload["Arn"]
    history = json.loads(servers.read_s3(f"s3://{bucket}/audit/hmac-history.json")["body"])
    assert [(e["keyid"], "publicKey" in e) for e in history["keyHistory"]] == [
        ("audit-hmac-g1", False), ("audit-hmac-g2", False)]


# ---------------------------------------------------------------------------------------------
# The lifecycle in KMS: enabled, disabled, pending deletion; protection; previews


@pytest.mark.slow
def test_retired_keys_are_disabled_and_destroyed_ones_wait_out_the_deletion_window(
    clouds, project, bucket, servers
):
    history_target = f"s3://{bucket}/tokens/key-history.json"
    config = stack({"tokens": {
        "purpose": "sign", "algorithm": "ES256", "backend": "aws-kms",
        "publish": [{"format": "jwks", "target": f"s3://{bucket}/tokens/jwks.json"},
                    {"format": "key-history", "target": history_target}],
        "generations": generations("retiring", "active"),
    }})
    engine = clouds.engine(project, "test", config=config)
    first = engine.up()
    old_id = key_of(first, "tokens", "g1").id
    old_public = kms_public_key(clouds, old_id)

    # retiring -> retired: disabled at once, out of the JWKS, still in the key history.
    g1 = config["key-rotation:keysets"]["tokens"]["generations"][0]
    g1.update(state="retired", retiredAt="2026-11-17T10:00:00Z")
    second = engine.up()
    assert clouds.aws.describe(old_id)["KeyState"] == "Disabled"
    assert key_of(second, "tokens", "g1").inputs["isEnabled"] is False
    assert not key_of(second, "tokens", "g1").options.protect, "a retired key may be destroyed next"
    assert key_of(second, "tokens", "g2").options.protect
    jwks = json.loads(servers.read_s3(f"s3://{bucket}/tokens/jwks.json")["body"])
    assert [k["kid"] for k in jwks["keys"]] == [second.outputs["keysets"]["tokens"]["activeKid"]]
    history = json.loads(servers.read_s3(history_target)["body"])["keyHistory"]
    # AWS returns no public key for a disabled key: this one is the record kept from the first run.
    assert serialization.load_pem_public_key(history[0]["publicKey"].encode()) == old_public
    assert history[0]["state"] == "retired"

    # retired -> destroyed: Pulumi deletes the key, which AWS holds in PendingDeletion for the
    # deletion window; the public key stays in the history.
    g1.update(state="destroyed", destroyedAt="2026-11-18T10:00:00Z")
    third = engine.up()
    assert ("delete", key_of(second, "tokens", "g1").urn) in third.operations
    described = clouds.aws.describe(old_id)
    assert described["KeyState"] == "PendingDeletion"
    deletion_in = described["DeletionDate"] - datetime.now(UTC)
    assert 6 <= deletion_in.days <= 7
    assert "alias/tokens-g1" not in clouds.aws.aliases()
    history = json.loads(servers.read_s3(history_target)["body"])["keyHistory"]
    assert history[0]["state"] == "destroyed"
    assert serialization.load_pem_public_key(history[0]["publicKey"].encode()) == old_public
    assert third.outputs["keysets"]["tokens"]["generations"][0]["keyId"] == old_id

    # The active key is protected: a stack file that drops it cannot delete it.
    config["key-rotation:keysets"]["tokens"]["generations"] = [
        g1, {"id": "g3", "state": "active", "createdAt": "2026-11-20T09:00:00Z",
             "activatedAt": "2026-11-20T10:00:00Z"}]
    with pytest.raises(ProgramFailed, match="protected"):
        engine.up()
    assert clouds.aws.describe(key_of(third, "tokens", "g2").id)["KeyState"] == "Enabled"


@pytest.mark.slow
def test_revoked_keys_are_disabled_at_once_and_stay_protected(clouds, project, bucket, servers):
    config = stack({"tokens": {
        "purpose": "sign", "algorithm": "ES384", "backend": "aws-kms",
        "publish": [{"format": "jwks", "target": f"s3://{bucket}/t/jwks.json"}],
        "generations": generations("active", "pending"),
    }})
    engine = clouds.engine(project, "test", config=config)
    first = engine.up()
    pending = config["key-rotation:keysets"]["tokens"]["generations"][1]
    pending.update(state="revoked", revokedAt="2026-11-22T08:00:00Z", revokeReason="compromise")
    second = engine.up()

    revoked = key_of(second, "tokens", "g2")
    assert revoked.id == key_of(first, "tokens", "g2").id
    assert clouds.aws.describe(revoked.id)["KeyState"] == "Disabled"
    assert revoked.options.protect, "a revoked key is kept (forensics), never destroyed"
    revoked_meta = from_aws_tags(clouds.aws.describe(revoked.id)["Tags"])
    assert revoked_meta is not None and revoked_meta.state == "revoked"
    jwks = json.loads(servers.read_s3(f"s3://{bucket}/t/jwks.json")["body"])
    assert [k["kid"] for k in jwks["keys"]] == [second.outputs["keysets"]["tokens"]["activeKid"]]


@pytest.mark.slow
def test_preview_of_a_new_generation_does_not_ask_kms_for_a_key_that_does_not_exist(
    clouds, project, bucket
):
    config = stack({"tokens": {
        "purpose": "sign", "algorithm": "ES256", "backend": "aws-kms",
        "publish": [{"format": "jwks", "target": f"s3://{bucket}/t/jwks.json"}],
        "generations": generations("active"),
    }})
    asked: list[str] = []
    invoke = clouds.invoke

    def recording(token, args):
        asked.append(args.get("keyId"))
        return invoke(token, args)

    engine = clouds.engine(project, "test", config=config)
    engine.invoke = recording
    first = engine.up()
    existing = key_of(first, "tokens", "g1").id
    config["key-rotation:keysets"]["tokens"]["generations"].append(
        {"id": "g2", "state": "pending", "createdAt": "2026-11-23T09:00:00Z"})
    asked.clear()
    preview = engine.preview()

    assert ("create", key_of(preview, "tokens", "g2").urn) in preview.operations
    assert asked == [existing], "only the existing key's public key is fetched in a preview"
    assert all(k not in (None, "", UNKNOWN) for k in asked)
    publication = next(r for r in preview.resources.values() if r.type.endswith("publishing:Publication"))
    content = publication.inputs.get("content", UNKNOWN)
    assert content == UNKNOWN, "the new JWKS is not known before the key is"
    assert len([r for r in engine.resources.values() if r.type == AWS_KEY]) == 1, "a preview creates nothing"


# ---------------------------------------------------------------------------------------------
# Bad input: clear errors before any resource is registered


ES = {"purpose": "sign", "algorithm": "ES256", "backend": "aws-kms", "generations": generations("active")}


@pytest.mark.parametrize(("config", "where", "message"), [
    pytest.param(
        stack({"data": {"purpose": "encrypt", "algorithm": "A256GCM", "backend": "aws-kms", "maxAgeDays": 30,
                        "warnDays": 7, "generations": generations("active")}}),
        "keyset 'data', field 'maxAgeDays'",
        "30 days is shorter than AWS KMS can rotate a symmetric key (RotationPeriodInDays 90..2560)",
        id="symmetric-max-age-below-aws-rotation"),
    pytest.param(
        {k: v for k, v in stack({"tokens": ES}).items() if k != "aws:region"},
        "keyset 'tokens', field 'aws.region'",
        "is required for backend aws-kms (or set the stack's aws:region)",
        id="no-region"),
    pytest.param(
        stack({"tokens": {**ES, "generations": [{**generations("active")[0], "id": "v1.0"}]}}),
        "keyset 'tokens', generation 'v1.0', field 'id'",
        "alias 'alias/tokens-v1.0' is not an AWS KMS alias name", id="alias-invalid-generation-id"),
    pytest.param(
        stack({"tokens": {**ES, "aws": {"aliasPrefix": "alias/aws/"}}}),
        "keyset 'tokens', field 'aws.aliasPrefix'", "not under alias/aws/", id="reserved-alias-prefix"),
])
def test_bad_aws_configuration_is_refused_before_anything_is_registered(project, config, where, message):
    engine = refused_before_registering(project, config, where, message)
    assert not [r for r in engine.resources.values() if r.type in (AWS_KEY, AWS_ALIAS, RECORD)]
