"""Every internal of the Pulumi Python SDK that the test harness and the benchmark rely on, in one place.

The SDK's public API runs a program under mocks (`pulumi.runtime.set_mocks`, `pulumi.runtime.test`),
but offers no way to play the engine's part: to read the wire format of secrets and resource
references, to drive the dynamic provider server without its gRPC process, or to run a program
several times in one process as if each run were a fresh one. tests/engine.py does all three, so it
reaches into the SDK; it does so only through this module, and so do tests/test_dev_stack.py and
bench/. Elsewhere in tests/ and bench/ only the public `pulumi`, `pulumi.runtime`, `pulumi.dynamic`
and the generated protocol (`pulumi.runtime.proto`) are used (tests/test_sdk_internals.py holds
them to that).

Each entry says what it relies on, why the public API does not do, and the SDK version it was read
against (its "checked:" note). The import fails with a clear message when the installed SDK is not
the one these entries were checked against, or a piece they touch is gone.

Raising the SDK: requirements.txt pins `pulumi==X` exactly; the comment there says how.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import pickle
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pulumi.dynamic
from google.protobuf import struct_pb2
from pulumi.runtime import mocks, rpc, settings, stack, sync_await

__all__ = [
    "CHECKED_AGAINST", "RESOURCE_SIG", "SECRET_SIG", "SIG_KEY", "UNKNOWN", "MockMonitor", "ProviderServer",
    "SdkMismatch", "close_thread_event_loop", "context_property_defaults_kept", "deserialize",
    "ensure_event_loop", "forget_root_resource", "fresh_pickler", "kept_thread_event_loop", "missing_pieces",
    "pinned_sdk", "record_registration", "register_stack_outputs", "serialize", "version_problems",
    "wait_for_program",
]

CHECKED_AGAINST = "3.272.0"
"""The SDK version every entry below was read against; requirements.txt pins exactly this."""

_ROOT = Path(__file__).resolve().parent.parent


class SdkMismatch(RuntimeError):
    """The installed SDK is not the one this module was checked against."""


# ----------------------------------------------------------------------------------------------------
# The wire format of property values
# ----------------------------------------------------------------------------------------------------

# rpc._special_sig_key / _special_secret_sig / _special_resource_sig (pulumi/runtime/rpc.py): the
# markers of a secret ({SIG_KEY: SECRET_SIG, "value": ...}) and of a resource reference inside a
# protobuf Struct. The harness decodes the SDK's RegisterResource requests and encodes the engine's
# answers, so it must speak the wire format; the public API only ever hands out Outputs.
# The values are the engine's protocol constants (sdk/go/common/resource/sig); read from the SDK so
# the two cannot drift. checked: pulumi 3.272.0
SIG_KEY: str = rpc._special_sig_key
SECRET_SIG: str = rpc._special_secret_sig
RESOURCE_SIG: str = rpc._special_resource_sig

# rpc.UNKNOWN (not underscored, but `rpc` documents no API): the wire sentinel of an unknown value,
# what a preview hands the program for values only a provider computes. checked: pulumi 3.272.0
UNKNOWN: str = rpc.UNKNOWN


def serialize(properties: dict[str, Any]) -> struct_pb2.Struct:
    """Python values (Outputs, resources, secrets) -> the Struct the SDK sends: what a mocked provider
    returns reaches the program exactly as a real provider's outputs would.

    rpc.serialize_properties (async) run to completion with sync_await._sync_await, as the SDK's own
    MockMonitor does; no public function serialises properties. checked: pulumi 3.272.0"""
    struct: struct_pb2.Struct = sync_await._sync_await(rpc.serialize_properties(properties, {}))
    return struct


def deserialize(struct: struct_pb2.Struct) -> Any:
    """A Struct from the wire -> Python values, as the SDK hands them to `Mocks.new_resource`.

    rpc.deserialize_properties, as MockMonitor uses it. checked: pulumi 3.272.0"""
    return rpc.deserialize_properties(struct)


# ----------------------------------------------------------------------------------------------------
# Event loops
# ----------------------------------------------------------------------------------------------------

def ensure_event_loop() -> None:
    """sync_await._ensure_event_loop: the monitor's worker thread needs an event loop for the SDK's
    (de)serialisers, made the way the SDK makes it (and closed by `close_thread_event_loop`).
    checked: pulumi 3.272.0"""
    sync_await._ensure_event_loop()


def wait_for_program() -> None:
    """Wait, outside any coroutine, until every RPC of a program run under `set_mocks` is done.

    stack.wait_for_rpcs run with sync_await._sync_await: what `run_in_stack` does after the program,
    for callers (a subprocess, the benchmark) that run the program without it to measure or inspect
    it bare. checked: pulumi 3.272.0"""
    sync_await._sync_await(stack.wait_for_rpcs())


def register_stack_outputs() -> None:
    """Register the root stack's exports, as `run_in_stack` does after the program.

    stack.massage turns the exports into serialisable values; the public API only does this inside
    `run_in_stack`, which the benchmark cannot use (it times the program alone). checked: pulumi 3.272.0"""
    root = settings.get_root_resource()
    assert root is not None, "no root stack: call pulumi.runtime.set_mocks first"
    root.register_outputs(stack.massage(root.outputs, []))  # type: ignore[attr-defined]


# asyncio's default policy keeps a thread's loop in `_local._loop` and whether one was ever set in
# `_local._set_called` (CPython 3.11-3.13 asyncio/events.py). The SDK's `_ensure_event_loop` relies on
# get_event_loop() creating a loop on demand, which stops once set_event_loop(None) was called: the
# harness must put back both, or the stock mocks (`pulumi.runtime.test`) break after a harness run.
# checked: pulumi 3.272.0 on CPython 3.11

@contextmanager
def kept_thread_event_loop() -> Iterator[None]:
    """Give the current thread back its event loop (or none) and the policy's `_set_called` flag."""
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    previous = (getattr(local, "_loop", None), getattr(local, "_set_called", False))
    try:
        yield
    finally:
        asyncio.set_event_loop(previous[0])
        if local is not None and hasattr(local, "_set_called"):
            local._set_called = previous[1]


