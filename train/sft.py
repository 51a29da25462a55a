"""s1-style SFT on TRL's ``SFTTrainer``: :func:`train_sft` turns :class:`~train.config.SFTOptions` into a run.

    report = train_sft(SFTOptions(model="Qwen/Qwen2.5-7B-Instruct", data="simplescaling/s1K-1.1", output_dir="ckpt"))
    ThinkingEngine.from_config(ModelConfig(model="ckpt"))   # the saved directory loads like any --model

s1's own script no longer runs on current TRL: its completion-only collator is gone and its block-size setting is
silently ignored, so a naive port truncates at TRL's default ``max_length`` of 1024. Here the data are tokenised by
:mod:`train.data` (assistant-only labels, long examples refused unless ``truncate``) and ``SFTConfig`` gets an
explicit ``max_length``, ``packing=False``, s1's schedule and optimiser settings and ``report_to="none"``. Every
logged step is appended to ``OUTPUT/train_log.jsonl``: ``step``, ``epoch``, ``loss``, ``grad_norm`` and
``learning_rate``, the rate that optimizer step used (step 1 of a warm-up logs 0); after training the log is drawn
as ``OUTPUT/train_curves.png`` (:mod:`train.curves`).

What OUTPUT holds::

    model.safetensors, config.json, tokenizer files   the final model (with LoRA: merged), loads as --model OUTPUT
    adapter/                                          with LoRA only: the adapter alone (peft's adapter_model.safetensors)
    train_log.jsonl, train_curves.png                 one row per optimizer step; loss and learning rate vs step
    train_options.json                                the run's SFTOptions and process count, written when training starts
    checkpoint-N/                                     with save_steps: the Trainer's checkpoint after step N (weights,
                                                      optimizer, scheduler, RNG states, trainer_state.json last)

Resuming (``resume``): the run continues from the last *complete* checkpoint (the highest N whose
``trainer_state.json`` reads back), with the Trainer skipping the batches already consumed in that epoch, so the
data order is the uninterrupted run's. Before any model loads it is refused when OUTPUT holds no complete
checkpoint, no ``train_options.json``, or one whose training options (every field but :data:`train.config.RUN_ONLY`)
or process count differ from this run's. Then checkpoints past N (a save cut short by the kill; resuming from an
earlier checkpoint given by path, the later ones too) are deleted and log rows past step N dropped, so the log never
holds a step twice. Without ``resume`` an OUTPUT that holds a training log or a checkpoint is refused.

Progress: the Trainer's tqdm bar (loss and learning rate as its postfix, no log dict printed per step); without
progress no bar at all, datasets' and transformers' included, so only the caller's own lines are printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import warnings

from engine.errors import ConfigError, TTScaleError
from engine.formats import get_format
from engine.jsonl import JsonlWriter, read_jsonl, write_json_atomic, write_jsonl_atomic
from engine.models import gguf_to_safetensors, prepare_tokenizer, resolve_model
from train.config import SFTOptions
from train.curves import plot_curves
from train.data import build_dataset, load_records
from train.launch import check_launch

LOG_NAME = "train_log.jsonl"
OPTIONS_NAME = "train_options.json"
CURVES_NAME = "train_curves.png"
ADAPTER_DIR = "adapter"
STATE_NAME = "trainer_state.json"  # transformers' TRAINER_STATE_NAME: written last into a checkpoint
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def model_source(spec: str) -> str:
    """What ``from_pretrained`` should load for a ``--model`` value: a local directory (a GGUF file is converted
    once into the cache) or a hub id. Refuses what :func:`engine.models.resolve_model` refuses."""
    kind, where = resolve_model(spec)
    return gguf_to_safetensors(where) if kind == "gguf" else where


def _default(name: str):
    return next(f.default for f in dataclasses.fields(SFTOptions) if f.name == name)


def _rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


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
        save_total_limit=options.save_total_limit or None,
        report_to="none",
        seed=options.seed,
        data_seed=options.seed,
        use_cpu=not cuda,
        dataloader_num_workers=0,
    )


# ---- checkpoints and resume: plain files, no model ------------------------------------------------------------------

def _checkpoint_step(path: str) -> int | None:
    """The global step of a complete checkpoint directory (its trainer_state.json reads back), else None."""
    try:
        with open(os.path.join(path, STATE_NAME), encoding="utf-8") as fh:
            step = json.load(fh).get("global_step")
    except (OSError, ValueError, AttributeError):  # missing (a save cut short), torn, or gone while listing
        return None
    return step if isinstance(step, int) else None


def _checkpoint_dirs(output_dir: str) -> list[tuple[int, str]]:
    """(N, path) of every checkpoint-N directory in ``output_dir``, complete or not, by N."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), os.path.join(output_dir, name)) for name in os.listdir(output_dir)
             if (m := _CHECKPOINT.match(name)) and os.path.isdir(os.path.join(output_dir, name))]
    return sorted(found)


