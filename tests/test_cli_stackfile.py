"""Edits of the stack file: in the file's own style, verified, atomic, or not at all."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyrotation import commands
from keyrotation.config import ConfigError, load_stack_file
from keyrotation.lifecycle import State
from keyrotation.stackfile import AddGeneration, SetField, StackFile, StackFileError

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
    result = commands.rotate(f.config, "secrets-service", now=T, generation_id="q1-2027")
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
    with pytest.raises(commands.CommandError, match="no rotation is under way|the rotation is over"):
        commands.rollback(f.config, "secrets-service", now=T)
    result = commands.rollback(f.config, "secrets-service", now=T, force=True)
    f.write(result.edits, result.stack)
    f = StackFile(block)
    result = commands.rollback(f.config, "secrets-service", now=T + timedelta(minutes=1), force=True)
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
    edits = [SetField("k", "a-very-long-generation-name", "state", "active", "revoked"),
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
        "        - {id: v1, state: active, createdAt: '2026-01-01T00:00:00Z', activatedAt: '2026-01-01T00:10:00Z'}\n"
    )
    f = StackFile(path)
    text = f.edited([AddGeneration("k", {"id": "2027", "state": "pending", "createdAt": "2026-02-01T00:00:00Z"}),
                     AddGeneration("k", {"id": "yes", "state": "pending", "createdAt": "2026-02-01T00:00:00Z"})])
    assert "- {id: \"2027\", state: pending, createdAt: '2026-02-01T00:00:00Z'}" in text
    assert "- {id: \"yes\", state: pending, createdAt: '2026-02-01T00:00:00Z'}" in text


def test_the_file_keeps_its_mode_and_no_temporary_file_is_left(block):
    os.chmod(block, 0o640)
    f = StackFile(block)
    result = commands.rotate(f.config, "secrets-service", now=T)
    f.write(result.edits, result.stack)
    assert stat.S_IMODE(block.stat().st_mode) == 0o640
    assert [p.name for p in block.parent.iterdir()] == [block.name]


def test_a_file_changed_on_disk_meanwhile_is_not_overwritten(block):
    f = StackFile(block)
    result = commands.rotate(f.config, "secrets-service", now=T)
    block.write_text(BLOCK + "# someone else's edit\n")
    with pytest.raises(StackFileError, match="changed on disk while the command ran; not written"):
        f.write(result.edits, result.stack)
    assert block.read_text() == BLOCK + "# someone else's edit\n"


def test_an_edit_that_does_not_read_back_as_intended_is_not_written(block):
    f = StackFile(block)
    result = commands.rotate(f.config, "secrets-service", now=T)
    other = commands.rotate(f.config, "secrets-service", now=T, generation_id="other")
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
    with pytest.raises(ConfigError, match=r"Pulumi.x.yaml: .*\n  - not valid YAML: expected ',' or ']'"):
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
            result = commands.rotate(f.config, name, now=T, generation_id=f"{name}-next")
        except commands.CommandError:
            continue  # a keyset the contract does not let rotate as it stands (e.g. a fixed kid)
        f.write(result.edits, result.stack)
    after = path.read_text().splitlines()
    assert [line for line in before if line not in after] == []
    added = [line for line in after if line not in before]
    assert added and all("-next" in line and "state: pending" in line for line in added)
