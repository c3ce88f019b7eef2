"""``key-rotation`` / ``python -m keyrotation``: every runbook step as a command.

Commands that change something edit ``Pulumi.<stack>.yaml`` (the minimal edit, in the file's own
style), re-validate it and write it atomically; the change then goes through a pull request and
``pulumi preview``/``up`` like any other. Commands that report (status, plan, timeline, valid-at)
change nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from .. import material, times
from ..config import StackConfig
from ..errors import CommandError, KeyRotationError
from ..identifiers import kid_needs_key
from ..lifecycle import REVOKE_REASONS, TRIGGER_NAMES, Timings, format_duration
from ..names import DEBUG_VARIABLE
from ..runtime import garbage_collection_tuned
from ..times import SECONDS_PER_DAY, format_time, utc_now
from . import contract, outputs, records, schedule, timeline, transitions
from .records import Publications
from .stackfile import AddGeneration, AppendEntry, Edit, StackFile, locked
from .transitions import Result

"""Set to 1 to see the Python traceback of an unexpected error instead of its one-line summary."""

EXIT_ERROR = 1
"""Bad input, an invalid stack file, or a refused command: nothing was written."""
EXIT_USAGE = 2
"""The command line itself is wrong (argparse)."""

# autopilot's (keyrotation/commands/autopilot.py); spelled here for the table below without importing it.
EXIT_AUTOPILOT_NOTHING_DUE = 7
EXIT_AUTOPILOT_BLOCKED = 8

EXIT_CODES = f"""\
exit codes:
  0  success (status: every keyset ok; plan: no unintended gap; valid-at: valid)
  1  error: bad input, invalid stack file or refused command; the file is unchanged
  2  usage error
  {schedule.EXIT_WARNING}  status: some active generation is within warnDays of maxAgeDays
  {schedule.EXIT_OVERDUE}  status: some active generation is older than maxAgeDays (overdue wins over warning)
  {schedule.EXIT_GAP}  plan: the gap check found a gap that is not intended
  {schedule.EXIT_NOT_VALID}  valid-at: the key could not have made a valid signature at that time
  {EXIT_AUTOPILOT_NOTHING_DUE}  autopilot: nothing is due; the stack file is unchanged (0: it changed it)
  {EXIT_AUTOPILOT_BLOCKED}  autopilot: nothing changed; a due step cannot be taken (the output says why)
"""

DESCRIPTION = """\
Rotate keys by editing the stack file Pulumi.<stack>.yaml: each command makes the minimal edit
the lifecycle allows, prints what it changed, and leaves the rest of the file (comments, order,
formatting) untouched. Open a pull request with the change; `pulumi preview` shows what it does
and the policy pack checks it; `pulumi up` applies it.

  scheduled rotation:  rotate KEYSET -> (PR, up) -> promote KEYSET -> (PR, up) -> retire KEYSET OLD
  compromise:          revoke KEYSET GEN --reason compromise -> (PR, up at once)
  what is due:         status, plan, timeline
