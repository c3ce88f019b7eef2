"""Minimal, verified edits of ``Pulumi.<stack>.yaml``.

ruamel.yaml finds where each generation, key and value sits (line and column), but the edit is
made in the file's own text: re-emitting the document would re-indent sequences and re-wrap flow
mappings, and a rotation PR must show only the lines it changes. After editing, the new text is
parsed again and validated with :func:`keyrotation.config.load` (the program's validator too); it
is written only if it is valid and says exactly what the command computed, atomically (temporary
file, fsync, rename), under the file's edit lock (:func:`locked`). CRLF files stay CRLF. On any
error the file is left byte for byte as it was.

Speed (docs/design.md): the file is read with libyaml (:mod:`keyrotation.stacktext` over
:mod:`keyrotation.stackyaml`, same meaning as ruamel's safe loader), once for a command that only
reads, and once more to verify an edit. ruamel's round trip, which finds where things sit, is given
only the edited keyset's lines when they can be cut out cleanly (the whole file otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from .. import stacktext, stackyaml
from ..config import PROJECT, ConfigError, StackConfig, load
from ..errors import KeyRotationError
from ..lifecycle import TIME_FIELDS as LIFECYCLE_TIME_FIELDS
from ..times import format_time

KEYSETS = f"{PROJECT}:keysets"
FIELD_ORDER = (
    "id", "state", "createdAt", "activatedAt", "retiringAt", "retiredAt", "revokedAt",
    "revokeReason", "trigger", "destroyedAt", "history", "rewrapped", "publicKeyPem", "restoredKeyId",
)
"""Where a new key goes in a generation: after the last present key that precedes it here."""
LINE_LIMIT = 100
"""Flow mappings are wrapped before a line grows past this many characters."""
TIME_FIELDS = LIFECYCLE_TIME_FIELDS


class StackFileError(KeyRotationError):
    """The stack file cannot be read, edited or written; the message names the file."""


@dataclass(frozen=True)
class SetField:
    """Set (``new`` given) or remove (``new`` None) one key of one generation."""

    keyset: str
    generation: str
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class AddGeneration:
    """Append a generation (fields in camelCase, in writing order) to a keyset's list."""

    keyset: str
    fields: dict[str, Any]

    @property
    def generation(self) -> str:
        return str(self.fields["id"])


@dataclass(frozen=True)
class AppendEntry:
    """Append one flow mapping (``{state: active, at: ...}``) to a list of one generation
    (``history``, ``rewrapped``), creating the list when the generation has none."""

    keyset: str
    generation: str
    field: str
    entry: dict[str, Any]


Edit = SetField | AddGeneration | AppendEntry


LOCK_TIMEOUT_SECONDS = 30.0


