"""Where a document may be published: the syntax of each target scheme and its confinement.

``file://`` targets are paths relative to the project directory that lie inside the stack's
publish root (``key-rotation:publishRoot``, default ``published``); the root is a directory of
its own, never one holding the project's files. ``s3://`` and ``gs://`` targets follow the
providers' bucket and object naming rules, ``configmap://`` Kubernetes' names. The program's
publisher checks the same confinement again on the real file system (symlinks) before it writes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import KeyRotationError

SCHEMES = ("file", "s3", "gs", "configmap")
DEFAULT_PUBLISH_ROOT = "published"
PROJECT_ENTRIES = frozenset({
    "Pulumi.yaml", "__main__.py", "keyrotation", "components", "policy", "tests", "docs", "scripts",
    "bench", "README.md", "pyproject.toml", "requirements.txt", "requirements-dev.txt", ".git",
    ".github", ".ci", ".venv", ".gitignore", ".pulumi-state", ".hypothesis", "__pycache__",
})
"""The project's own top-level files and directories: no publish root may be or hold one."""

SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
SEGMENT_RULE = "ASCII letters, digits, '.', '_', '~' and '-' between single '/'"
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_GCS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
_IP = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
FORMS = "file://path, s3://bucket/key, gs://bucket/object or configmap://namespace/name"


class TargetError(KeyRotationError, ValueError):
    """A target the publisher refuses to touch; the message names the target and the rule."""


def _path_problem(path: str, what: str) -> str | None:
    """Why ``path`` is not a clean relative path of safe segments."""
    if not path:
        return f"has no {what}"
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return f"{what} must be relative (no absolute paths)"
    if path.endswith("/"):
        return f"{what} ends with '/': it names a directory, not a document"
    for segment in path.split("/"):
        if segment == "":
            return f"{what} has an empty segment ('//')"
        if segment in (".", ".."):
            return f"{what} has a '{segment}' segment; give the path without '.' or '..'"
        if not SEGMENT.fullmatch(segment):
            return f"{what} segment {_shown(segment)} has characters outside {SEGMENT_RULE}"
    return None


def _shown(text: str) -> str:
    from .identifiers import describe

    return describe(text, 120)


def root_problem(root: str) -> str | None:
    """Why ``root`` cannot be the publish root, or None."""
    why = _path_problem(root, "path")
    if why:
        return f"{_shown(root)}: {why}"
    first = root.split("/")[0]
    if first in PROJECT_ENTRIES or re.fullmatch(r"Pulumi\..*\.ya?ml", first):
        return (f"{_shown(root)} is or lies inside the project's own '{first}'; the publish root must be a"
                f" directory of its own, such as '{DEFAULT_PUBLISH_ROOT}'")
    return None


def target_problem(target: str, root: str | None = DEFAULT_PUBLISH_ROOT) -> str | None:
    """Why ``target`` is not a valid publish target under publish root ``root``, or None.

    ``root`` None: the root itself is invalid (reported on its own); the path is checked alone.
    """
    scheme, sep, rest = target.partition("://")
    if not sep or scheme not in SCHEMES or not rest:
        return f"target {_shown(target)} must be {FORMS}"
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return f"target {_shown(target)} contains a control character"
    if scheme == "file":
        why = _path_problem(rest, "path")
        if why:
            return f"target {_shown(target)}: {why}"
        if root is not None and not rest.startswith(root + "/"):
            return (f"target {_shown(target)} is outside the publish root '{root}/': file:// targets are"
                    f" paths inside it (relative to the project directory), e.g. file://{root}/jwks.json")
        return None
    bucket, slash, key = rest.partition("/")
    if scheme == "configmap":
        if not slash or not key:
            return f"target {_shown(target)} needs both a namespace and a name"
        if not _DNS_LABEL.fullmatch(bucket):
            return (f"target {_shown(target)}: namespace {_shown(bucket)} is not a DNS label"
                    " (lowercase, at most 63)")
        if len(key) > 253 or not _DNS_SUBDOMAIN.fullmatch(key):
            return (f"target {_shown(target)}: name {_shown(key)} is not a ConfigMap name"
                    " (a lowercase DNS subdomain)")
        return None
    if not slash or not key:
        return f"target {_shown(target)} needs both a bucket and a name"
    why = (_s3_bucket_problem if scheme == "s3" else _gcs_bucket_problem)(bucket)
    if why:
        return f"target {_shown(target)}: bucket {_shown(bucket)} {why}"
    what = "key" if scheme == "s3" else "object name"
    why = _path_problem(key, what)
    if why is None and len(key.encode()) > 1024:
        why = f"{what} is longer than 1024 bytes"
    if why is None and scheme == "gs" and key.startswith(".well-known/acme-challenge/"):
        why = "object names under .well-known/acme-challenge/ are reserved by Cloud Storage"
    return f"target {_shown(target)}: {why}" if why else None


