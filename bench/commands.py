"""How the rotation commands scale with the stack file: N keysets, each command in a fresh process.

The stack files are bench/common.py's (three generations per keyset, a comment per keyset, flow
style generations like the shipped stack files; about 560 bytes per keyset). Each measurement is
``python -m keyrotation <command>`` as a user runs it, with a pinned clock and no stack outputs;
editing commands write a fresh copy of the file each time. Runs are interleaved over the sizes
and repeated (bench/common.py); printed per command and N: median wall seconds and their spread,
median CPU seconds (user + system of the child), ms per keyset, peak memory, and the ratio to the
smallest N (the issue's bound: 3x from 10 to 1,000 keysets).

    .venv/bin/python bench/commands.py                          # N = 10, 1000; 3 rounds
    .venv/bin/python bench/commands.py --sizes 10 100 1000 --repeats 5 --commands status rotate
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, median, spread, stack_file_text  # noqa: E402

NOW = "2026-11-25T00:00:00Z"
COMMANDS = {
    "status": ["status"],
    "plan": ["plan"],
    "timeline": ["timeline"],
    "valid-at": ["valid-at", "KEYSET", "g2", "--at", "2026-11-10T00:00:00Z"],
    "rotate": ["rotate", "KEYSET"],  # refused (a pending generation exists): reads and plans only
    "promote": ["promote", "KEYSET", "g3", "--force"],  # no stack outputs here: the file's own times
    "retire": ["retire", "KEYSET", "g1", "--force"],
}
EDITS = ("rotate", "promote", "retire")


def _run(directory: Path, size: int, command: str) -> dict:
    stack = f"n{size}"
    if command in EDITS:
        shutil.copyfile(directory / f"pristine-{size}.yaml", directory / f"Pulumi.{stack}.yaml")
    keyset = f"ks{size // 2:05d}"
    argv = [sys.executable, "-m", "keyrotation", *[keyset if a == "KEYSET" else a for a in COMMANDS[command]],
            "--stack", stack, "--project-dir", str(directory), "--now", NOW, "--no-outputs"]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    # status/plan exit 3/4 for warnings/overdue keys; rotate is refused (exit 1) on purpose.
    if code not in (0, 3, 4) and not (command == "rotate" and "already pending" in stderr):
        raise SystemExit(f"{' '.join(argv)} failed ({code}):\n{stderr[-2000:]}")
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_kb": usage.ru_maxrss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--commands", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        shutil.copyfile(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
        for n in args.sizes:
            text = stack_file_text(n)
            (directory / f"pristine-{n}.yaml").write_text(text)
            (directory / f"Pulumi.n{n}.yaml").write_text(text)
        sizes = {n: len(stack_file_text(n)) for n in args.sizes}
        print("stack files: " + ", ".join(f"{n} keysets {b / 1024:.0f} KB" for n, b in sizes.items()))
        print("wall seconds (median, spread) and CPU seconds of the command's process; ms/keyset and"
              " x smallest from CPU")
        print(f"{'command':>9} {'keysets':>8} {'wall s':>7} {'spread s':>17} {'cpu s':>6} {'ms/keyset':>9}"
              f" {'peak MB':>8} {'x smallest':>10} {'x wall':>7}")
        for command in args.commands:
            runs: dict[int, list[dict]] = {n: [] for n in args.sizes}
            for r in range(args.repeats):
                for i in range(len(args.sizes)):
                    n = args.sizes[(r + i) % len(args.sizes)]
                    runs[n].append(_run(directory, n, command))
            base = args.sizes[0]
            base_cpu = median([r["cpu"] for r in runs[base]])
            base_wall = median([r["seconds"] for r in runs[base]])
            for n in args.sizes:
                wall = median([r["seconds"] for r in runs[n]])
                cpu = median([r["cpu"] for r in runs[n]])
                print(f"{command:>9} {n:>8} {wall:>7.2f} {spread([r['seconds'] for r in runs[n]]):>17} "
                      f"{cpu:>6.2f}"
                      f" {1000 * cpu / n:>9.2f} {max(r['peak_kb'] for r in runs[n]) / 1024:>8.0f}"
                      f" {cpu / base_cpu:>10.2f} {wall / base_wall:>7.2f}")


if __name__ == "__main__":
    main()
