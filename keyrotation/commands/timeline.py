"""Pictures of every keyset's generations over time: an SVG and a Mermaid gantt block.

A generation's bar is split by state (pending, active, retiring, retired, destroyed, revoked),
each its own colour; gaps the check finds are drawn under the bar (red, or amber when intended);
a vertical line marks now. Each keyset has its own time axis: a weekly gateway key and a yearly
signing key do not share a useful scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

from .. import lifecycle
from ..config import Generation, StackConfig
from ..lifecycle import State
from ..times import format_time

COLOURS = {
    State.PENDING: "#9ecae1",
    State.ACTIVE: "#31a354",
    State.RETIRING: "#fdae6b",
    State.RETIRED: "#bdbdbd",
    State.DESTROYED: "#636363",
    State.REVOKED: "#de2d26",
}
GAP_COLOUR, INTENDED_GAP_COLOUR, NOW_COLOUR = "#e31a1c", "#feb24c", "#3f007d"


@dataclass(frozen=True)
class Segment:
    keyset: str
    generation: str
    state: State
    start: datetime
    end: datetime
    open: bool
    """Still in this state at the end of the picture."""


def segments(generation: Generation) -> list[tuple[State, datetime, datetime | None]]:
    """The states a generation went through, as recorded (``lifecycle.path``, every period of its
    history): (state, from, to or None while current)."""
    present = lifecycle.path(generation)
    out = []
    for i, (state, start) in enumerate(present):
        end = present[i + 1][1] if i + 1 < len(present) else None
        if end is not None and end <= start:
            continue
        out.append((state, start, end))
    return out


def keyset_segments(stack: StackConfig, until: datetime) -> dict[str, list[Segment]]:
    out: dict[str, list[Segment]] = {}
    for name, ks in stack.keysets.items():
        out[name] = [
            Segment(name, g.id, state, start, end or until, end is None)
            for g in ks.generations
            for state, start, end in segments(g)
        ]
    return out


def _window(stack: StackConfig, name: str, now: datetime) -> tuple[datetime, datetime]:
    ks = stack.keysets[name]
    times = [t for g in ks.generations for _, t in lifecycle.path(g)]
    start, end = min(times + [now]), max(times + [now])
    margin = max((end - start) / 10, timedelta(hours=1))
    return start - margin / 4, end + margin


# ---------------------------------------------------------------------------------------------
# SVG


def svg(stack: StackConfig, now: datetime, *, width: int = 960) -> str:
    row, label_w, top = 22, 170, 40
    parts: list[str] = []
    y = top
    for name, ks in stack.keysets.items():
        start, end = _window(stack, name, now)
        scale = (width - label_w - 20) / (end - start).total_seconds()

        def x(t: datetime, start: datetime = start, scale: float = scale) -> float:
            return round(label_w + (t - start).total_seconds() * scale, 1)

        parts.append(f'<text x="8" y="{y + 14}" class="keyset">{escape(name)}'
                     f' <tspan class="meta">{escape(ks.algorithm)}, {escape(ks.backend)},'
                     f' max age {ks.timings.max_age_days}d</tspan></text>')
        y += row
        parts.append(f'<text x="{label_w}" y="{y + 10}" class="axis">{escape(format_time(start))}</text>')
        parts.append(f'<text x="{width - 20}" y="{y + 10}" class="axis" text-anchor="end">'
                     f'{escape(format_time(end))}</text>')
        y += row * 2 // 3
        section_top = y
        gaps = lifecycle.keyset_gaps(ks)
        for g in ks.generations:
            parts.append(f'<text x="16" y="{y + 14}" class="gen">{escape(g.id)}</text>')
            for state, s, e in segments(g):
                e = e or end
                title = f"{name} {g.id} {state}: {format_time(s)} - {format_time(e)}"
                parts.append(
                    f'<rect x="{x(s)}" y="{y + 3}" width="{round(max(x(e) - x(s), 1.0), 1)}" height="12"'
                    f' fill="{COLOURS[state]}" data-keyset={quoteattr(name)}'
                    f' data-generation={quoteattr(g.id)}'
                    f' data-state="{state}"><title>{escape(title)}</title></rect>'
                )
            for gap in (gp for gp in gaps if gp.generation == g.id):
                colour = INTENDED_GAP_COLOUR if gap.intended else GAP_COLOUR
                parts.append(
                    f'<rect x="{x(gap.start)}" y="{y + 16}"'
                    f' width="{round(max(x(gap.end) - x(gap.start), 2.0), 1)}"'
                    f' height="4" fill="{colour}" data-gap="{gap.kind}"'
                    f' data-intended="{str(gap.intended).lower()}">'
                    f'<title>{escape(gap.describe())}</title></rect>'
                )
            y += row
        parts.append(
            f'<line x1="{x(now)}" y1="{section_top}" x2="{x(now)}" y2="{y}" stroke="{NOW_COLOUR}"'
            f' stroke-width="2" class="now"><title>now {escape(format_time(now))}</title></line>'
        )
        y += row // 2
    legend_y = y + 6
    legend = []
    lx = 8
    entries: list[tuple[str, str]] = [*COLOURS.items(), ("gap", GAP_COLOUR),
                                      ("intended gap", INTENDED_GAP_COLOUR)]
    for label, colour in entries:
        legend.append(f'<rect x="{lx}" y="{legend_y}" width="12" height="12" fill="{colour}"/>'
                      f'<text x="{lx + 16}" y="{legend_y + 11}" class="legend">{escape(str(label))}</text>')
        lx += 110
    height = legend_y + 30
    title = f"{stack.environment}: key rotation timeline, now {format_time(now)}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="sans-serif">\n'
        "<style>.keyset{font-size:13px;font-weight:bold}.meta{font-weight:normal;fill:#555}"
        ".gen{font-size:11px}.axis{font-size:10px;fill:#555}.legend{font-size:11px}"
        ".title{font-size:15px;font-weight:bold}</style>\n"
        f'<text x="8" y="22" class="title">{escape(title)}</text>\n'
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
    State.REVOKED: "crit",
}
"""Mermaid gantt has four task styles; the state is also in each task's name."""


def _m(t: datetime) -> str:
    # Minutes are precise enough for a picture; "YYYY-MM-DD HH:mm" is a format every Mermaid parses.
    return format_time(t)[:16].replace("T", " ")


def mermaid(stack: StackConfig, now: datetime) -> str:
    lines = [
        "```mermaid",
        "gantt",
        f"  title {stack.environment} key rotation timeline, now {_m(now)} UTC",
        "  dateFormat YYYY-MM-DD HH:mm",
        "  axisFormat %Y-%m-%d",
        "  todayMarker off",
    ]
    for name, ks in stack.keysets.items():
        _, end = _window(stack, name, now)
        lines.append(f"  section {_name(name)}")
        for g in ks.generations:
            for state, s, e in segments(g):
                tag = MERMAID_TAGS[state]
                lines.append(f"  {_name(g.id)} {state} :{tag + ', ' if tag else ''}{_m(s)}, {_m(e or end)}")
        lines.append(f"  now :milestone, {_m(now)}, 0d")
    lines.append("```")
    return "\n".join(lines) + "\n"


def _name(text: str) -> str:
    # ':' ends a task name and '#' starts a comment in Mermaid.
    return text.replace(":", "-").replace("#", "-").replace(";", "-")