"""

class UsageError(KeyRotationError):
    """A command line that does not say what to do (exit code 2, not 1)."""

    pass


def parse_time(text: str, option: str) -> datetime:
    try:
        return times.parse(text)
    except times.TimeError as error:
        raise UsageError(
            f"{option}: {times.shown(text)} is not an RFC 3339 time with a timezone in range, e.g."
            f" 2026-11-30T09:00:00Z ({error})"
        ) from None


# ---------------------------------------------------------------------------------------------
# The context every command shares


class Context:
    def __init__(self, args: argparse.Namespace, out: TextIO):
        self.args = args
        self.out = out
        self.clock = wall_clock()
        # An empty --now is an error, not "the clock".
        self.now = parse_time(args.now, "--now") if args.now is not None else self.clock
        self.project = _project(args)
        path = stack_path(args)
        if path is None:
            raise UsageError("name the stack: --stack NAME (reads Pulumi.NAME.yaml) or --file PATH")
        self.path = path
        self._records: dict[str, Publications] | None = None
        self.unavailable: str | None = "no stack name to ask `pulumi stack output` for; pass --outputs FILE"
        self.notices: list[str] = []

    @property
    def stack_name(self) -> str | None:
        if self.args.stack:
            return str(self.args.stack)
        match = re.fullmatch(r"Pulumi\.(.+)\.ya?ml", self.path.name)
        return match.group(1) if match else None

    def load(self) -> StackFile:
        return StackFile(self.path, now=self.now)

    def records(self, stack: StackConfig) -> dict[str, Publications]:
        """The publisher's record: --outputs FILE, else `pulumi stack output`, else none."""
        if self._records is not None:
            return self._records
        data: dict[str, Any] | None = None
        source: str | None = None
        if self.args.outputs:
            data, source = outputs.load(self.args.outputs), self.args.outputs
        elif self.args.no_outputs:
            self.unavailable = "--no-outputs"
        elif self.stack_name:
            data, source = outputs.from_pulumi(self.stack_name, self.project)
            if data is None:
                self.unavailable = f"{source}; pass --outputs FILE"
        if data is None:
            self.notices.append(f"no stack outputs ({self.unavailable}): publish times count from createdAt,"
                                " the overlap from the recorded stop")
            self._records = {}
        else:
            self._records = outputs.records(data, stack, source or "outputs")
            self.unavailable = f"not in the stack outputs ({source}): not deployed yet"
        return self._records

    def record(self, stack: StackConfig, keyset: str) -> Publications:
        found = self.records(stack).get(keyset)
        return found if found is not None else Publications(unavailable=self.unavailable)

    def loaded_record(self, keyset: str) -> Publications:
        """The record if the command has read the stack outputs already (never asks the CLI)."""
        found = (self._records or {}).get(keyset)
        return found if found is not None else Publications(unavailable=self.unavailable)

    def emit(self, text: str = "") -> None:
        print(text, file=self.out)

    def emit_json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, sort_keys=False), file=self.out)

    def emit_document(self, command: str, code: int, **fields: Any) -> None:
        """The command's JSON output in the contract's envelope (keyrotation/contract.py)."""
        self.emit_json(contract.document(command, code, file=self.path, now=self.now,
                                         outputs_file=self.args.outputs, **fields))


def wall_clock() -> datetime:
    """The machine's clock (tests replace it)."""
    return utc_now()


def _project(args: argparse.Namespace) -> Path:
    return Path(args.project_dir) if getattr(args, "project_dir", None) else _project_dir(Path.cwd())


def stack_path(args: argparse.Namespace) -> Path | None:
    """The stack file the command reads or edits: --file, or Pulumi.<--stack>.yaml in the project."""
    if getattr(args, "file", None):
        return Path(args.file)
    if getattr(args, "stack", None):
        return _project(args) / f"Pulumi.{args.stack}.yaml"
    return None


def _project_dir(start: Path) -> Path:
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").exists():
            return directory
    return start


# ---------------------------------------------------------------------------------------------
# Commands that edit the stack file


def _check_clock(ctx: Context, stack_file: StackFile) -> None:
    """An edit is recorded at --now: never later than the clock (beyond clockSkewSeconds), or every
    guard that counts time could be passed by writing the future. Read-only commands and
    --dry-run may look ahead."""
    if ctx.args.dry_run:
        return
    keyset = stack_file.config.keysets.get(getattr(ctx.args, "keyset", None) or "")
    skew = (keyset.timings if keyset is not None
            else stack_file.config.defaults.over(Timings())).clock_skew_seconds
    if ctx.now > ctx.clock + timedelta(seconds=skew):
        raise CommandError(
            f"{stack_file.name}: refused: --now {format_time(ctx.now)} is later than the clock"
            f" ({format_time(ctx.clock)}) by more than clockSkewSeconds ({skew}s); an edit records"
            " the time it is made. Use --dry-run to see what the command would do then",
            allowed_from=ctx.now - timedelta(seconds=skew),
        )


def _mutate(ctx: Context, run: Callable[[StackFile], Result]) -> int:
    if ctx.args.dry_run:
        stack_file, result, text, written = _edit(ctx, run, write=False)
    else:
        # Read, edit and replace under the file's lock: a concurrent command waits and then
        # edits what this one wrote.
        with locked(ctx.path):
            stack_file, result, text, written = _edit(ctx, run, write=True)
    if ctx.args.json:
        touched = list(dict.fromkeys(e.generation for e in result.edits))
        ks = result.stack.keysets[result.keyset]
        generations = [g for g in ks.generations if g.id in touched]
        ctx.emit_document(
            result.command, 0, written=written, keyset=result.keyset,
            changes=[_change_json(e) for e in result.edits],
            kids=[{"generation": g.id,
                   **records.kid_info(result.stack, ks, g, ctx.loaded_record(ks.name)).to_json()}
                  for g in generations],
            notes=result.notes, warnings=result.warnings,
        )
        return 0
    ctx.emit(f"{stack_file.name}: {result.command} {result.keyset}"
             f" at {format_time(ctx.now)}{'' if written else ' (dry run: not written)'}")
    for line in _describe_edits(result):
        ctx.emit(f"  {line}")
    for note in result.warnings:
        ctx.emit(f"warning: {note}")
    for note in result.notes:
        ctx.emit(f"note: {note}")
    if ctx.args.diff:
        ctx.emit("".join(difflib.unified_diff(
            stack_file.text.splitlines(keepends=True), text.splitlines(keepends=True),
            f"a/{stack_file.name}", f"b/{stack_file.name}",
        )).rstrip("\n"))
    return 0


