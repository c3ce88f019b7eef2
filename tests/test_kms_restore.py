"""Restoring a destroyed KMS generation within its deletion window, end to end.

The rotation commands (keyrotation.cli, as a user runs them, with the stack outputs saved as
`--outputs FILE`) edit a stack file; the engine-faithful harness deploys it against moto's KMS
(AWS) and the project's Cloud KMS emulator, which serves the REST API the restored-key provider
calls. What is asserted is what a user sees: the key's state in the KMS, the same key id, the
published documents, decryption and signature verification with the KMS, valid-at answers, and
the refusals.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ruamel.yaml import YAML

from keyrotation import times
from keyrotation.commands import cli
from tests.engine import EngineRun, ProgramFailed
from tests.kms_emulators import Clouds
from tests.policy_client import CONFIGS, PolicyPackProcess
from tests.test_aws_kms import kms_jwt
from tests.test_gcp_kms import kms_jwt as gcp_jwt

RESTORED = "pulumi-python:dynamic/kms:RestoredKey"
WALL_CLOCK = "2026-12-31T00:00:00Z"


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    # The commands refuse an edit later than the clock; the test's story lies before this one.
    monkeypatch.setattr(cli, "wall_clock", lambda: times.parse(WALL_CLOCK))


class Story:
    """A stack file edited by the commands and deployed by the harness, outputs saved after each up."""

    def __init__(self, clouds: Clouds, project: Path, config: dict, monkeypatch):
        self.project, self.monkeypatch = project, monkeypatch
        self.file = project / "Pulumi.test.yaml"
        self.outputs = project / "outputs.json"
        yaml = YAML()
        with self.file.open("w") as out:
            yaml.dump({"config": config}, out)
        self.engine = clouds.engine(project, "test")
        self._run: EngineRun | None = None

    @property
    def run(self) -> EngineRun:
        """The last deployment's run."""
        assert self._run is not None, "not deployed yet: up() first"
        return self._run

    def up(self, at: str) -> EngineRun:
        self.monkeypatch.setenv("KEY_ROTATION_NOW", at)
        self._run = run = self.engine.up()
        self.outputs.write_text(json.dumps(run.outputs))
        return run

    def command(self, *args: str, now: str, outputs: bool = True) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        where = ["--outputs", str(self.outputs)] if outputs and self.outputs.exists() else ["--no-outputs"]
        code = cli.main([*args, "--file", str(self.file), "--now", now, *where], out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def ok(self, *args: str, now: str) -> str:
        code, out, err = self.command(*args, now=now)
        assert code == 0, err
        return out

    def generation(self, keyset: str, gid: str) -> dict:
        config = YAML(typ="safe").load(self.file.read_text())["config"]
        return next(g for g in config["key-rotation:keysets"][keyset]["generations"] if g["id"] == gid)

    def valid_at(self, keyset: str, kid: str, at: str) -> int:
        code, _out, _err = self.command("valid-at", keyset, kid, "--at", at, now="2026-12-30T00:00:00Z")
        return code


def defaults() -> dict:
    return {"publishMaxAgeSeconds": 60, "clockSkewSeconds": 0, "tokenLifetimeSeconds": 60,
            "deletionWindowDays": 7}


def first(gid: str) -> dict:
    return {"id": gid, "state": "active", "createdAt": "2026-11-01T09:00:00Z",
            "activatedAt": "2026-11-01T09:00:00Z"}


def aws_story(clouds: Clouds, project: Path, monkeypatch, keyset: str, *, purpose: str, algorithm: str,
              **more) -> Story:
    """A stack with one aws-kms keyset whose first generation is active."""
    return Story(clouds, project, {
        "aws:region": "us-east-1", "key-rotation:environment": "test", "key-rotation:defaults": defaults(),
        "key-rotation:keysets": {keyset: {
            "purpose": purpose, "algorithm": algorithm, "backend": "aws-kms", **more,
            "generations": [first("g1")],
        }},
    }, monkeypatch)


def rotate_retire_destroy(story: Story, keyset: str, *, rewrap: bool = False) -> None:
    """g1 active -> rotate g2 -> promote -> retire g1 -> destroy g1, each deployed."""
    story.up("2026-11-02T10:00:00Z")
    story.ok("rotate", keyset, "--id", "g2", now="2026-11-02T11:00:00Z")
    story.up("2026-11-02T11:01:00Z")
    story.ok("promote", keyset, now="2026-11-02T11:03:00Z")
    story.up("2026-11-02T11:04:00Z")
    if rewrap:
        story.ok("rewrapped", keyset, "g1", "--by", "ops@example.com", now="2026-11-02T11:10:00Z")
    story.ok("retire", keyset, "g1", now="2026-11-02T11:30:00Z")
    story.up("2026-11-02T11:31:00Z")
    story.ok("destroy", keyset, "g1", "--confirm", "g1", now="2026-11-03T09:00:00Z")
    story.up("2026-11-04T09:00:00Z")


# ---------------------------------------------------------------------------------------------
# AWS KMS


@pytest.mark.slow
def test_a_destroyed_aws_signing_key_comes_back_the_same_key_verify_only_and_can_be_destroyed_again(
    clouds, project, servers, monkeypatch
):
    bucket = f"trust-{uuid.uuid4().hex[:12]}"
    jwks_target, history_target = f"s3://{bucket}/t/jwks.json", f"s3://{bucket}/t/key-history.json"
    story = aws_story(clouds, project, monkeypatch, "tokens", purpose="sign", algorithm="ES256",
                      publish=[{"format": "jwks", "target": jwks_target},
                               {"format": "key-history", "target": history_target}])
    story.up("2026-11-02T10:00:00Z")
    key_id = story.run.named("tokens-g1-key").id
    assert key_id is not None
    kid = story.run.outputs["keysets"]["tokens"]["activeKid"]
    token = kms_jwt(clouds, key_id, "ES256", kid, {"sub": "made-before-destruction"})
    rotate_retire_destroy(story, "tokens")
    assert clouds.aws.describe(key_id)["KeyState"] == "PendingDeletion"
    instants = ["2026-11-01T12:00:00Z", "2026-11-02T11:20:00Z", "2026-11-03T12:00:00Z"]
    before = [story.valid_at("tokens", kid, at) for at in instants]

    # Restore within the window: a history step and the key's id, nothing rewritten.
    out = story.ok("restore", "tokens", "g1", now="2026-11-05T09:00:00Z")
    assert f"key {key_id} is brought back by the next `pulumi up` (AWS CancelKeyDeletion" in out
    assert "Deploy before 2026-11-11T09:00:00Z" in out  # 7 days from the deployed destruction
    g1 = story.generation("tokens", "g1")
    assert g1["state"] == "retiring" and g1["restoredKeyId"] == key_id
    assert g1["destroyedAt"] == "2026-11-03T09:00:00Z" and g1["retiringAt"] == "2026-11-02T11:03:00Z"
    assert g1["history"] == [{"state": "retiring", "at": "2026-11-05T09:00:00Z"}]

    # The pull request's preview plans the restored key without touching the key pending deletion.
    story.monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-05T09:30:00Z")
    preview = story.engine.preview()
    planned = [(op, urn) for op, urn in preview.operations if "tokens-g1-restored" in urn]
    assert [op for op, _ in planned] == ["create"]
    assert clouds.aws.describe(key_id)["KeyState"] == "PendingDeletion"

    run = story.up("2026-11-05T10:00:00Z")
    restored = run.named("tokens-g1-restored")
    assert restored.type == RESTORED and restored.id == key_id and restored.options.protect
    assert not [r for r in run.resources.values() if r.name == "tokens-g1-key"], "no new key"
    described = clouds.aws.describe(key_id)
    assert described["KeyState"] == "Enabled" and described.get("DeletionDate") is None
    assert clouds.aws.aliases()["alias/tokens-g1"] == key_id
    assert [k["KeyId"] for k in clouds.aws.client().list_keys()["Keys"]].count(key_id) == 1
    jwks = json.loads(servers.read_s3(jwks_target)["body"])
    assert kid in [k["kid"] for k in jwks["keys"]]
    assert jwt.decode(token, key=jwt.PyJWKSet.from_dict(jwks)[kid].key, algorithms=["ES256"])["sub"] == \
        "made-before-destruction"
    history = json.loads(servers.read_s3(history_target)["body"])["keyHistory"]
    entry = next(e for e in history if e["keyid"] == kid)
    assert entry["state"] == "retiring"
    published = serialization.load_pem_public_key(entry["publicKey"].encode())
    in_kms = serialization.load_der_public_key(clouds.aws.client().get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(published, ec.EllipticCurvePublicKey) and isinstance(in_kms, ec.EllipticCurvePublicKey)
    assert published.public_numbers() == in_kms.public_numbers()
    assert run.outputs["keysets"]["tokens"]["activeGeneration"] == "g2", "it verifies; it does not sign"
    assert [story.valid_at("tokens", kid, at) for at in instants] == before

    # A second up changes nothing; the policy pack judges the restored key like the others.
    again = story.up("2026-11-05T11:00:00Z")
    assert {op for op, urn in again.operations if "tokens-g1" in urn} == {"same"}
    with PolicyPackProcess() as pack:
        pack.configure(CONFIGS / "dev.json", now="2026-11-05T11:00:00Z")
        assert [d for d in pack.analyze(again, stack="test") if d.level == "mandatory"] == []
        again.resources[restored.urn].options.protect = False
        found = [d for d in pack.analyze(again, stack="test") if d.policy == "key-resources-protected"]
        assert [d.urn for d in found] == [restored.urn]
        assert "'tokens-g1-restored' is not protected (generation retiring)" in found[0].message

    # Retired again, then destroyed again: the same key is disabled, then pending deletion again.
    story.ok("retire", "tokens", "g1", now="2026-11-05T12:00:00Z")
    run = story.up("2026-11-05T12:01:00Z")
    assert clouds.aws.describe(key_id)["KeyState"] == "Disabled"
    assert not run.named("tokens-g1-restored").options.protect, "a retired key may be destroyed next"
    story.ok("destroy", "tokens", "g1", "--confirm", "g1", now="2026-11-06T09:00:00Z")
    run = story.up("2026-11-06T10:00:00Z")
    assert ("delete", restored.urn) in run.operations
    assert clouds.aws.describe(key_id)["KeyState"] == "PendingDeletion"
    assert story.generation("tokens", "g1")["restoredKeyId"] == key_id


@pytest.mark.slow
def test_a_destroyed_aws_encryption_key_decrypts_its_old_ciphertext_again(clouds, project, monkeypatch):
    story = aws_story(clouds, project, monkeypatch, "payload", purpose="encrypt", algorithm="A256GCM")
    story.up("2026-11-02T10:00:00Z")
    key_id = story.run.named("payload-g1-key").id
    kms = clouds.aws.client()
    ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"stored at rest under g1")["CiphertextBlob"]
    rotate_retire_destroy(story, "payload", rewrap=True)
    # AWS refuses Decrypt under a key pending deletion (moto made to: tests/kms_emulators.py).
    assert clouds.aws.describe(key_id)["KeyState"] == "PendingDeletion"
    with pytest.raises(kms.exceptions.ClientError, match="KMSInvalidStateException"):
        kms.decrypt(CiphertextBlob=ciphertext)

    story.ok("restore", "payload", "g1", now="2026-11-05T09:00:00Z")
    run = story.up("2026-11-05T10:00:00Z")
    assert run.named("payload-g1-restored").id == key_id
    assert clouds.aws.describe(key_id)["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"stored at rest under g1"
    assert kms.decrypt(CiphertextBlob=ciphertext)["KeyId"].endswith(key_id)
    generations = {g["id"]: g for g in run.outputs["keysets"]["payload"]["generations"]}
    assert generations["g1"]["state"] == "retiring" and generations["g1"]["keyId"] == key_id
    assert run.outputs["keysets"]["payload"]["activeGeneration"] == "g2", "it decrypts; it does not encrypt"


@pytest.mark.slow
def test_after_the_deletion_window_restore_is_refused_in_one_line(clouds, project, monkeypatch):
    story = aws_story(clouds, project, monkeypatch, "tokens", purpose="sign", algorithm="ES256")
    rotate_retire_destroy(story, "tokens")
    text = story.file.read_text()
    code, _out, err = story.command("restore", "tokens", "g1", now="2026-11-11T09:00:00Z")
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: {story.file.name}: keyset 'tokens', generation 'g1': refused: its deletion window ended"
        " 2026-11-11T09:00:00Z (deletionWindowDays 7 from its destruction, deployed 2026-11-04T09:00:00Z"
        f" ({story.outputs})): the KMS has deleted the key for good; rotate instead (`rotate tokens`)"]
    assert story.file.read_text() == text

    # Without the stack outputs it is refused; --force counts from the recorded destruction.
    code, _out, err = story.command("restore", "tokens", "g1", now="2026-11-10T10:00:00Z", outputs=False)
    assert code == 1 and "refused: cannot read the stack outputs (--no-outputs)" in err
    code, _out, err = story.command("restore", "tokens", "g1", "--force", now="2026-11-10T10:00:00Z",
                                    outputs=False)
    assert code == 1 and "ended 2026-11-10T09:00:00Z" in err
    code, _out, err = story.command("restore", "tokens", "g1", "--force", now="2026-11-10T08:00:00Z",
                                    outputs=False)
    assert code == 1 and "pass --key-id" in err
    key_id = story.run.outputs["keysets"]["tokens"]["generations"][0]["keyId"]
    code, out, err = story.command("restore", "tokens", "g1", "--force", "--key-id", key_id,
                                   now="2026-11-10T08:00:00Z", outputs=False)
    assert code == 0, err
    assert "warning: --force without the stack outputs" in out
    assert story.generation("tokens", "g1")["restoredKeyId"] == key_id


@pytest.mark.slow
def test_a_restore_whose_window_passed_in_the_kms_fails_the_up_naming_the_key(clouds, project, monkeypatch):
    """AWS deleted the key (moto cannot wait 7 days: the key is removed from moto's backend)."""
    story = aws_story(clouds, project, monkeypatch, "tokens", purpose="sign", algorithm="ES256")
    rotate_retire_destroy(story, "tokens")
    key_id = story.run.outputs["keysets"]["tokens"]["generations"][0]["keyId"]
    story.ok("restore", "tokens", "g1", now="2026-11-05T09:00:00Z")
    from moto.kms.models import kms_backends

    for backend in kms_backends.values():
        for region in backend.values():
            region.keys.pop(key_id, None)
    with pytest.raises(ProgramFailed) as failed:
        story.up("2026-11-05T10:00:00Z")
    assert (f"keyset 'tokens', generation 'g1': aws-kms key {key_id}: AWS KMS no longer has it"
            in str(failed.value))
    assert "cannot be restored; add a new generation (rotate)" in str(failed.value)


# ---------------------------------------------------------------------------------------------
# Cloud KMS


def gcp_story(clouds, project, monkeypatch, bucket: str) -> Story:
    return Story(clouds, project, {
        "gcp:project": "kms-tests", "key-rotation:environment": "staging",
        "key-rotation:defaults": defaults(),
        "key-rotation:keysets": {"fips": {
            "purpose": "sign", "algorithm": "ES256", "backend": "gcp-kms",
            "gcp": {"location": "us-east1", "keyRing": "signers"},
            "publish": [{"format": "jwks", "target": f"gs://{bucket}/fips/jwks.json"}],
            "generations": [first("g1")],
        }},
    }, monkeypatch)


@pytest.mark.slow
def test_a_destroy_scheduled_cloud_kms_version_is_restored_the_same_version(clouds, project, servers,
                                                                            monkeypatch):
    bucket = f"trust-{uuid.uuid4().hex[:12]}"
    story = gcp_story(clouds, project, monkeypatch, bucket)
    story.up("2026-11-02T10:00:00Z")
    name = story.run.named("fips-g1-version").id
    assert name is not None
    kid = story.run.outputs["keysets"]["fips"]["activeKid"]
    token = gcp_jwt(clouds, name, "ES256", kid, {"sub": "before"})
    rotate_retire_destroy(story, "fips")
    assert clouds.gcp.versions[name].state == "DESTROY_SCHEDULED"
    versions = len(clouds.gcp.versions)

    story.ok("restore", "fips", "g1", now="2026-11-05T09:00:00Z")
    assert story.generation("fips", "g1")["restoredKeyId"] == name
    run = story.up("2026-11-05T10:00:00Z")
    assert run.named("fips-g1-restored").id == name
    assert clouds.gcp.versions[name].state == "ENABLED" and len(clouds.gcp.versions) == versions
    assert ("POST", f"/v1/{name}:restore") in clouds.gcp.calls
    jwks = json.loads(servers.read_gs(f"gs://{bucket}/fips/jwks.json")["body"])
    assert jwt.decode(token, key=jwt.PyJWKSet.from_dict(jwks)[kid].key,
                      algorithms=["ES256"])["sub"] == "before"

    story.ok("retire", "fips", "g1", now="2026-11-05T12:00:00Z")
    story.up("2026-11-05T12:01:00Z")
    assert clouds.gcp.versions[name].state == "DISABLED"
    story.ok("destroy", "fips", "g1", "--confirm", "g1", now="2026-11-06T09:00:00Z")
    story.up("2026-11-06T10:00:00Z")
    assert clouds.gcp.versions[name].state == "DESTROY_SCHEDULED"


@pytest.mark.slow
def test_a_destroyed_cloud_kms_version_fails_the_up_in_one_line(clouds, project, monkeypatch):
    story = gcp_story(clouds, project, monkeypatch, f"trust-{uuid.uuid4().hex[:12]}")
    rotate_retire_destroy(story, "fips")
    name = story.run.outputs["keysets"]["fips"]["generations"][0]["keyId"]
    story.ok("restore", "fips", "g1", now="2026-11-05T09:00:00Z")
    clouds.gcp.versions[name].state = "DESTROYED"  # its destroy_scheduled_duration passed
    with pytest.raises(ProgramFailed) as failed:
        story.up("2026-11-05T10:00:00Z")
    assert (f"keyset 'fips', generation 'g1': gcp-kms key {name}: is DESTROYED in Cloud KMS"
            in str(failed.value))


# ---------------------------------------------------------------------------------------------
# Backends whose destroyed keys are gone


def _public_pem() -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.mark.parametrize(("backend", "options", "reason"), [
    ("software", {}, "a software key's private key is dropped from the state at destroy"),
    ("pkcs11", {"pkcs11": {"module": "/usr/lib/softhsm/libsofthsm2.so", "token": "signer"}},
     "a pkcs11 key pair is destroyed in its token at destroy"),
    ("external", {}, "this stack never held the private key and cannot tell whether it still exists"),
])
def test_destroyed_keys_without_a_deletion_window_stay_refused(backend, options, reason):
    from keyrotation.commands import transitions
    from keyrotation.config import load
    from keyrotation.errors import CommandError

    generations = [
        {"id": "g1", "state": "destroyed", "createdAt": "2026-11-01T09:00:00Z",
         "activatedAt": "2026-11-01T09:00:00Z", "retiringAt": "2026-11-02T09:00:00Z",
         "retiredAt": "2026-11-03T09:00:00Z", "destroyedAt": "2026-11-04T09:00:00Z"},
        {"id": "g2", "state": "active", "createdAt": "2026-11-01T10:00:00Z",
         "activatedAt": "2026-11-02T09:00:00Z"},
    ]
    if backend == "external":
        for g in generations:
            g["publicKeyPem"] = _public_pem()
    keyset = {"purpose": "sign", "algorithm": "ES256", "backend": backend, **options,
              "generations": generations}
    text = json.dumps({"config": {"key-rotation:environment": "test", "key-rotation:keysets": {"k": keyset}}})
    stack = load("Pulumi.test.yaml", text=text)
    with pytest.raises(CommandError) as refused:
        transitions.restore(stack, "k", "g1", now=datetime.fromisoformat("2026-11-05T09:00:00+00:00"))
    assert str(refused.value) == (
        f"Pulumi.test.yaml: keyset 'k', generation 'g1': backend {backend}: a destroyed generation's key"
        f" material is gone ({reason}" + (
            "; if its holder still has it, add it as a new generation (`rotate KEYSET --public-key FILE`)"
            if backend == "external" else "") + "); it cannot be restored")


FLOW_STACK = """\
config:
  aws:region: us-east-1
  key-rotation:environment: prod
  key-rotation:keysets:
    payments:
      purpose: encrypt
      algorithm: A256GCM
      backend: aws-kms
      deletionWindowDays: 7
      generations:
        # destroyed by mistake on 2026-11-03
        - {id: g1, state: destroyed, createdAt: "2026-11-01T09:00:00Z", activatedAt: "2026-11-01T09:00:00Z",
           retiringAt: "2026-11-02T09:00:00Z", retiredAt: "2026-11-02T12:00:00Z", \
destroyedAt: "2026-11-03T09:00:00Z"}
        - {id: g2, state: active, createdAt: "2026-11-01T10:00:00Z", activatedAt: "2026-11-02T09:00:00Z"}
"""


def test_restore_edits_a_flow_style_stack_file_minimally_and_the_result_validates(tmp_path):
    from keyrotation.config import load_stack_file
    from tests.deployed import key_id, write_outputs

    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(FLOW_STACK)
    outputs = write_outputs(path, tmp_path / "outputs.json")
    stack = load_stack_file(path)
    expected_key = key_id(stack, stack.keysets["payments"], stack.keysets["payments"].generations[0])
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["restore", "payments", "g1", "--file", str(path), "--outputs", str(outputs),
                     "--now", "2026-11-05T09:00:00Z"], out=out, err=err)
    assert code == 0, err.getvalue()
    assert "~ generation 'g1': state destroyed -> retiring, restoredKeyId " + expected_key in out.getvalue()
    assert "history + {state retiring, at 2026-11-05T09:00:00Z}" in out.getvalue()
    text = path.read_text()
    assert text.startswith(FLOW_STACK.split("        - {id: g1")[0]), "the comment and the rest stay"
    assert FLOW_STACK.splitlines()[-1] in text.splitlines(), "g2 untouched"
    g1 = load_stack_file(path).keysets["payments"].generations[0]
    assert g1.destroyed_at is not None
    assert (str(g1.state), g1.destroyed_at.isoformat(), g1.restored_key_id) == (
        "retiring", "2026-11-03T09:00:00+00:00", expected_key)


