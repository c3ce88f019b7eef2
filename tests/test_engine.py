"""tests/engine.py behaves like the Pulumi engine: proven on tiny throwaway programs.

Each test writes a project into tmp_path: Pulumi.yaml, a `thingprov` module with a dynamic provider that
writes files (and logs every call to calls.log in the project directory, its working directory), and a
`__main__.py`.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pulumi
import pytest

from tests.engine import UNKNOWN, Engine, ProgramFailed, Secret

PROVIDER = '''
import json
import os

import pulumi
from pulumi.dynamic import (CheckFailure, CheckResult, CreateResult, DiffResult, Resource, ResourceProvider,
                            UpdateResult)

FLAVOUR = "plain"


def _log(op, **fields):
    with open("calls.log", "a") as handle:
        handle.write(json.dumps({"op": op, **fields}) + "\\n")


def _write(path, content):
    with open(path, "w") as handle:
        handle.write(content.upper() if FLAVOUR == "upper" else content)


class ThingProvider(ResourceProvider):
    def configure(self, req):
        _log("configure", dir=req.config.get("dir"))

    def check(self, olds, news):
        _log("check", olds=olds, news=news)
        failures = [CheckFailure("content", "must not be 'bad'")] if news.get("content") == "bad" else []
        return CheckResult(news, failures)

    def diff(self, id, olds, news):
        _log("diff", id=id, olds=olds, news=news)
        if FLAVOUR == "unknown-diff":
            return DiffResult()  # changes=None: DIFF_UNKNOWN, the engine diffs the inputs itself
        changed = [k for k in ("content", "fname", "count") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[k for k in changed if k == "fname"])

    def create(self, props):
        _log("create", props=props)
        path = os.path.join(props["dir"], props["fname"])
        _write(path, props["content"])
        return CreateResult(path, {**props, "path": path, "size": len(props["content"])})

    def update(self, id, olds, news):
        _log("update", id=id, olds=olds, news=news)
        _write(olds["path"], news["content"])
        return UpdateResult({**news, "path": olds["path"], "size": len(news["content"])})

    def delete(self, id, props):
        _log("delete", id=id, props=props)
        os.remove(props["path"])


class Thing(Resource, module="test", name="Thing"):
    path: pulumi.Output[str]
    size: pulumi.Output[float]

    def __init__(self, name, dir, fname, content, count=1, opts=None):
        props = {"dir": dir, "fname": fname, "content": content, "count": count, "path": None, "size": None}
        super().__init__(ThingProvider(), name, props, opts)
'''

THINGS = '''
import pulumi
from thingprov import Thing

cfg = pulumi.Config()
paths, contents, sizes = {}, {}, {}
for name, spec in cfg.require_object("things").items():
    opts = pulumi.ResourceOptions(
        protect=spec.get("protect", False), retain_on_delete=spec.get("retain", False),
        delete_before_replace=spec.get("dbr"), additional_secret_outputs=spec.get("secretOutputs", []),
        replace_on_changes=spec.get("replaceOnChanges"))
    content = pulumi.Output.secret(spec["content"]) if spec.get("secret") else spec["content"]
    thing = Thing(name, cfg.require("dir"), spec.get("fname", name + ".txt"), content, spec.get("count", 1),
                  opts)
    paths[name], contents[name], sizes[name] = thing.path, thing.content, thing.size
pulumi.export("paths", paths)
pulumi.export("contents", contents)
pulumi.export("sizes", sizes)
'''

DYN = "pulumi-python:dynamic/test:Thing"


@pytest.fixture
def project(tmp_path):
    """make(main, name=..., sub=..., provider=...) -> a project directory with an `out/` directory."""

    def make(main: str = THINGS, *, name: str = "proj", sub: str = "p", provider: str = PROVIDER) -> Path:
        directory = tmp_path / sub
        (directory / "out").mkdir(parents=True)
        (directory / "Pulumi.yaml").write_text(f"name: {name}\nruntime: python\n")
        (directory / "thingprov.py").write_text(provider)
        (directory / "__main__.py").write_text(textwrap.dedent(main))
        return directory

    return make


def things_engine(directory: Path, **things) -> Engine:
    return Engine(directory, "dev", config={"proj:dir": str(directory / "out"), "proj:things": things})


def config_of(engine: Engine) -> dict:
    """The config a test gave the engine, to change between runs."""
    assert engine.config is not None, "the test gave the engine its config"
    return engine.config


def calls(directory: Path, *, configure: bool = False) -> list[dict]:
    """The provider calls since the last look (configure() calls only when asked)."""
    log = directory / "calls.log"
    if not log.exists():
        return []
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    log.unlink()
    return [e for e in entries if configure or e["op"] != "configure"]


def ops(run) -> list[tuple[str, str]]:
    return [(op, urn.rsplit("::", 1)[1]) for op, urn in run.operations]


# ---------------------------------------------------------------------------------------------------
# The dynamic provider lifecycle
# ---------------------------------------------------------------------------------------------------

def test_first_up_checks_then_creates_through_the_wire(project):
    d = project()
    engine = things_engine(d, a={"content": "hello", "count": 3})
    run = engine.up()

    assert ops(run) == [("create", "a")]
    assert (d / "out" / "a.txt").read_text() == "hello"
    thing = run.named("a")
    assert thing.type == DYN and thing.custom and thing.id == str(d / "out" / "a.txt")
    # The engine's view: wire names, numbers as floats, the pickled provider always a secret.
    assert thing.inputs["count"] == 3.0 and isinstance(thing.inputs["count"], float)
    assert isinstance(thing.inputs["__provider"], Secret)
    assert thing.outputs["path"] == str(d / "out" / "a.txt") and thing.outputs["size"] == 5.0
    assert run.outputs["paths"] == {"a": str(d / "out" / "a.txt")}
    assert run.outputs["sizes"] == {"a": 5}


def test_the_root_stack_is_planned_like_the_engine_plans_it(project):
    d = project()
    engine = things_engine(d, a={"content": "hello", "count": 3})
    stack = "urn:pulumi:dev::proj::pulumi:pulumi:Stack::proj-dev"
    assert engine.preview().stack_operation == ("create", stack)
    assert engine.up().stack_operation == ("create", stack)
    assert engine.preview().stack_operation == ("same", stack)
    assert engine.up().stack_operation == ("same", stack)


def test_provider_sees_olds_and_news_as_the_engine_passes_them(project):
    d = project()
    engine = things_engine(d, a={"content": "hello", "count": 3})
    engine.up()
    first = calls(d)
    assert [c["op"] for c in first] == ["check", "create"]
    check, create = first
    assert check["olds"] == {}
    # The provider got the pickled provider as a plain string (secrets stripped) and floats for numbers.
    assert isinstance(check["news"]["__provider"], str) and check["news"]["count"] == 3.0
    assert create["props"] == check["news"]

    config_of(engine)["proj:things"] = {"a": {"content": "HELLO", "count": 3}}
    engine.up()
    check, diff, update = calls(d)
    assert (check["op"], diff["op"], update["op"]) == ("check", "diff", "update")
    assert check["olds"]["content"] == "hello" and "path" not in check["olds"]  # Check: old *inputs*
    assert diff["olds"]["path"] == str(d / "out" / "a.txt")                      # Diff: old *outputs*
    assert update["olds"]["size"] == 5.0 and update["news"]["content"] == "HELLO"


def test_each_run_configures_the_provider_once_with_the_stack_config(project):
    d = project()
    engine = things_engine(d, a={"content": "x"}, b={"content": "y"})
    engine.up()
    engine.up()

    configures = [c for c in calls(d, configure=True) if c["op"] == "configure"]
    # One provider process per run; configure() once per serialized provider; the whole stack config,
    # namespaced keys resolved against the project name.
    assert configures == [{"op": "configure", "dir": str(d / "out")}] * 2


def test_second_up_with_same_inputs_updates_and_writes_nothing(project):
    d = project()
    engine = things_engine(d, a={"content": "hello"})
    engine.up()
    calls(d)
    target = d / "out" / "a.txt"
    before = target.stat().st_mtime_ns

    run = engine.up()

    assert ops(run) == [("same", "a")]
    assert [c["op"] for c in calls(d)] == ["check", "diff"]
    assert target.stat().st_mtime_ns == before
    assert run.named("a").outputs["path"] == str(target)  # the old outputs, kept
    assert run.outputs["paths"] == {"a": str(target)}


def test_changed_inputs_call_update(project):
    d = project()
    engine = things_engine(d, a={"content": "hello"})
    engine.up()
    config_of(engine)["proj:things"] = {"a": {"content": "changed"}}

    run = engine.up()

    assert ops(run) == [("update", "a")]
    assert (d / "out" / "a.txt").read_text() == "changed"
    assert run.named("a").outputs["size"] == 7.0
    assert run.named("a").id == str(d / "out" / "a.txt")


def test_replacement_creates_the_new_then_deletes_the_old(project):
    d = project()
    engine = things_engine(d, a={"content": "x"})
    engine.up()
    calls(d)
    config_of(engine)["proj:things"] = {"a": {"content": "x", "fname": "moved.txt"}}

    run = engine.up()

    assert ops(run) == [("replace", "a")]
    assert [c["op"] for c in calls(d)] == ["check", "diff", "check", "create", "delete"]
    assert (d / "out" / "moved.txt").exists() and not (d / "out" / "a.txt").exists()
    assert run.named("a").id == str(d / "out" / "moved.txt")


def test_delete_before_replace_deletes_first(project):
    d = project()
    engine = things_engine(d, a={"content": "x", "dbr": True})
    engine.up()
    calls(d)
    config_of(engine)["proj:things"] = {"a": {"content": "x", "dbr": True, "fname": "moved.txt"}}

    run = engine.up()

    assert run.named("a").options.delete_before_replace is True
    assert [c["op"] for c in calls(d)] == ["check", "diff", "check", "delete", "create"]


@pytest.mark.parametrize(("flavour", "expected", "sequence"), [
    ("plain", "update", ["check", "diff", "update"]),
    ("unknown-diff", "replace", ["check", "diff", "check", "create", "delete"]),
])
def test_replace_on_changes_applies_to_the_keys_a_diff_reports(project, flavour, expected, sequence):
    """The SDK's dynamic server never fills DiffResponse.diffs, so replaceOnChanges only bites when the
    provider's diff is DIFF_UNKNOWN and the engine computes the changed keys (step_generator.go)."""
    d = project(provider=PROVIDER.replace('FLAVOUR = "plain"', f'FLAVOUR = "{flavour}"'))
    engine = things_engine(d, a={"content": "x", "replaceOnChanges": ["content"]})
    engine.up()
    calls(d)
    config_of(engine)["proj:things"] = {"a": {"content": "y", "replaceOnChanges": ["content"]}}

    assert ops(engine.up()) == [(expected, "a")]
    assert [c["op"] for c in calls(d)] == sequence


