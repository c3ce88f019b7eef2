"""Where a document is published: small adapters, one per target scheme.

Each adapter reads, writes and deletes one object. Clients are created inside the methods, never
held on an instance: the publisher is pickled into the Pulumi state and runs in another process.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from keyrotation.targets import DEFAULT_PUBLISH_ROOT, TargetError, confined_file


class Target(Protocol):
    def read(self) -> bytes | None: ...
    def write(self, body: bytes, *, content_type: str, cache_control: str) -> None: ...
    def delete(self) -> None: ...


class FileTarget:
    """``file://path``: a path relative to the Pulumi project directory, inside the publish root.

    The confinement (:func:`keyrotation.targets.confined_file`) is checked on the file system at
    every operation, so a symlink placed after validation cannot lead a write out of the root.
    """

    def __init__(self, location: str, root: str = DEFAULT_PUBLISH_ROOT, project_dir: str | Path = "."):
        self.location = location
        self.root = root
        self.project_dir = Path(project_dir)

    @property
    def path(self) -> Path:
        return confined_file(self.location, self.root, self.project_dir)

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def leftovers(self) -> list[Path]:
        """Temporary files of this target's own naming that a killed write left behind."""
        path = self.path
        pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
        try:
            entries = list(path.parent.iterdir())
        except FileNotFoundError:
            return []
        return [p for p in entries if pattern.fullmatch(p.name) and p.is_file() and not p.is_symlink()]

    def clean(self) -> None:
        for leftover in self.leftovers():
            leftover.unlink(missing_ok=True)

    def write(self, body: bytes, *, content_type: str, cache_control: str) -> None:
        # Atomic: a reader sees the old document or the new one, never a partial one.
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path = self.path  # checked again now that the directories exist
        self.clean()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        self.clean()


class S3Target:
    """``s3://bucket/key``: one PutObject is atomic for readers."""

    def __init__(self, location: str):
        self.bucket, _, self.key = location.partition("/")

    @staticmethod
    def _client():
        import boto3

        return boto3.client("s3")

    def read(self) -> bytes | None:
        client = self._client()
        try:
            return client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    def write(self, body: bytes, *, content_type: str, cache_control: str) -> None:
        self._client().put_object(
            Bucket=self.bucket, Key=self.key, Body=body,
            ContentType=content_type, CacheControl=cache_control,
        )

    def delete(self) -> None:
        self._client().delete_object(Bucket=self.bucket, Key=self.key)


class GcsTarget:
    """``gs://bucket/object``: one upload replaces the object atomically for readers."""

    def __init__(self, location: str):
        self.bucket, _, self.name = location.partition("/")

    def _blob(self):
        # Built per call: a storage client holds sockets and credentials that must not be pickled.
        from google.cloud import storage

        return storage.Client().bucket(self.bucket).blob(self.name)

    def read(self) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return self._blob().download_as_bytes()
        except NotFound:
            return None

    def write(self, body: bytes, *, content_type: str, cache_control: str) -> None:
        blob = self._blob()
        blob.cache_control = cache_control
        blob.upload_from_string(body, content_type=content_type)

    def delete(self) -> None:
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            self._blob().delete()


ADAPTERS: dict[str, type] = {"file": FileTarget, "s3": S3Target, "gs": GcsTarget}


def open_target(target: str, root: str | None = None, project_dir: str | Path = ".") -> Target:
    scheme, _, location = target.partition("://")
    if scheme not in ADAPTERS:
        raise TargetError(f"no publisher for target {target!r} (schemes: {', '.join(ADAPTERS)})")
    if scheme == "file":
        return FileTarget(location, root or DEFAULT_PUBLISH_ROOT, project_dir)
    return ADAPTERS[scheme](location)
