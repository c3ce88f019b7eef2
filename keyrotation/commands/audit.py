"""The audit trail: the git history of a stack file as seed 002's key audit log.

Every change to a key is a commit that edits ``Pulumi.<stack>.yaml`` (usually made by a rotation
command), so the git history is the record of who changed what. This module reads it with ``git``
(``git log --follow`` for the commits, ``git show REV:PATH`` for each version), parses every
version with the project's own validator (:func:`keyrotation.config.load`) and diffs each
commit's stack file against its parent's: one event per lifecycle change, in seed 002's
``key_audit_log`` shape (``event_id, event_type, key_id, anchor_id, actor, timestamp, details``).

- ``timestamp`` is the time the stack file records for the change (``createdAt``, ``activatedAt``,
  a ``history`` step, a ``rewrapped`` entry...); the commit's author date is beside it in
  ``details.commit_date``, the commit id in ``details.commit``.
- ``actor`` is the commit's author (``Name <email>``).
- ``anchor_id`` is the trust anchor (``key-rotation:trustAnchors``) that names the key's keyset in
  that commit's version of the stack file; when several do, null and ``details.anchors`` lists them
  all; when none does, the keyset (the anchor its own documents form). :func:`anchor_of` is the rule;
  ``details.keyset`` is the keyset, ``details.targets`` its documents that list keys.
- ``event_type``: seed 002's vocabulary where it has a word (KEY_GENERATED, KEY_ADDED, KEY_REVOKED),
  extended where it has none (:data:`EVENT_TYPES`).
- Recorded history is append-only: a commit that changes or removes a recorded time, a step or a
  generation is reported as ``HISTORY_REWRITTEN`` (``details.flags``), and a change recorded at a
  time before the previous version of the file was committed is flagged ``backdated``.

``now`` is never read: the same history gives the same events (``event_id`` is a UUID derived from
the commit and the change).
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import config, keys, lifecycle
from ..config import ConfigError, Generation, KeySetConfig, StackConfig
from ..documents import KID_FORMATS
from ..identifiers import kid_needs_key
from ..lifecycle import State
from ..times import format_time, parse
from .records import NO_RECORD, Publications, kid_of

EVENT_TYPES: dict[str, str] = {
    # seed 002's own words
    "KEY_GENERATED": (
        "a generation was added: its key is created in its backend (or, external, its public key recorded)"
    ),
    "KEY_ADDED": (
        "the new generation was added to its keyset's trust anchor(s): published/delivered before it is used"
    ),
    "KEY_REVOKED": "revoked (details.reason); it leaves every document and is listed as revoked",
    # extensions: the lifecycle steps seed 002 has no word for
    "KEY_ACTIVATED": (
        "it became the active generation (signs or encrypts): promote, or an emergency replacement"
    ),
    "KEY_REACTIVATED": "it became active again: a rollback (a new signing period)",
    "KEY_RETIRING": "it stopped signing/encrypting; still published (verify/decrypt) for the overlap",
    "KEY_RESTORED": "a retired or destroyed generation became retiring again (restore: verify/decrypt only)",
    "KEY_RETIRED": "it left the published documents and keyrings (seed 002: the end of the transition)",
    "KEY_DESTROYED": "its key material was scheduled for deletion (the public key stays in the key history)",
    "KEY_DATA_REWRAPPED": "the data at rest under it was re-encrypted under a newer generation (details.by)",
    # what an auditor must see
    "HISTORY_REWRITTEN": (
        "a commit changed or removed recorded history (a time, a step, a generation, a keyset)"
    ),
    "STACK_FILE_INVALID": "the stack file at this commit does not pass the validator (details.problems)",
    "STACK_FILE_DELETED": "the commit deleted the stack file",
}

_NAMESPACE = uuid.UUID("6f1c4b1e-2f37-5d0c-9a51-0b8e6a3c1d42")


class AuditError(Exception):
    """The history cannot be read (not a git repository, git missing, no commit touches the file)."""


@dataclass(frozen=True)
class Commit:
    id: str
    parents: tuple[str, ...]
    author: str
    email: str
    authored_at: datetime
    committed_at: datetime
    status: str
    """git's name status for the file: A, M, D, R<score>."""
    path: str
    """The file's path in this commit (relative to the repository root)."""
    previous_path: str
    """Its path in the parent (differs after a rename)."""

    @property
    def actor(self) -> str:
        return f"{self.author} <{self.email}>" if self.email else self.author


