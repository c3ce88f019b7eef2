"""An engine-faithful test harness: run the real Pulumi program like `pulumi up` / `preview` / `destroy`.

The Pulumi CLI cannot run on these machines, so this module plays the engine's part behind the SDK's mock
monitor (a `MockMonitor` subclass). It keeps a state between runs, like a stack's
state file, and drives dynamic providers through the SDK's own dynamic provider server
(`pulumi/dynamic/__main__.py`, executed without its gRPC `main()`): `__provider` is base64 + dill decoded
by that code, every property bag crosses a protobuf `Struct` both ways (numbers arrive as floats, `None`
members vanish), secrets are stripped on the way to the provider and re-applied on the way back
(`annotateSecrets`), and `additional_secret_outputs` is applied like the engine's step executor.
Every SDK internal this takes is in tests/sdk_internals.py, checked against the exactly pinned SDK.

    from tests.engine import Engine, ProgramFailed, Secret, UNKNOWN

    engine = Engine(project_dir, "dev", config={"proj:things": {"a": "x"}})  # or None: Pulumi.dev.yaml
    run = engine.up()                    # EngineRun
    run.operations                       # [("create", urn), ...]: create/update/same/replace/delete/read
    run.named("a").outputs["path"]       # Resource: wire (camelCase) names, secrets as Secret(value)
    run.of_type("pulumi-python:dynamic/keys:SoftwareKey")
    run.outputs, run.secret_outputs      # stack outputs (secrets unwrapped), names of the secret ones
    run.is_secret("keysets", "gw")       # a nested stack output path is secret (itself or a parent)
    run.log                              # [("info" | "warning" | "error", message)]: pulumi.log + diagnostics
    engine.preview()                     # dry run: Check and Diff only; nothing written; state unchanged
    engine.destroy()                     # deletes everything left in the state
    engine.resources                     # the state, by URN
    engine.config["proj:x"] = ...        # change the config between runs

A failing run raises ProgramFailed (message = the engine's diagnostics + the program's error; `.run` is
the partial EngineRun, `.errors` the diagnostics, `__cause__` the original exception).

Engine behaviours reproduced (pulumi/pulumi pkg/resource/deploy/step_generator.go, step.go,
step_executor.go, pkg/resource/plugin/provider_plugin.go):
- Check gets the old *inputs* as `olds` ({} for a create); Diff, Update and Delete get the old *outputs*
  as `olds`; Create and Update get what Check returned.
- A provider Diff of DIFF_UNKNOWN (a `DiffResult()` with `changes=None`) falls back to comparing old and
  new inputs. `replaceOnChanges` turns changed keys into replacements (only keys a diff reports: the SDK's
  dynamic server never reports `diffs`, so with a provider that answers `changes=True` it has no effect,
  as in the real engine).
- A replacement re-runs Check with empty olds, creates the new resource and deletes the old one at the
  end of the run (or deletes first with `deleteBeforeReplace`, the option overriding the provider); a
  protected resource cannot be replaced.
- Resources the program no longer registers are deleted after it finishes, walking the state backwards;
  a protected one fails the run before anything is deleted, `retainOnDelete` ones leave the state without
  a provider call, and nothing is deleted when the program failed (what it created stays in the state).
- In a preview the engine does not call Create/Update of providers that do not support previews (the
  dynamic server does not): it hands back the checked inputs as the would-be state. So inputs stay known
  to the program, and what only the provider computes (and a new resource's ID) is unknown.
- `ignoreChanges` paths keep their old values; aliases find the old state under a previous URN.
- Custom resources of other providers (aws, gcp, ...) go to `handlers`; their diff is old vs new inputs.
- Every run is a fresh "process": a new provider server module (empty provider cache, `configure()`
  called again with the whole stack config, as the engine gives dynamic providers), cwd = project_dir,
  project_dir first on sys.path, and the program's own modules imported afresh and dropped afterwards
  (so a test's own imports of project modules are not the program's objects).
- RPCs are handled one at a time in the order the SDK issues them, so runs are deterministic.

The root stack is a step of the plan (create, then same: `EngineRun.stack_operation`) whose outputs
are the stack outputs.
tests/test_differential.py holds all of this to the real CLI on the dev scenario (plans, state,
secretness, stack outputs).

Not reproduced: `pulumi destroy --skip-preview` (the Automation API's destroy()) deleting unprotected
resources before a protected one stops it (here a protected resource always stops the run before any
delete, as when the CLI's preview runs first); remote (multi-language) components, transforms,
refresh/import, `--target`, dependents of a delete-before-replace resource, output values (the mock
monitor disables that feature) and `secure:` config values (there is no key to decrypt them: pass
`config=`).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import json
import os
import queue
import re
import runpy
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import (
    MockCallArgs,
    MockResourceArgs,
    Mocks,
    Settings,
    configure,
    run_in_stack,
    set_all_config,
)
from pulumi.runtime.proto import engine_pb2, provider_pb2, resource_pb2

from tests import sdk_internals as sdk  # every SDK internal the harness relies on, checked at import
from tests import softhsm

__all__ = ["UNKNOWN", "Engine", "EngineRun", "Options", "ProgramFailed", "Resource", "Secret"]

UNKNOWN = sdk.UNKNOWN
"""The wire sentinel of an unknown (computed) value; what unknown values are in previews."""

_SIG = sdk.SIG_KEY
_SECRET_SIG = sdk.SECRET_SIG
_RESOURCE_SIG = sdk.RESOURCE_SIG
_STACK_TYPE = "pulumi:pulumi:Stack"
_DYNAMIC_PREFIX = "pulumi-python:dynamic"
_PROVIDER_KEY = "__provider"
_HARNESS_DIR = Path(__file__).resolve().parent
_SEVERITY = {engine_pb2.DEBUG: "debug", engine_pb2.INFO: "info", engine_pb2.WARNING: "warning",
             engine_pb2.ERROR: "error"}
_RUN_LOCK = threading.Lock()  # the SDK's runtime state is process-global: one run at a time


# ----------------------------------------------------------------------------------------------------
# Public records
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Secret:
    """A value the engine holds as a secret (on the wire: a map with the secret signature marker)."""

    value: Any

    def __repr__(self) -> str:
        return f"Secret({self.value!r})"


class ProgramFailed(Exception):
    """`up()` / `preview()` / `destroy()` failed, as `pulumi up` would.

    `errors` are the engine's diagnostics, `run` what happened before the failure (an `EngineRun`),
    and `__cause__` the program's original exception, when there is one.
    """

    def __init__(self, message: str, *, run: EngineRun, errors: list[str]):
        super().__init__(message)
        self.run = run
        self.errors = errors


@dataclass
class Options:
    """Resource options as the engine receives them in the RegisterResourceRequest."""

    custom: bool = True
    protect: bool = False
    retain_on_delete: bool = False
    parent: str | None = None
    dependencies: list[str] = field(default_factory=list)
    provider: str | None = None
    delete_before_replace: bool | None = None  # None: not set, the provider decides
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    additional_secret_outputs: list[str] = field(default_factory=list)
    aliases: list[str | dict] = field(default_factory=list)  # URNs, or specs {name, type, parentUrn, ...}
    deleted_with: str | None = None
    remote: bool = False


@dataclass
class Resource:
    """One resource as the engine sees it. `inputs` are the checked inputs the state keeps."""

    type: str
    name: str
    urn: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    options: Options
    id: str | None


@dataclass
class EngineRun:
    """The result of one `up()`, `preview()` or `destroy()`."""

    kind: str
    resources: dict[str, Resource] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    log: list[tuple[str, str]] = field(default_factory=list)
    operations: list[tuple[str, str]] = field(default_factory=list)
    wire_outputs: dict[str, Any] = field(default_factory=dict)  # stack outputs with Secret wrappers
    config: dict[str, str] = field(default_factory=dict)
    """The stack config as the engine hands it to the program and to a policy pack (ConfigureStack)."""
    stack_operation: tuple[str, str] | None = None
    """The root stack's own step (create, then same), which the engine plans beside `operations`."""

    def of_type(self, token: str) -> list[Resource]:
        """Resources of this type token, in registration order."""
        return [r for r in self.resources.values() if r.type == token]

    def named(self, name: str) -> Resource:
        """The one resource with this logical name (KeyError, listing the names, if none or several)."""
        found = [r for r in self.resources.values() if r.name == name]
        if len(found) == 1:
            return found[0]
        if found:
            raise KeyError(f"{len(found)} resources are named {name!r}: {[r.urn for r in found]}")
        raise KeyError(f"no resource named {name!r}; registered: "
                       f"{sorted({r.name for r in self.resources.values()})}")

    def is_secret(self, *path: str | int) -> bool:
        """Whether the stack output at this path (`"name", "key", 0, ...`) is secret, itself or by a
        parent."""
        value: Any = self.wire_outputs
        for step in path:
            if isinstance(value, Secret):
                return True
            value = value[step]
        return isinstance(value, Secret)


