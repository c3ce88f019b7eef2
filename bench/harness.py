"""How the test harness scales: `tests/engine.py` `up` of N keysets, each run in a fresh process.

The harness runs the real program over Pulumi's mock monitor with every dynamic provider's
check/diff/create executed through its pickle round trip (real key generation, real file
publication into a temporary copy of the project). Runs are interleaved over the sizes and
repeated (bench/common.py); printed per N: median wall and CPU seconds, their spread, ms per
resource, peak memory and the ratio to the smallest N (the issue's bound: 1,000 keysets within
12x of 100).

    .venv/bin/python bench/harness.py                     # N = 100, 1000; 2 rounds
    .venv/bin/python bench/harness.py --sizes 10 100 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, keysets, median, peak_mb, run_worker, spread  # noqa: E402


def worker(n: int) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.engine import Engine
    from tests.project import copy_project

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        copy_project(project)
        engine = Engine(project, "bench", config={"key-rotation:environment": "bench",
                                                  "key-rotation:keysets": keysets(n)})
        start, cpu = time.perf_counter(), time.process_time()
        run = engine.up()
        result = {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "resources": len(run.resources),
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
        shutil.rmtree(project, ignore_errors=True)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker)
        return
    runs: dict[int, list[dict]] = {n: [] for n in args.sizes}
    for r in range(args.repeats):
        for i in range(len(args.sizes)):
            n = args.sizes[(r + i) % len(args.sizes)]
            runs[n].append(run_worker(Path(__file__), [str(n)]))
    print("wall seconds (median, spread) and CPU seconds of the harness process; ms/res and x smallest from "
          "CPU")
    print(f"{'keysets':>8} {'resources':>9} {'wall s':>7} {'spread s':>17} {'cpu s':>6} {'ms/res':>7} "
          f"{'peak MB':>8}"
          f" {'x smallest':>10} {'x wall':>7}")
    base = args.sizes[0]
    base_cpu, base_wall = median([r["cpu"] for r in runs[base]]), median([r["seconds"] for r in runs[base]])
    for n in args.sizes:
        rs = runs[n]
        wall, cpu = median([r["seconds"] for r in rs]), median([r["cpu"] for r in rs])
        print(f"{n:>8} {rs[0]['resources']:>9} {wall:>7.2f} {spread([r['seconds'] for r in rs]):>17} "
              f"{cpu:>6.2f}"
              f" {1000 * cpu / rs[0]['resources']:>7.3f} {peak_mb(rs):>8.0f} {cpu / base_cpu:>10.2f}"
              f" {wall / base_wall:>7.2f}")


if __name__ == "__main__":
    main()
