"""Stack guardrails on hand-built StackValidationArgs: one active generation, documents that match the
states, the publish lead and the overlap (with the publisher's first-published records), revoked
keys, and where key material may appear."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from pulumi_policy import StackValidationArgs
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
from pydantic.alias_generators import to_camel

from keyrotation.lifecycle import Timings
from keyrotation.times import format_time
from policy import rotation
from policy.resources import CONFIG_MAP, KEY_GENERATION, PUBLICATION, SECRET, SOFTWARE_KEY
from policy.rotation import KeySetView
from tests.policy_client import messages, stack_args, stack_resource, violations

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TIMINGS = Timings()  # publish lead 360 s, overlap 3960 s
LEAD, OVERLAP = TIMINGS.publish_lead, TIMINGS.overlap


def at(minutes: float) -> str:
    return format_time(T0 + timedelta(minutes=minutes))


def config(now_minutes: float) -> dict:
    return {"now": at(now_minutes)}


def generation(gid: str, state: str, kid: str | None = None, *, keyset: str = "atlas-gateway", **times: str):
    """A KeyGeneration component's outputs, as components/keyset.py registers them."""
    lifecycle = {"id": gid, "state": state, **times}
    return stack_resource(KEY_GENERATION, {
        "kid": kid if kid is not None else UNKNOWN_STRING_VALUE, "state": state, "keyId": f"{keyset}/{gid}",
        "keyset": keyset, "purpose": "sign", "lifecycle": lifecycle,
        "timings": {to_camel(k): v for k, v in asdict(TIMINGS).items()},
    }, name=f"{keyset}-{gid}", protect=False)


def jwks(kids: list[str], first_published: dict[str, str] | None = None, *, keyset: str = "atlas-gateway",
         name: str = "atlas-jwks"):
    props: dict[str, Any] = {
        "keyset": keyset, "format": "jwks", "target": "s3://portal/.well-known/jwks.json",
        "content": json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA", "kid": k}
                                        for k in kids]}),
        "kids": kids,
    }
    if first_published is not None:
        props["first_published"] = first_published
    return stack_resource(PUBLICATION, props, name=name, protect=False)


def anchor(kids: list[str], active: str, *, keyset: str = "atlas-gateway"):
    content = {"active_key_id": active, "keys": [{"key_id": k, "algorithm": "Ed25519"} for k in kids]}
    return stack_resource(PUBLICATION, {"keyset": keyset, "format": "trust-anchor",
                                        "target": "file://anchor.json",
                                        "content": json.dumps(content), "kids": kids,
                                        "first_published": dict.fromkeys(kids, at(-10_000))},
                          name="anchor", protect=False)


# ---------------------------------------------------------------------------------------------
# Exactly one active generation


def test_two_active_generations_are_refused():
    found = violations(rotation.one_active, stack_args([
        generation("g1", "active", "k1", createdAt=at(-100), activatedAt=at(-90)),
        generation("g2", "active", "k2", createdAt=at(-50), activatedAt=at(-40)),
    ]))
    [(message, urn)] = found
    assert "keyset 'atlas-gateway' has 2 active generations (g1, g2)" in message
    assert "`retiring`" in message and urn is not None and urn.endswith("atlas-gateway-g1")


def test_no_active_generation_says_which_pending_one_to_promote():
    [message] = messages(rotation.one_active, stack_args([
        generation("g1", "retiring", "k1", createdAt=at(-100), activatedAt=at(-90), retiringAt=at(-10)),
        generation("g2", "pending", "k2", createdAt=at(-50)),
    ]))
    assert "keyset 'atlas-gateway' has no active generation (states: g1=retiring, g2=pending)" in message
    assert "python -m keyrotation promote atlas-gateway g2" in message


def test_one_active_generation_passes():
    assert messages(rotation.one_active, stack_args([
        generation("g1", "retiring", "k1", createdAt=at(-100), activatedAt=at(-90), retiringAt=at(-10)),
        generation("g2", "active", "k2", createdAt=at(-50), activatedAt=at(-10)),
    ])) == []


# ---------------------------------------------------------------------------------------------
# The active kid is published


def test_a_document_without_the_active_kid_is_refused():
    [(message, urn)] = violations(rotation.active_published, stack_args([
        generation("g2", "active", "k2", createdAt=at(-50), activatedAt=at(-10)),
        jwks(["k1"]),
    ]))
    assert ("keyset 'atlas-gateway', generation 'g2' (kid k2) is active but missing from Publication "
            "'atlas-jwks'" in message)
    assert "which lists k1" in message and urn is not None and urn.endswith("::atlas-jwks")


