"""s1-style SFT on TRL's ``SFTTrainer``: :func:`train_sft` turns :class:`~train.config.SFTOptions` into a run.

    report = train_sft(SFTOptions(model="Qwen/Qwen2.5-7B-Instruct", data="simplescaling/s1K-1.1", output_dir="ckpt"))
    ThinkingEngine.from_config(ModelConfig(model="ckpt"))   # the saved directory loads like any --model

s1's own script no longer runs on current TRL: its completion-only collator is gone and its block-size setting is
silently ignored, so a naive port truncates at TRL's default ``max_length`` of 1024. Here the data are tokenised by
:mod:`train.data` (assistant-only labels, long examples refused unless ``truncate``) and ``SFTConfig`` gets an
explicit ``max_length``, ``packing=False``, s1's schedule and optimiser settings and ``report_to="none"``. Every
logged step is appended to ``OUTPUT/train_log.jsonl``: ``step``, ``epoch``, ``loss``, ``grad_norm`` and
``learning_rate``, the rate that optimizer step used (step 1 of a warm-up logs 0).
"""

from __future__ import annotations

import json
import os
import sys

from engine.errors import TTScaleError
from engine.formats import get_format
from engine.models import gguf_to_safetensors, prepare_tokenizer, resolve_model
from train.config import SFTOptions
from train.data import build_dataset, load_records
from train.launch import check_launch

LOG_NAME = "train_log.jsonl"


def model_source(spec: str) -> str:
    """What ``from_pretrained`` should load for a ``--model`` value: a local directory (a GGUF file is converted
    once into the cache) or a hub id. Refuses what :func:`engine.models.resolve_model` refuses."""
    kind, where = resolve_model(spec)
    return gguf_to_safetensors(where) if kind == "gguf" else where


def _processes() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def sft_config(options: SFTOptions, cuda: bool, processes: int = 1):
    """The ``trl.SFTConfig`` of ``options``: s1's hyper-parameters with an explicit ``max_length`` and no packing.

    bf16 mixed precision on GPU (``dtype`` auto or bfloat16), fp32 on CPU. Refuses bf16 without a GPU and a global
    batch that batch × ``processes`` does not divide.
    """
    from trl import SFTConfig  # deferred: trl imports accelerate and more; only training needs it

    if options.dtype == "bfloat16" and not cuda:
        raise TTScaleError("--dtype bfloat16 needs a GPU for mixed precision; use --dtype auto or float32 on CPU")
    bf16 = cuda and options.dtype in ("auto", "bfloat16")
    return SFTConfig(
        output_dir=options.output_dir,
        max_length=options.max_length,
        packing=False,
        completion_only_loss=None,             # the labels column (assistant-only) is used as is
        assistant_only_loss=False,             # masks are built by train.data, not through {% generation %}
        learning_rate=options.learning_rate,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.accumulation(processes),
        lr_scheduler_type="cosine",
        warmup_steps=float(options.warmup_ratio),  # transformers 5: a value below 1 is a fraction of the steps
        adam_beta1=options.adam_beta1,
        adam_beta2=options.adam_beta2,
        weight_decay=options.weight_decay,
        optim="adamw_torch",
        bf16=bf16,
        fp16=False,
        activation_checkpointing=options.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        logging_steps=1,
        logging_first_step=True,
        save_strategy="steps" if options.save_steps else "no",
        save_steps=options.save_steps or 500,
        report_to="none",
        seed=options.seed,
        data_seed=options.seed,
        use_cpu=not cuda,
        dataloader_num_workers=0,
    )


def _log_callback(path: str):
    from transformers import TrainerCallback  # deferred: see sft_config

    class JsonlLog(TrainerCallback):
        """Appends every training log (step, epoch, loss, learning rate, grad norm) to a JSONL file on rank 0."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:
                row = {"step": state.global_step, "epoch": logs.get("epoch", state.epoch), "loss": logs["loss"],
                       "learning_rate": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm")}
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")

    return JsonlLog()


def train_sft(options: SFTOptions, progress: bool = True, resume: str | bool | None = None) -> dict:
    """Fine-tune ``options.model`` on ``options.data`` and save model + tokenizer (safetensors) in ``output_dir``.

    Returns ``{"output_dir", "log", "examples", "too_long", "longest", "truncated", "steps", "train_loss",
    "accumulation", "processes", "bf16"}``. ``resume`` (a checkpoint directory, or True for the latest) is passed
    to ``Trainer.train``. Refuses what :func:`train.data.load_records`, :func:`train.data.build_dataset` (examples
    longer than ``max_length`` without ``truncate``) and :func:`sft_config` refuse, LoRA (not built yet), and an
    output directory that already holds a training log unless resuming.
    """
    import torch  # deferred: keeps `import train.sft` cheap for the CLI's --help
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback  # deferred: as torch
    from trl import SFTTrainer  # deferred: as torch

    check_launch(options)  # FSDP without CUDA, launcher mixed precision, ...: refused before anything loads
    if options.lora:
        raise TTScaleError("--lora is not supported yet; train the full model (drop --lora)")
    log_path = os.path.join(options.output_dir, LOG_NAME)
    if os.path.exists(log_path) and not resume:
        raise TTScaleError(f"--output-dir {options.output_dir} already holds {LOG_NAME}; choose a new directory or resume")
    source = model_source(options.model)
    cuda = torch.cuda.is_available()
    config = sft_config(options, cuda, _processes())
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(source))
    tokenizer.padding_side = "right"  # training pads on the right; prepare_tokenizer's left padding is for generation
    records = load_records(options.data, options.fields, options.split)
    dataset, lengths = build_dataset(records, tokenizer, get_format(options.format), options.max_length,
                                     options.truncate, options.answer_prefix)
    if lengths["truncated"]:  # said even without progress: cut examples change what is learned (REFERENCE §1)
        print(f"truncated {lengths['truncated']} of {lengths['examples']} examples to {options.max_length} tokens "
              f"(the longest had {lengths['longest']})", file=sys.stderr)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)  # fp32 master weights; bf16 autocast on GPU
    config.disable_tqdm = not progress
    os.makedirs(options.output_dir, exist_ok=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[_log_callback(log_path)])
    if not progress:
        trainer.remove_callback(PrinterCallback)  # without progress bars the Trainer would print every log dict
    result = trainer.train(resume_from_checkpoint=resume or None)
    trainer.save_model(options.output_dir)
    if trainer.is_world_process_zero():
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(options.output_dir)
    return {"output_dir": options.output_dir, "log": log_path, **lengths, "steps": result.global_step,
            "train_loss": result.training_loss, "accumulation": config.gradient_accumulation_steps,
            "processes": _processes(), "bf16": config.bf16}
