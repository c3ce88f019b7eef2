"""The harness's reliance on SDK internals stays in tests/sdk_internals.py, and that module refuses an SDK
it was not checked against."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys

import pytest
from pulumi.runtime import rpc

from tests import sdk_internals
from tests.project import ROOT

# What reaching into the SDK looks like in source: its private names, and its modules that no public
# API exports (`pulumi.runtime` exports `rpc` as a module, but none of its functions).
_PRIVATE = re.compile(
    r"_sync_await|_ensure_event_loop|_special_\w|_ContextProperty|_batch_setitems|pickle\._Pickler"
    r"|from pulumi\.runtime\.(?!proto\b)\w+ import"
    r"|from pulumi\.runtime import [^\n]*\b(?:rpc|mocks|settings|stack|sync_await|config)\b"
    r"|pulumi\.runtime\.(?:rpc|mocks|settings|stack|sync_await|config)\."
    r"|pulumi\.dynamic\.__(?:main|file)__|pulumi\.[\w.]*\._[A-Za-z]"
)


def test_no_other_module_of_the_tests_or_the_benchmark_reaches_into_the_sdk():
    found = []
    for path in sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]):
        if path.name in ("sdk_internals.py", "test_sdk_internals.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _PRIVATE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], "move these into tests/sdk_internals.py:\n" + "\n".join(found)


def test_the_guard_recognises_what_it_forbids():
    for line in ("from pulumi.runtime.sync_await import _sync_await", "rpc._special_sig_key",
                 "from pulumi.runtime.mocks import MockMonitor", "from pulumi.runtime import rpc, settings",
                 "pulumi.runtime.settings.ROOT.set(None)", "prop._ContextProperty__default"):
        assert _PRIVATE.search(line), line
    for line in ("from pulumi.runtime.proto import analyzer_pb2",
                 "from pulumi.runtime import Mocks, set_mocks",
                 "from pulumi.dynamic import ResourceProvider", "pulumi.runtime.set_all_config(config)"):
        assert not _PRIVATE.search(line), line


def test_the_installed_sdk_is_the_one_the_internals_were_checked_against():
    installed = importlib.metadata.version("pulumi")
    assert installed == sdk_internals.CHECKED_AGAINST == sdk_internals.pinned_sdk()
    assert sdk_internals.version_problems(installed, sdk_internals.pinned_sdk()) == []
    assert sdk_internals.missing_pieces() == []


def test_every_entry_names_the_version_it_was_checked_against():
    text = (ROOT / "tests/sdk_internals.py").read_text()
    notes = re.findall(r"checked: pulumi ([\w.]+)", text)
    assert len(notes) >= 12  # one per entry
    assert set(notes) == {sdk_internals.CHECKED_AGAINST}, "re-read each entry when the pin is raised"


def test_another_installed_sdk_is_refused_with_what_to_do():
    problems = sdk_internals.version_problems("3.280.0", "3.272.0", checked="3.272.0")
    assert problems == ["pulumi 3.280.0 is installed, but tests/sdk_internals.py was checked against "
                        "pulumi 3.272.0: run `.venv/bin/pip install -r requirements-dev.txt`"]


def test_a_pin_raised_without_rechecking_the_internals_is_refused():
    problems = sdk_internals.version_problems("3.280.0", "3.280.0", checked="3.272.0")
    assert len(problems) == 2
    assert problems[0].startswith("requirements.txt pins pulumi==3.280.0, but tests/sdk_internals.py was "
                                  "checked "
                                  "against pulumi 3.272.0: raise both together")


def test_a_range_is_not_a_pin(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pulumi>=3.272,<4\npulumi-aws==7.51.1\n")
    assert sdk_internals.pinned_sdk(requirements) is None
    assert "requirements.txt pins no exact pulumi version" in sdk_internals.version_problems("3.272.0",
                                                                                             None)[0]
    requirements.write_text("# the SDK\npulumi==3.272.0  # exact\n")
    assert sdk_internals.pinned_sdk(requirements) == "3.272.0"


def test_a_missing_internal_is_named(monkeypatch, tmp_path):
    monkeypatch.delattr(rpc, "_special_sig_key")
    server = tmp_path / "__main__.py"
    server.write_text("class DynamicResourceProviderServicer:\n    pass\n\nif __name__ == '__main__':\n    "
                      "main()\n")
    monkeypatch.setattr(sdk_internals, "_SERVER_PATH", server)
    assert sdk_internals.missing_pieces() == ["pulumi.runtime.rpc._special_sig_key",
                                              f"{server}: exactly one top-level `main()` call"]


def test_the_import_fails_with_a_clear_message_under_another_sdk():
    script = ("import importlib.metadata as m\n"
              "real = m.version\n"
              "m.version = lambda name: '3.999.0' if name == 'pulumi' else real(name)\n"
              "import tests.sdk_internals\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "tests.sdk_internals.SdkMismatch: tests/sdk_internals.py: pulumi 3.999.0 is installed, but "
        f"tests/sdk_internals.py was checked against pulumi {sdk_internals.CHECKED_AGAINST}: run "
        "`.venv/bin/pip install -r requirements-dev.txt`")


def test_the_provider_server_reports_a_provider_error_through_the_given_exception():
    from pulumi.runtime.proto import provider_pb2

    class Refused(Exception):
        pass

    server = sdk_internals.ProviderServer(on_abort=Refused)
    with pytest.raises(Refused, match="__provider"):  # a Check without the pickled provider
        server.call("Check", provider_pb2.CheckRequest(urn="urn:pulumi:s::p::pulumi-python:dynamic:R::r"))