def test_a_trust_anchor_naming_another_active_key_is_refused():
    [message] = messages(rotation.active_published, stack_args([
        generation("g2", "active", "k2", createdAt=at(-50), activatedAt=at(-10)),
        anchor(["k1", "k2"], active="k1"),
    ]))
    assert "names active_key_id k1" in message


def test_documents_listing_the_active_kid_pass_and_unknown_ones_are_not_judged():
    assert messages(rotation.active_published, stack_args([
        generation("g2", "active", "k2", createdAt=at(-50), activatedAt=at(-10)),
        jwks(["k1", "k2"]), anchor(["k2"], active="k2"),
        stack_resource(PUBLICATION, {"keyset": "atlas-gateway", "format": "jwks", "target": "s3://b/k",
                                     "content": UNKNOWN_STRING_VALUE}, name="preview"),
    ])) == []


# ---------------------------------------------------------------------------------------------
# Publish lead


def promoted(activated_minutes: float, first_published: dict[str, str] | None, created_minutes: float = -1):
    return [
        generation("g1", "retiring", "k1", createdAt=at(-10_000), activatedAt=at(-9_000),
                   retiringAt=at(activated_minutes)),
        generation("g2", "active", "k2", createdAt=at(created_minutes), activatedAt=at(activated_minutes)),
        jwks(["k1", "k2"], first_published),
    ]


def test_promoting_before_the_publish_lead_after_first_publication_is_refused():
    records = {"k1": at(-10_000), "k2": at(0)}
    [(message, urn)] = violations(rotation.publish_lead, stack_args(promoted(1, records), config(2)))
    assert "keyset 'atlas-gateway', generation 'g2' (kid k2) was activated at 2026-11-23T12:01:00Z" in message
    assert "first published in s3://portal/.well-known/jwks.json at 2026-11-23T12:00:00Z" in message
    assert "the publish lead is 360s (publishMaxAgeSeconds + clockSkewSeconds)" in message
    assert "promote after 2026-11-23T12:06:00Z" in message
    assert "python -m keyrotation promote atlas-gateway g2" in message
    assert urn is not None and urn.endswith("atlas-gateway-g2")


def test_promoting_after_the_publish_lead_passes():
    records = {"k1": at(-10_000), "k2": at(0)}
    assert messages(rotation.publish_lead, stack_args(promoted(6, records), config(7))) == []


def test_a_kid_first_published_by_this_very_deployment_counts_from_now():
    # The generation was never pending: its kid is in the new document but not in the records.
    resources = promoted(-30, {"k1": at(-10_000)}, created_minutes=-40)
    [message] = messages(rotation.publish_lead, stack_args(resources, config(0)))
    assert ("first published in s3://portal/.well-known/jwks.json by this deployment (2026-11-23T12:00:00Z)"
            in message)


def test_the_first_version_of_a_document_is_not_held_to_its_records():
    # A new stack (or a new publish target): every kid recorded at the document's creation. No
    # verifier can hold an older copy of a document that did not exist.
    records = {"k1": at(0), "k2": at(0)}
    assert messages(rotation.publish_lead,
                    stack_args(promoted(-30, records, created_minutes=-40), config(1))) == []


def test_without_records_in_a_preview_the_created_time_is_the_first_publication():
    # A preview of a changed document: the engine hands back its inputs, no records.
    assert messages(rotation.publish_lead,
                    stack_args(promoted(5, None), config(5))) == []  # createdAt -1 + 6 = 5
    [message] = messages(rotation.publish_lead, stack_args(promoted(3, None), config(3)))
    assert ("no publisher has recorded its first publication: it counts from its createdAt "
            "2026-11-23T11:59:00Z" in message)
    assert "promote after 2026-11-23T12:05:00Z" in message


def test_an_emergency_rotation_after_a_compromise_is_not_refused():
    resources = [
        generation("v1", "revoked", "k1", createdAt=at(-10_000), activatedAt=at(-9_000), revokedAt=at(0),
                   revokeReason="compromise"),
        generation("v2", "active", "k2", createdAt=at(0), activatedAt=at(0)),
        jwks(["k2"], {"k1": at(-10_000)}),
    ]
    assert messages(rotation.publish_lead, stack_args(resources, config(1))) == []


def test_a_gap_long_over_is_history_not_a_violation():
    records = {"k1": at(-10_000), "k2": at(-2_000)}
    # Promoted one minute after its first publication, a day ago: nothing left to prevent.
    resources = promoted(-1_999, records, created_minutes=-2_010)
    assert messages(rotation.publish_lead, stack_args(resources, config(0))) == []


# ---------------------------------------------------------------------------------------------
# Overlap


