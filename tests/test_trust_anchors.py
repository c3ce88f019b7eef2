"""Seed 002's trust anchors: the seed's shape, one revocation leaves every anchor, the historical
keys with their validity, the stack file's rules, and the dev stack publishing two anchors."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyrotation import documents, lifecycle
from keyrotation.commands import schedule
from keyrotation.commands.cli import main
from keyrotation.config import ConfigError, StackConfig, load_stack_file, parse
from keyrotation.documents import KeyRecord
from policy import rotation
from policy.resources import PUBLICATION
from tests.policy_client import messages, stack_args, stack_resource
from tests.project import ROOT, stack_config

# Seed 002 ("Trust Anchor Structure"), verbatim.
SEED_ANCHOR = json.loads("""
{
  "trustAnchorId": "550e8400-e29b-41d4-a716-446655440000",
  "purlPattern": "pkg:npm/*",
  "allowedKeyids": ["key-2024-prod", "key-2025-prod"],
  "allowedPredicateTypes": [
    "evidence.stella/v1",
    "reasoning.stella/v1",
    "cdx-vex.stella/v1",
    "proofspine.stella/v1"
  ],
  "policyVersion": "v2.3.1",
  "revokedKeys": ["key-2023-prod"],
  "keyHistory": [
    {
      "keyid": "key-2023-prod",
      "addedAt": "2023-01-15T00:00:00Z",
      "revokedAt": "2024-01-15T00:00:00Z",
      "revokeReason": "annual-rotation"
    }
  ]
}
""")
NOW = "2026-11-23T12:00:00Z"
NPM, MAVEN = "550e8400-e29b-41d4-a716-446655440000", "660f9500-f39c-51e5-b827-557766551111"


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_bytes(serialization.Encoding.PEM, spki).decode()


def anchors_of(stack: StackConfig) -> dict[str, dict]:
    """Every anchor of the stack as published (rendered, read back), by trustAnchorId; kids from the
    template, a fresh public key per generation."""
    records: dict[str, list[KeyRecord]] = {}
    for name, ks in stack.keysets.items():
        records[name] = [
            KeyRecord.of(g, kid=f"key-{g.id}-{name}", algorithm=ks.algorithm, public_pem=_pem(),
                         timings=ks.timings)
            for g in ks.generations]
    return {a.trust_anchor_id: json.loads(documents.render(documents.anchor(
        a, [r for k in a.keysets for r in records[k]]))) for a in stack.trust_anchors}


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_anchor_has_exactly_the_seeds_shape():
    for anchor in anchors_of(load_stack_file(ROOT / "Pulumi.dev.yaml")).values():
        assert list(anchor) == sorted(SEED_ANCHOR), "the seed's fields, no more (rendered with sorted keys)"
        for field, value in SEED_ANCHOR.items():
            assert type(anchor[field]) is type(value), field
        assert all(isinstance(k, str) for k in anchor["allowedKeyids"] + anchor["revokedKeys"])
        seed_entry = SEED_ANCHOR["keyHistory"][0]
        for entry in anchor["keyHistory"]:
            # The seed's four fields, and what its key_history table adds (algorithm, public_key)
            # and the exact validity intervals.
            assert set(entry) == set(seed_entry) | {"algorithm", "publicKey", "validity"}
            assert entry["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")


def test_the_dev_anchors_list_allowed_revoked_and_historical_keys_of_the_keysets_they_name():
    anchors = anchors_of(load_stack_file(ROOT / "Pulumi.dev.yaml"))
    npm, maven = anchors[NPM], anchors[MAVEN]
    assert (npm["purlPattern"], npm["policyVersion"]) == ("pkg:npm/*", "v2.3.1")
    assert npm["allowedPredicateTypes"] == SEED_ANCHOR["allowedPredicateTypes"]
    assert npm["allowedKeyids"] == ["key-2026-signer-default", "key-2027-signer-default"]  # active, pending
    assert npm["revokedKeys"] == ["key-2025-signer-default"]
    assert [e["keyid"] for e in npm["keyHistory"]] == [
        "key-2025-signer-default", "key-2026-signer-default", "key-2027-signer-default"]
    # A keyset in two anchors: the maven anchor lists signer-fips's key first (its order), then the same
    # signer-default keys as the npm anchor.
    assert maven["allowedKeyids"] == ["key-2026-signer-fips", "key-2026-signer-default",
                                      "key-2027-signer-default"]
    assert maven["revokedKeys"] == npm["revokedKeys"]
    [historical] = [e for e in npm["keyHistory"] if e["keyid"] == "key-2025-signer-default"]
    # Rotated out at 2026-01-20 (retiringAt), its signatures valid for the signer lag (300 s + 60 s) after.
    assert historical["addedAt"] == "2025-01-15T00:00:00Z"
    assert historical["revokedAt"] == "2026-01-20T00:06:00Z"
    assert historical["revokeReason"] == "superseded"
    assert historical["validity"] == [{"from": "2025-01-20T00:00:00Z", "until": "2026-01-20T00:06:00Z"}]
    active = next(e for e in npm["keyHistory"] if e["keyid"] == "key-2026-signer-default")
    assert (active["revokedAt"], active["revokeReason"]) == (None, None)
    assert active["validity"] == [{"from": "2026-01-20T00:00:00Z", "until": None}]
    pending = next(e for e in npm["keyHistory"] if e["keyid"] == "key-2027-signer-default")
    assert (pending["addedAt"], pending["revokedAt"], pending["validity"]) == (
        "2026-11-20T00:00:00Z", None, [])


def test_a_compromise_revocation_leaves_every_anchor_at_once(tmp_path):
    stack_file = tmp_path / "Pulumi.dev.yaml"
    shutil.copy(ROOT / "Pulumi.dev.yaml", stack_file)
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    before = anchors_of(load_stack_file(stack_file, now=_parse(NOW)))
    assert all("key-2026-signer-default" in a["allowedKeyids"] for a in before.values())

    code = main(["revoke", "signer-default", "2026", "--reason", "compromise", "--no-outputs",
                 "--now", NOW, "--file", str(stack_file)])
    assert code == 0
    after = anchors_of(load_stack_file(stack_file, now=_parse(NOW)))
    for anchor_id, anchor in after.items():
        assert "key-2026-signer-default" not in anchor["allowedKeyids"], anchor_id
        assert "key-2026-signer-default" in anchor["revokedKeys"], anchor_id
        [entry] = [e for e in anchor["keyHistory"] if e["keyid"] == "key-2026-signer-default"]
        assert (entry["revokedAt"], entry["revokeReason"]) == (NOW, "compromise")
        assert entry["validity"][-1]["until"] == NOW  # signatures after the revocation are never valid
        # The emergency promoted the pending key: every anchor allows it.
        assert "key-2027-signer-default" in anchor["allowedKeyids"]
    # The fips keyset is untouched in the anchor that also lists it.
    assert "key-2026-signer-fips" in after[MAVEN]["allowedKeyids"]


def test_the_seeds_rule_and_the_validity_windows_agree_with_valid_at(tmp_path):
    """A verifier applying seed 002's rule to an anchor (added before T; not revoked, or revoked after
    T) agrees with valid-at from the key's first signature on; the validity windows agree always."""
    stack = load_stack_file(ROOT / "Pulumi.dev.yaml")
    stack = stack.model_copy(update={"keysets": dict(stack.keysets)})
    anchor = anchors_of(stack)[NPM]
    ks = stack.keysets["signer-default"]
    one = timedelta(seconds=1)
    for g, entry in zip(ks.generations, anchor["keyHistory"], strict=True):
        instants = {t for _, t in lifecycle.path(g)} | {
            _parse(w[k]) for w in entry["validity"] for k in ("from", "until") if w[k]}
        for t in sorted(x + d for x in instants for d in (-one, timedelta(0), one)):
            expected = schedule.valid_at(stack, "signer-default", g.id, t).valid
            windows = any(_parse(w["from"]) <= t and (w["until"] is None or t < _parse(w["until"]))
                          for w in entry["validity"])
            assert windows == expected, (g.id, t)
            if entry["validity"] and t >= _parse(entry["validity"][0]["from"]):
                seed_rule = _parse(entry["addedAt"]) <= t and (
                    entry["revokedAt"] is None or _parse(entry["revokedAt"]) > t)
                assert seed_rule == expected, (g.id, t)


