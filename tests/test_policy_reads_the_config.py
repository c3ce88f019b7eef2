"""The policy pack judges a keyset by the stack config the engine hands it (the model the program read),
and by the KeyGeneration outputs only where the config does not describe the keyset."""

from __future__ import annotations

import json

import pytest

from policy import rotation, stack_config
from tests.policy_client import stack_args
from tests.test_policy_rotation import at, generation


@pytest.fixture(autouse=True)
def _no_config_left_behind():
    yield
    stack_config.forget()


def _engine_config(activated: str, *, overlap_seconds: int) -> dict[str, str]:
    keyset = {
        "purpose": "sign", "algorithm": "EdDSA", "tokenLifetimeSeconds": overlap_seconds,
        "publish": [{"format": "jwks", "target": "s3://portal/.well-known/jwks.json"}],
        "generations": [{"id": "g1", "state": "active", "createdAt": at(-600), "activatedAt": activated}],
    }
    # As ConfigureStack carries it: structured values as JSON text.
    return {"key-rotation:environment": "dev", "key-rotation:keysets": json.dumps({"atlas-gateway": keyset})}


def test_the_pack_reads_the_generation_and_timings_from_the_stack_config():
    outputs = generation("g1", "active", "kid-1", createdAt=at(-600), activatedAt=at(-500))
    stack_config.receive(stack="dev", project="key-rotation",
                         config=_engine_config(at(-300), overlap_seconds=1200))
    view = rotation.keysets(stack_args([outputs]))["atlas-gateway"]
    (g,) = view.generations
    assert g.generation.activated_at is not None and g.generation.activated_at.isoformat().startswith(
        "2026-11-23T07:00")  # the config's activatedAt (at(-300)), not the outputs' (at(-500))
    assert view.timings.token_lifetime_seconds == 1200
    assert g.kid == "kid-1" and g.urn  # what only the deployment knows still comes from the outputs


def test_without_a_config_the_pack_reads_the_outputs():
    outputs = generation("g1", "active", "kid-1", createdAt=at(-600), activatedAt=at(-500))
    view = rotation.keysets(stack_args([outputs]))["atlas-gateway"]
    (g,) = view.generations
    assert g.generation.activated_at is not None and g.generation.activated_at.isoformat().startswith(
        "2026-11-23T03:40")  # at(-500)


def test_a_keyset_the_config_does_not_describe_is_read_from_the_outputs():
    other = generation("g1", "active", "kid-9", keyset="legacy", createdAt=at(-600), activatedAt=at(-500))
    stack_config.receive(stack="dev", project="key-rotation",
                         config=_engine_config(at(-300), overlap_seconds=1200))
    view = rotation.keysets(stack_args([other]))["legacy"]
    assert view.generations[0].generation.activated_at is not None
    assert view.generations[0].generation.activated_at.isoformat().startswith("2026-11-23T03:40")


# ---------------------------------------------------------------------------------------------
# Key age: a key resource names its generation; the config describes it


def _gateway_config(activated: str, state: str = "active") -> dict[str, str]:
    times = {"activatedAt": activated, **({"retiringAt": at(-1)} if state == "retiring" else {})}
    generations = [{"id": "2026-08-01", "state": state, "createdAt": at(-200_000), **times}]
    if state != "active":
        generations.append({"id": "2026-11-23", "state": "active", "createdAt": at(-100),
                            "activatedAt": at(-2)})
    keyset = {"purpose": "sign", "algorithm": "ES256", "maxAgeDays": 90, "warnDays": 14,
              "publish": [{"format": "jwks", "target": "s3://portal/.well-known/jwks.json"}],
              "generations": generations}
    return {"key-rotation:environment": "production",
            "key-rotation:keysets": json.dumps({"atlas-gateway": keyset})}


def _aged(tags_age_days: float) -> list[str]:
    from policy import key_age
    from policy.resources import SOFTWARE_KEY
    from tests.policy_client import messages, resource_args
    from tests.test_policy_key_age import CONFIG, meta, software_key

    return messages(key_age.key_max_age,
                    resource_args(SOFTWARE_KEY, software_key(meta(tags_age_days)), config=CONFIG))


def test_a_keys_age_counts_from_the_activation_the_config_records():
    # The key's own metadata says 100 days old; the config (the model the program read) says 10.
    stack_config.receive(stack="production", project="key-rotation",
                         config=_gateway_config(at(-10 * 24 * 60)))
    assert _aged(100) == []
    stack_config.receive(stack="production", project="key-rotation",
                         config=_gateway_config(at(-95 * 24 * 60)))
    (found,) = _aged(10)
    assert "keyset 'atlas-gateway', generation '2026-08-01'" in found and "95 days old" in found


def test_a_generation_the_config_has_retired_is_not_aged_whatever_its_key_says():
    stack_config.receive(stack="production", project="key-rotation",
                         config=_gateway_config(at(-100 * 24 * 60), state="retiring"))
    assert _aged(100) == []


def test_a_key_the_config_does_not_describe_is_judged_by_its_own_metadata():
    stack_config.receive(stack="production", project="key-rotation",
                         config=_engine_config(at(-300), overlap_seconds=1200))  # no 2026-08-01 there
    (found,) = _aged(100)
    assert "100 days old" in found
