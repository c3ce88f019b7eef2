"""Fuzzing the shipped stack files: every mutation is refused with a message, or accepted and then runs.

Hypothesis mutates Pulumi.{dev,staging,production}.yaml structurally (a value replaced by a hostile
one, a key deleted or renamed) and textually (YAML syntax, anchors, tags, control characters,
key material spliced in). The property: the one validator either refuses the file with a
ConfigError naming it, or accepts it, and then the commands (status, plan, timeline, rotate)
and, for the dev stack, the real program under the engine run without an unexpected error.

The normal suite runs a modest number of examples with a fixed seed (Hypothesis profile ``ci``);
the nightly job runs thousands with random seeds (``bash scripts/test-long.sh``, profile ``long``).
"""

from __future__ import annotations

import copy
import io
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from keyrotation import config, stacktext
from keyrotation.commands import cli, schedule, timeline
from tests.project import ROOT, STACKS, copy_project

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
SHIPPED = {stack: (ROOT / f"Pulumi.{stack}.yaml").read_text() for stack in STACKS}
DOCUMENTS = {stack: stacktext.read(text, stack) for stack, text in SHIPPED.items()}

HOSTILE = st.sampled_from([
    True, False, None, 0, -1, 1, 7.5, 1e20, 1e30, 10**30, "", " ", "yes", "no", "null", "~", "1e20",
    "1700000000", "2026-11-23", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2060-01-01T00:00:00Z",
    "2026-11-23T09:00:00", "2026-11-23T09:00:00Z", "banana", "../..", "/etc/passwd", "file:///etc/passwd",
    "file://published/", "file://Pulumi.dev.yaml", "file://published/x.json", "s3://b/", "s3://Bucket/k",
    "gs://goog/x", "configmap://ns/name", "a\x00b", "a\nb", "x\u200b", "\u202ex", "x ", "{generation:.2}",
    "{generation}", "{keyset}-{generation}", "thumbprint", "x" * 200, "active", "retired", "revoked",
    "pending",
    "EdDSA", "RS256", "HS256", "A256GCM", "sign", "encrypt", "external", "aws-kms", "gcp-kms", "software",
    "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n", '{"kty": "oct", "k": "c2VjcmV0"}',
    [], {}, ["x"], {"a": 1}, {"kty": "EC", "d": "x"},
    [{"format": "jwks", "target": "file://published/j.json"}],
])
VALUES = st.one_of(HOSTILE, st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
))
SNIPPETS = st.sampled_from([
    ":", ": ", "- ", "-", "&a ", "*a", "<<: *a", "!!binary ", "!!python/object:os.system ", "!x ", "\n", "  ",
    "\t", "{", "}", "[", "]", "'", '"', "#", "|", ">", "?", ",", "\x00", "\x07", "\r", "\u202e", "\u2028",
    "\ufeff", "key-rotaton:", "2026-13-01T00:00:00Z", "9999", "-----BEGIN PRIVATE KEY-----", "\u00e9",
])


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*path, index))


@st.composite
def mutated(draw) -> tuple[str, str]:
    stack = draw(st.sampled_from(STACKS))
    text = SHIPPED[stack]
    if draw(st.booleans()):
        document = copy.deepcopy(DOCUMENTS[stack])
        paths = [p for p in _paths(document["config"]) if p]
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths))
            holder = document["config"]
            try:
                for part in path[:-1]:
                    holder = holder[part]
                action = draw(st.sampled_from(["set", "set", "delete", "rename"]))
                if action == "set":
                    holder[path[-1]] = draw(VALUES)
                elif action == "delete":
                    del holder[path[-1]]
                elif isinstance(holder, dict):
                    holder[draw(st.sampled_from([" ", "", "x", str(path[-1]) + " ",
                                                 "key-rotaton:keysets"]))] = (
                        holder.pop(path[-1]))
            except (KeyError, IndexError, TypeError):
                continue
        out = io.StringIO()
        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = draw(st.sampled_from([False, None]))
        yaml.dump(document, out)
        text = out.getvalue()
    for _ in range(draw(st.integers(0 if text != SHIPPED[stack] else 1, 3))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        insert = draw(st.one_of(SNIPPETS, st.text(max_size=6)))
        text = text[:at] + insert + text[at + cut:]
    return stack, text


_engine_runs = {"left": 200 if LONG else 3}


def check(stack: str, text: str, tmp: Path) -> None:
    name = f"Pulumi.{stack}.yaml"
    try:
        stack_config = config.load(name, text=text, now=NOW)
    except config.ConfigError as error:
        message = str(error)
        assert message.startswith(f"{name}: invalid key-rotation configuration"), message
        assert "Traceback" not in message
        return
    # Accepted: what the commands compute from it runs.
    schedule.status(stack_config, NOW, {})
    schedule.plan(stack_config, NOW, {})
    timeline.svg(stack_config, NOW)
    timeline.mermaid(stack_config, NOW)
    path = tmp / name
    path.write_bytes(text.encode("utf-8"))
    for argv in (["status"], ["plan"], ["rotate", next(iter(stack_config.keysets))]):
        err = io.StringIO()
        code = cli.main([*argv, "--file", str(path), "--now", "2026-11-25T12:00:00Z", "--no-outputs"],
                        io.StringIO(), err)
        assert "internal error" not in err.getvalue(), err.getvalue()
        assert code in (0, 1, schedule.EXIT_WARNING, schedule.EXIT_OVERDUE, schedule.EXIT_GAP), err.getvalue()
    # And the program itself, under the engine (dev only: no cloud emulators needed).
    if stack == "dev" and _engine_runs["left"] > 0:
        _engine_runs["left"] -= 1
        _run_program(text, tmp)


def _run_program(text: str, tmp: Path) -> None:
    from tests.engine import Engine, ProgramFailed

    project = copy_project(tmp / f"project-{_engine_runs['left']}")
    (project / "Pulumi.dev.yaml").write_bytes(text.encode("utf-8"))
    os.environ["KEY_ROTATION_NOW"] = "2026-11-25T12:00:00Z"
    try:
        Engine(project, "dev").up()
    except ProgramFailed as failure:
        # Accepted config, refused deployment: only for a reason the program states, never a crash.
        message = str(failure) + "\n".join(failure.errors)
        assert "Traceback" not in message, message
    finally:
        del os.environ["KEY_ROTATION_NOW"]


SETTINGS: dict[str, Any] = dict(database=None, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                       HealthCheck.function_scoped_fixture])


@pytest.mark.property
@settings(max_examples=5000 if LONG else 120, **SETTINGS)
@given(mutated())
def test_a_mutated_stack_file_is_refused_with_a_message_or_runs(tmp_path_factory: pytest.TempPathFactory,
                                                                case: tuple[str, str]) -> None:
    check(*case, tmp_path_factory.mktemp("fuzz"))
