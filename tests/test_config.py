"""Validation of the stack file contract: every error names file, keyset, generation and field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyrotation.config import ConfigError, from_config_map, load_stack_file, parse

ROOT = Path(__file__).resolve().parents[1]
T0 = "2026-11-01T09:00:00Z"


def base() -> dict:
    return {
        "environment": "dev",
        "keysets": {
            "gw": {
                "purpose": "sign",
                "algorithm": "ES256",
                "generations": [
                    {"id": "g1", "state": "retiring", "createdAt": T0, "activatedAt": "2026-11-01T10:00:00Z",
                     "retiringAt": "2026-11-10T10:00:00Z"},
                    {"id": "g2", "state": "active", "createdAt": "2026-11-10T09:00:00Z",
                     "activatedAt": "2026-11-10T10:00:00Z"},
                ],
            }
        },
    }


def errors(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data, stack_file="Pulumi.test.yaml")
    message = str(info.value)
    assert message.startswith("Pulumi.test.yaml: invalid key-rotation configuration")
    return message


def pem(key) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_shipped_stack_files_are_valid(stack):
    config = load_stack_file(ROOT / f"Pulumi.{stack}.yaml")
    assert config.environment == stack
    assert config.keysets


def test_valid_config_resolves_timings_from_defaults_and_overrides():
    data = base()
    data["defaults"] = {"maxAgeDays": 30, "publishMaxAgeSeconds": 600}
    data["keysets"]["gw"]["maxAgeDays"] = 7
    keyset = parse(data, stack_file="Pulumi.test.yaml").keysets["gw"]
    assert keyset.name == "gw"
    assert keyset.timings.max_age_days == 7
    assert keyset.timings.publish_max_age_seconds == 600
    assert keyset.timings.publish_lead.total_seconds() == 660
    assert keyset.active.id == "g2"


def test_unknown_key_in_a_keyset():
    data = base()
    data["keysets"]["gw"]["algorythm"] = "ES256"
    assert "keyset 'gw', field 'algorythm': unknown key 'algorythm'" in errors(data)


def test_unknown_key_in_a_generation_names_the_generation():
    data = base()
    data["keysets"]["gw"]["generations"][1]["activeAt"] = T0
    assert "keyset 'gw', generation 'g2', field 'activeAt': unknown key 'activeAt'" in errors(data)


def test_unknown_top_level_key_from_the_config_map():
    with pytest.raises(ConfigError) as info:
        from_config_map(
            {"key-rotation:environment": "dev", "key-rotation:keysets": base()["keysets"],
             "key-rotation:rotation": "weekly"},
            stack_file="Pulumi.dev.yaml",
        )
    assert "Pulumi.dev.yaml" in str(info.value)
    assert "field 'rotation': unknown key 'rotation'" in str(info.value)


def test_config_map_accepts_json_strings_as_the_engine_passes_them():
    import json

    config = from_config_map(
        {"key-rotation:environment": "dev", "key-rotation:keysets": json.dumps(base()["keysets"]),
         "aws:region": "eu-west-1"},
        stack_file="Pulumi.dev.yaml",
    )
    assert config.keysets["gw"].algorithm == "ES256"
    assert config.other == {"aws:region": "eu-west-1"}


def test_algorithm_that_does_not_fit_the_purpose():
    data = base()
    data["keysets"]["gw"]["algorithm"] = "HS256"
    message = errors(data)
    assert ("keyset 'gw', field 'algorithm': HS256 is a 'mac' algorithm but the keyset's purpose is 'sign'"
            in message)
    assert "EdDSA" in message  # says what would fit


def test_unknown_algorithm():
    data = base()
    data["keysets"]["gw"]["algorithm"] = "ES257"
    assert "keyset 'gw', field 'algorithm': unknown algorithm 'ES257'" in errors(data)


def test_algorithm_not_allowed_by_the_fips_profile():
    data = base()
    data["profile"] = "fips"
    data["keysets"]["gw"]["algorithm"] = "EdDSA"
    assert "keyset 'gw', field 'algorithm': EdDSA is not allowed by profile 'fips'" in errors(data)


def test_algorithm_the_backend_cannot_hold():
    data = base()
    data["keysets"]["gw"].update(algorithm="ES256K", backend="gcp-kms",
                                 gcp={"location": "global", "keyRing": "ring"})
    message = errors(data)
    assert ("keyset 'gw', field 'gcp.protectionLevel': gcp-kms cannot hold ES256K at protectionLevel "
            "SOFTWARE" in message)


def test_key_size_only_for_rsa():
    data = base()
    data["keysets"]["gw"]["keySize"] = 4096
    assert "keyset 'gw', field 'keySize': keySize applies to RSA algorithms" in errors(data)


@pytest.mark.parametrize("states,found", [
    (("retiring", "retiring"), "found none"),
    (("active", "active"), "found 2 (g1, g2)"),
])
def test_zero_or_two_active_generations(states, found):
    data = base()
    for gen, state in zip(data["keysets"]["gw"]["generations"], states, strict=True):
        gen["state"] = state
        gen.setdefault("retiringAt", "2026-11-12T10:00:00Z")
        if state == "active":
            gen.pop("retiringAt")
    message = errors(data)
    assert (f"keyset 'gw', field 'generations': a sign keyset needs exactly one 'active' generation; {found}"
            in message)


def test_duplicate_generation_ids():
    data = base()
    data["keysets"]["gw"]["generations"][0]["id"] = "g2"
    assert "keyset 'gw', generation 'g2', field 'id': duplicate generation id" in errors(data)


def test_active_needs_activated_at():
    data = base()
    del data["keysets"]["gw"]["generations"][1]["activatedAt"]
    assert ("keyset 'gw', generation 'g2', field 'activatedAt': is required when state is 'active'"
            in errors(data))


def test_pending_must_not_have_activated_at():
    data = base()
    data["keysets"]["gw"]["generations"].append(
        {"id": "g3", "state": "pending", "createdAt": T0, "activatedAt": T0})
    assert ("keyset 'gw', generation 'g3', field 'activatedAt': must not be set while state is 'pending'"
            in errors(data))


def test_timestamps_out_of_order():
    data = base()
    data["keysets"]["gw"]["generations"][0]["retiringAt"] = "2026-10-01T00:00:00Z"
    message = errors(data)
    assert ("keyset 'gw', generation 'g1', field 'retiringAt': retiringAt (2026-10-01T00:00:00Z) is before"
            " activatedAt (2026-11-01T10:00:00Z)") in message


def test_revoked_needs_a_reason():
    data = base()
    data["keysets"]["gw"]["generations"][0] = {
        "id": "g1", "state": "revoked", "createdAt": T0, "revokedAt": "2026-11-02T00:00:00Z"}
    assert ("keyset 'gw', generation 'g1', field 'revokeReason': is required when state is 'revoked'"
            in errors(data))


def test_malformed_and_naive_times():
    data = base()
    data["keysets"]["gw"]["generations"][1]["createdAt"] = "last tuesday"
    data["keysets"]["gw"]["generations"][0]["createdAt"] = "2026-11-01T09:00:00"
    message = errors(data)
    assert ("keyset 'gw', generation 'g2', field 'createdAt': is not an RFC 3339 time: 'last tuesday'"
            in message)
    assert "keyset 'gw', generation 'g1', field 'createdAt': needs a timezone" in message


def test_unknown_state_lists_the_allowed_ones():
    data = base()
    data["keysets"]["gw"]["generations"][1]["state"] = "enabled"
    message = errors(data)
    assert "keyset 'gw', generation 'g2', field 'state': 'enabled' is not allowed" in message
    assert "'pending'" in message


def test_all_problems_are_reported_together():
    data = base()
    data["keysets"]["gw"]["generations"][0]["id"] = "g2"
    data["keysets"]["gw"]["algorithm"] = "HS256"
    message = errors(data)
    assert "duplicate generation id" in message and "is a 'mac' algorithm" in message


def external(pem_text: str, algorithm: str = "ES256") -> dict:
    data = base()
    data["keysets"]["gw"]["backend"] = "external"
    data["keysets"]["gw"]["algorithm"] = algorithm
    for gen in data["keysets"]["gw"]["generations"]:
        gen["publicKeyPem"] = pem_text
    return data


def test_external_generation_needs_a_public_key():
    data = external("")
    del data["keysets"]["gw"]["generations"][0]["publicKeyPem"]
    data["keysets"]["gw"]["generations"][1]["publicKeyPem"] = pem(ec.generate_private_key(ec.SECP256R1()))
    assert ("keyset 'gw', generation 'g1', field 'publicKeyPem': is required for backend external"
            in errors(data))


def test_external_public_key_must_parse():
    message = errors(external("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"))
    assert "keyset 'gw', generation 'g1', field 'publicKeyPem': is not a PEM public key" in message


def test_external_public_key_must_match_the_algorithm():
    message = errors(external(pem(ed25519.Ed25519PrivateKey.generate()), "ES256"))
    assert ("keyset 'gw', generation 'g1', field 'publicKeyPem': holds a OKP Ed25519 key; ES256 needs EC "
            "P-256" in message)


def test_external_public_key_of_the_right_curve_is_accepted():
    data = external(pem(ec.generate_private_key(ec.SECP256R1())))
    data["keysets"]["gw"]["generations"][1]["publicKeyPem"] = pem(ec.generate_private_key(ec.SECP256R1()))
    config = parse(data, stack_file="Pulumi.test.yaml")
    assert config.keysets["gw"].backend == "external"


def test_public_key_pem_only_for_external():
    data = base()
    data["keysets"]["gw"]["generations"][0]["publicKeyPem"] = pem(ec.generate_private_key(ec.SECP256R1()))
    assert "field 'publicKeyPem': only backend external takes a publicKeyPem" in errors(data)


def test_kid_template_placeholders():
    data = base()
    data["keysets"]["gw"]["kid"] = "{service}-{generation}"
    assert ("keyset 'gw', field 'kid': kid template '{service}-{generation}' uses unknown placeholder(s) "
            "service" in errors(data))
    data["keysets"]["gw"]["kid"] = "gateway"
    assert "gives every generation the same kid" in errors(data)


def test_symmetric_keysets_publish_only_key_history():
    data = base()
    data["keysets"]["gw"].update(purpose="encrypt", algorithm="A256GCM",
                                 publish=[{"format": "jwks", "target": "file://x.json"}])
    assert ("keyset 'gw', field 'publish[0].format': a encrypt keyset has no public key to publish;"
            " only 'key-history' and 'metrics' are allowed, not 'jwks'") in errors(data)


def test_publish_target_scheme():
    data = base()
    data["keysets"]["gw"]["publish"] = [{"format": "jwks", "target": "ftp://host/jwks.json"}]
    assert ("keyset 'gw', field 'publish[0].target': target 'ftp://host/jwks.json' must be file://path"
            in errors(data))


def test_the_error_never_contains_private_material():
    data = copy.deepcopy(base())
    data["keysets"]["gw"]["generations"][0]["privateKey"] = "-----BEGIN PRIVATE KEY-----SECRET"
    message = errors(data)
    assert "unknown key 'privateKey'" in message
    assert "SECRET" not in message


# ---------------------------------------------------------------------------------------------
# History (several periods per generation) and data at rest


def rolled_back() -> dict:
    """g1 re-activated by a rollback at 11-10T11:00: its first pass stays, a step is appended."""
    data = base()
    g1, g2 = data["keysets"]["gw"]["generations"]
    g1.update(state="active", history=[{"state": "active", "at": "2026-11-10T11:00:00Z"}])
    g2.update(state="retiring", retiringAt="2026-11-10T11:00:00Z")
    return data


def test_a_rollback_is_a_history_step_and_both_periods_are_read():
    from keyrotation import lifecycle

    g1 = parse(rolled_back(), stack_file="Pulumi.test.yaml").keysets["gw"].generation("g1")
    assert g1.retiring_at is not None and g1.retiring_at.isoformat() == "2026-11-10T10:00:00+00:00"
    assert [(a.isoformat(), b and b.isoformat()) for a, b in lifecycle.signing_periods(g1)] == [
        ("2026-11-01T10:00:00+00:00", "2026-11-10T10:00:00+00:00"), ("2026-11-10T11:00:00+00:00", None)]


def test_a_history_step_the_lifecycle_does_not_allow_is_refused():
    data = rolled_back()
    data["keysets"]["gw"]["generations"][0]["history"].append({"state": "destroyed",
                                                               "at": "2026-11-11T00:00:00Z"})
    data["keysets"]["gw"]["generations"][0]["state"] = "destroyed"
    assert ("keyset 'gw', generation 'g1', field 'history[1].state': cannot go from 'active' to 'destroyed'"
            in errors(data))


def test_history_is_appended_in_order_and_ends_in_the_state():
    data = rolled_back()
    data["keysets"]["gw"]["generations"][0]["history"][0]["at"] = "2026-11-05T00:00:00Z"
    assert ("field 'history[0].at': 2026-11-05T00:00:00Z is before the previous step (2026-11-10T10:00:00Z)"
            in errors(data))
    data = rolled_back()
    data["keysets"]["gw"]["generations"][0]["state"] = "retiring"
    data["keysets"]["gw"]["generations"][1]["state"] = "active"
    del data["keysets"]["gw"]["generations"][1]["retiringAt"]
    assert "generation 'g1', field 'state': is 'retiring' but its history ends in 'active'" in errors(data)


def test_a_first_pass_time_set_after_the_history_began_is_refused():
    # retiredAt written at the top level after the rollback: the path would go back in time
    data = rolled_back()
    data["keysets"]["gw"]["generations"][0]["retiredAt"] = "2026-11-12T00:00:00Z"
    message = errors(data)
    assert "generation 'g1', field 'history[0].state': cannot go from 'retired' to 'active'" in message
    assert ("field 'history[0].at': 2026-11-10T11:00:00Z is before the previous step (2026-11-12T00:00:00Z)"
            in message)


def test_data_at_rest_is_for_encrypt_and_mac_keysets():
    data = base()
    data["keysets"]["gw"]["dataRetentionSeconds"] = 3600
    assert ("keyset 'gw', field 'dataRetentionSeconds': a sign keyset keeps no data at rest") in errors(data)
    data = base()
    data["keysets"]["gw"]["generations"][0]["rewrapped"] = [{"at": "2026-11-11T00:00:00Z", "by": "ops"}]
    assert ("generation 'g1', field 'rewrapped': only an encrypt/mac keyset with data at rest records"
            " re-encryptions") in errors(data)
    mac = parse({"environment": "dev", "keysets": {"m": {"purpose": "mac", "algorithm": "HS256",
                                                         "dataAtRest": True,
                "generations": base()["keysets"]["gw"]["generations"]}}}, stack_file="Pulumi.test.yaml")
    assert mac.keysets["m"].keeps_data
    plain_mac = parse({"environment": "dev", "keysets": {"m": {"purpose": "mac", "algorithm": "HS256",
                      "generations": base()["keysets"]["gw"]["generations"]}}}, stack_file="Pulumi.test.yaml")
    assert not plain_mac.keysets["m"].keeps_data
