"""Process settings for the Pulumi program and the policy pack: cyclic garbage collection tuned.

The program builds one large graph of resources, Outputs, futures and tasks that stays alive until
the engine has every registration; almost nothing of it is garbage before the end. CPython's
cyclic collector nevertheless re-scans that growing heap on every older-generation collection,
which made it 40% of registration time and per-resource cost grow with the number of keysets
(docs/design.md, "Measured speed"). The policy pack, likewise, deserialises every resource of
the stack once per stack policy (the SDK does) and keeps them alive for that analysis. So, once
the imports are done:

- ``gc.freeze()`` moves everything alive so far (the imported SDKs, the validated config) into
  the permanent generation, which no collection scans again;
- the thresholds are raised: a young collection every 100,000 net container allocations instead
  of every 700, a middle one every 100 of those, and full collections (which re-scan the whole,
  growing heap and made the cost per resource grow with N) effectively never within a run.

Why it is safe: reference counting still frees every object the moment it is unreferenced; only
reference *cycles* wait longer for a collection, and young collections still run (this is not
``gc.disable()``), so short-lived cycles are still reclaimed. What it costs is measured:
``bench/registration.py`` prints peak memory for the program and for the baselines, which keep
Python's defaults (1,000 keysets: 511 MB against 520 MB; with collection off entirely, about 5% more).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from .names import DEBUG_VARIABLE

THRESHOLDS = (100_000, 100, 100_000)
"""gc.set_threshold(gen0, gen1, gen2) while the program registers (Python's default: 700, 10, 10)."""


def tune_garbage_collection() -> None:
    """Call once, at the top of the program (or the pack), after its imports."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def garbage_collection_tuned() -> Iterator[None]:
    """The same tuning for a block (a rotation command reading a big stack file twice), then the
    process's own settings back: the commands also run inside other programs' processes (tests)."""
    thresholds = gc.get_threshold()
    tune_garbage_collection()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def provider_errors_in_one_line() -> None:
    """In the dynamic-provider process the engine starts (``python -m pulumi.dynamic``), the SDK
    reports every provider exception as ``traceback.format_exc()``. Without stack frames that is
    the exception's own line (``PublishError: s3://...: write failed: ...``), which the provider
    methods make say target, operation and cause. ``KEY_ROTATION_DEBUG`` keeps the traceback; no
    other process (the program, the commands, the tests' harness) is touched.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "pulumi.dynamic.__main__" and not os.environ.get(DEBUG_VARIABLE):
        sys.tracebacklimit = 0
