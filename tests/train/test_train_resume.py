"""Checkpoints and --resume: a ``ttscale train sft`` killed (SIGKILL) after a checkpoint and resumed ends like an
uninterrupted run — the same steps, the same loss at every step (so the same data order: the Trainer skips the
batches it had consumed) and the same weights; the log holds each step once. Refusals come before any model loads."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, write_sft_data

from engine.cli.main import main
from engine.errors import ConfigError, TTScaleError
from train.config import SFTOptions
from train.sft import CURVES_NAME, LOG_NAME, OPTIONS_NAME, check_output, last_checkpoint

STEPS, EVERY = 6, 2  # 6 examples, 2 per optimizer step: 3 steps an epoch, so checkpoint-2 is mid-epoch and a resume
# from it crosses an epoch boundary (a new shuffle)
TIMEOUT = 120  # seconds any wait may take before the test gives up (and kills): it can never hang


def _sigint_default():
    """In the child before exec: SIGINT back to its default (a suite run as a background job inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_sft_data(tmp_path_factory.mktemp("resumedata") / "train.jsonl", 6)


def _argv(model, data, out, *extra):
    return ["train", "sft", "--model", model, "--data", data, "--output-dir", out, "--max-length", "128",
            "--global-batch", "2", "--max-steps", str(STEPS), "--save-steps", str(EVERY), "--learning-rate", "1e-3",
            "--no-gradient-checkpointing", *extra]


def _rows(out):
    return [json.loads(line) for line in open(os.path.join(out, LOG_NAME))]


def _weights(out):
    from safetensors.torch import load_file

    return load_file(os.path.join(out, "model.safetensors"))


def _cli(argv, stdout, stderr):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "engine.cli", *argv], cwd=REPO, env=env, preexec_fn=_sigint_default,
                            stdout=stdout, stderr=stderr)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals (SIGKILL) to kill a subprocess")