# ---------------------------------------------------------------------------------------------
# The stack file's rules


def _config(anchors: list[dict], **keysets: dict) -> dict:
    config = {k.removeprefix("key-rotation:"): v for k, v in stack_config("dev").items()}
    config["trustAnchors"] = anchors
    config["keysets"].update(keysets)
    return config


def _anchor(**fields) -> dict:
    return {"trustAnchorId": NPM, "purlPattern": "pkg:npm/*", "keysets": ["signer-default"],
            "allowedPredicateTypes": ["evidence.stella/v1"], "policyVersion": "v2.3.1",
            "target": "file://published/anchors/npm.json", **fields}


def problems(config: dict) -> list[tuple[str | None, str | None, str]]:
    with pytest.raises(ConfigError) as error:
        parse(config, stack_file="Pulumi.dev.yaml")
    assert str(error.value).startswith("Pulumi.dev.yaml: invalid key-rotation configuration")
    return [(p.keyset, p.field, p.message) for p in error.value.problems]


def test_an_anchor_naming_a_missing_or_non_signing_keyset_is_refused():
    named = ["signer-default", "nope", "secrets-service", "signer-default"]
    found = problems(_config([_anchor(keysets=named)]))
    assert found == [
        (None, "trustAnchors[0].keysets[1]",
         f"trust anchor '{NPM}': names keyset 'nope', which this stack does not have (keysets: atlas-gateway,"
         " audit-signing, signer-default, signer-fips, signer-pqc, signer-sm2, signer-gost, manifest-signing,"
         " secrets-service, audit-hmac)"),
        (None, "trustAnchors[0].keysets[2]",
         f"trust anchor '{NPM}': keyset 'secrets-service' has purpose encrypt; an anchor lists signing keys,"
         " so name sign keysets only"),
        (None, "trustAnchors[0].keysets[3]",
         f"trust anchor '{NPM}': keyset 'signer-default' is listed twice"),
    ]