def test_restored_key_id_is_validated_against_the_keyset(tmp_path):
    from keyrotation.config import ConfigError, load_stack_file

    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(FLOW_STACK.replace('destroyedAt: "2026-11-03T09:00:00Z"}',
                                       'destroyedAt: "2026-11-03T09:00:00Z", restoredKeyId: not-a-key}'))
    with pytest.raises(ConfigError) as bad:
        load_stack_file(path)
    assert "keyset 'payments', generation 'g1', field 'restoredKeyId'" in str(bad.value)
    assert "is written by `restore` for a generation brought back from 'destroyed'" in str(bad.value)


RESTORED_G1 = {"id": "g1", "state": "retiring", "createdAt": "2026-11-01T09:00:00Z",
               "activatedAt": "2026-11-01T09:00:00Z", "retiringAt": "2026-11-02T09:00:00Z",
               "retiredAt": "2026-11-02T12:00:00Z", "destroyedAt": "2026-11-03T09:00:00Z",
               "history": [{"state": "retiring", "at": "2026-11-05T09:00:00Z"}]}
ACTIVE_G2 = {"id": "g2", "state": "active", "createdAt": "2026-11-01T10:00:00Z",
             "activatedAt": "2026-11-02T09:00:00Z"}
GCP_VERSION = "projects/kms-tests/locations/us-east1/keyRings/signers/cryptoKeys/fips/cryptoKeyVersions/1"


