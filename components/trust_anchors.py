"""Seed 002's trust anchors: one document per anchor over the keysets it names.

An anchor copies no kid from the stack file: its document is built from the named keysets' own
document records (``KeySet.records``), so a generation that is revoked leaves every anchor naming
its keyset in the same `pulumi up` (seed 002's ``revoke-key --anchor-id ALL``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components.keyset import KeySet
from components.publication import Publication, PublicationArgs
from keyrotation import documents, names
from keyrotation.config import TrustAnchor
from keyrotation.documents import Format, KeyRecord


@dataclass
class TrustAnchorsArgs:
    anchors: list[TrustAnchor]
    """The stack's ``trustAnchors``, as validated (every keyset they name exists and signs)."""
    keysets: Mapping[str, KeySet]
    """The stack's keysets, by name."""
    publish_root: str
    """Where ``file://`` anchors may be written (the stack's ``publishRoot``)."""


def cache_control(anchor: TrustAnchor, keysets: Mapping[str, KeySet]) -> str:
    """No verifier may cache the anchor longer than any keyset it lists allows for its documents:
    the shortest ``publishMaxAgeSeconds`` (each keyset's publish lead counts with its own)."""
    seconds = min(keysets[k].config.timings.publish_max_age_seconds for k in anchor.keysets)
    return documents.cache_control(Format.ANCHOR, seconds)


def _document(anchor: TrustAnchor, records: list[KeyRecord]) -> dict:
    return documents.anchor(anchor, records)


def _flatten(lists: list[list[KeyRecord]]) -> list[KeyRecord]:
    return [record for records in lists for record in records]


class TrustAnchors(pulumi.ComponentResource):
    """One publication per trust anchor; registered only by stacks that declare anchors."""

    def __init__(self, name: str, args: TrustAnchorsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(names.TRUST_ANCHORS_TYPE, name, None, opts)
        self.anchors = args.anchors
        self.publications: dict[str, pulumi.Resource] = {}
        for anchor in args.anchors:
            records = pulumi.Output.all(*(args.keysets[k].records for k in anchor.keysets)).apply(_flatten)
            document = records.apply(functools.partial(_document, anchor))
            self.publications[anchor.target] = self._publication(anchor, document, args)
        self.register_outputs({
            "anchors": [{"trustAnchorId": a.trust_anchor_id, "purlPattern": a.purl_pattern,
                         "keysets": list(a.keysets), "target": a.target} for a in args.anchors],
        })

    def _publication(self, anchor: TrustAnchor, document: pulumi.Output[dict],
                     args: TrustAnchorsArgs) -> pulumi.Resource:
        # Named by the stable id (and the target, as keyset publications are): never renamed.
        suffix = hashlib.sha256(anchor.target.encode()).hexdigest()[:8]
        resource_name = f"anchor-{anchor.trust_anchor_id.lower()}-{suffix}"
        text = document.apply(documents.render)
        # The policy pack files the document under every keyset it names: keyset names hold no
        # comma (keyrotation.identifiers), so the list travels as one comma-joined property.
        owners = ",".join(anchor.keysets)
        # Like a keyset's documents, dropped from the state by a destroy, never deleted from
        # where verifiers read them (components/keyset.py).
        options = pulumi.ResourceOptions(parent=self, deleted_with=self)
        publication = anchor.publication
        if publication.scheme == "configmap":
            from components.config_map import document_config_map

            return document_config_map(resource_name, publication, text, owners, options)
        return Publication(
            resource_name,
            PublicationArgs(
                target=anchor.target,
                format=Format.ANCHOR.value,
                content=text,
                kids=document.apply(lambda d: documents.kids_in(Format.ANCHOR, d)),
                cache_control=cache_control(anchor, args.keysets),
                content_type=documents.content_type(Format.ANCHOR),
                keyset=owners,
                publish_root=args.publish_root if publication.scheme == "file" else None,
            ),
            options,
        )

    def naming(self, keyset: str) -> dict[str, tuple[str, pulumi.Resource]]:
        """Per target, the format and publication of every anchor that lists ``keyset``'s keys."""
        return {a.target: (Format.ANCHOR.value, self.publications[a.target])
                for a in self.anchors if keyset in a.keysets}
