"""The real program under the engine: what only the stack file's text shows is refused before any resource,
the publisher deletes only what it wrote, cleans up after a killed write, and fails in one line."""

from __future__ import annotations

import traceback

import pytest

from components.publication import PublicationProvider, PublishError
from tests.engine import Engine, ProgramFailed
from tests.project import stack_config


def failed(engine: Engine) -> tuple[str, ProgramFailed]:
    with pytest.raises(ProgramFailed) as info:
        engine.up()
    return str(info.value) + "\n".join(info.value.errors), info.value


def registered(failure: ProgramFailed) -> list:
    return [r for r in failure.run.resources.values() if r.type != "pulumi:pulumi:Stack"]


@pytest.fixture
def pinned(monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", "2026-11-23T12:00:00Z")


def test_a_duplicate_key_the_engine_reads_last_wins_is_refused_by_the_program(project, pinned):
    stack_file = project / "Pulumi.dev.yaml"
    # The engine's YAML reader takes the last value; the program reads the text and refuses both.
    stack_file.write_text(stack_file.read_text().replace("      maxAgeDays: 7\n",
                                                         "      maxAgeDays: 7\n      maxAgeDays: 70\n"))
    message, failure = failed(Engine(project, "dev"))
    assert ("keyset 'atlas-gateway', field 'maxAgeDays': line 19: duplicate key 'maxAgeDays' (first at line "
            "18);"
            " YAML readers disagree on which one wins, so a key may appear once") in message
    assert "Traceback" not in message
    assert registered(failure) == [] and not (project / "published").exists()


def test_a_misspelt_namespace_is_refused_by_the_program(project, pinned):
    config = stack_config("dev")
    config["key-rotaton:defaults"] = config.pop("key-rotation:defaults")
    message, failure = failed(Engine(project, "dev", config=config))
    assert ("field 'key-rotaton:defaults': unknown namespace 'key-rotaton': this program reads"
            " 'key-rotation:defaults'") in message
    assert registered(failure) == []


def test_a_target_outside_the_publish_root_is_refused_by_the_program(project, pinned):
    config = stack_config("dev")
    config["key-rotation:keysets"]["atlas-gateway"]["publish"][0]["target"] = "file://Pulumi.dev.yaml"
    before = (project / "Pulumi.dev.yaml").read_bytes()
    message, failure = failed(Engine(project, "dev", config=config))
    assert "target 'file://Pulumi.dev.yaml' is outside the publish root 'published/'" in message
    assert registered(failure) == [] and (project / "Pulumi.dev.yaml").read_bytes() == before


def test_a_clock_that_is_not_a_time_stops_the_program(project, monkeypatch):
    monkeypatch.setenv("KEY_ROTATION_NOW", "banana")
    message, failure = failed(Engine(project, "dev"))
    assert "$KEY_ROTATION_NOW='banana': is not an RFC 3339 time: 'banana'" in message
    assert registered(failure) == [] and not (project / "published").exists()


def test_a_removed_target_deletes_the_file_only_if_it_is_still_what_was_published(project, pinned):
    engine = Engine(project, "dev", config=stack_config("dev"))
    engine.up()
    history = project / "published/stellaops/key-history.json"
    anchor = project / "published/stellaops/trust-anchor.json"
    history.write_text('{"someone": "else wrote this"}\n')
    assert engine.config is not None
    keysets = engine.config["key-rotation:keysets"]
    keysets["signer-default"]["publish"] = []
    run = engine.up()
    assert sum(op == "delete" for op, _ in run.operations) == 2
    assert history.read_text() == '{"someone": "else wrote this"}\n', "not the publisher's document: kept"
    assert not anchor.exists(), "the publisher's own document (same hash) is deleted"


def test_leftover_temporary_files_are_removed_by_the_next_run_even_without_a_change(project, pinned):
    engine = Engine(project, "dev")
    engine.up()
    folder = project / "published/atlas/.well-known"
    leftover = folder / ".jwks.json.k9x_2abc.tmp"
    leftover.write_text('{"keys": [')  # what `kill -9` during a write leaves
    before = (folder / "jwks.json").read_bytes()
    run = engine.up()
    assert [op for op, urn in run.operations if op != "same"] == ["update"]
    assert not leftover.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["jwks.json"]
    assert (folder / "jwks.json").read_bytes() == before
    assert {op for op, _ in engine.up().operations} == {"same"}, "and then nothing to do"


class _Denied(Exception):
    def __init__(self):
        super().__init__("An error occurred (AccessDenied) when calling the PutObject operation: Access "
                         "Denied")
        self.response = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                         "ResponseMetadata": {"HTTPStatusCode": 403}}


def _props(target: str) -> dict:
    return {"target": target, "format": "jwks", "content": '{"keys": []}', "kids": [], "cache_control": "x",
            "content_type": "application/json", "keyset": "gw"}


def test_a_cloud_failure_is_one_line_naming_target_operation_and_cause(monkeypatch):
    from components import targets

    class Client:
        exceptions = type("E", (), {"NoSuchKey": KeyError})

        def get_object(self, **_):
            raise _Denied()

    monkeypatch.setattr(targets.S3Target, "_client", staticmethod(lambda: Client()))
    monkeypatch.delenv("KEY_ROTATION_DEBUG", raising=False)
    with pytest.raises(PublishError) as info:
        PublicationProvider().create(_props("s3://audit-bucket/jwks.json"))
    denied = "s3://audit-bucket/jwks.json: read failed: AccessDenied (HTTP 403): Access Denied"
    assert str(info.value) == denied
    text = "".join(traceback.format_exception(info.value))
    assert text.rstrip().endswith("PublishError: " + str(info.value))
    assert "_Denied" not in text and "During handling" not in text, "no cloud SDK traceback without debug"
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[1:] == ["create"], "raised from the provider itself: the shortest traceback the SDK prints"
    monkeypatch.setenv("KEY_ROTATION_DEBUG", "1")
    with pytest.raises(PublishError) as info:
        PublicationProvider().create(_props("s3://audit-bucket/jwks.json"))
    cause = info.value.__cause__
    assert cause is not None and isinstance(cause.__cause__, _Denied), "the debug switch keeps the cause"


def test_a_file_target_refused_at_write_time_says_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "published").symlink_to("/tmp")
    with pytest.raises(PublishError) as info:
        PublicationProvider().create(_props("file://published/jwks.json"))
    refused = str(info.value)
    assert (refused.startswith("file://published/jwks.json: open refused: publish root 'published' leads out"
                               " of the project directory") or "refused: publish root 'published'" in refused)
