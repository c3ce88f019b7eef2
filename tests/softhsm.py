"""SoftHSM2 tokens for the tests: one initialised per run, a copy of it per engine or test.

SoftHSM2 is Debian's `softhsm2` (scripts/install-system-packages.sh installs it). Every harness
Engine (tests/engine.py) runs the program against a token of its own, labelled as the staging and
production stack files' PKCS#11 token, with SOFTHSM2_CONF and PKCS11_PIN set for its runs.
SoftHSM reads SOFTHSM2_CONF when the module is initialised, so switching tokens in one process
re-initialises the module (:func:`activate`).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.project import saved_environment

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
STACK_TOKEN = "stellaops-signer"
"""The token label Pulumi.staging.yaml and Pulumi.production.yaml name (their PKCS#11 HSM)."""


@dataclass(frozen=True)
class Token:
    conf: Path
    module: str
    label: str
    pin: str

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf), "PKCS11_PIN": self.pin}


def module_path() -> str | None:
    return next((m for m in MODULES if os.path.isfile(m)), None)


def installed() -> bool:
    return module_path() is not None and shutil.which("softhsm2-util") is not None


def _conf(directory: Path) -> Path:
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = "
                    "ERROR\n")
    return conf


def init_token(directory: Path, label: str = STACK_TOKEN) -> Token:
    """Initialise a token in ``directory``; skips (or, under scripts/test.sh, fails) without SoftHSM2."""
    module = module_path()
    if module is None or shutil.which("softhsm2-util") is None:
        why = "SoftHSM2 is not installed (apt-get install softhsm2; scripts/test.sh does it)"
        if os.environ.get("KEY_ROTATION_REQUIRE_PULUMI") == "1":
            pytest.fail(why)
        pytest.skip(why)
    (directory / "tokens").mkdir(parents=True)
    conf = _conf(directory)
    pin = secrets.token_hex(4)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", secrets.token_hex(4),
         "--pin", pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)}, check=True, capture_output=True, timeout=60,
    )
    return Token(conf, module, label, pin)


_template: Token | None = None
_active_conf: str | None = None


def _scratch() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="key-rotation-softhsm-"))
    atexit.register(shutil.rmtree, directory, True)
    return directory


def new_token() -> Token | None:
    """A fresh token of its own (a copy of the run's initialised one); None without SoftHSM2."""
    global _template
    if not installed():
        return None
    if _template is None:
        _template = init_token(_scratch())
    directory = _scratch()
    shutil.copytree(_template.conf.parent / "tokens", directory / "tokens")
    return Token(_conf(directory), _template.module, _template.label, _template.pin)


def activate(token: Token) -> None:
    """Make ``token`` the one this process's SoftHSM2 module serves."""
    global _active_conf
    import pkcs11

    os.environ["SOFTHSM2_CONF"] = str(token.conf)
    lib = pkcs11.lib(token.module)  # the first load initialises with SOFTHSM2_CONF
    if _active_conf is not None and _active_conf != str(token.conf):
        lib.reinitialize()
    _active_conf = str(token.conf)


@contextmanager
def active(token: Token | None) -> Iterator[None]:
    """``token`` active, with SOFTHSM2_CONF and PKCS11_PIN set, for the duration (an engine run)."""
    if token is None:
        yield
        return
    with saved_environment("SOFTHSM2_CONF", "PKCS11_PIN"):
        os.environ.setdefault("PKCS11_PIN", token.pin)
        activate(token)
        yield
