"""Pictures of every keyset's generations over time: an SVG and a Mermaid gantt block.

A generation's bar is split by state (pending, active, retiring, retired, destroyed, revoked: the
spans of its keyset view's entry, :attr:`keyrotation.view.GenerationView.spans`), each its own
colour; gaps the check finds are drawn in a lane under the bar, labelled with their length (red, or
orange and hatched when intended: a compromise revocation), at least a few pixels wide so that a
five-minute gap in a year-long picture is still seen; a dated axis with ticks, a line at now, and
the active generation's due date (red when overdue). Each keyset has its own time axis: a weekly
gateway key and a yearly signing key do not share a useful scale.

Nothing here trusts the names it draws: every keyset name, generation id and step is XML-escaped
in the SVG and reduced to a safe alphabet in the Mermaid block (see :func:`mermaid_text`), so a
hostile name can neither add an element, an attribute or a script to the SVG nor end the Mermaid
block, start a directive (``%%{init}%%``), a comment or a ``click`` line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

from .. import lifecycle
from ..config import KeySetConfig, StackConfig
from ..lifecycle import State, format_duration
from ..times import format_time
from ..view import KeysetView, view
from . import schedule
from .records import NO_RECORD, Publications, deployed_stops

COLOURS = {
    State.PENDING: "#9ecae1",
    State.ACTIVE: "#238b45",
    State.RETIRING: "#a1d99b",
    State.RETIRED: "#d9d9d9",
    State.DESTROYED: "#737373",
    State.REVOKED: "#54278f",
}
"""Revoked is purple, never red: red means a gap. Retiring is pale green (it still verifies or
decrypts), never orange: orange means an intended gap."""
GAP_COLOUR, INTENDED_GAP_COLOUR, NOW_COLOUR, OVERDUE_COLOUR = "#e31a1c", "#ff7f00", "#3f007d", "#e31a1c"
MIN_GAP_WIDTH = 6.0
"""Pixels: a gap is never drawn narrower, however short (five minutes in a year is 0.01 px)."""


def gaps(ks: KeySetConfig, record: Publications = NO_RECORD) -> list[lifecycle.Gap]:
    """The gap check's findings, as ``plan`` computes them (the publisher's and deployment records
    when there are any)."""
    return lifecycle.keyset_gaps(ks, record.first_published, deployed_stops(ks, record))


def _window(keys: KeysetView, now: datetime) -> tuple[datetime, datetime]:
    times = [t for e in keys.entries for _, t in e.path] + [now]
    due = keys.age(now).due_at
    if due is not None:
        times.append(due)
    start, end = min(times), max(times)
    margin = max((end - start) / 12, timedelta(hours=1))
    # Whole minutes: the Mermaid block shows these times.
    return (start - margin / 3).replace(second=0, microsecond=0), (end + margin).replace(second=0,
                                                                                         microsecond=0)


# ---------------------------------------------------------------------------------------------
# Time axis

_TICKS = [timedelta(minutes=m) for m in (5, 15, 30)] + [timedelta(hours=h) for h in (1, 2, 3, 6, 12)] + [
    timedelta(days=d) for d in (1, 2, 7, 14)
]
_MONTHS = (1, 2, 3, 6, 12, 24)


def ticks(start: datetime, end: datetime, most: int = 12) -> list[datetime]:
    """Round times between start and end, at most ``most`` of them: every 5 minutes up to every two
    years, whichever is the finest that fits (days at midnight UTC, months on the 1st)."""
    span = end - start
    step = next((s for s in _TICKS if span / s <= most), None)
    if step is None:
        months = next((m for m in _MONTHS if span / timedelta(days=30.44 * m) <= most), _MONTHS[-1])
        out: list[datetime] = []
        index = start.year * 12 + start.month - 1  # months since year 0, January = 0
        if start > start.replace(day=1, hour=0, minute=0, second=0, microsecond=0):
            index += 1  # the first 1st of a month from start on
        index += -index % months  # quarters start in January, April, July, October
        while True:
            year, month = divmod(index, 12)
            t = start.replace(year=year, month=month + 1, day=1, hour=0, minute=0, second=0, microsecond=0)
            if t > end:
                return out
            out.append(t)
            index += months
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    unit = int(step.total_seconds())
    first = midnight + timedelta(seconds=-(-int((start - midnight).total_seconds()) // unit) * unit)
    out = []
    t = first
    while t <= end:
        out.append(t)
        t += step
    return out


def tick_label(t: datetime, step: timedelta) -> str:
    return t.strftime("%Y-%m-%d") if step >= timedelta(days=1) else t.strftime("%m-%d %H:%M")


# ---------------------------------------------------------------------------------------------
# SVG

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot carry at all, even escaped: each becomes U+FFFD."""


