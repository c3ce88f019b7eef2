"""Talk to the REAL policy pack over gRPC, the way the Pulumi CLI does.

The pack is started as `python policy/__main__.py` (the CLI runs the same file through
`python -m pulumi.policy`), its port read from stdout, and driven with
`pulumi.runtime.proto.analyzer_pb2_grpc.AnalyzerStub`:

- `GetAnalyzerInfo`, then the CLI's config reconciliation (pkg/resource/analyzer/config.go
  ReconcilePolicyPackConfig): each policy's schema defaults, overlaid with the JSON file given to
  `--policy-pack-config`, validated against the policy's schema, sent with `Configure`;
- `Analyze` per registered resource with its checked inputs, `AnalyzeStack` once with every
  resource's outputs (plus the root Stack with the stack outputs), both marshalled like
  plugin/analyzer_plugin.go: secrets kept as secret values, unknowns kept, internal `__` keys
  (a dynamic resource's pickled `__provider`) skipped.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jsonschema
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

from tests.engine import EngineRun, Resource, Secret
from tests.project import ROOT

PACK = ROOT / "policy"
CONFIGS = PACK / "config"
_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_LEVELS = {
    "advisory": analyzer_pb2.ADVISORY, "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE, "disabled": analyzer_pb2.DISABLED,
}
_LEVEL_NAMES = {v: k for k, v in _LEVELS.items()}


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str
    """"mandatory" or "advisory", as the CLI reports it."""
    message: str
    urn: str


class PolicyConfigInvalid(Exception):
    """The CLI refuses a `--policy-pack-config` that fails a policy's schema; so do we."""


def _wire(value: Any) -> Any:
    if isinstance(value, Secret):
        return {_SIG: _SECRET_SIG, "value": _wire(value.value)}
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, (list, tuple)):
        return [_wire(v) for v in value]
    return value


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(_wire(props))
    return struct


def _options(resource: Resource) -> analyzer_pb2.AnalyzerResourceOptions:
    opts = resource.options
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=opts.protect,
        ignoreChanges=list(opts.ignore_changes),
        deleteBeforeReplace=bool(opts.delete_before_replace),
        deleteBeforeReplaceDefined=opts.delete_before_replace is not None,
        additionalSecretOutputs=list(opts.additional_secret_outputs),
        aliases=[a for a in opts.aliases if isinstance(a, str)],
        parent=opts.parent or "",
    )


def reconcile(info: analyzer_pb2.AnalyzerInfo, file_config: dict[str, Any]) -> dict[str, tuple[str, dict]]:
    """The CLI's ReconcilePolicyPackConfig: schema defaults, then the file, then validation."""
    result: dict[str, tuple[str, dict]] = {}
    schemas: dict[str, dict] = {}
    for policy in info.policies:
        props = {}
        schema = (json_format.MessageToDict(policy.configSchema.properties) if policy.HasField("configSchema")
                  else {})
        for key, spec in schema.items():
            if "default" in spec:
                props[key] = spec["default"]
        schemas[policy.name] = {"type": "object", "properties": schema,
                                **({"required": list(policy.configSchema.required)}
                                   if policy.configSchema.required else {})}
        result[policy.name] = (_LEVEL_NAMES[policy.enforcementLevel], props)
    given = copy.deepcopy(file_config)
    if isinstance(given.get("all"), str):
        result = {name: (given["all"], props) for name, (_, props) in result.items()}
    for name, value in given.items():
        if name == "all":
            continue
        level, props = result.get(name, ("advisory", {}))
        if isinstance(value, str):
            level = value
        else:
            value = dict(value)
            level = value.pop("enforcementLevel", level)
            props = {**props, **value}
        result[name] = (level, props)
    errors = []
    for name, (_, props) in result.items():
        if name in schemas and schemas[name]["properties"]:
            validator = jsonschema.Draft7Validator(schemas[name])
            errors += [f"{name}: {e.message}" for e in validator.iter_errors(props)]
    if errors:
        raise PolicyConfigInvalid("; ".join(errors))
    return result


