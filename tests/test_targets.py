"""The file publisher target: atomic replacement, never a partial document, never outside its root."""

from __future__ import annotations

import os

import pytest

from components.targets import FileTarget, open_target
from keyrotation.targets import TargetError


def target(project, location="published/doc.json", root="published") -> FileTarget:
    return FileTarget(location, root, project)


def test_write_replaces_the_document_whole(tmp_path):
    t = open_target("file://published/a/jwks.json", project_dir=tmp_path)
    t.write(b'{"keys": []}\n', content_type="application/json", cache_control="public, max-age=300")
    assert (tmp_path / "published/a/jwks.json").read_bytes() == b'{"keys": []}\n'
    assert t.read() == b'{"keys": []}\n'
    assert [p.name for p in (tmp_path / "published/a").iterdir()] == ["jwks.json"]


def test_a_failed_write_leaves_the_published_document_untouched(tmp_path, monkeypatch):
    path = tmp_path / "published/jwks.json"
    path.parent.mkdir()
    path.write_bytes(b"old\n")
    t = target(tmp_path, "published/jwks.json")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        t.write(b"new\n", content_type="application/json", cache_control="public, max-age=300")
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in path.parent.iterdir()] == ["jwks.json"], "no temporary file is left behind"


def test_the_new_content_is_synced_before_it_replaces_the_old(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(a: str, b: str) -> None:
        events.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target(tmp_path).write(b"x", content_type="application/json", cache_control="")
    assert events[:2] == ["fsync", "replace"]


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="no publisher for target 'ftp://h/x'"):
        open_target("ftp://h/x")


def test_delete_removes_the_file(tmp_path):
    path = tmp_path / "published/doc.json"
    path.parent.mkdir()
    path.write_text("{}")
    target(tmp_path).delete()
    target(tmp_path).delete()  # idempotent: the engine may retry a delete
    assert not path.exists()


def test_leftover_temporary_files_of_its_own_naming_are_removed_by_the_next_write(tmp_path):
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / ".doc.json.ab12_x9z.tmp").write_text("half a document")  # a write killed with -9
    (folder / ".doc.json.notmine.tmp").write_text("someone else's")  # not the publisher's naming
    (folder / ".other.json.ab12_x9z.tmp").write_text("another target's")
    target(tmp_path).write(b"{}", content_type="application/json", cache_control="")
    assert sorted(p.name for p in folder.iterdir()) == [
        ".doc.json.notmine.tmp", ".other.json.ab12_x9z.tmp", "doc.json"]


@pytest.mark.parametrize("location,message", [
    ("/etc/passwd", "path must be relative (no absolute paths)"),
    ("published/../Pulumi.dev.yaml", "path has a '..' segment"),
    ("published/", "path ends with '/': it names a directory, not a document"),
    ("Pulumi.dev.yaml", "is outside the publish root 'published/'"),
    ("published/a\x00b", "contains a control character"),
])
def test_a_target_outside_the_root_is_refused_before_anything_is_touched(tmp_path, location, message):
    with pytest.raises(TargetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        target(tmp_path, location).write(b"x", content_type="application/json", cache_control="")
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_that_leads_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    project = tmp_path / "project"
    (project / "published").mkdir(parents=True)
    (project / "published/atlas").symlink_to(outside)
    with pytest.raises(TargetError, match="leads out of the publish root 'published'"):
        target(project, "published/atlas/jwks.json").write(b"x", content_type="application/json",
                                                           cache_control="")
    (project / "published/jwks.json").symlink_to(outside / "victim")
    with pytest.raises(TargetError, match="is a symlink"):
        target(project, "published/jwks.json").write(b"x", content_type="application/json", cache_control="")
    (project / "published/dir.json").mkdir()
    with pytest.raises(TargetError, match="is a directory"):
        target(project, "published/dir.json").read()
    assert list(outside.iterdir()) == []


def test_a_root_that_is_a_symlink_out_of_the_project_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    project = tmp_path / "project"
    project.mkdir()
    (project / "published").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TargetError, match="publish root 'published' leads out of the project directory"):
        target(project).write(b"x", content_type="application/json", cache_control="")
    assert list((tmp_path / "elsewhere").iterdir()) == []
