"""`--json` is a contract: every command's output, success, refusal or error, validates against its
JSON Schema (schemas/<command>.schema.json, draft 2020-12), carries schemaVersion and exitCode and
absolute paths; refusals say from when the step is allowed; kids are real or say why unknown.

Commands run through keyrotation.cli.main on copies of the shipped stack files and small synthetic
ones, with the stack outputs of a `pulumi up` after every change (tests/deployed.py) or without.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jsonschema import Draft202012Validator

from keyrotation import keys, lifecycle, times
from keyrotation.commands import cli, contract
from keyrotation.config import load_stack_file
from keyrotation.identifiers import kid_needs_key
from tests.deployed import deployed_kid, write_outputs
from tests.json_schemas import schemas, validate

ROOT = Path(__file__).resolve().parents[1]
NOW = "2026-11-28T12:00:00Z"


def subcommands() -> list[str]:
    parser = cli.build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


class Runner:
    """Runs commands on one stack file, with the deployed outputs unless told otherwise, and
    validates every JSON output against the command's schema."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, set[str]] = {}

    def __call__(self, *args: str, now: str = NOW, outputs: bool = True) -> tuple[int, dict]:
        out, err = io.StringIO(), io.StringIO()
        extra = ["--no-outputs"]
        if outputs:
            extra = ["--outputs", str(write_outputs(self.path, self.path.with_name("outputs.json")))]
        code = cli.main([*args, "--json", "--file", str(self.path), "--now", now, *extra], out=out, err=err)
        document = json.loads(out.getvalue())
        command = args[0]
        validate(document, command)
        assert document["schemaVersion"] == contract.SCHEMA_VERSION
        assert document["exitCode"] == code
        assert document["command"] == command
        assert document["file"] == str(self.path.resolve())
        if outputs:
            assert document["outputsFile"] == str(self.path.with_name("outputs.json").resolve())
        self.seen.setdefault(command, set()).add("error" if "error" in document else "result")
        if "error" in document:
            assert err.getvalue() == f"error: {document['error']}\n"
        return code, document


@pytest.fixture
def dev(tmp_path: Path) -> Runner:
    path = tmp_path / "Pulumi.dev.yaml"
    shutil.copy(ROOT / "Pulumi.dev.yaml", path)
    return Runner(path)


# ---------------------------------------------------------------------------------------------
# The schemas themselves


def test_every_schema_is_a_valid_draft_2020_12_schema():
    shipped = schemas()
    assert len(shipped) >= 14
    for name, schema in shipped.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("command", subcommands())
def test_every_command_has_a_schema_that_admits_its_result_and_its_errors(command):
    path = contract.schema_path(command)
    assert path.is_file(), f"{command} has no JSON Schema: add schemas/{command}.schema.json (docs/json.md)"
    schema = json.loads(path.read_text())
    assert {"$ref": "error.schema.json"} in schema["oneOf"]
    result = schema["$defs"]["result"]
    assert result["properties"]["command"] == {"const": command}


def test_schemas_refuse_what_the_contract_forbids():
    """The schemas can fail: a relative path, a missing exitCode, a placeholder-free kid check."""
    good = {"schemaVersion": 1, "command": "status", "exitCode": 1, "file": "/tmp/Pulumi.dev.yaml",
            "now": "2026-11-28T12:00:00Z", "outputsFile": None, "error": "x", "allowedFrom": None}
    validate(good, "status")
    for bad in ({"file": "Pulumi.dev.yaml"}, {"schemaVersion": 2}, {"allowedFrom": "tomorrow"},
                {"exitCode": 0}):
        with pytest.raises(Exception, match="is not valid"):
            validate({**good, **bad}, "status")
    missing = dict(good)
    del missing["exitCode"]
    with pytest.raises(Exception, match="is not valid"):
        validate(missing, "status")


# ---------------------------------------------------------------------------------------------
# Reports on the shipped stacks


