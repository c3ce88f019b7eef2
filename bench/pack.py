"""How the policy pack scales: `Analyze` per resource and `AnalyzeStack` over the whole stack.

For N keysets (bench/common.py: three EdDSA software generations, one JWKS publication each, 8
resources per keyset), the real program runs under Pulumi's mock runtime and its registrations
are kept: inputs for `Analyze`, outputs (component outputs, a software key's private key as a
secret, the publisher's first-published times) for `AnalyzeStack`. Then, in a fresh process per
measurement, the real pack (`python policy/__main__.py`) is started and driven over gRPC as the
CLI drives it (tests/policy_client.py), with policy/config/production.json and a pinned clock.

Sizes run interleaved and repeated (bench/common.py); printed per N: median wall seconds for all
`Analyze` calls and for the one `AnalyzeStack`, their spread, the pack process's CPU seconds
(read from /proc: a neighbour's load on a shared machine inflates wall time, not these), ms per
resource and resources per second from CPU time, and the pack's peak memory.

    .venv/bin/python bench/pack.py                      # N = 100, 1000 (8,000 resources); 3 rounds
    .venv/bin/python bench/pack.py --sizes 10 100 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, median, run_worker, spread  # noqa: E402

NOW = "2026-12-01T09:00:00Z"
FIRST_PUBLISHED = "2026-09-30T09:00:00Z"


def record(n: int, path: str) -> None:
    """Run the program for N keysets and write its resources (inputs and outputs) as JSON."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import pulumi
    import registration
    from google.protobuf import json_format

    from tests.sdk_internals import MockMonitor, wait_for_program

    pool = registration._pool()
    from keyrotation import algorithms, keys

    private = keys.generate_private(algorithms.ALGORITHMS["EdDSA"])
    for drawn in pool:
        drawn["private_key"] = private
    resources: dict[str, dict] = {}

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            outputs = dict(args.inputs)
            if args.typ.endswith("keys:SoftwareKey"):
                outputs.update(pool[registration._position(args.name)])
            if args.typ.endswith("publishing:Publication"):
                outputs.update(sha256="0" * 64, published_at=FIRST_PUBLISHED,
                               first_published=dict.fromkeys(args.inputs.get("kids") or [], FIRST_PUBLISHED))
            return f"{args.name}_id", outputs

        def call(self, args):
            return {}

    class Recording(MockMonitor):
        def RegisterResource(self, request):  # noqa: N802
            response = super().RegisterResource(request)
            inputs = json_format.MessageToDict(request.object)
            outputs = json_format.MessageToDict(response.object) if request.custom else {}
            resources[response.urn] = {
                "type": request.type, "name": request.name, "urn": response.urn, "parent": request.parent,
                "inputs": {k: v for k, v in inputs.items() if not k.startswith("__")},
                "outputs": {k: v for k, v in outputs.items() if not k.startswith("__")},
                "protect": request.protect, "secret": list(request.additionalSecretOutputs),
                "dependencies": list(request.dependencies),
            }
            return response

        def RegisterResourceOutputs(self, request):  # noqa: N802
            if request.urn in resources:
                resources[request.urn]["outputs"] = json_format.MessageToDict(request.outputs)
            return super().RegisterResourceOutputs(request)

    pulumi.runtime.set_mocks(Mocks(), project="key-rotation", stack="bench", preview=False,
                             monitor=Recording(Mocks()))
    registration._run_program(n, pool)
    registration._finish_stack()
    wait_for_program()
    Path(path).write_text(json.dumps(list(resources.values())))


