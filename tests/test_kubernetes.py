"""Kubernetes delivery under the engine-faithful harness: Secrets, Deployment patches, ConfigMaps, alerts.

Objects are validated offline with kubernetes-validate's schemas (strict: unknown fields fail). A
server-side-apply patch is a partial object, so it is checked against the Deployment schema with
every ``required`` dropped (SSA merges it into the live object) and with its merge keys (container
and env ``name``) demanded. The PrometheusRule is a custom resource the bundled schemas do not
know: its metadata is checked against ObjectMeta and every expression is parsed and evaluated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from referencing import Registry, Resource

from components.delivery import PATCH_FORCE_ANNOTATION
from keyrotation import documents, lifecycle, metadata
from keyrotation.config import from_config_map, load_stack_file
from keyrotation.delivery import FINGERPRINTS_ANNOTATION, checksum_annotation
from keyrotation.metadata import parse_time
from tests.engine import UNKNOWN, Engine, Secret
from tests.kms_emulators import cloud_engine
from tests.project import ROOT, STACKS, copy_project, stack_config

K8S_VERSION = "1.31"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT_PATCH = "kubernetes:apps/v1:DeploymentPatch"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
PROVIDER = "pulumi:providers:kubernetes"
SOFTWARE_KEY = "pulumi-python:dynamic/keys:SoftwareKey"
PUBLICATION = "pulumi-python:dynamic/publishing:Publication"

CLUSTER_STACKS = [s for s in STACKS if "key-rotation:kubernetes" in stack_config(s)]
SS = "secrets-service"
T0_HSM = "2026-11-01T00:00:00Z"
SS_SECRET = f"{SS}-delivery-aether-secrets-service-config-secret"
SS_PATCH = f"{SS}-delivery-aether-secrets-service-patch"


# ---------------------------------------------------------------------------------------------
# Helpers: objects as the cluster gets them, offline validation


def plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def public_part(value: Any) -> Any:
    """Everything of a value that is not secret (secrets replaced by a marker)."""
    if isinstance(value, Secret):
        return "<secret>"
    if isinstance(value, dict):
        return {k: public_part(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public_part(v) for v in value]
    return value


def kube_objects(run) -> list:
    return [r for r in run.resources.values() if r.type.startswith("kubernetes:")]


@cache
def _schema(name: str) -> dict[str, Any]:
    folder = resources.files(kubernetes_validate).joinpath("kubernetes-json-schema")
    directory = next(d for d in folder.iterdir()
                     if d.name.startswith(f"v{K8S_VERSION}.") and d.name.endswith("-local-strict"))
    return json.loads(directory.joinpath(name).read_text())


def _without_required(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


def _validate_with(schema: dict, definitions: dict, obj: dict) -> None:
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(obj)


def validate_patch(obj: dict[str, Any]) -> None:
    _validate_with(_without_required(_schema("deployment-apps-v1.json")),
                   _without_required(_schema("_definitions.json")), obj)
    assert obj["metadata"].get("name") and obj["metadata"].get("namespace"), "a patch names its target"
    for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        assert container.get("name"), f"a patched container needs its merge key 'name': {container}"
        for env in container.get("env", []):
            assert env.get("name"), f"an env entry needs its merge key 'name': {env}"


def validate_prometheus_rule(obj: dict[str, Any]) -> None:
    assert (obj["apiVersion"], obj["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    _validate_with(_schema("objectmeta-meta-v1.json"), _schema("_definitions.json"), obj["metadata"])
    assert obj["metadata"].get("namespace"), "a PrometheusRule is namespaced"
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"} and set(obj["spec"]) == {"groups"}
    names = [g["name"] for g in obj["spec"]["groups"]]
    assert len(names) == len(set(names)), "rule group names are the list's map key"
    for group in obj["spec"]["groups"]:
        assert set(group) <= {"name", "rules", "interval", "labels", "limit"}
        for rule in group["rules"]:
            if "record" in rule:  # a recording rule: a metric name, no annotations
                assert set(rule) <= {"record", "expr", "labels"}
                assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["record"])
            else:
                assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
                assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", rule["alert"])
            promql_parser.parse(rule["expr"])  # raises on invalid PromQL
            for mapping in (rule.get("labels", {}), rule.get("annotations", {})):
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())


def validate(resource) -> None:
    obj = plain(resource.inputs)
    if resource.type == DEPLOYMENT_PATCH:
        validate_patch(obj)
    elif resource.type == PROMETHEUS_RULE:
        validate_prometheus_rule(obj)
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        for value in (obj.get("data") or {}).values() if resource.type == SECRET else ():
            base64.b64decode(value, validate=True)


def secret_env(run, name: str = SS_SECRET) -> dict[str, str]:
    """What a pod's env gets from the Secret (data decoded), after checking it is secret."""
    data = run.named(name).inputs["data"]
    assert isinstance(data, Secret)
    return {k: base64.b64decode(v).decode() for k, v in data.value.items()}