def test_anchor_ids_patterns_and_targets_are_checked():
    found = problems(_config([
        _anchor(trustAnchorId="npm-anchor", purlPattern="pkg:npm/*/x", policyVersion="v 2"),
        _anchor(target="file://published/stellaops/trust-anchor.json", allowedPredicateTypes=["a", "a"]),
        _anchor(trustAnchorId=NPM.upper(), purlPattern="*", target="file://published/anchors/all.json"),
    ]))
    expected = [
        ("trustAnchors[0].trustAnchorId",
         "trust anchor 'npm-anchor': trustAnchorId 'npm-anchor' is not a UUID (8-4-4-4-12 hex digits"),
        ("trustAnchors[0].purlPattern",
         "trust anchor 'npm-anchor': purlPattern 'pkg:npm/*/x' is not a PURL pattern: '*', or"),
        ("trustAnchors[0].policyVersion",
         "trust anchor 'npm-anchor': policyVersion 'v 2' must be printable ASCII without spaces"),
        ("trustAnchors[1].allowedPredicateTypes[1]",
         f"trust anchor '{NPM}': predicate type 'a' is listed twice"),
        ("trustAnchors[2].trustAnchorId",
         f"trust anchor '{NPM.upper()}': trustAnchorId is also trustAnchors[1]'s; every anchor has its own"),
        ("trustAnchors[1].target",
         "target 'file://published/stellaops/trust-a...' is already published by keyset 'signer-default'"),
    ]
    assert [field for _, field, _ in found] == [field for field, _ in expected]
    for (_, _, message), (_, start) in zip(found, expected, strict=True):
        assert message.startswith(start), message


def test_two_anchors_for_one_pattern_and_an_anchor_in_a_publish_list_are_refused():
    config = _config([_anchor(), _anchor(trustAnchorId=MAVEN, target="file://published/anchors/other.json")])
    config["keysets"]["signer-fips"]["publish"].append({"format": "anchor", "target": "file://published/x.json"})
    found = problems(config)
    assert found == [
        ("signer-fips", "publish[2].format",
         "an anchor lists the keys of several keysets: declare it in the stack's key-rotation:trustAnchors"
         " (trustAnchorId, purlPattern, keysets, allowedPredicateTypes, policyVersion, target), not in a"
         " keyset's publish list"),
        (None, "trustAnchors[1].purlPattern",
         f"trust anchor '{MAVEN}': purlPattern 'pkg:npm/*' is also trust anchor '{NPM}''s; a verifier looking"
         " up the anchor of a package would find two"),
    ]


