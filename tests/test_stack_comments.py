"""The stack files' comments promise no overlap the timings do not enforce.

A comment above a keyset that states how long a previous key stays published must say what the
keyset's timings make `retire` wait for (the overlap), not a runbook's habit ("24-hour grace").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keyrotation.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))


def comments_above_keysets(path: Path) -> dict[str, str]:
    """keyset name -> the comment block right above it."""
    out: dict[str, str] = {}
    block: list[str] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped.lstrip("# "))
            continue
        match = re.fullmatch(r"    ([a-z0-9-]+):", line)
        if match and block:
            out[match.group(1)] = " ".join(block)
        block = []
    return out


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_comments_state_the_overlap_the_timings_enforce(path):
    stack = load_stack_file(path)
    for name, comment in comments_above_keysets(path).items():
        if name not in stack.keysets:
            continue
        assert "grace" not in comment.lower(), f"{path.name}: {name}: {comment}"
        overlap = int(stack.keysets[name].timings.overlap.total_seconds() // 60)
        for stated in re.findall(r"(\d+) minutes\)? after the promote", comment):
            assert int(stated) == overlap, f"{path.name}: {name} states {stated} minutes, overlap {overlap}"
        if "stays published" in comment:
            assert (f"{overlap} minutes"
                    in comment), f"{path.name}: {name}: say the overlap ({overlap} minutes)"