@pytest.mark.parametrize("name", ["dev", "staging", "production"])
@pytest.mark.parametrize("outputs", [True, False])
def test_reports_on_every_shipped_stack_validate(tmp_path, monkeypatch, name, outputs):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"Pulumi.{name}.yaml"
    shutil.copy(ROOT / f"Pulumi.{name}.yaml", path)
    run = Runner(path)
    code, status = run("status", outputs=outputs)
    assert code in (0, 3, 4) and status["keysets"]
    code, plan = run("plan", outputs=outputs)
    assert code in (0, 5)
    for keyset in plan["keysets"]:
        assert keyset["steps"], keyset["keyset"]
        for step in keyset["steps"]:
            # Objects a bot can act on; the command line is built from them.
            assert step["keyset"] == keyset["keyset"]
            expected = [step["command"], *([step["keyset"]] if step["command"] != "pulumi up" else []),
                        *([step["generation"]]
                          if step["generation"] and step["command"] != "pulumi up" else [])]
            assert step["commandLine"].split()[:len(expected)] == expected
    code, picture = run("timeline", "--svg", "t.svg", "--mermaid", "t.md", outputs=outputs)
    assert code == 0
    assert picture["svg"] == str((tmp_path / "t.svg").resolve())
    assert picture["mermaidFile"] == str((tmp_path / "t.md").resolve())
    stack = load_stack_file(path)
    for keyset in stack.keysets.values():
        generation = keyset.generations[-1]
        code, validity = run("valid-at", keyset.name, generation.id, outputs=outputs)
        assert code in (0, 6)
        if validity["kid"] is None:
            assert not outputs and kid_needs_key(keyset.kid) and keyset.backend != "external"
            assert "known once it is deployed" in validity["kidUnknownReason"]
        else:
            assert "thumbprint of '" not in validity["kid"]
            assert validity["kid"] == deployed_kid(stack, keyset, generation)


def test_plan_steps_are_objects_with_the_earliest_time(dev):
    code, plan = dev("plan", "atlas-gateway")
    [atlas] = plan["keysets"]
    retire = next(s for s in atlas["steps"] if s["command"] == "retire" and s["generation"] == "2026-11-16")
    assert retire == {"command": "retire", "keyset": "atlas-gateway", "generation": "2026-11-16",
                      "from": NOW, "commandLine": "retire atlas-gateway 2026-11-16", "why": retire["why"]}
    rotate = next(s for s in atlas["steps"] if s["command"] == "rotate")
    assert rotate["generation"] is None and rotate["commandLine"] == "rotate atlas-gateway"


# ---------------------------------------------------------------------------------------------
# Every editing command: its result, its refusals with allowedFrom, its errors


