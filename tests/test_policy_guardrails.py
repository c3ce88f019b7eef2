"""Resource guardrails on hand-built args: profile, deletion windows, protection, key material."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from keyrotation import algorithms, keys
from keyrotation.metadata import RotationMetadata
from keyrotation.times import format_time
from policy import guardrails
from policy.resources import (
    AWS_KEY,
    CONFIG_MAP,
    GCP_CRYPTO_KEY,
    GCP_KEY_VERSION,
    KEY_GENERATION,
    KMS_RESTORED_KEY,
    PUBLICATION,
    SOFTWARE_KEY,
)
from tests.policy_client import messages, resource_args, stack_args, stack_resource, violations

CREATED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def software_key(algorithm: str, **extra) -> dict:
    return {"keyset": "ks", "generation": "g1", "algorithm": algorithm, "state": "active",
            "environment": "prod",
            "purpose": algorithms.ALGORITHMS[algorithm].purpose, "created_at": format_time(CREATED),
            "activated_at": format_time(CREATED), **extra}


def tags(algorithm: str) -> dict:
    return RotationMetadata("ks", "g1", "prod", "active", algorithm, "sign", CREATED, CREATED).aws_tags()


# ---------------------------------------------------------------------------------------------
# Profile


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256K", "ES512"])
def test_fips_refuses_what_its_rule_excludes(algorithm):
    [found] = messages(guardrails.algorithm_profile,
                       resource_args(SOFTWARE_KEY, software_key(algorithm), config={"profile": "fips"}))
    assert (f"keyset 'ks', generation 'g1' (SoftwareKey 'key'): {algorithm} is not allowed in profile 'fips'"
            in found)
    assert algorithms.PROFILE_RULES[algorithms.Profile.FIPS] in found
    assert "ES256" in found.split("allowed algorithm (")[1]  # says what would be allowed


@pytest.mark.parametrize("algorithm", ["ES256", "ES384", "RS256", "PS512", "HS256", "A256GCM"])
def test_fips_allows_its_algorithms(algorithm):
    assert messages(guardrails.algorithm_profile,
                    resource_args(SOFTWARE_KEY, software_key(algorithm), config={"profile": "fips"})) == []


def test_the_default_profile_allows_every_algorithm_of_the_table():
    for name in algorithms.ALGORITHMS:
        assert messages(guardrails.algorithm_profile,
                        resource_args(SOFTWARE_KEY, software_key(name), config={"profile": "default"})) == []


def test_the_profile_defaults_to_the_stacks_own(monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"key-rotation:profile": "fips"}))
    [found] = messages(guardrails.algorithm_profile, resource_args(SOFTWARE_KEY, software_key("EdDSA")))
    assert "profile 'fips'" in found
    monkeypatch.delenv("PULUMI_CONFIG")
    assert messages(guardrails.algorithm_profile, resource_args(SOFTWARE_KEY, software_key("EdDSA"))) == []


@pytest.mark.parametrize("profile, allowed, refused", [
    ("pqc", "ML-DSA-65", "ES256"), ("sm2", "SM2-P256", "EdDSA"), ("gost", "GOST-R-34.10-2012", "ML-DSA-44"),
])
def test_each_keyset_is_held_to_its_own_profile_from_the_stack_file(monkeypatch, profile, allowed, refused):
    keysets = {"ks": {"purpose": "sign", "algorithm": allowed, "profile": profile},
               "other": {"purpose": "sign", "algorithm": "EdDSA"}}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"key-rotation:profile": "default",
                                                    "key-rotation:keysets": json.dumps(keysets)}))
    assert messages(guardrails.algorithm_profile, resource_args(SOFTWARE_KEY, software_key(allowed))) == []
    [found] = messages(guardrails.algorithm_profile, resource_args(SOFTWARE_KEY, software_key(refused)))
    assert f"{refused} is not allowed in profile '{profile}' ({algorithms.PROFILE_RULES[profile]})" in found
    # Another keyset of the same stack keeps the stack's profile.
    assert messages(guardrails.algorithm_profile,
                    resource_args(SOFTWARE_KEY, software_key(refused, keyset="other"))) == []


def test_a_keyset_can_be_held_to_a_stricter_profile_than_its_stack():
    config = {"profile": "default", "keysets": {"ks": "fips"}}
    [found] = messages(guardrails.algorithm_profile,
                       resource_args(SOFTWARE_KEY, software_key("EdDSA"), config=config))
    assert "EdDSA is not allowed in profile 'fips'" in found
    other = {**software_key("EdDSA"), "keyset": "other"}
    assert messages(guardrails.algorithm_profile, resource_args(SOFTWARE_KEY, other, config=config)) == []


def test_an_unmanaged_aws_key_is_judged_by_its_key_spec():
    props = {"customerMasterKeySpec": "ECC_SECG_P256K1", "keyUsage": "SIGN_VERIFY"}
    [found] = messages(guardrails.algorithm_profile, resource_args(AWS_KEY, props, name="legacy",
                                                                   config={"profile": "fips"}))
    assert found.startswith("AWS KMS key 'legacy': ES256K is not allowed in profile 'fips'")


def test_metadata_that_contradicts_the_key_spec_is_reported():
    props = {"tags": tags("ES256"), "customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"}
    [found] = messages(guardrails.algorithm_profile,
                       resource_args(AWS_KEY, props, config={"profile": "default"}))
    assert "its metadata says ES256 but the key's KeySpec RSA_2048 holds RS256" in found


def test_rsa_keys_below_2048_bits_are_refused():
    props = software_key("RS256", key_size=1024)
    [found] = messages(guardrails.algorithm_profile,
                       resource_args(SOFTWARE_KEY, props, config={"profile": "fips"}))
    assert "RSA key of 1024 bits; profile 'fips' requires at least 2048 bits" in found
    props = {"labels": {}, "versionTemplate": {"algorithm": "RSA_SIGN_PKCS1_3072_SHA256"}}
    assert messages(guardrails.algorithm_profile,
                    resource_args(GCP_CRYPTO_KEY, props, config={"profile": "fips"})) == []


# ---------------------------------------------------------------------------------------------
# Deletion windows


def test_aws_deletion_windows_below_the_minimum_are_refused():
    props = {"tags": tags("ES256"), "customerMasterKeySpec": "ECC_NIST_P256", "deletionWindowInDays": 7}
    [found] = messages(guardrails.deletion_window, resource_args(AWS_KEY, props, name="k",
                                                                 config={"minDeletionWindowDays": 30}))
    assert ("AWS KMS key 'k' of keyset 'ks': deletionWindowInDays is 7 days, below the minimum of 30 days"
            in found)
    assert "Set deletionWindowDays >= 30" in found
    ok = {**props, "deletionWindowInDays": 30}
    assert messages(guardrails.deletion_window,
                    resource_args(AWS_KEY, ok, config={"minDeletionWindowDays": 30})) == []


def test_an_unset_window_is_the_providers_default_of_30_days():
    assert messages(guardrails.deletion_window,
                    resource_args(AWS_KEY, {}, config={"minDeletionWindowDays": 30})) == []
    assert len(messages(guardrails.deletion_window,
                        resource_args(AWS_KEY, {}, config={"minDeletionWindowDays": 31}))) == 1
    # The schema's default minimum is the domain's deletionWindowDays default.
    schema = guardrails.deletion_window.config_schema
    assert schema is not None
    assert schema.properties["minDeletionWindowDays"]["default"] == 30


def test_gcp_destroy_scheduled_durations_below_the_minimum_are_refused():
    week = {"destroyScheduledDuration": "604800s"}
    [found] = messages(guardrails.deletion_window,
                       resource_args(GCP_CRYPTO_KEY, week, config={"minDeletionWindowDays": 30}))
    assert "destroyScheduledDuration is 7 days, below the minimum of 30 days" in found
    assert messages(guardrails.deletion_window,
                    resource_args(GCP_CRYPTO_KEY, week, config={"minDeletionWindowDays": 7})) == []
    [found] = messages(guardrails.deletion_window,
                       resource_args(GCP_CRYPTO_KEY, {"destroyScheduledDuration": "30d"},
                                                                 config={}))
    assert "not a duration in seconds" in found


# ---------------------------------------------------------------------------------------------
# Protection


def under_generation(resource_type: str, state: str, props: dict | None = None, *, protect: bool):
    """A key resource under its KeyGeneration component (which records the generation's state)."""
    parent = stack_resource(KEY_GENERATION,
                            {"state": state, "keyset": "ks", "lifecycle": {"id": "g1", "state": state}},
                            name="ks-g1", protect=False)
    return [parent, stack_resource(resource_type, props or {}, name="k", protect=protect, parent=parent)]


@pytest.mark.parametrize("resource_type",
                         [SOFTWARE_KEY, AWS_KEY, GCP_CRYPTO_KEY, GCP_KEY_VERSION, KMS_RESTORED_KEY])
def test_key_resources_must_be_protected(resource_type):
    [(found, urn)] = violations(guardrails.key_protected,
                                stack_args(under_generation(resource_type, "active", protect=False)))
    assert "'k' is not protected (generation active)" in found and "protect=True" in found
    assert urn is not None and urn.endswith("::k")
    assert violations(guardrails.key_protected,
                      stack_args(under_generation(resource_type, "active", protect=True))) == []


@pytest.mark.parametrize("state", ["pending", "active", "retiring", "revoked", "destroyed"])
def test_only_a_retired_generations_key_may_be_unprotected(state):
    # retired -> destroyed is the one transition that deletes a KMS key (components/kms_record.py).
    assert violations(guardrails.key_protected,
                      stack_args(under_generation(AWS_KEY, "retired", protect=False))) == []
    assert len(violations(guardrails.key_protected,
                          stack_args(under_generation(AWS_KEY, state, protect=False)))) == 1


def test_without_a_generation_the_key_metadata_or_nothing_decides():
    retired = {"tags": RotationMetadata("ks", "g1", "prod", "retired", "ES256", "sign", CREATED,
                                        CREATED).aws_tags()}
    assert violations(guardrails.key_protected,
                      stack_args([stack_resource(AWS_KEY, retired, protect=False)])) == []
    [(found, _)] = violations(guardrails.key_protected, stack_args([stack_resource(AWS_KEY, {}, name="legacy",
                                                                                   protect=False)]))
    assert found.startswith("AWS KMS key 'legacy' is not protected: a `pulumi destroy`")


def test_a_software_key_names_its_keyset_and_the_loss():
    [(found, _)] = violations(guardrails.key_protected,
                              stack_args(under_generation(SOFTWARE_KEY, "active", software_key("ES256"),
                                                          protect=False)))
    assert "of keyset 'ks', generation 'g1'" in found
    assert "forget the private key for good" in found


def test_a_gcp_deletion_policy_that_keeps_the_key_counts_as_protection():
    kept = under_generation(GCP_KEY_VERSION, "active", {"deletionPolicy": "PREVENT"}, protect=False)
    assert violations(guardrails.key_protected, stack_args(kept)) == []
    deleted = under_generation(GCP_KEY_VERSION, "active", {"deletionPolicy": "DELETE"}, protect=False)
    assert len(violations(guardrails.key_protected, stack_args(deleted))) == 1


# ---------------------------------------------------------------------------------------------
# Published documents and key material


def ed25519_pem() -> tuple[str, str]:
    private = keys.generate_private(algorithms.ALGORITHMS["EdDSA"])
    return private, keys.public_pem_from_private(private)


def publication(document: dict | str) -> dict:
    content = document if isinstance(document, str) else json.dumps(document)
    return {"keyset": "atlas-gateway", "format": "jwks", "target": "file://jwks.json", "content": content,
            "kids": ["k1"]}


def test_a_public_jwks_passes_and_a_private_member_is_refused():
    _, public = ed25519_pem()
    jwk = {**keys.public_jwk(public), "kid": "k1"}
    assert messages(guardrails.public_documents,
                    resource_args(PUBLICATION, publication({"keys": [jwk]}))) == []

    leaked = {"keys": [{**jwk, "d": "c2VjcmV0"}]}
    [found] = messages(guardrails.public_documents,
                       resource_args(PUBLICATION, publication(leaked), name="jwks"))
    assert ("keyset 'atlas-gateway': Publication 'jwks' (jwks at file://jwks.json) contains private key "
            "material" in found)
    assert "$.keys[0].d" in found


def test_a_metrics_document_is_text_judged_as_text():
    """OpenMetrics is not JSON: it passes as published, and a PEM private key pasted into it is refused."""
    text = 'signer_keys_active_total{keyset="atlas-gateway"} 1\n# EOF\n'
    metrics_doc = {**publication(text), "format": "metrics", "target": "file://published/metrics/gw.prom",
                   "kids": []}
    assert messages(guardrails.public_documents, resource_args(PUBLICATION, metrics_doc)) == []
    private, _ = ed25519_pem()
    leaked = {**metrics_doc, "content": text + private}
    [found] = messages(guardrails.public_documents, resource_args(PUBLICATION, leaked, name="metrics"))
    assert "contains private key material" in found and private not in found


def test_a_document_that_is_unknown_in_a_preview_is_not_judged():
    assert messages(guardrails.public_documents,
                    resource_args(PUBLICATION, publication(UNKNOWN_STRING_VALUE))) == []


def config_map(data: dict, binary: dict | None = None) -> dict:
    return {"metadata": {"name": "gateway-config", "namespace": "atlas"}, "data": data,
            **({"binaryData": binary} if binary else {})}


def test_configmaps_with_private_keys_or_raw_secrets_are_refused():
    private, _ = ed25519_pem()
    aes = base64.b64encode(os.urandom(32)).decode()
    data = {"signing.pem": private, "SECRET_ENCRYPTION_KEY": aes, "LOG_LEVEL": "debug"}
    found = messages(guardrails.config_map_material, resource_args(CONFIG_MAP, config_map(data), name="cm"))

    assert len(found) == 2
    assert "ConfigMap 'cm' (atlas/gateway-config) data.signing.pem holds a PEM private key" in found[0]
    assert "data.SECRET_ENCRYPTION_KEY holds a 32-byte secret (base64)" in found[1]
    assert all(private not in m and aes not in m for m in found)  # never echo the material


def test_configmaps_with_identifiers_and_public_documents_pass():
    _, public = ed25519_pem()
    thumbprint = keys.thumbprint(public)  # 43 characters of base64url: 32 bytes, but an identifier
    jwks = json.dumps({"keys": [{**keys.public_jwk(public), "kid": thumbprint}]})
    data = {"SIGNING_KEY_ID": thumbprint, "jwks.json": jwks, "AUDIT_SIGNING_KEY_ARN": "arn:aws:kms:..."}
    assert messages(guardrails.config_map_material, resource_args(CONFIG_MAP, config_map(data))) == []


def test_binary_configmap_data_is_decoded_before_it_is_judged():
    private, _ = ed25519_pem()
    binary = {"key.pem": base64.b64encode(private.encode()).decode()}
    [found] = messages(guardrails.config_map_material, resource_args(CONFIG_MAP, config_map({}, binary)))
    assert "binaryData.key.pem holds a PEM private key" in found


def deployment_patch(env: list[dict]) -> dict:
    return {"metadata": {"name": "secrets-service", "namespace": "aether"},
            "spec": {"template": {"spec": {"containers": [{"name": "secrets-service", "env": env}]}}}}


def test_plain_env_values_with_key_material_are_refused_and_secret_refs_pass():
    aes = base64.b64encode(os.urandom(32)).decode()
    env: list[dict[str, Any]] = [
        {"name": "SECRET_ENCRYPTION_KEY", "value": aes},
        {"name": "SECRET_ENCRYPTION_KEYRING",
         "valueFrom": {"secretKeyRef": {"name": "cfg", "key": "keyring"}}},
        {"name": "SIGNING_KEY_ID", "value": keys.thumbprint(ed25519_pem()[1])},
    ]
    [found] = messages(guardrails.env_material,
                       resource_args("kubernetes:apps/v1:DeploymentPatch", deployment_patch(env),
                                     name="patch"))
    assert "'patch': container 'secrets-service' env SECRET_ENCRYPTION_KEY holds a 32-byte secret" in found
    assert "secretKeyRef" not in found.split("holds")[0] and aes not in found


def test_a_private_jwk_in_an_env_value_is_refused_whatever_its_name():
    jwk = json.dumps({"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "d": "BBBB"})
    [found] = messages(guardrails.env_material,
                       resource_args("kubernetes:apps/v1:Deployment",
                                     deployment_patch([{"name": "CONFIG", "value": jwk}])))
    assert "env CONFIG holds a JWK with private members ($.d)" in found


def test_a_restored_aws_keys_second_deletion_window_is_held_to_the_minimum():
    short = {"keyset": "ks", "generation": "g1", "backend": "aws-kms", "deletion_window_days": 7}
    [found] = messages(guardrails.deletion_window, resource_args(KMS_RESTORED_KEY, short, name="k",
                                                                 config={"minDeletionWindowDays": 14}))
    assert "restored KMS key 'k': deletion_window_days is 7 days, below the minimum of 14 days" in found
    ok = {**short, "deletion_window_days": 14}
    assert messages(guardrails.deletion_window, resource_args(KMS_RESTORED_KEY, ok,
                                                              config={"minDeletionWindowDays": 14})) == []