def last_checkpoint(output_dir: str) -> str | None:
    """The checkpoint a resume continues from: the checkpoint-N directory in ``output_dir`` with the highest N whose
    ``trainer_state.json`` reads back (a save cut short by a kill writes that file last, so it is skipped); None
    when there is none."""
    complete = [path for _, path in _checkpoint_dirs(output_dir) if _checkpoint_step(path) is not None]
    return complete[-1] if complete else None


def check_output(options: SFTOptions, processes: int, resume: str | bool = False) -> str | None:
    """Check ``options.output_dir`` against the run about to start, before any model loads; return the checkpoint
    to resume from (None for a fresh run).

    ``resume`` is False (a fresh run), True (the :func:`last_checkpoint`) or a checkpoint directory. Refuses, in one
    sentence: without ``resume``, a directory that already holds a training log or a checkpoint; with it, no
    complete checkpoint, no readable ``train_options.json``, training options that differ from the recorded ones
    (naming the first differing field), and another process count (the data order depends on it).
    """
    out = options.output_dir
    if not resume:
        held = LOG_NAME if os.path.exists(os.path.join(out, LOG_NAME)) else next(
            (os.path.basename(path) for _, path in _checkpoint_dirs(out)), None)
        if held:
            raise ConfigError(f"`output_dir` {out} already holds {held} from another run; choose a new directory, "
                              "or add `resume` to continue that run")
        return None
    if isinstance(resume, str):
        checkpoint = resume
        if _checkpoint_step(checkpoint) is None:
            raise TTScaleError(f"checkpoint {checkpoint} is not a complete Trainer checkpoint (no readable {STATE_NAME}); "
                               f"give a checkpoint-N directory of {out}, or True for the last one")
    else:
        checkpoint = last_checkpoint(out)
        if checkpoint is None:
            started = os.path.exists(os.path.join(out, LOG_NAME))
            raise ConfigError(f"`resume`: {out} holds no complete checkpoint to resume from (checkpoint-N with "
                              f"{STATE_NAME}, saved every `save_steps`); "
                              + ("start again in a new directory" if started else "drop it to start a new run there"))
    record_path = os.path.join(out, OPTIONS_NAME)
    try:
        with open(record_path, encoding="utf-8") as fh:
            record = json.load(fh)
        recorded, recorded_processes = dict(record["options"]), int(record.get("processes", processes))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"`resume`: {out} has no readable {OPTIONS_NAME} ({exc.__class__.__name__}), so its run's "
                          "options are unknown; resume only a run that ttscale train sft started, or choose a new "
                          "`output_dir`") from exc
    name = options.first_difference(recorded)
    if name is not None:
        raise ConfigError(f"`{name}` is {getattr(options, name)!r} but the run in {out} was started with "
                          f"{recorded.get(name, _default(name))!r}; resume with the run's value or choose a new `output_dir`")
    if recorded_processes != processes:
        def count(n):
            return f"{n} process" + ("es" if n != 1 else "")
        raise TTScaleError(f"the run in {out} was trained on {count(recorded_processes)}, this one on {processes}; "
                           f"the data order depends on it, so resume it on {count(recorded_processes)}")
    return checkpoint