def rollout_checksum(run, name: str = SS_PATCH, keyset: str = SS) -> str:
    return run.named(name).inputs["spec"]["template"]["metadata"]["annotations"][checksum_annotation(keyset)]


def op_of(run, name: str) -> str:
    urn = run.named(name).urn
    return next(op for op, u in run.operations if u == urn)


def keysets(config: dict) -> dict:
    return config["key-rotation:keysets"]


def cluster_only(stack: str) -> dict:
    """The stack's config with only the Secrets Service keyset: its delivery needs no cloud emulator."""
    config = stack_config(stack)
    # Its metrics document goes to S3 (an emulator's business): delivery is what these tests judge.
    ss = {k: v for k, v in keysets(config)[SS].items() if k != "publish"}
    config["key-rotation:keysets"] = {SS: ss}
    return config


NOW = "2026-11-23T12:00:00Z"


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", NOW)


@pytest.fixture(scope="module", params=CLUSTER_STACKS)
def shipped(request, tmp_path_factory) -> tuple[str, Any]:
    """A shipped stack file as it is, up once against the cloud emulators: (stack, run)."""
    stack = request.param
    saved = os.environ.get("KEY_ROTATION_NOW")
    os.environ["KEY_ROTATION_NOW"] = NOW
    try:
        project = copy_project(tmp_path_factory.mktemp(stack) / "project")
        return stack, cloud_engine(project, stack).up()
    finally:
        if saved is None:
            del os.environ["KEY_ROTATION_NOW"]
        else:
            os.environ["KEY_ROTATION_NOW"] = saved


# ---------------------------------------------------------------------------------------------
# The shipped stacks


def test_every_kubernetes_object_of_the_stack_validates_offline(shipped):
    stack, run = shipped

    objects = kube_objects(run)
    assert {r.type for r in objects} >= {SECRET, DEPLOYMENT_PATCH, PROMETHEUS_RULE}
    for resource in objects:
        validate(resource)
    # Every object goes to the stack's cluster, through its one provider.
    [provider] = run.of_type(PROVIDER)
    expected = load_stack_file(ROOT / f"Pulumi.{stack}.yaml").kubernetes
    assert expected is not None
    assert provider.inputs["context"] == expected.context == f"aether-{stack}"
    assert provider.inputs["namespace"] == expected.namespace
    assert {r.options.provider.rsplit("::", 1)[0] for r in objects} == {provider.urn}


def test_gateway_and_agent_manager_get_the_active_key_after_it_is_published(shipped):
    stack, run = shipped
    outputs = run.outputs["keysets"]

    gateway = plain(run.named("atlas-gateway-delivery-atlas-atlas-gateway-patch").inputs)
    assert gateway["spec"]["template"]["spec"]["containers"] == [{"name": "atlas-gateway", "env": [
        {"name": "SIGNING_KEY_ID", "value": outputs["atlas-gateway"]["activeKid"]}]}]
    assert outputs["atlas-gateway"]["activeKid"] == "atlas-2026-11-23"

    audit = outputs["audit-signing"]
    active_key = run.named(f"audit-signing-{audit['activeGeneration']}-key")
    manager = plain(run.named("audit-signing-delivery-aether-agent-manager-patch").inputs)
    assert manager["spec"]["template"]["spec"]["containers"] == [{"name": "agent-manager", "env": [
        {"name": "AUDIT_SIGNER_KID", "value": audit["activeKid"]},
        {"name": "AUDIT_SIGNING_ALG", "value": "rsa-sha256"},
        {"name": "AUDIT_SIGNING_KEY_SOURCE", "value": "kms"},
        {"name": "AUDIT_SIGNING_KMS_KEY_ID", "value": active_key.outputs["keyId"]},
    ]}]
    # Each env switch waits for every document of its keyset (the signers.json first of all).
    for keyset, patch in (("atlas-gateway", "atlas-gateway-delivery-atlas-atlas-gateway-patch"),
                          ("audit-signing", "audit-signing-delivery-aether-agent-manager-patch")):
        documents_of = {r.urn for r in run.of_type(PUBLICATION) if r.inputs["keyset"] == keyset}
        assert documents_of and documents_of <= set(run.named(patch).options.dependencies)
    # Each Deployment carries its own keyset's rollout annotation only.
    assert (set(manager["spec"]["template"]["metadata"]["annotations"])
            == {checksum_annotation("audit-signing")})


