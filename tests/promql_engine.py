"""Prometheus' own PromQL engine for the tests: tools/promql, built from the Go module proxy.

tools/promql/main.go runs ``github.com/prometheus/prometheus/promql`` over a TSDB holding the
series it is given (pinned by tools/promql/go.mod and go.sum). The binary is built once per
source hash into ~/.cache/key-rotation/promql/ (or $KEY_ROTATION_CACHE). Without Go the tests that
need it skip, saying why; where CI requires it (CI=true) they fail instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.project import ROOT

SOURCE = ROOT / "tools/promql"


def _cache() -> Path:
    return Path(os.environ.get("KEY_ROTATION_CACHE", Path.home() / ".cache/key-rotation")) / "promql"


def binary() -> Path:
    """The evaluator, built if needed; skips (fails under CI=true) without Go."""
    digest = hashlib.sha256(b"".join((SOURCE / f).read_bytes()
                                     for f in ("go.mod", "go.sum", "main.go"))).hexdigest()
    target = _cache() / digest[:16] / "promql-eval"
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        message = "Go is not installed: Prometheus' PromQL engine (tools/promql) cannot be built"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([go, "build", "-o", str(target), "."], cwd=SOURCE, capture_output=True, text=True,
                          timeout=1800, check=False, env={**os.environ, "CGO_ENABLED": "0"})
    assert done.returncode == 0, f"building tools/promql failed:\n{done.stderr[-3000:]}"
    return target


def evaluate(series: list[tuple[dict[str, str], float]], exprs: list[str], at: list[datetime]) -> dict:
    """{(instant, expr): [(labels, value)]} as Prometheus evaluates each expression at each instant,
    the series scraped unchanged every minute (what a published document gives)."""
    request = {
        "series": [{"labels": labels, "value": value} for labels, value in series],
        "exprs": exprs, "at": [int(t.timestamp()) for t in at],
    }
    done = subprocess.run([str(binary())], input=json.dumps(request), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    out: dict[tuple[int, str], Any] = {}
    for result in json.loads(done.stdout):
        assert not result.get("error"), (result["expr"], result["error"])
        out[(result["at"], result["expr"])] = [(r["labels"], r["value"]) for r in result["vector"]]
    return {(datetime.fromtimestamp(t, at[0].tzinfo), e): v for (t, e), v in out.items()}


def series_of(openmetrics_text: str) -> list[tuple[dict[str, str], float]]:
    """The samples of an OpenMetrics document, read by prometheus_client's OpenMetrics parser."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    return [({"__name__": s.name, **s.labels}, float(s.value))
            for family in text_string_to_metric_families(openmetrics_text) for s in family.samples]


def classic_text_families(text: str) -> dict[str, dict]:
    """The document read by prometheus/common's classic text parser (node-exporter's textfile
    collector): {family: {"type": ..., "samples": n}}."""
    done = subprocess.run([str(binary()), "-text"], input=text, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


if __name__ == "__main__":  # .ci/run builds it beside the CLI: `python -m tests.promql_engine`
    print(binary())
