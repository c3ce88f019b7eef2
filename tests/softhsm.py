"""A SoftHSM2 token of its own for a test: config, token directory and PIN in a temp dir.

SoftHSM2 is Debian's `softhsm2` (installed by scripts/test.sh and .ci/run). Where it is missing
the tests skip, except where scripts/test.sh promised it (KEY_ROTATION_REQUIRE_PULUMI=1).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


@dataclass(frozen=True)
class Token:
    conf: Path
    module: str
    label: str
    pin: str

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}


def module_path() -> str | None:
    return next((m for m in MODULES if os.path.isfile(m)), None)


STACK_TOKEN = "stellaops-signer"
"""The token label Pulumi.staging.yaml and Pulumi.production.yaml name (their PKCS#11 HSM)."""


def installed() -> bool:
    return module_path() is not None and shutil.which("softhsm2-util") is not None


def copy_token(template: Token, directory: Path) -> Token:
    """A token of its own for one test: a copy of an initialised one (cheaper than initialising)."""
    tokens = directory / "tokens"
    shutil.copytree(template.conf.parent / "tokens", tokens)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    return Token(conf, template.module, template.label, template.pin)


def init_token(directory: Path, label: str = STACK_TOKEN) -> Token:
    module = module_path()
    if module is None or shutil.which("softhsm2-util") is None:
        why = "SoftHSM2 is not installed (apt-get install softhsm2; scripts/test.sh does it)"
        if os.environ.get("KEY_ROTATION_REQUIRE_PULUMI") == "1":
            pytest.fail(why)
        pytest.skip(why)
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    pin = secrets.token_hex(4)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", secrets.token_hex(4),
         "--pin", pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)}, check=True, capture_output=True, timeout=60,
    )
    return Token(conf, module, label, pin)