def test_removed_resource_is_deleted_at_the_end(project):
    d = project()
    engine = things_engine(d, a={"content": "x"}, b={"content": "y"})
    engine.up()
    calls(d)
    config_of(engine)["proj:things"] = {"a": {"content": "x"}}

    run = engine.up()

    assert ops(run) == [("same", "a"), ("delete", "b")]
    deleted = [c for c in calls(d) if c["op"] == "delete"]
    assert [c["id"] for c in deleted] == [str(d / "out" / "b.txt")]
    assert deleted[0]["props"]["size"] == 1.0  # Delete gets the old outputs
    assert not (d / "out" / "b.txt").exists()
    assert [r.name for r in engine.resources.values()] == ["a"]


def test_protected_resource_cannot_be_deleted(project):
    d = project()
    engine = things_engine(d, a={"content": "x", "protect": True})
    engine.up()
    config_of(engine)["proj:things"] = {}

    with pytest.raises(ProgramFailed, match="cannot be deleted\nbecause it is protected") as failed:
        engine.up()

    assert f'resource "urn:pulumi:dev::proj::{DYN}::a"' in str(failed.value)
    assert (d / "out" / "a.txt").exists()
    assert [r.name for r in engine.resources.values()] == ["a"]
    # Unprotect it (a run that registers it without protect), then it can go.
    config_of(engine)["proj:things"] = {"a": {"content": "x"}}
    engine.up()
    config_of(engine)["proj:things"] = {}
    assert ops(engine.up()) == [("delete", "a")]
    assert not (d / "out" / "a.txt").exists()


