"""When a generation was first published: the one rule the commands and the policy pack share.

Each publisher records, per kid, when it first wrote the kid to its target (``first_published``,
kept while the kid stays listed). The rule over those records:

- A generation counts as published once every document that lists kids (JWKS, signers,
  trust anchor) lists it: at the latest of their first-published times. A document that lists
  it but whose record is not known yet (a document being written by this very deployment, as the
  policy pack sees it) published it ``now``; a document whose record is unknown altogether (a
  preview of a changed document, a ConfigMap target) says nothing.
- A kid that was in the first version of a document and was active before that first version
  is not held to that record: no verifier can hold an older copy of a document that did not exist.
- A keyset with no such document (encrypt and mac keysets: their keys are delivered in
  keyrings) publishes a generation when it was first deployed (the deployment record).
- A generation missing from some document that lists kids is not published: no time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .times import format_time


@dataclass(frozen=True)
class DocumentSeen:
    """One document that lists kids, as a reader of the stack sees it."""

    target: str
    first_published: Mapping[str, datetime] | None
    """The publisher's record, per kid; None when unknown."""
    kids: Sequence[str] | None = None
    """The kids the document lists now, if known (the records' kids otherwise)."""


@dataclass(frozen=True)
class FirstPublished:
    at: datetime | None
    """When the generation counts as published; None: not (yet) published, or unknown."""
    missing: tuple[str, ...] = ()
    """Targets whose document does not list it."""
    source: str | None = None
    """Where ``at`` comes from, for messages."""
    sources: tuple[str, ...] = field(default_factory=tuple)


def first_published(
    kid: str | None,
    activated_at: datetime | None,
    documents: Sequence[DocumentSeen],
    *,
    now: datetime | None = None,
    first_deployed: datetime | None = None,
) -> FirstPublished:
    known = [d for d in documents if d.first_published is not None]
    listing = [d for d in known if d.first_published or d.kids]
    if not listing:
        if first_deployed is not None:
            return FirstPublished(first_deployed, source=f"first deployed at {format_time(first_deployed)}")
        return FirstPublished(None)
    if kid is None:
        return FirstPublished(None)
    times: list[tuple[datetime, str]] = []
    missing: list[str] = []
    for doc in listing:
        record = doc.first_published
        if record is not None and kid in record:
            t = record[kid]
            if activated_at is not None and t > activated_at and t == min(record.values()):
                continue  # born with the document: no verifier had an older copy
            times.append((t, f"was first published in {doc.target} at {format_time(t)}"))
        elif doc.kids is not None and kid in doc.kids:
            if now is not None:
                times.append((now, f"is first published in {doc.target} by this deployment"
                                   f" ({format_time(now)})"))
        else:
            missing.append(doc.target)
    if missing:
        return FirstPublished(None, tuple(missing))
    if not times:
        return FirstPublished(None)
    at, source = max(times)
    return FirstPublished(at, (), source, tuple(s for _, s in times))
