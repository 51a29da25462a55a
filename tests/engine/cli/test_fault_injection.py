"""Fault injection: ``ttscale generate``, ``search`` and ``eval`` killed (SIGKILL, SIGINT) at seeded random points.

Each killed process runs as ``python -m engine.cli`` on the tiny random model, one prompt (problem) per batch. What it
printed before the kill is checked row by row against an uninterrupted run: complete rows only (a torn last line, no
newline, is the only imperfection allowed), never a duplicate, a trace holding exactly the finished rows' records, a
search tree that is always whole JSON, exit 130 and a count on stderr for SIGINT, and for eval a resume (same
``--out``) that ends with every row once, equal to the uninterrupted run. ``TTSCALE_FAULT_ROUNDS=N`` runs N rounds
per signal (default 1: one SIGKILL and one SIGINT per command, a few seconds each, mostly interpreter start-up).
"""

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO

from benchmarks.eval.store import SAMPLES, row_key

pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals (SIGKILL) to kill a subprocess"),
    pytest.mark.usefixtures("one_thread_module"),
]

ROUNDS = int(os.environ.get("TTSCALE_FAULT_ROUNDS", "1"))
SIGNALS = {"SIGKILL": getattr(signal, "SIGKILL", None), "SIGINT": signal.SIGINT}


def _sigint_default():
    """In the child before exec: SIGINT back to its default. A suite started as a background job of a shell inherits
    SIGINT ignored, and an ignored signal stays ignored across exec, so Ctrl-C would never reach the command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt in this process too, however the suite was started (see ``_sigint_default``)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
CASES = [(name, r) for r in range(ROUNDS) for name in SIGNALS]
TIMEOUT = 120  # seconds any one wait may take before the test gives up (and kills): it can never hang

PROMPTS = ["What is 1 + 1?", "What is 2 + 2?", "What is 3 + 3?", "What is 4 + 4?"]
GENERATE = ["generate", *PROMPTS, "--batch-size", "1", "--min-thinking-tokens", "48", "--max-thinking-tokens", "48",
            "--max-answer-tokens", "4", "--json"]
SEARCH = ["search", *PROMPTS, "--strategy", "best-of-n", "--n", "2", "--max-steps", "2", "--max-step-tokens", "24",
          "--seed", "0", "--batch-problems", "1", "--verifier", "engine.search.verifiers:arithmetic", "--json"]
EVAL = ["eval", "--dataset", "synthetic", "--limit", "4", "--method", "budget", "--budgets", "16", "32",
        "--format", "think-tags", "--max-answer-tokens", "4", "--batch-size", "1"]
EVAL_ROWS = 4 * 2


def _trigger(command, name, round_):
    """A seeded random kill point: after the k-th output row, or a short delay after the model has loaded."""
    rng = random.Random(f"{command}/{name}/{round_}")
    if rng.random() < 0.7:
        return "rows", rng.randint(1, 3)
    return "delay", round(rng.uniform(0.05, 0.5), 2)


class Killed:
    """One ``python -m engine.cli ARGV`` subprocess, read on threads (stdout line by line) so no wait can hang."""

    def __init__(self, argv):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "0"}
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *argv], cwd=REPO, env=env, preexec_fn=_sigint_default,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        self.out: list[bytes] = []
        self.err = bytearray()
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_out(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.out.append(line)
            if line.endswith(b"\n"):
                self.lines.put(line)

    def _read_err(self):
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self.err.extend(chunk)

    def wait_for_rows(self, k, extra=lambda: 0):
        """Until ``k`` complete stdout lines (or ``extra()`` rows elsewhere) appeared, the process ended, or TIMEOUT."""
        seen, deadline = 0, time.time() + TIMEOUT
        while seen < k and extra() < k and self.proc.poll() is None and time.time() < deadline:
            try:
                self.lines.get(timeout=0.02)
                seen += 1
            except queue.Empty:
                pass

    def wait_for_stderr(self, text):
        deadline = time.time() + TIMEOUT
        while text.encode() not in self.err and self.proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)

    def kill(self, sig):
        """Send ``sig`` (if still running); then wait for the end (SIGKILL after TIMEOUT) and the readers."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=TIMEOUT)
        return self.proc.returncode, b"".join(self.out), self.err.decode("utf-8", "replace")


def _kill_at(argv, command, name, round_, loaded, rows_elsewhere=lambda: 0, most=3):
    how, value = _trigger(command, name, round_)
    value = min(value, most) if how == "rows" else value
    p = Killed(argv)
    try:
        p.wait_for_stderr(loaded)
        if how == "rows":
            p.wait_for_rows(value, rows_elsewhere)
        else:
            time.sleep(value)
        assert p.proc.poll() is None, f"{command} finished before the {name} ({how} {value}); make its rows slower"
    finally:
        code, out, err = p.kill(SIGNALS[name])
    return code, out, err


