"""Fixtures shared by the tests that run the real program."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.project import copy_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of the project: file publications land in it, never in the working tree."""
    return copy_project(tmp_path / "project")