def test_every_editing_command_and_its_refusals(dev):
    stack = load_stack_file(dev.path)
    atlas = stack.keysets["atlas-gateway"]

    code, rotated = dev("rotate", "atlas-gateway")
    assert code == 0 and rotated["written"] is True
    assert rotated["kids"] == [{"generation": "2026-11-28", "kid": "atlas-2026-11-28",
                                "kidSource": "kid template", "kidUnknownReason": None}]

    # promote before the publish lead: refused, allowed from when the lifecycle says.
    code, refused = dev("promote", "atlas-gateway", now="2026-11-28T12:01:00Z")
    assert code == 1 and "refused" in refused["error"]
    new = load_stack_file(dev.path).keysets["atlas-gateway"].generation("2026-11-28")
    expected = lifecycle.earliest_promote(new, atlas.timings, {new.id: new.created_at})
    assert refused["allowedFrom"] == times.format_time(expected) == "2026-11-28T12:06:00Z"

    promote_at = times.format_time(expected)
    code, promoted = dev("promote", "atlas-gateway", now=promote_at)
    assert code == 0
    assert {k["generation"]: k["kid"] for k in promoted["kids"]} == {
        "2026-11-23": "atlas-2026-11-23", "2026-11-28": "atlas-2026-11-28"}
    assert {k["kidSource"] for k in promoted["kids"]} == {"stack outputs"}

    # retire before the overlap since the deployed promote: refused, allowed from the overlap's end.
    code, refused = dev("retire", "atlas-gateway", "2026-11-23", now=promote_at)
    assert code == 1
    promoted_ks = load_stack_file(dev.path).keysets["atlas-gateway"]
    old = promoted_ks.generation("2026-11-23")
    overlap_end = lifecycle.earliest_retire(promoted_ks.generations, old, atlas.timings,
                                            times.parse(promote_at))
    assert overlap_end is not None
    assert refused["allowedFrom"] == times.format_time(overlap_end)

    # revoke for a reason other than compromise while its signatures are valid: refused until then.
    code, refused = dev("revoke", "atlas-gateway", "2026-11-23", "--reason", "superseded", now=promote_at)
    assert code == 1 and refused["allowedFrom"] == times.format_time(overlap_end)
    code, revoked = dev("revoke", "atlas-gateway", "2026-11-23", "--reason", "compromise", "--dry-run",
                        now=promote_at)
    assert code == 0 and revoked["written"] is False

    code, rolled = dev("rollback", "atlas-gateway", "--dry-run", now=promote_at)
    assert code == 0 and {c["generation"] for c in rolled["changes"]} == {"2026-11-23", "2026-11-28"}

    code, retired = dev("retire", "atlas-gateway", "2026-11-16", now=promote_at)
    assert code == 0 and retired["changes"][0]["new"] == "retired"

    # secrets-service: retire waits for the re-encryption (no time makes it allowed by itself).
    code, refused = dev("retire", "secrets-service", "q3", now=promote_at)
    assert code == 1 and refused["allowedFrom"] is None
    code, rewrapped = dev("rewrapped", "secrets-service", "q3", "--by", "alice", now=promote_at)
    assert code == 0 and rewrapped["changes"][0]["field"] == "rewrapped"

    code, restored = dev("restore", "atlas-gateway", "2026-11-09", "--dry-run", now=promote_at)
    assert code == 0 and restored["changes"][0]["new"] == "retiring"

    code, refused = dev("destroy", "atlas-gateway", "2026-11-09", now=promote_at)
    assert code == 1 and "--confirm 2026-11-09" in refused["error"] and refused["allowedFrom"] is None
    code, destroyed = dev("destroy", "atlas-gateway", "2026-11-09", "--confirm", "2026-11-09", now=promote_at)
    assert code == 0 and destroyed["changes"][0]["new"] == "destroyed"

    assert set(dev.seen) == {"rotate", "promote", "retire", "revoke", "rollback", "rewrapped", "restore",
                             "destroy"}


def test_rewrapped_before_writers_switched_says_from_when(dev):
    code, _ = dev("promote", "atlas-gateway", now=NOW)  # nothing pending: an error without a time
    assert code == 1
    ks = load_stack_file(dev.path).keysets["secrets-service"]
    q3 = ks.generation("q3")
    stopped = lifecycle.stopped_at(q3)
    assert stopped is not None
    code, refused = dev("rewrapped", "secrets-service", "q3", "--by", "alice", now="2026-11-02T09:31:00Z")
    assert code == 1
    assert refused["allowedFrom"] == times.format_time(stopped + lifecycle.signer_lag(ks.timings))


def test_an_edit_dated_after_the_clock_is_allowed_from_the_clock_minus_the_skew(dev, monkeypatch):
    monkeypatch.setattr(cli, "wall_clock", lambda: times.parse(NOW))
    code, refused = dev("rotate", "atlas-gateway", now="2026-11-28T13:00:00Z")
    assert code == 1 and "later than the clock" in refused["error"]
    skew = load_stack_file(dev.path).keysets["atlas-gateway"].timings.clock_skew_seconds
    assert refused["allowedFrom"] == times.format_time(
        times.parse("2026-11-28T13:00:00Z") - timedelta(seconds=skew))


# ---------------------------------------------------------------------------------------------
# Errors