def test_a_missing_anchor_field_names_it():
    anchor = _anchor()
    del anchor["policyVersion"]
    assert problems(_config([anchor])) == [(None, "trustAnchors.0.policyVersion", "is required")]


# ---------------------------------------------------------------------------------------------
# The policy pack files an anchor under every keyset it lists


def test_the_pack_refuses_a_revoked_key_an_anchor_still_allows_in_each_keyset():
    from tests.test_policy_rotation import at, config, generation

    content = {"allowedKeyids": ["a1", "b2"], "revokedKeys": []}
    resources = [
        generation("1", "revoked", "a1", keyset="ks-a", createdAt=at(-10_000), activatedAt=at(-9_000),
                   revokedAt=at(-5), revokeReason="compromise"),
        generation("2", "active", "a2", keyset="ks-a", createdAt=at(-5), activatedAt=at(-5)),
        generation("1", "revoked", "b1", keyset="ks-b", createdAt=at(-10_000), activatedAt=at(-9_000),
                   revokedAt=at(-5), revokeReason="compromise"),
        generation("2", "active", "b2", keyset="ks-b", createdAt=at(-5), activatedAt=at(-5)),
        stack_resource(PUBLICATION, {"keyset": "ks-a,ks-b", "format": "anchor", "target": "file://anchor.json",
                                     "content": json.dumps(content), "kids": content["allowedKeyids"],
                                     "first_published": dict.fromkeys(["a1", "b2"], at(-10_000))},
                       name="anchor-npm", protect=False),
    ]
    found = messages(rotation.revoked_unpublished, stack_args(resources, config(0)))
    assert len(found) == 1 and "keyset 'ks-a', generation '1' (kid a1) was revoked" in found[0]
    missing = messages(rotation.active_published, stack_args(resources, config(0)))
    assert len(missing) == 1 and "keyset 'ks-a', generation '2' (kid a2) is active but missing" in missing[0]


# ---------------------------------------------------------------------------------------------
# The program


def test_the_dev_stack_publishes_both_anchors_and_counts_them_as_the_keysets_documents(project, monkeypatch):
    from tests.engine import Engine

    monkeypatch.setenv("KEY_ROTATION_NOW", NOW)
    run = Engine(project, "dev").up()
    npm = json.loads((project / "published/stellaops/anchors/npm.json").read_text())
    maven = json.loads((project / "published/stellaops/anchors/maven.json").read_text())
    outputs = run.outputs["keysets"]
    default = [g["kid"] for g in outputs["signer-default"]["generations"]]
    fips = [g["kid"] for g in outputs["signer-fips"]["generations"]]
    assert npm["trustAnchorId"] == NPM and maven["trustAnchorId"] == MAVEN
    assert npm["allowedKeyids"] == default[1:] and npm["revokedKeys"] == default[:1]
    assert maven["allowedKeyids"] == fips + default[1:]
    history = json.loads((project / "published/stellaops/key-history.json").read_text())
    # The same key, the same validity, as the keyset's own key history.
    assert [(e["keyid"], e["validity"], e["publicKey"]) for e in npm["keyHistory"]] == [
        (e["keyid"], e["validity"], e["publicKey"]) for e in history["keyHistory"]]
    for keyset, targets in (("signer-default", ("npm", "maven")), ("signer-fips", ("maven",))):
        documents_ = outputs[keyset]["documents"]
        for name in targets:
            target = f"file://published/stellaops/anchors/{name}.json"
            assert documents_[target]["format"] == "anchor"
            assert set(documents_[target]["firstPublished"]) == set(
                npm["allowedKeyids"] if name == "npm" else maven["allowedKeyids"])
    assert "file://published/stellaops/anchors/npm.json" not in outputs["signer-fips"]["documents"]
    [component] = [r for r in run.resources.values() if r.type == "key-rotation:index:TrustAnchors"]
    assert component.name == "trust-anchors"