def test_the_validation_rejects_what_a_cluster_would():
    """The checks above can fail: a typo'd field, a patch without merge keys, bad PromQL."""
    with pytest.raises(jsonschema.ValidationError):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                      "strinData": {"a": "b"}}, K8S_VERSION, strict=True)
    with pytest.raises(jsonschema.ValidationError):
        validate_patch({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "d", "namespace": "n"},
                        "spec": {"template": {"spec": {"containers": [{"name": "c", "envv": []}]}}}})
    with pytest.raises(AssertionError):
        validate_patch({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "d", "namespace": "n"},
                        "spec": {"template": {"spec": {"containers": [{"env": [{"name": "A",
                                                                                "value": "1"}]}]}}}})
    with pytest.raises(ValueError):
        promql_parser.parse("time() - 5 > 3")


def test_dev_stack_has_no_cluster_and_never_imports_pulumi_kubernetes(tmp_path):
    project = copy_project(tmp_path / "project")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.engine import Engine
        run = Engine({str(project)!r}, "dev").up()
        assert not [r for r in run.resources.values() if "kubernetes" in r.type], "kubernetes resources"
        print(sorted(m for m in sys.modules if m.startswith("pulumi_kubernetes")))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "KEY_ROTATION_NOW": "2026-11-23T12:00:00Z"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------------------------------------
# Secrets


def test_secret_holds_the_active_key_and_the_keyring_and_only_fingerprints_in_the_clear(shipped):
    stack, run = shipped

    secret = run.named(SS_SECRET)
    assert secret.inputs["type"] == "Opaque"
    assert (secret.inputs["metadata"]["namespace"], secret.inputs["metadata"]["name"]) == (
        "aether", "secrets-service-config")
    assert isinstance(secret.inputs["data"], Secret) and isinstance(secret.outputs["data"], Secret)
    assert "data" in secret.options.additional_secret_outputs

    material = {k.outputs["generation"]: k.outputs["private_key"].value for k in run.of_type(SOFTWARE_KEY)
                if k.outputs["keyset"] == SS}
    env = secret_env(run)
    assert set(env) == {"SECRET_ENCRYPTION_KEY", "SECRET_ENCRYPTION_KEYRING"}
    assert env["SECRET_ENCRYPTION_KEY"] == material["2026-q4"]
    # The runbook's `openssl rand -base64 32`.
    assert len(base64.b64decode(env["SECRET_ENCRYPTION_KEY"])) == 32
    ring = json.loads(env["SECRET_ENCRYPTION_KEYRING"])
    kids = {g["id"]: g["kid"] for g in run.outputs["keysets"][SS]["generations"]}
    assert ring == {"active": "2026-q4", "keys": [
        {"id": "2026-q3", "kid": kids["2026-q3"], "key": material["2026-q3"], "state": "retiring",
         "active": False},
        {"id": "2026-q4", "kid": kids["2026-q4"], "key": material["2026-q4"], "state": "active",
         "active": True},
    ]}

    annotations = secret.inputs["metadata"]["annotations"]
    # The secrets ledger's fingerprint: SHA-256 of the base64 value.
    assert json.loads(annotations[FINGERPRINTS_ANNOTATION]) == {
        gid: hashlib.sha256(value.encode()).hexdigest() for gid, value in material.items()}
    meta = metadata.from_annotations(annotations)
    assert meta is not None
    assert (meta.keyset, meta.generation, meta.state, meta.environment) == (SS, "2026-q4", "active", stack)

    # No key material anywhere but in secrets: not in metadata, patches, outputs or the log.
    clear = json.dumps([public_part(r.inputs) for r in kube_objects(run)]
                       + [public_part(r.outputs) for r in kube_objects(run)]
                       + [run.outputs, run.log])
    for value in material.values():
        for text in (value, base64.b64encode(value.encode()).decode()):
            assert text not in clear


def test_pending_generation_is_delivered_decrypt_only(project):
    config = cluster_only("staging")
    keysets(config)[SS]["generations"].append({"id": "2027-q1", "state": "pending",
                                               "createdAt": "2027-01-20T09:00:00Z"})
    run = Engine(project, "staging", config=config).up()

    env = secret_env(run)
    ring = json.loads(env["SECRET_ENCRYPTION_KEYRING"])
    assert [(k["id"], k["state"], k["active"]) for k in ring["keys"]] == [
        ("2026-q3", "retiring", False), ("2026-q4", "active", True), ("2027-q1", "pending", False)]
    assert ring["active"] == "2026-q4"
    assert env["SECRET_ENCRYPTION_KEY"] == next(k["key"] for k in ring["keys"] if k["id"] == "2026-q4")
    assert env["SECRET_ENCRYPTION_KEY"] != next(k["key"] for k in ring["keys"] if k["id"] == "2027-q1")