def _complete_rows(out: bytes):
    """The complete (newline-ended) JSON rows; only a last line without newline may be torn."""
    lines = out.split(b"\n")
    *whole, tail = lines  # tail: b"" after a final newline, else a torn last line
    rows = [json.loads(line) for line in whole]
    if tail:
        try:
            json.loads(tail)
            pytest.fail(f"the last row parses but has no newline: {tail[:80]!r}")
        except json.JSONDecodeError:
            pass
    return rows


def _no_wall(x):
    if isinstance(x, dict):
        return {k: _no_wall(v) for k, v in x.items() if k != "wall_s"}
    if isinstance(x, list):
        return [_no_wall(v) for v in x]
    return x


def _check_signal_end(name, code, err, done, total):
    if name == "SIGKILL":
        assert code == -signal.SIGKILL, (code, err[-2000:])
        return
    assert code == 130, (code, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    if total is not None:
        assert f"ttscale: interrupted after {done} of {total} rows" in err, err[-2000:]


# ---------------------------------------------------------------------------------------------------- generate


@pytest.fixture(scope="module")
def generate_reference(tiny_model_dir, tmp_path_factory):
    trace = tmp_path_factory.mktemp("gen-ref") / "t.jsonl"
    capsys = _Capture()
    code, out, err = capsys.run("generate", *GENERATE[1:], "--model", tiny_model_dir, "--trace", str(trace))
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    return rows, records


class _Capture:
    """``run_cli`` without the function-scoped capsys: stdout and stderr captured by redirection."""

    def run(self, *argv):
        import contextlib
        import io

        from engine.cli.main import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
        return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name, round_", CASES)
def test_generate_killed(tmp_path, tiny_model_dir, generate_reference, name, round_):
    ref_rows, ref_records = generate_reference
    trace = tmp_path / "t.jsonl"
    code, out, err = _kill_at([*GENERATE, "--model", tiny_model_dir, "--trace", str(trace)], "generate", name, round_,
                              loaded="ttscale: model ")
    rows = _complete_rows(out)
    assert len(rows) < len(PROMPTS), "the kill came after the last row"
    assert _no_wall(rows) == _no_wall(ref_rows[: len(rows)])  # complete, in order, none twice
    _check_signal_end(name, code, err, len(rows), len(PROMPTS))

    data = trace.read_bytes() if trace.exists() else b""
    *whole, tail = data.split(b"\n")
    assert not tail or name == "SIGKILL", "a torn trace line after Ctrl-C"
    records = [json.loads(line) for line in whole]
    by_prompt = {}
    for rec in records:
        by_prompt.setdefault(rec["prompt_index"], []).append(rec)
    finished = list(range(len(rows)))
    indices = sorted(by_prompt)
    for i in finished:
        want = [r for r in ref_records if r["prompt_index"] == i]
        assert _no_wall(by_prompt.get(i)) == _no_wall(want), f"trace of finished row {i} is not complete"
    if name == "SIGINT":
        assert indices == finished, (indices, finished)
        assert f"{trace} holds their {len(records)} trace records" in err
    else:  # a kill between a row's trace records and its line on stdout: that row's records, maybe cut short
        assert indices in (finished, [*finished, len(rows)]), (indices, finished)
        extra = by_prompt.get(len(rows), [])
        assert _no_wall(extra) == _no_wall([r for r in ref_records if r["prompt_index"] == len(rows)][: len(extra)])


# ---------------------------------------------------------------------------------------------------- search


@pytest.fixture(scope="module")
def search_reference(tiny_model_dir):
    code, out, err = _Capture().run(*SEARCH, "--model", tiny_model_dir)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("name, round_", CASES)
def test_search_killed(tmp_path, tiny_model_dir, search_reference, name, round_):
    tree_file = tmp_path / "tree.json"
    code, out, err = _kill_at([*SEARCH, "--model", tiny_model_dir, "--tree", str(tree_file)], "search", name, round_,
                              loaded="ttscale: best-of-n ")
    rows = _complete_rows(out)
    assert len(rows) < len(PROMPTS), "the kill came after the last row"
    assert [r["question"] for r in rows] == PROMPTS[: len(rows)]  # in order, none twice
    assert _no_wall(rows) == _no_wall(search_reference[: len(rows)])
    _check_signal_end(name, code, err, len(rows), len(PROMPTS))

    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n] or name == "SIGKILL"
    if not tree_file.exists():
        assert not rows or name == "SIGKILL" and len(rows) == 0, "rows printed but no tree written"
        return
    tree = json.loads(tree_file.read_text())  # always whole JSON: written atomically
    questions = [p["question"] for p in tree["problems"]]
    finished = PROMPTS[: len(rows)]
    if name == "SIGINT":
        assert questions == finished, (questions, finished)
        assert f"{tree_file} holds their search tree ({len(tree['nodes'])} nodes)" in err
    else:  # a kill between the tree's rewrite and the batch's line on stdout
        assert questions in (finished, PROMPTS[: len(rows) + 1]), (questions, finished)