def _text(text: str) -> str:
    """Text content: escaped, so a name is never markup."""
    return escape(_NOT_XML.sub("\ufffd", text))


def _attr(text: str) -> str:
    """A quoted attribute value: escaped, so a name never ends the attribute."""
    return quoteattr(_NOT_XML.sub("\ufffd", text))


def svg(
    stack: StackConfig, now: datetime, records: Mapping[str, Publications] | None = None, *, width: int = 1100
) -> str:
    row, label_w, right = 24, 190, 30
    parts: list[str] = []
    y = 58
    for name, ks in stack.keysets.items():
        record = (records or {}).get(name, NO_RECORD)
        keys = view(ks)
        start, end = _window(keys, now)
        scale = (width - label_w - right) / (end - start).total_seconds()

        def x(t: datetime, start: datetime = start, scale: float = scale) -> float:
            return round(label_w + (t - start).total_seconds() * scale, 1)

        age = keys.age(now)
        found = gaps(ks, record)
        unintended = [g for g in found if not g.intended]
        due = format_time(age.due_at) if age.due_at is not None else ""  # none only without an active one
        if age.health == "overdue":
            health = f"OVERDUE: '{age.generation}' passed maxAgeDays ({ks.timings.max_age_days}d) on {due}"
        elif age.health == "no-active":
            health = "NO ACTIVE GENERATION"
        elif age.health == "warning":
            health = f"DUE SOON: '{age.generation}' reaches maxAgeDays on {due}"
        else:
            health = f"active '{age.generation}', due {due}"
        plural = "S" if len(unintended) != 1 else ""
        verdict = f"; {len(unintended)} GAP{plural}" if unintended else "; no gap"
        alert = age.health in ("overdue", "no-active") or bool(unintended)
        tone = "alert" if alert else "warn" if age.health == "warning" else "health"
        parts.append(
            f'<text x="8" y="{y + 14}" class="keyset">{_text(name)}'
            f' <tspan class="meta">{_text(ks.purpose)} {_text(ks.algorithm)}, {_text(ks.backend)},'
            f' max age {ks.timings.max_age_days}d</tspan>'
            f' <tspan class="{tone}">{_text(health + verdict)}</tspan></text>'
        )
        y += row
        section_top = y
        marks = ticks(start, end)
        step = (marks[1] - marks[0]) if len(marks) > 1 else timedelta(days=1)
        rows = len(ks.generations)
        section_bottom = section_top + 8 + rows * row
        for t in marks:
            parts.append(
                f'<line x1="{x(t)}" y1="{section_top}" x2="{x(t)}" y2="{section_bottom}" class="grid"/>'
                f'<text x="{x(t)}" y="{section_bottom + 12}" class="tick" text-anchor="middle">'
                f"{_text(tick_label(t, step))}</text>"
            )
        parts.append(f'<line x1="{label_w}" y1="{section_bottom}" x2="{width - right}" y2="{section_bottom}"'
                     ' class="axis"/>')
        y = section_top + 8
        for entry in keys.entries:
            g = entry.generation
            parts.append(f'<text x="16" y="{y + 13}" class="gen">{_text(g.id)}</text>')
            for state, s, e in entry.spans:
                e = e or end
                w = round(max(x(e) - x(s), 1.0), 1)
                title = (f"{name} {g.id} {state}: {format_time(s)} - {format_time(e)}"
                         f" ({format_duration(e - s)})")
                parts.append(
                    f'<rect x="{x(s)}" y="{y + 2}" width="{w}" height="12" fill="{COLOURS[state]}"'
                    f" data-keyset={_attr(name)} data-generation={_attr(g.id)}"
                    f' data-state="{state}"><title>{_text(title)}</title></rect>'
                )
                if w > 7 * len(str(state)) + 6:
                    dark = state in (State.ACTIVE, State.DESTROYED, State.REVOKED)
                    parts.append(f'<text x="{round(x(s) + 3, 1)}" y="{y + 12}"'
                                 f' class="in{" dark" if dark else ""}">'
                                 f"{state}</text>")
            if g.id == age.generation and age.due_at is not None and age.due_at <= end:
                overdue = age.health == "overdue"
                colour = OVERDUE_COLOUR if overdue else "#000"
                day = format_time(age.due_at)[:10]
                label = f"OVERDUE since {day}" if overdue else f"due {day}"
                if overdue:
                    parts.append(
                        f'<rect x="{x(age.due_at)}" y="{y + 2}"'
                        f' width="{round(max(x(min(now, end)) - x(age.due_at), 1.0), 1)}"'
                        ' height="12" fill="url(#overdue)"'
                        f' class="overdue"><title>{_text(label)}</title></rect>'
                    )
                near_edge = x(age.due_at) > width - right - 160
                anchor = ' text-anchor="end"' if near_edge else ""
                parts.append(
                    f'<path d="M{x(age.due_at)},{y} l-4,-5 h8 z" fill="{colour}" class="due"/>'
                    f'<text x="{round(x(age.due_at) + (-6 if near_edge else 6), 1)}" y="{y}" class="due"'
                    f' fill="{colour}"{anchor}>{_text(label)}</text>'
                )
            for gap in (gp for gp in found if gp.generation == g.id):
                colour = INTENDED_GAP_COLOUR if gap.intended else GAP_COLOUR
                gw = round(max(x(gap.end) - x(gap.start), MIN_GAP_WIDTH), 1)
                gx = round(min(x(gap.start), width - right - gw), 1)
                label = f"{'intended gap' if gap.intended else 'GAP'} {format_duration(gap.end - gap.start)}"
                parts.append(
                    f'<rect x="{gx}" y="{y + 15}" width="{gw}" height="6"'
                    f' fill="{"url(#intended)" if gap.intended else colour}" stroke="{colour}"'
                    ' stroke-width="1"'
                    f' data-gap="{_text(gap.kind)}" data-intended="{str(gap.intended).lower()}">'
                    f"<title>{_text(gap.describe())}</title></rect>"
                    f'<text x="{round(gx + gw + 3, 1)}" y="{y + 22}" class="gaplabel" fill="{colour}">'
                    f"{_text(label)}</text>"
                )
            y += row
        parts.append(
            f'<line x1="{x(now)}" y1="{section_top - 4}" x2="{x(now)}" y2="{section_bottom}"'
            f' stroke="{NOW_COLOUR}"'
            ' stroke-width="2" stroke-dasharray="4 2" class="now"><title>now'
            f' {_text(format_time(now))}</title></line>'
            f'<text x="{x(now)}" y="{section_top - 6}" class="nowlabel" text-anchor="middle">now</text>'
        )
        y = section_bottom + 30
    legend_y = y
    legend = []
    lx = 8
    entries: list[tuple[str, str]] = [(str(s), c) for s, c in COLOURS.items()]
    entries += [("gap", GAP_COLOUR), ("intended gap", "url(#intended)"), ("overdue", "url(#overdue)")]
    for label, colour in entries:
        legend.append(f'<rect x="{lx}" y="{legend_y}" width="14" height="12" fill="{colour}" stroke="#999"'
                      f' stroke-width="0.5"/><text x="{lx + 18}" y="{legend_y + 10}"'
                      f' class="legend">{label}</text>')
        lx += 118
    height = legend_y + 28
    title = f"{stack.environment}: key rotation timeline at {format_time(now)}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="sans-serif">\n'
        '<defs><pattern id="intended" width="6" height="6" patternUnits="userSpaceOnUse"'
        ' patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
        f'<rect width="3" height="6" fill="{INTENDED_GAP_COLOUR}"/></pattern>'
        '<pattern id="overdue" width="6" height="6" patternUnits="userSpaceOnUse"'
        ' patternTransform="rotate(-45)">'
        f'<rect width="2" height="6" fill="{OVERDUE_COLOUR}"/></pattern></defs>\n'
        '<rect width="100%" height="100%" fill="#fff"/>\n'
        "<style>.keyset{font-size:14px;font-weight:bold}.meta{font-weight:normal;fill:#555;font-size:12px}"
        ".health{font-weight:normal;fill:#238b45;font-size:12px}.alert{font-size:12px;fill:#e31a1c}"
        ".warn{font-size:12px;fill:#d95f0e}"
        ".gen{font-size:12px}.tick{font-size:10px;fill:#444}.grid{stroke:#e5e5e5}.axis{stroke:#888}"
        ".in{font-size:10px;fill:#222}.dark{fill:#fff}.due{font-size:10px;font-weight:bold}"
        ".gaplabel{font-size:10px;font-weight:bold}.nowlabel{font-size:10px;fill:#3f007d}"
        ".legend{font-size:11px}.title{font-size:16px;font-weight:bold}</style>\n"
        f'<text x="8" y="24" class="title">{_text(title)}</text>\n'
        + "\n".join(parts + legend)
        + "\n</svg>\n"
    )


