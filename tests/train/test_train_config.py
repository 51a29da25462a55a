"""SFTOptions: s1's defaults, help on every field, refusals naming the field."""

import dataclasses

import pytest

from engine.errors import ConfigError
from train.config import S1_MAX_LENGTH, SFTOptions

BASE = {"model": "smollm2-135m", "data": "out", "output_dir": "ckpt"}


def test_defaults_are_s1s():
    o = SFTOptions(**BASE)
    assert (o.learning_rate, o.epochs, o.global_batch, o.batch_size, o.warmup_ratio) == (1e-5, 5.0, 16, 1, 0.05)
    assert (o.adam_beta1, o.adam_beta2, o.weight_decay) == (0.9, 0.95, 1e-4)
    assert o.max_length == S1_MAX_LENGTH == 32768 and not o.truncate and o.gradient_checkpointing and not o.lora
    assert o.format == "s1" and o.dtype == "auto"
    assert (o.save_steps, o.save_total_limit, o.resume, o.progress) == (None, 2, False, True)
    assert (o.lora_rank, o.lora_alpha, o.lora_dropout, o.lora_targets()) == (16, 32, 0.05, "all-linear")
    assert o.accumulation(1) == 16 and o.accumulation(4) == 4 and o.accumulation(16) == 1


def test_every_field_has_help_and_the_options_are_frozen():
    assert all(f.metadata.get("help") for f in dataclasses.fields(SFTOptions))
    with pytest.raises(dataclasses.FrozenInstanceError):
        SFTOptions(**BASE).learning_rate = 1.0


@pytest.mark.parametrize("change, name", [
    ({"model": ""}, "model"), ({"data": " "}, "data"), ({"output_dir": ""}, "output_dir"),
    ({"format": "auto"}, "format"), ({"learning_rate": 0}, "learning_rate"), ({"epochs": -1}, "epochs"),
    ({"global_batch": 0}, "global_batch"), ({"batch_size": 3}, "global_batch"), ({"max_length": 0}, "max_length"),
    ({"warmup_ratio": 1.0}, "warmup_ratio"), ({"adam_beta2": 1.0}, "adam_beta2"), ({"weight_decay": -1e-4}, "weight_decay"),
    ({"save_steps": 0}, "save_steps"), ({"max_steps": 0}, "max_steps"), ({"dtype": "float16"}, "dtype"),
    ({"save_total_limit": -1}, "save_total_limit"), ({"lora_rank": 0}, "lora_rank"), ({"lora_alpha": 0}, "lora_alpha"),
    ({"lora_dropout": 1.0}, "lora_dropout"), ({"lora_target_modules": " , "}, "lora_target_modules"),
])
def test_bad_values_are_refused_naming_the_field(change, name):
    with pytest.raises(ConfigError) as err:
        SFTOptions(**{**BASE, **change})
    assert err.value.field == name


def test_accumulation_refuses_a_process_count_that_does_not_divide():
    with pytest.raises(ConfigError) as err:
        SFTOptions(**BASE).accumulation(3)
    assert err.value.field == "global_batch"


def test_lora_targets_are_all_linear_or_a_list_of_names():
    assert SFTOptions(**BASE, lora_target_modules=" q_proj, v_proj ,").lora_targets() == ["q_proj", "v_proj"]


def test_first_difference_names_the_first_training_option_that_differs():
    import json

    run = SFTOptions(**BASE, save_steps=10)
    recorded = json.loads(json.dumps(dataclasses.asdict(run)))
    assert run.first_difference(recorded) is None
    # Where it is written, the checkpoint cadence, resuming and the bar do not change what is learned.
    assert SFTOptions(**{**BASE, "output_dir": "moved"}, save_steps=3, save_total_limit=0, resume=True,
                      progress=False).first_difference(recorded) is None
    assert SFTOptions(**BASE, learning_rate=1e-3, seed=1).first_difference(recorded) == "learning_rate"
    assert SFTOptions(**BASE, lora_rank=4).first_difference(recorded) is None  # LoRA settings count only with LoRA
    assert SFTOptions(**BASE, lora=True, lora_rank=4).first_difference(recorded) == "lora"
    lora = json.loads(json.dumps(dataclasses.asdict(SFTOptions(**BASE, lora=True))))
    assert SFTOptions(**BASE, lora=True, lora_rank=4).first_difference(lora) == "lora_rank"
    del recorded["truncate"]  # a record from before a field existed: the field's default
    assert run.first_difference(recorded) is None and SFTOptions(**BASE, truncate=True).first_difference(recorded) == "truncate"