def test_errors_have_the_envelope_too(dev, tmp_path):
    code, unknown = dev("status", "no-such-keyset")
    assert code == 1 and "no keyset 'no-such-keyset'" in unknown["error"]

    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["plan", "--json", "--file", str(dev.path), "--now", "yesterday"], out=out, err=err)
    document = json.loads(out.getvalue())
    validate(document, "plan")
    assert (code, document["exitCode"], document["now"]) == (2, 2, None)
    assert document["file"] == str(dev.path.resolve())

    out = io.StringIO()
    code = cli.main(["status", "--json"], out=out, err=io.StringIO())
    document = json.loads(out.getvalue())
    validate(document, "status")
    assert (code, document["file"]) == (2, None)

    # argparse's own usage errors too.
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["promote", "--json", "--file", str(dev.path)], out=out, err=err)
    document = json.loads(out.getvalue())
    validate(document, "promote")
    assert (code, document["exitCode"]) == (2, 2)
    assert document["error"] == "the following arguments are required: KEYSET"
    assert "usage: key-rotation promote" in err.getvalue()

    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_text("config:\n  key-rotation:environment: dev\n"
                      "  key-rotation:keysets: {x: {purpose: nope}}\n")
    code, invalid = Runner(broken)("plan", outputs=False)
    assert code == 1 and invalid["file"] == str(broken.resolve())


# ---------------------------------------------------------------------------------------------
# Kids: real, computed, or unknown with the reason


EXTERNAL = """\
config:
  key-rotation:environment: lab
  key-rotation:keysets:
    hsm-signer:
      purpose: sign
      algorithm: ES256
      backend: external
      publish:
        - {{format: jwks, target: "file://published/hsm/jwks.json"}}
      generations:
        - id: "2026"
          state: active
          createdAt: "2026-01-01T00:00:00Z"
          activatedAt: "2026-01-02T00:00:00Z"
          publicKeyPem: |
{pem}
"""


def test_an_external_keys_kid_is_its_rfc_7638_thumbprint(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(EXTERNAL.format(pem="\n".join(" " * 12 + line for line in pem.strip().splitlines())))
    code, validity = Runner(path)("valid-at", "hsm-signer", "2026", now="2026-06-01T00:00:00Z", outputs=False)
    assert code == 0
    assert validity["kid"] == keys.thumbprint(pem) and len(validity["kid"]) == 43
    assert validity["kidSource"] == "thumbprint of the public key in the stack file"


def test_a_generated_keys_thumbprint_is_unknown_without_the_outputs_and_read_from_them(dev):
    code, unknown = dev("valid-at", "manifest-signing", "v3", outputs=False)
    assert code == 0
    assert (unknown["kid"], unknown["kidSource"]) == (None, None)
    assert unknown["kidUnknownReason"].startswith(
        "the thumbprint of a generated key is known once it is deployed")
    code, known = dev("valid-at", "manifest-signing", "v3")
    stack = load_stack_file(dev.path)
    assert known["kid"] == deployed_kid(stack, stack.keysets["manifest-signing"], stack.keysets[
        "manifest-signing"].generation("v3"))
    assert known["kidSource"] == "stack outputs"


def test_status_lists_every_generations_real_kid_or_why_it_is_unknown(dev):
    stack = load_stack_file(dev.path)
    ks = stack.keysets["manifest-signing"]
    _, unknown = dev("status", outputs=False)
    [manifest] = [k for k in unknown["keysets"] if k["keyset"] == "manifest-signing"]
    assert {g["id"]: g["kid"] for g in manifest["generations"]} == {g.id: None for g in ks.generations}
    assert all("known once it is deployed" in g["kidUnknownReason"] for g in manifest["generations"])
    _, known = dev("status")
    [manifest] = [k for k in known["keysets"] if k["keyset"] == "manifest-signing"]
    assert {g["id"]: (g["kid"], g["kidSource"]) for g in manifest["generations"]} == {
        g.id: (deployed_kid(stack, ks, g), "stack outputs") for g in ks.generations}
    [gateway] = [k for k in known["keysets"] if k["keyset"] == "atlas-gateway"]
    assert [g["kid"] for g in gateway["generations"]] == [f"atlas-{g.id}" for g in stack.keysets[
        "atlas-gateway"].generations]