def test_retain_on_delete_drops_from_state_without_calling_delete(project):
    d = project()
    engine = things_engine(d, a={"content": "x", "retain": True})
    engine.up()
    calls(d)
    config_of(engine)["proj:things"] = {}

    run = engine.up()

    assert ops(run) == [("delete", "a")]
    assert calls(d) == []
    assert (d / "out" / "a.txt").exists()
    assert engine.resources == {}


def test_check_failures_fail_the_run_naming_resource_and_property(project):
    d = project()
    engine = things_engine(d, ok={"content": "fine"}, bad={"content": "bad"})

    with pytest.raises(ProgramFailed) as failed:
        engine.up()

    message = str(failed.value)
    assert (f"{DYN} resource 'bad's property 'content' value {{bad}} has a problem: must not be 'bad'"
            in message)
    assert "bad" not in [c["props"]["content"] for c in calls(d) if c["op"] == "create"]
    assert not (d / "out" / "bad.txt").exists()


def test_destroy_deletes_everything_and_refuses_protected(project):
    d = project()
    engine = things_engine(d, a={"content": "x"}, b={"content": "y", "protect": True})
    engine.up()
    calls(d)

    with pytest.raises(ProgramFailed, match="because it is protected"):
        engine.destroy()
    assert calls(d) == []  # nothing deleted: the protect check comes first

    config_of(engine)["proj:things"] = {"a": {"content": "x"}, "b": {"content": "y"}}
    engine.up()
    run = engine.destroy()
    assert sorted(ops(run)) == [("delete", "a"), ("delete", "b")]
    assert [c["op"] for c in calls(d)] == ["check", "diff", "check", "diff", "delete", "delete"]
    assert list((d / "out").iterdir()) == []
    assert engine.resources == {}