def measure(path: str) -> None:
    """Drive the pack over the recorded resources: every Analyze, then one AnalyzeStack."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import analyzer_pb2

    from tests.policy_client import CONFIGS, PolicyPackProcess, _diagnostics
    from tests.sdk_internals import SECRET_SIG, SIG_KEY
    resources = json.loads(Path(path).read_text())

    def struct(props: dict, secret: list[str] | tuple[()] = ()) -> struct_pb2.Struct:
        s = struct_pb2.Struct()
        s.update({k: ({SIG_KEY: SECRET_SIG, "value": v} if k in secret else v) for k, v in props.items()})
        return s

    def options(r: dict) -> analyzer_pb2.AnalyzerResourceOptions:
        return analyzer_pb2.AnalyzerResourceOptions(protect=r["protect"], additionalSecretOutputs=r["secret"],
                                                    parent=r["parent"])

    analyze = [analyzer_pb2.AnalyzeRequest(type=r["type"], properties=struct(r["inputs"]), urn=r["urn"],
                                           name=r["name"], options=options(r))
               for r in resources if r["type"] != "pulumi:pulumi:Stack"]
    stack_request = analyzer_pb2.AnalyzeStackRequest()
    for r in resources:
        stack_request.resources.append(analyzer_pb2.AnalyzerResource(
            type=r["type"], properties=struct(r["outputs"], r["secret"]), urn=r["urn"], name=r["name"],
            options=options(r), parent=r["parent"], dependencies=r["dependencies"]))
    with PolicyPackProcess() as pack:
        pack.configure(CONFIGS / "production.json", now=NOW)

        def cpu() -> float:
            """The pack process's CPU seconds: what a neighbour's load on the machine does not inflate."""
            fields = Path(f"/proc/{pack.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        start, cpu0 = time.perf_counter(), cpu()
        diagnostics = []
        for request in analyze:
            diagnostics += _diagnostics(pack.stub.Analyze(request))
        analyze_seconds, analyze_cpu = time.perf_counter() - start, cpu() - cpu0
        start, cpu0 = time.perf_counter(), cpu()
        diagnostics += _diagnostics(pack.stub.AnalyzeStack(stack_request))
        stack_seconds, stack_cpu = time.perf_counter() - start, cpu() - cpu0
        status = Path(f"/proc/{pack.process.pid}/status").read_text()
        peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
    print(json.dumps({"analyze": analyze_seconds, "stack": stack_seconds, "analyze_cpu": analyze_cpu,
                      "stack_cpu": stack_cpu, "resources": len(resources),
                      "diagnostics": len(diagnostics), "peak_kb": peak_kb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker[0] == "record":
            record(int(args.worker[1]), args.worker[2])
            print("{}")
        else:
            measure(args.worker[1])
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for n in args.sizes:
            files[n] = str(Path(tmp) / f"resources-{n}.json")
            run_worker(Path(__file__), ["record", str(n), files[n]])
        runs: dict[int, list[dict]] = {n: [] for n in args.sizes}
        for r in range(args.repeats):
            for i in range(len(args.sizes)):
                n = args.sizes[(r + i) % len(args.sizes)]
                runs[n].append(run_worker(Path(__file__), ["measure", files[n]]))
    print("wall seconds (median, spread) and the pack process's CPU seconds; ms/res from CPU")
    print(f"{'keysets':>8} {'resources':>9} {'Analyze s':>9} {'spread':>16} {'cpu s':>6} {'ms/res':>7}"
          f" {'AnalyzeStack s':>14} {'spread':>16} {'cpu s':>6} {'ms/res':>7} {'res/s':>7} {'peak MB':>8}"
          f" {'diagnostics':>11}")
    for n in args.sizes:
        rs = runs[n]
        count = rs[0]["resources"]
        a, s = median([r["analyze"] for r in rs]), median([r["stack"] for r in rs])
        ac, sc = median([r["analyze_cpu"] for r in rs]), median([r["stack_cpu"] for r in rs])
        print(f"{n:>8} {count:>9} {a:>9.2f} {spread([r['analyze'] for r in rs]):>16} {ac:>6.2f}"
              f" {1000 * ac / count:>7.3f} {s:>14.2f} {spread([r['stack'] for r in rs]):>16} {sc:>6.2f}"
              f" {1000 * sc / count:>7.3f} {count / sc:>7.0f} {max(r['peak_kb'] for r in rs) / 1024:>8.0f}"
              f" {rs[0]['diagnostics']:>11}")


if __name__ == "__main__":
    main()
