"""The file publisher target: atomic replacement, never a partial document."""

from __future__ import annotations

import os

import pytest

from components.targets import FileTarget, open_target


def test_write_replaces_the_document_whole(tmp_path):
    target = open_target(f"file://{tmp_path}/a/jwks.json")
    target.write(b'{"keys": []}\n', content_type="application/json", cache_control="public, max-age=300")
    assert (tmp_path / "a/jwks.json").read_bytes() == b'{"keys": []}\n'
    assert target.read() == b'{"keys": []}\n'
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["jwks.json"]


def test_a_failed_write_leaves_the_published_document_untouched(tmp_path, monkeypatch):
    path = tmp_path / "jwks.json"
    path.write_bytes(b"old\n")
    target = FileTarget(str(path))

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        target.write(b"new\n", content_type="application/json", cache_control="public, max-age=300")
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["jwks.json"], "no temporary file is left behind"


def test_the_new_content_is_synced_before_it_replaces_the_old(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    FileTarget(str(tmp_path / "doc.json")).write(b"x", content_type="application/json", cache_control="")
    assert events[:2] == ["fsync", "replace"]


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="no publisher for target 'ftp://h/x'"):
        open_target("ftp://h/x")


def test_delete_removes_the_file(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text("{}")
    FileTarget(str(path)).delete()
    FileTarget(str(path)).delete()  # idempotent: the engine may retry a delete
    assert not path.exists()