def _edit(ctx: Context, run: Callable[[StackFile], Result],
          write: bool) -> tuple[StackFile, Result, str, bool]:
    stack_file = ctx.load()
    _check_clock(ctx, stack_file)
    result = run(stack_file)
    if write:
        return stack_file, result, stack_file.write(result.edits, result.stack), True
    return stack_file, result, stack_file.edited(result.edits), False


def _change_json(edit: Edit) -> dict[str, Any]:
    if isinstance(edit, AddGeneration):
        return {"keyset": edit.keyset, "generation": edit.generation, "added": edit.fields}
    if isinstance(edit, AppendEntry):
        return {"keyset": edit.keyset, "generation": edit.generation, "field": edit.field,
                "appended": {k: format_time(v) if isinstance(v, datetime) else v
                             for k, v in edit.entry.items()}}
    return {"keyset": edit.keyset, "generation": edit.generation, "field": edit.field,
            "old": edit.old, "new": edit.new}


def _describe_edits(result: Result) -> list[str]:
    """One line per generation, in the order the command touched them."""
    lines: dict[str, list[str]] = {}
    added: dict[str, str] = {}
    for edit in result.edits:
        if isinstance(edit, AddGeneration):
            fields = ", ".join(f"{k} {v}" for k, v in edit.fields.items() if k not in ("id", "publicKeyPem"))
            added[edit.generation] = f"+ generation '{edit.generation}': {fields}"
            lines.setdefault(edit.generation, [])
        elif isinstance(edit, AppendEntry):
            entry = ", ".join(f"{k} {format_time(v) if isinstance(v, datetime) else v}"
                              for k, v in edit.entry.items())
            lines.setdefault(edit.generation, []).append(f"{edit.field} + {{{entry}}}")
        elif edit.field == "state":
            lines.setdefault(edit.generation, []).append(f"state {edit.old} -> {edit.new}")
        elif edit.new is None:
            lines.setdefault(edit.generation, []).append(f"{edit.field} removed (was {edit.old})")
        else:
            change = (f"{edit.field} {edit.new}" if edit.old is None
                      else f"{edit.field} {edit.old} -> {edit.new}")
            lines.setdefault(edit.generation, []).append(change)
    return [
        added[g] if g in added else f"~ generation '{g}': {', '.join(changes)}"
        for g, changes in lines.items()
    ]


def cmd_rotate(ctx: Context) -> int:
    pem = None
    if ctx.args.public_key:
        try:
            pem = Path(ctx.args.public_key).read_text()
        except OSError as error:
            raise UsageError(f"--public-key: cannot read {ctx.args.public_key}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--public-key: {ctx.args.public_key} is not a PEM text file") from None
        blocks = material.private_blocks(pem)
        if blocks:
            raise UsageError(
                f"--public-key: {ctx.args.public_key} holds a PEM '{blocks[0]}' block; give the public key"
                " only (e.g. `openssl pkey -in KEY -pubout`); nothing was written"
            )
    return _mutate(ctx, lambda f: transitions.rotate(
        f.config, ctx.args.keyset, now=ctx.now, generation_id=ctx.args.id, public_key_pem=pem,
        trigger=ctx.args.trigger))


def cmd_promote(ctx: Context) -> int:
    return _mutate(ctx, lambda f: transitions.promote(
        f.config, ctx.args.keyset, ctx.args.generation, now=ctx.now,
        record=ctx.record(f.config, ctx.args.keyset), force=ctx.args.force))


def cmd_retire(ctx: Context) -> int:
    return _mutate(ctx, lambda f: transitions.retire(
        f.config, ctx.args.keyset, ctx.args.generation, now=ctx.now, force=ctx.args.force,
        record=ctx.record(f.config, ctx.args.keyset)))


def cmd_revoke(ctx: Context) -> int:
    return _mutate(ctx, lambda f: transitions.revoke(
        f.config, ctx.args.keyset, ctx.args.generation, reason=ctx.args.reason, now=ctx.now,
        record=ctx.record(f.config, ctx.args.keyset), force=ctx.args.force, new_id=ctx.args.id))


