"""The Pulumi versions the project builds, tests and deploys with agree with each other."""

from __future__ import annotations

import re
import shutil
import subprocess

from packaging.version import Version

from tests.project import ROOT
from tests.pulumi_cli import pinned_version


def test_the_cli_build_module_pins_pkg_and_sdk_at_the_same_version():
    go_mod = (ROOT / "tools/pulumi/cli/go.mod").read_text()
    sdk = re.search(r"github\.com/pulumi/pulumi/sdk/v3\s+(v\S+)", go_mod)
    assert sdk and sdk.group(1) == pinned_version()


def test_the_workflows_deploy_with_the_cli_the_tests_run():
    workflow = (ROOT / ".github/workflows/pulumi-stack.yml").read_text()
    versions = re.findall(r"pulumi-version:\s*(\S+)", workflow)
    assert versions and set(versions) == {pinned_version().removeprefix("v")}


def test_the_cli_is_not_older_than_the_python_sdk_it_runs():
    requirement = re.search(r"^pulumi>=([\d.]+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert requirement
    assert Version(pinned_version().removeprefix("v")) >= Version(requirement.group(1))


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
