"""JSON Lines, read and written one way everywhere: traces, eval rows, dataset files, prompt files.

    rows = read_jsonl("samples.jsonl", what="run file")          # list of dicts
    for row in iter_jsonl(path, what="dataset"): ...             # streaming, bounded memory
    with JsonlWriter(path, fsync=True) as w: w.append(row)      # one flushed (and fsynced) line per row
    write_jsonl_atomic(path, rows)                               # temporary file, then rename
    write_json_atomic(path, obj, indent=2)                       # one JSON document, the same way

One torn-line policy: a process killed while writing leaves a last line without its newline. When that last line
does not parse it is a torn write and is skipped (``JsonlStats.torn`` says so); a last line that parses is a
complete row whose newline is missing and is kept. A bad line anywhere else is refused.

One error style: ``{what} {path}, line {n}: {problem}; {hint}`` as a :class:`TTScaleError`, for a missing file,
text that is not UTF-8 (a binary file), a line that is not JSON, and a value that is not an object.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from engine.errors import TTScaleError


@dataclass
class JsonlStats:
    """What a read saw: rows returned, blank lines skipped, and whether a torn last line was dropped."""

    rows: int = 0
    blank: int = 0
    torn: bool = False


def parse_line(line: str | bytes, *, path: str, number: int, what: str = "file", hint: str = "",
               objects: bool = True):
    """One JSONL line as a Python value; refuses invalid JSON and (``objects=True``) anything but an object."""
    where = f"{what} {path}, line {number}"
    tail = f"; {hint}" if hint else ""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TTScaleError(f"{where}: not valid JSON ({exc.msg}){tail}") from exc
    if objects and not isinstance(value, dict):
        raise TTScaleError(f"{where}: a JSON {type(value).__name__}, not an object with named fields{tail}")
    return value


def iter_jsonl(path: str, *, what: str = "file", hint: str = "", objects: bool = True,
               stats: JsonlStats | None = None) -> Iterator:
    """Yield the rows of a JSONL file one at a time (memory stays bounded); blank lines are skipped.

    Follows the module's torn-line policy. Refuses a missing file, a directory, non-UTF-8 bytes and bad lines (see
    :func:`parse_line`); ``stats`` (optional) is filled in as the file is read.
    """
    stats = stats if stats is not None else JsonlStats()
    if not os.path.exists(path):
        raise TTScaleError(f"{what} {path}: no such file")
    if os.path.isdir(path):
        raise TTScaleError(f"{what} {path}: is a directory, not a JSONL file")
    with open(path, "rb") as fh:
        pending: tuple[int, bytes] | None = None  # the line read last; it may turn out to be a torn last line
        for number, raw in enumerate(fh, start=1):
            if pending is not None:
                yield _decode_and_parse(*pending, path, what, hint, objects, stats)
                pending = None
            if not raw.strip():
                stats.blank += 1
                continue
            if raw.endswith(b"\n"):
                yield _decode_and_parse(number, raw, path, what, hint, objects, stats)
            else:
                pending = (number, raw)
        if pending is not None:
            number, raw = pending
            try:
                value = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                stats.torn = True  # a write cut short by a kill: not a finished row
                return
            if objects and not isinstance(value, dict):
                parse_line(raw, path=path, number=number, what=what, hint=hint, objects=objects)
            stats.rows += 1
            yield value


def _decode_and_parse(number: int, raw: bytes, path: str, what: str, hint: str, objects: bool, stats: JsonlStats):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TTScaleError(f"{what} {path}, line {number}: not UTF-8 text (byte {exc.start}); is it a binary file?") from exc
    value = parse_line(text, path=path, number=number, what=what, hint=hint, objects=objects)
    stats.rows += 1
    return value


def read_jsonl(path: str, *, what: str = "file", hint: str = "", objects: bool = True,
               stats: JsonlStats | None = None) -> list:
    """Every row of a JSONL file as a list (see :func:`iter_jsonl` for what is refused and the torn-line policy)."""
    return list(iter_jsonl(path, what=what, hint=hint, objects=objects, stats=stats))


def dumps(row) -> str:
    """One JSONL line (without its newline): UTF-8 kept as is, NaN and infinities refused (they are not JSON)."""
    try:
        return json.dumps(row, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise TTScaleError(f"cannot write a row as JSON ({exc}); a value is NaN or infinite") from exc


class JsonlWriter:
    """Appends rows to a JSONL file, one complete line per :meth:`append`, flushed (and fsynced with ``fsync=True``)
    so that a kill loses at most the row being written.

    A torn last line left by an earlier kill is cut off first, so the next row starts on a line of its own.
    ``mode="w"`` starts the file afresh. Refuses a folder that does not exist and a path that is a directory.
    """

    def __init__(self, path: str, *, mode: str = "a", fsync: bool = False, dumps_fn=dumps):
        if mode not in ("a", "w"):
            raise TTScaleError(f"JsonlWriter mode {mode!r}: use 'a' (append) or 'w' (start afresh)")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise TTScaleError(f"{path}: the folder {folder} does not exist; create it or give another path")
        if os.path.isdir(path):
            raise TTScaleError(f"{path} is a directory; give a file path")
        self.path, self.fsync, self._dumps = path, fsync, dumps_fn
        if mode == "a":
            repair_torn_tail(path)
        self._fh = open(path, mode, encoding="utf-8")
        self.rows = 0

    def append(self, row) -> None:
        """Write one row as one line and flush it. Refuses a closed writer and values JSON cannot hold."""
        if self._fh is None:
            raise TTScaleError(f"{self.path}: this writer is closed")
        self._fh.write(self._dumps(row) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        self.rows += 1

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def repair_torn_tail(path: str) -> bool:
    """Apply the torn-line policy to a file about to be appended to: a last line without its newline is cut off when
    it does not parse, or completed with a newline when it does. Returns True when the file changed."""
    if not os.path.isfile(path):
        return False
    with open(path, "rb+") as fh:
        data = fh.read()
        if not data or data.endswith(b"\n"):
            return False
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:].decode("utf-8"))
            fh.write(b"\n")
        except (UnicodeDecodeError, json.JSONDecodeError):
            fh.truncate(start)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _write_atomic(path: str, fill, tag: str = ""):
    """Open ``path`` + a temporary suffix, let ``fill(fh)`` write into it, fsync, rename it onto ``path``; return what
    ``fill`` returned. Readers see the old file or the new one, never half of it; a failure leaves no temporary file.
    ``tag`` keeps concurrent writers (several ranks) off each other's temporary files. OS errors (a missing or
    read-only folder) propagate as ``OSError`` for the caller to word."""
    tmp = f"{path}.tmp{os.getpid()}{tag}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            result = fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return result


def write_jsonl_atomic(path: str, rows: Iterable, *, dumps_fn=dumps) -> int:
    """Write every row to ``path`` through a temporary file and a rename, so readers see the old file or the new one,
    never half of it. Returns the number of rows. Refuses a folder that does not exist."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise TTScaleError(f"{path}: the folder {folder} does not exist; create it or give another path")

    def fill(fh) -> int:
        n = 0
        for row in rows:
            fh.write(dumps_fn(row) + "\n")
            n += 1
        return n

    return _write_atomic(path, fill)


def write_json_atomic(path: str, obj, *, indent: int | None = None, sort_keys: bool = False, tag: str = "") -> None:
    """Write one JSON document (and a final newline) to ``path`` the way :func:`write_jsonl_atomic` writes rows:
    through a fsynced temporary file and a rename (``json.dumps`` with UTF-8 kept). ``tag`` separates concurrent writers'
    temporary files. A missing or unwritable folder raises ``OSError``."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=sort_keys)
    _write_atomic(path, lambda fh: fh.write(text + "\n"), tag)


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a fsynced temporary file and a rename (readers see the old file or the new
    one). Refuses a folder that does not exist and an unwritable location, in one sentence."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise TTScaleError(f"{path}: the folder {folder} does not exist; create it or give another path")
    try:
        _write_atomic(path, lambda fh: fh.write(text))
    except OSError as exc:
        raise TTScaleError(f"{path}: cannot write it ({exc.__class__.__name__}: {exc}); give a writable file path") from exc