@pytest.mark.parametrize(("backend", "options", "key", "message"), [
    ("aws-kms", {"aws": {"region": "us-east-1"}}, "alias/fips-g1",
     "'alias/fips-g1' is not an AWS KMS key id"),
    ("gcp-kms", {"gcp": {"location": "us-east1", "keyRing": "signers", "project": "kms-tests"}},
     GCP_VERSION.replace("signers", "other"), "is not a version of this keyset's CryptoKey: ring 'other'"),
    ("gcp-kms", {"gcp": {"location": "us-east1", "keyRing": "signers", "project": "kms-tests"}},
     "projects/kms-tests/cryptoKeyVersions/1", "is not a Cloud KMS CryptoKeyVersion name"),
    ("software", {}, "g1", "only a KMS key (aws-kms, gcp-kms) is restored from its deletion window"),
])
def test_a_wrong_restored_key_id_is_refused_naming_the_field(backend, options, key, message):
    from keyrotation.config import ConfigError, load

    keyset = {"purpose": "sign", "algorithm": "ES256", "backend": backend, **options,
              "generations": [{**RESTORED_G1, "restoredKeyId": key}, ACTIVE_G2]}
    text = json.dumps({"config": {"key-rotation:environment": "test",
                                  "key-rotation:keysets": {"fips": keyset}}})
    with pytest.raises(ConfigError) as bad:
        load("Pulumi.test.yaml", text=text)
    assert "keyset 'fips', generation 'g1', field 'restoredKeyId'" in str(bad.value)
    assert message in str(bad.value)
    right = {**keyset, "generations": [{**RESTORED_G1, "restoredKeyId": GCP_VERSION}, ACTIVE_G2]}
    if backend == "gcp-kms":
        text = json.dumps({"config": {"key-rotation:environment": "test",
                                      "key-rotation:keysets": {"fips": right}}})
        restored = load("Pulumi.test.yaml", text=text).keysets["fips"].generations[0]
        assert restored.restored_key_id == GCP_VERSION


@pytest.mark.parametrize(("now", "expected"), [
    ("2026-11-05T09:00:00Z",
     "restore possible until 2026-11-10T09:00:00Z (deletion window): `restore payments g1`"),
    ("2026-11-10T09:00:00Z", None),  # the window has closed: the KMS deleted the key for good
])
def test_status_says_until_when_a_destroyed_kms_generation_can_be_restored(tmp_path, now, expected):
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(FLOW_STACK)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["status", "--json", "--file", str(path), "--now", now, "--no-outputs"], out=out, err=err)
    assert code in (0, 3), err.getvalue()
    [payments] = json.loads(out.getvalue())["keysets"]
    g1 = next(g for g in payments["generations"] if g["id"] == "g1")
    assert (g1["state"], g1["next"], g1["nextAt"]) == ("destroyed", expected, None)
    out = io.StringIO()
    cli.main(["status", "--file", str(path), "--now", now, "--no-outputs"], out=out, err=io.StringIO())
    assert (expected is not None) == ("restore possible until 2026-11-10T09:00:00Z" in out.getvalue())