def cmd_rollback(ctx: Context) -> int:
    return _mutate(ctx, lambda f: transitions.rollback(
        f.config, ctx.args.keyset, now=ctx.now, record=ctx.record(f.config, ctx.args.keyset),
        force=ctx.args.force))


def cmd_rewrapped(ctx: Context) -> int:
    return _mutate(ctx, lambda f: transitions.rewrapped(
        f.config, ctx.args.keyset, ctx.args.generation, by=ctx.args.by, now=ctx.now,
        record=ctx.record(f.config, ctx.args.keyset), force=ctx.args.force))


def cmd_restore(ctx: Context) -> int:
    def run(f: StackFile) -> Result:
        keyset = records.keyset_of(f.config, ctx.args.keyset)
        generation = records.generation_of(f.config, keyset, ctx.args.generation)
        # Only a destroyed generation's restore depends on what was deployed (its deletion window, its key).
        record = ctx.record(f.config, keyset.name) if generation.state == "destroyed" else records.NO_RECORD
        return transitions.restore(f.config, keyset.name, generation.id, now=ctx.now, record=record,
                                force=ctx.args.force, key_id=ctx.args.key_id)

    return _mutate(ctx, run)


def cmd_destroy(ctx: Context) -> int:
    return _mutate(ctx, lambda f: transitions.destroy(
        f.config, ctx.args.keyset, ctx.args.generation, now=ctx.now, confirm=ctx.args.confirm))


# ---------------------------------------------------------------------------------------------
# Commands that report


def _only(stack: StackConfig, names: Sequence[str] | None) -> list[str]:
    for name in names or []:
        records.keyset_of(stack, name)
    return [n for n in stack.keysets if not names or n in names]


def _t(t: datetime | None) -> str:
    return "-" if t is None else format_time(t)


def _age(d: timedelta | None) -> str:
    if d is None:
        return "-"
    days, rest = divmod(int(d.total_seconds()), SECONDS_PER_DAY)
    return f"{days}d {rest // 3600}h" if days else format_duration(timedelta(seconds=rest))


