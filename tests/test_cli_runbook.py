"""docs/runbook.md shows the commands' real output: this test runs them again and compares.

Each ```console block in the runbook holds commands (`$ key-rotation ...`) followed by what they
printed (and `(exit N)` when N is not 0). They run in order, in a scratch directory holding a copy
of the project's Pulumi.dev.yaml; `<!-- runbook: fresh copy -->` starts again from the copy, and
`<!-- runbook: file NAME -->` before a fenced block writes that block to NAME first. The Pulumi
CLI is a stand-in: `pulumi stack output` reports the stack as deployed right after each edit (each
rotation PR merged and `pulumi up` run before the next command), as tests/deployed.py builds it.

When the dev stack or the commands change on purpose, regenerate the outputs:
    .venv/bin/python tests/test_cli_runbook.py --write
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "docs" / "runbook.md"
FENCE = re.compile(
    r"(<!-- runbook: (?P<marker>[^>]*?) -->\n+)?(?P<fence>`{3,})(?P<lang>\w*)\n(?P<body>.*?)(?P=fence)", re.S
)
ARTIFACTS = ("timeline-dev.svg",)
"""Files the runbook's commands write that docs/ keeps (the runbook shows them)."""


def _run(command: str, cwd: Path) -> str:
    from keyrotation.commands import cli, outputs

    argv = shlex.split(command)
    assert argv[0] == "key-rotation", command
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    from_pulumi = outputs.from_pulumi
    os.chdir(cwd)
    outputs.from_pulumi = _deployed_outputs
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main(argv[1:], out=out, err=err)
    finally:
        outputs.from_pulumi = from_pulumi
        os.chdir(previous)
    text = out.getvalue() + err.getvalue()
    return text + (f"(exit {code})\n" if code else "")


def _deployed_outputs(stack_name: str, cwd: Path, timeout: float = 60):  # noqa: ARG001
    from keyrotation.config import ConfigError, load_stack_file
    from tests.deployed import outputs_for

    try:
        stack = load_stack_file(cwd / f"Pulumi.{stack_name}.yaml")
    except (ConfigError, OSError):
        return None, "the stack has not been deployed"
    return outputs_for(stack), f"pulumi stack output --stack {stack_name}"


def render(text: str, scratch: Path) -> tuple[str, dict[str, str]]:
    """The runbook with every console block's output replaced by what the commands print now,
    and the artifacts (ARTIFACTS) they wrote."""
    source = ROOT / "Pulumi.dev.yaml"

    def fresh() -> None:
        for child in scratch.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        shutil.copy(source, scratch / "Pulumi.dev.yaml")

    fresh()
    artifacts: dict[str, str] = {}
    pieces: list[str] = []
    last = 0
    for match in FENCE.finditer(text):
        marker, lang, body = match.group("marker") or "", match.group("lang"), match.group("body")
        pieces.append(text[last:match.start()])
        last = match.end()
        if marker == "fresh copy":
            fresh()
        elif marker.startswith("file "):
            (scratch / marker.removeprefix("file ").strip()).write_text(body)
        if lang != "console":
            pieces.append(match.group(0))
            continue
        commands = [line[2:] for line in body.splitlines() if line.startswith("$ ")]
        output = "".join(f"$ {c}\n" + _run(c, scratch) for c in commands)
        head = match.group(0)[: match.start("body") - match.start()]
        pieces.append(f"{head}{output}{match.group('fence')}")
        artifacts.update({n: (scratch / n).read_text() for n in ARTIFACTS if (scratch / n).exists()})
    pieces.append(text[last:])
    return "".join(pieces), artifacts


def test_the_runbook_shows_what_the_commands_print(tmp_path):
    expected, artifacts = render(RUNBOOK.read_text(), tmp_path)
    if expected != RUNBOOK.read_text():
        import difflib

        diff = "".join(difflib.unified_diff(
            RUNBOOK.read_text().splitlines(keepends=True), expected.splitlines(keepends=True),
            "docs/runbook.md", "what the commands print now", n=1))
        raise AssertionError(
            "docs/runbook.md no longer shows the commands' real output (the dev stack or the commands"
            f" changed); regenerate with `.venv/bin/python tests/test_cli_runbook.py --write`:\n{diff}"
        )
    for name in ARTIFACTS:
        assert artifacts[name] == (ROOT / "docs" / name).read_text(), f"docs/{name} is out of date"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        rendered, artifacts = render(RUNBOOK.read_text(), Path(scratch))
        if "--write" in sys.argv:
            RUNBOOK.write_text(rendered)
            for name, content in artifacts.items():
                (ROOT / "docs" / name).write_text(content)
            print(f"wrote {RUNBOOK.relative_to(ROOT)}")
        else:
            sys.stdout.write(rendered)
