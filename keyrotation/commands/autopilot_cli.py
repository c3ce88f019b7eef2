"""``key-rotation autopilot``: read the stack file, the stack outputs (and staging's), decide, write.

The decisions are :mod:`keyrotation.autopilot`'s; the edit goes through the stack-file editor
(minimal, validated, atomic, under the file's lock), like every command that edits.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from ..config import StackConfig
from . import autopilot, autopilot_report, outputs
from .cli import Context, _check_clock, _write_text
from .records import Publications
from .stackfile import StackFile, locked


def _staging(ctx: Context, stack: StackConfig) -> tuple[dict[str, autopilot.StagingFacts], dict[str, str]]:
    wanted = sorted({ks.staging.stack for ks in stack.keysets.values() if ks.staging is not None})
    facts: dict[str, autopilot.StagingFacts] = {}
    unavailable: dict[str, str] = {}
    for name in wanted:
        data: dict[str, Any] | None
        if ctx.args.staging_outputs:
            given = ctx.args.staging_outputs
            data, source = outputs.load(given), str(Path(given).resolve())
        else:
            data, source = outputs.from_pulumi(name, ctx.project)
        if data is None:
            unavailable[name] = source
            continue
        facts[name] = autopilot.staging_facts(data, source)
    return facts, unavailable


def _decide(
    ctx: Context, write: bool
) -> tuple[StackFile, autopilot.Outcome, dict[str, Publications] | None, bool, str]:
    stack_file = ctx.load()
    _check_clock(ctx, stack_file)
    stack = stack_file.config
    records = ctx.records(stack)
    readable = any(r.source for r in records.values()) or not ctx.notices
    facts, unavailable = _staging(ctx, stack)
    outcome = autopilot.run(
        stack, ctx.now, records if readable else None, unavailable=ctx.unavailable,
        staging=facts, staging_unavailable=unavailable,
    )
    written, text = False, stack_file.text
    if outcome.changed:
        if write:
            text, written = stack_file.write(outcome.edits, outcome.stack), True
        else:
            text = stack_file.edited(outcome.edits)
    return stack_file, outcome, records if readable else None, written, text


def cmd_autopilot(ctx: Context) -> int:
    if ctx.args.dry_run:
        stack_file, outcome, records, written, text = _decide(ctx, write=False)
    else:
        with locked(ctx.path):
            stack_file, outcome, records, written, text = _decide(ctx, write=True)
    name = ctx.stack_name or stack_file.name
    title = autopilot_report.title(outcome, name)
    body = autopilot_report.body(outcome, name, records)
    if ctx.args.pr_body:
        _write_text(Path(ctx.args.pr_body), body)
    if ctx.args.json:
        ctx.emit_document("autopilot", int(outcome.exit_code), **autopilot_report.to_json(
            outcome, stack_name=name, written=written, records=records, notices=ctx.notices))
        return int(outcome.exit_code)
    result = {autopilot.EXIT_CHANGED: "changed" + ("" if written else " (dry run: not written)"),
              autopilot.EXIT_NOTHING_DUE: "nothing due", autopilot.EXIT_BLOCKED: "blocked"}[outcome.exit_code]
    ctx.emit(f"{stack_file.name}: autopilot at {ctx.now.isoformat().replace('+00:00', 'Z')}: {result}")
    ctx.emit(f"title: {title}")
    ctx.emit("")
    ctx.emit(body.rstrip("\n"))
    if ctx.args.diff and text != stack_file.text:
        ctx.emit("".join(difflib.unified_diff(
            stack_file.text.splitlines(keepends=True), text.splitlines(keepends=True),
            f"a/{stack_file.name}", f"b/{stack_file.name}",
        )).rstrip("\n"))
    for notice in ctx.notices:
        ctx.emit(f"note: {notice}")
    return int(outcome.exit_code)