def _s3_bucket_problem(bucket: str) -> str | None:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
    if not _S3_BUCKET.fullmatch(bucket) or ".." in bucket or ".-" in bucket or "-." in bucket:
        return ("is not an S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-', starting and"
                " ending with a letter or digit, no '..'")
    if _IP.fullmatch(bucket):
        return "is not an S3 bucket name: it looks like an IP address"
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if bucket.startswith(prefix):
            return f"is not an S3 bucket name: the prefix '{prefix}' is reserved"
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if bucket.endswith(suffix):
            return f"is not an S3 bucket name: the suffix '{suffix}' is reserved"
    return None


def _gcs_bucket_problem(bucket: str) -> str | None:
    # https://cloud.google.com/storage/docs/buckets#naming
    if not _GCS_BUCKET.fullmatch(bucket) or ".." in bucket:
        return ("is not a Cloud Storage bucket name: 3 to 63 lowercase letters, digits, '.', '_' and '-',"
                " starting and ending with a letter or digit")
    if _IP.fullmatch(bucket):
        return "is not a Cloud Storage bucket name: it looks like an IP address"
    if bucket.startswith("goog") or re.search(r"g[o0]{2}gle", bucket):
        return "is not a Cloud Storage bucket name: 'goog' prefixes and 'google' are reserved"
    return None


# ---------------------------------------------------------------------------------------------
# On the real file system (the publisher)


def confined_file(location: str, root: str = DEFAULT_PUBLISH_ROOT, project_dir: str | Path = ".") -> Path:
    """The file a ``file://`` target names, after checking it stays inside the publish root.

    Checked on the file system as it is now: the root's real path is inside the project and holds
    none of its files, every directory on the way is inside the root (a symlink that leads out is
    refused), and the target is not a directory or a symlink.
    """
    target = f"file://{location}"
    why = root_problem(root) or target_problem(target, root)
    if why:
        raise TargetError(why)
    project = Path(os.path.realpath(project_dir))
    root_path = Path(os.path.realpath(project / root))
    if root_path == project or project not in root_path.parents:
        raise TargetError(f"publish root '{root}' leads out of the project directory (to {root_path})")
    for own in ("Pulumi.yaml", "__main__.py"):
        if (root_path / own).exists():
            raise TargetError(f"publish root '{root}' holds the project's own {own}; it must be a directory"
                              " of its own")
    path = project / location
    parent = Path(os.path.realpath(path.parent))
    if parent != root_path and root_path not in parent.parents:
        raise TargetError(f"target {target}: {path.parent.relative_to(project)} leads out of the publish root"
                          f" '{root}' (a symlink?) to {parent}")
    if path.is_symlink():
        raise TargetError(f"target {target} is a symlink; the publisher writes only regular files")
    if path.is_dir():
        raise TargetError(f"target {target} is a directory; the publisher writes only regular files")
    return parent / path.name
