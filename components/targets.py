"""Where a document is published: small adapters, one per target scheme.

Each adapter reads, writes and deletes one object. Clients are created inside the methods, never
held on an instance: the publisher is pickled into the Pulumi state and runs in another process.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


class Target(Protocol):
    def read(self) -> bytes | None: ...
    def write(self, body: bytes, *, content_type: str, cache_control: str) -> None: ...
    def delete(self) -> None: ...


class FileTarget:
    """``file://path``: relative paths are relative to the Pulumi project directory."""

    def __init__(self, location: str):
        self.path = Path(location)

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def write(self, body: bytes, *, content_type: str, cache_control: str) -> None:
        # Atomic: a reader sees the old document or the new one, never a partial one.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


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


def open_target(target: str) -> Target:
    scheme, _, location = target.partition("://")
    try:
        adapter = ADAPTERS[scheme]
    except KeyError:
        raise ValueError(f"no publisher for target {target!r} (schemes: {', '.join(ADAPTERS)})") from None
    return adapter(location)
