"""Stack-file edits under pressure: a concurrent edit is never lost, CRLF and block scalars are kept,
and the clock and key options take only what they say."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyrotation.commands import cli
from keyrotation.commands.stackfile import locked
from keyrotation.config import load_stack_file
from tests.test_cli_stackfile import BLOCK

NOW = "2026-12-01T09:00:00Z"


def run(path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([*args, "--file", str(path), "--no-outputs"], out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def block(tmp_path: Path) -> Path:
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text(BLOCK)
    return path


def test_a_concurrent_edit_waits_for_the_lock_and_builds_on_the_other_one(block):
    results = []
    with locked(block):
        worker = threading.Thread(target=lambda: results.append(
            run(block, "rotate", "secrets-service", "--id", "second", "--now", NOW)))
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive(), "the second command waits while the first holds the lock"
        # The first command's write, landing while the second one waits.
        code, _, err = run(block, "--now", NOW, "rotate", "secrets-service", "--id", "first", "--dry-run")
        assert code == 0, err
        block.write_text(block.read_text().replace("# end of file comment", "# edited by the first command"))
    worker.join(10)
    assert results and results[0][0] == 0, results
    text = block.read_text()
    assert "# edited by the first command" in text and "- id: second" in text, "neither edit is lost"


def test_crlf_files_stay_crlf(block):
    block.write_bytes(BLOCK.replace("\n", "\r\n").encode())
    code, _, err = run(block, "rotate", "secrets-service", "--id", "q1", "--now", NOW)
    assert code == 0, err
    raw = block.read_bytes()
    assert b"- id: q1\r\n" in raw
    assert raw.count(b"\n") == raw.count(b"\r\n"), "no mixed line endings"


def _pem() -> str:
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


EXTERNAL = """\
config:
  key-rotation:environment: dev
  key-rotation:keysets:
    hsm:
      purpose: sign
      algorithm: ES256
      backend: external
      kid: "hsm-{generation}"
      generations:
        - id: h1
          state: active
          createdAt: '2026-11-01T09:00:00Z'
          activatedAt: '2026-11-01T10:00:00Z'
          publicKeyPem: |
"""


def test_an_external_key_written_as_a_block_scalar_can_be_rotated_again(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(EXTERNAL + "".join(f"            {line}\n" for line in _pem().strip().splitlines()))
    for i, hour in ((2, 9), (3, 11)):
        key = tmp_path / f"h{i}.pem"
        key.write_text(_pem())
        code, _, err = run(path, "rotate", "hsm", "--id", f"h{i}", "--public-key", str(key),
                           "--now", f"2026-12-01T{hour:02d}:00:00Z")
        assert code == 0, err
        # No deployment here: --force acts on the stack file's own times.
        code, _, err = run(path, "promote", "hsm", "--force", "--now", f"2026-12-01T{hour + 1:02d}:00:00Z")
        assert code == 0, err
    config = load_stack_file(path)
    assert [g.id for g in config.keysets["hsm"].generations] == ["h1", "h2", "h3"]
    assert path.read_text().count("publicKeyPem: |") == 3


def test_rotate_refuses_a_public_key_file_that_holds_a_private_key(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(EXTERNAL + "".join(f"            {line}\n" for line in _pem().strip().splitlines()))
    before = path.read_bytes()
    key = tmp_path / "key.pem"
    key.write_text(_pem() + "-----BEGIN PRIVATE KEY-----\nMC4CAQAw\n-----END PRIVATE KEY-----\n")
    code, _, err = run(path, "rotate", "hsm", "--id", "h2", "--public-key", str(key), "--now", NOW)
    assert code == 2
    assert f"--public-key: {key} holds a PEM 'PRIVATE KEY' block; give the public key only" in err
    assert "MC4CAQAw" not in err and path.read_bytes() == before


@pytest.mark.parametrize("now,why", [
    ("", "'' is not an RFC 3339 time"),
    ("1700000000", "'1700000000' is not an RFC 3339 time"),
    ("9999-12-31T23:59:59Z", "is out of range"),
    ("0001-01-01T00:00:00Z", "is out of range"),
    ("2026-12-01T09:00:00", "needs a timezone"),
])
def test_now_takes_only_an_rfc3339_time_in_range(block, now, why):
    before = block.read_bytes()
    for command in (["status"], ["plan"], ["rotate", "secrets-service"]):
        code, _, err = run(block, *command, "--now", now)
        assert code == 2 and why in err and "Traceback" not in err, err
    assert block.read_bytes() == before