# ---------------------------------------------------------------------------------------------------- eval


def _shard_rows(out):
    path = os.path.join(out, "samples.rank0.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as fh:
        return fh.read().count(b"\n")


def _samples(out):
    with open(os.path.join(out, SAMPLES), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _keyed(rows):
    return {row_key(r["problem_id"], r["method"], r["setting"]): r["correct"] for r in rows}


@pytest.fixture(scope="module")
def eval_reference(tiny_model_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("eval-ref") / "run")
    code, _, err = _Capture().run(*EVAL, "--model", tiny_model_dir, "--out", out)
    assert code == 0, err
    rows = _samples(out)
    assert len(rows) == EVAL_ROWS
    return rows


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_eval_killed_twice_then_resumed(tmp_path, tiny_model_dir, eval_reference, round_):
    """SIGKILL a run, SIGINT its resumed run, resume again: every row once, equal to the uninterrupted run."""
    out = str(tmp_path / "run")
    argv = [*EVAL, "--model", tiny_model_dir, "--out", out]
    before = 0
    for name in ("SIGKILL", "SIGINT"):
        code, _, err = _kill_at(argv, "eval", name, round_, loaded="ttscale: 4 problems",
                                rows_elsewhere=lambda before=before: _shard_rows(out) - before, most=2)
        written = _shard_rows(out)
        assert before <= written < EVAL_ROWS, (name, before, written, err[-2000:])
        assert not os.path.exists(os.path.join(out, SAMPLES)), "killed before the merge, yet samples.jsonl exists"
        _check_signal_end(name, code, err, None, None)
        if name == "SIGINT":
            assert f"ttscale: interrupted; {written} finished row{'' if written == 1 else 's'} kept in {out}" in err, err[-2000:]
        before = written
    code, _, err = _Capture().run(*argv)
    assert code == 0, err
    assert f"({before} already done)" in err, err
    rows = _samples(out)
    keys = [row_key(r["problem_id"], r["method"], r["setting"]) for r in rows]
    assert len(keys) == len(set(keys)) == EVAL_ROWS
    assert _keyed(rows) == _keyed(eval_reference)
    assert _no_wall(sorted(rows, key=lambda r: r["problem_id"] + r["method"] + json.dumps(r["setting"]))) == \
        _no_wall(sorted(eval_reference, key=lambda r: r["problem_id"] + r["method"] + json.dumps(r["setting"])))


# ---------------------------------------------------------------------------------------------------- Ctrl-C inside a row


def test_ctrl_c_while_a_row_is_written_waits_for_the_row(tmp_path, tiny_model_dir, monkeypatch):
    """A real SIGINT sent while row 2's trace records are being written: the row is finished first (trace and stdout),
    then the run stops; trace, stdout and the message agree on 2 rows."""
    from engine.jsonl import JsonlWriter

    real = JsonlWriter.append

    def append(self, rec):
        if rec["prompt_index"] == 1 and rec["type"] == "token" and rec["position"] == 0:
            os.kill(os.getpid(), signal.SIGINT)
        real(self, rec)

    monkeypatch.setattr(JsonlWriter, "append", append)
    trace = tmp_path / "t.jsonl"
    code, out, err = _Capture().run(*GENERATE, "--model", tiny_model_dir, "--trace", str(trace))
    assert code == 130, err
    assert [json.loads(line)["prompt"] for line in out.splitlines()] == PROMPTS[:2]
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert sorted({r["prompt_index"] for r in records}) == [0, 1]
    assert f"interrupted after 2 of 4 rows; the 2 finished rows are on stdout; {trace} holds their {len(records)} trace records" in err


def test_ctrl_c_while_the_tree_is_written_waits_for_the_rows(tmp_path, tiny_model_dir, monkeypatch):
    """A real SIGINT sent while the first batch's tree is written: its row is printed before the run stops."""
    from engine.search.tree import SearchTree

    real = SearchTree.write

    def write(self, path):
        os.kill(os.getpid(), signal.SIGINT)
        return real(self, path)

    monkeypatch.setattr(SearchTree, "write", write)
    tree_file = tmp_path / "tree.json"
    code, out, err = _Capture().run(*SEARCH, "--model", tiny_model_dir, "--tree", str(tree_file))
    assert code == 130, err
    assert [json.loads(line)["question"] for line in out.splitlines()] == PROMPTS[:1]
    tree = json.loads(tree_file.read_text())
    assert [p["question"] for p in tree["problems"]] == PROMPTS[:1]
    assert "interrupted after 1 of 4 rows; the 1 finished row is on stdout" in err