# ---------------------------------------------------------------------------------------------
# A rolling update with real AES-256-GCM: old pods hold the previous Secret, new pods the new one


class Pod:
    """A Secrets Service pod: encrypts with SECRET_ENCRYPTION_KEY, decrypts with any keyring key."""

    def __init__(self, env: dict[str, str]):
        ring = json.loads(env["SECRET_ENCRYPTION_KEYRING"])
        self.keys = {k["kid"]: base64.b64decode(k["key"]) for k in ring["keys"]}
        self.kid = next(k["kid"] for k in ring["keys"] if k["active"])
        self.material = base64.b64decode(env["SECRET_ENCRYPTION_KEY"])
        assert self.keys[self.kid] == self.material, "the encryption key is the keyring's active key"

    def encrypt(self, text: bytes) -> tuple[str, bytes, bytes]:
        nonce = os.urandom(12)
        return self.kid, nonce, AESGCM(self.material).encrypt(nonce, text, self.kid.encode())

    def decrypt(self, envelope: tuple[str, bytes, bytes]) -> bytes:
        kid, nonce, ciphertext = envelope
        if kid not in self.keys:
            raise KeyError(f"no key {kid} in this pod's keyring")
        return AESGCM(self.keys[kid]).decrypt(nonce, ciphertext, kid.encode())


def rolling_update(before: dict[str, str], after: dict[str, str], label: str) -> list:
    """Old and new pods serve side by side; each decrypts everything either side encrypted."""
    old, new = Pod(before), Pod(after)
    produced = [(f"{label}: {side} {i}".encode(), pod.encrypt(f"{label}: {side} {i}".encode()))
                for side, pod in (("old", old), ("new", new)) for i in range(3)]
    for pod in (old, new):
        for text, envelope in produced:
            assert pod.decrypt(envelope) == text
    return produced


def test_rolling_update_never_meets_undecryptable_ciphertext_through_rotation_and_rollback(project):
    config = cluster_only("staging")
    engine = Engine(project, "staging", config=config)
    gens = keysets(config)[SS]["generations"]
    by_id = {g["id"]: g for g in gens}
    envs, stored = [secret_env(engine.up())], []

    def step(label: str) -> dict[str, str]:
        run = engine.up()
        assert op_of(run, SS_SECRET) == "update" and op_of(run, SS_PATCH) == "update", label
        envs.append(secret_env(run))
        stored.extend(rolling_update(envs[-2], envs[-1], label))
        return envs[-1]

    # 1. A new generation is delivered decrypt-only: every pod still encrypts with 2026-q4.
    gens.append({"id": "2027-q1", "state": "pending", "createdAt": "2027-01-20T09:00:00Z"})
    step("pending")
    # 2. It becomes the encryption key; the previous one stays decrypt-capable (retiring).
    by_id["2027-q1"] = gens[-1]
    by_id["2027-q1"].update(state="active", activatedAt="2027-01-20T10:00:00Z")
    by_id["2026-q4"].update(state="retiring", retiringAt="2027-01-20T10:00:00Z")
    step("active")
    # 3. The oldest leaves the keyring after its overlap.
    by_id["2026-q3"].update(state="retired", retiredAt="2027-01-21T10:00:00Z")
    step("retire")
    # 4. Rollback: the previous generation encrypts again; the newer one stays in the keyring.
    by_id["2026-q4"].update(state="active")
    del by_id["2026-q4"]["retiringAt"]
    by_id["2027-q1"].update(state="retiring", retiringAt="2027-01-22T10:00:00Z")
    after_rollback = step("rollback")

    ring = json.loads(after_rollback["SECRET_ENCRYPTION_KEYRING"])
    assert [(k["id"], k["state"], k["active"]) for k in ring["keys"]] == [
        ("2026-q4", "active", True), ("2027-q1", "retiring", False)]
    # Nothing encrypted under the newer generation while it was active is lost by the rollback.
    pod = Pod(after_rollback)
    for text, envelope in stored:
        assert pod.decrypt(envelope) == text
    assert {envelope[0] for _, envelope in stored} == {k["kid"] for k in ring["keys"]}


def test_the_runbooks_in_place_swap_would_lose_ciphertext():
    """The control for the test above: with the key swapped in place (no keyring), an old pod
    cannot read what a new pod wrote during the rollout."""
    def swapped(key: bytes) -> dict[str, str]:
        material = base64.b64encode(key).decode()
        return {"SECRET_ENCRYPTION_KEY": material, "SECRET_ENCRYPTION_KEYRING": json.dumps(
            {"keys": [{"kid": hashlib.sha256(key).hexdigest(), "key": material, "active": True}]})}

    with pytest.raises(KeyError):
        rolling_update(swapped(AESGCM.generate_key(256)), swapped(AESGCM.generate_key(256)), "swap")
    old, new = Pod(swapped(b"\x01" * 32)), Pod(swapped(b"\x02" * 32))
    new.kid = old.kid  # same kid, different key: GCM refuses rather than returning garbage
    with pytest.raises(InvalidTag):
        old.decrypt(new.encrypt(b"x"))