class PolicyPackProcess:
    """The policy pack running as its own process, as `pulumi preview --policy-pack policy` runs it."""

    def __init__(self, pack: Path = PACK, *, via_cli_launcher: bool = False):
        self.pack = pack
        # The CLI's launcher (pulumi-analyzer-policy-python) runs `python -u -m pulumi.policy
        # <engine address> <pack directory>`, which runs __main__.py through runpy.
        self.command = ([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(pack)]
                        if via_cli_launcher else [sys.executable, str(pack / "__main__.py")])
        self.channel: grpc.Channel | None = None
        # Set by __enter__: the pack's process and the analyzer's client.
        self.process: subprocess.Popen[bytes]
        self.stub: analyzer_pb2_grpc.AnalyzerStub

    def __enter__(self) -> PolicyPackProcess:
        self.process = subprocess.Popen(self.command, cwd=self.pack, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        assert self.process.stdout is not None and self.process.stderr is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.isdigit():
            self.process.kill()
            raise RuntimeError(f"the policy pack did not print its port: {line!r}\n"
                               f"{self.process.stderr.read().decode()}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.channel is not None:
            self.channel.close()
        self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    # -- the CLI's calls --------------------------------------------------------------------------

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty())

    def configure(self, config: dict[str, Any] | Path | str, *,
                  now: str | None = None) -> dict[str, tuple[str, dict]]:
        """Send a `--policy-pack-config` (a path or its parsed JSON); `now` pins every clock."""
        settings: dict[str, Any] = (json.loads(Path(config).read_text()) if isinstance(config, (Path, str))
                                    else config)
        info = self.info()
        reconciled = reconcile(info, settings)
        if now is not None:
            for policy in info.policies:
                if "now" in json_format.MessageToDict(policy.configSchema.properties):
                    level, props = reconciled[policy.name]
                    reconciled[policy.name] = (level, {**props, "now": now})
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, (level, props) in reconciled.items():
            request.policyConfig[name].CopyFrom(analyzer_pb2.PolicyConfig(
                enforcementLevel=_LEVELS[level], properties=_struct(props)))
        self.stub.Configure(request)
        return reconciled

    def configure_stack(self, run: EngineRun, *, stack: str, project: str = "key-rotation") -> None:
        """`ConfigureStack`: the stack, the project and the stack config (key -> string, secrets
        decrypted), as the CLI sends them once it has loaded the pack (plugin/analyzer_plugin.go)."""
        self.stub.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(
            stack=stack, project=project, organization="organization", dry_run=run.kind == "preview",
            config=run.config))

    def analyze(self, run: EngineRun, *, stack: str, project: str = "key-rotation") -> list[Diagnostic]:
        """`Analyze` for every registered resource, then `AnalyzeStack`: all diagnostics, in order."""
        self.configure_stack(run, stack=stack, project=project)
        diagnostics: list[Diagnostic] = []
        for resource in run.resources.values():
            if resource.type.startswith("pulumi:providers:"):
                continue
            response = self.stub.Analyze(analyzer_pb2.AnalyzeRequest(
                type=resource.type, properties=_struct(resource.inputs), urn=resource.urn,
                name=resource.name, options=_options(resource)))
            # A resource policy's diagnostics belong to the resource analyzed (the CLI attaches them).
            diagnostics += [d if d.urn else Diagnostic(d.policy, d.level, d.message, resource.urn)
                            for d in _diagnostics(response)]
        diagnostics += self.analyze_stack(run, stack=stack, project=project)
        return diagnostics

    def analyze_stack(self, run: EngineRun, *, stack: str, project: str = "key-rotation") -> list[Diagnostic]:
        self.configure_stack(run, stack=stack, project=project)
        root = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
        request = analyzer_pb2.AnalyzeStackRequest()
        request.resources.append(analyzer_pb2.AnalyzerResource(
            type="pulumi:pulumi:Stack", properties=_struct(run.wire_outputs), urn=root,
            name=f"{project}-{stack}"))
        for resource in run.resources.values():
            request.resources.append(analyzer_pb2.AnalyzerResource(
                type=resource.type, properties=_struct(resource.outputs), urn=resource.urn,
                name=resource.name, options=_options(resource), parent=resource.options.parent or root,
                dependencies=list(resource.options.dependencies)))
        return _diagnostics(self.stub.AnalyzeStack(request))


def _diagnostics(response: analyzer_pb2.AnalyzeResponse) -> list[Diagnostic]:
    return [Diagnostic(d.policyName, _LEVEL_NAMES[d.enforcementLevel], d.message, d.urn)
            for d in response.diagnostics]


# ---------------------------------------------------------------------------------------------
# Hand-built arguments for unit tests of single policies (what the analyzer server builds)


def urn_of(resource_type: str, name: str, stack: str = "test") -> str:
    return f"urn:pulumi:{stack}::key-rotation::{resource_type}::{name}"


def resource_options(*, protect: bool = True, parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def resource_args(resource_type: str, props: dict[str, Any], *, name: str = "key", config: dict | None = None,
                  protect: bool = True, unknown_checking: bool = True) -> ResourceValidationArgs:
    """ResourceValidationArgs as `Analyze` builds them (props behind the unknown-checking proxy)."""
    wrapped = unknown_checking_proxy(copy.deepcopy(props)) if unknown_checking else props
    return ResourceValidationArgs(resource_type, wrapped, urn_of(resource_type, name), name,
                                  resource_options(protect=protect), None, config or {})


def stack_args(resources: list[PolicyResource], config: dict | None = None) -> StackValidationArgs:
    return StackValidationArgs(resources, config or {})


def stack_resource(resource_type: str, props: dict[str, Any], *, name: str = "r", protect: bool = True,
                   dependencies: list[PolicyResource] | None = None, parent: PolicyResource | None = None,
                   ) -> PolicyResource:
    """A PolicyResource as `AnalyzeStack` builds it (outputs behind the unknown-checking proxy)."""
    return PolicyResource(resource_type, unknown_checking_proxy(copy.deepcopy(props)),
                          urn_of(resource_type, name),
                          name, resource_options(protect=protect, parent=parent.urn if parent else None),
                          None,
                          parent, list(dependencies or []), {})


def violations(policy: ResourceValidationPolicy | StackValidationPolicy,
               args: Any) -> list[tuple[str, str | None]]:
    """(message, urn) of every violation the policy reports for these args."""
    found: list[tuple[str, str | None]] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append((message, urn))

    policy.validate(args, report)
    return found


def messages(policy: ResourceValidationPolicy | StackValidationPolicy, args: Any) -> list[str]:
    return [message for message, _ in violations(policy, args)]
