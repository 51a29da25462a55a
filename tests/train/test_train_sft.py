"""train_sft end to end on CPU: 4 optimizer steps (2 epochs of 4 examples, accumulation 2) on a tiny random Llama, the loss log, the schedule, the saved model."""

import json
import math
import os

import pytest
from conftest import write_sft_data

from engine.cli.main import main
from engine.engine import ThinkingEngine
from engine.errors import TTScaleError
from engine.formats import get_format
from engine.logits.budget_state import BudgetConfig
from engine.model_config import ModelConfig
from train.config import SFTOptions
from train.data import build_dataset
from train.sft import LOG_NAME, model_source, sft_config, train_sft


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_sft_data(tmp_path_factory.mktemp("sftdata") / "train.jsonl", 4)


def test_sft_config_is_s1s():
    config = sft_config(SFTOptions(model="m", data="d", output_dir="o"), cuda=False, processes=2)
    assert (config.max_length, config.packing, config.learning_rate, config.gradient_accumulation_steps) == (32768, False, 1e-5, 8)
    assert (config.adam_beta1, config.adam_beta2, config.weight_decay, config.warmup_steps) == (0.9, 0.95, 1e-4, 0.05)
    assert config.lr_scheduler_type.value == "cosine" and config.report_to in ([], "none", ["none"])
    assert config.activation_checkpointing and not config.bf16 and config.num_train_epochs == 5
    assert config.save_strategy.value == "no" and config.save_total_limit == 2
    config = sft_config(SFTOptions(model="m", data="d", output_dir="o", save_steps=3, save_total_limit=0), cuda=False)
    assert (config.save_strategy.value, config.save_steps, config.save_total_limit) == ("steps", 3, None)
    with pytest.raises(TTScaleError, match="needs a GPU"):
        sft_config(SFTOptions(model="m", data="d", output_dir="o", dtype="bfloat16"), cuda=False)


def test_four_steps_log_the_schedule_and_save_a_loadable_model(chat_model_dir, data_file, tmp_path, one_thread):
    out = str(tmp_path / "ckpt")
    peak = 1e-3
    options = SFTOptions(model=chat_model_dir, data=data_file, output_dir=out, max_length=128, global_batch=2,
                         max_steps=4, warmup_ratio=0.25, learning_rate=peak, gradient_checkpointing=True)
    report = train_sft(options, progress=False)
    assert report["steps"] == 4 and report["examples"] == 4 and report["too_long"] == 0 and report["accumulation"] == 2
    rows = [json.loads(line) for line in open(os.path.join(out, LOG_NAME))]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    # The logged rate is the one step k used, lr(k - 1): 1 warm-up step (25% of 4) rising from 0, then cosine to 0
    # over the 3 steps left: lr(k) = peak * (1 + cos(pi * (k - 1) / 3)) / 2 for k >= 1.
    cosine = [peak * (1 + math.cos(math.pi * (k - 1) / 3)) / 2 for k in (1, 2, 3)]
    assert [r["learning_rate"] for r in rows] == pytest.approx([0.0] + cosine, abs=1e-12)
    assert cosine == pytest.approx([peak, 0.75 * peak, 0.25 * peak])
    assert any(name.endswith(".safetensors") for name in os.listdir(out))
    engine = ThinkingEngine.from_config(ModelConfig(model=out))
    result = engine.generate(["What is 1+1?"], BudgetConfig(max_thinking_tokens=4, max_answer_tokens=4))[0]
    assert 1 <= result.thinking_tokens <= 4 and result.token_ids and result.finish_reason
    with pytest.raises(TTScaleError, match="already holds train_log.jsonl"):
        train_sft(options, progress=False)
    assert json.load(open(os.path.join(out, "config.json")))["use_cache"]  # the Trainer's use_cache=False is not saved


def test_long_data_is_refused_before_training(chat_model_dir, data_file, tmp_path):
    options = SFTOptions(model=chat_model_dir, data=data_file, output_dir=str(tmp_path / "o"), max_length=16)
    with pytest.raises(TTScaleError, match=r"4 of 4 examples are longer than max_length 16"):
        train_sft(options, progress=False)
    assert not os.path.exists(tmp_path / "o" / LOG_NAME)


def test_the_first_logged_loss_is_the_assistant_only_loss(chat_model_dir, tmp_path, one_thread):
    """One example, one step: the loss the trainer logs is the model's mean cross-entropy over the assistant labels
    of :func:`train.data.build_dataset` (so the collator kept the mask), not over the whole sequence."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    record = {"question": "What is 3+4?", "thinking": "3 and 4 make 7.", "answer": "7"}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record) + "\n")
    out = str(tmp_path / "o")
    train_sft(SFTOptions(model=chat_model_dir, data=str(path), output_dir=out, max_length=128, global_batch=1,
                         max_steps=1, gradient_checkpointing=False), progress=False)
    logged = json.loads(open(os.path.join(out, LOG_NAME)).readline())["loss"]
    tokenizer = AutoTokenizer.from_pretrained(chat_model_dir)
    data, _ = build_dataset([record], tokenizer, get_format("s1"), max_length=128)
    model = AutoModelForCausalLM.from_pretrained(chat_model_dir, dtype=torch.float32)
    ids, labels = torch.tensor([data["input_ids"][0]]), torch.tensor([data["labels"][0]])
    with torch.no_grad():
        masked = model(input_ids=ids, labels=labels).loss.item()
        whole = model(input_ids=ids, labels=ids).loss.item()
    assert logged == pytest.approx(masked, rel=1e-3) and abs(masked - whole) > 1e-2


def test_model_source_converts_an_embedded_model_once(smol_dir, chat_model_dir):
    assert model_source("smollm2-135m") == smol_dir and model_source(chat_model_dir) == chat_model_dir


def test_the_cli_trains_and_says_where_the_model_is(chat_model_dir, data_file, tmp_path, capsys, one_thread):
    """``ttscale train sft`` end to end: flags from SFTOptions, the model saved where it says, the log written; a bad
    output location or missing data is one sentence before anything loads."""
    out = str(tmp_path / "sft")
    argv = ["train", "sft", "--model", chat_model_dir, "--data", str(data_file), "--output-dir", out, "--max-length", "128",
            "--global-batch", "2", "--epochs", "1", "--no-gradient-checkpointing"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"model in {out} (ttscale generate --model {out})" in err
    assert os.path.exists(os.path.join(out, "model.safetensors")) and os.path.exists(os.path.join(out, "train_log.jsonl"))
    assert os.path.getsize(os.path.join(out, "train_curves.png")) > 10_000 and f"curves {out}/train_curves.png" in err
    assert json.load(open(os.path.join(out, "train_options.json")))["options"]["output_dir"] == out
    assert main(argv) == 2  # the same output directory again: refused, the first run's model is kept
    assert "already holds train_log.jsonl from another run; choose a new directory, or add --resume" in capsys.readouterr().err
    assert main(["train", "sft", "--model", chat_model_dir, "--data", "./nope.jsonl", "--output-dir", str(tmp_path / "x")]) == 2
    assert "--data ./nope.jsonl: no such file or directory" in capsys.readouterr().err
    assert main(["train", "sft", "--model", chat_model_dir, "--data", str(data_file), "--output-dir", str(tmp_path / "a" / "b")]) == 2
    assert "does not exist" in capsys.readouterr().err