# ---------------------------------------------------------------------------------------------
# The rollout checksum


def other_keyset() -> dict:
    return {
        "purpose": "encrypt", "algorithm": "A256GCM", "backend": "software",
        "consumers": [{"secret": "aether/reporter-config", "data": {"REPORT_KEY": "material"},
                       "restart": ["aether/reporter"]}],
        "generations": [{"id": "r1", "state": "active", "createdAt": "2026-10-01T09:00:00Z",
                         "activatedAt": "2026-10-01T10:00:00Z"}],
    }


def test_checksum_changes_exactly_when_delivered_keys_or_key_ids_change(project):
    config = cluster_only("staging")
    keysets(config)["reporter"] = other_keyset()
    engine = Engine(project, "staging", config=config)
    seen = [rollout_checksum(engine.up())]

    def up() -> tuple[bool, str, str]:
        run = engine.up()
        seen.append(rollout_checksum(run))
        return seen[-1] != seen[-2], op_of(run, SS_PATCH), op_of(run, SS_SECRET)

    assert up() == (False, "same", "same")  # nothing changed
    keysets(config)["reporter"]["generations"].append(
        {"id": "r2", "state": "pending", "createdAt": "2026-11-20T09:00:00Z"})
    assert up() == (False, "same", "same")  # another keyset rotated
    keysets(config)[SS].update(maxAgeDays=60, warnDays=10, tokenLifetimeSeconds=600)
    assert up() == (False, "same", "same")  # timings are not delivered
    keysets(config)[SS]["generations"].append(
        {"id": "2027-q1", "state": "pending", "createdAt": "2027-01-20T09:00:00Z"})
    assert up() == (True, "update", "update")  # a new key in the keyring
    gens = {g["id"]: g for g in keysets(config)[SS]["generations"]}
    gens["2027-q1"].update(state="active", activatedAt="2027-01-20T10:00:00Z")
    gens["2026-q4"].update(state="retiring", retiringAt="2027-01-20T10:00:00Z")
    assert up() == (True, "update", "update")  # a new encryption key
    keysets(config)[SS]["kid"] = "{keyset}-{generation}"
    assert up() == (True, "update", "update")  # the same keys under new key ids
    assert up() == (False, "same", "same")

    # The checksum is computed from ids and fingerprints only: it never encodes material.
    assert len(set(seen)) == 4
    run = engine.up()
    patch = run.named(SS_PATCH)
    assert patch.inputs["spec"]["template"]["metadata"]["annotations"] == {
        checksum_annotation(SS): seen[-1]}
    assert not any(isinstance(v, Secret) for v in (patch.inputs["spec"], patch.inputs["metadata"]))


# ---------------------------------------------------------------------------------------------
# Deployments: env, secret references, ordering after publication


def signing_keysets() -> dict:
    return {
        "atlas-gateway": {
            "purpose": "sign", "algorithm": "EdDSA", "backend": "software", "kid": "atlas-{generation}",
            "maxAgeDays": 7, "warnDays": 2,
            "publish": [{"format": "jwks", "target": "configmap://atlas/atlas-jwks"},
                        {"format": "jwks", "target": "file://published/atlas/jwks.json"}],
            "consumers": [{"deployment": "atlas/atlas-gateway", "env": {"SIGNING_KEY_ID": "kid"}}],
            "generations": [
                {"id": "2026-11-16", "state": "retiring", "createdAt": "2026-11-16T09:00:00Z",
                 "activatedAt": "2026-11-16T09:10:00Z", "retiringAt": "2026-11-23T09:10:00Z"},
                {"id": "2026-11-23", "state": "active", "createdAt": "2026-11-23T09:00:00Z",
                 "activatedAt": "2026-11-23T09:10:00Z"},
            ],
        },
        "audit-signing": {
            "purpose": "sign", "algorithm": "RS256", "backend": "software",
            "kid": "audit-rotation-{generation}",
            "publish": [{"format": "signers", "target": "file://published/agent-manager/signers.json"}],
            "consumers": [{"deployment": "agent-manager/agent-manager", "container": "manager",
                           "env": {"AUDIT_SIGNER_KID": "kid", "AUDIT_SIGNING_ALG": "signersAlgorithm"},
                           "material": {"AUDIT_SIGNING_PRIVATE_KEY": "material"},
                           "values": {"AUDIT_SIGNING_KEY_SOURCE": "env"}}],
            "generations": [{"id": "2026-11-20", "state": "active", "createdAt": "2026-11-20T10:00:00Z",
                             "activatedAt": "2026-11-20T12:00:00Z"}],
        },
    }