def _prepare_output(options: SFTOptions, processes: int, checkpoint: str | None) -> None:
    """On rank 0, once every check passed: record the run's options; when resuming, delete the checkpoints past
    ``checkpoint`` (a save cut short, or a continuation given up) and drop the log rows past its step."""
    if not _rank_zero():
        return
    out = options.output_dir
    os.makedirs(out, exist_ok=True)
    write_json_atomic(os.path.join(out, OPTIONS_NAME),
                      {"options": dataclasses.asdict(options), "processes": processes}, indent=2)
    if checkpoint is None:
        return
    step = _checkpoint_step(checkpoint)
    for n, path in _checkpoint_dirs(out):
        if n > step:
            shutil.rmtree(path, ignore_errors=True)
    log_path = os.path.join(out, LOG_NAME)
    if os.path.exists(log_path):  # the torn-line policy drops a row cut by the kill
        write_jsonl_atomic(log_path, [row for row in read_jsonl(log_path, what="train log") if row.get("step", 0) <= step])


# ---- Trainer callbacks ----------------------------------------------------------------------------------------------

def _log_callback(path: str):
    from transformers import TrainerCallback  # deferred: see sft_config

    class JsonlLog(TrainerCallback):
        """Appends every training log (step, epoch, loss, learning rate, grad norm) to a JSONL file on rank 0."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:
                row = {"step": state.global_step, "epoch": logs.get("epoch", state.epoch), "loss": logs["loss"],
                       "learning_rate": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm")}
                with JsonlWriter(path) as log:  # one flushed line per step; a torn tail from a kill is cut first
                    log.append(row)

    return JsonlLog()


def _progress_bar():
    from transformers import ProgressCallback  # deferred: see sft_config

    class Bar(ProgressCallback):
        """The Trainer's tqdm bar with the last loss and learning rate as its postfix, instead of a printed log dict
        per step (the rows are in train_log.jsonl)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4g}", lr=f"{logs.get('learning_rate') or 0:.3g}")

    return Bar()


def _lora_config(options: SFTOptions):
    """The ``peft.LoraConfig`` of ``options`` (a causal LM). Refuses a missing peft."""
    try:
        from peft import LoraConfig  # deferred: only --lora needs peft
    except ImportError as exc:
        raise TTScaleError("--lora needs peft, which is not installed; pip install 'peft>=0.21,<1'") from exc
    return LoraConfig(r=options.lora_rank, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout,
                      target_modules=options.lora_targets(), task_type="CAUSAL_LM")


def _save(trainer, options: SFTOptions, tokenizer, use_cache: bool) -> str | None:
    """Save the final model in ``output_dir`` (safetensors + tokenizer, left padding, the model's own ``use_cache``
    back: the Trainer sets it False for training); with LoRA first the adapter alone in ``output_dir/adapter``, then
    the merged model. Returns the adapter directory (None without LoRA)."""
    adapter = None
    trainer.model.config.use_cache = use_cache
    if options.lora:
        adapter = os.path.join(options.output_dir, ADAPTER_DIR)
        trainer.save_model(adapter)  # a PeftModel saves adapter_config.json + adapter_model.safetensors only
        merged = trainer.model.merge_and_unload()  # W + (alpha / r) B A folded in: a plain model again
        if trainer.is_world_process_zero():
            merged.save_pretrained(options.output_dir)
    else:
        if trainer.is_fsdp_enabled:  # checkpoints stay sharded; the final model is gathered for from_pretrained
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        trainer.save_model(options.output_dir)
    if trainer.is_world_process_zero():
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(options.output_dir)
    return adapter


def train_sft(options: SFTOptions, progress: bool | None = None, resume: str | bool | None = None) -> dict:
    """Fine-tune ``options.model`` on ``options.data`` and save model + tokenizer (safetensors) in ``output_dir``.

    ``progress`` and ``resume`` default to ``options.progress`` and ``options.resume``; ``resume`` is True (continue
    from the last complete checkpoint in ``output_dir``) or a checkpoint directory (see the module docstring for
    what is checked and what is cut). With ``options.lora`` only LoRA adapters train; ``output_dir`` gets the merged
    model and ``output_dir/adapter`` the adapter. Returns ``{"output_dir", "log", "curves", "adapter",
    "resumed_from", "examples", "too_long", "longest", "truncated", "steps", "steps_run", "train_loss",
    "accumulation", "processes", "bf16"}``: ``steps`` is the final global step, ``steps_run`` those this call ran
    and ``train_loss`` their mean loss. Refuses what :func:`check_output` (before any model loads),
    :func:`train.data.load_records`, :func:`train.data.build_dataset` (examples longer than ``max_length`` without
    ``truncate``) and :func:`sft_config` refuse, and LoRA target modules the model does not have.
    """
    progress = options.progress if progress is None else progress
    resume = options.resume if resume is None else resume
    # FSDP without CUDA, launcher mixed precision, ...: refused before anything loads; the launch also says how many
    # processes train (WORLD_SIZE, as accelerate reads it)
    processes = check_launch(options).processes
    checkpoint = check_output(options, processes, resume)
    with contextlib.nullcontext() if progress else _no_library_bars():
        return _train(options, progress, processes, checkpoint)


