"""docs/design.md draws the tree as it is: every module of the domain, the commands, the components
and the policy pack is named in its layout, and every module the layout names exists."""

from __future__ import annotations

import re

from tests.project import ROOT

PACKAGES = ("keyrotation", "components", "policy")


def _modules() -> list:
    return [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]


def _layout() -> str:
    text = (ROOT / "docs" / "design.md").read_text()
    return text[text.index("## The layout"):text.index("## The flow of one keyset")]


def test_the_layout_names_every_module():
    modules = [p for p in _modules() if p.name != "__init__.py"]
    assert modules
    missing = sorted(str(p.relative_to(ROOT)) for p in modules if p.name not in _layout())
    assert missing == []


def test_every_module_the_layout_names_exists():
    named = set(re.findall(r"\b([a-z_0-9]+\.py)\b", _layout()))
    existing = {p.name for p in _modules()}
    existing.add("__main__.py")
    assert sorted(named - existing) == []