class _Reported(Protocol):
    @property
    def name(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


_Item = TypeVar("_Item", bound=_Reported)


def _scheduled(ctx: Context, build: Callable[[StackConfig, datetime, dict[str, Publications]], list[_Item]],
               exit_code: Callable[[list[_Item]], int], command: str) -> tuple[list[_Item], int, bool]:
    """``status`` and ``plan``: the asked keysets' items, the exit code, and whether they were
    emitted as the ``--json`` document (the records are read only where a next step needs them)."""
    stack = ctx.load().config
    names = _only(stack, ctx.args.keysets)
    records = ctx.records(stack) if _has_pending(stack, names) else {}
    items = [i for i in build(stack, ctx.now, records) if i.name in names]
    code = exit_code(items)
    if ctx.args.json:
        ctx.emit_document(command, code, keysets=[i.to_json() for i in items], notices=ctx.notices)
    return items, code, bool(ctx.args.json)


def cmd_status(ctx: Context) -> int:
    items, code, done = _scheduled(ctx, schedule.status, schedule.status_exit_code, "status")
    if done:
        return code
    ctx.emit(f"{ctx.path.name} at {format_time(ctx.now)}")
    for i in items:
        ctx.emit(f"{i.name} ({i.purpose} {i.algorithm}, {i.backend}): {i.health.upper()}, active '{i.active}'"
                 f" age {_age(i.age)}, due {_t(i.due_at)}")
        for g in i.generations:
            step = ""
            if g.next:
                step = f"; {g.next}" + (f" from {_t(g.next_at)}" if g.next_at else "")
                if g.next_at is not None and g.next_at <= ctx.now and g.next in ("promote", "retire"):
                    step += " (allowed now)"
            ctx.emit(f"  {g.id:<12} {g.state:<9} since {_t(g.since)}, age {_age(g.age)}{step}")
        for w in i.warnings:
            ctx.emit(f"  warning: {w}")
    for notice in ctx.notices:
        ctx.emit(f"note: {notice}")
    return code


def _has_pending(stack: StackConfig, names: Sequence[str]) -> bool:
    """Whether some generation's next step depends on the publisher's or the deployment record."""
    return any(g.state in ("pending", "retiring") for n in names for g in stack.keysets[n].generations)


def cmd_plan(ctx: Context) -> int:
    items, code, done = _scheduled(ctx, schedule.plan, schedule.plan_exit_code, "plan")
    if done:
        return code
    ctx.emit(f"{ctx.path.name}: plan from {format_time(ctx.now)}")
    for i in items:
        ctx.emit(f"{i.name}: active '{i.active}', due {_t(i.due_at)}, rotate by {_t(i.rotate_by)}")
        for step, at, why in i.steps:
            when = "now" if at is not None and at <= ctx.now else f"from {_t(at)}"
            ctx.emit(f"  {when:<26} {step}  ({why})")
        unintended = i.unintended_gaps
        verdict = "GAP" if unintended else "no gap"
        intended = len(i.gaps) - len(unintended)
        ctx.emit(f"  gap check: {verdict}" + (f" ({intended} intended, compromise)" if intended else ""))
        for gap in i.gaps:
            ctx.emit(f"    {'intended' if gap.intended else 'GAP'}: {gap.describe()}")
    for notice in ctx.notices:
        ctx.emit(f"note: {notice}")
    return code


def cmd_timeline(ctx: Context) -> int:
    svg_path = Path(ctx.args.svg) if ctx.args.svg else Path(f"timeline-{ctx.stack_name or 'stack'}.svg")
    _check_output(ctx, svg_path, "--svg", (".svg",))
    mermaid_path = Path(ctx.args.mermaid) if ctx.args.mermaid else None
    if mermaid_path is not None:
        _check_output(ctx, mermaid_path, "--mermaid", (".md", ".mmd", ".mermaid"))
    stack = ctx.load().config
    records = ctx.records(stack) if _has_pending(stack, list(stack.keysets)) else {}
    picture = timeline.svg(stack, ctx.now, records)
    block = timeline.mermaid(stack, ctx.now, records)
    _write_text(svg_path, picture)
    if mermaid_path is not None:
        _write_text(mermaid_path, block)
    if ctx.args.json:
        ctx.emit_document("timeline", 0, svg=str(svg_path.resolve()),
                          mermaidFile=None if mermaid_path is None else str(mermaid_path.resolve()),
                          mermaid=block, notices=ctx.notices)
        return 0
    ctx.emit(f"wrote {svg_path}" + (f" and {mermaid_path}" if mermaid_path else ""))
    ctx.emit(block.rstrip("\n"))
    return 0


def _check_output(ctx: Context, path: Path, option: str, suffixes: tuple[str, ...]) -> None:
    """A picture goes only where a picture belongs: the path ends in one of ``suffixes``, is not the
    stack file, and an existing file there is one this command could have written (an SVG file
    starts with ``<svg`` or ``<?xml``; a Mermaid file with the fence or ``gantt``). Anything else is
    refused before a byte is written: `timeline --svg Pulumi.dev.yaml` once overwrote the stack."""
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{option} {path}: refused: the file name must end in {' or '.join(suffixes)};"
                         " nothing was written")
    if path.exists() and (path.is_dir() or path.resolve() == ctx.path.resolve()):
        raise UsageError(f"{option} {path}: refused: it is"
                         f" {'a directory' if path.is_dir() else 'the stack file'};"
                         " nothing was written")
    if path.is_file():
        try:
            head = path.read_text(errors="replace")[:200].lstrip()
        except OSError as error:
            raise UsageError(f"{option} {path}: cannot read it: {error.strerror}") from None
        expected = ("<svg", "<?xml", "<!--") if option == "--svg" else ("```mermaid", "gantt")
        if head and not head.startswith(expected):
            raise UsageError(f"{option} {path}: refused: it exists and is not a file this command writes"
                             f" (it does not start with {' or '.join(expected)}); nothing was written")


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None


def cmd_valid_at(ctx: Context) -> int:
    stack = ctx.load().config
    at = parse_time(ctx.args.at, "--at") if ctx.args.at else ctx.now
    ks = records.keyset_of(stack, ctx.args.keyset)
    record = ctx.record(stack, ks.name) if kid_needs_key(ks.kid) else records.NO_RECORD
    v = schedule.valid_at(stack, ks.name, ctx.args.kid, at, record)
    code = 0 if v.valid else schedule.EXIT_NOT_VALID
    if ctx.args.json:
        ctx.emit_document("valid-at", code, **v.to_json())
        return code
    ctx.emit(f"{'VALID' if v.valid else 'NOT VALID'}: {ks.name} generation '{v.generation}' (kid"
             f" {v.kid.text(v.generation)})"
             f" at {format_time(at)}")
    for reason in v.reasons:
        ctx.emit(f"  - {reason}")
    return code


# ---------------------------------------------------------------------------------------------
# The parser


