"""Maximum key age, the advisory warning, native rotation and unmanaged keys, on hand-built args."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from keyrotation.metadata import RotationMetadata
from keyrotation.times import format_time
from policy import key_age, limits
from policy.resources import AWS_KEY, GCP_CRYPTO_KEY, GCP_KEY_VERSION, SECRET, SOFTWARE_KEY
from tests.policy_client import messages, resource_args, stack_args, stack_resource, violations
from tests.project import ROOT

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONFIG = {"maxAgeDays": 90, "warnDays": 14, "now": format_time(NOW)}


def meta(age_days: float, *, keyset: str = "atlas-gateway", generation: str = "2026-08-01",
         state: str = "active",
         purpose: str = "sign", algorithm: str = "ES256") -> RotationMetadata:
    activated = NOW - timedelta(days=age_days)
    return RotationMetadata(keyset=keyset, generation=generation, environment="production", state=state,
                            algorithm=algorithm, purpose=purpose,
                            created_at=activated - timedelta(minutes=10),
                            activated_at=activated)


def software_key(m: RotationMetadata) -> dict:
    """SoftwareKey inputs as the component registers them (snake_case, RFC 3339 times)."""
    return {"keyset": m.keyset, "generation": m.generation, "algorithm": m.algorithm, "state": m.state,
            "environment": m.environment, "purpose": m.purpose, "created_at": format_time(m.created_at),
            "activated_at": format_time(m.activated_at) if m.activated_at else None}


def carriers(m: RotationMetadata) -> list[tuple[str, dict]]:
    """The same metadata on each medium a component writes it to."""
    return [
        (SOFTWARE_KEY, software_key(m)),
        (AWS_KEY, {"tags": m.aws_tags(), "customerMasterKeySpec": "ECC_NIST_P256",
                   "keyUsage": "SIGN_VERIFY"}),
        (GCP_CRYPTO_KEY, {"labels": m.gcp_labels(), "purpose": "ASYMMETRIC_SIGN"}),
        (SECRET, {"metadata": {"name": "s", "annotations": m.annotations()}, "type": "Opaque"}),
    ]


@pytest.mark.parametrize("resource_type,props", carriers(meta(100)),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_an_overdue_active_generation_is_mandatory_on_every_medium(resource_type, props):
    found = messages(key_age.key_max_age, resource_args(resource_type, props, name="gw-key", config=CONFIG))

    assert len(found) == 1
    message = found[0]
    assert "keyset 'atlas-gateway', generation '2026-08-01'" in message
    assert "'gw-key'" in message
    assert "100 days old" in message
    assert "maximum age is 90 days (policy config maxAgeDays)" in message
    assert "due at 2026-11-13T12:00:00Z" in message
    assert "python -m keyrotation rotate atlas-gateway" in message
    assert messages(key_age.key_age_warning, resource_args(resource_type, props, config=CONFIG)) == []
    assert key_age.key_max_age.enforcement_level is not None
    assert key_age.key_max_age.enforcement_level.value == "mandatory"


@pytest.mark.parametrize("resource_type,props", carriers(meta(80)),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_within_warn_days_only_the_advisory_policy_reports(resource_type, props):
    args = resource_args(resource_type, props, config=CONFIG)

    assert messages(key_age.key_max_age, args) == []
    [warning] = messages(key_age.key_age_warning, args)
    assert "reaches the maximum age of 90 days" in warning
    assert "at 2026-12-03T12:00:00Z, in 10 days (warning 14 days ahead)" in warning
    assert key_age.key_age_warning.enforcement_level is not None
    assert key_age.key_age_warning.enforcement_level.value == "advisory"


def test_a_young_key_passes_both_age_policies():
    args = resource_args(SOFTWARE_KEY, software_key(meta(20)), config=CONFIG)
    assert messages(key_age.key_max_age, args) == [] == messages(key_age.key_age_warning, args)


@pytest.mark.parametrize("state", ["pending", "retiring", "retired", "destroyed", "revoked"])
def test_only_the_active_generation_is_aged(state):
    args = resource_args(SOFTWARE_KEY, software_key(meta(400, state=state)), config=CONFIG)
    assert messages(key_age.key_max_age, args) == []


def test_limits_come_from_the_keyset_then_the_purpose_then_the_top_level():
    config = {**CONFIG, "purposes": {"encrypt": {"maxAgeDays": 30}},
              "keysets": {"atlas-gateway": {"maxAgeDays": 7, "warnDays": 2}}}
    gateway = resource_args(SOFTWARE_KEY, software_key(meta(8)), config=config)
    [found] = messages(key_age.key_max_age, gateway)
    assert "maximum age is 7 days (policy config keysets.atlas-gateway)" in found

    aes = resource_args(SOFTWARE_KEY, software_key(meta(31, keyset="secrets-service", purpose="encrypt",
                                                        algorithm="A256GCM")), config=config)
    [found] = messages(key_age.key_max_age, aes)
    assert "maximum age is 30 days (policy config purposes.encrypt)" in found

    other = resource_args(SOFTWARE_KEY, software_key(meta(31, keyset="audit-signing")), config=config)
    assert messages(key_age.key_max_age, other) == []


def test_warn_days_default_to_the_domain_rule_for_the_level_that_sets_the_limit():
    # A keyset limit of 8 days without warnDays: the top level's 14 would always warn; the domain's
    # default for a short maximum age is a quarter of it (2 days).
    config = {**CONFIG, "keysets": {"atlas-gateway": {"maxAgeDays": 8}}}
    assert limits.age_limit(config, "atlas-gateway", "sign") == limits.AgeLimit(8, 2,
                                                                                "policy config "
                                                                                "keysets.atlas-gateway")
    assert messages(key_age.key_age_warning,
                    resource_args(SOFTWARE_KEY, software_key(meta(5)), config=config)) == []
    assert len(messages(key_age.key_age_warning,
                        resource_args(SOFTWARE_KEY, software_key(meta(6.5)), config=config))) == 1


def test_now_comes_from_the_config_then_the_environment_then_the_clock(monkeypatch):
    props = software_key(meta(100))
    monkeypatch.setenv("KEY_ROTATION_NOW", format_time(NOW - timedelta(days=50)))
    # config "now" wins over the environment
    assert len(messages(key_age.key_max_age, resource_args(SOFTWARE_KEY, props, config=CONFIG))) == 1
    # without it, the publisher's clock variable: the key was 50 days old then
    no_now = {"maxAgeDays": 90}
    assert messages(key_age.key_max_age, resource_args(SOFTWARE_KEY, props, config=no_now)) == []
    # without both, the real clock
    monkeypatch.delenv("KEY_ROTATION_NOW")
    assert abs(limits.evaluation_time({}) - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_pack_reads_the_publishers_clock_variable_without_importing_the_program():
    import components.publication as publication

    # The name the publisher's module reads (imported there from keyrotation.names, not re-exported).
    publishers = vars(publication)["NOW_VARIABLE"]
    assert publishers == limits.NOW_VARIABLE
    code = ("import sys; sys.path.insert(0, '.'); import policy.key_age, policy.guardrails, policy.rotation;"
            " print(sorted(m for m in sys.modules if m.startswith(('components', 'pulumi_aws', 'pulumi_gcp',"
            " 'pulumi_kubernetes', 'google.cloud', 'boto3'))))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    assert loaded.stdout.strip() == "[]"


def test_a_bad_now_is_an_error_that_names_where_it_came_from(monkeypatch):
    with pytest.raises(ValueError, match=r"policy config 'now' is 'yesterday'"):
        limits.evaluation_time({"now": "yesterday"})
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-23T12:00:00")
    with pytest.raises(ValueError, match=r"\$KEY_ROTATION_NOW .* give a time zone"):
        limits.evaluation_time({})


def test_an_active_key_without_an_activation_time_cannot_pass():
    props = {**software_key(meta(10)), "activated_at": None}
    [found] = messages(key_age.key_max_age, resource_args(SOFTWARE_KEY, props, config=CONFIG))
    assert "keyset 'atlas-gateway', generation '2026-08-01'" in found
    assert "no activated-at time, so its age cannot be checked" in found


def test_unknown_metadata_in_a_preview_is_not_judged():
    props = software_key(meta(100))
    props["activated_at"] = UNKNOWN_STRING_VALUE
    assert messages(key_age.key_max_age, resource_args(SOFTWARE_KEY, props, config=CONFIG)) == []


# ---------------------------------------------------------------------------------------------
# Native rotation


def aws_key(m: RotationMetadata | None, **props) -> dict:
    return {**({"tags": m.aws_tags()} if m else {}), "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "keyUsage": "ENCRYPT_DECRYPT", "isEnabled": True, **props}


AES = meta(10, keyset="secrets-service", purpose="encrypt", algorithm="A256GCM")


def test_a_symmetric_aws_key_without_native_rotation_is_mandatory():
    [found] = messages(key_age.key_max_age, resource_args(AWS_KEY, aws_key(AES), name="aes", config=CONFIG))
    assert "keyset 'secrets-service', generation '2026-08-01' (AWS KMS key 'aes')" in found
    assert "without native rotation" in found
    assert "Set enableKeyRotation=true and rotationPeriodInDays <= 90" in found


def test_the_aws_default_rotation_period_exceeds_a_90_day_limit():
    unset = aws_key(AES, enableKeyRotation=True)
    [found] = messages(key_age.key_max_age, resource_args(AWS_KEY, unset, config=CONFIG))
    assert "every 365 days exceeds the maximum age of 90 days" in found
    ok = aws_key(AES, enableKeyRotation=True, rotationPeriodInDays=90)
    assert messages(key_age.key_max_age, resource_args(AWS_KEY, ok, config=CONFIG)) == []


def test_a_limit_below_the_aws_minimum_period_asks_for_the_minimum():
    config = {**CONFIG, "maxAgeDays": 30}
    found = messages(key_age.key_max_age, resource_args(AWS_KEY, aws_key(AES, enableKeyRotation=True,
                                                                         rotationPeriodInDays=120),
                                                        config=config))
    assert found == [found[0]] and "rotationPeriodInDays <= 90" in found[0]
    ok = aws_key(AES, enableKeyRotation=True, rotationPeriodInDays=90)
    assert messages(key_age.key_max_age, resource_args(AWS_KEY, ok, config=config)) == []


@pytest.mark.parametrize("spec,usage", [("RSA_2048", "SIGN_VERIFY"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                                        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
                                        ("HMAC_256", "GENERATE_VERIFY_MAC")])
def test_asymmetric_and_hmac_aws_keys_are_never_flagged_for_lacking_native_rotation(spec, usage):
    props = aws_key(meta(10), customerMasterKeySpec=spec, keyUsage=usage)
    assert messages(key_age.key_max_age, resource_args(AWS_KEY, props, config=CONFIG)) == []


def test_a_disabled_symmetric_key_needs_no_rotation():
    props = aws_key(AES, isEnabled=False)
    assert messages(key_age.key_max_age, resource_args(AWS_KEY, props, config=CONFIG)) == []


def test_gcp_symmetric_keys_need_a_rotation_period_within_the_limit():
    labels = {"labels": AES.gcp_labels(), "purpose": "ENCRYPT_DECRYPT"}
    [found] = messages(key_age.key_max_age, resource_args(GCP_CRYPTO_KEY, labels, config=CONFIG))
    assert "without automatic rotation" in found and 'rotationPeriod <= "7776000s"' in found
    too_long = {**labels, "rotationPeriod": "31536000s"}
    [found] = messages(key_age.key_max_age, resource_args(GCP_CRYPTO_KEY, too_long, config=CONFIG))
    assert "every 365 days exceeds the maximum age of 90 days" in found
    ok = {**labels, "rotationPeriod": "7776000s"}
    assert messages(key_age.key_max_age, resource_args(GCP_CRYPTO_KEY, ok, config=CONFIG)) == []
    sign = {"labels": meta(10).gcp_labels(), "purpose": "ASYMMETRIC_SIGN"}
    assert messages(key_age.key_max_age, resource_args(GCP_CRYPTO_KEY, sign, config=CONFIG)) == []


# ---------------------------------------------------------------------------------------------
# Unmanaged keys


def test_kms_keys_without_rotation_metadata_are_reported_as_unmanaged_with_their_age():
    legacy_aws = stack_resource(AWS_KEY, {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"},
                                name="legacy-signing")
    legacy_gcp = stack_resource(GCP_CRYPTO_KEY, {"purpose": "ASYMMETRIC_SIGN", "labels": {"team": "x"}},
                                name="legacy-ring-key")
    version = stack_resource(GCP_KEY_VERSION,
                             {"cryptoKey": "projects/p/locations/global/keyRings/r/cryptoKeys/k",
                                               "generateTime": "2026-05-27T12:00:00Z"},
                             name="legacy-ring-key-v1", dependencies=[legacy_gcp])
    managed = stack_resource(AWS_KEY, aws_key(AES, enableKeyRotation=True), name="managed")

    found = violations(key_age.unmanaged_key, stack_args([legacy_aws, legacy_gcp, version, managed], CONFIG))

    assert [urn for _, urn in found] == [legacy_aws.urn, legacy_gcp.urn]
    aws_message, gcp_message = (m for m, _ in found)
    assert "AWS KMS key 'legacy-signing' is an unmanaged key" in aws_message
    assert "its age is unknown" in aws_message
    assert "Cloud KMS CryptoKey 'legacy-ring-key' is an unmanaged key" in gcp_message
    assert "generated 2026-05-27T12:00:00Z, 180 days ago" in gcp_message
    assert key_age.unmanaged_key.enforcement_level is not None
    assert key_age.unmanaged_key.enforcement_level.value == "advisory"


def test_a_key_whose_tags_are_unknown_in_a_preview_is_not_called_unmanaged():
    key = stack_resource(AWS_KEY, {"tags": {"key-rotation:keyset": UNKNOWN_STRING_VALUE}})
    assert violations(key_age.unmanaged_key, stack_args([key], CONFIG)) == []


# ---------------------------------------------------------------------------------------------
# The stack's own limits (from the engine's ConfigureStack), held to the policy config's ceiling


@pytest.fixture
def stack_with_gateway_limit():
    """The stack config the engine hands the pack, with the gateway's own maxAgeDays set by a test."""
    import json

    from policy import stack_config
    from tests.project import stack_config as shipped

    def configure(max_age_days: int) -> None:
        config = shipped("dev")
        config["key-rotation:keysets"]["atlas-gateway"].update(maxAgeDays=max_age_days, warnDays=2)
        stack_config.receive(stack="dev", project="key-rotation",
                             config={k: v if isinstance(v, str) else json.dumps(v) for k,
                                     v in config.items()})

    yield configure
    stack_config.forget()


def test_a_keyset_is_judged_by_its_own_stack_limit_under_the_ceiling(stack_with_gateway_limit):
    stack_with_gateway_limit(7)
    found = messages(key_age.key_max_age, resource_args(SOFTWARE_KEY, software_key(meta(8)), config=CONFIG))
    assert len(found) == 1
    assert "maximum age is 7 days (Pulumi.dev.yaml keysets.atlas-gateway)" in found[0]
    assert "--stack dev" in found[0]


def test_a_stack_file_cannot_raise_a_keyset_past_the_environment_ceiling(stack_with_gateway_limit):
    stack_with_gateway_limit(400)
    found = messages(key_age.key_max_age, resource_args(SOFTWARE_KEY, software_key(meta(100)), config=CONFIG))
    assert len(found) == 1
    assert "maximum age is 90 days (policy config maxAgeDays)" in found[0]