# ---------------------------------------------------------------------------------------------
# Mermaid

MERMAID_TAGS = {
    State.PENDING: "",
    State.ACTIVE: "active",
    State.RETIRING: "done",
    State.RETIRED: "done",
    State.DESTROYED: "done",
    State.REVOKED: "done, crit",
}
"""Mermaid gantt has four task styles; the state is also in each task's name."""

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._/+=,()@'-]")


def mermaid_text(text: str, limit: int = 80) -> str:
    """``text`` reduced to characters that mean nothing to Mermaid or Markdown.

    Gone (each replaced by ``_``): line breaks (a new line would be a new statement: ``click ...``,
    ``%%{init}%%``), ``:`` (ends a task name), ``#`` and ``;`` (end a task's data, start an entity),
    ``%`` (comments, directives), ``{}``, backticks (end the Markdown fence), ``<>&"``, and every
    non-ASCII or invisible character. Never empty."""
    cleaned = _UNSAFE.sub("_", text[:limit]).strip()
    return cleaned or "_"


def _m(t: datetime) -> str:
    return format_time(t)[:19].replace("T", " ")


_M_FORMAT = "YYYY-MM-DD HH:mm:ss"


def _task(name: str, tags: str, start: datetime, end: datetime | None = None) -> str:
    """A task line. Its name always starts with a fixed word (a state, "GAP", "due", "next", "now"),
    never with a name from the stack file: a name starting with a date (the default generation ids)
    or with a keyword (``click``, ``section``) would be read as something else."""
    when = f"{_m(start)}, 0d" if end is None else f"{_m(start)}, {_m(max(end, start + timedelta(seconds=1)))}"
    return f"  {name} :{tags + ', ' if tags else ''}{when}"


