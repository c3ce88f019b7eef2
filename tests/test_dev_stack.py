"""The dev stack end to end under the engine-faithful harness: keys, documents, outputs, rotation."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from keyrotation.algorithms import ALGORITHMS
from tests.engine import Engine, ProgramFailed, Secret
from tests.project import ROOT, stack_config

SOFTWARE_KEY = "pulumi-python:dynamic/keys:SoftwareKey"
PUBLICATION = "pulumi-python:dynamic/publishing:Publication"
SWITCHES = "pulumi-python:dynamic/deploy:SwitchRecord"


@pytest.fixture
def pinned_clock(monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-23T12:00:00Z")


def keysets(config: dict | None) -> dict:
    assert config is not None, "the test gave the engine its config"
    return config["key-rotation:keysets"]


def test_dev_stack_creates_keys_documents_and_outputs(project, pinned_clock):
    run = Engine(project, "dev").up()

    keys = run.of_type(SOFTWARE_KEY)
    assert len(keys) == sum(len(ks["generations"]) for ks in keysets(stack_config("dev")).values()
                            if ks.get("backend", "software") == "software")
    for key in keys:
        assert isinstance(key.outputs["private_key"], Secret) or key.outputs["state"] == "destroyed"
        assert key.options.protect, f"{key.name} must be protected against deletion"
        assert "private_key" in key.options.additional_secret_outputs

    jwks = json.loads((project / "published/atlas/.well-known/jwks.json").read_text())
    assert [k["kid"] for k in jwks["keys"]] == ["atlas-2026-11-16", "atlas-2026-11-23"]

    gateway = run.outputs["keysets"]["atlas-gateway"]
    assert gateway["activeKid"] == "atlas-2026-11-23"
    assert gateway["activeGeneration"] == "2026-11-23"
    assert gateway["algorithm"] == "EdDSA" and gateway["backend"] == "software"
    assert [(g["id"], g["state"]) for g in gateway["generations"]] == [
        ("2026-11-09", "retired"), ("2026-11-16", "retiring"), ("2026-11-23", "active")]
    target = "file://published/atlas/.well-known/jwks.json"
    assert gateway["documents"][target]["target"] == target
    assert gateway["documents"][target]["firstPublished"] == {
        "atlas-2026-11-16": "2026-11-23T12:00:00Z", "atlas-2026-11-23": "2026-11-23T12:00:00Z"}
    # Seed 003's key ids: `kid: "sha256:{thumbprint}"`, the RFC 7638 thumbprint of the published key:
    # the trust anchor's raw Ed25519 key as an OKP JWK (PyJWT), hashed by the RFC's own recipe.
    manifest = run.outputs["keysets"]["manifest-signing"]
    anchor = json.loads((project / "published/agent-manifest/trust-anchor.json").read_text())
    assert anchor["active_key_id"] == manifest["activeKid"]
    [active] = [k for k in anchor["keys"] if k["key_id"] == manifest["activeKid"]]
    raw = base64.urlsafe_b64decode(active["public_key"] + "=" * (-len(active["public_key"]) % 4))
    okp = OKPAlgorithm.to_jwk(ed25519.Ed25519PublicKey.from_public_bytes(raw), as_dict=True)
    required = json.dumps({m: okp[m] for m in ("crv", "kty", "x")}, separators=(",", ":"), sort_keys=True)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(required.encode()).digest()).rstrip(b"=").decode()
    assert manifest["activeKid"] == f"sha256:{thumbprint}"


def test_no_cloud_sdk_is_imported_by_the_dev_stack():
    script = textwrap.dedent(f"""
        import json, os, runpy, sys
        sys.path.insert(0, {str(ROOT)!r}); os.chdir({str(ROOT)!r})
        import pulumi
        from tests import sdk_internals
        class Mocks(pulumi.runtime.Mocks):
            def new_resource(self, args): return args.name + "_id", args.inputs
            def call(self, args): return {{}}
        pulumi.runtime.set_mocks(Mocks(), project="key-rotation", stack="dev", preview=True)
        from tests.project import stack_config
        pulumi.runtime.set_all_config({{k: v if isinstance(v, str) else json.dumps(v)
                                        for k, v in stack_config("dev").items()}})
        runpy.run_path("__main__.py")
        sdk_internals.wait_for_program()
        clouds = ("pulumi_aws", "pulumi_gcp", "pulumi_kubernetes", "boto3")
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in clouds)))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_dev_stack_shows_each_signing_profile_of_seed_002(project, pinned_clock):
    run = Engine(project, "dev").up()
    outputs = run.outputs["keysets"]
    shown = {name: (o["profile"], o["algorithm"], o["backend"]) for name, o in outputs.items()
             if name.startswith("signer-")}
    assert shown == {
        "signer-default": ("default", "ES256", "software"),
        "signer-fips": ("fips", "ES256", "software"),
        "signer-pqc": ("pqc", "ML-DSA-65", "software"),
        "signer-sm2": ("sm2", "SM2-P256", "external"),
        "signer-gost": ("gost", "GOST-R-34.10-2012", "external"),
    }
    [akp] = json.loads((project / "published/stellaops/pqc/jwks.json").read_text())["keys"]
    assert (akp["kty"], akp["alg"], akp["kid"]) == ("AKP", "ML-DSA-65", "key-2026-pqc-dev")
    for profile, algorithm in (("sm2", "SM2-P256"), ("gost", "GOST-R-34.10-2012"), ("fips", "ECDSA-P-256")):
        anchor = json.loads((project / f"published/stellaops/{profile}/trust-anchor.json").read_text())
        assert [(k["key_id"], k["algorithm"]) for k in anchor["keys"]] == [(f"key-2026-{profile}-dev",
                                                                            algorithm)]


