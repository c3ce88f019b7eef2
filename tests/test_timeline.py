"""The review page people read: the `timeline` command's Mermaid block and SVG.

The Mermaid block is parsed by the real `mermaid` parser (tools/mermaid/parse.mjs: npm mermaid
under jsdom); the SVG by an XML parser. Hostile names are fed to the timeline functions directly
(the validator would refuse them in a stack file, but the picture must be safe on its own).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from keyrotation import times
from keyrotation.commands import cli, timeline
from keyrotation.config import StackConfig, load_stack_file

ROOT = Path(__file__).resolve().parents[1]
PARSER = ROOT / "tools" / "mermaid" / "parse.mjs"
SVG_NS = "{http://www.w3.org/2000/svg}"
NOW = times.parse("2026-12-03T23:00:00Z")


def _mermaid_available() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (ROOT / "tools" / "mermaid" / "node_modules" / "mermaid").is_dir():
        return "tools/mermaid is not installed: npm ci --prefix tools/mermaid (scripts/test.sh does it)"
    return None


@pytest.fixture(scope="module")
def mermaid_parser():
    missing = _mermaid_available()
    if missing:
        if os.environ.get("CI") == "true" or os.environ.get("KEY_ROTATION_REQUIRE_MERMAID"):
            pytest.fail(missing)
        pytest.skip(missing)

    def parse(block: str) -> tuple[int, str, str]:
        done = subprocess.run(["node", str(PARSER), "--tasks"], input=block, capture_output=True, text=True,
                              timeout=120)
        return done.returncode, done.stdout, done.stderr

    return parse


def parsed(parse, block: str) -> dict:
    code, out, err = parse(block)
    assert code == 0, f"mermaid refused the block:\n{err}\n{block}"
    [line] = out.splitlines()
    return json.loads(line)


SYNTHETIC = """\
config:
  key-rotation:environment: synthetic
  key-rotation:defaults: {publishMaxAgeSeconds: 300, clockSkewSeconds: 60, tokenLifetimeSeconds: 3600}
  key-rotation:keysets:
    gateway:
      purpose: sign
      algorithm: EdDSA
      maxAgeDays: 7
      warnDays: 2
      kid: "gw-{generation}"
      publish:
        - {format: jwks, target: "file://published/gw/jwks.json"}
      generations:
        - {id: "2026-11-16", state: retiring, createdAt: "2026-11-16T09:00:00Z",
           activatedAt: "2026-11-16T09:10:00Z", retiringAt: "2026-11-25T12:01:00Z"}
        - {id: "2026-11-25", state: active, createdAt: "2026-11-25T12:00:00Z",
           activatedAt: "2026-11-25T12:01:00Z"}
    signer:
      purpose: sign
      algorithm: ES256
      maxAgeDays: 365
      kid: "key-{generation}"
      publish:
        - {format: key-history, target: "file://published/signer/history.json"}
      generations:
        - {id: "2025", state: revoked, createdAt: "2025-01-15T00:00:00Z", activatedAt: "2025-01-20T00:00:00Z",
           revokedAt: "2026-06-01T00:00:00Z", revokeReason: compromise}
        - {id: "2026", state: active, createdAt: "2026-06-01T00:00:00Z", activatedAt: "2026-06-01T00:00:00Z"}