def mermaid(stack: StackConfig, now: datetime, records: Mapping[str, Publications] | None = None) -> str:
    lines = [
        "```mermaid",
        "gantt",
        f"  title {mermaid_text(stack.environment)} key rotation timeline at {_m(now)} UTC",
        f"  dateFormat {_M_FORMAT}",
        "  axisFormat %Y-%m-%d",
        "  todayMarker off",
    ]
    plans = {p.name: p for p in schedule.plan(stack, now, dict(records or {}))}
    for name, ks in stack.keysets.items():
        record = (records or {}).get(name, NO_RECORD)
        keys = view(ks)
        _, end = _window(keys, now)
        lines.append(f"  section {mermaid_text(name)}")
        for entry in keys.entries:
            gid = mermaid_text(entry.id)
            for state, s, e in entry.spans:
                lines.append(_task(f"{state} {gid}", MERMAID_TAGS[state], s, e or end))
        for gap in gaps(ks, record):
            label = f"{'intended gap' if gap.intended else 'GAP'} {mermaid_text(gap.generation)} {gap.kind}" \
                    f" {format_duration(gap.end - gap.start)}"
            lines.append(_task(label, "crit" if not gap.intended else "crit, active", gap.start, gap.end))
        lines.append(_task("now", "milestone", now))
        age = keys.age(now)
        if age.due_at is not None:
            overdue = age.health == "overdue"
            lines.append(_task(f"{'OVERDUE' if overdue else 'due'} {mermaid_text(age.generation or '')}"
                               f" max age {ks.timings.max_age_days}d",
                               "milestone, crit" if overdue else "milestone",
                               age.due_at))
        plan = plans.get(name)
        for what, at, _why in (plan.steps if plan else [])[:3]:
            if at is not None:
                lines.append(_task(f"next {mermaid_text(what)}", "milestone", at))
    lines.append("```")
    return "\n".join(lines) + "\n"
