"""How fast the program registers resources, against the bare SDK registering the same ones.

For N keysets of three generations each (retiring, active, pending; EdDSA software keys and a
JWKS publication), runs the real ``__main__.py`` under Pulumi's mock runtime, then a bare program
that registers the same components and dynamic resources with no config validation, lifecycle or
documents. Each run is a fresh process. Prints both times and their ratio.

    .venv/bin/python bench/registration.py              # N = 10, 100, 1000
    .venv/bin/python bench/registration.py --sizes 10 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATIONS = [
    {"id": "g1", "state": "retiring", "createdAt": "2026-10-01T09:00:00Z",
     "activatedAt": "2026-10-01T10:00:00Z", "retiringAt": "2026-11-01T10:00:00Z"},
    {"id": "g2", "state": "active", "createdAt": "2026-11-01T09:00:00Z", "activatedAt": "2026-11-01T10:00:00Z"},
    {"id": "g3", "state": "pending", "createdAt": "2026-11-20T09:00:00Z"},
]


def keysets(n: int) -> dict:
    return {
        f"ks{i:05d}": {
            "purpose": "sign", "algorithm": "EdDSA", "backend": "software",
            "publish": [{"format": "jwks", "target": f"file://bench-out/ks{i:05d}/jwks.json"}],
            "generations": GENERATIONS,
        }
        for i in range(n)
    }


def _mocks():
    import pulumi

    from keyrotation import algorithms, keys

    public_pem = keys.public_pem_from_private(keys.generate_private(algorithms.ALGORITHMS["EdDSA"]))
    outputs = {"public_key_pem": public_pem, "thumbprint": keys.thumbprint(public_pem), "private_key": "x"}

    class Mocks(pulumi.runtime.Mocks):
        count = 0

        def new_resource(self, args):
            Mocks.count += 1
            extra = outputs if args.typ.endswith("keys:SoftwareKey") else {}
            return f"{args.name}_id", {**args.inputs, **extra}

        def call(self, args):
            return {}

    return Mocks


def _run_program(n: int) -> None:
    import runpy

    import pulumi

    pulumi.runtime.set_all_config({
        "key-rotation:environment": "bench",
        "key-rotation:keysets": json.dumps(keysets(n)),
    })
    runpy.run_path(str(ROOT / "__main__.py"))


def _run_bare(n: int) -> None:
    import pulumi

    from components.publication import Publication, PublicationArgs
    from components.software_key import SoftwareKey, SoftwareKeyArgs

    for name, ks in keysets(n).items():
        keyset = pulumi.ComponentResource("key-rotation:index:KeySet", name, None)
        for g in ks["generations"]:
            gen = pulumi.ComponentResource(
                "key-rotation:index:KeyGeneration", f"{name}-{g['id']}", None, pulumi.ResourceOptions(parent=keyset)
            )
            SoftwareKey(
                f"{name}-{g['id']}-key",
                SoftwareKeyArgs(keyset=name, generation=g["id"], algorithm="EdDSA", state=g["state"],
                                environment="bench", purpose="sign", created_at=g["createdAt"],
                                activated_at=g.get("activatedAt")),
                pulumi.ResourceOptions(parent=gen),
            )
        Publication(
            f"{name}-jwks", PublicationArgs(target=ks["publish"][0]["target"], format="jwks", content="{}",
                                            kids=[], cache_control="public, max-age=300", keyset=name),
            pulumi.ResourceOptions(parent=keyset),
        )


def worker(kind: str, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import pulumi
    from pulumi.runtime.stack import wait_for_rpcs
    from pulumi.runtime.sync_await import _sync_await

    mocks = _mocks()
    pulumi.runtime.set_mocks(mocks(), project="key-rotation", stack="bench", preview=False)
    start = time.perf_counter()
    (_run_program if kind == "program" else _run_bare)(n)
    _sync_await(wait_for_rpcs())
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "resources": mocks.count}))


def measure(kind: str, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(n)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    print(f"{'keysets':>8} {'resources':>10} {'program s':>10} {'bare SDK s':>11} {'ratio':>6} {'program res/s':>14}")
    for n in args.sizes:
        program, bare = measure("program", n), measure("bare", n)
        ratio = program["seconds"] / bare["seconds"]
        rate = program["resources"] / program["seconds"]
        print(f"{n:>8} {program['resources']:>10} {program['seconds']:>10.2f} {bare['seconds']:>11.2f}"
              f" {ratio:>6.2f} {rate:>14.0f}")


if __name__ == "__main__":
    main()