@contextlib.contextmanager
def locked(path: str | Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the stack file's edit lock (``.<name>.lock`` beside it) from the read to the rename.

    Every command that edits the file takes it, so two concurrent edits are serialized and the
    second one reads what the first one wrote: no edit is lost.
    """
    path = Path(path)
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise StackFileError(f"{path.name}: cannot create the edit lock {lock_path.name}: {error.strerror}") \
            from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise StackFileError(
                        f"{path.name}: another command has been editing it for {timeout:.0f} s"
                        f" (lock {lock_path.name}); not written, run it again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


class StackFile:
    """One stack file: its bytes as read, its round-trip tree and its validated config."""

    def __init__(self, path: str | Path, *, now: datetime | None = None):
        self.path = Path(path)
        self.name = self.path.name
        self.now = now
        try:
            self.raw = self.path.read_bytes()
        except OSError as error:
            raise StackFileError(f"{self.path}: cannot read the stack file: {error.strerror}") from None
        try:
            self.text = self.raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise StackFileError(f"{self.name}: not UTF-8 text (byte {error.start})") from None
        self.config: StackConfig
        self.config, self._node = self._read(self.text)
        self._tree: CommentedMap | None = None
        self._edited: tuple[list[Edit], str] | None = None

    # -- reading ----------------------------------------------------------------------------

    @property
    def tree(self) -> CommentedMap:
        """The whole file's round-trip tree (comments, positions), parsed on first use."""
        if self._tree is None:
            self._tree = self._load(self.text)
        return self._tree

    def _load(self, text: str) -> CommentedMap:
        try:
            tree = YAML().load(text)
        except YAMLError as error:
            raise StackFileError(f"{self.name}: not valid YAML: {error}") from None
        if not isinstance(tree, dict) or not isinstance(tree.get("config"), dict):
            raise StackFileError(f"{self.name}: has no 'config:' mapping")
        return cast(CommentedMap, tree)

    def _read(self, text: str) -> tuple[StackConfig, Any]:
        """The validated config (the one validator, strict YAML first), and the composed node that
        says where each value sits."""
        parsed = stacktext.parse(text, self.name)
        return load(self.name, parsed=parsed, now=self.now), parsed.node

    def _validate(self, text: str) -> StackConfig:
        return self._read(text)[0]

    # -- editing ----------------------------------------------------------------------------

    def edited(self, edits: Sequence[Edit]) -> str:
        """The file's text with ``edits`` applied, each in the style of its surroundings."""
        edits = list(edits)
        if self._edited is not None and self._edited[0] == edits:
            return self._edited[1]  # a command shows its edit and then writes it: edit once
        if "\r\n" in self.text:
            text = self._edited_crlf(edits)
            self._edited = (edits, text)
            return text
        region = self._region({e.keyset for e in edits})
        start, end = region if region is not None else (0, len(self.text))
        part = self.text[start:end]
        first_line = self.text.count("\n", 0, start)
        # Every edit is located in the text as read; later edits are placed on a fresh parse (of
        # the keyset's lines only, when they could be cut out: a few hundred bytes, not the file).
        for edit in edits:
            if region is None:
                tree = self.tree if part is self.text else self._load(part)
            else:
                tree = cast(CommentedMap, {"config": {KEYSETS: self._load_part(part)}})
            part = _Editor(part, tree, self.name, first_line).apply(edit)
        text = self.text[:start] + part + self.text[end:]
        self._edited = (edits, text)
        return text

    def _edited_crlf(self, edits: list[Edit]) -> str:
        """A CRLF file: edited as LF text (the whole file), its line endings put back after."""
        if self.text.count("\r\n") != self.text.count("\n"):
            raise StackFileError(f"{self.name}: mixes CRLF and LF line endings; give it one kind, then run"
                                 " it again")
        text = self.text.replace("\r\n", "\n")
        for edit in edits:
            text = _Editor(text, self._load(text), self.name, 0).apply(edit)
        return text.replace("\n", "\r\n")

    def _region(self, keysets: set[str]) -> tuple[int, int] | None:
        """Where the one keyset ``keysets`` names sits in the text: whole lines, its key first.

        None when the edit spans keysets or the keyset does not start and end on line boundaries
        (a flow-style keysets map): the edit then parses the whole file.
        """
        if len(keysets) != 1:
            return None
        entry = None
        config = stackyaml.child(self._node, "config")
        mapping = stackyaml.child(config[1], KEYSETS) if config else None
        if mapping is not None:
            entry = stackyaml.child(mapping[1], next(iter(keysets)))
        if entry is None:
            return None
        key, value = entry
        lines = self.text.splitlines(keepends=True)
        if key.start_mark.line >= len(lines) or lines[key.start_mark.line][:key.start_mark.column].strip():
            return None
        end = value.end_mark
        if end.line < len(lines) and lines[end.line][:end.column].strip():
            return None  # something else follows on the keyset's last line
        if end.line <= key.start_mark.line:
            return None
        start = sum(len(line) for line in lines[:key.start_mark.line])
        stop = sum(len(line) for line in lines[:end.line]) if end.line < len(lines) else len(self.text)
        return start, stop

    def _load_part(self, part: str) -> CommentedMap:
        try:
            tree = YAML().load(part)
        except YAMLError as error:
            raise StackFileError(f"{self.name}: not valid YAML: {error}") from None
        if not isinstance(tree, CommentedMap):
            raise StackFileError(f"{self.name}: '{KEYSETS}' is not a YAML mapping that can be edited")
        return tree

    def write(self, edits: Sequence[Edit], expected: StackConfig) -> str:
        """Apply, re-validate, compare with ``expected`` and replace the file atomically."""
        text = self.edited(edits)
        try:
            result = self._validate(text)
        except ConfigError as error:
            raise StackFileError(f"{self.name}: the edit would make the stack file invalid; not"
                                 f" written\n{error}") \
                from None
        if result.model_dump() != expected.model_dump():
            raise StackFileError(
                f"{self.name}: the edited text does not read back as the intended change; not written"
                " (please report this with the stack file)"
            )
        self._replace(text)
        return text

    def _replace(self, text: str) -> None:
        current = self.path.read_bytes()
        if current != self.raw:
            raise StackFileError(f"{self.name}: changed on disk while the command ran; not written, run it"
                                 " again")
        directory = self.path.parent
        mode = self.path.stat().st_mode & 0o7777
        fd, temporary = tempfile.mkstemp(prefix=f".{self.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        try:
            dir_fd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)


class _Editor:
    """One edit on one text; positions come from ruamel's line/column records."""

    def __init__(self, text: str, tree: Any, name: str, first_line: int = 0):
        self.text = text
        self.tree = tree
        self.name = name
        self.first_line = first_line
        """The line of the file ``text`` starts at (it may be one keyset's lines), for messages."""
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, line: int, col: int) -> int:
        return self.starts[line] + col

    def fail(self, message: str) -> StackFileError:
        return StackFileError(f"{self.name}: {message}")

    def apply(self, edit: Edit) -> str:
        if isinstance(edit, AddGeneration):
            return self._append(edit)
        node = _generation(self.tree, self.name, edit.keyset, edit.generation)
        if isinstance(edit, AppendEntry):
            return self._append_entry(node, edit)
        if edit.new is None:
            return self._remove(node, edit.field, edit)
        if edit.field in node:
            return self._replace(node, edit.field, edit.new)
        return self._insert(node, edit.field, edit.new)

    # -- scalars ----------------------------------------------------------------------------

    def value_end(self, line: int, col: int, flow: bool, block_key_col: int | None = None) -> int:
        """Offset just after the scalar value starting at (line, col).

        ``block_key_col``: the column of the value's key, to read (never to edit) a block scalar.
        """
        start = self.offset(line, col)
        if block_key_col is not None and not flow and self.text[start:start + 1] in ("|", ">"):
            return self._block_scalar_end(line, block_key_col)
        return self.end_at(start, flow)

    def _block_scalar_end(self, line: int, key_col: int) -> int:
        """The end of a ``|``/``>`` scalar whose indicator is on ``line``: its lines are indented past
        the key."""
        last = line
        for i in range(line + 1, len(self.lines)):
            content = self.lines[i].rstrip("\r\n")
            if not content.strip():
                continue
            if len(content) - len(content.lstrip(" ")) <= key_col:
                break
            last = i
        return self.starts[last] + len(self.lines[last].rstrip("\r\n"))

    def end_at(self, start: int, flow: bool) -> int:
        text = self.text
        first = text[start:start + 1]
        if first == '"':
            i = start + 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            return i + 1
        if first == "'":
            i = start + 1
            while i < len(text):
                if text[i] == "'":
                    if text[i + 1:i + 2] == "'":
                        i += 2
                        continue
                    return i + 1
                i += 1
            return i
        if first in ("|", ">", "{", "[", "&", "*", "!"):
            line = self.first_line + text.count("\n", 0, start) + 1
            raise self.fail(f"cannot edit a value written as {first!r} at line {line}; write it as a plain"
                            " scalar")
        end_of_line = text.find("\n", start)
        end_of_line = len(text) if end_of_line < 0 else end_of_line
        segment = text[start:end_of_line]
        stops = [m.start() for m in re.finditer(r"\s#", segment)]
        if flow:
            stops += [i for i, c in enumerate(segment) if c in ",}]"]
        cut = min(stops) if stops else len(segment)
        return start + len(segment[:cut].rstrip())

    def scalar(self, value: Any, like: str | None) -> str:
        """``value`` as YAML text, quoted like the neighbouring value ``like`` (raw text)."""
        if isinstance(value, _Raw):
            return value.text
        if isinstance(value, datetime):
            value = format_time(value)
        value = str(value)
        quote = like[:1] if like and like[:1] in ("'", '"') else ""
        if not quote and not _plain_is_string(value):
            quote = '"'
        if quote == '"':
            return json.dumps(value, ensure_ascii=False)
        if quote == "'":
            return str("'" + value.replace("'", "''") + "'")
        return str(value)

    def raw_value(self, node: CommentedMap, key: str) -> str | None:
        if key not in node:
            return None
        _, key_col, line, col = node.lc.data[key]
        return self.text[self.offset(line, col):self.value_end(line, col, node.fa.flow_style(), key_col)]

    def style_like(self, node: CommentedMap, key: str, siblings: Sequence[CommentedMap]) -> str | None:
        """The raw text of a comparable value: the same key, else another time, in this or a sibling."""
        candidates = [key] + (sorted(TIME_FIELDS) if key in TIME_FIELDS else [])
        for holder in (node, *reversed(siblings)):
            for candidate in candidates:
                raw = self.raw_value(holder, candidate)
                if raw is not None:
                    return raw
        return None

    # -- the three edits --------------------------------------------------------------------

    def _replace(self, node: CommentedMap, key: str, value: Any) -> str:
        _, _, line, col = node.lc.data[key]
        start = self.offset(line, col)
        end = self.value_end(line, col, node.fa.flow_style())
        new = self.scalar(value, self.text[start:end])
        return self.text[:start] + new + self.text[end:]

    def _time_style(self, node: CommentedMap, siblings: list[CommentedMap], value: Any) -> str | None:
        """A time is quoted like the generation's createdAt; other values take the plain style."""
        return self.style_like(node, "createdAt", siblings) if isinstance(value, datetime) else None

    def _entry(self, node: CommentedMap, entry: dict[str, Any]) -> str:
        siblings = [n for n in self._siblings(node) if n is not node]
        pairs = [f"{k}: {self.scalar(v, self._time_style(node, siblings, v))}"
                 for k, v in entry.items()]
        return "{" + ", ".join(pairs) + "}"

    def _append_entry(self, node: CommentedMap, edit: AppendEntry) -> str:
        item = self._entry(node, edit.entry)
        if edit.field not in node:
            if node.fa.flow_style():
                return self._insert(node, edit.field, _Raw(f"[{item}]"))
            # A block-style generation gets a block list, one entry per line.
            key_col = node.lc.data[next(iter(node))][1]
            return self._insert(node, edit.field, _Raw("\n" + " " * (key_col + 2) + "- " + item))
        seq = node[edit.field]
        if not isinstance(seq, CommentedSeq):
            raise self.fail(f"keyset '{edit.keyset}', generation '{edit.generation}': '{edit.field}' is not"
                            " a list")
        _, _, line, col = node.lc.data[edit.field]
        start = self.offset(line, col)
        if seq.fa.flow_style():
            end = self._flow_end(line, col)  # just after the closing ']'
            close = end - 1
            if not self.text[start + 1:close].strip():
                return self.text[:start + 1] + item + self.text[close:]
            return self.text[:close].rstrip() + ", " + item + self.text[close:]
        if not seq:
            raise self.fail(f"keyset '{edit.keyset}', generation '{edit.generation}':"
                            f" '{edit.field}' is empty")
        item_line, item_col = seq.lc.item(len(seq) - 1)
        dash_col = self.lines[item_line].rfind("-", 0, item_col)
        end = self._block_end(item_line, dash_col)
        end_line = self.text.count("\n", 0, end)
        at = self.starts[end_line + 1] if end_line + 1 < len(self.starts) else len(self.text)
        prefix = "" if self.text[:at].endswith("\n") else "\n"
        return str(self.text[:at] + prefix + " " * dash_col + "- " + item + "\n" + self.text[at:])

    def _insert(self, node: CommentedMap, key: str, value: Any) -> str:
        rank = FIELD_ORDER.index(key) if key in FIELD_ORDER else len(FIELD_ORDER)
        present = list(node)
        before = [k for k in present
                  if (FIELD_ORDER.index(k) if k in FIELD_ORDER else len(FIELD_ORDER)) <= rank]
        anchor = before[-1] if before else present[-1]
        siblings = [n for n in self._siblings(node) if n is not node]
        like = None if isinstance(value, _Raw) else self.style_like(node, key, siblings)
        pair = f"{key}:" + ("" if isinstance(value, _Raw) and value.text.startswith("\n") else " ") \
            + self.scalar(value, like)
        _, _, line, col = node.lc.data[anchor]
        flow = node.fa.flow_style()
        end = self.value_end(line, col, flow)
        if flow:
            line_start = self.text.rfind("\n", 0, end) + 1
            line_end = self.text.find("\n", end)
            line_end = len(self.text) if line_end < 0 else line_end
            if line_end - line_start + len(pair) + 2 > LINE_LIMIT:
                indent = node.lc.data[present[0]][1]
                insertion = ",\n" + " " * indent + pair
            else:
                insertion = ", " + pair
            return str(self.text[:end] + insertion + self.text[end:])
        key_col = node.lc.data[anchor][1]
        end_line = self.text.count("\n", 0, end)
        at = self.starts[end_line + 1] if end_line + 1 < len(self.starts) else len(self.text)
        prefix = "" if self.text[:at].endswith("\n") else "\n"
        return str(self.text[:at] + prefix + " " * key_col + pair + "\n" + self.text[at:])

    def _remove(self, node: CommentedMap, key: str, edit: SetField) -> str:
        if key not in node:
            raise self.fail(f"keyset '{edit.keyset}', generation '{edit.generation}': has no '{key}' to"
                            " remove")
        key_line, key_col, line, col = node.lc.data[key]
        start = self.offset(key_line, key_col)
        end = self.value_end(line, col, node.fa.flow_style())
        text = self.text
        if node.fa.flow_style():
            before = start
            while before > 0 and text[before - 1] in " \t\r\n":
                before -= 1
            if before > 0 and text[before - 1] == ",":
                return text[:before - 1] + text[end:]
            after = end
            while after < len(text) and text[after] in " \t":
                after += 1
            if text[after:after + 1] == ",":
                after += 1
                while after < len(text) and text[after] in " \t\r\n":
                    after += 1
            return text[:start] + text[after:]
        first = self.starts[key_line]
        last_line = text.count("\n", 0, end)
        last = self.starts[last_line + 1] if last_line + 1 < len(self.starts) else len(text)
        return text[:first] + text[last:]

    def _siblings(self, node: CommentedMap) -> list[CommentedMap]:
        keysets = self.tree["config"][KEYSETS]
        for keyset in keysets.values():
            generations = keyset.get("generations") if isinstance(keyset, CommentedMap) else None
            if isinstance(generations, CommentedSeq) and any(g is node for g in generations):
                return [g for g in generations if isinstance(g, CommentedMap)]
        return [node]

    def _append(self, edit: AddGeneration) -> str:
        generations = _generations(self.tree, self.name, edit.keyset)
        last = generations[-1]
        if not isinstance(last, CommentedMap):
            raise self.fail(f"keyset '{edit.keyset}': the last generation is not a mapping")
        siblings = [g for g in generations if isinstance(g, CommentedMap)]
        item_line, item_col = generations.lc.item(len(generations) - 1)
        dash_col = self.lines[item_line].rfind("-", 0, item_col)
        if dash_col < 0:
            raise self.fail(f"keyset '{edit.keyset}': cannot find the list item of generation"
                            f" '{last.get('id')}'")
        pairs = []
        for key, value in edit.fields.items():
            like = None
            for sibling in reversed(siblings):
                like = self.style_like(sibling, key, [])
                if like is not None:
                    break
            pairs.append((key, value, like))
        if last.fa.flow_style():
            end = self._flow_end(item_line, item_col)
            item = self._flow_item(dash_col, item_col, pairs)
        else:
            end = self._block_end(item_line, dash_col)
            first_key = next(iter(last))
            item = self._block_item(dash_col, last.lc.data[first_key][1], pairs)
        end_line = self.text.count("\n", 0, end)
        at = self.starts[end_line + 1] if end_line + 1 < len(self.starts) else len(self.text)
        prefix = "" if self.text[:at].endswith("\n") or not self.text[:at] else "\n"
        return self.text[:at] + prefix + item + self.text[at:]

    def _flow_end(self, line: int, col: int) -> int:
        text, i, depth = self.text, self.offset(line, col), 0
        while i < len(text):
            c = text[i]
            if c in "\"'":
                i = self.end_at(i, True)
                continue
            if c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise self.fail(f"unterminated flow mapping at line {self.first_line + line + 1}")

    def _block_end(self, line: int, dash_col: int) -> int:
        last = line
        for i in range(line + 1, len(self.lines)):
            content = self.lines[i].rstrip("\r\n")
            stripped = content.strip()
            if not stripped:
                continue
            indent = len(content) - len(content.lstrip(" "))
            if indent <= dash_col:
                break
            last = i
        return self.starts[last] + len(self.lines[last].rstrip("\r\n"))

    def _flow_item(self, dash_col: int, item_col: int, pairs: list[tuple[str, Any, str | None]]) -> str:
        lines: list[str] = []
        current = " " * dash_col + "-" + " " * (item_col - dash_col - 1) + "{"
        for i, (key, value, like) in enumerate(pairs):
            if key == "publicKeyPem":
                like = '"'
            text = f"{key}: {self.scalar(value, like)}"
            if i == 0:
                current += text
            elif len(current) + len(text) + 3 > LINE_LIMIT:
                lines.append(current + ",")
                current = " " * (item_col + 1) + text
            else:
                current += ", " + text
        lines.append(current + "}")
        return "\n".join(lines) + "\n"

    def _block_item(self, dash_col: int, key_col: int, pairs: list[tuple[str, Any, str | None]]) -> str:
        out = io.StringIO()
        for i, (key, value, like) in enumerate(pairs):
            prefix = " " * dash_col + "-" + " " * (key_col - dash_col - 1) if i == 0 else " " * key_col
            if key == "publicKeyPem":
                body = "".join(" " * (key_col + 2) + line + "\n" for line in str(value).strip().splitlines())
                out.write(f"{prefix}{key}: |\n{body}")
            else:
                out.write(f"{prefix}{key}: {self.scalar(value, like)}\n")
        return out.getvalue()