def retired_after(minutes_after_retiring: float):
    return [
        generation("g1", "retired", "k1", createdAt=at(-10_000), activatedAt=at(-9_000), retiringAt=at(0),
                   retiredAt=at(minutes_after_retiring)),
        generation("g2", "active", "k2", createdAt=at(-1_000), activatedAt=at(0)),
        jwks(["k2"], {"k1": at(-10_000), "k2": at(-1_000)}),
    ]


def test_retiring_before_the_overlap_is_refused():
    [(message, urn)] = violations(rotation.retire_after_overlap, stack_args(retired_after(10), config(10)))
    assert ("keyset 'atlas-gateway', generation 'g1' (kid k1) left the published documents (state retired)"
            in message)
    assert "overlap of 3960s (tokenLifetimeSeconds + publishMaxAgeSeconds + clockSkewSeconds)" in message
    assert "verifiers may reject valid signatures from 2026-11-23T12:10:00Z" in message
    assert "Keep it `retiring` (published) until 2026-11-23T13:06:00Z" in message
    assert urn is not None and urn.endswith("atlas-gateway-g1")


def test_retiring_after_the_overlap_passes():
    assert messages(rotation.retire_after_overlap, stack_args(retired_after(66), config(66))) == []


def test_a_retiring_generation_missing_from_a_document_is_refused():
    resources = [
        generation("g1", "retiring", "k1", createdAt=at(-10_000), activatedAt=at(-9_000), retiringAt=at(0)),
        generation("g2", "active", "k2", createdAt=at(-1_000), activatedAt=at(0)),
        jwks(["k2"], {"k2": at(-1_000)}),
    ]
    [message] = messages(rotation.retire_after_overlap, stack_args(resources, config(5)))
    assert "generation 'g1' (kid k1) is retiring but missing from Publication 'atlas-jwks'" in message
    assert "stays published until 2026-11-23T13:06:00Z" in message


# ---------------------------------------------------------------------------------------------
# Revoked keys


def test_a_revoked_kid_still_published_is_refused():
    resources = [
        generation("v1", "revoked", "k1", createdAt=at(-10_000), activatedAt=at(-9_000), revokedAt=at(-5),
                   revokeReason="compromise"),
        generation("v2", "active", "k2", createdAt=at(-5), activatedAt=at(-5)),
        jwks(["k1", "k2"], {"k1": at(-10_000), "k2": at(-5)}),
    ]
    [(message, urn)] = violations(rotation.revoked_unpublished, stack_args(resources, config(0)))
    assert ("keyset 'atlas-gateway', generation 'v1' (kid k1) was revoked at 2026-11-23T11:55:00Z "
            "(compromise)"
            " but Publication 'atlas-jwks'") in message
    assert urn is not None and urn.endswith("::atlas-jwks")


def test_a_revoked_kid_named_active_by_a_trust_anchor_is_refused_and_retired_kids_too():
    resources = [
        generation("v1", "revoked", "k1", createdAt=at(-10_000), activatedAt=at(-9_000), revokedAt=at(-5),
                   revokeReason="personnel"),
        generation("v0", "retired", "k0", createdAt=at(-20_000), activatedAt=at(-19_000),
                   retiringAt=at(-9_000),
                   retiredAt=at(-8_000)),
        generation("v2", "active", "k2", createdAt=at(-5), activatedAt=at(-5)),
        anchor(["k0", "k2"], active="k1"),
    ]
    found = messages(rotation.revoked_unpublished, stack_args(resources, config(0)))
    assert len(found) == 2
    assert "generation 'v0' (kid k0) is retired but Publication 'anchor'" in found[0]
    assert "generation 'v1' (kid k1) was revoked" in found[1]


def test_documents_of_published_states_only_pass():
    resources = [
        generation("v1", "revoked", "k1", createdAt=at(-10_000), activatedAt=at(-9_000), revokedAt=at(-5),
                   revokeReason="compromise"),
        generation("v2", "active", "k2", createdAt=at(-5), activatedAt=at(-5)),
        generation("v3", "pending", "k3", createdAt=at(-1)),
        jwks(["k2", "k3"]),
    ]
    assert messages(rotation.revoked_unpublished, stack_args(resources, config(0))) == []


# ---------------------------------------------------------------------------------------------
# Key material only in its key resource and in Secrets


def software_key(material: str):
    return stack_resource(SOFTWARE_KEY, {"keyset": "secrets-service", "generation": "q4", "state": "active",
                                         "private_key": material, "thumbprint": "t"},
                          name="secrets-service-q4-key")


def _resource_name(urn: str | None) -> str:
    """The name at the end of a violation's URN (each of these names its resource)."""
    assert urn is not None
    return urn.split("::")[-1]


