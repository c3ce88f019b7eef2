"""Validation of the commands' `--json` output against schemas/ (draft 2020-12), with the shared
definitions (common.schema.json, error.schema.json) resolved locally, never fetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from keyrotation.commands import contract

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def schemas() -> dict[str, Any]:
    """Every shipped schema by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.schema.json"))}


REGISTRY: Registry = Registry().with_resources(
    (name, Resource.from_contents(schema)) for name, schema in schemas().items()
)


def validate(document: dict[str, Any], command: str) -> None:
    """Raises jsonschema.ValidationError when ``document`` is not what ``command``'s schema allows."""
    schema = json.loads(contract.schema_path(command).read_text())
    Draft202012Validator(schema, registry=REGISTRY,
                         format_checker=Draft202012Validator.FORMAT_CHECKER).validate(document)
