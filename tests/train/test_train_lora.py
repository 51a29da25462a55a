"""LoRA through peft on the tiny model: only the adapters train, OUTPUT holds the merged model (it loads as --model and
its logits differ from the base), OUTPUT/adapter the adapter alone; a LoRA run resumes from a checkpoint exactly."""

import json
import os

import pytest
import torch
from conftest import write_sft_data

from engine.engine import ThinkingEngine
from engine.errors import ConfigError
from engine.logits.budget_state import BudgetConfig
from engine.model_config import ModelConfig
from train.config import SFTOptions
from train.sft import ADAPTER_DIR, LOG_NAME, train_sft


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_sft_data(tmp_path_factory.mktemp("loradata") / "train.jsonl", 6)


def _state(directory):
    from safetensors.torch import load_file

    return load_file(os.path.join(directory, "model.safetensors"))


def _logits(model_dir, text="What is 1+1?"):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(model_dir)(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)(ids).logits


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft 0.21 on transformers 5
def test_lora_trains_only_the_adapters_and_saves_a_merged_model(chat_model_dir, data_file, tmp_path, one_thread):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = str(tmp_path / "lora")
    options = SFTOptions(model=chat_model_dir, data=data_file, output_dir=out, max_length=128, global_batch=2, max_steps=3,
                         save_steps=2, learning_rate=1e-2, gradient_checkpointing=False, lora=True, lora_rank=4, lora_alpha=8)
    report = train_sft(options, progress=False)
    assert report["steps"] == 3 and report["adapter"] == os.path.join(out, ADAPTER_DIR)
    adapter = load_file(os.path.join(out, ADAPTER_DIR, "adapter_model.safetensors"))
    assert adapter and all(".lora_A." in name or ".lora_B." in name for name in adapter)
    assert {name.split(".lora_")[0].rsplit(".", 1)[1] for name in adapter} == {  # all-linear: every projection, no head
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert json.load(open(os.path.join(out, ADAPTER_DIR, "adapter_config.json")))["r"] == 4

    base, merged = _state(chat_model_dir), _state(out)
    assert merged.keys() == base.keys()  # a plain model: no lora_* or base_layer names left
    untouched = [n for n in base if "proj" not in n]  # embeddings and norms get no adapter
    assert untouched and all(torch.equal(base[n], merged[n]) for n in untouched)
    assert all(not torch.equal(base[n], merged[n]) for n in base if "q_proj" in n)  # W + (alpha / r) B A
    # Only the adapters trained: the untouched base merged with the saved adapter is the saved model.
    rebuilt = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(chat_model_dir, dtype=torch.float32),
                                        os.path.join(out, ADAPTER_DIR)).merge_and_unload().state_dict()
    assert all((rebuilt[n] - merged[n]).abs().max() <= 1e-6 for n in merged)

    assert (_logits(out) - _logits(chat_model_dir)).abs().max() > 1e-3
    engine = ThinkingEngine.from_config(ModelConfig(model=out))
    result = engine.generate(["What is 1+1?"], BudgetConfig(max_thinking_tokens=4, max_answer_tokens=4))[0]
    assert 1 <= result.thinking_tokens <= 4 and result.token_ids

    # Resumed from its mid-epoch checkpoint (LoRA dropout draws from the restored RNG): the same last step, the same model.
    step3 = json.loads(open(os.path.join(out, LOG_NAME)).read().splitlines()[2])
    again = train_sft(options, progress=False, resume=os.path.join(out, "checkpoint-2"))
    assert again["resumed_from"] == os.path.join(out, "checkpoint-2") and again["steps"] == 3
    rows = [json.loads(line) for line in open(os.path.join(out, LOG_NAME))]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[2]["loss"] == pytest.approx(step3["loss"], abs=1e-6)
    assert all((_state(out)[n] - merged[n]).abs().max() <= 1e-6 for n in merged)


def test_target_modules_the_model_lacks_are_refused(chat_model_dir, data_file, tmp_path):
    options = SFTOptions(model=chat_model_dir, data=data_file, output_dir=str(tmp_path / "o"), max_length=128,
                         global_batch=2, max_steps=1, lora=True, lora_target_modules="wq,wv")
    with pytest.raises(ConfigError, match="`?lora_target_modules`? 'wq,wv' matches no module") as err:
        train_sft(options, progress=False)
    assert err.value.field == "lora_target_modules"