def test_rotation_is_additive(project, pinned_clock):
    engine = Engine(project, "dev", config=stack_config("dev"))
    before = engine.up()
    keysets(engine.config)["atlas-gateway"]["generations"].append(
        {"id": "2026-11-30", "state": "pending", "createdAt": "2026-11-23T12:00:00Z"})
    after = engine.up()

    added = set(after.resources) - set(before.resources)
    assert {after.resources[u].name for u in added} == {"atlas-gateway-2026-11-30",
                                                        "atlas-gateway-2026-11-30-key"}
    assert set(before.resources) <= set(after.resources), "no resource may change its URN"
    changed = {
        before.resources[u].name for u in before.resources
        if before.resources[u].type not in (PUBLICATION, SWITCHES)
        and before.resources[u].inputs != after.resources[u].inputs
    }
    assert changed == set(), f"inputs changed for {changed}"
    ops = {after.resources[u].name: op for op, u in after.operations}
    assert ops["atlas-gateway-2026-11-30-key"] == "create"
    # The only updates: the gateway's JWKS (plain and signed), which now pre-publishes the pending
    # key, its metrics (the new generation's createdAt series), and its deployment record, which
    # records when the pending generation was deployed.
    updated = {after.resources[u].name for op, u in after.operations if op == "update"}
    assert updated == {*(r.name for r in after.of_type(PUBLICATION) if r.inputs["keyset"] == "atlas-gateway"),
                       "atlas-gateway-switches"}
    assert {r.inputs["format"] for r in after.of_type(PUBLICATION)
            if r.inputs["keyset"] == "atlas-gateway"} == {"jwks", "metrics"}
    switches = after.named("atlas-gateway-switches").outputs["switches"]
    assert switches["2026-11-30"] == [{"state": "pending", "at": "2026-11-23T12:00:00Z", "targets": [
        "file://published/atlas/.well-known/jwks.json", "file://published/atlas/jwks.dsse.json",
        "file://published/metrics/atlas-gateway.prom"]}]
    assert [e["state"] for e in switches["2026-11-23"]] == ["active"]
    jwks = json.loads((project / "published/atlas/.well-known/jwks.json").read_text())
    assert [k["kid"] for k in jwks["keys"]] == ["atlas-2026-11-16", "atlas-2026-11-23", "atlas-2026-11-30"]


def test_preview_of_a_new_generation_does_not_fail_and_writes_nothing(project):
    engine = Engine(project, "dev", config=stack_config("dev"))
    engine.up()
    jwks = project / "published/atlas/.well-known/jwks.json"
    before = jwks.read_bytes()
    keysets(engine.config)["atlas-gateway"]["generations"].append(
        {"id": "2026-11-30", "state": "pending", "createdAt": "2026-11-23T12:00:00Z"})
    preview = engine.preview()
    assert preview.named("atlas-gateway-2026-11-30-key")
    assert jwks.read_bytes() == before


def test_a_preview_after_up_plans_no_change(project):
    engine = Engine(project, "dev")
    engine.up()
    preview = engine.preview()
    changes = [(op, preview.resources[u].name) for op, u in preview.operations if op != "same"]
    assert changes == []


