"""Helpers for tests that run the real program: a private copy of the project, stack configs."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
STACKS = ("dev", "staging", "production")
_IGNORE = shutil.ignore_patterns(".venv", ".git", "published", ".pulumi-state", "__pycache__", "*.pyc",
                                 ".pytest_cache", ".hypothesis", ".ruff_cache", "tests", "bench", "docs",
                                 ".softhsm",
                                 ".pulumi-cli", "tools")


HSM_MODULE = "/opt/cloudhsm/lib/libcloudhsm_pkcs11.so"
"""The PKCS#11 module staging and production name; tests run those stacks against SoftHSM2."""


def _local_hsm(text: str) -> str:
    from tests.softhsm import module_path

    return text.replace(HSM_MODULE, module_path() or HSM_MODULE)


def copy_project(destination: Path) -> Path:
    """The program, its packages and stack files copied to ``destination``.

    File publications are relative to the project directory, so each test writes its documents
    into its own copy, never into the working tree. The stack files' PKCS#11 module becomes
    SoftHSM2's (the test's own token: tests/conftest.py).
    """
    shutil.copytree(ROOT, destination, ignore=_IGNORE, dirs_exist_ok=True)
    for stack in STACKS:
        path = destination / f"Pulumi.{stack}.yaml"
        path.write_text(_local_hsm(path.read_text()))
    return destination


def stack_config(stack: str) -> dict[str, Any]:
    """The ``config:`` map of ``Pulumi.<stack>.yaml``, as plain data a test may modify."""
    document = YAML(typ="safe").load(_local_hsm((ROOT / f"Pulumi.{stack}.yaml").read_text()))
    return copy.deepcopy(document["config"])


def generations(*states: str, prefix: str = "g") -> list[dict[str, Any]]:
    """A generation history with the given states, oldest first, in a gap-free order."""
    out = []
    for index, state in enumerate(states):
        day = 10 + index * 3
        g: dict[str, Any] = {"id": f"{prefix}{index + 1}", "state": state,
                             "createdAt": f"2026-11-{day:02d}T09:00:00Z"}
        if state in ("active", "retiring", "retired", "destroyed"):
            g["activatedAt"] = f"2026-11-{day:02d}T10:00:00Z"
        if state in ("retiring", "retired", "destroyed"):
            g["retiringAt"] = f"2026-11-{day + 3:02d}T10:00:00Z"
        if state in ("retired", "destroyed"):
            g["retiredAt"] = f"2026-11-{day + 4:02d}T10:00:00Z"
        if state == "destroyed":
            g["destroyedAt"] = f"2026-11-{day + 5:02d}T10:00:00Z"
        if state == "revoked":
            g.update(revokedAt=f"2026-11-{day + 1:02d}T10:00:00Z", revokeReason="compromise")
        out.append(g)
    return out


@contextmanager
def saved_environment(*keys: str) -> Iterator[None]:
    """The environment variables ``keys`` as they were, back after the block (unset if they were)."""
    saved = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def config_refusal(data: dict[str, Any], stack_file: str = "Pulumi.test.yaml") -> str:
    """The validator's whole message for a stack config it refuses (fails the test if it accepts)."""
    import pytest

    from keyrotation.config import ConfigError, parse

    with pytest.raises(ConfigError) as info:
        parse(data, stack_file=stack_file)
    return str(info.value)