@contextlib.contextmanager
def _no_library_bars():
    """datasets' map bars and transformers' download/save bars off for a run without progress; as before afterwards."""
    import datasets  # deferred: as torch in _train
    from transformers.utils import logging as hf_logging  # deferred: as torch in _train

    datasets_on, hf_on = not datasets.are_progress_bars_disabled(), hf_logging.is_progress_bar_enabled()
    if datasets_on:
        datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_on:
            datasets.enable_progress_bars()
        if hf_on:
            hf_logging.enable_progress_bar()


def _train(options: SFTOptions, progress: bool, processes: int, checkpoint: str | None) -> dict:
    """:func:`train_sft` once ``output_dir`` passed :func:`check_output`: load, tokenise, train, save, plot."""
    import torch  # deferred: keeps `import train.sft` cheap for the CLI's --help
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, ProgressCallback, set_seed  # deferred: as torch
    from trl import SFTTrainer  # deferred: as torch

    log_path = os.path.join(options.output_dir, LOG_NAME)
    source = model_source(options.model)
    cuda = torch.cuda.is_available()
    config = sft_config(options, cuda, processes)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(source))
    tokenizer.padding_side = "right"  # training pads on the right; prepare_tokenizer's left padding is for generation
    records = load_records(options.data, options.fields, options.split)
    dataset, lengths = build_dataset(records, tokenizer, get_format(options.format), options.max_length,
                                     options.truncate, options.answer_prefix)
    if lengths["truncated"]:  # said even without progress: cut examples change what is learned (REFERENCE §1)
        print(f"truncated {lengths['truncated']} of {lengths['examples']} examples to {options.max_length} tokens "
              f"(the longest had {lengths['longest']})", file=sys.stderr)
    peft_config = _lora_config(options) if options.lora else None
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)  # fp32 master weights; bf16 autocast on GPU
    use_cache = model.config.use_cache
    config.disable_tqdm = not progress
    _prepare_output(options, processes, checkpoint)
    set_seed(options.seed)  # the LoRA initialisation happens in SFTTrainer, before the Trainer seeds itself
    try:
        with warnings.catch_warnings():  # peft 0.21 reads a property transformers 5 deprecated: not the user's concern
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                                 callbacks=[_log_callback(log_path)], peft_config=peft_config)
    except ValueError as exc:
        if options.lora and "target modules" in str(exc).lower():
            raise ConfigError(f"`lora_target_modules` {options.lora_target_modules!r} matches no module of {options.model}; "
                              "give all-linear or names of its linear layers (e.g. q_proj,v_proj)") from exc
        raise
    trainer.remove_callback(ProgressCallback if progress else PrinterCallback)  # no log dict printed per step
    if progress:
        trainer.add_callback(_progress_bar())
    start = _checkpoint_step(checkpoint) if checkpoint else 0  # read now: rotation may delete that checkpoint
    result = trainer.train(resume_from_checkpoint=checkpoint)
    adapter = _save(trainer, options, tokenizer, use_cache)
    curves = os.path.join(options.output_dir, CURVES_NAME)
    if trainer.is_world_process_zero():
        plot_curves(log_path, curves)
    return {"output_dir": options.output_dir, "log": log_path, "curves": curves, "adapter": adapter,
            "resumed_from": checkpoint, **lengths, "steps": result.global_step, "steps_run": result.global_step - start,
            "train_loss": result.training_loss,
            "accumulation": config.gradient_accumulation_steps, "processes": processes, "bf16": config.bf16}