@dataclass
class Event:
    event_type: str
    key_id: str | None
    anchor_id: str | None
    actor: str
    timestamp: datetime | None
    details: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "event_type": self.event_type, "key_id": self.key_id,
            "anchor_id": self.anchor_id, "actor": self.actor,
            "timestamp": None if self.timestamp is None else format_time(self.timestamp),
            "details": self.details,
        }


# ---------------------------------------------------------------------------------------------
# git


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False,
                              timeout=120, env=_git_env())
    except FileNotFoundError:
        raise AuditError(
            "git is not installed: the audit trail is the git history of the stack file"
        ) from None


def _git_env() -> dict[str, str]:
    import os

    # A user's pager or locale must not change what is parsed.
    return {**os.environ, "GIT_PAGER": "cat", "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"}


def repository(path: Path) -> tuple[Path, str]:
    """The repository holding ``path`` and the file's path in it."""
    directory = path.parent if path.parent.exists() else Path.cwd()
    done = _git(directory, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise AuditError(
            f"{path}: {directory.resolve()} is not in a git repository; the audit trail is the git history"
            " of the stack file (run it in the clone where rotations are committed)"
        )
    root = Path(done.stdout.strip()).resolve()
    try:
        relative = path.resolve().relative_to(root)
    except ValueError:
        raise AuditError(f"{path}: not inside the repository {root}") from None
    return root, relative.as_posix()


_RECORD, _FIELD = "\x1e", "\x1f"
_FORMAT = _RECORD + _FIELD.join(("%H", "%P", "%an", "%ae", "%aI", "%cI"))


def history(path: Path) -> tuple[Path, list[Commit]]:
    """Every commit that touched the file (following renames), oldest first. Merge commits are not
    listed: what they bring is in the commits they merge."""
    root, relative = repository(path)
    done = _git(root, "log", "--follow", "--no-merges", "--name-status", "-M", f"--format={_FORMAT}",
                "--", relative)
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["no message"])[-1]
        if "does not have any commits" in message or "bad default revision" in message:
            raise AuditError(f"{path}: the repository {root} has no commits yet")
        raise AuditError(f"{path}: `git log` failed: {message}")
    commits = []
    for record in done.stdout.split(_RECORD)[1:]:
        header, _, rest = record.partition("\n")
        sha, parents, author, email, authored, committed = header.split(_FIELD)
        status, previous, current = "M", relative, relative
        for line in rest.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0]:
                status = parts[0]
                previous, current = (parts[1], parts[2]) if len(parts) == 3 else (parts[1], parts[1])
                break
        commits.append(Commit(sha, tuple(parents.split()), author, email, parse(authored), parse(committed),
                              status, current, previous))
    if not commits:
        raise AuditError(f"{path}: no commit in {root} touches {relative} (is it committed?)")
    return root, commits[::-1]


def _show(root: Path, revision: str, path: str) -> str | None:
    done = _git(root, "show", f"{revision}:{path}")
    return done.stdout if done.returncode == 0 else None


# ---------------------------------------------------------------------------------------------
# Diffing two versions


def _event_type(steps: Sequence[tuple[State, datetime]], index: int, first_pass_length: int) -> str:
    state = steps[index][0]
    previous = steps[index - 1][0] if index else None
    if state is State.PENDING:
        return "KEY_GENERATED"
    if state is State.ACTIVE:
        return "KEY_ACTIVATED" if index < first_pass_length else "KEY_REACTIVATED"
    if state is State.RETIRING:
        return "KEY_RESTORED" if previous in (State.RETIRED, State.DESTROYED) else "KEY_RETIRING"
    return {
        State.RETIRED: "KEY_RETIRED", State.DESTROYED: "KEY_DESTROYED", State.REVOKED: "KEY_REVOKED"
    }[state]


