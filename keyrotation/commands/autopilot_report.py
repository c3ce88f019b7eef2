"""What autopilot says: the pull request's title and body, and its JSON document.

The body is for the reviewer: what changes and why, when the next step falls due, the plan's gap
verdict (``schedule.plan`` on the changed stack) and the timeline (``timeline.mermaid``).
"""

from __future__ import annotations

from typing import Any

from ..times import format_optional, format_time
from . import schedule, timeline
from .autopilot import Outcome
from .records import Publications

"""The version of ``schemas/autopilot.schema.json`` the JSON document follows."""

_VERBS = {"rotate": "add pending", "promote": "promote", "retire": "retire", "destroy": "destroy"}


def title(outcome: Outcome, stack_name: str) -> str:
    if not outcome.taken:
        return f"key-rotation ({stack_name}): " + ("blocked, needs a person" if outcome.blocked
                                                   else "nothing due")
    per_keyset: dict[str, list[str]] = {}
    for t in outcome.taken:
        per_keyset.setdefault(t.keyset, []).append(f"{_VERBS[t.command]} {t.generation}")
    parts = [f"{k}: {', '.join(v)}" for k, v in per_keyset.items()]
    return f"key-rotation ({stack_name}): " + "; ".join(parts)


def gap_verdicts(outcome: Outcome, records: dict[str, Publications] | None) -> dict[str, str]:
    """The plan's gap check on the changed stack, per keyset: 'no gap' or 'gap'."""
    items = schedule.plan(outcome.stack, outcome.now, records or {})
    return {i.name: ("gap" if i.unintended_gaps else "no gap") for i in items}


def body(outcome: Outcome, stack_name: str, records: dict[str, Publications] | None) -> str:
    lines = [f"Autopilot for stack `{stack_name}` at {format_time(outcome.now)}.", ""]
    if outcome.taken:
        lines += ["## What changes and why", ""]
        for t in outcome.taken:
            along = " (rides along with this change)" if t.rides_along else ""
            lines.append(f"- **{t.keyset}**: `{t.command} {t.generation}`{along}: {t.why}")
        lines.append("")
    if outcome.notes:
        lines += ["## Effects", ""] + [f"- {n}" for n in outcome.notes] + [""]
    if outcome.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in outcome.warnings] + [""]
    if outcome.blocked:
        lines += ["## Blocked: needs a person", ""]
        lines += [f"- **{b.keyset}** ({b.step}): {b.why}" for b in outcome.blocked] + [""]
    lines += ["## Next steps", ""]
    upcoming = sorted(outcome.waiting, key=lambda w: (w.at is None, w.at or outcome.now))
    for w in upcoming:
        when = f"from {format_time(w.at)}" if w.at is not None else "after the next deployment"
        lines.append(f"- **{w.keyset}** `{w.step}` {when}: {w.why}")
    if not upcoming:
        lines.append("- nothing scheduled")
    nxt = outcome.next_due
    lines += ["", f"Next step falls due: {format_time(nxt) if nxt else 'after the next deployment'}.", ""]
    verdicts = gap_verdicts(outcome, records)
    lines += ["## Gap check (plan)", ""]
    lines += [f"- {k}: {v}" for k, v in verdicts.items()] + [""]
    # timeline.mermaid is the fenced block itself
    lines += ["## Timeline", "", timeline.mermaid(outcome.stack, outcome.now).rstrip("\n"), ""]
    return "\n".join(lines)


def to_json(
    outcome: Outcome, *, stack_name: str, written: bool, records: dict[str, Publications] | None,
    notices: list[str],
) -> dict[str, Any]:
    """The command's own members; the CLI wraps them in the contract's envelope (contract.py)."""
    return {
        "result": {0: "changed", 7: "nothing due", 8: "blocked"}[outcome.exit_code],
        "stack": stack_name,
        "written": written,
        "steps": [{"keyset": t.keyset, "command": t.command, "generation": t.generation, "why": t.why,
                   "ridesAlong": t.rides_along} for t in outcome.taken],
        "waiting": [{"keyset": w.keyset, "step": w.step, "at": format_optional(w.at), "why": w.why}
                    for w in outcome.waiting],
        "blocked": [{"keyset": b.keyset, "step": b.step, "why": b.why} for b in outcome.blocked],
        "nextDueAt": format_optional(outcome.next_due),
        "gapCheck": gap_verdicts(outcome, records),
        "autoMerge": outcome.before.autopilot.may_auto_merge(outcome.before.environment),
        "pullRequest": {"title": title(outcome, stack_name), "body": body(outcome, stack_name, records)},
        "notes": outcome.notes,
        "warnings": outcome.warnings,
        "notices": notices,
    }
