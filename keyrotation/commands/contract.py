"""`--json` as a contract: the envelope every command's JSON output carries, and where its schema is.

Every output (success, refusal or error) is one JSON object with ``schemaVersion`` (an integer),
``command``, ``exitCode`` (the process's exit code), ``file`` (the stack file, absolute) and
``now``; the rest is the command's own. Each command's shape is a JSON Schema (draft 2020-12) in
``schemas/<command>.schema.json``; errors share ``schemas/error.schema.json``. Versioning: an
additive change (a new optional member, a new enum value documented as open) keeps
SCHEMA_VERSION; anything else (a member removed, renamed, retyped or made required) bumps it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ..times import format_time

SCHEMA_VERSION = 1
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
ERROR_SCHEMA = "error"


def schema_path(command: str) -> Path:
    return SCHEMA_DIR / f"{command}.schema.json"


def schema_id(command: str) -> str:
    return f"urn:key-rotation:json:{command}"


def document(
    command: str | None, exit_code: int, *, file: Path | None, now: datetime | None,
    outputs_file: str | None = None, **fields: Any,
) -> dict[str, Any]:
    """The envelope, then the command's own members."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "command": command,
        "exitCode": exit_code,
        "file": None if file is None else str(Path(file).resolve()),
        "now": None if now is None else format_time(now),
        "outputsFile": None if outputs_file is None else str(Path(outputs_file).resolve()),
        **fields,
    }


def error(
    command: str | None, exit_code: int, message: str, *, file: Path | None, now: datetime | None,
    outputs_file: str | None = None, allowed_from: datetime | None = None,
) -> dict[str, Any]:
    """A refusal or an error; ``allowedFrom``: when a step refused as too early becomes allowed."""
    return document(command, exit_code, file=file, now=now, outputs_file=outputs_file, error=message,
                    allowedFrom=None if allowed_from is None else format_time(allowed_from))