def test_deployment_patch_sets_env_after_the_key_is_published(project):
    config = cluster_only("staging")
    keysets(config).update(signing_keysets())
    run = Engine(project, "staging", config=config).up()

    patch = run.named("atlas-gateway-delivery-atlas-atlas-gateway-patch")
    obj = plain(patch.inputs)
    validate_patch(obj)
    assert obj["metadata"] == {"name": "atlas-gateway", "namespace": "atlas",
                               "annotations": {PATCH_FORCE_ANNOTATION: "true"}}
    assert obj["spec"]["template"]["spec"]["containers"] == [
        {"name": "atlas-gateway", "env": [{"name": "SIGNING_KEY_ID", "value": "atlas-2026-11-23"}]}]
    # The switch waits for both documents that publish the new key.
    published = {r.urn for r in run.resources.values()
                 if r.type in (PUBLICATION, CONFIG_MAP) and "atlas-gateway" in r.urn}
    assert len(published) == 2 and published <= set(patch.options.dependencies)

    manager = plain(run.named("audit-signing-delivery-agent-manager-agent-manager-patch").inputs)
    validate_patch(manager)
    [container] = manager["spec"]["template"]["spec"]["containers"]
    assert container == {"name": "manager", "env": [
        {"name": "AUDIT_SIGNER_KID", "value": "audit-rotation-2026-11-20"},
        {"name": "AUDIT_SIGNING_ALG", "value": "rsa-sha256"},
        {"name": "AUDIT_SIGNING_KEY_SOURCE", "value": "env"},
        {"name": "AUDIT_SIGNING_PRIVATE_KEY", "valueFrom": {"secretKeyRef": {
            "name": "agent-manager-audit-signing", "key": "AUDIT_SIGNING_PRIVATE_KEY"}}},
    ]}
    # The private key reaches the pod only through the Secret this program owns.
    key = run.named("audit-signing-delivery-agent-manager-agent-manager-audit-signing-secret")
    private = next(k for k in run.of_type(SOFTWARE_KEY) if k.outputs["keyset"] == "audit-signing")
    assert secret_env(run, key.name) == {"AUDIT_SIGNING_PRIVATE_KEY": private.outputs["private_key"].value}
    assert "BEGIN PRIVATE KEY" not in json.dumps(public_part(run.named(
        "audit-signing-delivery-agent-manager-agent-manager-patch").inputs))


def test_configmap_target_holds_the_public_document_only(project):
    config = cluster_only("staging")
    keysets(config).update(signing_keysets())
    run = Engine(project, "staging", config=config).up()

    [config_map] = [r for r in run.of_type(CONFIG_MAP)]
    validate(config_map)
    obj = plain(config_map.inputs)
    assert (obj["metadata"]["namespace"], obj["metadata"]["name"]) == ("atlas", "atlas-jwks")
    jwks = json.loads(obj["data"]["jwks.json"])
    assert [k["kid"] for k in jwks["keys"]] == ["atlas-2026-11-16", "atlas-2026-11-23"]
    assert documents.private_members(jwks) == []
    # The same document as the file publication, byte for byte; no publisher runs for the ConfigMap.
    assert obj["data"]["jwks.json"] == (project / "published/atlas/jwks.json").read_text()
    assert [p.inputs["target"] for p in run.of_type(PUBLICATION) if "atlas" in p.inputs["target"]] == [
        "file://published/atlas/jwks.json"]
    assert run.outputs["keysets"]["atlas-gateway"]["documents"]["configmap://atlas/atlas-jwks"] == {
        "format": "jwks", "target": "configmap://atlas/atlas-jwks", "firstPublished": None}


# ---------------------------------------------------------------------------------------------
# Removing a consumer