def fingerprint(pem: str | None) -> str | None:
    """SHA-256 of the SubjectPublicKeyInfo DER, ``sha256:<hex>``
    (``openssl pkey -pubin -outform DER | sha256sum``)."""
    if not pem:
        return None
    import base64

    der = base64.urlsafe_b64decode(keys.public_der_b64url(pem) + "==")
    return "sha256:" + hashlib.sha256(der).hexdigest()


@dataclass
class _Version:
    commit: Commit
    stack: StackConfig


def _targets(ks: KeySetConfig) -> list[str]:
    """The keyset's own documents that list its keys (``details.targets``)."""
    return [p.target for p in ks.publish if p.format in KID_FORMATS or p.format == "key-history"]


ANCHOR_FROM_TRUST_ANCHOR = "the one trust anchor naming the keyset"
ANCHOR_FROM_TRUST_ANCHORS = "none: several trust anchors name the keyset (details.anchors)"
ANCHOR_FROM_KEYSET = "the keyset: no trust anchor names it in this version of the stack file"


def anchor_of(stack: StackConfig, keyset: str) -> tuple[str | None, dict[str, Any]]:
    """An event's ``anchor_id`` and the details that explain it, from ``stack``'s trust anchors.

    Seed 002's ``anchor_id`` is one trust anchor (a UUID, nullable), and the seed logs no separate
    event per anchor for ``--anchor-id ALL``: an event names the trust anchor(s) listing the key's
    keyset. Exactly one: its ``trustAnchorId``. Several: null, every one in ``details.anchors``. None:
    the keyset, as the anchor its own documents form (``details.anchor_id_source`` says which)."""
    ids = [a.trust_anchor_id for a in stack.anchors_naming(keyset)]
    if len(ids) == 1:
        return ids[0], {"anchors": ids, "anchor_id_source": ANCHOR_FROM_TRUST_ANCHOR}
    if ids:
        return None, {"anchors": ids, "anchor_id_source": ANCHOR_FROM_TRUST_ANCHORS}
    return keyset, {"anchors": [], "anchor_id_source": ANCHOR_FROM_KEYSET}


