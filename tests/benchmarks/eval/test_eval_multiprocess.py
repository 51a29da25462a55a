"""``accelerate launch`` with two CPU processes (gloo) writes the same rows as one process, through the real CLI.

accelerate's ``--cpu`` launcher starts a single process unless MPI is installed; ``--multi_gpu`` is its torchrun
launcher, which on a machine without GPUs starts CPU processes that ``benchmarks.eval.runner.processes`` joins over gloo.
The policy is a tiny random Llama saved to a directory, so ``--model DIR`` loads it like any local model.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, launch_two

ARGS = ["--dataset", "synthetic", "--limit", "5", "--method", "budget", "majority", "--budgets", "4", "8", "--n", "1", "2",
        "--max-answer-tokens", "4", "--max-steps", "2", "--max-step-tokens", "4", "--batch-size", "2", "--search-batch", "2",
        "--format", "think-tags", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir):
    return tiny_model_dir


def run(cmd, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def rows(out):
    with open(os.path.join(out, "samples.jsonl"), encoding="utf-8") as fh:
        return [{k: v for k, v in json.loads(line).items() if k != "wall_s"} for line in fh]


@pytest.fixture(scope="module")
def one(tiny_dir, tmp_path_factory):
    """The rows of the same evaluation run by one process: what every multi-process run must reproduce."""
    out = str(tmp_path_factory.mktemp("one") / "run")
    run([sys.executable, "-m", "engine.cli", "eval", *ARGS, "--model", tiny_dir, "--out", out])
    return out


def test_two_processes_write_the_same_rows_as_one(tmp_path, tiny_dir, one):
    two = str(tmp_path / "two")
    proc = run(launch_two() + ["-m", "engine.cli", "eval", *ARGS, "--model", tiny_dir, "--out", two])
    assert "over 2 processes" in proc.stderr
    assert f"ttscale: {len(rows(one))} new rows in" in proc.stderr  # every process's rows, not only rank 0's
    assert rows(two) == rows(one) and len(rows(one)) == 5 * 2 + 5 * 2
    assert "| budget | max_thinking_tokens=4 |" in proc.stdout  # rank 0 printed the summary once
    assert proc.stdout.count("## Sequential scaling") == 1
    for name in ("metrics.json", "scaling.png", "summary.md"):
        assert os.path.exists(os.path.join(two, name))
    assert not [f for f in os.listdir(two) if f.startswith("samples.rank")]
    # Resuming with another number of processes is the same configuration: nothing left to do.
    again = run([sys.executable, "-m", "engine.cli", "eval", *ARGS, "--model", tiny_dir, "--out", two])
    assert "9 units of work (9 already done)" in again.stderr and "0 new rows" in again.stderr


def _shard_lines(out):
    """Complete rows in the run's per-process shards so far."""
    total = 0
    for name in os.listdir(out) if os.path.isdir(out) else ():
        if name.startswith("samples.rank"):
            with open(os.path.join(out, name), "rb") as fh:
                total += fh.read().count(b"\n")
    return total


def _status(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            return fh.read().lower()
    except OSError:
        return ""


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", encoding="utf-8") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the ranks through /proc (Linux)")
def test_two_processes_killed_then_resumed_keep_every_row_once(tmp_path, tiny_dir, one):
    """SIGKILL the whole launcher (both ranks) once rows are in the shards, resume with two processes: every finished
    row survives, none is written twice, and the merged rows equal the one-process run."""
    out = str(tmp_path / "run")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    argv = ["-m", "engine.cli", "eval", *ARGS, "--model", tiny_dir, "--out", out]
    proc = subprocess.Popen(launch_two() + argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while _shard_lines(out) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    victims = _descendants(proc.pid)  # torchrun starts each rank in a session of its own: kill them by pid
    for pid in [proc.pid, *victims]:
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=60)
    for pid in victims:
        while os.path.exists(f"/proc/{pid}") and "zombie" not in _status(pid):
            time.sleep(0.02)
    proc.stderr.close()
    kept = _shard_lines(out)
    assert kept >= 3 and not os.path.exists(os.path.join(out, "samples.jsonl"))
    again = run(launch_two() + argv)
    assert f"ttscale: {len(rows(one)) - kept} new rows in" in again.stderr  # the kept rows are not computed again
    assert rows(out) == rows(one)
    keys = [(r["problem_id"], r["method"], json.dumps(r["setting"], sort_keys=True)) for r in rows(out)]
    assert len(keys) == len(set(keys))


def test_single_process_cpu_launch_is_explained(monkeypatch):
    """`accelerate launch --cpu --num_processes 2` without MPI starts one process: the run says so and how to fix it."""
    from benchmarks.eval.runner import processes

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert processes().note is None and (processes().rank, processes().world) == (0, 1)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert "--multi_gpu --num_processes N" in processes().note