def test_publishing_writes_nothing_when_nothing_changed(project, monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-23T12:00:00Z")
    engine = Engine(project, "dev")
    engine.up()
    jwks = project / "published/atlas/.well-known/jwks.json"
    stat = jwks.stat()
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-24T12:00:00Z")
    second = engine.up()
    assert {op for op, _ in second.operations} == {"same"}
    assert jwks.stat().st_mtime_ns == stat.st_mtime_ns and jwks.stat().st_ino == stat.st_ino


def test_first_published_times_survive_a_promotion(project, monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-23T12:00:00Z")
    engine = Engine(project, "dev", config=stack_config("dev"))
    gens = keysets(engine.config)["atlas-gateway"]["generations"]
    gens.append({"id": "2026-11-30", "state": "pending", "createdAt": "2026-11-23T12:00:00Z"})
    engine.up()
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-30T12:00:00Z")
    gens[1].update(state="retired", retiredAt="2026-11-30T09:00:00Z")
    gens[2].update(state="retiring", retiringAt="2026-11-30T09:10:00Z")
    gens[3].update(state="active", activatedAt="2026-11-30T09:10:00Z")
    run = engine.up()
    documents = run.outputs["keysets"]["atlas-gateway"]["documents"]
    published = documents["file://published/atlas/.well-known/jwks.json"]["firstPublished"]
    assert published == {"atlas-2026-11-23": "2026-11-23T12:00:00Z",
                         "atlas-2026-11-30": "2026-11-23T12:00:00Z"}
    jwks = json.loads((project / "published/atlas/.well-known/jwks.json").read_text())
    assert [k["kid"] for k in jwks["keys"]] == ["atlas-2026-11-23", "atlas-2026-11-30"]


def test_removing_a_publish_target_removes_its_file(project):
    engine = Engine(project, "dev", config=stack_config("dev"))
    engine.up()
    history = project / "published/stellaops/key-history.json"
    assert history.exists()
    keysets(engine.config)["signer-default"]["publish"] = [
        p for p in keysets(engine.config)["signer-default"]["publish"] if p["format"] != "key-history"]
    run = engine.up()
    assert any(op == "delete" for op, _ in run.operations)
    assert not history.exists()
    assert (project / "published/stellaops/trust-anchor.json").exists()


def test_a_generation_key_is_never_regenerated(project):
    engine = Engine(project, "dev", config=stack_config("dev"))
    first = engine.up()
    before = first.named("audit-signing-2026-11-20-key").outputs["public_key_pem"]
    keysets(engine.config)["audit-signing"]["keySize"] = 3072
    with pytest.raises(ProgramFailed) as info:
        engine.up()
    message = str(info.value) + "\n".join(info.value.errors)
    assert ("keyset 'audit-signing', generation '2026-11-20': key_size was 2048 and cannot become 3072;"
            in message)
    assert "Add a new generation instead" in message
    keysets(engine.config)["audit-signing"]["keySize"] = 2048
    again = engine.up()
    assert again.named("audit-signing-2026-11-20-key").outputs["public_key_pem"] == before


def test_removing_a_generation_is_refused_by_protection(project):
    engine = Engine(project, "dev", config=stack_config("dev"))
    engine.up()
    keysets(engine.config)["atlas-gateway"]["generations"].pop(0)
    with pytest.raises(ProgramFailed) as info:
        engine.up()
    assert "protected" in str(info.value) + "\n".join(info.value.errors)


def test_invalid_config_registers_nothing(project):
    config = stack_config("dev")
    keysets(config)["atlas-gateway"]["generations"][2]["state"] = "retiring"
    engine = Engine(project, "dev", config=config)
    with pytest.raises(ProgramFailed) as info:
        engine.up()
    message = str(info.value) + "\n".join(info.value.errors)
    assert "Pulumi.dev.yaml: invalid key-rotation configuration" in message
    assert ("keyset 'atlas-gateway', generation '2026-11-23', field 'retiringAt': is required when state is "
            "'retiring'" in message)
    assert [r for r in info.value.run.resources.values() if r.type != "pulumi:pulumi:Stack"] == []
    assert not (project / "published").exists()


def test_destroyed_generation_drops_its_private_key(project):
    engine = Engine(project, "dev", config=stack_config("dev"))
    engine.up()
    gen = keysets(engine.config)["atlas-gateway"]["generations"][0]
    gen.update(state="destroyed", destroyedAt="2026-11-23T12:00:00Z")
    run = engine.up()
    key = run.named("atlas-gateway-2026-11-09-key")
    assert key.outputs.get("private_key") in (None, "", Secret(""), Secret(None))
    assert key.outputs["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize("algorithm", sorted(a.name for a in ALGORITHMS.values() if a.is_symmetric))
def test_symmetric_keys_have_the_right_length(project, algorithm):
    import base64

    purpose = ALGORITHMS[algorithm].purpose
    config = {
        "key-rotation:environment": "dev",
        "key-rotation:keysets": {"k": {"purpose": purpose, "algorithm": algorithm, "generations": [
            {"id": "g1", "state": "active", "createdAt": "2026-11-01T00:00:00Z",
             "activatedAt": "2026-11-01T01:00:00Z"}]}},
    }
    run = Engine(project, "dev", config=config).up()
    material = run.named("k-g1-key").outputs["private_key"]
    assert isinstance(material, Secret)
    assert len(base64.b64decode(material.value)) == ALGORITHMS[algorithm].secret_bytes
    assert os.path.exists(project)


def test_the_commands_count_from_what_the_dev_stack_recorded_when_it_was_deployed(project, monkeypatch,
                                                                                  tmp_path):
    """rotate -> up -> promote -> up (later) -> retire: the publish lead counts from the publisher's
    record, the overlap from the deployment record of the promote, both read from the outputs."""
    from keyrotation.commands import cli

    def command(*args: str, now: str) -> tuple[int, str]:
        outputs = tmp_path / "outputs.json"
        outputs.write_text(json.dumps(engine_outputs[-1]))
        out, err = io.StringIO(), io.StringIO()
        code = cli.main([*args, "--file", str(project / "Pulumi.dev.yaml"), "--outputs", str(outputs),
                         "--now", now], out=out, err=err)
        return code, out.getvalue() + err.getvalue()

    def up(at: str) -> None:
        monkeypatch.setenv("KEY_ROTATION_NOW", at)
        engine_outputs.append(engine.up().outputs)

    monkeypatch.setattr(cli, "wall_clock", lambda: cli.parse_time("2026-11-30T00:00:00Z", "clock"))
    engine = Engine(project, "dev")
    engine_outputs: list[dict] = []
    up("2026-11-23T12:00:00Z")
    assert command("rotate", "atlas-gateway", "--id", "next", now="2026-11-24T09:00:00Z")[0] == 0
    up("2026-11-24T10:00:00Z")  # the rotation PR merged an hour later: the JWKS holds it from then
    code, said = command("promote", "atlas-gateway", now="2026-11-24T10:05:00Z")
    assert code == 1 and "first published 2026-11-24T10:00:00Z" in said
    assert command("promote", "atlas-gateway", now="2026-11-24T10:06:00Z")[0] == 0
    up("2026-11-24T13:00:00Z")  # ... and the promote deployed at 13:00
    deployments = engine_outputs[-1]["keysets"]["atlas-gateway"]["deployments"]
    assert deployments["2026-11-23"][-1] == {"state": "retiring", "at": "2026-11-24T13:00:00Z",
                                             "targets": ["file://published/atlas/.well-known/jwks.json",
                                                         "file://published/atlas/jwks.dsse.json",
                                                         "file://published/metrics/atlas-gateway.prom"]}
    code, said = command("retire", "atlas-gateway", "2026-11-23", now="2026-11-24T13:01:00Z")
    assert code == 1
    assert "deployed 2026-11-24T13:00:00Z" in said and "Retire allowed from 2026-11-24T14:06:00Z" in said
    assert command("retire", "atlas-gateway", "2026-11-23", now="2026-11-24T14:06:00Z")[0] == 0


def test_a_restored_generation_is_published_again_from_the_same_key(project, pinned_clock):
    engine = Engine(project, "dev", config=stack_config("dev"))
    first = engine.up()
    retired = first.named("atlas-gateway-2026-11-09-key")
    jwks_path = project / "published/atlas/.well-known/jwks.json"
    assert "atlas-2026-11-09" not in [k["kid"] for k in json.loads(jwks_path.read_text())["keys"]]
    old = next(g for g in keysets(engine.config)["atlas-gateway"]["generations"] if g["id"] == "2026-11-09")
    old.update(state="retiring", history=[{"state": "retiring", "at": "2026-11-23T11:00:00Z"}])
    second = engine.up()
    assert op_of(second, "atlas-gateway-2026-11-09-key") == "update"  # never a new key
    restored = second.named("atlas-gateway-2026-11-09-key").outputs
    assert restored["public_key_pem"] == retired.outputs["public_key_pem"]
    assert restored["private_key"] == retired.outputs["private_key"]
    assert "atlas-2026-11-09" in [k["kid"] for k in json.loads(jwks_path.read_text())["keys"]]


def op_of(run, name: str) -> str:
    urn = run.named(name).urn
    return next(op for op, u in run.operations if u == urn)
