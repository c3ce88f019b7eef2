"""What every benchmark here shares: the stacks they measure and how runs are scheduled and summed up.

Rules (docs/design.md, "Measured speed"): every measurement is a fresh process; the variants of one
size run interleaved (A B C, B C A, ...) and repeated, so a neighbour's load on the shared machine
falls on all of them alike; we report the median, the spread (min-max), and peak memory.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GENERATIONS = [
    {"id": "g1", "state": "retiring", "createdAt": "2026-10-01T09:00:00Z",
     "activatedAt": "2026-10-01T10:00:00Z", "retiringAt": "2026-11-01T10:00:00Z"},
    {"id": "g2", "state": "active", "createdAt": "2026-11-01T09:00:00Z",
     "activatedAt": "2026-11-01T10:00:00Z"},
    {"id": "g3", "state": "pending", "createdAt": "2026-11-20T09:00:00Z"},
]
"""Every benchmark keyset: three EdDSA software generations (retiring, active, pending)."""


def keyset_name(i: int) -> str:
    return f"ks{i:05d}"


def keysets(n: int) -> dict:
    """N keysets as the program's config holds them (one JWKS publication each)."""
    return {
        keyset_name(i): {
            "purpose": "sign", "algorithm": "EdDSA", "backend": "software",
            "publish": [{"format": "jwks", "target": f"file://published/bench/{keyset_name(i)}/jwks.json"}],
            "generations": GENERATIONS,
        }
        for i in range(n)
    }


def stack_file_text(n: int) -> str:
    """A Pulumi.<stack>.yaml with N keysets, written the way the shipped stack files are."""
    lines = [
        "# A benchmark stack: N keysets of three software generations each.",
        "config:",
        "  key-rotation:environment: bench",
        "  key-rotation:defaults:",
        "    maxAgeDays: 90",
        "    publishMaxAgeSeconds: 300",
        "    clockSkewSeconds: 60",
        "    tokenLifetimeSeconds: 3600",
        "  key-rotation:keysets:",
    ]
    for i in range(n):
        name = keyset_name(i)
        lines += [
            f"    # Keyset {i}: signs the tokens of service {i}.",
            f"    {name}:",
            "      purpose: sign",
            "      algorithm: EdDSA",
            "      backend: software",
            "      publish:",
            f'        - {{format: jwks, target: "file://published/bench/{name}/jwks.json"}}',
            "      generations:",
        ]
        for g in GENERATIONS:
            fields = ", ".join(f'{k}: "{v}"' if k != "state" else f"{k}: {v}" for k, v in g.items())
            lines.append(f"        - {{{fields}}}")
    return "\n".join(lines) + "\n"


def run_worker(script: Path, args: Sequence[str]) -> dict:
    """Run one measurement in a fresh process; it prints one JSON object as its last line."""
    proc = subprocess.run([sys.executable, str(script), "--worker", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{script.name} worker {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def interleaved(kinds: Sequence[str], repeats: int, measure: Callable[[str], dict]) -> dict[str, list[dict]]:
    """``repeats`` rounds over ``kinds``, each round starting one kind later than the previous."""
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    for r in range(repeats):
        for i in range(len(kinds)):
            kind = kinds[(r + i) % len(kinds)]
            results[kind].append(measure(kind))
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """min-max around the median, as a percentage of the median."""
    m = median(values)
    return f"{min(values):.2f}-{max(values):.2f}" + (f" ({100 * (max(values) - min(values)) / m:.0f}%)" if m
                                                     else "")


def peak_mb(results: Sequence[dict]) -> float:
    return max(r["peak_kb"] for r in results) / 1024
