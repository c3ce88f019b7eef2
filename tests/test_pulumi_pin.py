"""The Pulumi versions the project builds, tests and deploys with agree with each other."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.project import ROOT
from tests.pulumi_cli import pinned_version, require_bin_dir


def test_the_cli_build_module_pins_pkg_and_sdk_at_the_same_version():
    go_mod = (ROOT / "tools/pulumi/cli/go.mod").read_text()
    sdk = re.search(r"github\.com/pulumi/pulumi/sdk/v3\s+(v\S+)", go_mod)
    assert sdk and sdk.group(1) == pinned_version()


def test_the_workflows_deploy_with_the_cli_the_tests_run():
    workflow = (ROOT / ".github/workflows/pulumi-stack.yml").read_text()
    versions = re.findall(r"pulumi-version:\s*(\S+)", workflow)
    assert versions and set(versions) == {pinned_version().removeprefix("v")}


def _sdk_pin() -> str:
    """The exact `pulumi==X` of requirements.txt: the SDK the harness is proven against."""
    pin = re.search(r"^pulumi==([\w.]+)\s*$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pin, "requirements.txt must pin the SDK exactly (pulumi==X), as tests/sdk_internals.py requires"
    return pin.group(1)


def test_the_python_sdk_is_pinned_exactly_and_installed_at_that_version():
    assert importlib.metadata.version("pulumi") == _sdk_pin()


def test_the_cli_is_not_older_than_the_python_sdk_it_runs():
    assert Version(pinned_version().removeprefix("v")) >= Version(_sdk_pin())


@pytest.mark.cli
def test_the_cli_that_runs_the_real_engine_tests_is_not_older_than_the_python_sdk():
    cli = require_bin_dir() / "pulumi"
    reported = subprocess.run([str(cli), "version"], capture_output=True, text=True, timeout=60, check=True)
    assert Version(reported.stdout.strip().removeprefix("v")) >= Version(_sdk_pin())


def test_every_installed_pulumi_package_accepts_the_pinned_sdk():
    for package in ("pulumi-aws", "pulumi-gcp", "pulumi-kubernetes", "pulumi-policy"):
        wanted = [Requirement(r) for r in importlib.metadata.requires(package) or []]
        on_sdk = [r for r in wanted if r.name == "pulumi" and r.marker is None]
        assert on_sdk, f"{package} declares no requirement on the pulumi SDK"
        for requirement in on_sdk:
            assert requirement.specifier.contains(_sdk_pin()), f"{package} requires {requirement}"


def test_without_go_or_a_cli_the_installer_says_what_to_install(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts/install-pulumi.sh", checkout / "scripts")
    shutil.copytree(ROOT / "tools", checkout / "tools")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    done = subprocess.run(["bash", "scripts/install-pulumi.sh"], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 127
    assert done.stdout == ""
    assert f"The Pulumi CLI {pinned_version()} is needed, and Go is not installed to build it." in done.stderr
    assert "install Go >= 1.26.6" in done.stderr and "pulumi-language-python" not in done.stdout
    assert not (checkout / ".pulumi-cli").exists(), "nothing half-installed"


def test_the_policy_sdk_whose_internals_the_pack_hooks_is_pinned_exactly():
    """policy/sdk_hooks.py leans on pulumi-policy's private servicer: a range would let CI run the pack
    on a servicer nobody has read."""
    pins = [Requirement(line) for line in (ROOT / "policy/requirements.txt").read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    [policy_sdk] = [r for r in pins if r.name == "pulumi-policy"]
    [spec] = list(policy_sdk.specifier)
    assert spec.operator == "==", f"pin pulumi-policy exactly, not {policy_sdk}"
    assert importlib.metadata.version("pulumi-policy") == spec.version