# ---------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------

def test_additional_secret_outputs_make_outputs_secret(project):
    d = project()
    engine = things_engine(d, a={"content": "x", "secretOutputs": ["size"]}, b={"content": "y"})
    run = engine.up()

    assert run.named("a").outputs["size"] == Secret(1.0)
    assert run.named("b").outputs["size"] == 1.0
    assert run.named("a").options.additional_secret_outputs == ["size"]
    # ... and the program sees a secret Output: its export is secret.
    assert run.is_secret("sizes", "a") and not run.is_secret("sizes", "b")
    assert run.outputs["sizes"] == {"a": 1, "b": 1}


def test_secret_inputs_reach_the_provider_plain_and_come_back_secret(project):
    d = project()
    run = things_engine(d, a={"content": "hush", "secret": True}).up()

    check, create = calls(d)
    assert check["news"]["content"] == "hush" and create["props"]["content"] == "hush"
    thing = run.named("a")
    assert thing.inputs["content"] == Secret("hush")
    assert thing.outputs["content"] == Secret("hush")  # annotateSecrets
    assert thing.outputs["path"] == str(d / "out" / "a.txt")
    assert run.is_secret("contents", "a") and not run.is_secret("paths", "a")


def test_stack_outputs_keep_their_secretness(project):
    d = project('''
        import pulumi
        pulumi.export("plain", 1)
        pulumi.export("token", pulumi.Output.secret("s3cret"))
        pulumi.export("nested", {"a": pulumi.Output.secret("x"), "b": [1, 2]})
    ''')
    run = Engine(d, "dev", config={}).up()

    assert run.outputs == {"plain": 1, "token": "s3cret", "nested": {"a": "x", "b": [1, 2]}}
    assert run.secret_outputs == {"token"}
    assert run.wire_outputs["token"] == Secret("s3cret")
    assert run.is_secret("token") and run.is_secret("nested", "a")
    assert not run.is_secret("nested") and not run.is_secret("nested", "b", 0) and not run.is_secret("plain")