def test_a_killed_run_resumes_to_the_uninterrupted_result(chat_model_dir, data_file, tmp_path, capsys, one_thread):
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    assert main(_argv(chat_model_dir, data_file, whole, "--no-progress")) == 0  # the uninterrupted run, in-process
    capsys.readouterr()

    # 1. Killed once its first checkpoint is complete (trainer_state.json is written last), with the default bar.
    with open(tmp_path / "killed.err", "wb") as err:
        proc = _cli(_argv(chat_model_dir, data_file, cut), subprocess.DEVNULL, err)
        deadline = time.time() + TIMEOUT
        while proc.poll() is None and not last_checkpoint(cut) and time.time() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
    killed_err = (tmp_path / "killed.err").read_text(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill (rc {proc.returncode}): {killed_err[-800:]}"
    assert f"/{STEPS} [" in killed_err  # the Trainer's tqdm bar, shown by default
    assert not os.path.exists(os.path.join(cut, "model.safetensors"))  # killed before the final save
    checkpoint = last_checkpoint(cut)
    k = int(checkpoint.rsplit("-", 1)[1])
    assert EVERY <= k < STEPS
    # What a kill between two saves leaves: a step logged past the checkpoint, a torn row, a save cut short.
    with open(os.path.join(cut, LOG_NAME), "a") as log:
        log.write(json.dumps({"step": k + 1, "loss": 99.0, "learning_rate": 0.0}) + '\n{"step": ')
    os.makedirs(os.path.join(cut, f"checkpoint-{k + EVERY}"), exist_ok=True)
    open(os.path.join(cut, f"checkpoint-{k + EVERY}", "model.safetensors"), "wb").close()

    # 2. Resumed without a bar: nothing on stdout, only our own lines on stderr.
    proc = _cli(_argv(chat_model_dir, data_file, cut, "--resume", "--no-progress"), subprocess.PIPE, subprocess.PIPE)
    out, err = proc.communicate(timeout=TIMEOUT)
    err = err.decode(errors="replace")
    assert proc.returncode == 0, err[-2000:]
    assert out == b"" and [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("ttscale:")] == []
    assert f"trained {STEPS} steps" in err and f"resumed from checkpoint-{k}" in err

    # 3. The same run: every step once, the same losses and rates (the same data order), the same weights.
    resumed, uninterrupted = _rows(cut), _rows(whole)
    assert [r["step"] for r in resumed] == [r["step"] for r in uninterrupted] == list(range(1, STEPS + 1))
    for a, b in zip(resumed, uninterrupted):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a["learning_rate"] == pytest.approx(b["learning_rate"], abs=1e-12), (a, b)
    w_cut, w_whole = _weights(cut), _weights(whole)
    assert w_cut.keys() == w_whole.keys() and all((w_cut[n] - w_whole[n]).abs().max() <= 1e-6 for n in w_cut)
    kept = sorted(name for name in os.listdir(cut) if name.startswith("checkpoint-"))
    assert kept == [f"checkpoint-{STEPS - EVERY}", f"checkpoint-{STEPS}"]  # --save-total-limit 2 (the default)
    assert os.path.getsize(os.path.join(cut, CURVES_NAME)) > 10_000

    # 4. The finished directory: a fresh run there is refused (naming --resume), so is a resume with other options.
    assert main(_argv(chat_model_dir, data_file, cut)) == 2
    assert "already holds train_log.jsonl from another run; choose a new directory, or add --resume" in capsys.readouterr().err
    assert main(_argv(chat_model_dir, data_file, cut, "--resume", "--seed", "7")) == 2
    assert "--seed is 7 but the run in" in capsys.readouterr().err


# ---- refusals and bookkeeping on plain files (no model) ------------------------------------------------------------

def _options(out, **change):
    return SFTOptions(**{"model": "m", "data": "hub/set", "output_dir": str(out), "save_steps": 2, **change})


def _fake_run(out, options, steps=(2, 4), processes=1, complete=True):
    """An output directory as a run leaves it: train_options.json, a log, checkpoint-N folders."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, OPTIONS_NAME), "w") as fh:
        json.dump({"options": dataclasses.asdict(options), "processes": processes}, fh)
    with open(os.path.join(out, LOG_NAME), "w") as fh:
        fh.write("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, max(steps) + 1)))
    for s in steps:
        os.makedirs(os.path.join(out, f"checkpoint-{s}"))
        if complete:
            with open(os.path.join(out, f"checkpoint-{s}", "trainer_state.json"), "w") as fh:
                json.dump({"global_step": s}, fh)


def test_the_last_complete_checkpoint_is_resumed_and_run_only_fields_may_change(tmp_path):
    out = tmp_path / "run"
    _fake_run(out, _options(out))
    os.makedirs(out / "checkpoint-6")  # a save cut short: no trainer_state.json
    (out / "checkpoint-10").mkdir()
    (out / "checkpoint-10" / "trainer_state.json").write_text('{"global_st')  # torn
    assert last_checkpoint(str(out)) == str(out / "checkpoint-4")
    changed = _options(out, save_steps=5, save_total_limit=0, progress=False, resume=True)
    assert check_output(changed, processes=1, resume=True) == str(out / "checkpoint-4")
    assert check_output(changed, processes=1, resume=str(out / "checkpoint-2")) == str(out / "checkpoint-2")
    assert last_checkpoint(str(tmp_path / "missing")) is None


def test_without_resume_a_directory_of_another_run_is_refused(tmp_path):
    out = tmp_path / "run"
    _fake_run(out, _options(out))
    with pytest.raises(ConfigError, match="already holds train_log.jsonl from another run.*add resume") as err:
        check_output(_options(out), processes=1)
    assert err.value.field == "output_dir"
    os.remove(out / LOG_NAME)  # a checkpoint alone is a run too
    with pytest.raises(ConfigError, match="already holds checkpoint-2"):
        check_output(_options(out), processes=1)
    assert check_output(_options(tmp_path / "new"), processes=1) is None


@pytest.mark.parametrize("setup, change, processes, field, message", [
    ("none", {}, 1, "resume", "holds no complete checkpoint to resume from.*drop it to start a new run"),
    ("incomplete", {}, 1, "resume", "holds no complete checkpoint to resume from.*start again in a new directory"),
    ("no-record", {}, 1, "resume", "has no readable train_options.json"),
    ("run", {"learning_rate": 1e-3}, 1, "learning_rate", r"`?learning_rate`? is 0.001 but the run in .* was started with 1e-05"),
    ("run", {"max_steps": 99}, 1, "max_steps", "max_steps is 99 but"),
    ("run", {"lora": True}, 1, "lora", "lora is True but"),
    ("run", {}, 2, None, "trained on 1 process, this one on 2"),
])
def test_a_resume_is_refused_in_one_sentence(tmp_path, setup, change, processes, field, message):
    out = tmp_path / "run"
    if setup == "none":
        out.mkdir()
    else:
        _fake_run(out, _options(out), complete=setup != "incomplete")
    if setup == "no-record":
        os.remove(out / OPTIONS_NAME)
    with pytest.raises(TTScaleError, match=message) as err:
        check_output(_options(out, **change), processes=processes, resume=True)
    assert getattr(err.value, "field", None) == field
    assert str(err.value).count("; ") == 1


def test_an_explicit_checkpoint_must_be_complete(tmp_path):
    out = tmp_path / "run"
    _fake_run(out, _options(out), complete=False)
    with pytest.raises(TTScaleError, match="is not a complete Trainer checkpoint"):
        check_output(_options(out), processes=1, resume=str(out / "checkpoint-2"))


def test_the_cli_names_the_flags(tmp_path, capsys):
    out = tmp_path / "run"
    _fake_run(out, _options(out))
    argv = ["train", "sft", "--model", "m", "--data", "hub/set", "--output-dir", str(out), "--save-steps", "2"]
    assert main([*argv, "--resume", "--learning-rate", "0.001"]) == 2
    assert "ttscale: error: --learning-rate is 0.001 but the run in" in capsys.readouterr().err
    assert main([*argv, "--resume", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ttscale: error: --resume: " in err and "saved every --save-steps); drop it to start a new run there" in err