def diff(
    before: StackConfig | None, after: StackConfig, commit: Commit, *,
    previous_commit_at: datetime | None = None, records: Mapping[str, Publications] | None = None,
) -> list[Event]:
    """The events of one commit: what ``after`` records that ``before`` did not, and every recorded
    fact ``before`` had that ``after`` changed or dropped."""
    out: list[Event] = []
    base = {"stack_file": commit.path, "commit": commit.id, "commit_date": format_time(commit.authored_at)}

    def add(event_type: str, ks: KeySetConfig | None, g: Generation | None, at: datetime | None,
            **details: Any) -> None:
        record = (records or {}).get(ks.name, NO_RECORD) if ks is not None else NO_RECORD
        key_id = None
        if ks is not None and g is not None:
            known = g.id in record.kids or not kid_needs_key(ks.kid)
            key_id = kid_of(after, ks, g, record) if known else f"{ks.name}/{g.id}"
        flags = list(details.pop("flags", []))
        backdated = at is not None and previous_commit_at is not None and at < previous_commit_at
        if backdated and event_type in EVENT_TYPES and event_type not in (
                "HISTORY_REWRITTEN", "STACK_FILE_INVALID", "STACK_FILE_DELETED"):
            flags.append("backdated")
        info: dict[str, Any] = {**base}
        anchor_id = None
        if ks is not None:
            anchor_id, anchor = anchor_of(after, ks.name)
            info["keyset"] = ks.name
            info.update(anchor)
            info["targets"] = _targets(ks)
        if g is not None:
            info["generation"] = g.id
            if ks is not None:
                info.update(_fingerprint(ks, g, record, after.environment))
        info.update({k: v for k, v in details.items() if v is not None})
        if flags:
            info["flags"] = flags
        out.append(Event(event_type, key_id, anchor_id, commit.actor, at, info))

    for name, ks in after.keysets.items():
        old_ks = before.keysets.get(name) if before is not None else None
        old_generations = {g.id: g for g in old_ks.generations} if old_ks is not None else {}
        for g in ks.generations:
            old = old_generations.get(g.id)
            steps = lifecycle.path(g)
            first = len(lifecycle.first_pass(g))
            old_steps = lifecycle.path(old) if old is not None else []
            if old_steps != steps[:len(old_steps)]:
                # The changed steps are this event's before/after, not new lifecycle changes.
                add("HISTORY_REWRITTEN", ks, g, None, flags=["rewrites-recorded-history"],
                    before=_steps(old_steps), after=_steps(steps))
            for i in range(len(old_steps), len(steps)):
                state, at = steps[i]
                event_type = _event_type(steps, i, first)
                entered = {"state": str(state), "previous_state": str(steps[i - 1][0]) if i else None}
                if event_type == "KEY_REVOKED":
                    add(event_type, ks, g, at, reason=g.revoke_reason, **entered)
                elif event_type == "KEY_GENERATED":
                    add(event_type, ks, g, at, backend=ks.backend, algorithm=ks.algorithm, **entered)
                    add("KEY_ADDED", ks, g, at, **entered)
                else:
                    add(event_type, ks, g, at, **entered)
            old_rewraps = list(old.rewrapped) if old is not None else []
            if old_rewraps != list(g.rewrapped[:len(old_rewraps)]):
                add("HISTORY_REWRITTEN", ks, g, None, flags=["rewrites-recorded-history"],
                    field="rewrapped")
            for rewrap in g.rewrapped[len(old_rewraps):]:
                add("KEY_DATA_REWRAPPED", ks, g, rewrap.at, by=rewrap.by)
            if old is not None and old.revoke_reason is not None and old.revoke_reason != g.revoke_reason:
                add("HISTORY_REWRITTEN", ks, g, None, flags=["rewrites-recorded-history"],
                    field="revokeReason", before=old.revoke_reason, after=g.revoke_reason)
            if old is not None and old.public_key_pem and (
                    fingerprint(old.public_key_pem) != fingerprint(g.public_key_pem)):
                add("HISTORY_REWRITTEN", ks, g, None, flags=["rewrites-recorded-history"],
                    field="publicKeyPem",
                    before=fingerprint(old.public_key_pem), after=fingerprint(g.public_key_pem))
        for gid, old in old_generations.items():
            if gid not in {g.id for g in ks.generations}:
                add("HISTORY_REWRITTEN", ks, old, None, flags=["generation-removed"],
                    before=_steps(lifecycle.path(old)))
    removed = [(before, name, old_ks) for name, old_ks in before.keysets.items()
               if name not in after.keysets] if before is not None else []
    for previous, name, old_ks in removed:
        # No anchor can name a keyset the file no longer has: the anchors are the version before's.
        anchor_id, anchor = anchor_of(previous, name)
        out.append(Event("HISTORY_REWRITTEN", None, anchor_id, commit.actor, None,
                         {**base, "keyset": name, **anchor, "flags": ["keyset-removed"],
                          "generations": [g.id for g in old_ks.generations]}))
    return out


def _steps(steps: Iterable[tuple[State, datetime]]) -> list[dict[str, str]]:
    return [{"state": str(s), "at": format_time(t)} for s, t in steps]


def _fingerprint(ks: KeySetConfig, g: Generation, record: Publications, environment: str) -> dict[str, Any]:
    if g.public_key_pem:
        return {"fingerprint": fingerprint(g.public_key_pem),
                "fingerprint_source": "publicKeyPem in the stack file"}
    if g.id in record.kids:
        # ``kid: thumbprint`` or a template such as ``sha256:{thumbprint}``: the deployed kid carries
        # the key's RFC 7638 thumbprint; the fingerprint is the thumbprint, not the rendered kid.
        thumbprint = keys.thumbprint_in_kid(ks.kid, record.kids[g.id], keyset=ks.name, generation=g.id,
                                            environment=environment)
        if thumbprint is not None:
            return {"fingerprint": f"jwk-thumbprint:{thumbprint}", "fingerprint_source": record.source}
    if not ks.spec.publishes_public_key:
        return {"fingerprint": None, "fingerprint_source": "none: a symmetric key has no public fingerprint"}
    return {"fingerprint": None,
            "fingerprint_source": (
                "none: the public key is in neither the stack file nor the stack outputs (--outputs)"
            )}