@dataclass(frozen=True)
class _Raw:
    """YAML text written as is (a flow list the editor composed)."""

    text: str


def _generations(tree: CommentedMap, name: str, keyset: str) -> CommentedSeq:
    keysets = tree["config"].get(KEYSETS)
    if not isinstance(keysets, CommentedMap):
        raise StackFileError(f"{name}: '{KEYSETS}' is not a YAML mapping that can be edited")
    node = keysets.get(keyset)
    generations = node.get("generations") if isinstance(node, CommentedMap) else None
    if not isinstance(generations, CommentedSeq) or not generations:
        raise StackFileError(f"{name}: keyset '{keyset}': 'generations' is not an editable list")
    return generations


def _generation(tree: CommentedMap, name: str, keyset: str, generation: str) -> CommentedMap:
    for node in _generations(tree, name, keyset):
        if isinstance(node, CommentedMap) and str(node.get("id")) == generation:
            return node
    raise StackFileError(f"{name}: keyset '{keyset}': no generation '{generation}'")


def _plain_is_string(value: str) -> bool:
    """Whether ``value`` written unquoted reads back as the same string."""
    if not value or value != value.strip() or any(c in value for c in ":#{}[],&*!|>'\"%@`\n"):
        return False
    try:
        return bool(YAML(typ="safe").load(value) == value)
    except YAMLError:
        return False