# ----------------------------------------------------------------------------------------------------
# Property values: the engine's PropertyMap, as plain Python with Secret wrappers
# ----------------------------------------------------------------------------------------------------

def _from_wire(value: Any) -> Any:
    """A protobuf Struct / ListValue / scalar -> plain values, secrets as Secret, keys sorted."""
    if isinstance(value, struct_pb2.Struct):
        if _SIG in value.fields and value[_SIG] == _SECRET_SIG:
            return Secret(_from_wire(value["value"]) if "value" in value.fields else None)
        return {k: _from_wire(value[k]) for k in sorted(value.keys())}
    if isinstance(value, struct_pb2.ListValue):
        return [_from_wire(v) for v in value]
    return value


def _to_plain(value: Any) -> Any:
    """Plain values with Secret wrappers -> what goes into a Struct (secret marker maps)."""
    if isinstance(value, Secret):
        return {_SIG: _SECRET_SIG, "value": _to_plain(value.value)}
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _to_struct(props: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(_to_plain(props))
    return struct


def _is_special(value: Any) -> bool:
    return isinstance(value, dict) and _SIG in value


def _unwrap(value: Any) -> Any:
    """Drop every Secret wrapper."""
    if isinstance(value, Secret):
        return _unwrap(value.value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _contains_secrets(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(_contains_secrets(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secrets(v) for v in value)
    return False


def _annotate_secrets(outs: dict, ins: dict) -> None:
    """provider_plugin.go annotateSecrets: keep the secret bit for providers that do not accept secrets."""
    for key, in_value in ins.items():
        if key not in outs:
            continue
        out_value = outs[key]
        if (isinstance(out_value, dict) and not _is_special(out_value)
                and isinstance(in_value, dict) and not _is_special(in_value)):
            _annotate_secrets(out_value, in_value)
        elif not isinstance(out_value, Secret) and _contains_secrets(in_value):
            outs[key] = Secret(out_value)


def _for_provider(value: Any, keep_unknowns: bool, keep_secrets: bool) -> Any:
    """MarshalProperties for a provider: strip secrets it does not accept, resource refs to IDs/URNs."""
    if isinstance(value, Secret):
        inner = _for_provider(value.value, keep_unknowns, keep_secrets)
        return Secret(inner) if keep_secrets else inner
    if isinstance(value, dict):
        if value.get(_SIG) == _RESOURCE_SIG:
            return value.get("id") or value.get("urn")
        out = {}
        for k, v in value.items():
            if v == UNKNOWN and not keep_unknowns:
                continue
            out[k] = _for_provider(v, keep_unknowns, keep_secrets)
        return out
    if isinstance(value, list):
        return [None if (v == UNKNOWN and not keep_unknowns)
                else _for_provider(v, keep_unknowns, keep_secrets) for v in value]
    return value


def _changed_keys(olds: dict, news: dict) -> list[str]:
    """Top-level keys whose values differ (secretness aside), as the engine's ObjectDiff reports them."""
    keys = set(olds) | set(news)
    return sorted(k for k in keys if k not in olds or k not in news or _unwrap(olds[k]) != _unwrap(news[k]))


_PATH_TOKEN = re.compile(r'\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\.?([^.\[\]]+)')


def _parse_path(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for index, quoted, plain in _PATH_TOKEN.findall(path):
        steps.append(int(index) if index else (quoted if quoted else plain))
    return steps


def _process_ignore_changes(news: dict, olds: dict, ignore_changes: list[str]) -> dict:
    """step_generator.go processIgnoreChanges: ignored paths keep their old values (or stay absent)."""
    result = copy.deepcopy(news)
    invalid = []
    for text in ignore_changes:
        steps = _parse_path(text)
        if not steps:
            continue
        old_parent, new_parent = _walk(olds, steps[:-1]), _walk(result, steps[:-1])
        last = steps[-1]
        has_old = old_parent is not None and _has(old_parent, last)
        if new_parent is None:
            if has_old:
                invalid.append(text)
            continue
        if has_old:
            if isinstance(new_parent, list) and not _has(new_parent, last):
                invalid.append(text)
            else:
                new_parent[last] = copy.deepcopy(old_parent[last])
        elif isinstance(new_parent, dict) and last in new_parent:
            del new_parent[last]
    if invalid:
        raise _EngineError("cannot ignore changes to the following properties because one or more elements"
                           f" of the path are missing: {', '.join(json.dumps(p) for p in invalid)}")
    return result


def _unwrap_once(value: Any) -> Any:
    return value.value if isinstance(value, Secret) else value


def _has(container: Any, step: str | int) -> bool:
    container = _unwrap_once(container)
    if isinstance(step, int):
        return isinstance(container, list) and 0 <= step < len(container)
    return isinstance(container, dict) and step in container


def _walk(value: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if not _has(value, step):
            return None
        value = _unwrap_once(value)[step]
    return _unwrap_once(value)


def _cannot_replace_protected(urn: str) -> str:
    return (f'unable to replace resource "{urn}"\nas it is currently marked for protection. To unprotect the '
            "resource, remove the `protect` flag from the resource in your Pulumi program and run "
            "`pulumi up`")


def _go_value(value: Any) -> str:
    """How the engine's diagnostics print a property value (`{v}`)."""
    value = _unwrap(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool):
        value = str(value).lower()
    return "{" + (value if isinstance(value, str) else json.dumps(value)) + "}"


# ----------------------------------------------------------------------------------------------------
# The dynamic provider plugin: the SDK's own server without its gRPC process (sdk.ProviderServer)
# ----------------------------------------------------------------------------------------------------

class _EngineError(Exception):
    """An error the engine reports (a resource operation or validation failed)."""

    reported = False  # already in the deployment's diagnostics


@dataclass
class _Diff:
    changes: int
    replaces: list[str]
    delete_before_replace: bool
    changed_keys: list[str]


class _DynamicProvider:
    """The `pulumi-python` provider plugin for one deployment, called with the engine's requests."""

    def __init__(self, config: dict[str, str]):
        self._server = sdk.ProviderServer(on_abort=_EngineError)
        response = self._call("Configure", provider_pb2.ConfigureRequest(
            args=_to_struct(config), acceptSecrets=True, acceptResources=True))
        # False for this server: the engine strips secrets on the way in and re-applies them on the way
        # out. It does not declare supportsPreview either, hence no Create/Update in a preview.
        self.accept_secrets = response.acceptSecrets

    def _call(self, method: str, request):
        # Each call runs in a copy of the context: get_provider() calls `configure(Settings(...))`, which
        # must not clobber the program's runtime settings (in the real engine it runs in another process).
        return contextvars.copy_context().run(self._server.call, method, request)

    def _marshal(self, props: dict, keep_unknowns: bool) -> struct_pb2.Struct:
        return _to_struct(_for_provider(props, keep_unknowns, self.accept_secrets))

    @staticmethod
    def _names(urn: str) -> dict:
        return {"urn": urn, "name": _urn_name(urn), "type": _urn_type(urn)}

    def check(self, urn, olds, news, allow_unknowns):
        response = self._call("Check", provider_pb2.CheckRequest(
            olds=self._marshal(olds, allow_unknowns), news=self._marshal(news, allow_unknowns),
            **self._names(urn)))
        inputs = _from_wire(response.inputs)
        if not self.accept_secrets:
            _annotate_secrets(inputs, news)
        return inputs, [(f.property, f.reason) for f in response.failures]

    def diff(self, urn, id_, old_inputs, old_outputs, news, ignore_changes, allow_unknowns) -> _Diff:
        response = self._call("Diff", provider_pb2.DiffRequest(
            id=id_, olds=self._marshal(old_outputs, allow_unknowns), news=self._marshal(news, allow_unknowns),
            old_inputs=self._marshal(old_inputs, allow_unknowns), ignoreChanges=ignore_changes,
            **self._names(urn)))
        return _Diff(response.changes, list(response.replaces), response.deleteBeforeReplace,
                     list(response.diffs))

    def create(self, urn, inputs):
        response = self._call("Create", provider_pb2.CreateRequest(
            properties=self._marshal(inputs, False), preview=False, **self._names(urn)))
        if not response.id:
            raise _EngineError("provider did not return an ID from Create")
        outs = _from_wire(response.properties)
        if not self.accept_secrets:
            _annotate_secrets(outs, inputs)
        return response.id, outs

    def update(self, urn, id_, old_inputs, old_outputs, news, ignore_changes):
        response = self._call("Update", provider_pb2.UpdateRequest(
            id=id_, olds=self._marshal(old_outputs, False), news=self._marshal(news, False),
            old_inputs=self._marshal(old_inputs, False), ignoreChanges=ignore_changes, preview=False,
            **self._names(urn)))
        outs = _from_wire(response.properties)
        if not self.accept_secrets:
            _annotate_secrets(outs, news)
        return outs

    def delete(self, urn, id_, old_inputs, old_outputs):
        self._call("Delete", provider_pb2.DeleteRequest(
            id=id_, properties=self._marshal(old_outputs, False), old_inputs=self._marshal(old_inputs, False),
            **self._names(urn)))


# ----------------------------------------------------------------------------------------------------
# URNs
# ----------------------------------------------------------------------------------------------------

def _urn_parts(urn: str) -> list[str]:
    return urn.split("::", 3)


def _urn_name(urn: str) -> str:
    return _urn_parts(urn)[3]


def _urn_qualified_type(urn: str) -> str:
    return _urn_parts(urn)[2]


def _urn_type(urn: str) -> str:
    return _urn_qualified_type(urn).split("$")[-1]


def _make_urn(stack: str, project: str, parent: str, type_: str, name: str) -> str:
    """resource.NewURN as the step generator calls it: the root stack is not a parent type."""
    if parent and _urn_type(parent) != _STACK_TYPE:
        type_ = _urn_qualified_type(parent) + "$" + type_
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


# ----------------------------------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------------------------------

@dataclass
class _State:
    urn: str
    type: str
    name: str
    custom: bool
    id: str | None
    inputs: dict
    outputs: dict
    options: Options

    @property
    def dynamic(self) -> bool:
        return self.custom and self.type.startswith(_DYNAMIC_PREFIX)

    def record(self) -> Resource:
        return Resource(self.type, self.name, self.urn, self.custom, copy.deepcopy(self.inputs),
                        copy.deepcopy(self.outputs), copy.deepcopy(self.options), self.id)


def _options(request) -> Options:
    aliases: list[str | dict] = list(request.aliasURNs)
    for alias in request.aliases:
        if alias.WhichOneof("alias") == "urn":
            aliases.append(alias.urn)
        else:
            spec = {f.name: v for f, v in alias.spec.ListFields()}
            aliases.append(spec)
    return Options(
        custom=bool(request.custom),
        protect=bool(request.protect),
        retain_on_delete=bool(request.retainOnDelete),
        parent=request.parent or None,
        dependencies=list(request.dependencies),
        provider=request.provider or None,
        delete_before_replace=request.deleteBeforeReplace if request.deleteBeforeReplaceDefined else None,
        ignore_changes=list(request.ignoreChanges),
        replace_on_changes=list(request.replaceOnChanges),
        additional_secret_outputs=list(request.additionalSecretOutputs),
        aliases=aliases,
        deleted_with=request.deletedWith or None,
        remote=bool(request.remote),
    )


# ----------------------------------------------------------------------------------------------------
# One deployment (one up / preview / destroy)
# ----------------------------------------------------------------------------------------------------

class _Deployment:
    def __init__(self, engine: Engine, kind: str):
        self.engine = engine
        self.kind = kind
        self.preview = kind == "preview"
        self.run = EngineRun(kind)
        self.errors: list[str] = []
        self.lock = threading.RLock()
        self.stack_urn = ""
        self.news: dict[str, _State] = {}           # registered this run, in order
        self.seen_olds: set[str] = set()            # old URNs claimed by a registration (URN or alias)
        self.pending_deletes: list[_State] = []     # replaced old instances, deleted at the end
        self.reads: dict[str, _State] = {}          # Resource.get() reads (external, not kept in the state)
        self.deleting: set[str] = set()
        self._provider: _DynamicProvider | None = None

    # -- helpers ------------------------------------------------------------------------------------

    @property
    def provider(self) -> _DynamicProvider:
        if self._provider is None:
            self._provider = _DynamicProvider(self.engine._config_strings)
        return self._provider

    def op(self, op: str, urn: str) -> None:
        self.run.operations.append((op, urn))

    def warn(self, message: str) -> None:
        self.run.log.append(("warning", message))

    def fail(self, message: str) -> _EngineError:
        self.errors.append(message)
        self.run.log.append(("error", message))
        error = _EngineError(message)
        error.reported = True
        return error

    def urn(self, parent: str, type_: str, name: str) -> str:
        return _make_urn(self.engine.stack, self.engine.project, parent, type_, name)

    def find_old(self, urn: str, request, opts: Options) -> _State | None:
        state = self.engine._state
        candidates = [urn]
        for alias in opts.aliases:
            if isinstance(alias, str):
                candidates.append(alias)
            else:
                parent = "" if alias.get("noParent") else (alias.get("parentUrn") or request.parent)
                candidates.append(_make_urn(alias.get("stack") or self.engine.stack,
                                            alias.get("project") or self.engine.project, parent,
                                            alias.get("type") or request.type,
                                            alias.get("name") or request.name))
        for candidate in candidates:
            if candidate in state and candidate not in self.seen_olds:
                return state[candidate]
        return None

    # -- RegisterResource ---------------------------------------------------------------------------

    def register(self, request) -> resource_pb2.RegisterResourceResponse:
        urn = self.urn(request.parent, request.type, request.name)
        if request.type == _STACK_TYPE and not request.parent:
            # The root stack: a step of its own in the plan (created by the first update, the same
            # after that), kept apart from `operations`; its outputs are the stack outputs.
            self.stack_urn = urn
            self.run.stack_operation = ("same" if self.engine._stack_deployed else "create", urn)
            if not self.preview:
                self.engine._stack_deployed = True
            return resource_pb2.RegisterResourceResponse(urn=urn)
        with self.lock:
            if urn in self.news:
                raise self.fail(f"Duplicate resource URN '{urn}'; try giving it a unique name")
            opts = _options(request)
            goal = _from_wire(request.object)
            old = self.find_old(urn, request, opts)
            if old is not None:
                self.seen_olds.add(old.urn)
            try:
                if opts.remote:
                    raise _EngineError("remote (multi-language) components are not supported by "
                                       "tests/engine.py")
                if not opts.custom:
                    new = self.component(urn, request, opts, goal, old)
                elif request.type.startswith(_DYNAMIC_PREFIX):
                    new = self.dynamic(urn, request, opts, goal, old)
                else:
                    new = self.mocked(urn, request, opts, goal, old)
            except _EngineError as exc:
                if exc.reported:
                    raise
                raise self.fail(f"{urn}:\n{exc}") from exc
            self.finish_outputs(new, urn)
            self.news[urn] = new
            self.run.resources[urn] = new.record()
            if not self.preview:
                self.engine._commit(new, old)
        response = resource_pb2.RegisterResourceResponse(urn=urn, id=new.id or "",
                                                         object=_to_struct(new.outputs))
        return response

    def finish_outputs(self, new: _State, urn: str) -> None:
        """step_executor.go: additional secret outputs, and inputs that were secret stay secret."""
        outs = new.outputs
        for key in new.options.additional_secret_outputs:
            if key == "id":
                self.warn(f"{urn}: The 'id' property cannot be made secret. See pulumi/pulumi#2717 for more "
                          "details.")
            elif key in outs and not isinstance(outs[key], Secret):
                outs[key] = Secret(outs[key])
        for key, value in list(outs.items()):
            if not isinstance(value, Secret) and isinstance(new.inputs.get(key), Secret):
                outs[key] = Secret(value)

    def check(self, urn, type_, olds, news) -> dict:
        inputs, failures = self.provider.check(urn, olds, news, self.preview)
        if failures:
            messages = []
            for prop, reason in failures:
                if prop:
                    messages.append(f"{type_} resource '{_urn_name(urn)}'s property '{prop}' value "
                                    f"{_go_value(news.get(prop))} has a problem: {reason}")
                else:
                    messages.append(f"{type_} resource '{_urn_name(urn)}' has a problem: {reason}")
            for message in messages[:-1]:
                self.fail(message)
            raise self.fail(messages[-1])
        return inputs

    def dynamic(self, urn, request, opts, goal, old) -> _State:
        new = _State(urn, request.type, request.name, True, None, {}, {}, opts)
        news = _process_ignore_changes(goal, old.inputs, opts.ignore_changes) if old else goal
        inputs = self.check(urn, request.type, old.inputs if old else {}, news)
        if old is None:
            self.op("create", urn)
            new.inputs = inputs
            if self.preview:
                new.outputs = dict(inputs)
            else:
                new.id, new.outputs = self.provider.create(urn, inputs)
            return new

        diff = self.provider.diff(urn, old.id, old.inputs, old.outputs, inputs, opts.ignore_changes,
                                  self.preview)
        changes, changed = diff.changes, diff.changed_keys
        if changes == provider_pb2.DiffResponse.DIFF_UNKNOWN:
            changed = _changed_keys(old.inputs,
                                    _process_ignore_changes(inputs, old.inputs, opts.ignore_changes))
            changes = provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE
        replaces = list(diff.replaces)
        if changes == provider_pb2.DiffResponse.DIFF_SOME:
            replaces += [k for k in changed if k in opts.replace_on_changes or "*" in opts.replace_on_changes]

        if changes != provider_pb2.DiffResponse.DIFF_SOME:
            self.op("same", urn)
            new.id, new.inputs, new.outputs = old.id, inputs, dict(old.outputs)
            return new
        if not replaces:
            self.op("update", urn)
            new.id, new.inputs = old.id, inputs
            if self.preview:
                new.outputs = dict(inputs)
            else:
                new.outputs = self.provider.update(urn, old.id, old.inputs, old.outputs, inputs,
                                                   opts.ignore_changes)
            return new

        if opts.protect and old.options.protect:
            raise self.fail(_cannot_replace_protected(urn))
        self.op("replace", urn)
        inputs = self.check(urn, request.type, {}, goal)
        new.inputs = inputs
        delete_before_replace = diff.delete_before_replace
        if opts.delete_before_replace is not None:
            delete_before_replace = opts.delete_before_replace
        if self.preview:
            new.outputs = dict(inputs)
            return new
        if delete_before_replace:
            self.delete_state(old, replacing=True)
            new.id, new.outputs = self.provider.create(urn, inputs)
        else:
            new.id, new.outputs = self.provider.create(urn, inputs)
            self.pending_deletes.append(old)
        return new

    def mocked(self, urn, request, opts, goal, old) -> _State:
        """A custom resource of a real provider (aws, gcp, ...): `handlers` stand in for its provider."""
        new = _State(urn, request.type, request.name, True, None, {}, {}, opts)
        inputs = _process_ignore_changes(goal, old.inputs, opts.ignore_changes) if old else goal
        new.inputs = inputs
        if old is not None:
            changed = _changed_keys(old.inputs, inputs)
            if not changed:
                self.op("same", urn)
                new.id, new.outputs = old.id, dict(old.outputs)
                return new
            replace = any(k in opts.replace_on_changes or "*" in opts.replace_on_changes for k in changed)
            if replace and opts.protect and old.options.protect:
                raise self.fail(_cannot_replace_protected(urn))
            self.op("replace" if replace else "update", urn)
            if self.preview:
                new.id, new.outputs = (None if replace else old.id), dict(inputs)
                return new
            new_id, new.outputs = self.call_handler(request, inputs)
            new.id = new_id if replace else old.id
            if replace:
                self.pending_deletes.append(old)
            return new
        self.op("create", urn)
        if self.preview:
            new.outputs = dict(inputs)
            return new
        new.id, new.outputs = self.call_handler(request, inputs)
        if not new.id:
            raise _EngineError("provider did not return an ID from Create")
        return new

    def call_handler(self, request, inputs: dict, resource_id: str = "") -> tuple[str, dict]:
        sdk.ensure_event_loop()
        args = MockResourceArgs(
            typ=request.type, name=request.name, inputs=sdk.deserialize(_to_struct(inputs)),
            provider=request.provider, resource_id=resource_id or getattr(request, "importId", "") or None,
            custom=True)
        handler = self.engine.handlers.get(request.type)
        if handler is None:
            id_, outputs = f"{request.name}_id", args.inputs
        else:
            id_, outputs = handler(args)
        return id_, _from_wire(sdk.serialize(outputs or {}))

    def component(self, urn, request, opts, goal, old) -> _State:
        if old is not None:
            goal = _process_ignore_changes(goal, old.inputs, opts.ignore_changes)
        new = _State(urn, request.type, request.name, False, None, goal, {}, opts)
        if old is None:
            self.op("create", urn)
        elif _unwrap(old.inputs) == _unwrap(goal):
            self.op("same", urn)
            new.outputs = dict(old.outputs)
        else:
            self.op("update", urn)
        return new

    def read(self, request) -> resource_pb2.ReadResourceResponse:
        urn = self.urn(request.parent, request.type, request.name)
        with self.lock:
            opts = Options(custom=True, parent=request.parent or None, provider=request.provider or None,
                           dependencies=list(request.dependencies),
                           additional_secret_outputs=list(request.additionalSecretOutputs))
            inputs = _from_wire(request.properties)
            new = _State(urn, request.type, request.name, True, request.id, inputs, {}, opts)
            self.op("read", urn)
            _, new.outputs = self.call_handler(request, inputs, resource_id=request.id)
            self.finish_outputs(new, urn)
            self.run.resources[urn] = new.record()
            self.reads[urn] = new
        return resource_pb2.ReadResourceResponse(urn=urn, properties=_to_struct(new.outputs))

    def register_outputs(self, request) -> None:
        outputs = _from_wire(request.outputs)
        with self.lock:
            if request.urn == self.stack_urn:
                self.run.wire_outputs = outputs
                self.run.outputs = _unwrap(outputs)
                self.run.secret_outputs = {k for k, v in outputs.items() if isinstance(v, Secret)}
                return
            state = self.news.get(request.urn)
            if state is not None:
                state.outputs = outputs
                self.run.resources[request.urn].outputs = outputs

    # -- deletes ------------------------------------------------------------------------------------

    def delete_state(self, old: _State, replacing: bool = False) -> None:
        """step.go DeleteStep.Apply."""
        if not replacing and old.options.protect:
            raise self.fail(
                f'resource "{old.urn}" cannot be deleted\nbecause it is protected. To unprotect the resource,'
                " either remove the `protect` flag from the resource in your Pulumi program and run "
                f"`pulumi up`, or use the command:\n`pulumi state unprotect '{old.urn}'`")
        if self.preview or old.options.retain_on_delete:
            return
        if old.options.deleted_with and old.options.deleted_with in self.deleting:
            return
        if old.dynamic:
            try:
                self.provider.delete(old.urn, old.id, old.inputs, old.outputs)
            except _EngineError as exc:
                if exc.reported:
                    raise
                raise self.fail(f"{old.urn}:\n{exc}") from exc

    def delete_unregistered(self, states: list[_State], pending: list[_State]) -> None:
        """GenerateDeletes: walk the old state backwards; a protected resource stops the run before any
        delete. Replaced instances (pending deletes) go with them."""
        doomed = [s for s in reversed(states) if s.urn not in self.news and s.urn not in self.seen_olds]
        for state in doomed:
            if state.options.protect:
                self.delete_state(state)  # raises the engine's error
        self.deleting = {s.urn for s in doomed}
        for state in reversed(pending):
            self.delete_state(state, replacing=True)
            if not self.preview and state in self.engine._pending:
                self.engine._pending.remove(state)
        for state in doomed:
            self.op("delete", state.urn)
            self.delete_state(state)
            if not self.preview:
                self.engine._state.pop(state.urn, None)


# ----------------------------------------------------------------------------------------------------
# The monitor and the engine's Log service, as the SDK sees them
# ----------------------------------------------------------------------------------------------------

class _Mocks(Mocks):
    def __init__(self, invoke: Callable | None):
        self._invoke = invoke

    def call(self, args: MockCallArgs):
        if self._invoke is None:
            raise _EngineError(f"invoke {args.token!r} has no handler: pass Engine(..., invoke=fn) where "
                               "fn(token, args) returns the result dict")
        return self._invoke(args.token, args.args)

    def new_resource(self, args):  # pragma: no cover - RegisterResource and ReadResource are overridden
        raise AssertionError("not used")


class _Monitor(sdk.MockMonitor):
    """The stock MockMonitor with the engine's step generation behind RegisterResource."""

    def __init__(self, deployment: _Deployment):
        super().__init__(_Mocks(deployment.engine.invoke))
        self.deployment = deployment

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        return self.deployment.urn(parent, type_, name)

    def RegisterResource(self, request):
        sdk.ensure_event_loop()
        response = self.deployment.register(request)
        if request.type != _STACK_TYPE:
            state = self.deployment.news[response.urn]
            sdk.record_registration(self, response.urn, state.id or "", response.object)
        return response

    def ReadResource(self, request):
        sdk.ensure_event_loop()
        response = self.deployment.read(request)
        state = self.deployment.reads[response.urn]
        sdk.record_registration(self, response.urn, state.id or "", response.properties)
        return response

    def RegisterResourceOutputs(self, request):
        self.deployment.register_outputs(request)
        return empty_pb2.Empty()


class _EngineService:
    """The engine's Log RPC. Debug messages are dropped (the SDK emits many; the CLI hides them too)."""

    def __init__(self, log: list[tuple[str, str]]):
        self._log = log

    def Log(self, request):
        if request.severity != engine_pb2.DEBUG:
            self._log.append((_SEVERITY.get(request.severity, str(request.severity)), request.message))


# ----------------------------------------------------------------------------------------------------
# A process of its own, as far as one Python process allows
# ----------------------------------------------------------------------------------------------------

def _module_location(module: Any) -> str | None:
    file = getattr(module, "__file__", None)
    if not file:
        try:
            paths = list(getattr(module, "__path__", None) or [])
        except Exception:  # noqa: BLE001 - exotic module objects
            paths = []
        file = paths[0] if paths else None
    return os.path.abspath(file) if isinstance(file, str) else None


def _inside(location: str | None, roots: tuple[str, ...]) -> bool:
    return location is not None and any(location == r or location.startswith(r + os.sep) for r in roots)


def _roots(path: Path) -> tuple[str, ...]:
    return tuple({str(path), os.path.realpath(path), os.path.abspath(path)})


def _never_ours() -> tuple[str, ...]:
    """The interpreter's own trees (a project's .venv may live inside the project directory)."""
    import site
    import sysconfig

    places = [Path(sys.prefix), Path(sys.exec_prefix), Path(sys.base_prefix)]
    places += [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    places += [Path(p) for p in sysconfig.get_paths().values()]
    return tuple(root for place in places for root in _roots(place))


_HARNESS_ROOTS = _roots(_HARNESS_DIR)
_INTERPRETER_ROOTS = _never_ours()


class _MonitorThread(ThreadPoolExecutor):  # asyncio's default executor must be a ThreadPoolExecutor
    """The loop's default executor, where the SDK makes its monitor calls: one thread, so the monitor
    sees RPCs in the order the SDK issues them and runs are deterministic.

    It runs every call queued so far, in order, before it reports any of them done. Reporting each
    call alone woke the SDK's final wait (`wait_for_rpcs`, which re-arms a callback on every pending
    Output each time one completes) once per RPC: quadratic in resources. Batched, it wakes about
    once per dependency level, so `up` stays linear (docs/design.md, "Measured speed")."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)  # starts no thread: submit and shutdown are ours
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="pulumi-engine", daemon=True)
        self._thread.start()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        self._calls.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._calls.put(None)
        if wait:
            self._thread.join()

    def _work(self) -> None:
        while True:
            batch = [self._calls.get()]
            while True:
                try:
                    batch.append(self._calls.get_nowait())
                except queue.Empty:
                    break
            finished: list[tuple[Future, Any, BaseException | None]] = []
            for item in batch:
                if item is None:
                    continue
                future, fn, args, kwargs = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    finished.append((future, fn(*args, **kwargs), None))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, as an executor does
                    finished.append((future, None, exc))
            for future, result, error in finished:
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)
            if any(item is None for item in batch):
                return


class _ProgramProcess:
    """cwd = project_dir, project_dir first on sys.path, and the program's modules imported afresh (and
    dropped afterwards), so each run re-executes them like a new `pulumi up` would, and two projects
    with a module of the same name do not see each other's. The harness's own directory is left alone."""

    def __init__(self, project_dir: Path, project: str):
        self.dir = project_dir
        self.project = project
        self.roots = _roots(project_dir)
        names = set()
        for child in project_dir.iterdir():
            if child.name.startswith("."):
                continue
            if child.suffix == ".py":
                names.add(child.stem)
            elif child.is_dir() and any(child.glob("*.py")):
                names.add(child.name)
        names.discard("__main__")
        self.names = names

    def _ours(self, name: str, module: Any) -> bool:
        if name == "__main__" or name == __name__:
            return False
        location = _module_location(module)
        if _inside(location, _HARNESS_ROOTS):
            return False
        if name.split(".")[0] in self.names:  # the project's module shadows any other of that name
            return True
        return not _inside(location, _INTERPRETER_ROOTS) and _inside(location, self.roots)

    def __enter__(self):
        self.cwd = os.getcwd()
        self.env = os.environ.get("PULUMI_PROJECT")
        os.environ["PULUMI_PROJECT"] = self.project
        os.chdir(self.dir)
        self.path_added = str(self.dir) not in sys.path[:1]
        if self.path_added:
            sys.path.insert(0, str(self.dir))
        self.gc_thresholds = gc.get_threshold()
        self.stashed = {n: m for n, m in list(sys.modules.items()) if self._ours(n, m)}
        for name in self.stashed:
            del sys.modules[name]
        return self

    def __exit__(self, *exc):
        # A program may tune the collector for its own process (keyrotation/runtime.py): a real
        # program's process ends, so the harness gives the test process its own settings back.
        gc.unfreeze()
        gc.set_threshold(*self.gc_thresholds)
        for name, module in list(sys.modules.items()):
            if self._ours(name, module):
                del sys.modules[name]
        sys.modules.update(self.stashed)
        if self.path_added and sys.path and sys.path[0] == str(self.dir):
            del sys.path[0]
        os.chdir(self.cwd)
        if self.env is None:
            os.environ.pop("PULUMI_PROJECT", None)
        else:
            os.environ["PULUMI_PROJECT"] = self.env
        return False


# ----------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------

class _YamlLoader(yaml.SafeLoader):
    """YAML as the CLI reads it: timestamps stay strings."""


_YamlLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


def _config_string(key: str, value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"secure"}:
        raise ValueError(f"config {key!r} is a `secure:` value; tests cannot decrypt it, pass config= "
                         "instead")
    if isinstance(value, str):
        return value
    # Objects reach the program JSON-encoded (Go's encoding/json: compact, map keys sorted).
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ----------------------------------------------------------------------------------------------------
# The Engine
# ----------------------------------------------------------------------------------------------------

def _run_path(program: str) -> None:
    """Run the program as the language host does (what its module leaves behind is no result)."""
    runpy.run_path(program, run_name="__main__")


class Engine:
    """A stack: its config, its state, and `up()` / `preview()` / `destroy()` over the real program.

    - `project_dir`: the directory with `Pulumi.yaml` (its `name` is the project) and `__main__.py`.
    - `config`: the full `config:` mapping (keys like "key-rotation:keysets"); None reads
      `Pulumi.<stack>.yaml` (plus defaults from `Pulumi.yaml`) at every run. Non-string values reach the
      program JSON-encoded, as the CLI does. The `config` attribute may be changed between runs.
    - `handlers`: type token -> fn(pulumi.runtime.MockResourceArgs) -> (id, outputs), for custom
      resources of real providers; default id f"{name}_id", outputs = inputs. Called for create, and for
      update/replace when the inputs changed; never in a preview.
    - `invoke`: fn(token, args) -> dict for invokes (`aws.kms.get_public_key`, ...); default raises.
    """

    def __init__(self, project_dir: Path, stack: str, *, config: dict | None = None,
                 handlers: dict[str, Callable] | None = None, invoke: Callable | None = None):
        self.project_dir = Path(project_dir).resolve()
        self.stack = stack
        self.config = config
        self.handlers = dict(handlers or {})
        self.invoke = invoke
        project_file = self.project_dir / "Pulumi.yaml"
        self._project_yaml = _load_yaml(project_file) if project_file.exists() else {}
        self.project = (self._project_yaml or {}).get("name") or self.project_dir.name
        self._state: dict[str, _State] = {}
        self._pending: list[_State] = []
        self._config_strings: dict[str, str] = {}
        self._stack_deployed = False
        # The stack's own SoftHSM2 token, made at the first run that needs one.
        self._token: softhsm.Token | None = None

    # -- public -------------------------------------------------------------------------------------

    def up(self) -> EngineRun:
        """Run the program like `pulumi up` and apply the changes to the state."""
        return self._run("up")

    def preview(self) -> EngineRun:
        """Run the program like `pulumi preview`: Check and Diff only, nothing written, state unchanged."""
        return self._run("preview")

    def destroy(self) -> EngineRun:
        """Delete every resource in the state (reverse order), like `pulumi destroy`."""
        return self._run("destroy")

    @property
    def resources(self) -> dict[str, Resource]:
        """The state, like the stack's checkpoint, by URN (a failed `up()` keeps what it already did)."""
        return {urn: state.record() for urn, state in self._state.items()}

    # -- internals ----------------------------------------------------------------------------------

    def _commit(self, new: _State, old: _State | None) -> None:
        if old is not None and old.urn != new.urn:
            self._state.pop(old.urn, None)  # aliased: the resource now lives under its new URN
        self._state[new.urn] = new

    def _read_config(self) -> dict[str, str]:
        raw: dict[str, Any] = {}
        project_config = (self._project_yaml or {}).get("config") or {}
        for key, spec in project_config.items():
            full = key if ":" in key else f"{self.project}:{key}"
            if isinstance(spec, dict) and ("default" in spec or "value" in spec):
                raw[full] = spec.get("value", spec.get("default"))
            elif not isinstance(spec, dict):
                raw[full] = spec
        if self.config is not None:
            raw.update(self.config)
        else:
            stack_file = self.project_dir / f"Pulumi.{self.stack}.yaml"
            if stack_file.exists():
                raw.update((_load_yaml(stack_file) or {}).get("config") or {})
        strings = {}
        for key, value in raw.items():
            full = key if ":" in key else f"{self.project}:{key}"
            strings[full] = _config_string(full, value)
        return strings

    def _main(self) -> str:
        main = (self._project_yaml or {}).get("main")
        return str(self.project_dir / main) if main else str(self.project_dir)

    def _run(self, kind: str) -> EngineRun:
        with _RUN_LOCK:
            # A program runs in a fresh process under the real engine: each run starts from the
            # interpreter's own pickler and leaves the runtime's process-wide defaults as it found them.
            sdk.fresh_pickler()
            self._config_strings = self._read_config()
            deployment = _Deployment(self, kind)
            deployment.run.config = dict(self._config_strings)
            # A stack with backend pkcs11 runs against a SoftHSM2 token of its own (tests/softhsm.py).
            if self._token is None and any('"pkcs11"' in str(v) for v in self._config_strings.values()):
                self._token = softhsm.new_token()
            with sdk.context_property_defaults_kept():
                with softhsm.active(self._token), _ProgramProcess(self.project_dir, self.project):
                    failure = contextvars.copy_context().run(self._drive, deployment)
                    if failure is None:
                        failure = self._finish(deployment)
                if kind == "up":
                    # The new snapshot lists resources in this run's registration order (later deletes walk
                    # it backwards); whatever a failed run did not reach keeps its place after them.
                    ordered = {urn: self._state[urn] for urn in deployment.news if urn in self._state}
                    ordered.update((urn, st) for urn, st in self._state.items() if urn not in ordered)
                    self._state = ordered
        if failure is not None:
            raise failure
        return deployment.run

    def _finish(self, deployment: _Deployment) -> ProgramFailed | None:
        """After a successful program: the deletes (or, for destroy, everything)."""
        if not deployment.preview:
            self._pending.extend(p for p in deployment.pending_deletes if p not in self._pending)
        pending = list(self._pending) + (list(deployment.pending_deletes) if deployment.preview else [])
        try:
            contextvars.copy_context().run(deployment.delete_unregistered, list(self._state.values()),
                                           pending)
        except _EngineError as exc:
            return self._failed(deployment, exc)
        return None

    def _drive(self, deployment: _Deployment) -> ProgramFailed | None:
        """Inside a copied context: configure the runtime like the language host and run the program."""
        if deployment.kind == "destroy":
            return None
        monitor = _Monitor(deployment)
        configure(Settings(
            project=self.project, stack=self.stack, monitor=monitor,
            engine=_EngineService(deployment.run.log),
            dry_run=deployment.preview, organization="organization", root_directory=str(self.project_dir)))
        sdk.forget_root_resource()
        set_all_config(dict(self._config_strings), [])
        with sdk.kept_thread_event_loop():
            return self._run_program(deployment)

    def _run_program(self, deployment: _Deployment) -> ProgramFailed | None:
        """The program on a loop of its own, as the language host runs it; its failure, if any."""
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _loop, _context: None)  # failures are reported below instead
        # One worker: the monitor sees RPCs in the order the SDK issues them, so runs are deterministic.
        # Completions are reported in batches (see _MonitorThread).
        loop.set_default_executor(_MonitorThread())
        asyncio.set_event_loop(loop)
        program = self._main()
        error: BaseException | None = None
        try:
            loop.run_until_complete(run_in_stack(lambda: _run_path(program)))
        except BaseException as exc:  # noqa: BLE001 - reported as ProgramFailed
            error = exc
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.run_in_executor(None, sdk.close_thread_event_loop))
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
        if error is None and deployment.errors:
            error = _EngineError(deployment.errors[0])
        if error is None:
            return None
        if isinstance(error, KeyboardInterrupt):
            raise error
        if not deployment.preview:
            self._pending.extend(p for p in deployment.pending_deletes if p not in self._pending)
        return self._failed(deployment, error)

    def _failed(self, deployment: _Deployment, error: BaseException) -> ProgramFailed:
        if isinstance(error, (_EngineError, pulumi.RunError)):
            text = str(error)
        else:
            text = f"{type(error).__name__}: {error}"
        lines = [e for e in deployment.errors if e not in text]
        verb = {"preview": "preview", "up": "update", "destroy": "destroy"}[deployment.kind]
        message = "\n".join([*lines, text, f"{verb} failed"])
        failed = ProgramFailed(message, run=deployment.run, errors=list(deployment.errors))
        failed.__cause__ = error
        return failed