# ---------------------------------------------------------------------------------------------
# The whole trail


def events(path: Path, *, records: Mapping[str, Publications] | None = None) -> tuple[Path, list[Event]]:
    """Every event in the file's history, oldest commit first (the repository root with it)."""
    root, commits = history(path)
    parsed: dict[str, StackConfig | ConfigError] = {}

    def load(revision: str, file: str) -> StackConfig | ConfigError | None:
        text = _show(root, revision, file)
        if text is None:
            return None
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest not in parsed:
            try:
                parsed[digest] = config.load(Path(file).name, text=text)
            except ConfigError as error:
                parsed[digest] = error
        return parsed[digest]

    out: list[Event] = []
    last_valid: StackConfig | None = None
    previous_commit_at: datetime | None = None
    for commit in commits:
        if commit.status.startswith("D"):
            out.append(Event("STACK_FILE_DELETED", None, None, commit.actor, None,
                             {"stack_file": commit.path, "commit": commit.id,
                              "commit_date": format_time(commit.authored_at),
                              "flags": ["stack-file-deleted"]}))
            last_valid, previous_commit_at = None, commit.authored_at
            continue
        after = load(commit.id, commit.path)
        before: StackConfig | ConfigError | None = None
        if commit.parents and not commit.status.startswith("A"):
            before = load(commit.parents[0], commit.previous_path)
        if isinstance(before, ConfigError) or (before is None and commit.parents and last_valid is not None
                                               and not commit.status.startswith("A")):
            before = last_valid  # diff against the last version that passed the validator
        if isinstance(after, ConfigError):
            out.append(Event("STACK_FILE_INVALID", None, None, commit.actor, None,
                             {"stack_file": commit.path, "commit": commit.id,
                              "commit_date": format_time(commit.authored_at),
                              "problems": str(after).splitlines()[:20]}))
            previous_commit_at = commit.authored_at
            continue
        if after is None:
            continue
        out += diff(before if isinstance(before, StackConfig) else None, after, commit,
                    previous_commit_at=previous_commit_at, records=records)
        last_valid, previous_commit_at = after, commit.authored_at
    for index, event in enumerate(out):
        # Derived, not random: the same history gives the same ids (events are appended as it grows).
        details = event.details
        event.event_id = str(uuid.uuid5(_NAMESPACE, "\x1f".join(str(v) for v in (
            index, details.get("commit"), event.event_type, details.get("keyset"), details.get("generation"),
            event.timestamp,
        ))))
    return root, out


def within(items: Iterable[Event], since: datetime | None, until: datetime | None) -> list[Event]:
    """Events whose time (recorded, else the commit's) falls in [since, until]."""
    out = []
    for e in items:
        t = e.timestamp or parse(e.details["commit_date"])
        if (since is None or t >= since) and (until is None or t <= until):
            out.append(e)
    return out


def ledger(items: Iterable[Event]) -> list[dict[str, Any]]:
    """Seed 004's rotation ledger as a view of the trail: one row per activation (a rotation),
    with its timestamp, operator and key fingerprint (and the event's keyset and trust anchors)."""
    return [
        {"timestamp": e.to_json()["timestamp"], "operator": e.actor,
         "key_fingerprint": e.details.get("fingerprint"),
         "key_id": e.key_id, "keyset": e.details.get("keyset"),
         "anchor_id": e.anchor_id, "anchors": e.details.get("anchors", []),
         "generation": e.details.get("generation"),
         "event_type": e.event_type, "commit": e.details.get("commit")}
        for e in items if e.event_type in ("KEY_ACTIVATED", "KEY_REACTIVATED")
    ]
