"""Backend pkcs11 against a real PKCS#11 implementation: a SoftHSM2 token initialised per test run.

The program runs under the real Pulumi engine (its dynamic provider in the engine's own process),
keys are generated in the token, a JWT signed in the token with the active generation verifies
with PyJWT against the published JWKS, the private key's attributes are read on the token, and
the state holds nothing private.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from ruamel.yaml import YAML

from keyrotation import config, pkcs11_token
from tests.pulumi_cli import PulumiProject, require_bin_dir
from tests.softhsm import Token, activate, init_token, new_token

PKCS11_KEY = "pulumi-python:dynamic/keys:Pkcs11Key"


@pytest.fixture
def token(monkeypatch) -> Token:
    """A SoftHSM2 token of the test's own, active in this process (its in-process checks) and named
    by SOFTHSM2_CONF for the engine runs."""
    made = new_token() or init_token(Path("/nonexistent"))
    monkeypatch.setenv("SOFTHSM2_CONF", str(made.conf))
    activate(made)
    return made


def _where(token: Token, keyset: str, generation: str | None = None) -> pkcs11_token.Where:
    return pkcs11_token.Where(token.module, token.label, keyset, generation)


# ---------------------------------------------------------------------------------------------
# The token module on its own


def test_generated_private_key_stays_in_the_token(token):
    where = _where(token, f"unit-{uuid.uuid4().hex[:6]}", "g1")
    pem = pkcs11_token.generate(where, token.pin, "EC", "P-256", 2048)
    assert "PUBLIC KEY" in pem and "PRIVATE" not in pem
    attributes = pkcs11_token.private_attributes(where, token.pin)
    assert attributes == {"TOKEN": True, "PRIVATE": True, "SENSITIVE": True, "EXTRACTABLE": False,
                          "SIGN": True, "ALWAYS_SENSITIVE": True, "NEVER_EXTRACTABLE": True}
    assert pkcs11_token.public_pem(where, token.pin, "EC", "P-256") == pem
    assert pkcs11_token.apply_state(where, token.pin, "retired") == "cannot-sign"
    assert pkcs11_token.private_attributes(where, token.pin)["SIGN"] is False
    with pytest.raises(pkcs11_token.TokenError, match="already in the token"):
        pkcs11_token.generate(where, token.pin, "EC", "P-256", 2048)
    assert pkcs11_token.apply_state(where, token.pin, "destroyed") == "destroyed"
    with pytest.raises(pkcs11_token.TokenError, match="no longer in the token"):
        pkcs11_token.public_pem(where, token.pin, "EC", "P-256")


def test_rsa_keys_are_generated_too(token):
    where = _where(token, f"unit-{uuid.uuid4().hex[:6]}", "r1")
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(pkcs11_token.generate(where, token.pin, "RSA", None, 3072).encode())
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    pkcs11_token.destroy(where, token.pin)


@pytest.mark.parametrize("change, message", [
    ({"pin": "wrong-pin"}, "the PIN is wrong"),
    ({"pin": ""}, "no PIN"),
    ({"token": "no-such-token"}, "no such token"),
    ({"module": "/nonexistent/libpkcs11.so"}, "module does not exist"),
])
def test_token_errors_name_keyset_generation_and_token(token, change, message):
    where = pkcs11_token.Where(change.get("module", token.module), change.get("token", token.label), "ks",
                               "g7")
    with pytest.raises(pkcs11_token.TokenError) as raised:
        pkcs11_token.check(where, change.get("pin", token.pin))
    text = str(raised.value)
    assert message in text
    assert "keyset 'ks', generation 'g7'" in text and f"token '{where.token}'" in text
    assert token.pin not in text


def test_the_uri_names_token_object_id_and_module(token):
    uri = _where(token, "signer", "2026").uri()
    assert uri == (f"pkcs11:token={token.label};object=signer%2F2026;id=%73%69%67%6e%65%72%2f%32%30%32%36"
                   f";type=private?module-path={token.module}")


# ---------------------------------------------------------------------------------------------
# The stack file


def _config(keyset: dict, **top) -> dict:
    return {"key-rotation:environment": "hsm", "key-rotation:keysets": {"signer": keyset}, **top}


def _signer(**extra) -> dict:
    return {"purpose": "sign", "algorithm": "ES256", "backend": "pkcs11", "generations": [
        {"id": "g1", "state": "active", "createdAt": "2026-11-01T00:00:00Z",
         "activatedAt": "2026-11-01T01:00:00Z"}],
        **extra}


def test_pkcs11_needs_module_and_token():
    with pytest.raises(config.ConfigError) as raised:
        config.from_config_map(_config(_signer()), stack_file="Pulumi.hsm.yaml")
    assert "keyset 'signer', field 'pkcs11': is required for backend pkcs11" in str(raised.value)


def test_pkcs11_options_per_stack_or_keyset():
    options = {"module": "/usr/lib/softhsm/libsofthsm2.so", "token": "hsm"}
    stack = config.from_config_map(_config(_signer(), **{"key-rotation:pkcs11": options}),
                                   stack_file="Pulumi.hsm.yaml")
    signer = stack.keysets["signer"].pkcs11
    assert signer is not None and signer.token == "hsm"
    own = config.from_config_map(_config(_signer(pkcs11={**options, "token": "own"}),
                                         **{"key-rotation:pkcs11": options}), stack_file="Pulumi.hsm.yaml")
    own_signer = own.keysets["signer"].pkcs11
    assert own_signer is not None and own_signer.token == "own"


def test_pkcs11_refuses_algorithms_the_token_cannot_make():
    keyset = _signer(algorithm="EdDSA", pkcs11={"module": "/m.so", "token": "t"})
    with pytest.raises(config.ConfigError, match="backend pkcs11 generates ES256"):
        config.from_config_map(_config(keyset), stack_file="Pulumi.hsm.yaml")


def test_a_plain_text_pin_in_the_stack_file_is_refused(tmp_path):
    stack_file = tmp_path / "Pulumi.hsm.yaml"
    document = {"config": _config(_signer(pkcs11={"module": "/m.so", "token": "t"}),
                                  **{"key-rotation:pkcs11Pin": "123456"})}
    stack_file.write_text(json.dumps(document))
    with pytest.raises(config.ConfigError) as raised:
        config.load_stack_file(stack_file)
    assert "field 'pkcs11Pin': is in plain text" in str(raised.value)
    assert "123456" not in str(raised.value)
    document["config"]["key-rotation:pkcs11Pin"] = {"secure": "v1:abc"}
    stack_file.write_text(json.dumps(document))
    assert config.load_stack_file(stack_file).keysets["signer"].backend == "pkcs11"


# ---------------------------------------------------------------------------------------------
# Through the real engine


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class HsmStack:
    """A stack `hsm` in a project copy whose fips keyset lives in the test token."""

    def __init__(self, project: PulumiProject, token: Token, keyset: str):
        self.project, self.token, self.keyset = project, token, keyset
        self.file = project.dir / "Pulumi.hsm.yaml"
        now = datetime.now(UTC).replace(microsecond=0)
        self.t = {name: _iso(now - timedelta(days=days)) for name, days in
                  (("created", 6), ("activated", 5), ("created2", 3), ("retiring", 2), ("retired", 1))}

    def write(self, generations: list[dict]) -> None:
        yaml = YAML()
        old = (yaml.load(self.file.read_text()) if self.file.exists() else None) or {}
        salt = old.get("encryptionsalt")
        secure = (old.get("config") or {}).get("key-rotation:pkcs11Pin")
        document = {"config": {
            "key-rotation:environment": "hsm",
            "key-rotation:pkcs11": {"module": self.token.module, "token": self.token.label},
            "key-rotation:keysets": {self.keyset: {
                "purpose": "sign", "algorithm": "ES256", "backend": "pkcs11", "profile": "fips",
                "publish": [{"format": "jwks", "target": "file://published/hsm/jwks.json"},
                            {"format": "key-history", "target": "file://published/hsm/key-history.json"}],
                "generations": generations,
            }},
        }}
        if secure is not None:
            document["config"]["key-rotation:pkcs11Pin"] = secure
        if salt is not None:
            document["encryptionsalt"] = salt
        with self.file.open("w") as out:
            yaml.dump(document, out)

    def up(self, check: bool = True):
        return self.project.pulumi("up", "--yes", "--skip-preview", "--stack", "hsm", check=check)

    def jwks(self) -> dict:
        return json.loads((self.project.dir / "published/hsm/jwks.json").read_text())


@pytest.fixture
def hsm(tmp_path, token) -> HsmStack:
    project = PulumiProject.create(tmp_path, require_bin_dir(), stack="hsm")
    project.env.pop("PKCS11_PIN", None)
    stack = HsmStack(project, token, f"fips-{uuid.uuid4().hex[:8]}")
    t = stack.t
    stack.write([
        {"id": "g1", "state": "active", "createdAt": t["created"], "activatedAt": t["activated"]},
        {"id": "g2", "state": "pending", "createdAt": t["created2"]},
    ])
    project.pulumi("config", "set", "--secret", "--stack", "hsm", "key-rotation:pkcs11Pin", token.pin)
    return stack


def _sign_jwt_in_token(token: Token, where: pkcs11_token.Where, kid: str, claims: dict) -> str:
    from pkcs11 import Attribute, Mechanism, ObjectClass

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (b64(json.dumps({"alg": "ES256", "kid": kid, "typ": "JWT"}).encode()) + "."
                     + b64(json.dumps(claims).encode()))
    with pkcs11_token.session(where, token.pin) as sess:
        key = sess.get_key(object_class=ObjectClass.PRIVATE_KEY, label=where.label)
        assert key[Attribute.SIGN]
        # CKM_ECDSA signs the SHA-256 digest; its r || s output is the JWS ES256 signature.
        signature = key.sign(hashlib.sha256(signing_input.encode()).digest(), mechanism=Mechanism.ECDSA)
    return signing_input + "." + b64(signature)


def _state_text(project: PulumiProject) -> str:
    return json.dumps(project.export(stack="hsm", show_secrets=True))


def test_keys_are_generated_in_the_token_and_sign_what_the_jwks_verifies(hsm):
    hsm.up()
    outputs = hsm.project.outputs("hsm")["keysets"][hsm.keyset]
    active = _where(hsm.token, hsm.keyset, "g1")
    assert outputs["activeKeyId"] == active.label
    assert outputs["activeKeyName"] == active.uri()
    assert outputs["backend"] == "pkcs11"
    jwks = hsm.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [g["kid"] for g in outputs["generations"]]
    for generation in ("g1", "g2"):
        attributes = pkcs11_token.private_attributes(_where(hsm.token, hsm.keyset, generation), hsm.token.pin)
        assert attributes["TOKEN"] and attributes["PRIVATE"] and attributes["SENSITIVE"]
        assert not attributes["EXTRACTABLE"] and attributes["NEVER_EXTRACTABLE"]

    kid = outputs["activeKid"]
    token = _sign_jwt_in_token(hsm.token, active, kid, {"sub": "ci", "iss": "hsm"})
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    assert jwt.decode(token, key.key, algorithms=["ES256"]) == {"sub": "ci", "iss": "hsm"}

    # The leak scan: no private key anywhere in the state, not even with secrets shown. The PIN is
    # there only as the engine keeps every secret config value a provider is configured with: on
    # the dynamic provider's own resource, encrypted (the key resources never see it).
    assert "PRIVATE KEY" not in _state_text(hsm.project)
    deployment = hsm.project.export(stack="hsm")["deployment"]
    assert hsm.token.pin not in json.dumps(deployment)
    shown = hsm.project.export(stack="hsm", show_secrets=True)["deployment"]["resources"]
    assert [r["type"] for r in shown if hsm.token.pin in json.dumps(r)] == ["pulumi:providers:pulumi-python"]
    resources = [r for r in deployment["resources"] if r["type"] == PKCS11_KEY]
    assert len(resources) == 2 and all(r.get("protect") for r in resources)
    for r in resources:
        assert {"label", "key_id", "public_key_pem", "uri"} <= r["outputs"].keys()
        assert not {"private_key", "pin", "d"} & r["outputs"].keys()

    # A second run changes nothing: the keys are not generated again.
    hsm.project.pulumi("preview", "--stack", "hsm", "--expect-no-changes")
    assert hsm.jwks() == jwks


def test_retired_keys_cannot_sign_and_destroyed_keys_leave_the_token(hsm):
    hsm.up()
    t = hsm.t
    g1 = {"id": "g1", "createdAt": t["created"], "activatedAt": t["activated"], "retiringAt": t["retiring"]}
    g2 = {"id": "g2", "state": "active", "createdAt": t["created2"], "activatedAt": t["retiring"]}
    hsm.write([{**g1, "state": "retired", "retiredAt": t["retired"]}, g2])
    hsm.up()
    old = _where(hsm.token, hsm.keyset, "g1")
    assert pkcs11_token.private_attributes(old, hsm.token.pin)["SIGN"] is False
    assert pkcs11_token.private_attributes(_where(hsm.token, hsm.keyset, "g2"), hsm.token.pin)["SIGN"] is True

    now = _iso(datetime.now(UTC).replace(microsecond=0))
    hsm.write([{**g1, "state": "destroyed", "retiredAt": t["retired"], "destroyedAt": now}, g2])
    hsm.up()
    with pytest.raises(pkcs11_token.TokenError, match="no longer in the token"):
        pkcs11_token.private_attributes(old, hsm.token.pin)
    history = json.loads((hsm.project.dir / "published/hsm/key-history.json").read_text())
    destroyed = next(e for e in history["keyHistory"] if e["generation"] == "g1")
    assert destroyed["state"] == "destroyed" and "PUBLIC KEY" in destroyed["publicKey"]


def test_a_wrong_pin_stops_the_run_before_any_resource(hsm):
    hsm.project.pulumi("config", "set", "--secret", "--stack", "hsm", "key-rotation:pkcs11Pin", "not-the-pin")
    done = hsm.up(check=False)
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert f"keyset '{hsm.keyset}', PKCS#11 token '{hsm.token.label}'" in text and "the PIN is wrong" in text
    assert "Traceback" not in text
    assert not [r for r in hsm.project.export(stack="hsm")["deployment"].get("resources", [])
                if r["type"] == PKCS11_KEY]


def test_a_key_gone_from_the_token_is_a_clear_error(hsm):
    hsm.up()
    pkcs11_token.destroy(_where(hsm.token, hsm.keyset, "g2"), hsm.token.pin)
    t = hsm.t
    hsm.write([
        {"id": "g1", "state": "retiring", "createdAt": t["created"], "activatedAt": t["activated"],
         "retiringAt": t["retiring"]},
        {"id": "g2", "state": "active", "createdAt": t["created2"], "activatedAt": t["retiring"]},
    ])
    done = hsm.up(check=False)
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert f"keyset '{hsm.keyset}', generation 'g2', PKCS#11 token '{hsm.token.label}'" in text
    assert "no longer in the token" in text


def test_the_pin_may_come_from_the_environment(hsm):
    hsm.project.pulumi("config", "rm", "--stack", "hsm", "key-rotation:pkcs11Pin")
    done = hsm.up(check=False)
    assert done.returncode != 0 and "no PIN" in done.stdout + done.stderr
    hsm.project.env["PKCS11_PIN"] = hsm.token.pin
    hsm.up()
    assert len(hsm.jwks()["keys"]) == 2
    assert Path(hsm.project.dir / "published/hsm/jwks.json").exists()



def test_consumers_find_a_pkcs11_key_by_label_and_uri_not_by_material():
    options = {"module": "/usr/lib/softhsm/libsofthsm2.so", "token": "hsm"}
    consumers = [{"deployment": "stellaops/signer",
                  "env": {"SIGNER_KEY_LABEL": "keyId", "SIGNER_KEY_URI": "keyName"}}]
    top = {"key-rotation:pkcs11": options, "key-rotation:kubernetes": {"context": "kind"}}
    stack = config.from_config_map(_config(_signer(consumers=consumers), **top), stack_file="Pulumi.hsm.yaml")
    consumer = stack.keysets["signer"].consumers[0]
    assert isinstance(consumer, config.DeploymentConsumer)
    assert consumer.env == {"SIGNER_KEY_LABEL": "keyId", "SIGNER_KEY_URI": "keyName"}
    material = [{"deployment": "stellaops/signer", "material": {"SIGNING_KEY": "material"}}]
    with pytest.raises(config.ConfigError, match="key material cannot be delivered from backend pkcs11"):
        config.from_config_map(_config(_signer(consumers=material), **top), stack_file="Pulumi.hsm.yaml")