# ---------------------------------------------------------------------------------------------------
# Preview
# ---------------------------------------------------------------------------------------------------

def test_preview_never_writes_and_computed_outputs_are_unknown(project):
    d = project()
    engine = things_engine(d, a={"content": "hello"})

    run = engine.preview()

    assert ops(run) == [("create", "a")]
    assert [c["op"] for c in calls(d)] == ["check"]
    assert list((d / "out").iterdir()) == []
    assert engine.resources == {}
    # Dynamic providers do not support previews: the engine hands back the inputs as the state, so inputs
    # stay known and what only create() computes is unknown to the program.
    assert run.outputs["contents"] == {"a": "hello"}
    assert run.outputs["paths"] == {"a": UNKNOWN}
    assert run.named("a").id is None


def test_preview_of_a_change_diffs_but_does_not_update(project):
    d = project()
    engine = things_engine(d, a={"content": "hello"}, b={"content": "bye"})
    engine.up()
    calls(d)
    config_of(engine)["proj:things"] = {"a": {"content": "changed"}}

    run = engine.preview()

    assert ops(run) == [("update", "a"), ("delete", "b")]
    assert [c["op"] for c in calls(d)] == ["check", "diff"]
    assert (d / "out" / "a.txt").read_text() == "hello" and (d / "out" / "b.txt").exists()
    assert run.outputs["contents"] == {"a": "changed"} and run.outputs["paths"] == {"a": UNKNOWN}
    assert sorted(r.name for r in engine.resources.values()) == ["a", "b"]  # state unchanged
    assert ops(engine.up()) == [("update", "a"), ("delete", "b")]


# ---------------------------------------------------------------------------------------------------
# Options, handlers, invokes, logs, config
# ---------------------------------------------------------------------------------------------------

OPTIONS = '''
import pulumi

class Box(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("test:index:Box", name, None, opts)
        self.register_outputs({"label": "boxed"})

prov = pulumi.ProviderResource("test", "prov", {"region": "eu"})
box = Box("box")
first = pulumi.CustomResource("test:index:Widget", "first", {"size": 1})
widget = pulumi.CustomResource(
    "test:index:Widget", "w", {"size": 2, "tags": {"a": "b"}, "arn": None},
    pulumi.ResourceOptions(
        parent=box, protect=True, retain_on_delete=True, depends_on=[first], provider=prov,
        delete_before_replace=True, ignore_changes=["tags"], additional_secret_outputs=["arn"],
        aliases=[pulumi.Alias(name="old-w")], replace_on_changes=["size"]))
pulumi.export("arn", widget.arn)
pulumi.export("invoked", pulumi.runtime.invoke("test:index:getThing", {"n": 1}).value)
pulumi.log.info("hello from the program")
pulumi.log.warn("careful")
'''


def test_options_are_recorded_from_the_request(project):
    d = project(OPTIONS)
    seen = []

    def invoke(token: str, args: dict) -> dict:
        seen.append((token, args))
        return {"echo": args["n"]}

    engine = Engine(
        d, "dev", config={},
        handlers={"test:index:Widget": lambda args: (f"{args.name}-123",
                                                     {**args.inputs, "arn": f"arn:{args.name}"})},
        invoke=invoke)
    run = engine.up()

    stack = "urn:pulumi:dev::proj::pulumi:pulumi:Stack::proj-dev"
    box, widget = run.named("box"), run.named("w")
    assert box.urn == "urn:pulumi:dev::proj::test:index:Box::box" and not box.custom
    assert box.outputs == {"label": "boxed"} and box.options.parent == stack
    assert widget.urn == "urn:pulumi:dev::proj::test:index:Box$test:index:Widget::w"
    assert widget.id == "w-123" and widget.outputs["arn"] == Secret("arn:w")
    o = widget.options
    assert (o.custom, o.protect, o.retain_on_delete, o.delete_before_replace) == (True, True, True, True)
    assert o.parent == box.urn
    assert o.dependencies == [run.named("first").urn]
    assert o.provider == f"{run.named('prov').urn}::prov_id"
    assert o.ignore_changes == ["tags"] and o.replace_on_changes == ["size"]
    assert o.additional_secret_outputs == ["arn"]
    assert o.aliases and all(isinstance(a, (str, dict)) for a in o.aliases)
    assert run.named("prov").type == "pulumi:providers:test"
    assert (run.named("first").options.protect is False
            and run.named("first").options.delete_before_replace is None)
    # Handler outputs, invokes and logs.
    assert run.outputs["arn"] == "arn:w" and run.secret_outputs == {"arn"}
    assert seen == [("test:index:getThing", {"n": 1})]
    assert run.outputs["invoked"] == {"echo": 1}
    assert ("info", "hello from the program") in run.log and ("warning", "careful") in run.log
    assert [op for op, _ in run.operations] == ["create"] * 4


