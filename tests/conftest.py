"""Fixtures shared by the tests that run the real program."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import softhsm
from tests.project import copy_project


@pytest.fixture(scope="session")
def _token_template(tmp_path_factory):
    return softhsm.init_token(tmp_path_factory.mktemp("softhsm-template")) if softhsm.installed() else None


@pytest.fixture(autouse=True)
def softhsm_token(_token_template, tmp_path_factory, monkeypatch):
    """Every test has a SoftHSM2 token of its own, labelled as the staging and production stack
    files' PKCS#11 token, with SOFTHSM2_CONF and PKCS11_PIN set (the engine runs inherit them)."""
    if _token_template is None:
        yield None
        return
    from keyrotation import pkcs11_token

    token = softhsm.copy_token(_token_template, tmp_path_factory.mktemp("softhsm"))
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    monkeypatch.setenv("PKCS11_PIN", token.pin)
    pkcs11_token.reload()
    yield token


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of the project: file publications land in it, never in the working tree."""
    return copy_project(tmp_path / "project")
