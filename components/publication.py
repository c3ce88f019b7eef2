"""Publishes one document to one target: a Pulumi dynamic resource.

Writes are atomic per object and happen only when the content changed. The state records, per
key id, when it was first published: the policy pack and the rotation commands use it to tell
whether a generation has been visible to verifiers for the publish lead.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from keyrotation.names import NOW_VARIABLE, PUBLICATION
from keyrotation.times import format_time, utc_now


def _now() -> str:
    pinned = os.environ.get(NOW_VARIABLE)
    if pinned:
        return pinned
    return format_time(utc_now())


def _sha256(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


class PublicationProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._publish(props, previous_sha=None, first_published={})
        return CreateResult(props["target"], outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["target"] if olds.get("target") != news.get("target") else []
        changed = replaces or [
            p for p in ("content", "kids", "cache_control", "content_type") if olds.get(p) != news.get(p)
        ]
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        previous = olds.get("sha256") if olds.get("cache_control") == news.get("cache_control") else None
        return UpdateResult(self._publish(news, previous, olds.get("first_published") or {}))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from components.targets import open_target

        open_target(props["target"]).delete()

    @staticmethod
    def _publish(props: dict[str, Any], previous_sha: str | None, first_published: dict[str, str]) -> dict[str, Any]:
        from components.targets import open_target

        content: str = props["content"]
        sha = _sha256(content)
        target = open_target(props["target"])
        now = _now()
        wrote = False
        if sha != previous_sha and target.read() != content.encode():
            target.write(
                content.encode(), content_type=props["content_type"], cache_control=props["cache_control"]
            )
            wrote = True
        kids = list(props.get("kids") or [])
        # Keep the first-published time of every kid still present; new kids are published now.
        published = {kid: first_published.get(kid, now) for kid in kids}
        return {
            **props,
            "sha256": sha,
            "first_published": published,
            "published_at": now if wrote or previous_sha is None else props.get("published_at"),
        }


@dataclass
class PublicationArgs:
    target: pulumi.Input[str]
    format: pulumi.Input[str]
    content: pulumi.Input[str]
    """The document's canonical text."""
    kids: pulumi.Input[list[str]]
    """Key ids the document publishes."""
    cache_control: pulumi.Input[str]
    keyset: pulumi.Input[str]
    content_type: pulumi.Input[str] = "application/json"


class Publication(Resource, module=PUBLICATION[0], name=PUBLICATION[1]):
    target: pulumi.Output[str]
    sha256: pulumi.Output[str]
    first_published: pulumi.Output[dict[str, str]]
    """Per kid, when the publisher first wrote it to this target (RFC 3339)."""
    published_at: pulumi.Output[str]

    def __init__(self, name: str, args: PublicationArgs, opts: pulumi.ResourceOptions | None = None):
        props = {
            "target": args.target,
            "format": args.format,
            "content": args.content,
            "kids": args.kids,
            "cache_control": args.cache_control,
            "content_type": args.content_type,
            "keyset": args.keyset,
            "sha256": None,
            "first_published": None,
            "published_at": None,
        }
        super().__init__(PublicationProvider(), name, props, opts)