def test_mocked_resources_diff_on_inputs_and_honour_ignore_changes(project):
    d = project('''
        import pulumi
        cfg = pulumi.Config()
        pulumi.CustomResource("test:index:Widget", "w",
                              {"size": cfg.get_int("size"), "tags": {"v": cfg.get("tag")}},
                              pulumi.ResourceOptions(ignore_changes=["tags"], replace_on_changes=["size"]))
    ''')
    made = []

    def create(args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        made.append(args.inputs)
        return f"w{len(made)}", args.inputs

    engine = Engine(d, "dev", config={"proj:size": 1, "proj:tag": "a"},
                    handlers={"test:index:Widget": create})
    assert ops(engine.up()) == [("create", "w")]
    config_of(engine)["proj:tag"] = "b"  # ignored
    run = engine.up()
    assert ops(run) == [("same", "w")] and len(made) == 1
    assert run.named("w").inputs["tags"] == {"v": "a"}
    config_of(engine)["proj:size"] = 2  # replaceOnChanges
    run = engine.up()
    assert ops(run) == [("replace", "w")] and run.named("w").id == "w2"


def test_aliases_carry_state_over_and_gets_are_reads(project):
    d = project('''
        import pulumi
        name = pulumi.Config().get("name") or "w"
        aliases = [pulumi.Alias(name="w")] if name != "w" else []
        pulumi.CustomResource("test:index:Widget", name, {"size": 1}, pulumi.ResourceOptions(aliases=aliases))
        got = pulumi.CustomResource("test:index:Widget", "got", {"arn": None},
                                    pulumi.ResourceOptions(id="abc"))
        pulumi.export("arn", got.arn)
    ''')
    ids = []

    def read(args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        ids.append(args.resource_id)
        return "w1", {**args.inputs, "arn": f"arn:{args.resource_id}"}

    engine = Engine(d, "dev", config={}, handlers={"test:index:Widget": read})
    first = engine.up()
    config_of(engine)["proj:name"] = "renamed"
    run = engine.up()

    assert ops(first) == [("create", "w"), ("read", "got")] and first.outputs == {"arn": "arn:abc"}
    assert ops(run) == [("same", "renamed"), ("read", "got")]
    assert ids == [None, "abc", "abc"]
    assert [r.name for r in engine.resources.values()] == ["renamed"]  # reads are not kept in the state


def test_default_invoke_fails_naming_the_token(project):
    d = project('''
        import pulumi
        pulumi.export("x", pulumi.runtime.invoke("aws:kms/getPublicKey:getPublicKey", {"keyId": "k"}).value)
    ''')
    with pytest.raises(ProgramFailed, match="aws:kms/getPublicKey:getPublicKey"):
        Engine(d, "dev", config={}).up()


def test_config_is_read_from_the_stack_file_and_encoded_like_the_cli(project):
    d = project('''
        import pulumi
        cfg = pulumi.Config()
        pulumi.export("obj", cfg.get("obj"))
        pulumi.export("n", cfg.get("n"))
        pulumi.export("when", cfg.get("when"))
        pulumi.export("parsed", cfg.require_object("obj"))
    ''')
    (d / "Pulumi.dev.yaml").write_text(textwrap.dedent('''
        config:
          proj:obj: {zeta: 1, alpha: [true, "x"]}
          proj:n: 3
          proj:when: 2026-11-09T09:00:00Z
    '''))
    run = Engine(d, "dev").up()

    assert run.outputs["obj"] == '{"alpha":[true,"x"],"zeta":1}'
    assert run.outputs["n"] == "3"
    assert run.outputs["when"] == "2026-11-09T09:00:00Z"
    assert run.outputs["parsed"] == {"alpha": [True, "x"], "zeta": 1}


# ---------------------------------------------------------------------------------------------------
# Failures and isolation
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "expected"), [
    ('raise ValueError("boom before anything")', "ValueError: boom before anything"),
    ('raise pulumi.RunError("stack config is invalid")', "stack config is invalid"),
    ('pulumi.Output.from_input(1).apply(lambda v: 1 / 0)', "ZeroDivisionError"),
])
def test_a_raising_program_fails_the_run(project, body, expected):
    d = project(f"import pulumi\n{body}\n")

    with pytest.raises(ProgramFailed, match=expected) as failed:
        Engine(d, "dev", config={}).up()

    assert failed.value.run.resources == {}
    assert failed.value.__cause__ is not None


