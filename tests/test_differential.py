"""The harness answers to the engine: the same dev scenario under tests/engine.py and the real CLI.

Each step (up, rotate, promote, retire, a publish target removed) edits the stack file of two
copies of the project the same way; one runs under the harness, the other under the pinned Pulumi
CLI. After each preview the planned steps are compared (`pulumi preview --json` against the
harness's operations), after each up the state: URNs, types, parents, protect and the other
recorded options, non-secret inputs and outputs, which of them are secret, and the stack outputs.

Keys are random in each run, so values derived from key material (PEMs, JWK members, thumbprints,
fingerprints, content hashes) are compared by which key they belong to, not by their bytes; the
clock both publishers read is pinned with KEY_ROTATION_NOW.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.engine import Engine, Secret
from tests.project import copy_project
from tests.pulumi_cli import PulumiProject, require_bin_dir

pytestmark = [pytest.mark.cli, pytest.mark.slow]

NOW = "2026-11-30T12:00:00Z"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SOFTWARE_KEY = "pulumi-python:dynamic/keys:SoftwareKey"
# What the engine records per resource and the harness too (Options); the rest (created/modified
# times, source positions, the provider reference) has no counterpart in the harness.
OPTION_FIELDS = {"protect": "protect", "parent": "parent", "retainOnDelete": "retain_on_delete",
                 "deletedWith": "deleted_with", "additionalSecretOutputs": "additional_secret_outputs"}
KEY_DERIVED = ("public_key_pem", "thumbprint", "fingerprint")


# -- the scenario --------------------------------------------------------------------------------

def _edit(stack_file: Path, change: Callable[[dict], None]) -> None:
    yaml = YAML()
    document = yaml.load(stack_file.read_text())
    change(document["config"]["key-rotation:keysets"])
    with stack_file.open("w") as out:
        yaml.dump(document, out)


def _generation(keysets: dict, keyset: str, gid: str) -> dict:
    return next(g for g in keysets[keyset]["generations"] if g["id"] == gid)


def rotate(keysets: dict) -> None:
    keysets["atlas-gateway"]["generations"].append(
        {"id": "2026-11-30", "state": "pending", "createdAt": "2026-11-30T09:00:00Z"})


def promote(keysets: dict) -> None:
    _generation(keysets, "atlas-gateway", "2026-11-23").update(state="retiring",
                                                               retiringAt="2026-11-30T09:10:00Z")
    _generation(keysets, "atlas-gateway", "2026-11-30").update(state="active",
                                                               activatedAt="2026-11-30T09:10:00Z")


def retire(keysets: dict) -> None:
    _generation(keysets, "atlas-gateway", "2026-11-16").update(state="retired",
                                                               retiredAt="2026-11-30T10:20:00Z")


def remove_target(keysets: dict) -> None:
    publish = keysets["signer-default"]["publish"]
    publish[:] = [p for p in publish if p["format"] != "key-history"]


STEPS = [("rotate", rotate), ("promote", promote), ("retire", retire),
         ("remove a publish target", remove_target)]


# -- normalising what each engine recorded -------------------------------------------------------

_PEM = re.compile(r"-----BEGIN [A-Z ]+-----[^-]+-----END [A-Z ]+-----\n?")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]{40,}$")
_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))


def _jws_lines(text: str) -> list[tuple[str, str]] | None:
    """The (header, payload) JSON texts of JSON Lines of compact JWS, or None when it is not that."""
    out = []
    for line in text.split("\n"):
        if not _JWS.match(line):
            return None
        header, payload, _signature = line.split(".")
        try:
            decoded = _b64(header).decode(), _b64(payload).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not decoded[0].startswith("{"):
            return None
        out.append(decoded)
    return out or None


class Normaliser:
    """Replaces key-derived values by the URN and field of the key they come from."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def learn(self, urn: str, outputs: dict[str, Any]) -> None:
        for field in KEY_DERIVED:
            value = outputs.get(field)
            if isinstance(value, str) and value:
                self.names[value] = f"<{field} of {urn.rsplit('::', 1)[-1]}>"

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            if "payloadType" in value and "signatures" in value:  # a DSSE envelope: what it signs, by whom
                return {"payloadType": value["payloadType"], "payload": self(_b64(value["payload"]).decode()),
                        "signatures": [self(sig["keyid"]) for sig in value["signatures"]]}
            return {(self(k) if isinstance(k, str) else k): self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, str):
            return value
        if value in self.names:
            return self.names[value]
        stripped = value.strip()
        jws = _jws_lines(stripped)
        if jws is not None:  # compact JWS lines: what each signs and its header, not the signature
            return [{"header": self(header), "payload": self(payload)} for header, payload in jws]
        if stripped[:1] in "{[":
            try:
                return {"<json>": self(json.loads(stripped))}
            except json.JSONDecodeError:
                pass
        for known, name in self.names.items():
            if len(known) > 20 and known in value:
                value = value.replace(known, name)
        value = _PEM.sub("<pem>", value)
        if _HEX.match(value):
            return "<sha256>"
        if _B64URL.match(value):
            return "<key bytes>"
        return value


def _real_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


