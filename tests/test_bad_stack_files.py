"""The corpus of bad stack files: each is refused, by the program and by the commands, with its exact error.

Every case in ``tests/corpus/bad_stack_files.json`` is a shipped stack file and the edits that
break it (``set``/``delete``/``rename`` a config path, ``replace`` text, or a whole ``text``), and
the exact problem lines the validator must report. The commands read the file; the program gets
the config as the engine hands it over (JSON strings) plus the file's text, as
``components/stack.py`` does, and reports the same problems (the file as written is checked
first). tests/test_program_refusals.py runs the real program under the engine on a few.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from keyrotation import config
from keyrotation.commands import cli
from tests.corpus.build import CORPUS, build

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CASES = json.loads(CORPUS.read_text())


def program_view(text: str) -> dict[str, str]:
    """The config map as the Pulumi engine hands it to the program: objects JSON-encoded."""
    from keyrotation import stacktext
    from tests.engine import _config_string

    try:
        raw = stacktext.read(text, "view")["config"]
    except config.ConfigError:  # the CLI would refuse such a file itself (the program never runs)
        return {}
    return {str(k): _config_string(str(k), v) for k, v in raw.items()}


def problems(run) -> list[str]:
    with pytest.raises(config.ConfigError) as info:
        run()
    return [line.removeprefix("  - ") for line in str(info.value).split("\n")[1:]]


def test_the_corpus_covers_every_class_with_at_least_150_cases():
    names = [c["name"] for c in CASES]
    assert len(names) >= 150 and len(set(names)) == len(names)
    text = " ".join(names).lower()
    for word in ("file target", "s3", "gcs", "publishroot", "same", "kid", "generation id", "keyset name",
                 "true", "1e20", "year 9999", "future", "out of time order", "retired", "namespace",
                 "duplicate", "alias", "private", "keysize 4096", "tag", "comment"):
        assert word in text, word


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_refused_by_the_commands_and_the_program_with_the_exact_error(case, tmp_path):
    text = build(case)
    path = tmp_path / f"Pulumi.{case['base']}.yaml"
    path.write_bytes(text.encode("utf-8"))
    # The commands: an editing command (which reads like every other) exits 1 with the problems.
    out, err = io.StringIO(), io.StringIO()
    command = "status" if case["name"].startswith("keysets") else "rotate"
    code = cli.main([command, "atlas-gateway", "--file", str(path), "--now", "2026-12-01T00:00:00Z",
                     "--no-outputs"], out, err)
    assert code == 1, err.getvalue()
    assert "internal error" not in err.getvalue() and "Traceback" not in err.getvalue()
    reported = err.getvalue().removeprefix("error: ").rstrip("\n").split("\n")[1:]
    assert [line.removeprefix("  - ") for line in reported] == case["errors"]
    assert path.read_bytes() == text.encode("utf-8"), "a refused command leaves the file byte for byte"
    # The program: the engine's config and the file's text, through the same validator.
    stack_file = path.name
    found = problems(lambda: config.load(stack_file, text=text, config=program_view(text), now=NOW))
    assert found == case["errors"]