"""
"""gateway: '2026-11-25' was promoted one minute after it was added, 5 minutes before the publish
lead (300 s + 60 s) ended: an unintended 5-minute gap; its weekly key is overdue on 2026-12-03.
signer: '2025' revoked for compromise, its replacement active at once: an intended gap."""


@pytest.fixture
def synthetic(tmp_path: Path) -> StackConfig:
    path = tmp_path / "Pulumi.synthetic.yaml"
    path.write_text(SYNTHETIC)
    return load_stack_file(path, now=NOW)


@pytest.fixture(scope="module")
def synthetic_stack(tmp_path_factory) -> StackConfig:
    path = tmp_path_factory.mktemp("synthetic") / "Pulumi.synthetic.yaml"
    path.write_text(SYNTHETIC)
    return load_stack_file(path, now=NOW)


# ---------------------------------------------------------------------------------------------
# Mermaid


@pytest.mark.parametrize("name", ["dev", "staging", "production"])
def test_mermaid_block_of_every_shipped_stack_parses(mermaid_parser, name):
    stack = load_stack_file(ROOT / f"Pulumi.{name}.yaml", now=NOW)
    block = timeline.mermaid(stack, NOW)
    diagram = parsed(mermaid_parser, block)
    assert diagram["type"] == "gantt"
    assert diagram["sections"] == list(stack.keysets)
    names = {t["name"] for t in diagram["tasks"]}
    for ks in stack.keysets.values():
        for g in ks.generations:
            assert f"{g.state} {g.id}" in names  # ids that start with a date included


def test_the_mermaid_blocks_in_the_docs_parse(mermaid_parser):
    text = (ROOT / "docs" / "runbook.md").read_text()
    blocks = re.findall(r"^```mermaid\n(.*?)^```$", text, re.S | re.M)
    assert blocks
    for block in blocks:
        assert parsed(mermaid_parser, block)["type"] == "gantt"


def test_the_parser_refuses_what_github_refuses(mermaid_parser):
    """The check can fail: a task name starting with a date (the old block) is refused."""
    code, _, err = mermaid_parser(
        "gantt\n  dateFormat YYYY-MM-DD HH:mm\n  section s\n"
        "  2026-11-09 active :active, 2026-11-09 09:10, 2026-11-16 09:10\n"
    )
    assert code == 1
    assert "got 'date'" in err


def test_mermaid_shows_the_gap_the_due_date_and_the_next_steps(mermaid_parser, synthetic):
    diagram = parsed(mermaid_parser, timeline.mermaid(synthetic, NOW))
    tasks = {t["name"]: t for t in diagram["tasks"]}
    gap = tasks["GAP 2026-11-25 published-too-late 5m"]
    assert (gap["start"], gap["end"], gap["crit"]) == (
        "2026-11-25T12:00:00.000Z", "2026-11-25T12:05:00.000Z", True)
    for intended in ("intended gap 2026 published-too-late 6m", "intended gap 2025 removed-too-early 1h"):
        assert tasks[intended]["crit"] and tasks[intended]["active"]
    revoked = tasks["revoked 2025"]
    assert revoked["done"] and revoked["crit"] and not revoked["milestone"]
    overdue = tasks["OVERDUE 2026-11-25 max age 7d"]
    assert overdue["milestone"] and overdue["start"] == "2026-12-02T12:01:00.000Z"
    assert tasks["due 2026 max age 365d"]["start"] == "2027-06-01T00:00:00.000Z"
    assert tasks["next retire gateway 2026-11-16"]["milestone"]
    assert tasks["next rotate signer"]["start"] == "2027-05-18T00:00:00.000Z"


HOSTILE = [
    "2026-11-16",
    "evil\n  click now call alert(1)",
    "x`\n```\n<script>alert(1)</script>",
    "%%{init: {'securityLevel': 'loose', 'theme': 'dark'}}%%",
    'click gen href "javascript:alert(1)"',
    "a:b#c;d&#35;e",
    "</text><script>alert(1)</script><text>",
    '" onload="alert(1)',
    "section evil\ntitle evil",
    "\u202eevil\u200b",
]


def hostile_stack(stack: StackConfig, names: list[str]) -> StackConfig:
    """The stack with its keysets and generations renamed to ``names`` (bypassing the validator)."""
    keysets = {}
    pool = iter(names * 10)
    for ks in stack.keysets.values():
        name = next(pool)
        generations = [g.model_copy(update={"id": next(pool)}) for g in ks.generations]
        keysets[name] = ks.model_copy(update={"name": name, "generations": generations})
    return stack.model_copy(update={"keysets": keysets, "environment": next(pool)})


@pytest.mark.parametrize("start", range(len(HOSTILE)))
def test_hostile_names_cannot_escape_the_mermaid_block(mermaid_parser, synthetic, start):
    names = HOSTILE[start:] + HOSTILE[:start]
    stack = hostile_stack(synthetic, names)
    block = timeline.mermaid(stack, NOW)
    lines = block.splitlines()
    # Exactly one fence, opened and closed; nothing after it.
    assert lines[0] == "```mermaid" and lines[-1] == "```"
    assert "`" not in "".join(lines[1:-1])
    for line in lines[1:-1]:
        assert "%%" not in line and "javascript:" not in line and "<" not in line, line
        assert re.fullmatch(r"gantt|  (title|dateFormat|axisFormat|todayMarker|section) .+"
                            r"|  [A-Za-z]+( [^:\n]*)? :[^#;%\n]+", line), line
    diagram = parsed(mermaid_parser, block)
    # Every statement is the one intended: a section per keyset, and no more tasks than drawn.
    assert len(diagram["sections"]) == len(stack.keysets)
    expected = len([line for line in lines if re.match(r"  [A-Za-z]+.* :", line)])
    assert len(diagram["tasks"]) == expected
    assert {t["name"].split(" ")[0] for t in diagram["tasks"]} <= {
        "pending", "active", "retiring", "retired", "destroyed", "revoked", "GAP", "intended", "now", "due",
        "OVERDUE", "next"}
    assert diagram["title"].endswith("key rotation timeline at 2026-12-03 23:00:00 UTC")


def test_mermaid_text_keeps_safe_names_and_replaces_the_rest():
    assert timeline.mermaid_text("atlas-gateway 2026-11-16_v1.2") == "atlas-gateway 2026-11-16_v1.2"
    assert timeline.mermaid_text("a:b#c;d%e{f}g`h\ni<j>&\"") == "a_b_c_d_e_f_g_h_i_j___"
    assert timeline.mermaid_text("\n") == "_"


# ---------------------------------------------------------------------------------------------
# SVG

ALLOWED_ELEMENTS = {"svg", "defs", "pattern", "rect", "style", "text", "tspan", "title", "line", "path"}


def elements(svg: str) -> list[ElementTree.Element]:
    return list(ElementTree.fromstring(svg).iter())


def test_svg_marks_a_five_minute_gap_visibly_and_labels_it(synthetic):
    svg = timeline.svg(synthetic, NOW)
    root = ElementTree.fromstring(svg)
    [gap] = [r for r in root.iter(f"{SVG_NS}rect") if r.get("data-intended") == "false"]
    # Five minutes on the gateway's 19-day axis is under a pixel: drawn wider, never invisible.
    assert float(gap.attrib["width"]) >= timeline.MIN_GAP_WIDTH
    assert gap.get("fill") == timeline.GAP_COLOUR
    title = gap.findtext(f"{SVG_NS}title")
    assert title is not None and "2026-11-25" in title
    labels = [t.text for t in root.iter(f"{SVG_NS}text") if t.get("class") == "gaplabel"]
    assert "GAP 5m" in labels
    assert "intended gap 6m" in labels and "intended gap 1h" in labels


def test_svg_tells_revoked_from_gap_and_retiring_from_intended_gap(synthetic):
    root = ElementTree.fromstring(timeline.svg(synthetic, NOW))
    fills: dict[str, set[str | None]] = {}
    for r in root.iter(f"{SVG_NS}rect"):
        if state := r.get("data-state"):
            fills.setdefault(state, set()).add(r.get("fill"))
        elif r.get("data-intended"):
            fills.setdefault(f"gap intended={r.get('data-intended')}", set()).add(r.get("fill"))
    assert fills["revoked"].isdisjoint(fills["gap intended=false"])
    assert fills["retiring"].isdisjoint(fills["gap intended=true"])
    assert fills["gap intended=true"] == {"url(#intended)"}  # hatched, defined in <defs>
    assert root.find(f".//{SVG_NS}pattern[@id='intended']") is not None
    # Each state also reads as a word in the legend and in bars wide enough for it.
    legend = [t.text for t in root.iter(f"{SVG_NS}text") if t.get("class") == "legend"]
    assert {"revoked", "retiring", "gap", "intended gap", "overdue"} <= set(legend)
    assert "revoked" in [t.text for t in root.iter(f"{SVG_NS}text")
                         if (t.get("class") or "").startswith("in")]


def test_svg_marks_the_overdue_key_and_the_due_dates(synthetic):
    root = ElementTree.fromstring(timeline.svg(synthetic, NOW))
    headers = ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text") if t.get("class") == "keyset"]
    assert any(h.startswith("gateway")
               and "OVERDUE: '2026-11-25' passed maxAgeDays (7d) on 2026-12-02T12:01:00Z" in h
               and "1 GAP" in h for h in headers)
    assert [r.get("class") for r in root.iter(f"{SVG_NS}rect") if r.get("class") == "overdue"] == ["overdue"]
    due = [t.text for t in root.iter(f"{SVG_NS}text") if t.get("class") == "due"]
    assert due == ["OVERDUE since 2026-12-02", "due 2027-06-01"]


def test_svg_says_when_a_key_is_due_soon():
    stack = load_stack_file(ROOT / "Pulumi.production.yaml", now=NOW)
    root = ElementTree.fromstring(timeline.svg(stack, NOW))
    warnings = [t.text for t in root.iter(f"{SVG_NS}tspan") if t.get("class") == "warn"]
    assert "DUE SOON: '2026-09-07' reaches maxAgeDays on 2026-12-06T10:00:00Z; no gap" in warnings


def test_svg_has_a_dated_axis_with_ticks_per_keyset(synthetic):
    root = ElementTree.fromstring(timeline.svg(synthetic, NOW))
    labels = [t.text or "" for t in root.iter(f"{SVG_NS}text") if t.get("class") == "tick"]
    gateway = [lbl for lbl in labels if lbl.startswith("2026-11") or lbl.startswith("2026-12")]
    assert len(labels) >= 12 and len(gateway) >= 5
    for label in labels:
        datetime.strptime(label, "%Y-%m-%d")  # days or months: dates a reader knows
    # The yearly signer's axis ticks on the 1st of months.
    assert "2026-07-01" in labels


def test_ticks_are_round_and_at_most_twelve():
    start, end = times.parse("2026-11-25T11:47:00Z"), times.parse("2026-11-25T12:20:00Z")
    assert [times.format_time(t)[11:16] for t in timeline.ticks(start, end)] == [
        "11:50", "11:55", "12:00", "12:05", "12:10", "12:15", "12:20"]
    assert [times.format_time(t)[11:16] for t in timeline.ticks(start, end, most=3)] == ["12:00", "12:15"]
    year = timeline.ticks(times.parse("2025-01-10T00:00:00Z"), times.parse("2026-03-01T00:00:00Z"))
    assert [times.format_time(t)[:10] for t in year] == [
        "2025-03-01", "2025-05-01", "2025-07-01", "2025-09-01", "2025-11-01", "2026-01-01", "2026-03-01"]


@pytest.mark.parametrize("start", range(len(HOSTILE)))
def test_hostile_names_cannot_add_an_element_attribute_or_script_to_the_svg(synthetic, start):
    names = HOSTILE[start:] + HOSTILE[:start]
    stack = hostile_stack(synthetic, names)
    svg = timeline.svg(stack, NOW)
    found = elements(svg)  # parses: nothing unbalanced got in
    assert {e.tag.removeprefix(SVG_NS) for e in found} <= ALLOWED_ELEMENTS
    for e in found:
        for attribute, value in e.attrib.items():
            assert not attribute.lower().startswith("on"), (attribute, value)
            if attribute.startswith("data-"):  # a name, whole, as data: nothing a renderer follows
                assert (value in names
                        or value in {"published-too-late", "removed-too-early", "true", "false"}
                        or value in {"pending", "active", "retiring", "retired", "destroyed",
                                     "revoked"}), value
                continue
            assert "javascript:" not in value.lower()
            assert attribute in {
                "x", "y", "x1", "y1", "x2", "y2", "width", "height", "viewBox", "fill", "stroke",
                "stroke-width", "stroke-dasharray", "class", "text-anchor", "font-family", "d", "id",
                "patternUnits", "patternTransform", "data-keyset", "data-generation", "data-state",
                "data-gap", "data-intended",
            }, attribute
    # Every hostile name is there, whole, as text: escaped, not interpreted.
    texts = "\n".join("".join(e.itertext()) for e in found if e.tag in (f"{SVG_NS}text", f"{SVG_NS}title"))
    used = [stack.environment, *stack.keysets,
            *(g.id for ks in stack.keysets.values() for g in ks.generations)]
    for name in used:
        assert name in texts, name


# ---------------------------------------------------------------------------------------------
# The command


def _timeline(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["timeline", "--file", str(tmp_path / "Pulumi.dev.yaml"), "--no-outputs",
                     "--now", "2026-12-03T23:00:00Z", *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_bytes((ROOT / "Pulumi.dev.yaml").read_bytes())
    return path


@pytest.mark.parametrize(("option", "target", "why"), [
    ("--svg", "Pulumi.dev.yaml", "the file name must end in .svg"),
    ("--svg", "notes.txt", "the file name must end in .svg"),
    ("--svg", "link.svg", "it is the stack file"),
    ("--svg", "other.svg", "it exists and is not a file this command writes"),
    ("--mermaid", "Pulumi.dev.yaml", "the file name must end in .md or .mmd or .mermaid"),
    ("--mermaid", "README.md", "it exists and is not a file this command writes"),
])
def test_timeline_never_writes_over_the_stack_file_or_another_file(dev, tmp_path, monkeypatch, option,
                                                                   target, why):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me\n")
    (tmp_path / "link.svg").symlink_to(dev)
    (tmp_path / "other.svg").write_text("key-rotation:environment: dev\n")
    (tmp_path / "README.md").write_text("# keep me\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    args = [option, target] if option == "--svg" else ["--svg", "t.svg", option, target]
    code, out, err = _timeline(tmp_path, *args)
    assert code == cli.EXIT_USAGE
    assert (err.startswith(f"error: {option} {target}: refused: {why}")
            and err.endswith("nothing was written\n"))
    assert err.count("\n") == 1
    assert out == ""
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_timeline_writes_over_its_own_earlier_svg_and_mermaid_files(dev, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _timeline(tmp_path, "--svg", "t.svg", "--mermaid", "t.md")[0] == 0
    first = (tmp_path / "t.svg").read_text()
    code, out, err = _timeline(tmp_path, "--svg", "t.svg", "--mermaid", "t.md",
                               "--now", "2026-12-04T23:00:00Z")
    assert (code, err) == (0, "")
    assert (tmp_path / "t.svg").read_text() != first
    assert (tmp_path / "t.md").read_text() == out.split("\n", 1)[1]


# ---------------------------------------------------------------------------------------------
# Any text at all


@settings(max_examples=150)
@given(st.text(max_size=120))
def test_any_text_becomes_a_safe_mermaid_name(text):
    name = timeline.mermaid_text(text)
    assert re.fullmatch(r"[A-Za-z0-9 ._/+=,()@'-]+", name)
    assert not name.startswith(" ") and "%%" not in name and len(name) <= 80


@settings(max_examples=60)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=4, max_size=4))
@example(["a\x00b", "\x1b[31m", "\ud800", "\ufffe&<"])
def test_any_names_keep_the_svg_well_formed_and_free_of_markup(synthetic_stack, names):
    # Control characters included: XML 1.0 cannot carry them even escaped; they become U+FFFD.
    stack = hostile_stack(synthetic_stack, names)
    found = elements(timeline.svg(stack, NOW))
    assert {e.tag.removeprefix(SVG_NS) for e in found} <= ALLOWED_ELEMENTS
    assert not any(a.lower().startswith("on") for e in found for a in e.attrib)