def close_thread_event_loop() -> None:
    """Close the loop `ensure_event_loop()` made for this (worker) thread, if it is idle."""
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    loop = getattr(local, "_loop", None)
    if loop is not None and not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)


# ----------------------------------------------------------------------------------------------------
# The mock monitor
# ----------------------------------------------------------------------------------------------------

# mocks.MockMonitor: the monitor `set_mocks` installs. Public as `set_mocks(monitor=...)`'s argument
# but not exported; the harness subclasses it and overrides RegisterResource, ReadResource,
# RegisterResourceOutputs and `make_urn` (which its ReadResource/RegisterResource call), keeping its
# Invoke, ExistsResource and SupportsFeature. checked: pulumi 3.272.0
MockMonitor = mocks.MockMonitor


def record_registration(monitor: mocks.MockMonitor, urn: str, resource_id: str,
                        state: struct_pb2.Struct) -> None:
    """Remember a resource the way MockMonitor does (`resources[urn] = ResourceRegistration(...)`): its
    Invoke (`pulumi:pulumi:getResource`) and ExistsResource read that dict. checked: pulumi 3.272.0"""
    monitor.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, resource_id, deserialize(state))


# ----------------------------------------------------------------------------------------------------
# One process per run, inside one process
# ----------------------------------------------------------------------------------------------------

def forget_root_resource() -> None:
    """settings.ROOT.set(None): `configure()` keeps the previous run's root stack resource; the next
    run must register its own, as a new process would. The public `reset_options` also drops the
    monitor the harness has just configured. checked: pulumi 3.272.0"""
    settings.ROOT.set(None)


@contextmanager
def context_property_defaults_kept() -> Iterator[None]:
    """Put back the process-wide defaults of the runtime's settings after a run.

    `ContextProperty.fset` (pulumi/_utils.py) also replaces the property's *default* (name-mangled
    `_ContextProperty__default`) when the current value is None, so a run would leave its monitor,
    stack and config behind for every later context. No public API resets them. checked: pulumi 3.272.0"""
    found = {name: prop._ContextProperty__default for name, prop in vars(settings.Settings).items()
             if hasattr(prop, "_ContextProperty__default")}
    try:
        yield
    finally:
        for name, value in found.items():
            vars(settings.Settings)[name]._ContextProperty__default = value


_PICKLER_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
"""The interpreter's own method, before any provider was serialized in this process."""


def fresh_pickler() -> None:
    """pulumi.dynamic's `serialize_provider` (dynamic/dynamic.py) wraps pickle._Pickler._batch_setitems
    again at every dynamic resource, to sort dicts, and never unwraps it. A program's process ends;
    in the long-lived test process the wrappers would pile up into a RecursionError, so each run
    starts from the interpreter's own method. checked: pulumi 3.272.0 on CPython 3.11"""
    pickle._Pickler._batch_setitems = _PICKLER_BATCH_SETITEMS  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------------
# The dynamic provider server
# ----------------------------------------------------------------------------------------------------

_SERVER_PATH = Path(pulumi.dynamic.__file__).with_name("__main__.py")
_SERVER_CODE: Any = None


def _server_code() -> Any:
    """pulumi/dynamic/__main__.py without its last statement, the module-level `main()` call (which
    starts a gRPC server and blocks). No public entry point serves dynamic providers in-process."""
    global _SERVER_CODE
    if _SERVER_CODE is None:
        tree = ast.parse(_SERVER_PATH.read_text(), str(_SERVER_PATH))
        tree.body = [node for node in tree.body if not _is_main_call(node)]
        _SERVER_CODE = compile(tree, str(_SERVER_PATH), "exec")
    return _SERVER_CODE


def _is_main_call(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == "main")


