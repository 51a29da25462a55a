"""engine.jsonl: the one JSONL reader/writer — torn-line policy, error style, atomic and appending writers."""

import json
import math

import pytest

from engine.errors import TTScaleError
from engine.jsonl import JsonlStats, JsonlWriter, iter_jsonl, read_jsonl, repair_torn_tail, write_jsonl_atomic


def test_round_trip_keeps_unicode_and_skips_blank_lines(tmp_path):
    path = str(tmp_path / "a.jsonl")
    rows = [{"q": "¿cuánto es 2+2?", "n": 1}, {"q": "x", "n": [1, 2]}]
    assert write_jsonl_atomic(path, rows) == 2
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n   \n")
    stats = JsonlStats()
    assert read_jsonl(path, stats=stats) == rows
    assert (stats.rows, stats.blank, stats.torn) == (2, 2, False)
    assert "¿cuánto" in open(path, encoding="utf-8").read()  # not \u-escaped


def test_torn_last_line_is_skipped_but_a_complete_one_without_newline_is_kept(tmp_path):
    path = str(tmp_path / "t.jsonl")
    whole = json.dumps({"a": 1}) + "\n"
    with open(path, "w") as fh:
        fh.write(whole + '{"a": 2, "b"')  # killed mid-write
    stats = JsonlStats()
    assert read_jsonl(path, stats=stats) == [{"a": 1}] and stats.torn
    with open(path, "w") as fh:
        fh.write(whole + '{"a": 2}')  # finished row, newline missing (a hand-written file)
    stats = JsonlStats()
    assert read_jsonl(path, stats=stats) == [{"a": 1}, {"a": 2}] and not stats.torn


def test_a_bad_line_before_the_end_is_refused_with_file_and_line(tmp_path):
    path = str(tmp_path / "b.jsonl")
    with open(path, "w") as fh:
        fh.write('{"a": 1}\n{oops\n{"a": 3}\n')
    with pytest.raises(TTScaleError, match=r"^dataset .*b\.jsonl, line 2: not valid JSON .*; fix it$"):
        read_jsonl(path, what="dataset", hint="fix it")
    with open(path, "w") as fh:
        fh.write('{"a": 1}\n[1, 2]\n')
    with pytest.raises(TTScaleError, match="line 2: a JSON list, not an object"):
        read_jsonl(path)
    assert read_jsonl(path, objects=False) == [{"a": 1}, [1, 2]]


def test_missing_directory_and_binary_files_are_refused(tmp_path):
    with pytest.raises(TTScaleError, match="no such file"):
        read_jsonl(str(tmp_path / "none.jsonl"))
    with pytest.raises(TTScaleError, match="is a directory"):
        read_jsonl(str(tmp_path))
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(TTScaleError, match="line 1: not UTF-8 text"):
        read_jsonl(str(path))


def test_iter_jsonl_streams(tmp_path):
    path = str(tmp_path / "s.jsonl")
    write_jsonl_atomic(path, ({"i": i} for i in range(1000)))
    it = iter_jsonl(path)
    assert next(it) == {"i": 0}  # a generator: nothing else read yet
    assert sum(1 for _ in it) == 999


def test_writer_appends_after_cutting_a_torn_tail_and_refuses_nan(tmp_path):
    path = str(tmp_path / "w.jsonl")
    with open(path, "w") as fh:
        fh.write('{"a": 1}\n{"a": ')
    with JsonlWriter(path, fsync=True) as w:
        w.append({"a": 2})
        with pytest.raises(TTScaleError, match="NaN or infinite"):
            w.append({"a": math.nan})
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    with open(path, "a") as fh:
        fh.write('{"a": 3}')  # complete, no newline: completed, not cut
    assert repair_torn_tail(path) and read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert not repair_torn_tail(path)


def test_writers_refuse_a_missing_folder_and_a_directory(tmp_path):
    with pytest.raises(TTScaleError, match="does not exist"):
        JsonlWriter(str(tmp_path / "no" / "x.jsonl"))
    with pytest.raises(TTScaleError, match="does not exist"):
        write_jsonl_atomic(str(tmp_path / "no" / "x.jsonl"), [{}])
    with pytest.raises(TTScaleError, match="is a directory"):
        JsonlWriter(str(tmp_path))