def _real_view(project: PulumiProject, normalise: Normaliser) -> dict[str, dict]:
    resources = project.export()["deployment"]["resources"]
    for r in resources:
        if r["type"] == SOFTWARE_KEY:
            normalise.learn(r["urn"], r.get("outputs") or {})
    view = {}
    for r in resources:
        if r["type"].startswith("pulumi:providers:") or r["type"] == "pulumi:pulumi:Stack":
            # The default provider: the harness keeps no provider resources. The root stack's
            # outputs are the stack outputs, compared on their own.
            continue
        view[r["urn"]] = {
            "type": r["type"],
            "options": {field: r.get(field) or None for field in OPTION_FIELDS},
            "inputs": normalise({k: "<secret>" if _real_secret(v) else v
                                 for k, v in (r.get("inputs") or {}).items() if k != "__provider"}),
            "outputs": normalise({k: "<secret>" if _real_secret(v) else v
                                  for k, v in (r.get("outputs") or {}).items() if k != "__provider"}),
        }
    return view


def _harness_view(engine: Engine, normalise: Normaliser) -> dict[str, dict]:
    resources = engine.resources
    for urn, r in resources.items():
        if r.type == SOFTWARE_KEY:
            normalise.learn(urn, {k: v for k, v in r.outputs.items() if not isinstance(v, Secret)})
    view = {}
    for urn, r in resources.items():
        options = {field: getattr(r.options, attr) or None for field, attr in OPTION_FIELDS.items()}
        view[urn] = {
            "type": r.type,
            "options": options,
            "inputs": normalise({k: "<secret>" if isinstance(v, Secret) else v
                                 for k, v in r.inputs.items() if k != "__provider"}),
            "outputs": normalise({k: "<secret>" if isinstance(v, Secret) else v
                                  for k, v in r.outputs.items() if k != "__provider"}),
        }
    return view


def _real_plan(project: PulumiProject) -> dict[str, set[str]]:
    preview = project.pulumi_json("preview", "--stack", "dev")
    plan: dict[str, set[str]] = {}
    for step in preview["steps"]:
        # `--json` lists every step that changes something (and the root stack's); unchanged ones
        # are counted in the change summary.
        if step["op"] != "same" and not step["urn"].split("::")[-2].startswith("pulumi:providers:"):
            plan.setdefault(step["op"], set()).add(step["urn"])
    plan["same-count"] = {str(preview.get("changeSummary", {}).get("same", 0))}
    return plan


def _harness_plan(engine: Engine) -> dict[str, set[str]]:
    run = engine.preview()
    plan: dict[str, set[str]] = {}
    for op, urn in [*run.operations, *([run.stack_operation] if run.stack_operation else [])]:
        plan.setdefault(op, set()).add(urn)
    same = plan.pop("same", set())
    plan["same-count"] = {str(len(same))}
    return plan


def _differences(real: dict[str, dict], harness: dict[str, dict]) -> list[str]:
    out = []
    for urn in sorted(set(real) | set(harness)):
        if urn not in harness:
            out.append(f"only the engine has {urn}")
        elif urn not in real:
            out.append(f"only the harness has {urn}")
        else:
            for aspect in ("type", "options", "inputs", "outputs"):
                if real[urn][aspect] != harness[urn][aspect]:
                    out.append(f"{urn} {aspect}:\n  engine:  {real[urn][aspect]}\n  harness: "
                               f"{harness[urn][aspect]}")
    return out


# -- the test ------------------------------------------------------------------------------------

@pytest.fixture
def both(tmp_path, monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", NOW)
    real = PulumiProject.create(tmp_path / "real", require_bin_dir())
    real.env["KEY_ROTATION_NOW"] = NOW
    harness = Engine(copy_project(tmp_path / "harness" / "project"), "dev")
    return real, harness


def test_the_harness_and_the_engine_agree_on_the_dev_scenario(both):
    real, harness = both
    steps = [("up", None), *STEPS]
    for name, change in steps:
        if change is not None:
            for stack_file in (real.dir / "Pulumi.dev.yaml", harness.project_dir / "Pulumi.dev.yaml"):
                _edit(stack_file, change)
        real_plan, harness_plan = _real_plan(real), _harness_plan(harness)
        assert real_plan == harness_plan, f"{name}: the previews plan different steps:\n" + "\n".join(
            f"  {op}: engine only {sorted(real_plan.get(op, set()) - harness_plan.get(op, set()))},"
            f" harness only {sorted(harness_plan.get(op, set()) - real_plan.get(op, set()))}"
            for op in sorted(set(real_plan) | set(harness_plan)))
        real.up()
        run = harness.up()
        normalise = Normaliser()
        real_view, harness_view = _real_view(real, normalise), _harness_view(harness, normalise)
        differences = _differences(real_view, harness_view)
        assert not differences, f"after {name}:\n" + "\n".join(differences)
        real_outputs = real.pulumi_json("stack", "output", "--stack", "dev")
        harness_outputs = {k: "[secret]" if k in run.secret_outputs else v for k, v in run.outputs.items()}
        assert normalise(real_outputs) == normalise(harness_outputs), f"after {name}: stack outputs differ"
