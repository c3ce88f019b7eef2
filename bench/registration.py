"""How fast the program registers resources, against hand-written programs registering the same graph.

For N keysets of three generations each (retiring, active, pending; EdDSA software keys, thumbprint
kids, one JWKS publication), three programs run under Pulumi's mock runtime, each in a fresh
process:

- ``program``: the real ``__main__.py`` (config validation, lifecycle, components, documents);
- ``literal``: a hand-written program that registers the same resources with literal inputs
  (every kid, key id and document computed up front from what the mocks will answer);
- ``wired``: the same hand-written program, but wiring kids, key ids and documents through
  Outputs as any program must (one Output step per keyset for the documents).

All three register the same graph: the same types, names, parents, options, inputs, component
outputs and stack exports. ``--verify`` checks that by comparing every request the mock monitor
receives (it is also the first thing a full run does, at the smallest size). The stack's exports
are serialised at the end, as the engine's ``run_in_stack`` does (``set_mocks`` alone never does).

Runs are interleaved and repeated (bench/common.py); printed per N and variant: the median wall
seconds and their spread, the median CPU seconds, resources per second and milliseconds per
resource (from CPU time), peak memory, and the ratios to both baselines.

    .venv/bin/python bench/registration.py                     # N = 10, 100, 1000; 3 rounds
    .venv/bin/python bench/registration.py --sizes 100 300 --repeats 5
    .venv/bin/python bench/registration.py --verify 20
    .venv/bin/python bench/registration.py --tuned-baselines   # baselines with the program's GC tuning

The program tunes the garbage collector for its process (keyrotation/runtime.py); the baselines
keep Python's defaults unless ``--tuned-baselines``, which isolates what the Output graph costs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    interleaved,
    keysets,
    median,
    peak_mb,
    run_worker,
    spread,
)

KINDS = ("program", "literal", "wired")
ENVIRONMENT = "bench"
POOL = 3
"""Distinct key pairs the mocks hand out, one per generation position, so kids differ within a keyset."""
# The timings every benchmark keyset gets (Pulumi.yaml-free defaults), as KeyGeneration outputs carry them.
TIMINGS = {"maxAgeDays": 90, "warnDays": 14, "publishMaxAgeSeconds": 300, "clockSkewSeconds": 60,
           "tokenLifetimeSeconds": 3600, "deletionWindowDays": 30}
CACHE_CONTROL = "public, max-age=300"


def _pool() -> list[dict[str, str]]:
    from keyrotation import algorithms, keys

    out = []
    for _ in range(POOL):
        pem = keys.public_pem_from_private(keys.generate_private(algorithms.ALGORITHMS["EdDSA"]))
        out.append({"public_key_pem": pem, "thumbprint": keys.thumbprint(pem),
                    "fingerprint": keys.fingerprint(pem),
                    "private_key": "not-a-key"})
    return out


def _placeholders(pool: list[dict[str, str]]) -> dict[str, str]:
    """Each process draws its own keys: what to replace by position before comparing requests."""
    from keyrotation import keys

    out = {}
    for i, drawn in enumerate(pool):
        for field, value in drawn.items():
            if field != "private_key":
                out[json.dumps(value)[1:-1]] = f"<pool{i}.{field}>"
        out[keys.public_jwk(drawn["public_key_pem"])["x"]] = f"<pool{i}.x>"
    return out


def _position(resource_name: str) -> int:
    """The generation position (g1 -> 0) of a ``<keyset>-<generation>-key`` resource."""
    return int(resource_name.split("-")[-2][1:]) - 1


def _mocks(pool: list[dict[str, str]]):
    import pulumi

    class Mocks(pulumi.runtime.Mocks):
        count = 0

        def new_resource(self, args):
            Mocks.count += 1
            extra = pool[_position(args.name)] if args.typ.endswith("keys:SoftwareKey") else {}
            return f"{args.name}_id", {**args.inputs, **extra}

        def call(self, args):
            return {}

    return Mocks


def _recording_monitor(mocks):
    """A mock monitor that also keeps every request, for --verify."""
    from google.protobuf import json_format

    from tests.sdk_internals import MockMonitor

    class Recording(MockMonitor):
        requests: list[str] = []

        def RegisterResource(self, request):  # noqa: N802 - the gRPC method name
            fields = json_format.MessageToDict(request, preserving_proto_field_name=True)
            # Everything the engine would act on, except what differs by construction between runs.
            for volatile in ("supportsPartialValues", "acceptResources", "acceptSecrets", "sourcePosition",
                             "supportsResultReporting", "packageRef", "stackTrace", "parentStackTraceHandle"):
                fields.pop(volatile, None)
            # The SDK gathers dependencies in a set: their order is not part of the request.
            fields["dependencies"] = sorted(fields.get("dependencies", []))
            for deps in fields.get("propertyDependencies", {}).values():
                deps["urns"] = sorted(deps.get("urns", []))
            Recording.requests.append(json.dumps({"register": fields}, sort_keys=True))
            return super().RegisterResource(request)

        def RegisterResourceOutputs(self, request):  # noqa: N802
            fields = json_format.MessageToDict(request, preserving_proto_field_name=True)
            Recording.requests.append(json.dumps({"outputs": fields}, sort_keys=True))
            return super().RegisterResourceOutputs(request)

    return Recording(mocks)


# ---------------------------------------------------------------------------------------------
# The three programs


def _run_program(n: int, pool) -> None:
    import runpy

    import pulumi

    pulumi.runtime.set_all_config({
        "key-rotation:environment": ENVIRONMENT,
        "key-rotation:keysets": json.dumps(keysets(n)),
    })
    runpy.run_path(str(ROOT / "__main__.py"))


def _lifecycle(g: dict) -> dict:
    return dict(g)


def _register_keyset(name: str, ks: dict, pool, wired: bool) -> dict:
    """One keyset as the program registers it; returns its stack output."""
    import pulumi

    from components.publication import Publication, PublicationArgs
    from components.software_key import SoftwareKey, SoftwareKeyArgs
    from components.switches import SwitchRecord, SwitchRecordArgs
    from keyrotation import documents
    from keyrotation.config import Generation
    from keyrotation.documents import KeyRecord
    from keyrotation.lifecycle import State

    keyset = pulumi.ComponentResource("key-rotation:index:KeySet", name, None)
    generations = []
    for i, g in enumerate(ks["generations"]):
        gen = pulumi.ComponentResource("key-rotation:index:KeyGeneration", f"{name}-{g['id']}", None,
                                       pulumi.ResourceOptions(parent=keyset))
        key = SoftwareKey(
            f"{name}-{g['id']}-key",
            SoftwareKeyArgs(keyset=name, generation=g["id"], algorithm="EdDSA", state=g["state"],
                            environment=ENVIRONMENT, purpose="sign", created_at=g["createdAt"],
                            activated_at=g.get("activatedAt")),
            pulumi.ResourceOptions(parent=gen),
        )
        kid = key.thumbprint if wired else pool[i]["thumbprint"]
        key_id = key.id if wired else f"{name}-{g['id']}-key_id"
        gen.register_outputs({"kid": kid, "state": g["state"], "keyId": key_id, "keyset": name,
                              "purpose": "sign",
                              "lifecycle": _lifecycle(g), "timings": TIMINGS})
        generations.append((g, kid, key_id, key))

    def document(values: list) -> dict[str, tuple[str, list]]:
        from datetime import datetime

        def t(text):
            return datetime.fromisoformat(text) if text else None

        def generation(g: dict) -> Generation:
            times = {"created_at": "createdAt", "activated_at": "activatedAt", "retiring_at": "retiringAt"}
            return Generation.model_validate({"id": g["id"], "state": State(g["state"]),
                                              **{k: t(g[v]) for k, v in times.items() if g.get(v)}})

        records = [KeyRecord.of(generation(g), kid=values[2 * i], algorithm="EdDSA",
                                public_pem=values[2 * i + 1])
                   for i, (g, *_rest) in enumerate(generations)]
        doc = documents.build("jwks", records)
        return {ks["publish"][0]["target"]: (documents.render(doc), documents.kids_in("jwks", doc))}

    target = ks["publish"][0]["target"]
    content: pulumi.Input[str]
    kids: pulumi.Input[list[str]]
    if wired:
        published = pulumi.Output.all(
            *(v for _g, kid, _k, key in generations for v in (kid, key.public_key_pem))).apply(document)
        content = published.apply(lambda d: d[target][0])
        kids = published.apply(lambda d: d[target][1])
    else:
        content, kids = document([v for i in range(len(generations))
                                  for v in (pool[i]["thumbprint"], pool[i]["public_key_pem"])])[target]
    publication = Publication(
        f"{name}-jwks-{hashlib.sha256(target.encode()).hexdigest()[:8]}",
        PublicationArgs(target=target, format="jwks", content=content, kids=kids, cache_control=CACHE_CONTROL,
                        keyset=name, publish_root="published"),
        pulumi.ResourceOptions(parent=keyset, deleted_with=keyset),
    )
    switches = SwitchRecord(
        f"{name}-switches",
        SwitchRecordArgs(keyset=name, states={g["id"]: g["state"] for g in ks["generations"]},
                         targets=[target]),
        pulumi.ResourceOptions(parent=keyset, depends_on=[publication], deleted_with=keyset),
    )
    active = next((g, kid, key_id) for g, kid, key_id, _key in generations if g["state"] == "active")
    summary = {
        "activeKid": active[1], "activeGeneration": active[0]["id"], "activeKeyId": active[2],
        "consumerEnv": {"SIGNING_KEY_ID": active[1], "AUDIT_SIGNER_KID": active[1],
                        "AUDIT_SIGNING_ALG": "ed25519"},
        "algorithm": "EdDSA", "backend": "software", "purpose": "sign", "profile": "default",
        "generations": [{"id": g["id"], "kid": kid, "state": g["state"], "keyId": key_id}
                        for g, kid, key_id, _key in generations],
        "documents": {target: {"format": "jwks", "target": target,
                               "firstPublished": publication.first_published}},
        # The mocks echo inputs: a switch record's output is null, which the literal program knows.
        "deployments": switches.switches if wired else None,
    }
    keyset.register_outputs(summary)
    return summary


def _run_bare(n: int, pool, wired: bool) -> None:
    import pulumi

    outputs = {name: _register_keyset(name, ks, pool, wired) for name, ks in keysets(n).items()}
    pulumi.export("environment", ENVIRONMENT)
    pulumi.export("keysets", outputs)


def _finish_stack() -> None:
    """Serialise the stack's exports, as the engine's run_in_stack does after the program."""
    from tests.sdk_internals import register_stack_outputs

    register_stack_outputs()


def worker(kind: str, n: int, record: bool, tuned: bool = False) -> None:
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import pulumi

    from tests.sdk_internals import wait_for_program

    pool = _pool()
    mocks = _mocks(pool)
    monitor = _recording_monitor(mocks()) if record else None
    pulumi.runtime.set_mocks(mocks(), project="key-rotation", stack="bench", preview=False, monitor=monitor)
    start, cpu = time.perf_counter(), time.process_time()
    if kind == "program":
        _run_program(n, pool)  # tunes the collector itself (keyrotation/runtime.py)
    else:
        if tuned:
            from keyrotation.runtime import tune_garbage_collection

            tune_garbage_collection()
        _run_bare(n, pool, wired=kind == "wired")
    _finish_stack()
    wait_for_program()
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "cpu": time.process_time() - cpu, "resources": mocks.count,
              "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    if monitor is not None:
        # Recorded as the keys were drawn: replace this process's key pool by its position.
        text = "\n".join(sorted(monitor.requests))
        for value, placeholder in _placeholders(pool).items():
            text = text.replace(value, placeholder)
        result["requests"] = text
    print(json.dumps(result))


def _without_dependencies(requests: str) -> str:
    out = []
    for line in requests.splitlines():
        request = json.loads(line)
        if "register" in request:
            request["register"].pop("dependencies", None)
            for deps in request["register"].get("propertyDependencies", {}).values():
                deps.pop("urns", None)
        out.append(json.dumps(request, sort_keys=True))
    return "\n".join(sorted(out))


def verify(n: int) -> bool:
    """Whether the three programs send the mock monitor the very same requests.

    The literal program's inputs are plain values, so its requests carry no dependency edges (the
    order the engine would register in); everything else must be identical. The wired program
    must match exactly, dependencies included.
    """
    seen = {kind: run_worker(Path(__file__), [kind, str(n), "record"])["requests"] for kind in KINDS}
    seen["literal"] = _without_dependencies(seen["literal"])
    expected = {"literal": _without_dependencies(seen["program"]), "wired": seen["program"]}
    same = True
    for kind in KINDS[1:]:
        if seen[kind] != expected[kind]:
            same = False
            import difflib

            diff = difflib.unified_diff(expected[kind].splitlines(), seen[kind].splitlines(), "program", kind,
                                        lineterm="", n=0)
            print(f"{kind} differs from the program:\n" + "\n".join(list(diff)[:40]))
    count = len(seen["program"].splitlines())
    print(f"verify N={n}: {count} requests, " + (
        "identical in all three programs (literal: but for dependency edges)" if same else "DIFFERENT"))
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--verify", type=int, metavar="N",
                        help="only compare the requests of the three programs")
    parser.add_argument("--tuned-baselines", action="store_true",
                        help="give the baselines the program's garbage-collection tuning too (the Output "
                             "graph alone)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), record="record" in args.worker[2:],
               tuned="tuned" in args.worker[2:])
        return
    if args.verify is not None:
        raise SystemExit(0 if verify(args.verify) else 1)
    if not verify(min(args.sizes)):
        raise SystemExit("the baselines do not register the program's graph; fix them before comparing")
    print("wall seconds (median, spread) and CPU seconds of the worker process; ms/res, res/s and the ratios"
          " from CPU time,\nwhich a neighbour's load on a shared machine inflates far less than wall time")
    print(f"{'keysets':>8} {'variant':>8} {'resources':>9} {'wall s':>7} {'spread s':>17} {'cpu s':>6}"
          f" {'res/s':>6} {'ms/res':>7} {'peak MB':>8} {'x literal':>9} {'x wired':>8} {'x lit wall':>10}")
    extra = ["tuned"] if args.tuned_baselines else []
    for n in args.sizes:
        def run(kind: str, n: int = n) -> dict:
            return run_worker(Path(__file__), [kind, str(n), *extra])

        runs = interleaved(KINDS, args.repeats, run)
        wall = {k: median([r["seconds"] for r in runs[k]]) for k in KINDS}
        cpu = {k: median([r["cpu"] for r in runs[k]]) for k in KINDS}
        for kind in KINDS:
            resources = runs[kind][0]["resources"]
            print(f"{n:>8} {kind:>8} {resources:>9} {wall[kind]:>7.2f} "
                  f"{spread([r['seconds'] for r in runs[kind]]):>17}"
                  f" {cpu[kind]:>6.2f} {resources / cpu[kind]:>6.0f} {1000 * cpu[kind] / resources:>7.3f}"
                  f" {peak_mb(runs[kind]):>8.0f} {cpu[kind] / cpu['literal']:>9.2f} "
                  f"{cpu[kind] / cpu['wired']:>8.2f}"
                  f" {wall[kind] / wall['literal']:>10.2f}")


if __name__ == "__main__":
    main()
