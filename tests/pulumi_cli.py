"""The real Pulumi CLI for the tests: where it is, and a private project copy to run it on.

`bash scripts/test.sh` (and so CI) puts the pinned CLI and its Python language host on PATH through
`scripts/install-pulumi.sh`, and sets KEY_ROTATION_REQUIRE_PULUMI=1 when it did: then a test that
needs the CLI fails instead of skipping. Elsewhere (a machine with neither Go nor the CLI) those
tests skip with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.project import ROOT, copy_project

CLI_GO_MOD = ROOT / "tools/pulumi/cli/go.mod"


def pinned_version() -> str:
    """The CLI version the project builds and tests against (tools/pulumi/cli/go.mod)."""
    match = re.search(r"github\.com/pulumi/pulumi/pkg/v3\s+(v\S+)", CLI_GO_MOD.read_text())
    assert match, f"{CLI_GO_MOD}: no version of github.com/pulumi/pulumi/pkg/v3"
    return match.group(1)


def _version(binary: Path) -> str:
    try:
        done = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30,
                              check=False)
    except OSError:
        return ""
    return done.stdout.strip()


def find_bin_dir() -> tuple[Path | None, str]:
    """The directory holding the pinned `pulumi` and `pulumi-language-python`, or why there is none."""
    version = pinned_version()
    candidates = []
    on_path = shutil.which("pulumi")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates.append(ROOT / ".pulumi-cli" / version / "bin")
    seen = []
    for directory in candidates:
        cli = directory / "pulumi"
        if not cli.exists():
            continue
        found = _version(cli)
        seen.append(f"{cli} is {found or 'unknown'}")
        host = directory / "pulumi-language-python"
        if found == version and (host.exists() or shutil.which("pulumi-language-python")):
            return directory, ""
    why = f"the Pulumi CLI {version} is not installed (run `bash scripts/install-pulumi.sh`)"
    return None, why + (f"; {', '.join(seen)}" if seen else "")


def require_bin_dir() -> Path:
    """The CLI's directory; skips the test without it, or fails it where CI promised one."""
    directory, why = find_bin_dir()
    if directory is None:
        if os.environ.get("KEY_ROTATION_REQUIRE_PULUMI") == "1":
            pytest.fail(f"KEY_ROTATION_REQUIRE_PULUMI=1 but {why}")
        pytest.skip(why)
    return directory


class CommandFailed(AssertionError):
    pass


@dataclass
class PulumiProject:
    """A private copy of the project with its own file backend, run by the real CLI.

    ``pulumi(...)`` runs the CLI, ``keyrotation(...)`` the rotation commands, both in the copy with
    the same environment, the way a user runs them from the project directory.
    """

    dir: Path
    bin_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, tmp_path: Path, bin_dir: Path, stack: str = "dev") -> PulumiProject:
        project = copy_project(tmp_path / "project")
        # The program runs in the project's own virtualenv (Pulumi.yaml: virtualenv: .venv).
        venv = Path(sys.prefix)
        (project / ".venv").symlink_to(venv, target_is_directory=True)
        state = tmp_path / "state"
        home = tmp_path / "pulumi-home"
        state.mkdir()
        home.mkdir()
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("PULUMI_", "KEY_ROTATION_NOW", "HYPOTHESIS"))
        }
        env.update({
            # The language host runs `python3` from PATH: the project's virtualenv comes first.
            "PATH": os.pathsep.join([str(venv / "bin"), str(bin_dir), env.get("PATH", "")]),
            "PULUMI_HOME": str(home),
            "PULUMI_BACKEND_URL": f"file://{state}",
            # The dev-only passphrase whose salt Pulumi.dev.yaml carries (scripts/up-dev.sh).
            "PULUMI_CONFIG_PASSPHRASE": "key-rotation-dev",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "NO_COLOR": "1",
        })
        env.pop("VIRTUAL_ENV", None)
        created = cls(project, bin_dir, env)
        created.pulumi("stack", "init", stack, "--secrets-provider", "passphrase")
        return created

    def run(self, command: list[str], *, check: bool = True, timeout: float = 600,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra_env or {})}
        done = subprocess.run(command, cwd=self.dir, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise CommandFailed(
                f"`{' '.join(command)}` exited {done.returncode}\n--- stdout\n{done.stdout}\n--- "
                f"stderr\n{done.stderr}"
            )
        return done

    def pulumi(self, *args: str, check: bool = True, extra_env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.bin_dir / "pulumi"), *args, "--non-interactive"], check=check,
                        extra_env=extra_env)

    def pulumi_json(self, *args: str) -> Any:
        return json.loads(self.pulumi(*args, "--json").stdout)

    def keyrotation(self, *args: str, check: bool = True, extra_env: dict[str, str] | None = None
                    ) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-m", "keyrotation", *args], check=check, extra_env=extra_env)

    def up(self, stack: str = "dev", *args: str) -> subprocess.CompletedProcess[str]:
        return self.pulumi("up", "--yes", "--skip-preview", "--stack", stack, *args)

    def outputs(self, stack: str = "dev") -> dict[str, Any]:
        return self.pulumi_json("stack", "output", "--stack", stack)

    def export(self, stack: str = "dev", *, show_secrets: bool = False) -> dict[str, Any]:
        args = ["stack", "export", "--stack", stack] + (["--show-secrets"] if show_secrets else [])
        return json.loads(self.pulumi(*args).stdout)