class _AbortContext:
    """Stands in for grpc.ServicerContext: the server's `_abort_with_traceback` decorator reports a
    provider's exception as `context.abort(StatusCode.UNKNOWN, traceback)`; `abort` never returns."""

    def __init__(self, on_abort: Callable[[str], Exception]):
        self._on_abort = on_abort

    def abort(self, code: Any, details: str) -> NoReturn:
        raise self._on_abort(details)

    def set_code(self, code: Any) -> None:
        pass

    def set_details(self, details: str) -> None:
        pass


class ProviderServer:
    """The SDK's dynamic provider server (`DynamicResourceProviderServicer` of pulumi/dynamic/__main__.py),
    executed without its gRPC `main()`. A new instance is a new provider process: an empty
    `_PROVIDER_CACHE`, so `configure()` is called again.

    Relies on the module's layout: one top-level `main()` call, the servicer class taking no arguments,
    its RPC methods taking (request, context) and reporting errors through `context.abort`.
    checked: pulumi 3.272.0"""

    def __init__(self, on_abort: Callable[[str], Exception]):
        module = ModuleType("pulumi.dynamic.__main__")
        module.__file__ = str(_SERVER_PATH)
        exec(_server_code(), module.__dict__)  # noqa: S102 - the SDK's own code
        self._servicer = module.DynamicResourceProviderServicer()
        self._context = _AbortContext(on_abort)

    def call(self, method: str, request: Any) -> Any:
        """One RPC (`Configure`, `Check`, `Diff`, `Create`, `Update`, `Delete`) with its request message."""
        return getattr(self._servicer, method)(request, self._context)


# ----------------------------------------------------------------------------------------------------
# The check at import
# ----------------------------------------------------------------------------------------------------

def pinned_sdk(requirements: Path = _ROOT / "requirements.txt") -> str | None:
    """The exact `pulumi==X` pin of requirements.txt (None: not pinned exactly)."""
    match = re.search(r"^pulumi==([\w.]+)\s*(?:#.*)?$", requirements.read_text(), re.M)
    return match.group(1) if match else None


def version_problems(installed: str, pinned: str | None, checked: str = CHECKED_AGAINST) -> list[str]:
    """Why this module cannot vouch for the installed SDK (empty: it can)."""
    problems = []
    if pinned != checked:
        pin = f"pulumi=={pinned}" if pinned else "no exact pulumi version"
        problems.append(f"requirements.txt pins {pin}, but tests/sdk_internals.py was checked against pulumi "
                        f"{checked}: raise both together, as the comment beside the pin in requirements.txt "
                        "describes")
    if installed != checked:
        problems.append(f"pulumi {installed} is installed, but tests/sdk_internals.py was checked against "
                        f"pulumi {checked}: run `.venv/bin/pip install -r requirements-dev.txt`")
    return problems


def missing_pieces() -> list[str]:
    """The SDK internals named above that the installed SDK does not have."""
    wanted = {
        "pulumi.runtime.rpc": (rpc, ["_special_sig_key", "_special_secret_sig", "_special_resource_sig",
                                     "UNKNOWN", "serialize_properties", "deserialize_properties"]),
        "pulumi.runtime.sync_await": (sync_await, ["_sync_await", "_ensure_event_loop"]),
        "pulumi.runtime.stack": (stack, ["wait_for_rpcs", "massage"]),
        "pulumi.runtime.settings": (settings, ["ROOT", "Settings", "get_root_resource"]),
        "pulumi.runtime.mocks.MockMonitor": (mocks.MockMonitor, ["ResourceRegistration", "make_urn",
                                                                 "RegisterResource", "ReadResource",
                                                                 "RegisterResourceOutputs"]),
    }
    missing = [f"{owner}.{name}" for owner, (obj, names) in wanted.items() for name in names
               if not hasattr(obj, name)]
    if not any(hasattr(prop, "_ContextProperty__default") for prop in vars(settings.Settings).values()):
        missing.append("pulumi._utils.ContextProperty._ContextProperty__default (on Settings' properties)")
    if not hasattr(pickle._Pickler, "_batch_setitems"):
        missing.append("pickle._Pickler._batch_setitems")
    if not _SERVER_PATH.exists():
        missing.append(str(_SERVER_PATH))
    else:
        tree = ast.parse(_SERVER_PATH.read_text(), str(_SERVER_PATH))
        if sum(_is_main_call(node) for node in tree.body) != 1:
            missing.append(f"{_SERVER_PATH}: exactly one top-level `main()` call")
        servicer = "DynamicResourceProviderServicer"
        if not any(isinstance(n, ast.ClassDef) and n.name == servicer for n in tree.body):
            missing.append(f"{_SERVER_PATH}: class DynamicResourceProviderServicer")
    return missing


def _check() -> None:
    problems = version_problems(importlib.metadata.version("pulumi"), pinned_sdk())
    missing = missing_pieces()
    if missing:
        problems.append("the installed SDK lacks what tests/sdk_internals.py relies on: "
                        f"{', '.join(missing)}")
    if problems:
        raise SdkMismatch("tests/sdk_internals.py: " + "; ".join(problems))


_check()
