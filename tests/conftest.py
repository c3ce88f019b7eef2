"""Fixtures shared by the tests that run the real program, and the Hypothesis profiles.

Property tests run with a fixed seed by default (profile ``ci``: the same examples on every run,
so CI passes or fails on the code, never on chance). ``HYPOTHESIS_PROFILE=long`` (what
``scripts/test-long.sh`` and the nightly workflow job use) runs many more examples with random
seeds; a counterexample it finds is then pinned with ``@example`` in the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.project import copy_project

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=300, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# `random`: the CI budget with a random seed (`HYPOTHESIS_PROFILE=random pytest -m property
# --hypothesis-seed=N` reproduces a run); `long`: many examples, random seed (the nightly job).
settings.register_profile(
    "random", derandomize=False, deadline=None, max_examples=300, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", derandomize=False, deadline=None, max_examples=5000, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of the project: file publications land in it, never in the working tree."""
    return copy_project(tmp_path / "project")


# ---------------------------------------------------------------------------------------------
# The emulated clouds (tests/kms_emulators.py), for the modules that deploy to AWS or Cloud KMS


@pytest.fixture(scope="module")
def servers():
    """moto (S3, KMS) and the GCS emulator, once per test module."""
    from tests.kms_emulators import cloud_servers

    with cloud_servers() as running:
        yield running


@pytest.fixture
def clouds(servers):
    """Both clouds behind one Engine; the Cloud KMS emulator serves ``KMS_TEST_PROJECT``."""
    from tests.kms_emulators import KMS_TEST_PROJECT, Clouds

    return Clouds(servers, gcp_project=KMS_TEST_PROJECT)


@pytest.fixture
def bucket() -> str:
    """A bucket of its own per test: a module shares its servers."""
    import uuid

    return f"trust-{uuid.uuid4().hex[:12]}"
