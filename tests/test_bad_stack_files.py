"""The corpus of bad stack files: each is refused, by the program and by the commands, with its exact error.

Every case in ``tests/corpus/bad_stack_files.json`` is a shipped stack file and the edits that
break it (``set``/``delete``/``rename`` a config path, ``replace`` text, or a whole ``text``), and
the exact problem lines the validator must report. The commands read the file; the program gets
the config as the engine hands it over (JSON strings) plus the file's text, as
``components/stack.py`` does; ``programErrors`` lists what it reports where the engine's
encoding changes a value (a top-level `true` reaches the program as the string "true").
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from keyrotation import cli, config
from tests.corpus.build import CORPUS, build

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CASES = json.loads(CORPUS.read_text())


def program_view(text: str) -> dict[str, str]:
    """The config map the Pulumi engine would hand the program for this text ({} if it cannot read it)."""
    import yaml

    from tests.engine import _config_string, _YamlLoader

    try:
        document = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
        raw = (document or {}).get("config") or {}
        return {str(k): _config_string(str(k), v) for k, v in raw.items()}
    except Exception:  # the CLI would refuse the file itself; the program then never runs
        return {}


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
def test_refused_by_the_commands_with_the_exact_error(case, tmp_path):
    text = build(case)
    path = tmp_path / f"Pulumi.{case['base']}.yaml"
    path.write_bytes(text.encode("utf-8"))
    assert problems(lambda: config.load(path.name, text=text, now=NOW)) == case["errors"]
    for argv in (["status"], ["rotate", "atlas-gateway"]):
        out, err = io.StringIO(), io.StringIO()
        code = cli.main([*argv, "--file", str(path), "--now", "2026-12-01T00:00:00Z", "--no-outputs"], out, err)
        assert code == 1, err.getvalue()
        assert "internal error" not in err.getvalue() and "Traceback" not in err.getvalue()
        assert all(line in err.getvalue() for line in case["errors"])
    assert path.read_bytes() == text.encode("utf-8"), "a refused command leaves the file byte for byte"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_refused_by_the_program_with_the_exact_error(case):
    text = build(case)
    stack_file = f"Pulumi.{case['base']}.yaml"
    found = problems(lambda: config.load(stack_file, text=text, config=program_view(text), now=NOW))
    assert found == case.get("programErrors", case["errors"])