def test_key_material_outside_secrets_is_refused_without_repeating_it():
    material = base64.b64encode(os.urandom(32)).decode()
    keyring = json.dumps({"q4": material})
    leaky = stack_resource(CONFIG_MAP, {"metadata": {"name": "cfg"}, "data": {"KEYRING": keyring}},
                           name="cfg")
    env = stack_resource("kubernetes:apps/v1:DeploymentPatch", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "K", "value": base64.b64encode(material.encode()).decode()}]}]}}}},
        name="patch")
    secret = stack_resource(SECRET, {"metadata": {"name": "s"}, "stringData": {"KEY": material}},
                            name="secret")

    found = violations(rotation.material_placement, stack_args([software_key(material), leaky, env, secret]))

    assert [_resource_name(urn) for _, urn in found] == ["cfg", "patch"]
    assert ("keyset 'secrets-service', generation 'q4': its private key material appears in ConfigMap 'cfg' "
            "at data.KEYRING.q4" in found[0][0])
    assert "DeploymentPatch 'patch' at spec.template.spec.containers[0].env[0].value" in found[1][0]
    assert all(material not in message for message, _ in found)


def test_material_only_in_its_key_and_secrets_passes():
    material = base64.b64encode(os.urandom(32)).decode()
    secret = stack_resource(SECRET, {"data": {"KEY": base64.b64encode(material.encode()).decode()}})
    other = stack_resource(CONFIG_MAP, {"data": {"LOG_LEVEL": "debug"}}, name="cfg")
    assert messages(rotation.material_placement, stack_args([software_key(material), secret, other])) == []


def test_a_generation_recorded_by_another_program_version_does_not_crash_the_pack():
    odd = stack_resource(KEY_GENERATION, {"kid": "k1", "state": "active", "keyset": "atlas-gateway",
                                          "lifecycle": {"id": "g1", "state": "active",
                                                        "createdAt": "yesterday"},
                                          "timings": {}}, name="odd")
    for policy in rotation.POLICIES:
        assert violations(policy, stack_args([odd], config(0))) == []


# ---------------------------------------------------------------------------------------------
# The keyset view: built once per AnalyzeStack, never carried over to the next


def _servicer():
    from pulumi_policy import EnforcementLevel
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    from policy import guardrails, key_age, sdk_hooks

    sdk_hooks.install()  # as policy/__main__.py does
    return _PolicyAnalyzerServicer("key-rotation", "1",
                                   [*key_age.POLICIES, *guardrails.POLICIES, *rotation.POLICIES],
                                   EnforcementLevel.MANDATORY)


def _stack_request(*states: str):
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import analyzer_pb2

    request = analyzer_pb2.AnalyzeStackRequest()
    for i, state in enumerate(states):
        r = generation(f"g{i + 1}", state, f"k{i + 1}", createdAt=at(-100 + i), activatedAt=at(-90 + i))
        props = struct_pb2.Struct()
        props.update(dict(r.props["__target"].items()) | {"lifecycle": dict(r.props["lifecycle"]["__target"]),
                                                          "timings": dict(r.props["timings"]["__target"])})
        request.resources.append(analyzer_pb2.AnalyzerResource(type=r.resource_type, properties=props,
                                                               urn=r.urn,
                                                               name=r.name))
    return request


def test_the_keyset_view_is_built_once_per_analysis_and_never_reused_by_the_next(monkeypatch):
    built: list[int] = []
    real = rotation._keysets

    def counted(args: StackValidationArgs) -> dict[str, KeySetView]:
        built.append(1)
        return real(args)

    monkeypatch.setattr(rotation, "_keysets", counted)
    servicer = _servicer()
    two_active = servicer.AnalyzeStack(_stack_request("active", "active"), None)
    assert len(built) == 1  # five rotation policies read it; one analysis built it
    assert [d.policyName for d in two_active.diagnostics] == ["one-active-generation"]
    # The next analysis (another request, different content, same URNs) is judged on its own.
    one_active = servicer.AnalyzeStack(_stack_request("retiring", "active"), None)
    assert len(built) == 2
    assert "one-active-generation" not in [d.policyName for d in one_active.diagnostics]


def test_a_policy_called_outside_an_analysis_builds_its_own_view(monkeypatch):
    built: list[int] = []
    real = rotation._keysets

    def counted(args: StackValidationArgs) -> dict[str, KeySetView]:
        built.append(1)
        return real(args)

    monkeypatch.setattr(rotation, "_keysets", counted)
    args = stack_args([generation("g1", "active", "k1", createdAt=at(-100), activatedAt=at(-90))])
    messages(rotation.one_active, args)
    messages(rotation.one_active, args)
    assert len(built) == 2