def build_parser() -> argparse.ArgumentParser:
    def common(suppress: bool) -> argparse.ArgumentParser:
        default = argparse.SUPPRESS if suppress else None
        p = argparse.ArgumentParser(add_help=False)
        g = p.add_argument_group("stack and clock")
        where = g.add_mutually_exclusive_group()
        where.add_argument("--stack", "-s", metavar="NAME", default=default,
                           help="edit/read Pulumi.NAME.yaml in the project directory")
        where.add_argument("--file", "-f", metavar="PATH", default=default, help="edit/read this stack file")
        g.add_argument("--project-dir", metavar="DIR", default=default,
                       help="where Pulumi.yaml is (default: the nearest one above the current directory)")
        g.add_argument("--now", metavar="TIME", default=default,
                       help="the time to act at, RFC 3339 (default: the clock); an edit may not be later than"
                            " the clock (beyond clockSkewSeconds), reports and --dry-run may look ahead")
        g.add_argument("--json", action="store_true", default=default, help="print data as JSON")
        o = g.add_mutually_exclusive_group()
        o.add_argument("--outputs", metavar="FILE", default=default,
                       help="`pulumi stack output --json` saved to FILE: the publishers' first-published"
                            " times and the deployment record (default: ask the Pulumi CLI if it is"
                            " installed)")
        o.add_argument("--no-outputs", action="store_true", default=default,
                       help="do not ask the Pulumi CLI; reports count from the stack file's times, edits that"
                            " depend on the outputs are refused unless --force")
        return p

    def editing() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(add_help=False)
        g = p.add_argument_group("editing")
        g.add_argument("--dry-run", action="store_true", help="print the change without writing the file")
        g.add_argument("--diff", action="store_true", help="also print the change as a unified diff")
        return p

    parser = argparse.ArgumentParser(
        prog="key-rotation", description=DESCRIPTION, epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common(False)],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    shared = [common(True)]

    def add(name: str, handler: Callable[[Context], int], help: str, description: str,
            edits: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description, epilog=EXIT_CODES,
                           parents=shared + ([editing()] if edits else []),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        return p

    p = add("status", cmd_status, "every keyset and generation: state, age, due date, warnings",
            "Every keyset and generation with its state, age and the next step. Exit 0 when all is well,"
            f" {schedule.EXIT_WARNING} when a key is within warnDays of maxAgeDays, {schedule.EXIT_OVERDUE}"
            " when one is overdue (for cron and CI alerts).")
    p.add_argument("keysets", nargs="*", metavar="KEYSET", help="only these keysets")

    p = add("rotate", cmd_rotate, "add a pending generation (scheduled rotation)",
            "Add a pending generation. `pulumi up` publishes it (or delivers it decrypt-only) before it is"
            " used; promote it once the publish lead has passed.", edits=True)
    p.add_argument("keyset", metavar="KEYSET")
    p.add_argument("--id", help="the new generation's id (default: the date, e.g. 2026-11-30)")
    p.add_argument("--public-key", metavar="FILE", help="backend external: the new generation's public key"
                                                        " PEM")
    p.add_argument("--trigger", choices=TRIGGER_NAMES,
                   help="why (seed 003), recorded on the generation: scheduled and hardware keep the one it"
                        " replaces published 24 h after the promote, personnel 1 h, if longer than the"
                        " computed overlap (compromise: use `revoke --reason compromise`)")

    p = add("promote", cmd_promote, "pending -> active; the active generation becomes retiring",
            "Make the pending generation active and the active one retiring. Refused before the publish lead"
            " (publishMaxAgeSeconds + clockSkewSeconds) has passed since the generation was first published"
            " (the publisher's record from the stack outputs; without the outputs it is refused unless"
            " --force).", edits=True)
    p.add_argument("keyset", metavar="KEYSET")
    p.add_argument("generation", nargs="?", metavar="GENERATION", help="default: the newest pending"
                                                                       " generation")
    p.add_argument("--force", action="store_true",
                   help="promote before the publish lead: verifiers with a stale document reject it for a"
                        " while")

    p = add("retire", cmd_retire, "retiring -> retired after the overlap",
            "Stop publishing a retiring generation. Refused before the overlap (tokenLifetimeSeconds +"
            " publishMaxAgeSeconds + clockSkewSeconds) has passed since its stop was deployed (the deployment"
            " record in the stack outputs), and for keysets with data at rest before `rewrapped` (or"
            " dataRetentionSeconds).", edits=True)
    p.add_argument("keyset", metavar="KEYSET")
    p.add_argument("generation", metavar="GENERATION")
    p.add_argument("--force", action="store_true",
                   help="retire before the overlap: its still-valid signatures are rejected")

    p = add("revoke", cmd_revoke, f"revoke at once ({', '.join(REVOKE_REASONS)})",
            "Revoke a generation at once: it leaves every document and is listed as revoked. Revoking the"
            " active generation is an emergency rotation: the newest pending generation (or a new one)"
            " becomes"
            " active at once, without the publish lead. For a reason other than compromise, a revocation that"
            " would cut short signatures that are still valid is refused (--force to do it anyway).",
            edits=True)
    p.add_argument("keyset", metavar="KEYSET")
    p.add_argument("generation", metavar="GENERATION")
    p.add_argument("--reason", required=True, choices=REVOKE_REASONS)
    p.add_argument("--id", help="id of the replacement generation when one is created (default: the date)")
    p.add_argument("--force", action="store_true", help="revoke now although valid signatures are cut short")

    p = add("rollback", cmd_rollback, "re-activate the previous (still retiring) generation",
            "Undo the latest promote: the generation it replaced (still retiring, within its overlap) signs"
            " or encrypts again, recorded as a new period in its history; the current one becomes retiring"
            " (never lost: it stays published and decrypt-capable). Refused when no rotation is under way"
            " or the previous generation is past maxAgeDays (--force to accept that).", edits=True)
    p.add_argument("keyset", metavar="KEYSET")
    p.add_argument("--force", action="store_true",
                   help="roll back although no rotation is under way or the key is past maxAgeDays")

    p = add("rewrapped", cmd_rewrapped, "record that a retiring generation's data at rest was re-encrypted",
            "encrypt/mac keysets with data at rest: record, with who and when, that every ciphertext (stored"
            " MAC) under a retiring generation was re-encrypted under a newer one. Retirement waits for it"
            " (or for dataRetentionSeconds).", edits=True)
    p.add_argument("keyset", metavar="KEYSET")
    p.add_argument("generation", metavar="GENERATION")
    p.add_argument("--by", required=True, metavar="WHO", help="who confirmed the re-encryption (name or"
                                                              " email)")
    p.add_argument("--force", action="store_true",
                   help="record it before every writer has switched to the new generation")

    p = add("restore", cmd_restore, "retired (or destroyed KMS key in its window) -> retiring:"
                                    " decrypt/verify again",
            "Make a retired generation whose key material still exists decrypt-only (verify-only) again, as a"
            " new step in its history; it does not sign or encrypt. An aws-kms or gcp-kms generation that was"
            " destroyed is restored within its deletion window (deletionWindowDays, counted from the deployed"
            " destruction in the stack outputs): the command writes its key into restoredKeyId and the next"
            " `pulumi up` cancels the deletion and enables that same key. Without the stack outputs it is"
            " refused unless --force (then give --key-id).", edits=True)
    p.add_argument("keyset", metavar="KEYSET")
    p.add_argument("generation", metavar="GENERATION")
    p.add_argument("--key-id", metavar="ID",
                   help="destroyed KMS generation: its AWS key id or Cloud KMS version name (default: the"
                        " stack outputs')")
    p.add_argument("--force", action="store_true",
                   help="destroyed KMS generation: restore without the stack outputs (window from the"
                        " recorded time)")

    p = add("destroy", cmd_destroy, "retired -> destroyed (schedules key deletion)",
            "Schedule a retired generation's key material for deletion (deletionWindowDays); its public key"
            " stays in the key history. Within the window an aws-kms/gcp-kms key can be brought back with"
            " `restore`.", edits=True)
    p.add_argument("keyset", metavar="KEYSET")
    p.add_argument("generation", metavar="GENERATION")
    p.add_argument("--confirm", metavar="GENERATION", help="repeat the generation id to confirm")

    p = add("plan", cmd_plan, "the schedule from now and the gap check's verdict",
            "Per keyset: the next rotation due, the earliest safe promote and retire times, and the gap"
            f" check's verdict. Exit {schedule.EXIT_GAP} when it finds a gap that is not intended.")
    p.add_argument("keysets", nargs="*", metavar="KEYSET", help="only these keysets")

    p = add("timeline", cmd_timeline, "an SVG of every generation over time, and a Mermaid gantt block",
            "Write an SVG with a bar per generation coloured by state, gaps underneath and now marked; print"
            " the same as a Mermaid gantt block (for a pull-request comment).")
    p.add_argument("--svg", metavar="PATH", help="where to write the SVG (default: timeline-<stack>.svg)")
    p.add_argument("--mermaid", metavar="PATH", help="also write the Mermaid block to PATH")

    p = add("valid-at", cmd_valid_at, "could this key make a valid signature at that time?",
            "Temporal verification, as in the signing-profile runbook: the key was added before T and not"
            " revoked before T, and T falls within the time it was signing. Exit"
            f" {schedule.EXIT_NOT_VALID} when not.")
    p.add_argument("keyset", metavar="KEYSET")
    p.add_argument("kid", metavar="KID", help="the key id (or the generation id)")
    p.add_argument("--at", metavar="TIME", help="RFC 3339 (default: --now)")

    p = add("autopilot", cmd_autopilot, "take every rotation step that is due and safe, as one edit",
            "Per keyset, at --now: promote the pre-published generation when the active one must be replaced"
            " (maxAgeDays minus slackHours), add the next pending generation, retire after the deployed"
            " overlap, destroy after destroyAfterDays; the same rules as promote, retire and plan, never"
            " revoke, never --force. Prints a pull-request title and body. Exit 0 when it changed the file,"
            f" {EXIT_AUTOPILOT_NOTHING_DUE} when nothing is due, {EXIT_AUTOPILOT_BLOCKED} when a due step"
            " needs a person.", edits=True)
    p.add_argument("--staging-outputs", metavar="FILE",
                   help="the staging stack's `pulumi stack output --json`, for keysets with `staging`"
                        " (default: ask the Pulumi CLI for that stack)")
    p.add_argument("--pr-body", metavar="PATH", help="also write the pull-request body (Markdown) to PATH")

    from .audit_cli import add_audit_command

    add_audit_command(add)
    return parser


def cmd_autopilot(ctx: Context) -> int:
    from .autopilot_cli import cmd_autopilot as run

    return run(ctx)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        if "--json" in words:
            # A usage error is an error of the contract too: argparse's message, as JSON.
            explained = io.StringIO()
            with contextlib.redirect_stderr(explained):
                args = parser.parse_args(words)
        else:
            args = parser.parse_args(words)
    except SystemExit as exit:  # --help, or a usage error argparse has already explained
        code = exit.code if isinstance(exit.code, int) else EXIT_USAGE
        if "--json" in words:
            text = explained.getvalue()
            print(text, end="", file=err)
            if code == EXIT_USAGE:
                message = text.strip().splitlines()[-1].split(": error: ",
                                                              1)[-1] if text.strip() else "usage error"
                command = next((w for w in words if w in _subcommands(parser)), None)
                print(json.dumps(contract.error(command, code, message, file=None, now=None), indent=2),
                      file=out)
        return code
    ctx: Context | None = None
    try:
        # A big stack file is two large, long-lived object graphs (read, verify): keyrotation/runtime.py.
        with garbage_collection_tuned():
            ctx = Context(args, out)
            code = int(args.handler(ctx))
            return code
    except BrokenPipeError:
        # `status | head -1`: the reader has what it wanted; say nothing more.
        _silence_stdout(out)
        return 0
    except UsageError as error:
        return _fail(args, ctx, out, err, str(error), EXIT_USAGE)
    except KeyRotationError as error:  # every project error: its message is for people
        return _fail(args, ctx, out, err, str(error), EXIT_ERROR, getattr(error, "allowed_from", None))
    except Exception as error:  # a bug: say so in one line, the traceback only when asked for
        if os.environ.get(DEBUG_VARIABLE):
            traceback.print_exc(file=err)
        summary = str(error).splitlines()[0][:200] if str(error) else ""
        return _fail(args, ctx, out, err, f"internal error ({type(error).__name__}: {summary})."
                     f" Set {DEBUG_VARIABLE}=1 for the traceback and please report it", EXIT_ERROR)


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    return [name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices]


def _silence_stdout(out: TextIO) -> None:
    if out is sys.stdout:
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _fail(
    args: argparse.Namespace, ctx: Context | None, out: TextIO, err: TextIO, message: str, code: int,
    allowed_from: datetime | None = None,
) -> int:
    if getattr(args, "json", False):
        document = contract.error(
            getattr(args, "command", None), code, message,
            file=ctx.path if ctx is not None else stack_path(args), now=ctx.now if ctx is not None else None,
            outputs_file=getattr(args, "outputs", None), allowed_from=allowed_from,
        )
        print(json.dumps(document, indent=2), file=out)
    print(f"error: {message}", file=err)
    return code


if __name__ == "__main__":
    sys.exit(main())