def test_removing_a_consumer_removes_only_its_own_objects(project):
    config = cluster_only("staging")
    keysets(config)["reporter"] = other_keyset()
    keysets(config)[SS]["consumers"].append(
        {"deployment": "aether/reporter", "env": {"SS_KID": "kid"}, "material": {"SS_KEY": "material"}})
    engine = Engine(project, "staging", config=config)
    first = engine.up()
    assert {op for op, _ in first.operations} == {"create"}

    del keysets(config)[SS]["consumers"][1]
    second = engine.up()

    deleted = {urn for op, urn in second.operations if op == "delete"}
    assert deleted == {first.named(f"{SS}-delivery-aether-reporter-patch").urn,
                       first.named(f"{SS}-delivery-aether-reporter-secrets-service-secret").urn}
    assert {op for op, urn in second.operations if urn not in deleted} == {"same"}
    # The reporter keyset's own patch of the same Deployment stays untouched.
    assert op_of(second, "reporter-delivery-aether-reporter-patch") == "same"

    del keysets(config)[SS]["consumers"][0]
    third = engine.up()
    deleted = {urn for op, urn in third.operations if op == "delete"}
    assert deleted == {first.named(n).urn for n in (SS_SECRET, SS_PATCH, f"{SS}-delivery")}
    assert {op for op, urn in third.operations if urn not in deleted} == {"same"}


# ---------------------------------------------------------------------------------------------
# Alerts


def published_series(config: dict, stack: str) -> list:
    """Every keyset's `metrics` document, as the program builds it (keyrotation/metrics.py), read back."""
    from keyrotation.commands.records import kid_of
    from keyrotation.view import view
    from tests.promql_engine import series_of

    parsed = from_config_map(config, stack_file=f"Pulumi.{stack}.yaml")
    out = []
    for ks in parsed.keysets.values():
        records = [documents.KeyRecord(e, kid=kid_of(parsed, ks, e.generation), algorithm=ks.algorithm,
                                       public_pem=None) for e in view(ks).entries]
        out += series_of(documents.render(documents.build("metrics", records, ks)))
    return out


def fires(expr: str, at: datetime, series: list) -> float | None:
    """Evaluate an alert expression with Prometheus' engine over the published series: the alert's
    value, or None when it does not fire."""
    from tests.promql_engine import evaluate

    vector = evaluate(series, [expr], [at])[(at, expr)]
    assert len(vector) <= 1, vector
    return vector[0][1] if vector else None


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_alerts_fire_at_the_keysets_own_thresholds(project, stack):
    config = cluster_only(stack)
    keysets(config).update(signing_keysets())
    run = Engine(project, stack, config=config).up()

    [rule] = run.of_type(PROMETHEUS_RULE)
    obj = plain(rule.inputs)
    validate_prometheus_rule(obj)
    assert obj["metadata"]["namespace"] == "aether"
    groups = {g["name"]: {r.get("alert", r.get("record")): r for r in g["rules"]}
              for g in obj["spec"]["groups"]}
    parsed = from_config_map(config, stack_file=f"Pulumi.{stack}.yaml")
    assert set(groups) == {f"key-rotation.{name}" for name in [SS, *signing_keysets()]}
    series = published_series(config, stack)
    second = timedelta(seconds=1)
    for name in [*signing_keysets(), SS]:
        ks = keysets(config)[name]
        maximum = ks.get("maxAgeDays", 90)
        warn = ks.get("warnDays", 14)
        active = next(g for g in ks["generations"] if g["state"] == "active")
        activated = parse_time(active["activatedAt"])
        newest = max(parse_time(g["createdAt"]) for g in ks["generations"])
        rules = groups[f"key-rotation.{name}"]
        for alert, start, days in (("KeyAgeApproachingMax", activated, maximum - warn),
                                   ("KeyAgeBeyondMax", activated, maximum),
                                   ("NoKeyRotation", newest, maximum - warn)):
            at = start + timedelta(days=days)
            assert fires(rules[alert]["expr"], at - second, series) is None, (name, alert)
            assert fires(rules[alert]["expr"], at, series) == pytest.approx(days), (name, alert)
            assert rules[alert]["labels"]["keyset"] == name
        assert fires(rules["KeyRotationMetricsAbsent"]["expr"], activated, series) is None
        assert fires(rules["KeyRotationMetricsAbsent"]["expr"], activated, []) == 1
        assert rules["KeyAgeBeyondMax"]["labels"]["severity"] == "critical"
    # The same times as the lifecycle's own verdict on the shipped keyset.
    shipped = parsed.keysets[SS]
    active_since = shipped.active.activated_at
    assert active_since is not None
    age = lifecycle.key_age(shipped.generations, shipped.timings, now=active_since)
    assert age.warn_at is not None and age.due_at is not None
    rules = groups[f"key-rotation.{SS}"]
    assert fires(rules["KeyAgeApproachingMax"]["expr"], age.warn_at, series)
    assert not fires(rules["KeyAgeApproachingMax"]["expr"], age.warn_at - second, series)
    assert fires(rules["KeyAgeBeyondMax"]["expr"], age.due_at, series)
    assert not fires(rules["KeyAgeBeyondMax"]["expr"], age.due_at - second, series)