def test_a_failed_program_deletes_nothing(project):
    d = project(THINGS + "\nif pulumi.Config().get_bool('explode'):\n"
                         "    raise RuntimeError('late failure')\n")
    engine = things_engine(d, a={"content": "x"}, b={"content": "y"})
    engine.up()
    config_of(engine).update({"proj:things": {"a": {"content": "x"}}, "proj:explode": True})

    with pytest.raises(ProgramFailed, match="late failure") as failed:
        engine.up()

    assert ops(failed.value.run) == [("same", "a")]
    assert (d / "out" / "b.txt").exists() and sorted(engine.resources) == sorted(
        f"urn:pulumi:dev::proj::{DYN}::{n}" for n in ("a", "b"))


def test_two_engines_in_one_process_do_not_interfere(project):
    one = project(sub="one")
    two = project(sub="two", provider=PROVIDER.replace('FLAVOUR = "plain"', 'FLAVOUR = "upper"'))
    first, second = things_engine(one, a={"content": "one"}), things_engine(two, a={"content": "two"})

    assert ops(first.up()) == [("create", "a")]
    assert ops(second.up()) == [("create", "a")]
    assert ops(first.up()) == [("same", "a")]
    second.destroy()

    # Same module name, two projects: each run imported its own `thingprov`.
    assert (one / "out" / "a.txt").read_text() == "one"
    assert not (two / "out" / "a.txt").exists()
    assert [c["op"] for c in calls(two)] == ["check", "create", "delete"]
    assert [r.name for r in first.resources.values()] == ["a"] and second.resources == {}
    assert first.up().named("a").urn.startswith("urn:pulumi:dev::proj::")


def test_stock_mocks_still_work_after_engine_runs(project):
    things_engine(project(), a={"content": "x"}).up()

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return args.name + "_id", args.inputs

        def call(self, args):
            return {}

    pulumi.runtime.set_mocks(Mocks(), preview=False)
    resource = pulumi.CustomResource("test:index:Widget", "stock", {"size": 1})

    @pulumi.runtime.test
    def check():
        return resource.id.apply(lambda value: value == "stock_id" or pytest.fail(value))

    check()


def test_a_venv_inside_the_project_is_not_reimported():
    """Regression: /work/main/.venv lives in the project; purging its modules re-imported protobuf
    (segfault)."""
    import sys

    import google.protobuf

    from tests.engine import _ProgramProcess

    project_dir = Path(sys.prefix).resolve().parent
    with _ProgramProcess(project_dir, "x"):
        assert sys.modules["google.protobuf"] is google.protobuf
        assert sys.modules["pulumi"] is pulumi
    assert sys.modules["google.protobuf"] is google.protobuf
