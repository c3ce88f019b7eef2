"""Edits of the stack file: in the file's own style, verified, atomic, or not at all."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keyrotation.commands import transitions
from keyrotation.commands.stackfile import AddGeneration, SetField, StackFile, StackFileError
from keyrotation.config import ConfigError, load_stack_file
from keyrotation.errors import CommandError
from keyrotation.lifecycle import State

BLOCK = """\
config:
  key-rotation:environment: staging   # trailing comment kept
  key-rotation:keysets:
    secrets-service:
      purpose: encrypt
      algorithm: A256GCM
      generations:
        # oldest first
        - id: q3
          state: retiring
          createdAt: '2026-08-03T09:00:00Z'
          activatedAt: '2026-08-03T10:00:00Z'
          retiringAt: '2026-11-02T10:00:00Z'   # the q4 promote
        - id: q4
          state: active
          createdAt: '2026-11-02T09:00:00Z'
          activatedAt: '2026-11-02T10:00:00Z'

# end of file comment
"""

T = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def block(tmp_path: Path) -> Path:
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text(BLOCK)
    return path


def test_block_style_generations_get_block_style_edits_and_keep_comments(block):
    f = StackFile(block)
    result = transitions.rotate(f.config, "secrets-service", now=T, generation_id="q1-2027")
    f.write(result.edits, result.stack)
    text = block.read_text()
    assert text == BLOCK.replace(
        "          activatedAt: '2026-11-02T10:00:00Z'\n",
        "          activatedAt: '2026-11-02T10:00:00Z'\n"
        "        - id: q1-2027\n"
        "          state: pending\n"
        "          createdAt: '2026-12-01T09:00:00Z'\n",
    )


def test_block_style_rollbacks_append_block_history_and_remove_nothing(block):
    from datetime import timedelta

    f = StackFile(block)
    # a month after the q4 promote: no rotation under way, so only --force rolls back
    with pytest.raises(CommandError, match="no rotation is under way|the rotation is over"):
        transitions.rollback(f.config, "secrets-service", now=T)
    result = transitions.rollback(f.config, "secrets-service", now=T, force=True)
    f.write(result.edits, result.stack)
    f = StackFile(block)
    result = transitions.rollback(f.config, "secrets-service", now=T + timedelta(minutes=1), force=True)
    f.write(result.edits, result.stack)
    assert block.read_text() == BLOCK.replace(
        "          retiringAt: '2026-11-02T10:00:00Z'   # the q4 promote\n",
        "          retiringAt: '2026-11-02T10:00:00Z'   # the q4 promote\n"
        "          history:\n"
        "            - {state: active, at: '2026-12-01T09:00:00Z'}\n"
        "            - {state: retiring, at: '2026-12-01T09:01:00Z'}\n",
    ).replace(
        "          activatedAt: '2026-11-02T10:00:00Z'\n\n",
        "          activatedAt: '2026-11-02T10:00:00Z'\n          retiringAt: '2026-12-01T09:00:00Z'\n"
        "          history:\n            - {state: active, at: '2026-12-01T09:01:00Z'}\n\n",
    )
    keyset = load_stack_file(block).keysets["secrets-service"]
    assert [(g.id, g.state) for g in keyset.generations] == [("q3", State.RETIRING), ("q4", State.ACTIVE)]


def test_flow_mappings_wrap_at_the_line_limit_with_the_neighbours_indentation(tmp_path):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(
        "config:\n  key-rotation:environment: x\n  key-rotation:keysets:\n    k:\n      purpose: sign\n"
        "      algorithm: ES256\n      generations:\n"
        "        - {id: a-very-long-generation-name, state: active, createdAt: '2026-01-01T00:00:00Z',\n"
        "           activatedAt: '2026-01-01T00:10:00Z'}\n"
    )
    f = StackFile(path)
    edits: list[SetField | AddGeneration] = [
        SetField("k", "a-very-long-generation-name", "state", "active", "revoked"),
        SetField("k", "a-very-long-generation-name", "revokedAt", None, "2026-02-01T00:00:00Z"),
        SetField("k", "a-very-long-generation-name", "revokeReason", None, "compromise"),
        AddGeneration("k", {"id": "b", "state": "active", "createdAt": "2026-02-01T00:00:00Z",
                            "activatedAt": "2026-02-01T00:00:00Z"})]
    text = f.edited(edits)
    assert text.endswith(
        "        - {id: a-very-long-generation-name, state: revoked, createdAt: '2026-01-01T00:00:00Z',\n"
        "           activatedAt: '2026-01-01T00:10:00Z', revokedAt: '2026-02-01T00:00:00Z',\n"
        "           revokeReason: compromise}\n"
        "        - {id: b, state: active, createdAt: '2026-02-01T00:00:00Z',\n"
        "           activatedAt: '2026-02-01T00:00:00Z'}\n"
    )
    assert all(len(line) <= 100 for line in text.splitlines())


def test_ids_that_would_not_read_back_as_text_are_quoted(tmp_path):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(
        "config:\n  key-rotation:environment: x\n  key-rotation:keysets:\n    k:\n      purpose: sign\n"
        "      algorithm: ES256\n      kid: 'k-{generation}'\n      generations:\n"
        "        - {id: v1, state: active, createdAt: '2026-01-01T00:00:00Z', activatedAt: "
        "'2026-01-01T00:10:00Z'}\n"
    )
    f = StackFile(path)
    text = f.edited([AddGeneration("k", {"id": "2027", "state": "pending",
                                         "createdAt": "2026-02-01T00:00:00Z"}),
                     AddGeneration("k", {"id": "yes", "state": "pending",
                                         "createdAt": "2026-02-01T00:00:00Z"})])
    assert "- {id: \"2027\", state: pending, createdAt: '2026-02-01T00:00:00Z'}" in text
    assert "- {id: \"yes\", state: pending, createdAt: '2026-02-01T00:00:00Z'}" in text


def test_the_file_keeps_its_mode_and_no_temporary_file_is_left(block):
    os.chmod(block, 0o640)
    f = StackFile(block)
    result = transitions.rotate(f.config, "secrets-service", now=T)
    f.write(result.edits, result.stack)
    assert stat.S_IMODE(block.stat().st_mode) == 0o640
    assert [p.name for p in block.parent.iterdir()] == [block.name]


def test_a_file_changed_on_disk_meanwhile_is_not_overwritten(block):
    f = StackFile(block)
    result = transitions.rotate(f.config, "secrets-service", now=T)
    block.write_text(BLOCK + "# someone else's edit\n")
    with pytest.raises(StackFileError, match="changed on disk while the command ran; not written"):
        f.write(result.edits, result.stack)
    assert block.read_text() == BLOCK + "# someone else's edit\n"


def test_an_edit_that_does_not_read_back_as_intended_is_not_written(block):
    f = StackFile(block)
    result = transitions.rotate(f.config, "secrets-service", now=T)
    other = transitions.rotate(f.config, "secrets-service", now=T, generation_id="other")
    with pytest.raises(StackFileError, match="does not read back as the intended change"):
        f.write(result.edits, other.stack)
    assert block.read_text() == BLOCK


def test_a_value_written_as_a_block_scalar_is_not_edited_blindly(tmp_path):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(BLOCK.replace("          state: active\n", "          state: >-\n            active\n"))
    f = StackFile(path)
    with pytest.raises(StackFileError, match="cannot edit a value written as '>' at line"):
        f.edited([SetField("secrets-service", "q4", "state", "active", "retiring")])


def test_not_yaml_and_no_config_are_reported_with_the_file_name(tmp_path):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match=r"Pulumi.x.yaml: .*\n  - not valid YAML: did not find expected ',' "
                                          r"or ']'"):
        StackFile(path)
    path.write_text("encryptionsalt: abc\n")
    with pytest.raises(ConfigError, match="Pulumi.x.yaml: .*\n  - has no 'config:' mapping"):
        StackFile(path)
    with pytest.raises(StackFileError, match="cannot read the stack file"):
        StackFile(tmp_path / "Pulumi.missing.yaml")


def test_the_shipped_dev_stack_round_trips_through_a_rotation(tmp_path):
    """The real Pulumi.dev.yaml: a rotate adds one line per keyset and nothing else moves."""
    source = Path(__file__).resolve().parents[1] / "Pulumi.dev.yaml"
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_bytes(source.read_bytes())
    f = StackFile(path)
    before = path.read_text().splitlines()
    for name, keyset in f.config.keysets.items():
        if any(g.state is State.PENDING for g in keyset.generations) or keyset.backend == "external":
            continue
        f = StackFile(path)
        try:
            result = transitions.rotate(f.config, name, now=T, generation_id=f"{name}-next")
        except CommandError:
            continue  # a keyset the contract does not let rotate as it stands (e.g. a fixed kid)
        f.write(result.edits, result.stack)
    after = path.read_text().splitlines()
    assert [line for line in before if line not in after] == []
    added = [line for line in after if line not in before]
    assert added and all("-next" in line and "state: pending" in line for line in added)


# ---------------------------------------------------------------------------------------------
# Reading fast (libyaml) with ruamel's meaning, and editing only the keyset's lines

PROJECT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(PROJECT.glob("Pulumi.*.yaml"))
TRICKY = [
    "yes", "no", "on", "off", "y", "n", "Yes", "NO", "true", "False", "TRUE", "null", "~", "", "Null",
    "0755", "0o17", "0x1F", "0b101", "1_000", "+12", "-7", "1:30", "1.5", "1e3", "-.5", ".inf", "-.INF",
    ".nan",
    "2026-11-09", "2026-11-09T09:00:00Z", "2026-11-09 09:00:00+02:00", "2026-11-09T09:00:00.25Z", "<<x", "=",
    "'quoted'", '"2026-11-09"', "12:00", "v1.2.3", "0.", "+.5",
]


@pytest.mark.parametrize("scalar", TRICKY)
def test_the_fast_reader_gives_every_scalar_the_meaning_ruamel_gives_it(scalar):
    from ruamel.yaml import YAML

    from keyrotation import stackyaml

    text = f"a: {scalar}\nb: [{scalar}]\n"
    try:
        expected = YAML(typ="safe").load(text)
    except Exception:  # noqa: BLE001 - ruamel refuses it: so must the fast reader
        with pytest.raises(stackyaml.YAMLError):
            stackyaml.load(text)
        return
    got = stackyaml.load(text)[0]
    assert got == expected or repr(got) == repr(expected)  # repr: nan != nan
    assert _types(got) == _types(expected)


def _types(value):
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


@pytest.mark.parametrize("path", SHIPPED + [None], ids=lambda p: p.name if p else "block")
def test_the_fast_reader_reads_the_shipped_stack_files_as_ruamel_does(path):
    from ruamel.yaml import YAML

    from keyrotation import stackyaml

    text = path.read_text() if path else BLOCK
    assert stackyaml.load(text)[0] == YAML(typ="safe").load(text)


@pytest.mark.parametrize("text", [
    "config:\n  key-rotation:environment: dev\n  key-rotation:environment: prod\n",
    "config:\n  key-rotation:keysets:\n    gw: {purpose: sign, purpose: mac}\n",
    "config:\n  a: &x {k: 1}\n  b:\n    <<: *x\n    j: 2\n    j: 3\n",
])
def test_duplicate_keys_are_refused_naming_the_file_and_the_key(tmp_path, text):
    path = tmp_path / "Pulumi.dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError,
                       match=r"(?s)Pulumi.dup.yaml: .*: duplicate key '.*' \(first at line \d\)"):
        StackFile(path)


def test_a_merge_key_may_still_be_overridden():
    from keyrotation import stackyaml

    assert stackyaml.load("a: &x {k: 1, j: 1}\nb:\n  <<: *x\n  j: 2\n")[0]["b"] == {"k": 1, "j": 2}


def _every_edit(f: StackFile):
    """One command per keyset of a shipped stack file that the contract lets run on it."""
    for name, keyset in f.config.keysets.items():
        retiring = [g.id for g in keyset.generations if g.state is State.RETIRING]
        for run in (
            lambda name=name: transitions.rotate(f.config, name, now=T, generation_id=f"{name}-next"),
            lambda name=name: transitions.promote(f.config, name, now=T, force=True),
            lambda name=name, retiring=retiring: transitions.retire(f.config, name, retiring[0], now=T,
                                                                 force=True),
        ):
            try:
                yield name, run()
            except (CommandError, IndexError):
                continue


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_editing_only_the_keysets_lines_gives_the_text_a_whole_file_edit_gives(path, monkeypatch):
    f = StackFile(path)
    results = list(_every_edit(f))
    assert results
    sliced = {}
    for name, result in results:
        f._edited = None
        assert f._region({name}) is not None, name
        sliced[name, result.command] = f.edited(result.edits)
    monkeypatch.setattr(StackFile, "_region", lambda self, keysets: None)
    for name, result in results:
        f._edited = None
        assert f.edited(result.edits) == sliced[name, result.command]


def test_read_only_commands_parse_once_and_edits_twice_never_the_whole_file_with_ruamel(tmp_path,
                                                                                        monkeypatch):
    import io

    from ruamel.yaml import YAML

    from keyrotation import stacktext
    from keyrotation.commands import cli

    monkeypatch.chdir(tmp_path)  # `timeline` writes its SVG beside the caller
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_bytes((PROJECT / "Pulumi.dev.yaml").read_bytes())
    (tmp_path / "Pulumi.yaml").write_bytes((PROJECT / "Pulumi.yaml").read_bytes())
    size = len(path.read_text())
    fast, slow = [], []
    # stacktext.parse: the one strict read (libyaml) the validator and the editor share.
    real_load, real_ruamel = stacktext.parse, YAML.load
    def parse(text: str, name: str) -> Any:
        fast.append(len(text))
        return real_load(text, name)

    def load(self: YAML, text: str) -> Any:
        slow.append(len(text))
        return real_ruamel(self, text)

    monkeypatch.setattr(stacktext, "parse", parse)
    monkeypatch.setattr(YAML, "load", load)
    common = ["--project-dir", str(tmp_path), "--stack", "dev", "--no-outputs", "--now",
              "2026-12-01T09:00:00Z"]
    for command in (["status"], ["plan"], ["timeline"]):
        fast.clear()
        assert cli.main([*command, *common], out=io.StringIO(), err=io.StringIO()) in (0, 3, 4)
        assert fast == [size], command
    fast.clear()
    slow.clear()
    assert cli.main(["rotate", "secrets-service", *common], out=io.StringIO(), err=io.StringIO()) == 0
    assert len(fast) == 2 and fast[0] == size  # read, then verify the edited text
    # ruamel's round trip saw only the keyset's lines (and single scalars it checks for quoting).
    assert slow and max(slow) < size / 3