def test_alerts_follow_the_rotation_and_are_optional(project):
    config = cluster_only("staging")
    engine = Engine(project, "staging", config=config)

    def beyond_max() -> str:
        [rule] = engine.up().of_type(PROMETHEUS_RULE)
        return next(r["expr"] for r in plain(rule.inputs)["spec"]["groups"][0]["rules"]
                    if r.get("alert") == "KeyAgeBeyondMax")

    before = beyond_max()
    due = datetime.fromisoformat("2027-01-31T10:00:00+00:00")  # 2026-11-02T10:00Z + 90 days
    series = published_series(config, "staging")
    assert fires(before, due, series) and not fires(before, due - timedelta(hours=1), series)
    gens = {g["id"]: g for g in keysets(config)[SS]["generations"]}
    gens["2026-q4"].update(state="retiring", retiringAt="2027-01-20T10:00:00Z")
    keysets(config)[SS]["generations"].append({"id": "2027-q1", "state": "active",
                                               "createdAt": "2027-01-20T09:00:00Z",
                                               "activatedAt": "2027-01-20T10:00:00Z"})
    # The rule holds no time: the rotation changes the published series, and the alert follows them.
    after = beyond_max()
    assert after == before
    series = published_series(config, "staging")
    assert not fires(after, due, series) and fires(after, due + timedelta(days=80), series)

    config["key-rotation:kubernetes"]["alerts"] = {"namespace": "monitoring", "labels": {"release": "prom"}}
    [rule] = engine.up().of_type(PROMETHEUS_RULE)
    assert plain(rule.inputs)["metadata"]["namespace"] == "monitoring"
    assert plain(rule.inputs)["metadata"]["labels"]["release"] == "prom"
    del config["key-rotation:kubernetes"]["alerts"]
    run = engine.up()
    assert run.of_type(PROMETHEUS_RULE) == []
    assert [op for op, urn in run.operations if op == "delete"] == ["delete", "delete"]  # rule + component


def test_a_keyset_without_material_in_state_delivers_its_ids(project):
    """An HSM-held (external) key: only ids reach the cluster, and the rollout follows them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def pem() -> str:
        return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    config = cluster_only("staging")
    keysets(config)["hsm"] = {
        "purpose": "sign", "algorithm": "ES256", "backend": "external", "kid": "hsm-{generation}",
        "consumers": [{"secret": "aether/hsm-ids", "data": {"HSM_KID": "kid", "HSM_KEY": "keyId"},
                       "restart": ["aether/verifier"]},
                      {"deployment": "aether/signer", "env": {"SIGNER_KID": "kid"}}],
        "generations": [{"id": "a", "state": "active", "createdAt": T0_HSM, "activatedAt": T0_HSM,
                         "publicKeyPem": pem()}],
    }
    engine = Engine(project, "staging", config=config)
    run = engine.up()
    assert secret_env(run, "hsm-delivery-aether-hsm-ids-secret") == {"HSM_KID": "hsm-a", "HSM_KEY": "hsm/a"}
    patch = plain(run.named("hsm-delivery-aether-signer-patch").inputs)
    env = patch["spec"]["template"]["spec"]["containers"]
    assert env == [{"name": "signer", "env": [{"name": "SIGNER_KID", "value": "hsm-a"}]}]
    before = rollout_checksum(run, "hsm-delivery-aether-verifier-patch", "hsm")

    gens = keysets(config)["hsm"]["generations"]
    gens[0].update(state="retiring", retiringAt="2026-11-10T00:00:00Z")
    gens.append({"id": "b", "state": "active", "createdAt": "2026-11-09T00:00:00Z",
                 "activatedAt": "2026-11-10T00:00:00Z", "publicKeyPem": pem()})
    run = engine.up()
    assert secret_env(run, "hsm-delivery-aether-hsm-ids-secret") == {"HSM_KID": "hsm-b", "HSM_KEY": "hsm/b"}
    assert rollout_checksum(run, "hsm-delivery-aether-verifier-patch", "hsm") != before



def test_preview_plans_the_objects_before_any_key_exists(project):
    run = Engine(project, "staging").preview()
    planned = {(op, run.resources[urn].type) for op, urn in run.operations}
    assert planned >= {("create", SECRET), ("create", DEPLOYMENT_PATCH), ("create", PROMETHEUS_RULE),
                       ("create", PROVIDER)}
    # Keys are made at `up`: the Secret's data and the checksum are unknown, not empty or made up.
    data = run.named(SS_SECRET).inputs.get("data", UNKNOWN)
    assert plain(data) == UNKNOWN
    annotations = run.named(SS_PATCH).inputs["spec"]["template"]["metadata"]["annotations"]
    assert annotations.get(checksum_annotation(SS), UNKNOWN) == UNKNOWN
