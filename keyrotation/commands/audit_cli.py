"""``key-rotation audit``: the stack file's git history as seed 002's audit log
(keyrotation/commands/audit.py).

JSON Lines by default (one event per line, for a log pipeline or an artifact), ``--table`` for
people, ``--ledger`` for seed 004's rotation ledger (timestamp, operator, key fingerprint), and
``--json`` for the commands' JSON contract (``schemas/audit.schema.json``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import CommandError, KeyRotationError
from ..times import format_optional
from . import audit

if TYPE_CHECKING:
    from .cli import Context
    from .records import Publications

EVENT_TYPES_HELP = "event types: " + ", ".join(audit.EVENT_TYPES)


def cmd_audit(ctx: Context) -> int:
    from .cli import parse_time

    args = ctx.args
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    records = _records(ctx)
    try:
        root, found = audit.events(ctx.path, records=records)
    except audit.AuditError as error:
        raise CommandError(str(error)) from None
    events = audit.within(found, since, until)
    rewritten = [e for e in events if "flags" in e.details]
    rows: list[dict[str, Any]] = audit.ledger(events) if args.ledger else [e.to_json() for e in events]
    if args.json:
        view = "ledger" if args.ledger else "events"
        ctx.emit_document(
            "audit", 0, repository=str(root), view=view, since=format_optional(since),
            until=format_optional(until), flagged=len(rewritten), notices=ctx.notices, **{view: rows})
        return 0
    if args.table:
        _table(ctx, rows, args.ledger)
        return 0
    for row in rows:
        ctx.emit(json.dumps(row, sort_keys=False, separators=(",", ":")))
    return 0


def _records(ctx: Context) -> dict[str, Publications]:
    """Kids and thumbprints as deployed, when the outputs are at hand (--outputs, or the Pulumi CLI)."""
    if not (ctx.args.outputs or (not ctx.args.no_outputs and ctx.stack_name)):
        return {}
    try:
        stack = ctx.load().config
    except KeyRotationError:  # the current file is invalid: the trail still reads the history
        return {}
    return ctx.records(stack)


def _table(ctx: Context, rows: list[dict[str, Any]], ledger: bool) -> None:
    header: tuple[str, ...]
    lines: list[tuple[str, ...]]
    if ledger:
        header = ("TIMESTAMP", "OPERATOR", "KEY FINGERPRINT", "KEY ID", "ANCHOR", "COMMIT")
        lines = [(r["timestamp"] or "-", r["operator"], r["key_fingerprint"] or "-", r["key_id"] or "-",
                  _anchor_cell(r["anchor_id"], r["anchors"]), (r["commit"] or "")[:10]) for r in rows]
    else:
        header = ("TIMESTAMP", "EVENT", "KEY ID", "ANCHOR", "ACTOR", "COMMIT", "FLAGS")
        lines = [(r["timestamp"] or "-", r["event_type"], r["key_id"] or "-",
                  _anchor_cell(r["anchor_id"], r["details"].get("anchors", [])), r["actor"],
                  r["details"]["commit"][:10], ",".join(r["details"].get("flags", [])) or "-")
                 for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=False)]
    for line in (header, *lines):
        ctx.emit("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())


def _anchor_cell(anchor_id: str | None, anchors: list[str]) -> str:
    """The event's anchor_id, or the trust anchors it names when several do (anchor_id null)."""
    return anchor_id or ",".join(anchors) or "-"


def add_audit_command(add: Any) -> None:
    """Register ``audit`` with the CLI's ``add`` (keyrotation/cli.py build_parser)."""
    p = add("audit", cmd_audit,
            "the stack file's git history as an audit log (seed 002), or a ledger (seed 004)",
            "One event per lifecycle change, from the git history of the stack file: each commit's file, read"
            " by the validator, against its parent's. The actor is the commit's author, the timestamp the"
            " time the stack file records for the change (the commit date beside it), anchor_id the trust"
            " anchor naming the key's keyset in that version (several: null, all in details.anchors; none:"
            " the keyset). Commits that change or remove recorded history are reported as HISTORY_REWRITTEN,"
            " changes recorded before the previous commit are flagged backdated. JSON Lines by default."
            f" {EVENT_TYPES_HELP}.")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--table", action="store_true", help="a table for people instead of JSON Lines")
    p.add_argument("--ledger", action="store_true",
                   help="seed 004's ledger: one row per activation with timestamp, operator"
                        " and key fingerprint")
    p.add_argument("--since", metavar="TIME", help="only events at or after TIME (RFC 3339)")
    p.add_argument("--until", metavar="TIME", help="only events at or before TIME (RFC 3339)")
